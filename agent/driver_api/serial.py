"""SerialDriver: a BackgroundDriver for one serial device, opened by URL.

A driver subclasses SerialDriver and fills in `_on_connect(port, first)` (flush parsers, send the
device's setup; runs after every (re)open, since a replugged device may have lost its settings) and
`_serve(sink, port)` (read and parse until `self._stop` is set), plus `_prepare` for one-time
work. The port is opened with `serial.serial_for_url`, so `loop://`, `socket://` and ptys work; a
`/dev/serial/by-id` path that is missing (unplugged) is an outage like any other: reported once,
retried with capped backoff. The constructor keeps its signature from `agent.serial_driver`, so
drivers written against that module keep working.
"""

from __future__ import annotations

import contextlib
import os
import termios
from typing import Any, ClassVar

import serial

from agent.driver_api.base import BackgroundDriver
from agent.driver_api.contract import Sink
from agent.errors import DriverError

# What an unplugged or vanished port raises: pyserial's SerialException, a raw OSError (in_waiting),
# or termios.error (tcflush in reset_input_buffer on a pty that is gone).
PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialDriver(BackgroundDriver):
    """Base class for drivers that read one serial device."""

    kind: ClassVar[str] = "serial"
    outage_errors: ClassVar[tuple[type[BaseException], ...]] = (*PORT_ERRORS, DriverError)

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
        super().__init__(name, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s)
        self.port, self.baudrate = port, baudrate
        self.read_timeout_s = read_timeout_s
        self.serial_options = dict(serial_options or {})
        self._port: serial.SerialBase | None = None
        self._first = True

    # -- hooks for subclasses ----------------------------------------------------------------------
    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        """Called after every open: reset parsers and send the device's setup."""

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        """Read and handle data until self._stop is set; raise a PORT_ERRORS exception on failure."""
        raise NotImplementedError

    # -- BackgroundDriver hooks --------------------------------------------------------------------
    def _where(self) -> str:
        return self.port

    def _connect(self, sink: Sink) -> None:
        if "://" not in self.port and not os.path.exists(self.port):
            raise DriverError(f"{self.port} does not exist (unplugged?)")
        self._port = serial.serial_for_url(
            self.port, baudrate=self.baudrate, timeout=self.read_timeout_s, **self.serial_options
        )
        self._port.reset_input_buffer()
        self._on_connect(self._port, first=self._first)
        self._first = False

    def _session(self, sink: Sink) -> None:
        assert self._port is not None
        self._serve(sink, self._port)

    def _disconnect(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
