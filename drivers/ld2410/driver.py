"""HLK-LD2410 driver: thin I/O glue around the pure parser in protocol.py."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import serial

from agent.driver_api import PresenceChange, Sink
from agent.driver_api.options import Options, flag, integer, name, number, serial_port
from agent.driver_api.serial import SerialDriver
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

READ_TIMEOUT_S = 0.1
ACK_TIMEOUT_S = 1.0


class LD2410Driver(SerialDriver):
    """Reads report frames from one LD2410 radar and emits PresenceChange for its zone."""

    kind: ClassVar[str] = "ld2410"
    options: ClassVar[Options] = Options(
        serial_port(),
        name("zone", what="zone"),
        integer("baudrate", 256000, low=1),
        flag("engineering_mode", False),
        number("hold_s", 2.0, low=0, high=3600, fix="use a number such as 2.0"),
        flag("configure", True),
    )

    def __init__(
        self,
        name: str,
        port: str,
        zone: str,
        *,
        baudrate: int,
        engineering_mode: bool,
        hold_s: float,
        configure: bool,
    ) -> None:
        super().__init__(name, port, baudrate, read_timeout_s=READ_TIMEOUT_S)
        self.zone, self.engineering_mode, self.configure = zone, engineering_mode, configure
        self.hold = PresenceHold(hold_s)  # kept across reconnects: a replug is not a change of presence
        self.firmware = ""
        self.parser = LD2410Parser()
        self._steps: list[tuple[int, bytes]] = []
        self._step_sent_at = 0.0

    def _health_extra(self) -> dict[str, Any]:
        return {"firmware": self.firmware, "present": self.hold.present}

    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        self.parser.reset()  # resync on the next header; a partial frame from before is gone
        self._begin_handshake(port)  # config mode and engineering mode are lost when the radar restarts

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        parser = self.parser
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            bad_before = dict(parser.bad_reasons)
            frames = parser.feed(data) if data else []
            self._handle(sink, port, parser, frames, bad_before)

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
        self._report_bad(sink, parser.bad_reasons, bad)
        with self._health.lock:
            self._health.frames = parser.frames
            self._health.bad_frames = parser.bad_frames
        now = time.monotonic()
        for frame in frames:
            if isinstance(frame, Ack):
                self._on_ack(sink, port, frame)
                continue
            change = self.hold.update(frame.present, now)
            if change is not None and not self._emit(sink, PresenceChange(self.zone, change)):
                return
        if self._steps and now - self._step_sent_at > ACK_TIMEOUT_S:
            cmd = self._steps[0][0]
            self._steps = []
            self._report(sink, "problem", f"{self.port}: no ACK for command 0x{cmd:04X}; check the baud rate (256000)")
