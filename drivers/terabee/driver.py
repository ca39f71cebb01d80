"""Terabee Evo People Counter driver: thin I/O glue around the pure parser in protocol.py."""

from __future__ import annotations

from typing import ClassVar

import serial

from agent.driver_api import DoorCount, Sink
from agent.driver_api.options import Options, choice, flag, integer, name, serial_port
from agent.driver_api.serial import SerialDriver
from drivers.terabee.protocol import (
    CounterDeltas,
    CountFrame,
    TerabeeParser,
    bptd_mode_command,
    reset_counters_command,
)

READ_TIMEOUT_S = 0.2


class TerabeeDriver(SerialDriver):
    """Reads "PC" count frames from one Terabee sensor and emits DoorCount deltas for its door."""

    kind: ClassVar[str] = "terabee"
    options: ClassVar[Options] = Options(
        serial_port(),
        name("door"),
        integer("baudrate", 115200, low=1),
        flag("swap_direction", False),
        choice("frame_length", "auto", ("auto", 11, 15), convert=lambda v: None if v == "auto" else int(v)),
        flag("reset_counters_on_start", True),
    )

    def __init__(
        self,
        name: str,
        port: str,
        door: str,
        *,
        baudrate: int,
        swap_direction: bool,
        frame_length: int | None,
        reset_counters_on_start: bool,
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
