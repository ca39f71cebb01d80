"""Shared fixtures: a settable clock for unit tests, a minimal config, a real Mosquitto."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig, load_config
from agent.demo.local_broker import LocalBroker

BASE_CONFIG = """
[agent]
coop = "riverside"
store = "store-0042"
doors = ["front", "back"]
data_dir = "data"

[windows]
length = "1h"
grace = "2m"

[clock]
sync_source = "always"

[privacy.footfall_door]
epsilon = 0.5

[mqtt]
port = {port}
# Unit tests release on a hand-moved clock without a hub: the coop's watermark is not waited for
# (tests/agent/coop/test_watermark.py gives its gates their own waits).
watermark_wait_s = 0
"""

T0_NS = 1_763_251_200 * 1_000_000_000  # 2025-11-16T00:00:00Z


@dataclasses.dataclass
class ManualClock:
    """A clock a unit test moves by hand (never used outside tests)."""

    now_ns: int = T0_NS
    is_synced: bool = True

    def wall_ns(self) -> int:
        return self.now_ns

    def monotonic_ns(self) -> int:
        return self.now_ns - T0_NS

    def synced(self) -> bool:
        return self.is_synced

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_config(tmp_path: Path, port: int = 1883, extra: str = "", lifetime: str = "") -> AgentConfig:
    """The base config plus `extra` (whole sections); `lifetime` holds keys of [privacy] itself."""
    path = tmp_path / "agent.toml"
    text = BASE_CONFIG.format(port=port)
    if lifetime:  # keys of [privacy] itself go before its first sub-table
        keys = lifetime.strip().removeprefix("[privacy]").strip()
        text = text.replace("[privacy.footfall_door]", f"[privacy]\n{keys}\n\n[privacy.footfall_door]")
    path.write_text(text + extra)
    return load_config(path, drivers={})


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return make_config(tmp_path)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with LocalBroker(tmp_path / "broker") as running:
        yield running
