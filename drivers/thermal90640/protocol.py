"""GY-MCU90640 UART format: pure parsing and command building, no I/O, no clock.

Module-to-host data frame (protocols.md 2.1; every field a 16-bit little-endian word):

    5A 5A | 02 06 | 768 pixels int16 °C×100, row by row | Ta int16 °C×100 | checksum    1544 bytes

checksum = (sum of the 771 words before it, including 0x5A5A and 0x0602) & 0xFFFF.

The parser resyncs on the 4-byte header `5A 5A 02 06`, never on `5A 5A` alone: the reply to the
emissivity query is `5A 5A XX sum` (sum = (5A + 5A + XX) & 0xFF), and pixel data may contain
0x5A5A. A 4-byte emissivity reply between frames is recognised (its sum can never equal 0x06 when
XX is 0x02, so it is never a frame header; XX must be a possible emissivity, 1..100) and is
remembered in `emissivity`. A header whose 1544
bytes fail the checksum is a bad frame: "truncated" when another header starts inside it (the
parser jumps there), otherwise "checksum" (the parser searches on from the byte after the bad
header, so a following good frame is never lost). Other skipped bytes count once per run as
"garbage". The parser never raises and holds at most one frame plus the bytes of one feed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

ROWS, COLS = 24, 32
PIXELS = ROWS * COLS
FRAME_LENGTH = 4 + 2 * PIXELS + 4  # 1544
HEADER = b"\x5a\x5a\x02\x06"
SYNC = b"\x5a\x5a"
REPLY_LENGTH = 4
BAD_REASONS = ("checksum", "truncated", "garbage")

BAUD_CODES = {9600: 0x01, 115200: 0x02, 460800: 0x03}
# Frame rate codes as in the vendor manual (other sources shift them by one; protocols.md 2.1).
RATE_CODES = {0.5: 0x00, 1.0: 0x01, 2.0: 0x02, 4.0: 0x03, 8.0: 0x04}
# The highest rate each line speed carries (a frame is 15,440 bits on the wire with 8N1).
MAX_RATE_AT_BAUD = {9600: 0.5, 115200: 4.0, 460800: 8.0}


def command(cmd: int, value: int) -> bytes:
    """A host-to-module command `A5 cmd val sum`, sum = (A5 + cmd + val) & 0xFF."""
    if not (0 <= cmd <= 0xFF and 0 <= value <= 0xFF):
        raise ValueError(f"command and value are bytes, not {cmd!r}, {value!r}")
    return bytes([0xA5, cmd, value, (0xA5 + cmd + value) & 0xFF])


def auto_mode_command() -> bytes:
    """Stream frames continuously: `A5 35 02 DC`."""
    return command(0x35, 0x02)


def query_mode_command() -> bytes:
    """One frame per request: `A5 35 01 DB`."""
    return command(0x35, 0x01)


def rate_command(rate_hz: float) -> bytes:
    """Set the frame rate (0.5, 1, 2, 4 or 8 Hz): 8 Hz is `A5 25 04 CE`."""
    if rate_hz not in RATE_CODES:
        raise ValueError(f"rate {rate_hz!r} Hz is not one of {sorted(RATE_CODES)}")
    return command(0x25, RATE_CODES[rate_hz])


def baud_command(baudrate: int) -> bytes:
    """Switch the module's line speed (9600, 115200 or 460800): 460800 is `A5 15 03 BD`."""
    if baudrate not in BAUD_CODES:
        raise ValueError(f"baud rate {baudrate!r} is not one of {sorted(BAUD_CODES)}")
    return command(0x15, BAUD_CODES[baudrate])


def emissivity_command(emissivity: float) -> bytes:
    """Set the emissivity (0.01..1.00, sent ×100): 0.95 is `A5 45 5F 49`."""
    value = round(emissivity * 100)
    if not 1 <= value <= 100:
        raise ValueError(f"emissivity {emissivity!r} is not between 0.01 and 1")
    return command(0x45, value)


def query_emissivity_command() -> bytes:
    """Ask for the emissivity: `A5 55 01 FB`; the module answers `5A 5A XX sum`."""
    return command(0x55, 0x01)


def save_settings_command() -> bytes:
    """Save baud, rate, mode and emissivity to flash (the module restarts): `A5 65 01 0B`."""
    return command(0x65, 0x01)


