"""Terabee Evo People Counter driver: thin I/O glue around the pure parser in protocol.py."""

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


class TerabeeDriver:
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
        self.name, self.port, self.door = name, port, door
        self.baudrate, self.swap_direction, self.frame_length = baudrate, swap_direction, frame_length
        self.reset_counters_on_start = reset_counters_on_start
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.deltas = CounterDeltas()  # kept across reconnects: the same device, the same counters
        self._health = DriverHealth()
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None

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

    def alive(self) -> bool:
        """False once the reading thread has ended without stop() (the supervisor then restarts it)."""
        return self._stop.is_set() or (self._thread is not None and self._thread.is_alive())

    def health(self) -> dict[str, Any]:
        """A snapshot of connected, frames, bad_frames, reconnects, last_error."""
        return self._health.snapshot()

    def start(self, sink: Sink) -> None:
        """Start the reader thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"driver {self.name} already started")
        with self._emit_lock:  # a restart after stop() or a crash begins afresh
            self._stopped = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"terabee-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; once this returns nothing more reaches the sink."""
        with self._emit_lock:
            self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _set_health(self, **changes: Any) -> None:
        with self._health.lock:
            for key, value in changes.items():
                setattr(self._health, key, value)

    def _report(self, sink: Sink, kind: str, text: str) -> None:
        with self._emit_lock:
            if self._stopped:
                return
            if kind == "problem":
                sink.problem(self.name, text)
            else:
                sink.bad_frame(self.name, text)

    def _wait_for_path(self) -> None:
        if "://" in self.port:
            return
        delay = self.backoff_initial_s
        while not os.path.exists(self.port) and not self._stop.wait(delay):
            delay = min(delay * 2, self.backoff_max_s)

    def _run(self, sink: Sink) -> None:
        delay = self.backoff_initial_s
        parser = TerabeeParser(self.frame_length)
        ever_connected = False
        reported_outage = False
        while not self._stop.is_set():
            self._wait_for_path()
            if self._stop.is_set():
                break
            port = None
            try:
                port = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=READ_TIMEOUT_S)
                port.reset_input_buffer()
                parser.reset()  # resync on the next header; a partial frame from before is gone
                port.write(bptd_mode_command())
                if self.reset_counters_on_start and not ever_connected:
                    # The baseline starts at zero, so the device's counters must too (see CounterDeltas).
                    port.write(reset_counters_command())
                with self._health.lock:
                    self._health.connected = True
                    self._health.reconnects += int(ever_connected)
                ever_connected, reported_outage, delay = True, False, self.backoff_initial_s
                while not self._stop.is_set():
                    data = port.read(port.in_waiting or 1)
                    bad_before = dict(parser.bad_reasons)
                    frames = parser.feed(data) if data else parser.flush()
                    self._handle(sink, parser, frames, bad_before)
                # termios.error: reset_input_buffer() on a pty that vanished is not an OSError
            except (serial.SerialException, OSError, termios.error) as exc:
                self._set_health(connected=False, last_error=str(exc))
                if not reported_outage:
                    self._report(sink, "problem", f"{self.port}: {exc}; reconnecting")
                    reported_outage = True
            finally:
                if port is not None:
                    with contextlib.suppress(Exception):
                        port.close()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max_s)
        self._set_health(connected=False)

    def _handle(self, sink: Sink, parser: TerabeeParser, frames: list[CountFrame], bad_before: dict[str, int]) -> None:
        for reason, count in parser.bad_reasons.items():
            for _ in range(count - bad_before.get(reason, 0)):
                self._report(sink, "bad_frame", reason)
        with self._health.lock:
            self._health.frames = parser.frames
            self._health.bad_frames = parser.bad_frames
        for frame in frames:
            count_in, count_out = self.deltas.update(frame)
            entries, exits = (count_out, count_in) if self.swap_direction else (count_in, count_out)
            if entries or exits:
                with self._emit_lock:
                    if self._stopped:
                        return
                    sink.emit(DoorCount(self.door, entries, exits))
