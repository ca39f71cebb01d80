"""HLK-LD2410 driver: thin I/O glue around the pure parser in protocol.py."""

from __future__ import annotations

import contextlib
import os
import re
import termios
import threading
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import serial

from agent.driver_api import DriverHealth, DriverOptionError, PresenceChange, Sink
from drivers.ld2410.protocol import (
    CMD_ENABLE_CONFIG,
    CMD_READ_FIRMWARE,
    Ack,
    LD2410Parser,
    PresenceHold,
    Report,
    end_config_command,
    engineering_command,
    format_firmware,
    read_firmware_command,
)
from drivers.ld2410.protocol import enable_config_command as _enable_config

ZONE_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
OPTIONS = ("port", "zone", "baudrate", "engineering_mode", "hold_s", "configure")
READ_TIMEOUT_S = 0.1
ACK_TIMEOUT_S = 1.0


def _check_bool(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise DriverOptionError(key, f"{value!r} is not true or false", "use true or false")
    return value


class LD2410Driver:
    """Reads report frames from one LD2410 radar and emits PresenceChange for its zone."""

    kind: ClassVar[str] = "ld2410"

    def __init__(
        self,
        name: str,
        port: str,
        zone: str,
        *,
        baudrate: int = 256000,
        engineering_mode: bool = False,
        hold_s: float = 2.0,
        configure: bool = True,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.name, self.port, self.zone = name, port, zone
        self.baudrate, self.engineering_mode, self.configure = baudrate, engineering_mode, configure
        self.hold = PresenceHold(hold_s)  # kept across reconnects: a replug is not a change of presence
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.firmware = ""
        self._health = DriverHealth()
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._steps: list[tuple[int, bytes]] = []
        self._step_sent_at = 0.0

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> LD2410Driver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; ld2410 takes {', '.join(OPTIONS)}")
        port = options.get("port")
        if not isinstance(port, str) or not port.strip():
            raise DriverOptionError("port", "missing or empty", 'set port = "/dev/serial/by-id/usb-..."')
        zone = options.get("zone")
        if not isinstance(zone, str) or not ZONE_NAME.match(zone):
            raise DriverOptionError("zone", f"{zone!r} is not a zone name", 'use lowercase letters, digits, "_" or "-"')
        baudrate = options.get("baudrate", 256000)
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise DriverOptionError("baudrate", f"{baudrate!r} is not a positive integer", "use 256000 (the default)")
        hold_s = options.get("hold_s", 2.0)
        if isinstance(hold_s, bool) or not isinstance(hold_s, int | float) or not 0 <= hold_s <= 3600:
            raise DriverOptionError("hold_s", f"{hold_s!r} is not 0-3600 seconds", "use a number such as 2.0")
        return cls(
            name,
            port.strip(),
            zone,
            baudrate=baudrate,
            engineering_mode=_check_bool(options, "engineering_mode", False),
            hold_s=float(hold_s),
            configure=_check_bool(options, "configure", True),
        )

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.ld2410").joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """A presence radar watches a zone, not a door."""
        return []

    def health(self) -> dict[str, Any]:
        """connected, frames, bad_frames, reconnects, last_error, plus firmware and present."""
        return {**self._health.snapshot(), "firmware": self.firmware, "present": self.hold.present}

    def alive(self) -> bool:
        """False once the background thread has ended without stop() (the supervisor then restarts it)."""
        return self._stop.is_set() or (self._thread is not None and self._thread.is_alive())

    def start(self, sink: Sink) -> None:
        """Start the reader thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"driver {self.name} already started")
        with self._emit_lock:  # a restart after stop() or a crash begins afresh
            self._stopped = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"ld2410-{self.name}", daemon=True)
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
        parser = LD2410Parser()
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
                self._begin_handshake(port)
                with self._health.lock:
                    self._health.connected = True
                    self._health.reconnects += int(ever_connected)
                ever_connected, reported_outage, delay = True, False, self.backoff_initial_s
                while not self._stop.is_set():
                    data = port.read(port.in_waiting or 1)
                    bad_before = dict(parser.bad_reasons)
                    frames = parser.feed(data) if data else []
                    self._handle(sink, port, parser, frames, bad_before)
            except (serial.SerialException, OSError, termios.error) as exc:  # tcflush raises termios.error
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

    def _begin_handshake(self, port: serial.SerialBase) -> None:
        """Queue enable config, read firmware, engineering on/off, end config; send the first."""
        if not self.configure:
            self._steps = []
            return
        self._steps = [
            (CMD_ENABLE_CONFIG, _enable_config()),
            (CMD_READ_FIRMWARE, read_firmware_command()),
            (0x62 if self.engineering_mode else 0x63, engineering_command(self.engineering_mode)),
            (0xFE, end_config_command()),
        ]
        port.write(self._steps[0][1])
        self._step_sent_at = time.monotonic()

    def _on_ack(self, sink: Sink, port: serial.SerialBase, ack: Ack) -> None:
        if not self._steps or ack.cmd != self._steps[0][0]:
            return  # a late or unexpected ACK; the sensor's state is what the next reports say
        if not ack.ok:
            self._report(sink, "problem", f"{self.port}: command 0x{ack.cmd:04X} failed (status {ack.status})")
        if ack.cmd == CMD_READ_FIRMWARE and ack.ok:
            self.firmware = format_firmware(ack.data)
        if ack.cmd == CMD_ENABLE_CONFIG and not ack.ok:
            self._steps = []
            return
        self._steps.pop(0)
        if self._steps:
            port.write(self._steps[0][1])
            self._step_sent_at = time.monotonic()

    def _handle(
        self, sink: Sink, port: serial.SerialBase, parser: LD2410Parser, frames: list[Report | Ack], bad: dict[str, int]
    ) -> None:
        for reason, count in parser.bad_reasons.items():
            for _ in range(count - bad.get(reason, 0)):
                self._report(sink, "bad_frame", reason)
        with self._health.lock:
            self._health.frames = parser.frames
            self._health.bad_frames = parser.bad_frames
        now = time.monotonic()
        for frame in frames:
            if isinstance(frame, Ack):
                self._on_ack(sink, port, frame)
                continue
            change = self.hold.update(frame.present, now)
            if change is not None:
                with self._emit_lock:
                    if self._stopped:
                        return
                    sink.emit(PresenceChange(self.zone, change))
        if self._steps and now - self._step_sent_at > ACK_TIMEOUT_S:
            cmd = self._steps[0][0]
            self._steps = []
            self._report(sink, "problem", f"{self.port}: no ACK for command 0x{cmd:04X}; check the baud rate (256000)")
