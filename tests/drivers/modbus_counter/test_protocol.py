"""The pure Modbus RTU framing and our register map: CRC, requests, golden replies, deltas, fuzzing."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.modbus_counter.protocol import (
    CounterDeltas,
    CounterState,
    ExceptionReply,
    RegisterReply,
    ReplyParser,
    crc16,
    decode_counter,
    read_request,
)
from firmware_sim.modbus_counter import frame

GOLDEN = Path(__file__).parent / "golden"
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("hex_bytes", "crc"),
    [("01 03 00 00 00 02", "C4 0B"), ("01 03 04 00 2A 00 27", "9B E1"), ("01 03 00 00 00 0A", "C5 CD")],
)
def test_crc16_reproduces_the_verified_examples(hex_bytes: str, crc: str) -> None:
    assert struct.pack("<H", crc16(bytes.fromhex(hex_bytes))) == bytes.fromhex(crc)


def test_read_requests_are_byte_exact() -> None:
    assert read_request(1, 0, 2) == bytes.fromhex("01 03 00 00 00 02 C4 0B")
    assert read_request(1, 0, 10) == bytes.fromhex("01 03 00 00 00 0A C5 CD")
    assert read_request(1) == bytes.fromhex("01 03 00 00 00 09 85 CC")


def parse_all(data: bytes, chunk: int | None = None) -> tuple[ReplyParser, list[RegisterReply | ExceptionReply]]:
    parser = ReplyParser(1)
    replies: list[RegisterReply | ExceptionReply] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        replies += parser.feed(data[i : i + step])
    parser.flush()
    return parser, replies


def golden_cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if (p / "input.bin").exists())


def test_there_are_enough_golden_cases() -> None:
    assert len(golden_cases()) >= 5


@pytest.mark.parametrize("chunk", [None, 1, 4])
@pytest.mark.parametrize("case", golden_cases(), ids=lambda p: p.name)
def test_golden_case(case: Path, chunk: int | None) -> None:
    parser, replies = parse_all((case / "input.bin").read_bytes(), chunk)
    lines = [json.loads(line) for line in (case / "expected.jsonl").read_text().splitlines()]
    stats = lines.pop()["stats"]
    got = [
        {"exception": r.code} if isinstance(r, ExceptionReply) else {"registers": list(r.registers)} for r in replies
    ]
    assert got == lines
    assert {"frames": parser.frames, "bad_frames": parser.bad_frames} == stats


def test_the_register_map_decodes() -> None:
    state = decode_counter((1, 0x1170, 0, 39, 0x0001, 0x0103, 4, 0x5343, 0))
    assert state == CounterState(entries=70000, exits=39, status=1, firmware="1.3", boot_count=4, model=0x5343)


def test_a_device_with_another_model_register_is_refused() -> None:
    assert decode_counter((0, 1, 0, 1, 1, 0x0103, 1, 0x1234, 0)) is None
    assert decode_counter((0, 1)) is None


def test_exception_reply_names_its_code() -> None:
    _, replies = parse_all(frame(bytes([1, 0x83, 0x02])))
    assert replies == [ExceptionReply(1, 3, 2)] and replies[0].reason == "illegal data address"  # type: ignore[union-attr]


def state(entries: int, exits: int, boot: int = 1) -> CounterState:
    return CounterState(entries, exits, 1, "1.3", boot, 0x5343)


def test_deltas_take_the_first_reading_as_the_baseline() -> None:
    deltas = CounterDeltas()
    assert deltas.update(state(500, 480)) == (0, 0)
    assert deltas.update(state(503, 481)) == (3, 1)


def test_deltas_handle_u32_wrap() -> None:
    deltas = CounterDeltas()
    deltas.update(state(2**32 - 2, 10))
    assert deltas.update(state(1, 10)) == (3, 0)
    assert deltas.resets == 0


def test_deltas_count_in_full_after_a_new_boot_count() -> None:
    deltas = CounterDeltas()
    deltas.update(state(500, 480, boot=1))
    assert deltas.update(state(2, 1, boot=2)) == (2, 1)
    assert deltas.resets == 1


def test_deltas_treat_an_unexplained_drop_as_a_reset() -> None:
    deltas = CounterDeltas()
    deltas.update(state(500, 480))
    assert deltas.update(state(3, 0)) == (3, 0)


def test_buffer_stays_bounded_on_endless_garbage() -> None:
    parser = ReplyParser(1)
    for _ in range(500):
        parser.feed(b"\x01\x03\xff no reply here")
    assert len(parser._buf) <= 256


@FUZZ
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=40))
def test_random_bytes_never_raise(data: bytes, chunk: int) -> None:
    parse_all(data, chunk)


REPLY = st.one_of(
    st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=12).map(
        lambda v: frame(bytes([1, 3, 2 * len(v)]) + struct.pack(f">{len(v)}H", *v))
    ),
    st.integers(1, 4).map(lambda code: frame(bytes([1, 0x83, code]))),
)


@FUZZ
@given(st.lists(REPLY, min_size=1, max_size=5), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255))))
def test_mutated_valid_replies_never_raise(replies: list[bytes], mutations: list[tuple[int, int]]) -> None:
    data = bytearray(b"".join(replies))
    for index, value in mutations:
        data[index % len(data)] = value
    parse_all(bytes(data), 3)


@FUZZ
@given(REPLY, st.binary(max_size=30).filter(lambda b: 1 not in b))
def test_a_reply_after_line_noise_is_recovered(reply: bytes, noise: bytes) -> None:
    # One request, one reply: the driver flushes between transactions, so noise precedes one reply.
    _, expected = parse_all(reply)
    parser, got = parse_all(noise + reply, 5)
    assert got == expected and len(got) == 1
    assert parser.bad_frames == (1 if noise else 0)
