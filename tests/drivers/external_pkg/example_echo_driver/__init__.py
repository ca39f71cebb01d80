"""Example external driver: emits one PresenceChange per configured zone when started (for the discovery test)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

from agent.driver_api import DriverHealth, DriverOptionError, PresenceChange, Sink


class EchoDriver:
    """Reports every configured zone as present once, at start."""

    kind: ClassVar[str] = "example_echo"

    def __init__(self, name: str, zones: list[str]) -> None:
        self.name, self.zones = name, zones
        self._health = DriverHealth()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> EchoDriver:
        """Validate options without any I/O."""
        zones = options.get("zones", [])
        if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
            raise DriverOptionError("zones", f"{zones!r} is not a list of names", 'use zones = ["till"]')
        return cls(name, zones)

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files(__name__).joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """No doors."""
        return []

    def start(self, sink: Sink) -> None:
        """Emit once."""
        for zone in self.zones:
            sink.emit(PresenceChange(zone, True))
        self._health.connected = True

    def stop(self) -> None:
        """Nothing runs in the background."""
        self._health.connected = False

    def health(self) -> dict[str, Any]:
        """The health snapshot."""
        return self._health.snapshot()
