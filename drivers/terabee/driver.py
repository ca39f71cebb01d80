"""Terabee Evo People Counter driver: thin I/O glue around the pure parser in protocol.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import serial

from agent.driver_api import DoorCount, DriverOptionError, Sink
from agent.serial_driver import SerialDriver
from drivers.terabee.protocol import (
    CounterDeltas,
    CountFrame,
    TerabeeParser,
    bptd_mode_command,
    reset_counters_command,
)

DOOR_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
OPTIONS = ("port", "door", "baudrate", "swap_direction", "frame_length", "reset_counters_on_start")
READ_TIMEOUT_S = 0.2


class TerabeeDriver(SerialDriver):
    """Reads "PC" count frames from one Terabee sensor and emits DoorCount deltas for its door."""

    kind: ClassVar[str] = "terabee"

    def __init__(
        self,
        name: str,
        port: str,
        door: str,
        *,
        baudrate: int = 115200,
        swap_direction: bool = False,
        frame_length: int | None = None,
        reset_counters_on_start: bool = True,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        super().__init__(
            name,
            port,
            baudrate,
            read_timeout_s=READ_TIMEOUT_S,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
        )
        self.door, self.swap_direction, self.frame_length = door, swap_direction, frame_length
        self.reset_counters_on_start = reset_counters_on_start
        self.deltas = CounterDeltas()  # kept across reconnects: the same device, the same counters
        self.parser = TerabeeParser(frame_length)

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> TerabeeDriver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; terabee takes {', '.join(OPTIONS)}")
        port = options.get("port")
        if not isinstance(port, str) or not port.strip():
            raise DriverOptionError(
                "port", "missing or empty", 'set port = "/dev/serial/by-id/usb-..." (or a pyserial URL)'
            )
        door = options.get("door")
        if not isinstance(door, str) or not DOOR_NAME.match(door):
            raise DriverOptionError(
                "door",
                f"{door!r} is not a door name",
                'use lowercase letters, digits, "_" or "-", e.g. "front"',
            )
        baudrate = options.get("baudrate", 115200)
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise DriverOptionError("baudrate", f"{baudrate!r} is not a positive integer", "use 115200 (the default)")
        swap = options.get("swap_direction", False)
        if not isinstance(swap, bool):
            raise DriverOptionError("swap_direction", f"{swap!r} is not true or false", "use true or false")
        reset = options.get("reset_counters_on_start", True)
        if not isinstance(reset, bool):
            raise DriverOptionError("reset_counters_on_start", f"{reset!r} is not true or false", "use true or false")
        frame_length = options.get("frame_length", "auto")
        if frame_length not in ("auto", 11, 15) or isinstance(frame_length, bool):
            raise DriverOptionError("frame_length", f"{frame_length!r} is not allowed", 'use "auto", 11 or 15')
        return cls(
            name,
            port.strip(),
            door,
            baudrate=baudrate,
            swap_direction=swap,
            frame_length=None if frame_length == "auto" else int(frame_length),
            reset_counters_on_start=reset,
        )

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.terabee").joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """The one door this sensor watches."""
        return [self.door]

    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        self.parser.reset()  # resync on the next header; a partial frame from before is gone
        port.write(bptd_mode_command())  # the mode may be lost after a power cycle: sent on every connect
        if self.reset_counters_on_start and first:
            # The baseline starts at zero, so the device's counters must too (see CounterDeltas).
            port.write(reset_counters_command())

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        parser = self.parser
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            bad_before = dict(parser.bad_reasons)
            frames = parser.feed(data) if data else parser.flush()
            self._handle(sink, parser, frames, bad_before)

    def _handle(self, sink: Sink, parser: TerabeeParser, frames: list[CountFrame], bad_before: dict[str, int]) -> None:
        self._report_bad(sink, parser.bad_reasons, bad_before)
        with self._health.lock:
            self._health.frames = parser.frames
            self._health.bad_frames = parser.bad_frames
        for frame in frames:
            count_in, count_out = self.deltas.update(frame)
            entries, exits = (count_out, count_in) if self.swap_direction else (count_in, count_out)
            if (entries or exits) and not self._emit(sink, DoorCount(self.door, entries, exits)):
                return
