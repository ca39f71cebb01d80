"""Terabee Evo People Counter UART format: pure parsing, no I/O, no clock.

Sensor-to-host frames (protocols.md 3.1; integers big-endian; CRC-8 over every byte before it):

    "PC" counter:i32 in:u16 out:u16 crc                   11 bytes (Evo Swipe Plus manual)
    "PC" sensor_id:u32 people:i32 in:u16 out:u16 crc      15 bytes (People Counter manual)
    "DD" d1:u16 d2:u16 crc                                 7 bytes (distance stream, skipped)

Frame length for "PC" (the manuals disagree): with `frame_length` set, only that length is tried.
In "auto" mode the parser tries the length that validated last first (15 before any history), so
a CRC that also happens to validate at the other length (1 in 256) cannot flip the stream's format.
Two further rules keep the remaining ambiguity tiny:

* Inner headers. When a validated candidate contains another header whose own frame validates,
  the candidate is re-cut to end exactly at that header if that length also validates (e.g. an
  11-byte frame first tried as 15); otherwise it was a truncated frame and is dropped.
* Waiting. A decision that needs bytes not yet received is deferred; `flush()` (the driver calls
  it after a read timeout, i.e. on line silence) decides with what is buffered. Partial frames are
  never dropped by `flush()`, so a frame split across reads is not lost.

The parser never raises on any input and holds at most a couple of frames' worth of bytes.
"""

from __future__ import annotations

import dataclasses
import struct

COUNT_HEADER = b"PC"
DISTANCE_HEADER = b"DD"
SHORT_COUNT_LENGTH = 11
LONG_COUNT_LENGTH = 15
DISTANCE_LENGTH = 7
COUNTER_MODULUS = 1 << 16
# A drop of a u16 counter from at least WRAP_HIGH to below WRAP_LOW is a wrap; any other drop is a reset.
WRAP_HIGH = COUNTER_MODULUS - 4096
WRAP_LOW = 4096

_WAIT = -1  # sentinel: more bytes are needed to decide


def _crc8_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC8_TABLE = _crc8_table()


def crc8(data: bytes | bytearray | memoryview) -> int:
    """CRC-8, polynomial 0x07, init 0x00, no reflection, no final xor."""
    crc = 0
    for byte in data:
        crc = _CRC8_TABLE[crc ^ byte]
    return crc


def with_crc(body: bytes) -> bytes:
    """The body followed by its CRC-8."""
    return body + bytes([crc8(body)])


def bptd_mode_command() -> bytes:
    """Switch the sensor to bidirectional people-traffic (BPTD) mode: `00 21 0A 8D`."""
    return with_crc(b"\x00\x21\x0a")


def reset_counters_command() -> bytes:
    """Reset the IN/OUT people counters: `00 55 08 00 00 00 00 7C`."""
    return with_crc(b"\x00\x55\x08\x00\x00\x00\x00")


@dataclasses.dataclass(frozen=True, slots=True)
class CountFrame:
    """One "PC" frame: the device's cumulative counters since power-on (u16 IN/OUT wrap)."""

    sensor_id: int | None
    people: int
    count_in: int
    count_out: int


def decode_count_frame(frame: bytes) -> CountFrame:
    """Decode a CRC-checked 11- or 15-byte "PC" frame."""
    if len(frame) == SHORT_COUNT_LENGTH:
        people, count_in, count_out = struct.unpack(">iHH", frame[2:10])
        return CountFrame(None, people, count_in, count_out)
    sensor_id, people, count_in, count_out = struct.unpack(">IiHH", frame[2:14])
    return CountFrame(sensor_id, people, count_in, count_out)


