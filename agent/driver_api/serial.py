"""The life cycle every serial driver shares: a reader thread, reconnects with capped backoff, health.

A driver subclasses SerialDriver and fills in three hooks: `_on_connect` (flush parsers, send the
device's setup; runs after every (re)open, since a replugged device may have lost its settings) and
`_serve` (read and parse until `self._stop` is set), plus `_prepare` for one-time work before the first
open. The base opens the port with `serial.serial_for_url` (so `loop://`, `socket://` and ptys work),
waits for a by-id path to come back after an unplug, reports the outage once, counts reconnects, and
guarantees that nothing reaches the sink after `stop()` returns. This is part of the driver API.
"""

from __future__ import annotations

import contextlib
import os
import termios
import threading
from typing import Any, ClassVar

import serial

from agent.driver_api import DriverHealth, Reading, Sink

# What an unplugged or vanished port raises: pyserial's SerialException, a raw OSError (in_waiting),
# or termios.error (tcflush in reset_input_buffer on a pty that is gone).
PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialDriver:
    """Base class for drivers that read one serial device."""

    kind: ClassVar[str] = "serial"

    def __init__(
        self,
        name: str,
        port: str,
        baudrate: int,
        *,
        read_timeout_s: float = 0.2,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        serial_options: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.port, self.baudrate = name, port, baudrate
        self.read_timeout_s = read_timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.serial_options = dict(serial_options or {})
        self._health = DriverHealth()
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- the contract ------------------------------------------------------------------------------
    def alive(self) -> bool:
        """False once the reader thread has ended without stop() (the supervisor then restarts it)."""
        return self._stop.is_set() or (self._thread is not None and self._thread.is_alive())

    def health(self) -> dict[str, Any]:
        """A snapshot of connected, frames, bad_frames, reconnects, last_error."""
        return self._health.snapshot()

    def start(self, sink: Sink) -> None:
        """Start the reader thread (again, after stop() or a crash)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"driver {self.name} already started")
        with self._emit_lock:
            self._stopped = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"{self.kind}-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; once this returns nothing more reaches the sink."""
        with self._emit_lock:
            self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- hooks for subclasses ----------------------------------------------------------------------
    def _prepare(self) -> None:
        """One-time work in the reader thread before the first open (e.g. loading kernels)."""

    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        """Called after every open: reset parsers and send the device's setup."""

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        """Read and handle data until self._stop is set; raise a PORT_ERRORS exception on failure."""
        raise NotImplementedError

    # -- helpers for subclasses --------------------------------------------------------------------
    def _emit(self, sink: Sink, reading: Reading) -> bool:
        """Hand a reading to the sink unless stop() has begun; False when it was dropped for that reason."""
        with self._emit_lock:
            if self._stopped:
                return False
            sink.emit(reading)
            return True

    def _report(self, sink: Sink, kind: str, text: str) -> None:
        with self._emit_lock:
            if self._stopped:
                return
            if kind == "problem":
                sink.problem(self.name, text)
            else:
                sink.bad_frame(self.name, text)

    def _report_bad(self, sink: Sink, now: dict[str, int], before: dict[str, int]) -> None:
        """Report each bad frame counted since `before`, by reason."""
        for reason, count in now.items():
            for _ in range(count - before.get(reason, 0)):
                self._report(sink, "bad_frame", reason)

    def _set_health(self, **changes: Any) -> None:
        with self._health.lock:
            for key, value in changes.items():
                setattr(self._health, key, value)

    # -- the loop ----------------------------------------------------------------------------------
    def _wait_for_path(self) -> None:
        if "://" in self.port:
            return
        delay = self.backoff_initial_s
        while not os.path.exists(self.port) and not self._stop.wait(delay):
            delay = min(delay * 2, self.backoff_max_s)

    def _run(self, sink: Sink) -> None:
        self._prepare()
        delay = self.backoff_initial_s
        ever_connected = reported_outage = False
        while not self._stop.is_set():
            self._wait_for_path()
            if self._stop.is_set():
                break
            port = None
            try:
                port = serial.serial_for_url(
                    self.port, baudrate=self.baudrate, timeout=self.read_timeout_s, **self.serial_options
                )
                port.reset_input_buffer()
                self._on_connect(port, first=not ever_connected)
                with self._health.lock:
                    self._health.connected = True
                    self._health.reconnects += int(ever_connected)
                ever_connected, reported_outage, delay = True, False, self.backoff_initial_s
                self._serve(sink, port)
            except PORT_ERRORS as exc:
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