def frame_checksum(frame: bytes | bytearray | memoryview) -> int:
    """The checksum of a 1544-byte frame: its first 771 LE words summed, & 0xFFFF."""
    words = np.frombuffer(frame, dtype="<u2", count=(FRAME_LENGTH - 2) // 2)
    return int(words.sum(dtype=np.uint64)) & 0xFFFF


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ThermalFrame:
    """One checked frame: 24×32 pixels and the module's ambient temperature, both °C×100."""

    pixels: npt.NDArray[np.int16]  # (24, 32), row 1 first; the manual says column 1 is the image's right edge
    ta_c100: int


def decode_frame(frame: bytes | bytearray | memoryview) -> ThermalFrame:
    """Decode a checksum-checked 1544-byte frame."""
    words = np.frombuffer(frame, dtype="<i2", count=PIXELS + 1, offset=4)
    return ThermalFrame(words[:PIXELS].astype(np.int16).reshape(ROWS, COLS), int(words[PIXELS]))


class Thermal90640Parser:
    """Streaming parser: feed bytes, get ThermalFrames; bad input is counted, never raised."""

    def __init__(self) -> None:
        self.frames = 0
        self.bad_frames = 0
        self.bad_reasons: dict[str, int] = {}
        self.replies = 0
        self.emissivity: float | None = None  # from the last emissivity reply seen
        self._buf = bytearray()
        self._skip = 0  # bytes after a bad header that belong to that bad frame, not garbage
        self._in_garbage = False  # a garbage run reached the end of the buffer and may continue

    def feed(self, data: bytes | bytearray) -> list[ThermalFrame]:
        """Parse `data` (appended to what is buffered) and return the frames it completed."""
        self._buf += data
        return self._scan()

    def reset(self) -> None:
        """Drop buffered bytes (after a reconnect); counters stay."""
        self._buf.clear()
        self._skip = 0
        self._in_garbage = False

    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def _bad(self, reason: str) -> None:
        self.bad_frames += 1
        self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def _garbage(self, length: int, at_start: bool) -> None:
        counted = length - self._skip
        self._skip = max(0, self._skip - length)
        if counted > 0 and not (at_start and self._in_garbage):
            self._bad("garbage")

    def _scan(self) -> list[ThermalFrame]:
        out: list[ThermalFrame] = []
        buf = self._buf
        pos = 0  # first byte not yet accounted for
        search = 0  # where to look for the next 5A 5A
        while True:
            sync = buf.find(SYNC, search)
            if sync < 0 or sync + REPLY_LENGTH > len(buf):
                # Keep a possible start of a header (or reply) for the next feed.
                end = len(buf) if sync < 0 else sync
                if sync < 0 and len(buf) > pos and buf[-1] == 0x5A:
                    end = len(buf) - 1
                if end > pos:
                    self._garbage(end - pos, at_start=pos == 0)
                    self._in_garbage = True
                pos = end
                break
            if buf[sync : sync + 4] == HEADER:
                if sync + FRAME_LENGTH > len(buf):
                    if sync > pos:
                        self._garbage(sync - pos, at_start=pos == 0)
                        self._in_garbage = False
                    pos = sync
                    break  # wait for the rest of the frame
                if sync > pos:
                    self._garbage(sync - pos, at_start=pos == 0)
                self._in_garbage, self._skip = False, 0
                frame = memoryview(buf)[sync : sync + FRAME_LENGTH]
                ok = frame_checksum(frame) == int.from_bytes(frame[-2:], "little")
                if ok:
                    out.append(decode_frame(frame))
                    frame.release()
                    self.frames += 1
                    pos = search = sync + FRAME_LENGTH
                    continue
                frame.release()
                inner = buf.find(HEADER, sync + 1, sync + FRAME_LENGTH)
                if inner >= 0:
                    self._bad("truncated")  # the next frame started before this one ended
                    pos = search = inner
                else:
                    self._bad("checksum")
                    self._skip = FRAME_LENGTH - 1
                    pos, search = sync + 1, sync + 1
                continue
            value, total = buf[sync + 2], buf[sync + 3]
            # Emissivity is 0.01..1.00, so XX <= 100: that also keeps a reply from ending on the first
            # byte of a real header (5A 5A A6 5A would need XX = 1.66).
            if 1 <= value <= 100 and total == (0x5A + 0x5A + value) & 0xFF:
                if sync > pos:
                    self._garbage(sync - pos, at_start=pos == 0)
                self._in_garbage, self._skip = False, 0
                self.replies += 1
                self.emissivity = value / 100
                pos = search = sync + REPLY_LENGTH
                continue
            search = sync + 1  # a lone 5A 5A inside garbage
        del buf[:pos]
        return out
