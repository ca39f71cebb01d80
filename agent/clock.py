"""Clocks: the system clock with a synchronisation check, and an accelerated clock for demos and tests.

Intervals always come from a monotonic source. Wall time is used only to name windows, and a
window is released only while the clock says it is synchronised (DESIGN.md, "honest time").
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Protocol

NS_PER_S = 1_000_000_000
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


class Clock(Protocol):
    """Everything in the agent that needs time asks one of these."""

    def wall_ns(self) -> int:
        """Wall-clock time in ns since the Unix epoch (simulated time for an accelerated clock)."""

    def monotonic_ns(self) -> int:
        """A monotonic stamp in ns; never jumps, only meaningful within one boot."""

    def synced(self) -> bool:
        """True when wall time can be trusted to name windows."""

    def real_seconds(self, clock_seconds: float) -> float:
        """How many real seconds pass while this clock advances `clock_seconds`."""


def boot_id() -> str:
    """The kernel's id for this boot; monotonic stamps are comparable only within one boot id."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


@dataclasses.dataclass
class SyncCheck:
    """Decides whether the system clock is synchronised.

    `source` is "timesyncd" (the flag file systemd-timesyncd writes), "timedatectl"
    (NTPSynchronized), "always" (trust the clock, for boxes with an RTC), "never" (tests), or "auto":
    timesyncd's flag when systemd runs this machine, otherwise trust the clock.
    """

    source: str = "auto"
    flag_file: Path = TIMESYNCD_FLAG

    def __call__(self) -> bool:
        source = self.source
        if source == "auto":
            source = "timesyncd" if Path("/run/systemd/system").is_dir() else "always"
        if source == "always":
            return True
        if source == "never":
            return False
        if source == "timesyncd":
            return self.flag_file.exists()
        if source == "timedatectl":
            exe = shutil.which("timedatectl")
            if exe is None:
                return False
            out = subprocess.run(
                [exe, "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            return out.stdout.strip() == "yes"
        raise ValueError(f"unknown clock sync source {self.source!r}")


class SystemClock:
    """The machine's own clocks."""

    SYNC_CACHE_NS = NS_PER_S  # re-check at most once a second: stamping must stay cheap per reading

    def __init__(self, sync_check: SyncCheck | None = None) -> None:
        self._sync_check = sync_check or SyncCheck()
        self._sync_cached = False
        self._sync_checked_ns: int | None = None

    def wall_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def synced(self) -> bool:
        now = time.monotonic_ns()
        if self._sync_checked_ns is None or now - self._sync_checked_ns >= self.SYNC_CACHE_NS:
            self._sync_cached = self._sync_check()
            self._sync_checked_ns = now
        return self._sync_cached

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds


@dataclasses.dataclass(frozen=True)
class AcceleratedClock:
    """Simulated time that runs `factor` times faster than real time.

    Simulated wall time is `origin_ns + (real_now - anchor_ns) * factor`. Two processes given the
    same origin, anchor and factor agree on simulated time, which is how the simulator and the agent
    share one accelerated day. The anchor is a real wall-clock instant (ns since the epoch).

    For clock tests, `offset_file` (simulated ns added to wall time only, as a wrong or jumping system
    clock would) and `sync_file` (synchronised while it exists) can be changed while a process runs.
    """

    origin_ns: int
    factor: float
    anchor_ns: int
    is_synced: bool = True
    offset_file: str = ""
    sync_file: str = ""

    @classmethod
    def starting_now(
        cls, origin_ns: int, factor: float, offset_file: str = "", sync_file: str = ""
    ) -> AcceleratedClock:
        """A clock whose simulated time is `origin_ns` right now."""
        return cls(
            origin_ns=origin_ns, factor=factor, anchor_ns=time.time_ns(), offset_file=offset_file, sync_file=sync_file
        )

    def _elapsed_ns(self) -> int:
        return int((time.time_ns() - self.anchor_ns) * self.factor)

    def _offset_ns(self) -> int:
        if not self.offset_file:
            return 0
        try:
            return int(Path(self.offset_file).read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def wall_ns(self) -> int:
        return self.origin_ns + self._elapsed_ns() + self._offset_ns()

    def monotonic_ns(self) -> int:
        # Within a test run the real wall clock does not jump, so elapsed simulated time is monotonic;
        # the offset (a wrong system clock) never reaches it, exactly like CLOCK_MONOTONIC.
        return self._elapsed_ns()

    def synced(self) -> bool:
        if self.sync_file:
            return Path(self.sync_file).exists()
        return self.is_synced

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / self.factor

    def real_ns_at(self, sim_ns: int) -> int:
        """The real wall-clock instant (ns) at which simulated time reaches `sim_ns` (offset ignored)."""
        return self.anchor_ns + int((sim_ns - self.origin_ns) / self.factor)

    def env(self) -> dict[str, str]:
        """Environment variables that recreate this clock in another process."""
        return {
            "SHOPKEEPER_CLOCK_ORIGIN_NS": str(self.origin_ns),
            "SHOPKEEPER_CLOCK_FACTOR": repr(self.factor),
            "SHOPKEEPER_CLOCK_ANCHOR_NS": str(self.anchor_ns),
            "SHOPKEEPER_CLOCK_OFFSET_FILE": self.offset_file,
            "SHOPKEEPER_CLOCK_SYNC_FILE": self.sync_file,
        }

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AcceleratedClock | None:
        """The clock described by `env()`, or None when those variables are not set."""
        environ = dict(os.environ if environ is None else environ)
        if "SHOPKEEPER_CLOCK_FACTOR" not in environ:
            return None
        return cls(
            origin_ns=int(environ["SHOPKEEPER_CLOCK_ORIGIN_NS"]),
            factor=float(environ["SHOPKEEPER_CLOCK_FACTOR"]),
            anchor_ns=int(environ["SHOPKEEPER_CLOCK_ANCHOR_NS"]),
            offset_file=environ.get("SHOPKEEPER_CLOCK_OFFSET_FILE", ""),
            sync_file=environ.get("SHOPKEEPER_CLOCK_SYNC_FILE", ""),
        )
