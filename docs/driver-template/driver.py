"""<Device name> driver: thin I/O glue around the pure parser in protocol.py.  (TEMPLATE: replace every <...>.)"""

from __future__ import annotations

import contextlib
import os
import re
import termios
import threading
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import serial

from agent.driver_api import DoorCount, DriverHealth, DriverOptionError, Sink

from .protocol import CounterDeltas, LineParser

DOOR_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
OPTIONS = ("port", "door", "baudrate")


class MyDeviceDriver:
    """Reads count lines from one <device> and emits DoorCount deltas for its door."""

    kind: ClassVar[str] = "mydevice"  # TEMPLATE: the entry-point name, the folder name and the `kind` key

    def __init__(self, name: str, port: str, door: str, *, baudrate: int = 9600) -> None:
        self.name, self.port, self.door, self.baudrate = name, port, door, baudrate
        self.backoff_initial_s, self.backoff_max_s = 0.1, 5.0
        self.deltas = CounterDeltas()  # kept across reconnects: the same device, the same counters
        self._health = DriverHealth()
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None

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

    def health(self) -> dict[str, Any]:
        """connected, frames, bad_frames, reconnects, last_error."""
        return self._health.snapshot()

    def start(self, sink: Sink) -> None:
        """Start the reader thread."""
        if self._thread is not None:
            raise RuntimeError(f"driver {self.name} already started")
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"{self.kind}-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; once this returns nothing more reaches the sink."""
        with self._emit_lock:
            self._stopped = True  # the gate: every call into the sink checks it under the same lock
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _to_sink(self, call: Any, *args: Any) -> None:
        with self._emit_lock:
            if not self._stopped:
                call(*args)

    def _run(self, sink: Sink) -> None:
        parser = LineParser()
        delay, ever_connected, reported_outage = self.backoff_initial_s, False, False
        while not self._stop.is_set():
            if "://" not in self.port and not os.path.exists(self.port):
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            port = None
            try:
                port = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.2)
                port.reset_input_buffer()
                parser.reset()  # resync: a partial line from before the outage is gone
                with self._health.lock:
                    self._health.connected = True
                    self._health.reconnects += int(ever_connected)
                ever_connected, reported_outage, delay = True, False, self.backoff_initial_s
                while not self._stop.is_set():
                    data = port.read(port.in_waiting or 1)
                    if data:
                        self._handle(sink, parser, data)
            except (serial.SerialException, OSError, termios.error) as exc:  # unplug: see protocols.md 6.2
                with self._health.lock:
                    self._health.connected, self._health.last_error = False, str(exc)
                if not reported_outage:
                    self._to_sink(sink.problem, self.name, f"{self.port}: {exc}; reconnecting")
                    reported_outage = True
            finally:
                if port is not None:
                    with contextlib.suppress(Exception):
                        port.close()
            self._stop.wait(delay)
            delay = min(delay * 2, self.backoff_max_s)
        with self._health.lock:
            self._health.connected = False

    def _handle(self, sink: Sink, parser: LineParser, data: bytes) -> None:
        bad_before = dict(parser.bad_reasons)
        lines = parser.feed(data)
        for reason, count in parser.bad_reasons.items():
            for _ in range(count - bad_before.get(reason, 0)):
                self._to_sink(sink.bad_frame, self.name, reason)
        with self._health.lock:
            self._health.frames, self._health.bad_frames = parser.frames, parser.bad_frames
        for counts in lines:
            entries, exits = self.deltas.update(counts)
            if entries or exits:
                self._to_sink(sink.emit, DoorCount(self.door, entries, exits))
