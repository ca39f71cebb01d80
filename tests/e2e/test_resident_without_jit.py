"""The resident agent never loads numba or llvmlite: counting and noise run in its kernel worker
(issue 20). A real agent process, the real simulator on ptys, a real Mosquitto, real HTTP."""

from __future__ import annotations

import re
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