class TerabeeParser:
    """Streaming parser: feed bytes, get CountFrames; bad input is counted, never raised."""

    def __init__(self, frame_length: int | None = None) -> None:
        if frame_length not in (None, SHORT_COUNT_LENGTH, LONG_COUNT_LENGTH):
            raise ValueError(f"frame_length must be None, 11 or 15, not {frame_length!r}")
        self.frame_length = frame_length
        self.preferred_length: int | None = frame_length
        self.frames = 0  # valid frames of any kind
        self.count_frames = 0
        self.distance_frames = 0
        self.bad_frames = 0
        self.bad_reasons: dict[str, int] = {}
        self._buf = bytearray()
        self._skip = 0  # bytes after a bad header that belong to that bad frame, not garbage
        self._in_garbage = False  # a garbage run reached the end of the buffer and may continue

    def feed(self, data: bytes) -> list[CountFrame]:
        """Parse `data` (appended to what is buffered) and return the count frames completed."""
        self._buf += data
        return self._scan(final=False)

    def flush(self) -> list[CountFrame]:
        """Decide deferred length choices with what is buffered (call on line silence)."""
        return self._scan(final=True)

    def reset(self) -> None:
        """Drop buffered bytes (after a reconnect); counters and length history stay."""
        self._buf.clear()
        self._skip = 0
        self._in_garbage = False

    def _count_lengths(self) -> tuple[int, ...]:
        if self.frame_length is not None:
            return (self.frame_length,)
        if self.preferred_length == SHORT_COUNT_LENGTH:
            return (SHORT_COUNT_LENGTH, LONG_COUNT_LENGTH)
        return (LONG_COUNT_LENGTH, SHORT_COUNT_LENGTH)

    def _lengths_at(self, pos: int) -> tuple[int, ...]:
        if self._buf[pos : pos + 2] == DISTANCE_HEADER:
            return (DISTANCE_LENGTH,)
        return self._count_lengths()

    def _crc_ok(self, pos: int, length: int) -> bool:
        end = pos + length
        return end <= len(self._buf) and crc8(self._buf[pos : end - 1]) == self._buf[end - 1]

    def _next_header(self, start: int) -> int:
        hits = [i for i in (self._buf.find(COUNT_HEADER, start), self._buf.find(DISTANCE_HEADER, start)) if i >= 0]
        return min(hits) if hits else -1

    def _bad(self, reason: str) -> None:
        self.bad_frames += 1
        self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def _garbage(self, length: int, at_start: bool) -> None:
        counted = length - self._skip
        self._skip = max(0, self._skip - length)
        if counted > 0 and not (at_start and self._in_garbage):
            self._bad("garbage")

    def _valid_length_at(self, pos: int, final: bool) -> int | None:
        """The first length that validates at `pos`, None if none can, _WAIT if bytes are missing."""
        missing = False
        for length in self._lengths_at(pos):
            if pos + length > len(self._buf):
                missing = True
            elif self._crc_ok(pos, length):
                return length
        return _WAIT if missing and not final else None

    def _decide(self, pos: int, final: bool) -> tuple[str, int]:
        """("ok", length), ("bad:<reason>", span) or ("wait", 0) for the header at `pos`."""
        lengths = self._lengths_at(pos)
        chosen = None
        for length in lengths:
            if pos + length > len(self._buf):
                if final:
                    continue
                return "wait", 0
            if self._crc_ok(pos, length):
                chosen = length
                break
        if chosen is None:
            if any(pos + length > len(self._buf) for length in lengths):
                return "wait", 0  # may still complete; a partial frame is never dropped
            inner = self._next_header(pos + 1)
            span = max(lengths) if inner < 0 else min(max(lengths), inner - pos)
            # Another header before the expected end means this frame was cut short.
            return ("bad:truncated" if 0 <= inner < pos + lengths[0] else "bad:crc"), span
        inner = self._next_header(pos + 1)
        while 0 <= inner < pos + chosen - 1:
            inner_length = self._valid_length_at(inner, final)
            if inner_length == _WAIT:
                return "wait", 0
            if inner_length is not None:
                offset = inner - pos
                if offset in lengths and self._crc_ok(pos, offset):
                    return "ok", offset
                return "bad:truncated", offset
            inner = self._next_header(inner + 1)
        return "ok", chosen

    def _scan(self, final: bool) -> list[CountFrame]:
        out: list[CountFrame] = []
        buf = self._buf
        pos = 0
        while pos < len(buf):
            header = self._next_header(pos)
            if header < 0:
                keep = 1 if buf[-1:] in (b"P", b"D") else 0
                end = len(buf) - keep
                if end > pos:
                    self._garbage(end - pos, at_start=pos == 0)
                    self._in_garbage = True
                pos = end
                break
            if header > pos:
                self._garbage(header - pos, at_start=pos == 0)
            self._in_garbage = False
            self._skip = 0
            pos = header
            verdict, length = self._decide(pos, final)
            if verdict == "wait":
                break
            if verdict.startswith("bad:"):
                self._bad(verdict[4:])
                self._skip = length - 1
                pos += 1
                continue
            frame = bytes(buf[pos : pos + length])
            pos += length
            self.frames += 1
            if frame[:2] == DISTANCE_HEADER:
                self.distance_frames += 1
                continue
            self.count_frames += 1
            if self.frame_length is None:
                self.preferred_length = length
            out.append(decode_count_frame(frame))
        del buf[:pos]
        return out


