"""Modbus RTU people counter: our register map, CRC-16/MODBUS and FC03 framing; pure, no I/O, no clock.

RTU frame: `addr:u8 function:u8 data... crc:u16 (low byte first)`; CRC-16/MODBUS is init 0xFFFF,
reflected polynomial 0xA001 (protocols.md 3.3). Register values are big-endian u16; a u32 spans two
registers, high word first.

Our register map ("shopkeeper counter map v1", Gauger-style; holding registers, FC03, also FC04):

    reg  name            type  meaning
    0-1  entries         u32   people who entered since power-on (wraps at 2**32)
    2-3  exits           u32   people who left since power-on
    4    status          u16   bit 0 running, bit 1 beam obstructed, bit 2 tamper
    5    firmware        u16   major << 8 | minor
    6    boot_count      u16   power-ons so far; a change means the counters restarted at zero
    7    model           u16   0x5343 ("SC")
    8    reserved        u16   0

Reading past register 8 gives exception 02 (illegal data address).
"""

from __future__ import annotations

import dataclasses
import struct

REGISTER_COUNT = 9
MODEL = 0x5343
STATUS_RUNNING, STATUS_OBSTRUCTED, STATUS_TAMPER = 0x1, 0x2, 0x4
READ_HOLDING = 0x03
READ_INPUT = 0x04
EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "device failure"}
COUNTER_MODULUS = 1 << 32
WRAP_HIGH = COUNTER_MODULUS - (1 << 20)
WRAP_LOW = 1 << 20
MAX_FRAME = 256


def _crc16_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS: init 0xFFFF, reflected polynomial 0xA001, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC16_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """The body followed by its CRC, low byte first."""
    return body + struct.pack("<H", crc16(body))


def read_request(slave: int, start: int = 0, count: int = REGISTER_COUNT, function: int = READ_HOLDING) -> bytes:
    """A read request, e.g. `01 03 00 00 00 02 C4 0B` for two registers from 0."""
    return with_crc(struct.pack(">BBHH", slave, function, start, count))


@dataclasses.dataclass(frozen=True, slots=True)
class RegisterReply:
    """A normal read reply: the register values."""

    slave: int
    function: int
    registers: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ExceptionReply:
    """An exception reply (function | 0x80, code)."""

    slave: int
    function: int
    code: int

    @property
    def reason(self) -> str:
        """The code's name from the Modbus spec."""
        return EXCEPTION_NAMES.get(self.code, f"exception {self.code}")


Reply = RegisterReply | ExceptionReply


@dataclasses.dataclass(frozen=True, slots=True)
class CounterState:
    """Our register map, decoded."""

    entries: int
    exits: int
    status: int
    firmware: str
    boot_count: int
    model: int


def decode_counter(registers: tuple[int, ...]) -> CounterState | None:
    """Registers 0-7 as a CounterState, or None if there are too few or the model is wrong."""
    if len(registers) < 8 or registers[7] != MODEL:
        return None
    entries = registers[0] << 16 | registers[1]
    exits = registers[2] << 16 | registers[3]
    firmware = f"{registers[5] >> 8}.{registers[5] & 0xFF}"
    return CounterState(entries, exits, registers[4], firmware, registers[6], registers[7])


