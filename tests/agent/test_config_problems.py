"""check-config lists every problem of a file (file, key, fix each) and never prints a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config
from agent.errors import ConfigProblems
from tests.agent.test_config import DRIVERS, GOOD, replace

# One mistake in each of six sections, and two in one driver table.
MANY_PROBLEMS = (
    replace('store = "store-0042"', 'store = "Store 42"')
    .replace('length = "1h"', 'length = "7m"')
    .replace("port = 1883", "port = 70000\nqos = 2")
    + '\n[clock]\nsync_source = "ntp"\n'
    + "\n[extras]\nx = 1\n"
    + '\n[drivers.mat]\nkind = "mqtt_sensors"\nport = "many"\nhots = "127.0.0.1"\n'
    '[[drivers.mat.sensors]]\nsource = "zigbee2mqtt"\ndevice = "front_contact"\ntype = "contact"\nzone = "shop"\n'
)
EXPECTED_KEYS = [
    "agent.store",
    "windows.length",
    "clock.sync_source",
    "mqtt.port",
    "mqtt.qos",
    "drivers.mat.hots",
    "drivers.mat.port",
    "extras",
]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, check=False, env=env, timeout=60
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_check_config_lists_every_problem_with_file_key_and_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path, MANY_PROBLEMS.replace('kind = "fake"\nport = "loop://"\n', 'kind = "terabee"\nport = "loop://"\n')
    )
    result = run_cli("check-config", str(path))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    keys = [line.split(": ")[2] for line in errors]
    assert sorted(keys) == sorted(EXPECTED_KEYS), result.stderr
    assert all(line.startswith(f"error: {path}: ") and "; fix: " in line for line in errors)
    assert f"{path}: {len(EXPECTED_KEYS)} problems" in result.stderr


def test_load_config_raises_one_error_holding_every_problem(tmp_path: Path) -> None:
    text = replace('coop = "riverside"\n', "").replace('doors = ["front", "back"]', 'doors = ["front", "front"]')
    text = text.replace("epsilon = 0.5", "epsilon = -1") + "\n[storage]\nraw_max_mb = 0\n"
    with pytest.raises(ConfigProblems) as caught:
        load_config(write(tmp_path, text), DRIVERS)
    keys = [e.key for e in caught.value.errors]
    # The same section's next key is checked too: a missing coop does not hide the doubled door.
    assert keys == ["agent.coop", "agent.doors", "privacy.footfall_door.epsilon", "storage.raw_max_mb"]
    assert caught.value.key == "agent.coop"  # the first problem is still the error's own


def test_the_agent_refuses_to_start_on_any_problem(tmp_path: Path) -> None:
    path = write(tmp_path, replace("port = 1883", "port = 1883\nqos = 2"))
    result = run_cli("run", str(path))
    assert result.returncode == 2
    assert "mqtt.qos: is not a known key" in result.stderr
    assert not (tmp_path / "data").exists(), "nothing started: no data folder was made"


def test_unedited_sample_and_unset_secret_are_listed_with_the_files_other_problems(tmp_path: Path) -> None:
    from importlib import resources

    sample = resources.files("agent").joinpath("sample-agent.toml").read_text(encoding="utf-8")
    path = write(tmp_path, sample)
    assert run_cli("check-config", str(path)).returncode == 2
    bad = replace("port = 1883", 'port = 1883\nusername = "u"\npassword = "env:SK_TEST_UNSET_PW"\nqos = 2')
    path = write(tmp_path, bad)
    env = {k: v for k, v in os.environ.items() if k != "SK_TEST_UNSET_PW"}
    result = run_cli("check-config", str(path), env=env)
    assert result.returncode == 2
    assert "mqtt.qos" in result.stderr and "mqtt.password: env:SK_TEST_UNSET_PW is not set" in result.stderr


SECRET = "918273645"  # a password written as a number; it must never be printed
SECRET_CASES = {
    "mqtt_password_number": replace("port = 1883", f'port = 1883\nusername = "u"\npassword = {SECRET}'),
    "mqtt_password_without_user": replace("port = 1883", f"port = 1883\npassword = {SECRET}"),
    "mqtt_password_list": replace("port = 1883", f'port = 1883\nusername = "u"\npassword = [{SECRET}]'),
    "owner_page_hash_number": GOOD + f"\n[owner_page]\npassword_hash = {SECRET}\n",
    "square_signature_key_number": GOOD.replace('kind = "fake"\nport = "loop://"\ndoor = "front"\n', "")
    + f'\n[drivers.till]\nkind = "square"\nnotification_url = "https://x.example/h"\nsignature_key = {SECRET}\n'
    'access_token = "env:SQ"\n',
    "mqtt_sensors_password_number": GOOD
    + f'\n[drivers.z]\nkind = "mqtt_sensors"\nusername = "u"\npassword = {SECRET}\n'
    '[[drivers.z.sensors]]\nsource = "zigbee2mqtt"\ndevice = "d"\ntype = "contact"\ndoor = "back"\n',
    "clover_token_table": GOOD.replace('kind = "fake"\nport = "loop://"\ndoor = "front"\n', "")
    + f'\n[drivers.c]\nkind = "clover"\nauth_code = "env:A"\naccess_token = {{ v = {SECRET} }}\n',
}


@pytest.mark.parametrize("case", sorted(SECRET_CASES))
def test_no_error_path_prints_a_secret(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.driver_api import installed_drivers

    monkeypatch.setattr("agent.config.load.installed_drivers", lambda: {**installed_drivers(), **DRIVERS})
    path = write(tmp_path, SECRET_CASES[case])
    code = main(["check-config", str(path)])
    out = capsys.readouterr()
    assert code == 2, out.err
    assert SECRET not in out.err + out.out, out.err
    assert "secret, so it is not printed" in out.err or "<hidden>" in out.err, out.err


def test_a_real_process_does_not_print_a_numeric_password(tmp_path: Path) -> None:
    result = run_cli("check-config", str(write(tmp_path, SECRET_CASES["mqtt_password_number"])))
    assert result.returncode == 2
    assert "mqtt.password: expected a string, got int <hidden>" in result.stderr
    assert SECRET not in result.stdout + result.stderr
