"""The pure LD2410 parser: byte-exact commands, published traces, golden cases, bad input, fuzzing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.ld2410.protocol import (
    Ack,
    LD2410Parser,
    PresenceHold,
    Report,
    command_frame,
    enable_config_command,
    end_config_command,
    engineering_command,
    format_firmware,
    read_firmware_command,
)
from firmware_sim.ld2410 import encode_ack, encode_report

GOLDEN = Path(__file__).parent / "golden"
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_all(data: bytes, chunk: int | None = None) -> tuple[LD2410Parser, list[Report | Ack]]:
    parser = LD2410Parser()
    frames: list[Report | Ack] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        frames += parser.feed(data[i : i + step])
    return parser, frames


@pytest.mark.parametrize(
    ("command", "trace"),
    [
        (enable_config_command(), "fd fc fb fa 04 00 ff 00 01 00 04 03 02 01"),
        (end_config_command(), "fd fc fb fa 02 00 fe 00 04 03 02 01"),
        (read_firmware_command(), "fd fc fb fa 02 00 a0 00 04 03 02 01"),
        (engineering_command(True), "fd fc fb fa 02 00 62 00 04 03 02 01"),
        (command_frame(0x0061), "fd fc fb fa 02 00 61 00 04 03 02 01"),
        (command_frame(0x00A1, b"\x07\x00"), "fd fc fb fa 04 00 a1 00 07 00 04 03 02 01"),
        (command_frame(0x00A5, b"\x01\x00"), "fd fc fb fa 04 00 a5 00 01 00 04 03 02 01"),
        (
            command_frame(0x0060, bytes.fromhex("0000 08000000 0100 08000000 0200 05000000")),
            "fd fc fb fa 14 00 60 00 00 00 08 00 00 00 01 00 08 00 00 00 02 00 05 00 00 00 04 03 02 01",
        ),
    ],
)
def test_commands_match_the_published_tx_traces(command: bytes, trace: str) -> None:
    assert command == bytes.fromhex(trace)


def test_engineering_off_is_command_0x0063() -> None:
    assert engineering_command(False) == bytes.fromhex("fd fc fb fa 02 00 63 00 04 03 02 01")


def test_firmware_version_formats_like_esphome() -> None:
    assert format_firmware(bytes.fromhex("00 00 02 01 16 24 06 22")) == "V1.02.22062416"
    assert format_firmware(b"\x00") == "unknown"


def golden_cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if (p / "input.bin").exists())


def test_there_are_enough_golden_cases() -> None:
    assert len(golden_cases()) >= 5


def as_json(frame: Report | Ack) -> dict[str, object]:
    if isinstance(frame, Ack):
        return {"ack": {"cmd": frame.cmd, "status": frame.status, "data": frame.data.hex()}}
    value = dataclasses.asdict(frame)
    if frame.moving_gates is None:
        value = {k: v for k, v in value.items() if v is not None}
    else:
        value["moving_gates"], value["still_gates"] = list(frame.moving_gates), list(frame.still_gates or ())
    return {"report": value}


@pytest.mark.parametrize("chunk", [None, 1, 5])
@pytest.mark.parametrize("case", golden_cases(), ids=lambda p: p.name)
def test_golden_case(case: Path, chunk: int | None) -> None:
    parser, frames = parse_all((case / "input.bin").read_bytes(), chunk)
    lines = [json.loads(line) for line in (case / "expected.jsonl").read_text().splitlines()]
    stats = lines.pop()["stats"]
    assert [as_json(f) for f in frames] == lines
    assert {"reports": parser.reports, "acks": parser.acks, "bad_frames": parser.bad_frames} == stats


def test_report_presence_follows_the_target_state() -> None:
    _, frames = parse_all(b"".join(encode_report(t) for t in range(4)))
    assert [f.present for f in frames if isinstance(f, Report)] == [False, True, True, True]


def test_failed_ack_is_not_ok() -> None:
    _, frames = parse_all(encode_ack(0x60, 1))
    assert frames == [Ack(0x60, 1, b"")] and not frames[0].ok  # type: ignore[union-attr]


def test_frame_with_an_impossible_length_is_counted_and_skipped() -> None:
    parser, frames = parse_all(b"\xf4\xf3\xf2\xf1\x00\x10" + encode_report(1))
    assert len(frames) == 1 and parser.bad_reasons == {"length": 1}


def test_basic_report_with_the_wrong_type_byte_is_a_bad_payload() -> None:
    frame = bytearray(encode_report(1))
    frame[6] = 0x07
    parser, frames = parse_all(bytes(frame) + encode_report(2))
    assert len(frames) == 1 and parser.bad_reasons == {"payload": 1}


def test_buffer_stays_bounded_on_endless_garbage() -> None:
    parser = LD2410Parser()
    for _ in range(1000):
        parser.feed(b"\x00\x11\x22 no frames here \xf4")
    assert len(parser._buf) <= 3
    assert parser.bad_reasons == {"garbage": 1}


def test_presence_hold_reports_absence_only_after_the_hold() -> None:
    hold = PresenceHold(hold_s=2.0)
    assert hold.update(True, 0.0) is True
    assert hold.update(False, 1.0) is None
    assert hold.update(True, 1.5) is None  # back before the hold ran out: no flicker
    assert hold.update(False, 2.0) is None
    assert hold.update(False, 3.9) is None
    assert hold.update(False, 4.0) is False
    assert hold.update(False, 9.0) is None


def test_presence_hold_zero_reports_every_change_and_the_first_state() -> None:
    hold = PresenceHold(hold_s=0.0)
    assert [hold.update(p, float(i)) for i, p in enumerate([False, False, True, False])] == [False, None, True, False]


@FUZZ
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=40))
def test_random_bytes_never_raise(data: bytes, chunk: int) -> None:
    parser, _ = parse_all(data, chunk)
    assert len(parser._buf) <= 6 + 64 + 4


VALID = st.one_of(
    st.builds(lambda t, e: encode_report(t, engineering=e), st.integers(0, 3), st.booleans()),
    st.builds(lambda c, s, d: encode_ack(c, s, d), st.integers(0, 0xFF), st.integers(0, 1), st.binary(max_size=8)),
)


@FUZZ
@given(st.lists(VALID, min_size=1, max_size=6), st.lists(st.tuples(st.integers(0, 500), st.integers(0, 255))))
def test_mutated_valid_frames_never_raise(frames: list[bytes], mutations: list[tuple[int, int]]) -> None:
    data = bytearray(b"".join(frames))
    for index, value in mutations:
        data[index % len(data)] = value
    parse_all(bytes(data), 7)


@FUZZ
@given(
    st.lists(VALID, min_size=1, max_size=6),
    st.lists(st.binary(max_size=20).filter(lambda b: b"\xf4\xf3" not in b and b"\xfd\xfc" not in b), max_size=7),
    st.integers(min_value=1, max_value=30),
)
def test_valid_frames_embedded_in_garbage_are_all_recovered(frames: list[bytes], junk: list[bytes], chunk: int) -> None:
    data = b""
    for i, frame in enumerate(frames):
        data += (junk[i] if i < len(junk) else b"") + frame
    _, expected = parse_all(b"".join(frames))
    _, got = parse_all(data, chunk)
    assert got == expected and len(got) == len(frames)
