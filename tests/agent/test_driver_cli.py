"""`shopkeeper drivers [KIND]` text: the installed kinds with descriptions, and one kind's sample."""

from __future__ import annotations

import tomllib

import pytest

from agent.driver_cli import list_drivers, sample_for
from agent.errors import AgentError


def test_list_names_every_built_in_kind_with_its_module() -> None:
    text = list_drivers()
    for kind, module in [
        ("terabee", "drivers.terabee.driver:TerabeeDriver"),
        ("ld2410", "drivers.ld2410.driver:LD2410Driver"),
        ("modbus_counter", "drivers.modbus_counter.driver:ModbusCounterDriver"),
        ("beam_gpio", "drivers.beam_gpio.driver:BeamGpioDriver"),
        ("mqtt_sensors", "drivers.mqtt_sensors.driver:MqttSensorsDriver"),
    ]:
        line = next(line for line in text.splitlines() if line.startswith(kind + " "))
        assert f"[{module}]" in line and "(no description)" not in line


def test_sample_for_a_kind_is_its_sample_toml() -> None:
    sample = sample_for("modbus_counter")
    assert tomllib.loads(sample)["drivers"]["side_door"]["kind"] == "modbus_counter"


def test_sample_for_an_unknown_kind_says_what_to_do() -> None:
    with pytest.raises(AgentError, match="shopkeeper drivers"):
        sample_for("no_such_kind")
