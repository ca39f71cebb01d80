"""Modbus RTU people counter driver: polls FC03 and emits DoorCount deltas; I/O glue around protocol.py."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import serial

from agent.driver_api import DoorCount, DriverOptionError, Sink
from agent.serial_driver import SerialDriver
from drivers.modbus_counter.protocol import (
    REGISTER_COUNT,
    CounterDeltas,
    ExceptionReply,
    RegisterReply,
    ReplyParser,
    decode_counter,
    read_request,
)

DOOR_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
OPTIONS = (
    "port",
    "door",
    "slave",
    "baudrate",
    "parity",
    "poll_interval_s",
    "response_timeout_s",
    "swap_direction",
)
PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
OFFLINE_AFTER_TIMEOUTS = 3


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise DriverOptionError(key, f"{value!r} is not a number from {low} to {high}", f"use {default}")
    return float(value)


class ModbusCounterDriver(SerialDriver):
    """Polls one Modbus RTU counter (our register map) and emits DoorCount deltas for its door."""

    kind: ClassVar[str] = "modbus_counter"

    def __init__(
        self,
        name: str,
        port: str,
        door: str,
        *,
        slave: int = 1,
        baudrate: int = 19200,
        parity: str = "E",
        poll_interval_s: float = 1.0,
        response_timeout_s: float = 0.5,
        swap_direction: bool = False,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        super().__init__(
            name,
            port,
            baudrate,
            read_timeout_s=0.02,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            serial_options={"parity": PARITIES[parity]},
        )
        self.door, self.slave, self.parity = door, slave, parity
        self.poll_interval_s, self.response_timeout_s = poll_interval_s, response_timeout_s
        self.swap_direction = swap_direction
        self.parser = ReplyParser(slave)
        self.deltas = CounterDeltas()  # kept across reconnects: the same device, the same counters
        self.firmware = ""
        self.status = 0
        self.timeouts = 0
        self.exceptions = 0
        self._in_exception = False

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> ModbusCounterDriver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; modbus_counter takes {', '.join(OPTIONS)}")
        port = options.get("port")
        if not isinstance(port, str) or not port.strip():
            raise DriverOptionError("port", "missing or empty", 'set port = "/dev/serial/by-id/usb-..."')
        door = options.get("door")
        if not isinstance(door, str) or not DOOR_NAME.match(door):
            raise DriverOptionError("door", f"{door!r} is not a door name", 'use lowercase letters, digits, "_" or "-"')
        slave = options.get("slave", 1)
        if isinstance(slave, bool) or not isinstance(slave, int) or not 1 <= slave <= 247:
            raise DriverOptionError(
                "slave", f"{slave!r} is not a slave address 1-247", "use the address set on the unit"
            )
        baudrate = options.get("baudrate", 19200)
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise DriverOptionError("baudrate", f"{baudrate!r} is not a positive integer", "use 19200 (the default)")
        parity = options.get("parity", "E")
        if parity not in PARITIES:
            raise DriverOptionError("parity", f"{parity!r} is not N, E or O", 'use "E" (the Modbus default)')
        swap = options.get("swap_direction", False)
        if not isinstance(swap, bool):
            raise DriverOptionError("swap_direction", f"{swap!r} is not true or false", "use true or false")
        return cls(
            name,
            port.strip(),
            door,
            slave=slave,
            baudrate=baudrate,
            parity=parity,
            poll_interval_s=_number(options, "poll_interval_s", 1.0, 0.01, 3600),
            response_timeout_s=_number(options, "response_timeout_s", 0.5, 0.01, 10),
            swap_direction=swap,
        )

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.modbus_counter").joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """The one door this counter watches."""
        return [self.door]

    def health(self) -> dict[str, Any]:
        """connected, frames, bad_frames, reconnects, last_error, plus timeouts, exceptions, status, firmware."""
        extra = {"timeouts": self.timeouts, "exceptions": self.exceptions, "status": self.status}
        return {**self._health.snapshot(), **extra, "firmware": self.firmware}

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
        entries, exits = self.deltas.update(state)
        if self.swap_direction:
            entries, exits = exits, entries
        if entries or exits:
            self._emit(sink, DoorCount(self.door, entries, exits))
