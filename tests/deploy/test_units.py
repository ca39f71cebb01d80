"""The systemd units: valid, hardened to a low exposure score, and honest about numba's JIT."""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
INSTALLED_EXE = "/opt/shopkeeper/venv/bin/shopkeeper"


def systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing; deploy/bootstrap.sh installs Debian's systemd package")
    return exe


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("name", ["shopkeeper-agent.service", "shopkeeper-hub.service"])
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    # verify insists the ExecStart binary exists: point it at this venv's shopkeeper, change nothing else.
    text = (UNITS / name).read_text()
    assert INSTALLED_EXE in text
    (tmp_path / name).write_text(text.replace(INSTALLED_EXE, str(Path(sys.executable).parent / "shopkeeper")))
    result = subprocess.run(
        [systemd_analyze(), "verify", str(tmp_path / name)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys and bad values are only warnings


@pytest.mark.parametrize("name", ["shopkeeper-agent.service", "shopkeeper-hub.service"])
def test_unit_exposure_is_at_most_2_5(tmp_path: Path, name: str) -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", str(UNITS / name)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5, result.stdout


def test_agent_unit_keeps_the_notify_and_watchdog_contract() -> None:
    s = unit_settings("shopkeeper-agent.service")
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"] and s["WatchdogSec"] == ["30"]
    assert s["ExecStart"] == [f"{INSTALLED_EXE} run /etc/shopkeeper/agent.toml"]
    assert "NUMBA_CACHE_DIR=/var/lib/shopkeeper/numba-cache" in s["Environment"]
    assert s["User"] == ["shopkeeper"] and s["StateDirectory"] == ["shopkeeper"]
    assert s["DevicePolicy"] == ["closed"] and "char-ttyUSB rw" in s["DeviceAllow"]


def test_hub_unit_starts_a_command_the_hub_accepts() -> None:
    from hub.cli import build_parser

    exe, *args = unit_settings("shopkeeper-hub.service")["ExecStart"][0].split()
    assert exe == INSTALLED_EXE and args[0] == "hub"
    parsed = build_parser().parse_args(args[1:])  # argparse exits 2 on a command the hub does not know
    assert parsed.command == "run" and parsed.config == "%d/hub.toml"  # %d: the credentials directory


def test_numba_cannot_even_load_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """Why the units leave MemoryDenyWriteExecute off: with the kernel's equivalent W^X rule
    (prctl PR_SET_MDWE), importing numba fails, warm cache or not."""
    assert unit_settings("shopkeeper-agent.service")["MemoryDenyWriteExecute"] == ["no"]
    libc = ctypes.CDLL(None, use_errno=True)
    probe = "import ctypes; assert ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) == 0; import numba"
    if libc.prctl(66, 0, 0, 0, 0) < 0:  # PR_GET_MDWE: needs Linux 6.3
        pytest.skip("this kernel has no PR_SET_MDWE")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert "cannot allocate executable memory" in result.stderr
    control = subprocess.run([sys.executable, "-c", "import numba"], capture_output=True, text=True, cwd=tmp_path)
    assert control.returncode == 0, control.stderr


def exec_start_argv(name: str, substitutions: dict[str, str]) -> list[str]:
    """The unit's own ExecStart command line, with its install paths pointed elsewhere."""
    (line,) = unit_settings(name)["ExecStart"]
    for old, new in substitutions.items():
        line = line.replace(old, new)
    return shlex.split(line)


def test_hub_unit_exec_start_runs_the_hub_with_config_as_credential(tmp_path: Path) -> None:
    """ExecStart as written (the `run` subcommand, the config read from the credentials directory %d,
    a relative database in $STATE_DIRECTORY) starts a hub that subscribes, and stops cleanly."""
    from agent.demo.local_broker import LocalBroker
    from tests.hub.conftest import wait_for

    credentials, state = tmp_path / "credentials", tmp_path / "state"
    credentials.mkdir(mode=0o700)
    state.mkdir()
    settings = unit_settings("shopkeeper-hub.service")
    loaded = dict(item.split(":", 1) for item in settings["LoadCredential"])
    assert loaded["hub.toml"] == "/etc/shopkeeper/hub.toml", "the config must arrive as a credential"
    assert settings["StateDirectory"] == ["shopkeeper-hub"]
    with LocalBroker(tmp_path / "broker") as broker:
        (credentials / "hub.toml").write_text(
            f'[hub]\ncoop = "riverside"\ndashboard = ""\n\n[mqtt]\nport = {broker.port}\n'
        )
        (credentials / "hub.toml").chmod(0o400)
        argv = exec_start_argv(
            "shopkeeper-hub.service", {INSTALLED_EXE: shutil_which_shopkeeper(), "%d": str(credentials)}
        )
        assert argv[1:3] == ["hub", "run"]
        log = tmp_path / "hub.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=out, cwd=state, env={**os.environ, "STATE_DIRECTORY": str(state)}
            )
        try:
            wait_for(lambda: "subscribing to" in log.read_text(errors="replace"), 30, "the hub to subscribe")
            assert (state / "hub.db").exists(), "a relative database belongs in the state directory"
            assert not (credentials / "hub.db").exists()
        finally:
            process.terminate()
            code = process.wait(30)
    assert code == 0, log.read_text(errors="replace")


def test_agent_unit_exec_start_runs_the_agent(tmp_path: Path) -> None:
    """The agent unit's ExecStart, with /etc/shopkeeper pointed at a temporary folder, starts an agent
    that connects to the broker and exits 0 on SIGTERM."""
    from agent.demo import write_demo_config
    from agent.demo.local_broker import LocalBroker
    from tests.hub.conftest import wait_for

    etc = tmp_path / "etc"
    etc.mkdir()
    with LocalBroker(tmp_path / "broker") as broker:
        config = write_demo_config(etc, broker.port, {"front": etc / "no-such-port-front", "back": etc / "no-back"})
        assert config == etc / "agent.toml"
        argv = exec_start_argv(
            "shopkeeper-agent.service", {INSTALLED_EXE: shutil_which_shopkeeper(), "/etc/shopkeeper": str(etc)}
        )
        assert argv[1:] == ["run", str(etc / "agent.toml")]
        log = tmp_path / "agent.log"
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=out, cwd=tmp_path)
        try:
            wait_for(lambda: "connected to" in log.read_text(errors="replace"), 60, "the agent to connect")
        finally:
            process.terminate()
            code = process.wait(30)
    assert code == 0, log.read_text(errors="replace")


def shutil_which_shopkeeper() -> str:
    return str(Path(sys.executable).parent / "shopkeeper")
