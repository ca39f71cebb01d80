"""HLK-LD2410 serial format: pure parsing and command encoding, no I/O, no clock.

Frames (protocols.md 1.2-1.4; every integer little-endian):

    report  F4 F3 F2 F1  len:u16  type(02 basic | 01 engineering) AA target ... 55 00  F8 F7 F6 F5
    command FD FC FB FA  len:u16  cmd:u16 value...                                     04 03 02 01
    ACK     FD FC FB FA  len:u16  (cmd | 0x0100):u16 status:u16 data...                04 03 02 01

The parser finds frames by header, checks the length against the footer, and resyncs on the next
header after anything that does not fit. It never raises and holds at most one frame's worth of
bytes plus a header prefix. `PresenceHold` turns target states into presence changes with a hold
time; it takes the time as an argument, so it stays pure.
"""

from __future__ import annotations

import dataclasses
import struct

REPORT_HEADER = bytes.fromhex("f4f3f2f1")
REPORT_FOOTER = bytes.fromhex("f8f7f6f5")
COMMAND_HEADER = bytes.fromhex("fdfcfbfa")
COMMAND_FOOTER = bytes.fromhex("04030201")
MAX_PAYLOAD = 64  # the longest real frame (engineering report) has 35 payload bytes
BASIC_LENGTH = 13
ENGINEERING_LENGTHS = (33, 35)  # without / with the light and OUT bytes of newer firmware

CMD_ENABLE_CONFIG = 0x00FF
CMD_END_CONFIG = 0x00FE
CMD_ENGINEERING_ON = 0x0062
CMD_ENGINEERING_OFF = 0x0063
CMD_READ_FIRMWARE = 0x00A0

TARGET_NAMES = {0: "none", 1: "moving", 2: "stationary", 3: "moving+stationary"}


def command_frame(cmd: int, value: bytes = b"") -> bytes:
    """A host-to-sensor command frame."""
    payload = struct.pack("<H", cmd) + value
    return COMMAND_HEADER + struct.pack("<H", len(payload)) + payload + COMMAND_FOOTER


def enable_config_command() -> bytes:
    """`FD FC FB FA 04 00 FF 00 01 00 04 03 02 01`: must precede every other command."""
    return command_frame(CMD_ENABLE_CONFIG, b"\x01\x00")


def end_config_command() -> bytes:
    """`FD FC FB FA 02 00 FE 00 04 03 02 01`: back to normal reporting."""
    return command_frame(CMD_END_CONFIG)


def engineering_command(on: bool) -> bytes:
    """Engineering mode on (0x0062) or off (0x0063); not persistent across restarts."""
    return command_frame(CMD_ENGINEERING_ON if on else CMD_ENGINEERING_OFF)


def read_firmware_command() -> bytes:
    """`FD FC FB FA 02 00 A0 00 04 03 02 01`."""
    return command_frame(CMD_READ_FIRMWARE)


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """One report frame; `moving_gates` and the rest are set only in engineering mode."""

    engineering: bool
    target_state: int
    moving_distance_cm: int
    moving_energy: int
    still_distance_cm: int
    still_energy: int
    detect_distance_cm: int
    max_moving_gate: int | None = None
    max_still_gate: int | None = None
    moving_gates: tuple[int, ...] | None = None
    still_gates: tuple[int, ...] | None = None
    light: int | None = None
    out_pin: int | None = None

    @property
    def present(self) -> bool:
        """Any target (moving, stationary or both)."""
        return self.target_state != 0


@dataclasses.dataclass(frozen=True, slots=True)
class Ack:
    """The sensor's reply to one command: status 0 = success, 1 = failure."""

    cmd: int
    status: int
    data: bytes

    @property
    def ok(self) -> bool:
        """True when the command succeeded."""
        return self.status == 0


def format_firmware(data: bytes) -> str:
    """`V{major}.{minor:02X}.{build:08X}` from the 0x00A0 reply data (e.g. V1.02.22062416)."""
    if len(data) < 8:
        return "unknown"
    _type, minor, major, build = struct.unpack("<HBBI", data[:8])
    return f"V{major}.{minor:02X}.{build:08X}"


def decode_report(payload: bytes) -> Report | None:
    """A report payload (type byte to check byte), or None if it is malformed."""
    if len(payload) < BASIC_LENGTH or payload[1] != 0xAA or payload[-2:] != b"\x55\x00":
        return None
    kind = payload[0]
    if kind == 0x02 and len(payload) != BASIC_LENGTH:
        return None
    if kind == 0x01 and len(payload) not in ENGINEERING_LENGTHS:
        return None
    if kind not in (0x01, 0x02) or payload[2] > 3:
        return None
    target, move_cm, move_e, still_cm, still_e, detect_cm = struct.unpack("<BHBHBH", payload[2:11])
    if kind == 0x02:
        return Report(False, target, move_cm, move_e, still_cm, still_e, detect_cm)
    light = out_pin = None
    if len(payload) == 35:
        light, out_pin = payload[31], payload[32]
    return Report(
        True,
        target,
        move_cm,
        move_e,
        still_cm,
        still_e,
        detect_cm,
        max_moving_gate=payload[11],
        max_still_gate=payload[12],
        moving_gates=tuple(payload[13:22]),
        still_gates=tuple(payload[22:31]),
        light=light,
        out_pin=out_pin,
    )


