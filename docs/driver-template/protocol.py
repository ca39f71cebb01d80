"""<Device name> serial format: pure parsing, no I/O, no clock.  (TEMPLATE: replace every <...>.)

This template parses a made-up NMEA-style line format so that it runs as shipped:

    C,<entries>,<exits>*<checksum>\\r\\n

`entries` and `exits` are the device's cumulative u16 counters in decimal; `checksum` is two hex
digits, the XOR of every byte between "C" and "*" inclusive of "C". Replace it with your device's
format, and write down the source of every byte (manual page, vendor document) in this docstring.

The parser never raises on any input and holds at most one line's worth of bytes.
"""

from __future__ import annotations

import dataclasses

MAX_LINE = 64
COUNTER_MODULUS = 1 << 16


def checksum(body: bytes) -> int:
    """XOR of the bytes (the NMEA rule)."""
    value = 0
    for byte in body:
        value ^= byte
    return value


def encode_line(entries: int, exits: int) -> bytes:
    """One line as the device sends it (used by tests; simulators write their own encoder)."""
    body = f"C,{entries % COUNTER_MODULUS},{exits % COUNTER_MODULUS}".encode()
    return body + f"*{checksum(body):02X}\r\n".encode()


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """One count line: the device's cumulative counters since power-on."""

    entries: int
    exits: int


class LineParser:
    """Streaming parser: feed bytes, get Counts; bad lines are counted by reason, never raised."""

    def __init__(self) -> None:
        self.frames = 0
        self.bad_frames = 0
        self.bad_reasons: dict[str, int] = {}
        self._buf = bytearray()

    def _bad(self, reason: str) -> None:
        self.bad_frames += 1
        self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def reset(self) -> None:
        """Drop buffered bytes (after a reconnect)."""
        self._buf.clear()

    def feed(self, data: bytes) -> list[Counts]:
        """Parse `data` (appended to what is buffered) and return the count lines completed."""
        self._buf += data
        out: list[Counts] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_LINE:  # no line is this long: resync on the next newline
                    self._bad("too long")
                    self._buf.clear()
                return out
            line = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[: end + 1]
            counts = self._decode(line)
            if counts is not None:
                self.frames += 1
                out.append(counts)

    def _decode(self, line: bytes) -> Counts | None:
        start = line.find(b"C,")
        if start < 0:
            self._bad("garbage")
            return None
        body, star, check = line[start:].partition(b"*")
        try:
            ok = bool(star) and int(check, 16) == checksum(body)
        except ValueError:
            ok = False
        if not ok:
            self._bad("checksum")
            return None
        fields = body.split(b",")
        if len(fields) != 3 or not all(f.isdigit() for f in fields[1:]):
            self._bad("fields")
            return None
        entries, exits = int(fields[1]), int(fields[2])
        if entries >= COUNTER_MODULUS or exits >= COUNTER_MODULUS:
            self._bad("range")
            return None
        return Counts(entries, exits)


@dataclasses.dataclass
class CounterDeltas:
    """Cumulative u16 counters to deltas: the first line sets the baseline.

    A drop from at least 64536 to below 1000 is a wrap; any other drop means the device restarted
    at zero, and the new values are counted in full. The driver stores `baseline()` with each reading
    and restores it with `from_baseline()` after a restart, so a restart counts only what is new.
    """

    last: Counts | None = None

    def update(self, counts: Counts) -> tuple[int, int]:
        """(new entries, new exits) since the previous line."""
        last, self.last = self.last, counts
        if last is None:
            return 0, 0
        pairs = ((counts.entries, last.entries), (counts.exits, last.exits))
        if any(new < old and not (old >= COUNTER_MODULUS - 1000 and new < 1000) for new, old in pairs):
            return counts.entries, counts.exits
        return (counts.entries - last.entries) % COUNTER_MODULUS, (counts.exits - last.exits) % COUNTER_MODULUS

    def baseline(self) -> str:
        """The baseline as text for driver state ("entries,exits"); "" while there is none."""
        return "" if self.last is None else f"{self.last.entries},{self.last.exits}"

    @classmethod
    def from_baseline(cls, text: str) -> CounterDeltas | None:
        """The deltas whose stored baseline is `text`; None when the text is not one."""
        parts = text.split(",")
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() and int(p) < COUNTER_MODULUS for p in parts):
            return None
        return cls(Counts(int(parts[0]), int(parts[1])))
