"""<Device name> driver: thin I/O glue around the pure parser in protocol.py.  (TEMPLATE: replace every <...>.)"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import serial

from agent.driver_api import DoorCount, DriverOptionError, Sink
from agent.serial_driver import SerialDriver

from .protocol import CounterDeltas, LineParser

DOOR_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
OPTIONS = ("port", "door", "baudrate")


class MyDeviceDriver(SerialDriver):
    """Reads count lines from one <device> and emits DoorCount deltas for its door."""

    kind: ClassVar[str] = "mydevice"  # TEMPLATE: the entry-point name, the folder name and the `kind` key

    def __init__(self, name: str, port: str, door: str, *, baudrate: int = 9600) -> None:
        # SerialDriver owns the reader thread, reconnects with capped backoff, health and the stop gate.
        super().__init__(name, port, baudrate)
        self.door = door
        self.deltas = CounterDeltas()  # kept across reconnects: the same device, the same counters
        self.parser = LineParser()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> MyDeviceDriver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; {cls.kind} takes {', '.join(OPTIONS)}")
        port = options.get("port")
        if not isinstance(port, str) or not port.strip():
            raise DriverOptionError("port", "missing or empty", 'set port = "/dev/serial/by-id/usb-..."')
        door = options.get("door")
        if not isinstance(door, str) or not DOOR_NAME.match(door):
            raise DriverOptionError("door", f"{door!r} is not a door name", 'use lowercase letters, digits, "_" or "-"')
        baudrate = options.get("baudrate", 9600)
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise DriverOptionError("baudrate", f"{baudrate!r} is not a positive integer", "use 9600")
        return cls(name, port.strip(), door, baudrate=baudrate)

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text (shipped as package data next to this module)."""
        return resources.files(__package__ or __name__).joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """The one door this device watches."""
        return [self.door]

    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        """After every (re)open: resync, and re-send any setup the device may have lost."""
        self.parser.reset()  # a partial line from before the outage is gone

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        """Read until stop; an unplug raises out of here and the base reconnects."""
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            if data:
                self._handle(sink, data)

    def _handle(self, sink: Sink, data: bytes) -> None:
        bad_before = dict(self.parser.bad_reasons)
        lines = self.parser.feed(data)
        self._report_bad(sink, self.parser.bad_reasons, bad_before)
        with self._health.lock:
            self._health.frames, self._health.bad_frames = self.parser.frames, self.parser.bad_frames
        for counts in lines:
            entries, exits = self.deltas.update(counts)
            if (entries or exits) and not self._emit(sink, DoorCount(self.door, entries, exits)):
                return  # stop() has begun: nothing more reaches the sink
