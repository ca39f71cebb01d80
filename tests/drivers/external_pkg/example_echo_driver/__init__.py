"""Example external driver: emits one PresenceChange per configured zone when started (for the discovery test)."""

from __future__ import annotations

from typing import ClassVar

from agent.driver_api import BackgroundDriver, Options, PresenceChange, Sink
from agent.driver_api.options import names


class EchoDriver(BackgroundDriver):
    """Reports every configured zone as present once, at start."""

    kind: ClassVar[str] = "example_echo"
    options: ClassVar[Options] = Options(names("zones"))

    def __init__(self, name: str, *, zones: list[str]) -> None:
        super().__init__(name)
        self.zones = zones

    def _session(self, sink: Sink) -> None:
        """Emit once, then idle until stop()."""
        for zone in self.zones:
            self._emit(sink, PresenceChange(zone, True))
        self._stop.wait()
