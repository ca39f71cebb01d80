"""<Device name> driver: thin I/O glue around the pure parser in protocol.py.  (TEMPLATE: replace every <...>.)"""

from __future__ import annotations

from typing import ClassVar

import serial

from agent.driver_api import DoorCount, Sink
from agent.driver_api.options import Options, integer, name, serial_port
from agent.driver_api.serial import SerialDriver

from .protocol import CounterDeltas, LineParser


class MyDeviceDriver(SerialDriver):
    """Reads count lines from one <device> and emits DoorCount deltas for its door."""

    kind: ClassVar[str] = "mydevice"  # TEMPLATE: the entry-point name, the folder name and the `kind` key
    # Each option once: from_options validates against this, fills in the defaults and names the bad key;
    # the conformance kit checks sample.toml against it. Keys are the constructor's keyword arguments.
    options: ClassVar[Options] = Options(
        serial_port(),
        name("door"),
        integer("baudrate", 9600, low=1),
    )

    def __init__(self, name: str, port: str, door: str, *, baudrate: int) -> None:
        # SerialDriver owns the reader thread, reconnects with capped backoff, health and the stop gate.
        super().__init__(name, port, baudrate)
        self.door = door
        self.deltas = CounterDeltas()  # kept across reconnects: the same device, the same counters
        self._restored = False  # the baseline stored by the previous run has been looked up
        self.parser = LineParser()

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
            if not self._restored:  # once per run: the baseline the previous run stored with its counts
                stored = sink.load_state(self.name, "counters")
                self.deltas = (CounterDeltas.from_baseline(stored) if stored else None) or self.deltas
                self._restored = True
            before = self.deltas.baseline()
            entries, exits = self.deltas.update(counts)
            # The new baseline goes with the reading, in one transaction: a crash keeps both or neither.
            state = {"counters": self.deltas.baseline()}
            if entries or exits:
                sent = self._emit(sink, DoorCount(self.door, entries, exits), state)
            else:
                sent = state["counters"] == before or self._save_state(sink, state)
            if not sent:
                return  # stop() has begun: nothing more reaches the sink