class ReplyParser:
    """Finds the reply from one slave to one function in a byte stream; resyncs by CRC.

    RTU frames are delimited by silence, which pyserial cannot see, so the parser instead looks for
    `addr function` (or `function | 0x80`) with a length that makes the CRC check. Bytes before a
    valid reply are counted as one bad frame ("garbage" or "crc").
    """

    def __init__(self, slave: int, function: int = READ_HOLDING) -> None:
        self.slave, self.function = slave, function
        self.frames = 0
        self.bad_frames = 0
        self.bad_reasons: dict[str, int] = {}
        self._buf = bytearray()

    def count_bad(self, reason: str) -> None:
        """Count one bad frame by reason."""
        self.bad_frames += 1
        self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def feed(self, data: bytes) -> list[Reply]:
        """Parse `data` (appended to what is buffered) and return the replies completed."""
        self._buf += data
        out: list[Reply] = []
        while True:
            found = self._find()
            if found is None:
                break
            start, end, reply = found
            if start:
                self.count_bad(self._reason(start))
            del self._buf[:end]
            self.frames += 1
            out.append(reply)
        if len(self._buf) > MAX_FRAME:  # no frame can start this far back
            self.count_bad(self._reason(len(self._buf) - MAX_FRAME))
            del self._buf[: len(self._buf) - MAX_FRAME]
        return out

    def reset(self) -> None:
        """Drop buffered bytes without counting them (after a reconnect)."""
        self._buf.clear()

    def flush(self) -> None:
        """End of a transaction (a reply arrived or timed out): what is buffered is not a reply."""
        if self._buf:
            self.count_bad(self._reason(len(self._buf)))
        self._buf.clear()

    def _reason(self, length: int) -> str:
        head = self._buf[:2]
        return "crc" if length >= 5 and head[0] == self.slave and head[1] & 0x7F == self.function else "garbage"

    def _find(self) -> tuple[int, int, Reply] | None:
        buf = self._buf
        for start in range(len(buf) - 1):
            if buf[start] != self.slave:
                continue
            function = buf[start + 1]
            if function == self.function | 0x80:
                end = start + 5
                if end <= len(buf) and crc16(buf[start : end - 2]) == struct.unpack_from("<H", buf, end - 2)[0]:
                    return start, end, ExceptionReply(self.slave, self.function, buf[start + 2])
            elif function == self.function and start + 2 < len(buf):
                count = buf[start + 2]
                end = start + 3 + count + 2
                if count % 2 == 0 and end <= len(buf):
                    (crc,) = struct.unpack_from("<H", buf, end - 2)
                    if crc16(buf[start : end - 2]) == crc:
                        values = struct.unpack_from(f">{count // 2}H", buf, start + 3)
                        return start, end, RegisterReply(self.slave, function, tuple(values))
        return None


@dataclasses.dataclass
class CounterDeltas:
    """Turns the cumulative u32 entries/exits into deltas, like Terabee's CounterDeltas.

    The driver restores the baseline stored with its last readings (`from_baseline`), so a restart of
    the agent counts only what is new. Without one, the first reading sets it (the counter may have
    counted for days before the agent started; those crossings are not ours to report). A changed
    boot_count means the device restarted at zero, so the new values are counted in full. A drop from
    at least WRAP_HIGH to below WRAP_LOW is a u32 wrap; any other drop is a reset: never a negative,
    never a re-count.
    """

    last_entries: int | None = None
    last_exits: int = 0
    boot_count: int | None = None
    resets: int = 0

    def update(self, state: CounterState) -> tuple[int, int]:
        """(new entries, new exits) since the previous reading."""
        if self.last_entries is None:
            self.last_entries, self.last_exits, self.boot_count = state.entries, state.exits, state.boot_count
            return 0, 0
        pairs = ((state.entries, self.last_entries), (state.exits, self.last_exits))
        dropped = [(new, old) for new, old in pairs if new < old]
        reset = state.boot_count != self.boot_count or any(
            not (old >= WRAP_HIGH and new < WRAP_LOW) for new, old in dropped
        )
        if reset:
            self.resets += 1
            entries, exits = state.entries, state.exits
        else:
            entries = (state.entries - self.last_entries) % COUNTER_MODULUS
            exits = (state.exits - self.last_exits) % COUNTER_MODULUS
        self.last_entries, self.last_exits, self.boot_count = state.entries, state.exits, state.boot_count
        return entries, exits

    def baseline(self) -> str:
        """The baseline as the text the driver stores ("entries,exits,boot_count"); "" while there is none."""
        return "" if self.last_entries is None else f"{self.last_entries},{self.last_exits},{self.boot_count}"

    @classmethod
    def from_baseline(cls, text: str) -> CounterDeltas | None:
        """The deltas whose stored baseline is `text`; None when the text is not one."""
        parts = text.split(",")
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
            return None
        entries, exits, boot_count = (int(p) for p in parts)
        if max(entries, exits) >= COUNTER_MODULUS or boot_count >= 1 << 16:
            return None
        return cls(entries, exits, boot_count)


def state_key(slave: int) -> str:
    """The key of one counter's baseline in the driver's state (its registers are per slave address)."""
    return f"counters:slave-{slave}"
