"""Declared driver options: validation, defaults and messages come from one declaration; samples are checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.config.reader import NAME_RE
from agent.driver_api import DriverOptionError, installed_drivers
from agent.driver_api.options import Options, choice, flag, integer, name, number, table, tables, text
from agent.driver_api.sample_toml import sample_problems
from agent.errors import ConfigError
from tests.conftest import BASE_CONFIG

DECLARED = Options(
    text("port", fix='set port = "/dev/serial/by-id/..."'),
    name("door"),
    integer("baudrate", 9600, low=1),
    number("hold_s", 2.0, low=0, high=60),
    flag("swap", False),
    choice("frame", "auto", ("auto", 1, 15)),
    table("tuning", Options(integer("gain", 3, low=0, high=9))),
    tables(
        "sensors",
        Options(name("zone", what="zone"), integer("switch", 1, low=1, high=28)),
        what="a sensor",
        fix="add one [[drivers.<name>.sensors]] per sensor",
    ),
)
GOOD = {"port": " /dev/x ", "door": "front", "sensors": [{"zone": "till"}]}


def error(options: dict[str, Any]) -> DriverOptionError:
    with pytest.raises(DriverOptionError) as caught:
        DECLARED.parse(options, where="mydevice")
    return caught.value


def test_defaults_are_filled_in_and_values_converted() -> None:
    values = DECLARED.parse(GOOD)
    assert values["port"] == "/dev/x" and values["baudrate"] == 9600 and values["hold_s"] == 2.0
    assert values["tuning"] == {"gain": 3} and values["sensors"] == [{"zone": "till", "switch": 1}]


@pytest.mark.parametrize(
    ("bad", "key", "problem"),
    [
        ({"door": "front"}, "port", "missing or empty"),
        ({**GOOD, "port": "  "}, "port", "missing or empty"),
        ({**GOOD, "baudrate": True}, "baudrate", "True is not a positive integer"),
        ({**GOOD, "hold_s": 61}, "hold_s", "61 is not a number from 0 to 60"),
        ({**GOOD, "frame": True}, "frame", 'True is not one of "auto", 1, 15'),  # True == 1, yet not a choice
        ({**GOOD, "tuning": {"gain": 10}}, "tuning.gain", "10 is not a whole number from 0 to 9"),
        ({**GOOD, "tuning": {"gian": 1}}, "tuning.gian", "unknown option"),
        ({**GOOD, "sensors": []}, "sensors", "missing or empty"),
        ({**GOOD, "sensors": [{"zone": "till"}, {"zone": "Till"}]}, "sensors[1].zone", "'Till' is not a zone name"),
        ({**GOOD, "colour": "red"}, "colour", "unknown option"),
    ],
)
def test_a_bad_option_names_its_key_the_problem_and_a_fix(bad: dict[str, Any], key: str, problem: str) -> None:
    caught = error(bad)
    assert (caught.key, caught.problem) == (key, problem) and caught.fix
    assert str(caught) == f"{key}: {problem}; fix: {caught.fix}"


def test_an_unknown_key_lists_what_the_driver_takes() -> None:
    assert error({**GOOD, "colour": "red"}).fix == (
        "remove it; mydevice takes port, door, baudrate, hold_s, swap, frame, tuning, sensors"
    )


def test_a_wrong_value_is_told_the_default() -> None:
    assert error({**GOOD, "baudrate": 0}).fix == "use 9600 (the default)"


DOOR_DRIVERS = {
    "terabee": {"port": "/dev/x"},
    "thermal90640": {"port": "/dev/x"},
    "modbus_counter": {"port": "/dev/x"},
    "beam_gpio": {"pin_a": 17, "pin_b": 27},
}


@pytest.mark.parametrize("door", ["front", "a" * 63, "0-side_2", "-front", "_x", "a" * 64, "Front", ""])
@pytest.mark.parametrize("kind", DOOR_DRIVERS)
def test_door_names_follow_the_agents_own_rule(kind: str, door: str) -> None:
    cls = installed_drivers()[kind]
    options = {**DOOR_DRIVERS[kind], "door": door}
    if NAME_RE.match(door):
        assert cls.from_options("d", options).doors() == [door]
    else:
        with pytest.raises(DriverOptionError) as caught:
            cls.from_options("d", options)
        assert caught.value.key == "door"


def test_the_agent_reports_a_bad_driver_option_on_one_line_with_file_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(BASE_CONFIG.format(port=1883) + '\n[drivers.front_door]\nkind = "terabee"\nport = "/dev/x"\n'
                    'door = "front"\nbaudrate = "fast"\n')  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"{path}: drivers.front_door.baudrate: 'fast' is not")
    assert text.endswith("fix: use 115200 (the default)")


SAMPLE = """
[drivers.dev]
  kind = "mydevice"
  port = "/dev/ttyUSB0"
  door = "front"
  # baudrate = 9600
  # hold_s = 2.0
  # swap = false
  # frame = "auto"
  [drivers.dev.tuning]
  # gain = 3
  [[drivers.dev.sensors]]
    zone = "till"
    # switch = 1
"""


def test_a_sample_that_shows_every_option_with_its_default_agrees() -> None:
    assert sample_problems(DECLARED, SAMPLE, "mydevice") == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "# baudrate = 9600",
            "# baudrate = 19200",
            "drivers.dev.baudrate is shown as 19200; its declared default is 9600",
        ),
        ("  # swap = false\n", "", "drivers.dev.swap is declared but sample.toml does not show it"),
        ('  port = "/dev/ttyUSB0"', '  # port = "/dev/ttyUSB0"', "drivers.dev.port is required, but sample.toml only"),
        ("# gain = 3", "# gain = 3\n  # gian = 4", "drivers.dev.tuning.gian is in sample.toml but is not a declared"),
        ("    # switch = 1", "    # switch = 2", "drivers.dev.sensors.switch is shown as 2; its default is 1"),
        ("  # hold_s = 2.0", "  hold_s = 5.0", "drivers.dev.hold_s is set to 5.0, not its default 2.0"),
    ],
)
def test_a_sample_that_drifted_from_the_declaration_is_caught(old: str, new: str, problem: str) -> None:
    assert old in SAMPLE
    problems = sample_problems(DECLARED, SAMPLE.replace(old, new), "mydevice")
    assert len(problems) == 1 and problems[0].startswith(problem), problems
