"""The resident agent never loads numba or llvmlite: counting and noise run in its kernel worker, and a
thermal array is counted by the NumPy counter (issue 20). A real agent process, the real simulators on ptys,
a real Mosquitto, real HTTP. (An agent in secure-aggregation rounds: tests/e2e/test_secure_aggregation.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from agent.demo.local_broker import LocalBroker
from tests.e2e.harness import Shop, wait_until

JIT_LIBRARIES = ("llvmlite", "numba")


def metrics(shop: Shop) -> dict[str, float]:
    """The agent's unlabelled /metrics samples, read over real HTTP."""
    match = re.search(r"health and metrics on (http://\S+)/health", shop.agent_log_full())
    assert match, "the agent logs where its health endpoint is"
    with urllib.request.urlopen(match.group(1) + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {name: float(value) for name, value in re.findall(r"^(shopkeeper_\w+) (\S+)$", text, re.M)}


def jit_mapped(pid: int) -> list[str]:
    """Shared objects of numba or llvmlite mapped into the process (what an import would leave)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines() if any(n in line for n in JIT_LIBRARIES)})


@pytest.mark.slow
def test_the_resident_agent_has_no_jit_after_start_and_after_releases(tmp_path: Path) -> None:
    with LocalBroker(tmp_path / "broker") as broker:
        shop = Shop(tmp_path / "shop", broker.port, factor=1440, hours=3)
        try:
            shop.start_agent()
            assert shop.agent is not None
            wait_until(lambda: "health and metrics on" in shop.agent_log_full(), 30, "the health endpoint")
            started = metrics(shop)
            assert started["shopkeeper_jit_resident"] == 0, started
            assert jit_mapped(shop.agent.pid) == []
            shop.start_sim()
            wait_until(
                lambda: shop.scalar("SELECT count(DISTINCT window_start_ns) FROM release_ledger") >= 2,
                60,
                "two released windows",
                shop.agent_log,
            )
            after = metrics(shop)
            assert after["shopkeeper_jit_resident"] == 0, after
            assert after["shopkeeper_kernel_worker_starts_total"] >= 1, after
            assert after["shopkeeper_kernel_worker_failures_total"] == 0, after
            assert jit_mapped(shop.agent.pid) == []
            assert shop.agent.poll() is None, shop.agent_log()
        finally:
            shop.stop()
    assert re.search(r"released window \S+ \(.*\) in \d+\.\d{3} s", shop.agent_log_full())


def thermal_shop(tmp_path: Path, broker_port: int) -> tuple[Shop, Path]:
    """The demo shop with its back door under a GY-MCU90640 instead of a Terabee."""
    shop = Shop(tmp_path / "shop", broker_port, factor=1440, hours=3)
    link = shop.workdir / "dev" / "thermal-back"
    terabee_back = f'[drivers.back_door]\nkind = "terabee"\nport = "{shop.links["back"]}"\ndoor = "back"\n'
    text = shop.config_path.read_text()
    assert terabee_back in text
    shop.config_path.write_text(
        text.replace(terabee_back, f'[drivers.back_door]\nkind = "thermal90640"\nport = "{link}"\ndoor = "back"\n')
    )
    shop.links = {"front": shop.links["front"]}  # the Terabee simulator serves the front door alone
    return shop, link


def thermal_frames(shop: Shop) -> int:
    match = re.search(r"health and metrics on (http://\S+)/health", shop.agent_log_full())
    assert match
    try:
        with urllib.request.urlopen(match.group(1) + "/health", timeout=5) as response:
            health = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while degraded is still an answer
        health = json.loads(exc.read())
    return int(health["drivers"]["back_door"].get("frames", 0))


@pytest.mark.slow
def test_an_agent_counting_a_thermal_array_has_no_jit_after_start_and_after_frames(tmp_path: Path) -> None:
    with LocalBroker(tmp_path / "broker") as broker:
        shop, link = thermal_shop(tmp_path, broker.port)
        # Real time (the module's own 4 frames a second): single walkers, one crossing every few seconds.
        thermal = subprocess.Popen(
            [sys.executable, "-m", "firmware_sim", "thermal90640", "--link", str(link), "--scenario",
             "single_walkers", "--fps", "4", "--repeat", "3"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            shop.start_agent()
            assert shop.agent is not None
            wait_until(lambda: "health and metrics on" in shop.agent_log_full(), 30, "the health endpoint")
            assert metrics(shop)["shopkeeper_jit_resident"] == 0
            assert jit_mapped(shop.agent.pid) == []
            shop.start_sim()
            wait_until(lambda: thermal_frames(shop) >= 40, 60, "40 thermal frames", shop.agent_log)
            wait_until(
                lambda: shop.scalar("SELECT COALESCE(SUM(entries + exits), 0) FROM events WHERE door = 'back'") >= 2,
                60,
                "two people counted under the thermal array",
                shop.agent_log,
            )
            wait_until(
                lambda: shop.scalar("SELECT count(DISTINCT window_start_ns) FROM release_ledger") >= 1,
                60,
                "a released window",
                shop.agent_log,
            )
            after = metrics(shop)
            assert after["shopkeeper_jit_resident"] == 0, after
            assert jit_mapped(shop.agent.pid) == []
            assert shop.agent.poll() is None, shop.agent_log()
        finally:
            thermal.terminate()
            thermal.wait(30)
            shop.stop()
