"""Terabee Evo People Counter driver: thin I/O glue around the pure parser in protocol.py."""

from __future__ import annotations

import logging
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
    state_key,
)

READ_TIMEOUT_S = 0.2
log = logging.getLogger(__name__)


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
        # Per sensor (state key), kept across reconnects: the same device, the same counters. Each
        # baseline is also stored with the readings it accounts for, so a restart counts only the delta.
        self.sensors: dict[str, CounterDeltas] = {}
        self._key = state_key(None)
        self._saved: dict[str, str] = {}  # the baseline last handed to the sink, per sensor
        self._counters_reset = False  # we just reset the device: the next sensor seen starts from zero
        self.parser = TerabeeParser(frame_length)

    @property
    def deltas(self) -> CounterDeltas:
        """The counter deltas of the sensor seen last."""
        return self.sensors.get(self._key) or CounterDeltas()

    def doors(self) -> list[str]:
        """The one door this sensor watches."""
        return [self.door]

    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        self.parser.reset()  # resync on the next header; a partial frame from before is gone
        port.write(bptd_mode_command())  # the mode may be lost after a power cycle: sent on every connect
        if self.reset_counters_on_start and first:
            # The baseline starts at zero, so the device's counters must too (see CounterDeltas).
            port.write(reset_counters_command())
            self._counters_reset = True

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
            key = state_key(frame.sensor_id)
            deltas = self.sensors.get(key) or self._first_sight(sink, key, frame)
            self._key = key
            count_in, count_out = deltas.update(frame)
            entries, exits = (count_out, count_in) if self.swap_direction else (count_in, count_out)
            baseline = deltas.baseline()
            state = {key: baseline} if baseline != self._saved.get(key) else None
            if entries or exits:
                sent = self._emit(sink, DoorCount(self.door, entries, exits), state)
            else:
                sent = state is None or self._save_state(sink, state)
            if not sent:
                return  # stop() has begun: nothing more reaches the sink
            self._saved[key] = baseline

    def _first_sight(self, sink: Sink, key: str, frame: CountFrame) -> CounterDeltas:
        """The deltas of a sensor this run has not seen: from zero after our reset, else its stored
        baseline, else (no baseline anywhere) one taken from this frame, which then counts nothing."""
        if self._counters_reset:
            deltas = CounterDeltas(sensor_id=frame.sensor_id)
        else:
            stored = sink.load_state(self.name, key)  # a DriverError here is an outage: reported, retried
            restored = None if stored is None else CounterDeltas.from_baseline(stored, frame.sensor_id)
            if restored is not None and stored is not None:
                self._saved[key] = stored
            else:
                log.info(
                    "%s: no stored baseline for %s; its counters (%d in, %d out) become the baseline and"
                    " the crossings before them are not counted",
                    self.name,
                    key,
                    frame.count_in,
                    frame.count_out,
                )
            deltas = restored or CounterDeltas(last_in=None)
        self._counters_reset = False
        self.sensors[key] = deltas
        return deltas
