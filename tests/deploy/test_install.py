"""deploy/install.sh into a temporary prefix: the installed agent runs against the Terabee simulator,
talks the systemd notify protocol, starts on a warm numba cache, and a second install changes nothing."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from agent.clock import NS_PER_S, AcceleratedClock
from agent.demo import simulator_command, write_demo_config
from agent.demo.local_broker import LocalBroker
from tests.mqtt_watch import Subscriber

REPO = Path(__file__).resolve().parents[2]
START = dt.datetime(2026, 11, 16, 11, tzinfo=dt.UTC)  # a Monday, open hours
WARM_PROBE = """
import numpy as np
from agent.kernels.footfall import count_footfall
from agent.privacy.sampler import discrete_laplace
idx = np.zeros(3, dtype=np.int64)
count_footfall(idx, idx, idx + 1, idx, 1, 2)
discrete_laplace(2, 1, 10)
"""

# Prints the import names of the extras' and the tests' packages that are not installed.
MISSING_PROBE = """
import importlib.util
print(*[m for m in ("jsonschema", "psycopg", "gpiozero", "pytest") if importlib.util.find_spec(m) is None])
"""


def install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [
            str(REPO / "deploy" / "install.sh"),
            "--prefix",
            str(root / "opt"),
            "--etc-dir",
            str(root / "etc"),
            "--state-dir",
            str(root / "state"),
            "--no-systemd",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def run_installed_agent(root: Path, config: Path, broker: LocalBroker) -> tuple[list[bytes], int]:
    """Run `<prefix>/venv/bin/shopkeeper run` over the simulator until a summary arrives; returns the
    notify datagrams and the agent's exit code after SIGTERM."""
    bin_dir = root / "opt" / "venv" / "bin"
    links = {"front": root / "dev" / "terabee-front"}
    clock = AcceleratedClock.starting_now(int(START.timestamp()) * NS_PER_S, 720.0)  # an hour in 5 s
    env = {**os.environ, **clock.env(), "NUMBA_CACHE_DIR": str(root / "state" / "numba-cache")}
    sim_cmd = simulator_command(links, START, 3, 7, root / "truth.json", 720.0)
    sim = subprocess.Popen([str(bin_dir / "python"), *sim_cmd[1:]], env=env, cwd=root)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(root / "notify.sock"))
    notify.settimeout(30)
    sub = Subscriber(broker.port, "coop/v1/#")
    agent = subprocess.Popen(
        [str(bin_dir / "shopkeeper"), "run", str(config)],
        env={**env, "NOTIFY_SOCKET": str(root / "notify.sock"), "WATCHDOG_USEC": "1000000"},
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    datagrams: list[bytes] = []
    try:
        while b"WATCHDOG=1" not in datagrams:
            datagrams.append(notify.recv(256))
        sub.wait_for(lambda: len(sub.summaries()) >= 1, 40, "a summary from the installed agent")
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
        sim.kill()
        sim.wait(10)
        notify.close()
        sub.close()
    assert code == 0, agent.stderr.read().decode() if agent.stderr else ""
    return datagrams, code


@pytest.mark.slow
def test_installed_agent_runs_and_a_second_install_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path
    started = time.monotonic()
    install(root)
    first_install_s = time.monotonic() - started
    shopkeeper = root / "opt" / "venv" / "bin" / "shopkeeper"
    sample = subprocess.run([str(shopkeeper), "sample-config"], capture_output=True, text=True, check=True).stdout
    written = (root / "etc" / "agent.toml").read_text()
    assert written == sample.replace('# data_dir = "/var/lib/shopkeeper"', f'data_dir = "{root / "state"}"')

    # The first start compiles nothing: every kernel loads from the cache install.sh filled.
    probe = subprocess.run(
        [str(root / "opt" / "venv" / "bin" / "python"), "-c", WARM_PROBE],
        env={**os.environ, "NUMBA_CACHE_DIR": str(root / "state" / "numba-cache"), "NUMBA_DEBUG_CACHE": "1"},
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    )
    assert "data loaded from" in probe.stdout and "data saved to" not in probe.stdout, probe.stdout

    # The shop owner's own configuration: the simulator's door, the private broker.
    (root / "dev").mkdir()
    with LocalBroker(root / "broker") as broker:
        demo = write_demo_config(root, broker.port, {"front": root / "dev" / "terabee-front"}, "1h", "2m")
        config = root / "etc" / "agent.toml"
        config.write_text(demo.read_text().replace(f'data_dir = "{root / "data"}"', f'data_dir = "{root / "state"}"'))
        owner_config = config.read_bytes()
        datagrams, _code = run_installed_agent(root, config, broker)
    assert datagrams[0] == b"READY=1"
    with sqlite3.connect(root / "state" / "shopkeeper.db") as db:
        events = db.execute("SELECT count(*) FROM events WHERE door = 'front'").fetchone()[0]
        released = db.execute("SELECT count(*) FROM release_ledger").fetchone()[0]
    assert events > 0 and released >= 1

    started = time.monotonic()
    result = install(root)
    second_install_s = time.monotonic() - started
    assert "keeping" in result.stdout
    assert config.read_bytes() == owner_config
    check = subprocess.run([str(shopkeeper), "check-config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    print(f"install.sh: first {first_install_s:.1f} s, second {second_install_s:.1f} s")

    # The box has the agent alone: no hub, no GPIO library, and the hub says which extra it needs.
    python = root / "opt" / "venv" / "bin" / "python"
    absent = subprocess.run([str(python), "-c", MISSING_PROBE], capture_output=True, text=True, check=True)
    assert absent.stdout.split() == ["jsonschema", "psycopg", "gpiozero", "pytest"], absent.stdout
    hub = subprocess.run([str(shopkeeper), "hub", "run", str(root / "hub.toml")], capture_output=True, text=True)
    assert hub.returncode == 2 and "pip install 'shopkeeper[hub]'" in hub.stderr, hub.stderr
    # --extras adds an extra to the same venv, and keeps the owner's configuration.
    install(root, "--extras", "gpio")
    with_gpio = subprocess.run([str(python), "-c", MISSING_PROBE], capture_output=True, text=True, check=True)
    assert with_gpio.stdout.split() == ["jsonschema", "psycopg", "pytest"], with_gpio.stdout
    assert config.read_bytes() == owner_config

    # Uninstall keeps configuration and data; --purge removes them.
    install(root, "--uninstall")
    assert not (root / "opt").exists()
    assert config.read_bytes() == owner_config and (root / "state" / "shopkeeper.db").exists()
    install(root, "--uninstall", "--purge")
    assert not (root / "etc").exists() and not (root / "state").exists()


def test_uninstall_refuses_a_prefix_install_sh_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "precious").write_text("not ours")
    result = subprocess.run(
        [
            str(REPO / "deploy" / "install.sh"),
            "--prefix",
            str(tmp_path / "opt"),
            "--etc-dir",
            str(tmp_path / "etc"),
            "--state-dir",
            str(tmp_path / "state"),
            "--no-systemd",
            "--uninstall",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert (tmp_path / "opt" / "precious").exists()
