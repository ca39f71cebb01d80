"""Configuration validation: every bad file is one line naming file, key and fix, with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent.cli import main
from agent.config import load_config
from agent.driver_api import DriverOptionError
from agent.errors import ConfigError

GOOD = """
[agent]
coop = "riverside"
store = "store-0042"
doors = ["front", "back"]
data_dir = "data"

[windows]
length = "1h"
grace = "2m"

[privacy]
budget_epsilon_per_window = 1

[privacy.footfall_door]
epsilon = 0.5

[mqtt]
port = 1883

[drivers.front_door]
kind = "fake"
port = "loop://"
door = "front"
"""


class FakeDriver:
    """A driver that validates like a real one but never touches a device."""

    kind: ClassVar[str] = "fake"

    def __init__(self, name: str, door: str) -> None:
        self.name, self.door = name, door

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> FakeDriver:
        if "port" not in options:
            raise DriverOptionError("port", "is required but missing", 'add port = "/dev/serial/by-id/..."')
        return cls(name, str(options.get("door", "")))

    def doors(self) -> list[str]:
        return [self.door]


DRIVERS = {"fake": FakeDriver}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def replace(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), DRIVERS)
    assert config.doors == ("front", "back")
    assert config.window_s == 3600 and config.grace_s == 120
    assert config.streams[0].epsilon == Fraction(1, 2)
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.topic("t1", "footfall") == "coop/v1/riverside/store-0042/t1/footfall/hourly"
    assert config.mqtt.client_id == "shopkeeper-riverside-store-0042"


BAD_CONFIGS = {
    "toml_syntax": (GOOD + "\n[agent\n", "(syntax)"),
    "missing_coop": (replace('coop = "riverside"\n', ""), "agent.coop"),
    "bad_store_name": (replace('store = "store-0042"', 'store = "Store 42"'), "agent.store"),
    "empty_doors": (replace('doors = ["front", "back"]', "doors = []"), "agent.doors"),
    "duplicate_door": (replace('doors = ["front", "back"]', 'doors = ["front", "front"]'), "agent.doors"),
    "unknown_agent_key": (replace('store = "store-0042"', 'store = "store-0042"\nshop = "x"'), "agent.shop"),
    "window_not_dividing_day": (replace('length = "1h"', 'length = "7m"'), "windows.length"),
    "window_not_a_duration": (replace('length = "1h"', 'length = "an hour"'), "windows.length"),
    "grace_longer_than_window": (replace('grace = "2m"', 'grace = "2h"'), "windows.grace"),
    "unknown_sync_source": (GOOD + '\n[clock]\nsync_source = "ntp"\n', "clock.sync_source"),
    "negative_epsilon": (replace("epsilon = 0.5", "epsilon = -1"), "privacy.footfall_door.epsilon"),
    "epsilon_not_a_number": (replace("epsilon = 0.5", 'epsilon = "half"'), "privacy.footfall_door.epsilon"),
    "plan_over_budget": (replace("epsilon = 0.5", "epsilon = 2"), "privacy.budget_epsilon_per_window"),
    "port_out_of_range": (replace("port = 1883", "port = 70000"), "mqtt.port"),
    "port_as_string": (replace("port = 1883", 'port = "1883"'), "mqtt.port"),
    "password_without_user": (replace("port = 1883", 'port = 1883\npassword = "s3cret"'), "mqtt.password"),
    "cert_without_key": (replace("port = 1883", 'port = 1883\ntls_cert_file = "/etc/c.pem"'), "mqtt.tls_cert_file"),
    "unknown_section": (GOOD + "\n[extras]\nx = 1\n", "extras"),
    "driver_without_kind": (replace('kind = "fake"\n', ""), "drivers.front_door.kind"),
    "driver_unknown_kind": (replace('kind = "fake"', 'kind = "lidar"'), "drivers.front_door.kind"),
    "driver_door_not_public": (replace('door = "front"', 'door = "side"'), "drivers.front_door.door"),
    "driver_option_error": (replace('port = "loop://"\n', ""), "drivers.front_door.port"),
    "two_drivers_on_one_door": (
        GOOD + '\n[drivers.front_door_beam]\nkind = "fake"\nport = "loop://"\ndoor = "front"\n',
        "drivers.front_door_beam.door",
    ),
    "bool_for_number": (
        replace("budget_epsilon_per_window = 1", "budget_epsilon_per_window = true"),
        "privacy.budget_epsilon_per_window",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line_naming_file_key_and_fix(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text, key = BAD_CONFIGS[case]
    path = write(tmp_path, text)
    monkeypatch.setattr("agent.config.load.installed_drivers", lambda: DRIVERS)
    code = main(["check-config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert str(path) in err and key in err and "fix:" in err


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "nope.toml", DRIVERS)


def test_check_config_exit_code_from_a_real_process(tmp_path: Path) -> None:
    path = write(tmp_path, replace("epsilon = 0.5", "epsilon = 0"))
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    # The installed drivers do not include the tests' "fake" kind: that is a second problem, listed too.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert [line.split(": ")[2] for line in errors] == ["privacy.footfall_door.epsilon", "drivers.front_door.kind"]
    assert f"{path}: 2 problems" in result.stderr


def test_sample_config_validates_with_installed_drivers(tmp_path: Path) -> None:
    sample = Path(__file__).parents[2] / "agent" / "sample-agent.toml"
    config = load_config(sample)
    assert config.doors == ("front",) and len(config.drivers) == 1


def test_check_config_refuses_an_unset_env_secret_and_reads_the_units_env_file(tmp_path: Path) -> None:
    from tests.conftest import BASE_CONFIG

    mqtt = 'port = 1883\nusername = "store-0042"\npassword = "env:SK_TEST_MQTT_PW"'
    config = write(tmp_path, BASE_CONFIG.format(port=1883).replace("port = 1883", mqtt))
    run = [sys.executable, "-m", "agent.cli", "check-config", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "SK_TEST_MQTT_PW"}
    result = subprocess.run(run, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 2
    assert "mqtt.password: env:SK_TEST_MQTT_PW is not set" in result.stderr and "agent.env" in result.stderr
    (tmp_path / "agent.env").write_text("# the unit's EnvironmentFile\nSK_TEST_MQTT_PW=s3cret\n")
    result = subprocess.run(run, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, result.stderr


def test_check_config_says_when_the_config_is_still_the_unedited_sample(tmp_path: Path) -> None:
    from importlib import resources

    sample = resources.files("agent").joinpath("sample-agent.toml").read_text(encoding="utf-8")
    path = write(tmp_path, sample)
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and "unedited sample" in result.stderr, result.stderr


def test_the_pos_examples_in_docs_load(tmp_path: Path) -> None:
    """docs/pos.md's worked examples are real configurations: each loads with the installed drivers."""
    import re as regex

    from tests.conftest import BASE_CONFIG

    text = (Path(__file__).parents[2] / "docs" / "pos.md").read_text()
    blocks = regex.findall(r"```toml\n(.*?)```", text, flags=regex.S)
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        path = tmp_path / f"pos-{i}.toml"
        path.write_text(BASE_CONFIG.format(port=1883) + "\n" + block)
        config = load_config(path)
        assert config.pos is not None and config.pos.taxonomy[-1] == "other"
        assert {p.name for p in config.streams} >= {"sales_count", "sales_revenue"}