@dataclasses.dataclass
class CounterDeltas:
    """Turns one sensor's cumulative u16 IN/OUT counters into per-frame deltas.

    The baseline is the pair of counters last accounted for. It starts at zero when the driver has
    just reset the device's counters; it is restored from the agent's store after a restart
    (`from_baseline`), so only crossings since the last stored frame count; and with neither
    (`last_in` None: a sensor first seen, its counters not reset) the first frame only sets it, since
    the crossings before it are not known to be new. A counter that drops is a u16 wrap only when it
    goes from at least WRAP_HIGH to below WRAP_LOW; any other drop (or a new sensor id) means the
    device reset (a power cycle), and the new values are the delta: never negative, never a re-count.
    The baseline is kept across reconnects, so a device that kept counting while unplugged yields
    exactly the crossings it saw meanwhile, and none twice.
    """

    last_in: int | None = 0
    last_out: int = 0
    sensor_id: int | None = None
    resets: int = 0

    def update(self, frame: CountFrame) -> tuple[int, int]:
        """(new IN crossings, new OUT crossings) since the previous frame."""
        if self.last_in is None:
            self.last_in, self.last_out, self.sensor_id = frame.count_in, frame.count_out, frame.sensor_id
            return 0, 0
        last_in = self.last_in
        went_down = [
            (new, old) for new, old in ((frame.count_in, last_in), (frame.count_out, self.last_out)) if new < old
        ]
        reset = any(not (old >= WRAP_HIGH and new < WRAP_LOW) for new, old in went_down)
        if frame.sensor_id is not None and self.sensor_id is not None and frame.sensor_id != self.sensor_id:
            reset = True
        if reset:
            self.resets += 1
            delta_in, delta_out = frame.count_in, frame.count_out
        else:
            delta_in = (frame.count_in - last_in) % COUNTER_MODULUS
            delta_out = (frame.count_out - self.last_out) % COUNTER_MODULUS
        self.last_in, self.last_out = frame.count_in, frame.count_out
        if frame.sensor_id is not None:
            self.sensor_id = frame.sensor_id
        return delta_in, delta_out

    def baseline(self) -> str:
        """The baseline as the text the driver stores ("in,out"); "" while there is none."""
        return "" if self.last_in is None else f"{self.last_in},{self.last_out}"

    @classmethod
    def from_baseline(cls, text: str, sensor_id: int | None) -> CounterDeltas | None:
        """The deltas of a sensor whose stored baseline is `text`; None when the text is not one."""
        parts = text.split(",")
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() and int(p) < COUNTER_MODULUS for p in parts):
            return None
        return cls(int(parts[0]), int(parts[1]), sensor_id)


def state_key(sensor_id: int | None) -> str:
    """The key of one sensor's baseline in the driver's state: by sensor id where frames carry one."""
    return "counters" if sensor_id is None else f"counters:{sensor_id:08x}"
