"""Modbus RTU people counter driver: polls FC03 and emits DoorCount deltas; I/O glue around protocol.py."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import serial

from agent.driver_api import DoorCount, Sink
from agent.driver_api.options import Options, choice, flag, integer, name, number, serial_port
from agent.driver_api.serial import SerialDriver
from drivers.modbus_counter.protocol import (
    REGISTER_COUNT,
    CounterDeltas,
    ExceptionReply,
    RegisterReply,
    ReplyParser,
    decode_counter,
    read_request,
    state_key,
)

PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
OFFLINE_AFTER_TIMEOUTS = 3
log = logging.getLogger(__name__)


class ModbusCounterDriver(SerialDriver):
    """Polls one Modbus RTU counter (our register map) and emits DoorCount deltas for its door."""

    kind: ClassVar[str] = "modbus_counter"
    options: ClassVar[Options] = Options(
        serial_port(),
        name("door"),
        integer("slave", 1, low=1, high=247, fix="use the address set on the unit"),
        integer("baudrate", 19200, low=1),
        choice("parity", "E", tuple(PARITIES), fix='use "E" (the Modbus default)'),
        number("poll_interval_s", 1.0, low=0.01, high=3600),
        number("response_timeout_s", 0.5, low=0.01, high=10),
        flag("swap_direction", False),
    )

    def __init__(
        self,
        name: str,
        port: str,
        door: str,
        *,
        slave: int,
        baudrate: int,
        parity: str,
        poll_interval_s: float,
        response_timeout_s: float,
        swap_direction: bool,
    ) -> None:
        super().__init__(name, port, baudrate, read_timeout_s=0.02, serial_options={"parity": PARITIES[parity]})
        self.door, self.slave, self.parity = door, slave, parity
        self.poll_interval_s, self.response_timeout_s = poll_interval_s, response_timeout_s
        self.swap_direction = swap_direction
        self.parser = ReplyParser(slave)
        # Kept across reconnects (the same device, the same counters) and stored with each reading, so
        # an agent restart counts only the crossings since the last stored reading.
        self.deltas = CounterDeltas()
        self.state_key = state_key(slave)
        self._restored = False  # the stored baseline has been looked up
        self._saved = ""  # the baseline last handed to the sink
        self.firmware = ""
        self.status = 0
        self.timeouts = 0
        self.exceptions = 0
        self._in_exception = False

    def doors(self) -> list[str]:
        """The one door this counter watches."""
        return [self.door]

    def _health_extra(self) -> dict[str, Any]:
        return {"timeouts": self.timeouts, "exceptions": self.exceptions, "status": self.status,
                "firmware": self.firmware}  # fmt: skip

    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        self.parser.reset()  # bytes from before the unplug are not a reply to anything

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        self._poll_forever(sink, port, self.parser)

    def _poll_forever(self, sink: Sink, port: serial.SerialBase, parser: ReplyParser) -> None:
        next_poll = time.monotonic()
        silent = 0  # consecutive polls without a reply
        while not self._stop.is_set():
            reply = self._transact(sink, port, parser)
            if reply is None:
                silent += 1
                self.timeouts += 1
                if silent == OFFLINE_AFTER_TIMEOUTS:
                    self._set_health(connected=False, last_error=f"no reply from slave {self.slave}")
                    self._report(sink, "problem", f"{self.port}: slave {self.slave} does not reply; check wiring")
            else:
                if silent >= OFFLINE_AFTER_TIMEOUTS:
                    self._set_health(connected=True)
                silent = 0
                self._handle(sink, reply, parser)
            next_poll = max(next_poll + self.poll_interval_s, time.monotonic())
            if self._stop.wait(max(0.0, next_poll - time.monotonic())):
                return

    def _transact(
        self, sink: Sink, port: serial.SerialBase, parser: ReplyParser
    ) -> RegisterReply | ExceptionReply | None:
        """Send one FC03 request and wait for its reply (None on timeout)."""
        port.reset_input_buffer()
        port.write(read_request(self.slave, 0, REGISTER_COUNT))
        deadline = time.monotonic() + self.response_timeout_s
        bad_before = dict(parser.bad_reasons)
        reply = None
        while reply is None and time.monotonic() < deadline and not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            if data:
                replies = parser.feed(data)
                reply = replies[0] if replies else None
        parser.flush()  # anything left over is not a reply to this request
        self._report_bad(sink, parser.bad_reasons, bad_before)
        with self._health.lock:
            self._health.frames = parser.frames
            self._health.bad_frames = parser.bad_frames
        return reply

    def _handle(self, sink: Sink, reply: RegisterReply | ExceptionReply, parser: ReplyParser) -> None:
        if isinstance(reply, ExceptionReply):
            self.exceptions += 1
            if not self._in_exception:  # once per run of exception replies, not once per poll
                self._report(sink, "problem", f"{self.port}: slave {self.slave} answered {reply.reason}; check the map")
            self._in_exception = True
            return
        self._in_exception = False
        state = decode_counter(reply.registers)
        if state is None:
            parser.count_bad("register map")
            self._set_health(bad_frames=parser.bad_frames)
            self._report(sink, "bad_frame", "register map")
            return
        self.firmware, self.status = state.firmware, state.status
        if not self._restored:
            self._restore(sink)
        entries, exits = self.deltas.update(state)
        if self.swap_direction:
            entries, exits = exits, entries
        baseline = self.deltas.baseline()
        changed = {self.state_key: baseline} if baseline != self._saved else None
        if entries or exits:
            sent = self._emit(sink, DoorCount(self.door, entries, exits), changed)
        else:
            sent = changed is None or self._save_state(sink, changed)
        if sent:
            self._saved = baseline

    def _restore(self, sink: Sink) -> None:
        """Take up the baseline stored with this counter's last readings (before this run's first one)."""
        stored = sink.load_state(self.name, self.state_key)  # a DriverError here is an outage: retried
        restored = None if stored is None else CounterDeltas.from_baseline(stored)
        if restored is not None and stored is not None:
            self.deltas, self._saved = restored, stored
        else:
            log.info(
                "%s: no stored baseline for slave %d; its first reading becomes the baseline and the"
                " crossings before it are not counted",
                self.name,
                self.slave,
            )
        self._restored = True