def decode_ack(payload: bytes) -> Ack | None:
    """An ACK payload (reply word, status, data), or None if it is malformed."""
    if len(payload) < 4 or payload[1] != 0x01:
        return None
    word, status = struct.unpack("<HH", payload[:4])
    return Ack(word & 0x00FF, status, bytes(payload[4:]))


Frame = Report | Ack


class LD2410Parser:
    """Streaming parser: feed bytes, get Reports and Acks; bad input is counted, never raised."""

    def __init__(self) -> None:
        self.frames = 0
        self.reports = 0
        self.acks = 0
        self.bad_frames = 0
        self.bad_reasons: dict[str, int] = {}
        self._buf = bytearray()
        self._in_garbage = False  # the buffer starts inside a garbage run that was already counted

    def feed(self, data: bytes) -> list[Frame]:
        """Parse `data` (appended to what is buffered) and return the frames completed."""
        self._buf += data
        return self._scan()

    def reset(self) -> None:
        """Drop buffered bytes (after a reconnect); counters stay."""
        self._buf.clear()
        self._in_garbage = False

    def _bad(self, reason: str) -> None:
        self.bad_frames += 1
        self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def _next_header(self, start: int) -> int:
        hits = [i for i in (self._buf.find(REPORT_HEADER, start), self._buf.find(COMMAND_HEADER, start)) if i >= 0]
        return min(hits) if hits else -1

    def _garbage(self, start: int, end: int) -> None:
        if end > start and not self._in_garbage:
            self._bad("garbage")

    def _scan(self) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf
        pos = 0
        while pos < len(buf):
            header = self._next_header(pos)
            if header < 0:
                # Keep a tail that may be the start of a header split across reads.
                keep = next((k for k in (3, 2, 1) if buf[-k:] in (REPORT_HEADER[:k], COMMAND_HEADER[:k])), 0)
                end = max(pos, len(buf) - keep)
                if end > pos:
                    self._garbage(pos, end)
                    self._in_garbage = True
                pos = end
                break
            self._garbage(pos, header)
            self._in_garbage = False
            pos = header
            if pos + 6 > len(buf):
                break
            (length,) = struct.unpack_from("<H", buf, pos + 4)
            is_report = buf[pos : pos + 4] == REPORT_HEADER
            if length > MAX_PAYLOAD or length < 4:
                pos = self._skip_bad(pos, "length")
                continue
            end = pos + 6 + length + 4
            if end > len(buf):
                # Wait for the whole length even if another header shows up inside: the footer decides,
                # so a payload that happens to contain header bytes parses the same however it is split.
                break
            footer = bytes(buf[end - 4 : end])
            if footer != (REPORT_FOOTER if is_report else COMMAND_FOOTER):
                inner = self._next_header(pos + 4)
                self._bad("truncated" if 0 <= inner < end else "footer")
                pos = inner if 0 <= inner < end else end
                continue
            payload = bytes(buf[pos + 6 : end - 4])
            frame: Frame | None = decode_report(payload) if is_report else decode_ack(payload)
            if frame is None:
                self._bad("payload")
                pos = end
                continue
            pos = end
            self.frames += 1
            if isinstance(frame, Report):
                self.reports += 1
            else:
                self.acks += 1
            out.append(frame)
        del buf[:pos]
        return out

    def _skip_bad(self, pos: int, reason: str) -> int:
        self._bad(reason)
        inner = self._next_header(pos + 4)
        if inner >= 0:
            return inner
        self._in_garbage = True  # what follows belongs to this bad frame, not a new garbage run
        return max(pos + 4, len(self._buf) - 3)


@dataclasses.dataclass
class PresenceHold:
    """Present as soon as a target shows; absent only after `hold_s` with no target.

    The sensor has its own "no-one" timeout (command 0x0060); the hold here smooths the short drops
    to "none" that a still person causes between reports. `hold_s = 0` reports every state change.
    """

    hold_s: float = 0.0
    present: bool | None = None
    _clear_since: float | None = None

    def update(self, target_present: bool, now: float) -> bool | None:
        """The new presence if it changed with this report, else None."""
        if target_present:
            self._clear_since = None
            if self.present is not True:
                self.present = True
                return True
            return None
        if self._clear_since is None:
            self._clear_since = now
        if self.present is not False and now - self._clear_since >= self.hold_s:
            self.present = False
            return False
        return None
