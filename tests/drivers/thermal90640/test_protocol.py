"""The pure GY-MCU90640 parser: commands, checksum, golden cases, the emissivity trap, fuzzing."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.thermal90640.protocol import (
    FRAME_LENGTH,
    Thermal90640Parser,
    ThermalFrame,
    auto_mode_command,
    baud_command,
    emissivity_command,
    frame_checksum,
    query_emissivity_command,
    query_mode_command,
    rate_command,
    save_settings_command,
)

GOLDEN = Path(__file__).parent / "golden"
FUZZ = settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def handmade_frame(pixels: list[int], ta_c100: int) -> bytes:
    """A frame built straight from the manual's table, independent of both encoder and parser."""
    words = [0x5A5A, 0x0602, *[p & 0xFFFF for p in pixels], ta_c100 & 0xFFFF]
    return struct.pack(f"<{len(words)}H", *words) + struct.pack("<H", sum(words) & 0xFFFF)


def parse_all(data: bytes, chunk: int | None = None) -> tuple[Thermal90640Parser, list[ThermalFrame]]:
    parser = Thermal90640Parser()
    frames: list[ThermalFrame] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        frames += parser.feed(data[i : i + step])
    return parser, frames


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (auto_mode_command(), "A5 35 02 DC"),
        (query_mode_command(), "A5 35 01 DB"),
        (rate_command(0.5), "A5 25 00 CA"),
        (rate_command(1), "A5 25 01 CB"),
        (rate_command(2), "A5 25 02 CC"),
        (rate_command(4), "A5 25 03 CD"),
        (rate_command(8), "A5 25 04 CE"),
        (baud_command(9600), "A5 15 01 BB"),
        (baud_command(115200), "A5 15 02 BC"),
        (baud_command(460800), "A5 15 03 BD"),
        (emissivity_command(0.95), "A5 45 5F 49"),
        (query_emissivity_command(), "A5 55 01 FB"),
        (save_settings_command(), "A5 65 01 0B"),
    ],
)
def test_commands_match_the_manual_table(built: bytes, expected: str) -> None:
    assert built == bytes.fromhex(expected)


def test_unknown_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        rate_command(16)


def test_manual_example_pixels_decode_as_signed_centidegrees() -> None:
    frame = handmade_frame([0x0E6E, 0x0E69, 0x0E5A] + [2150] * 764 + [-40], 0x0E8D)
    assert frame[:10] == bytes.fromhex("5A5A 0206 6E0E 690E 5A0E".replace(" ", ""))
    _, frames = parse_all(frame)
    assert frames[0].pixels[0, :3].tolist() == [3694, 3689, 3674]  # 36.94 °C first, as in the manual
    assert frames[0].pixels[23, 31] == -40
    assert frames[0].ta_c100 == 0x0E8D
    assert frames[0].pixels.shape == (24, 32)


def test_checksum_covers_the_header_words() -> None:
    frame = handmade_frame([0] * 768, 0)
    assert frame_checksum(frame) == (0x5A5A + 0x0602) & 0xFFFF == int.from_bytes(frame[-2:], "little")


def test_emissivity_reply_alone_is_remembered_and_not_bad() -> None:
    parser, frames = parse_all(bytes.fromhex("5A5A5F13"))
    assert (frames, parser.emissivity, parser.replies, parser.bad_frames) == ([], 0.95, 1, 0)


def test_reply_right_before_a_frame_does_not_hide_it() -> None:
    frame = handmade_frame([2300] * 768, 2500)
    parser, frames = parse_all(bytes.fromhex("5A5A02B6") + frame)  # 5A 5A 02 ... but not 06
    assert len(frames) == 1 and parser.bad_frames == 0 and parser.emissivity == 0.02


def _golden_cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if (p / "input.bin").exists())


def test_there_are_enough_golden_cases() -> None:
    assert len(_golden_cases()) >= 6


@pytest.mark.parametrize("case", _golden_cases(), ids=lambda p: p.name)
@pytest.mark.parametrize("chunk", [None, 1, 97])
def test_golden_case(case: Path, chunk: int | None) -> None:
    lines = [json.loads(line) for line in (case / "expected.jsonl").read_text().splitlines() if line]
    expected_frames, stats = lines[:-1], lines[-1]["stats"]
    parser, frames = parse_all((case / "input.bin").read_bytes(), chunk=chunk)
    assert [{"ta_c100": f.ta_c100, "pixels": f.pixels.ravel().tolist()} for f in frames] == expected_frames
    assert {
        "frames": parser.frames,
        "bad_frames": parser.bad_frames,
        "bad_reasons": parser.bad_reasons,
        "replies": parser.replies,
        "emissivity": parser.emissivity,
    } == stats
    assert parser.buffered() == 0


def test_partial_frame_waits_for_the_rest() -> None:
    frame = handmade_frame(list(range(768)), 1)
    parser = Thermal90640Parser()
    assert parser.feed(frame[:1000]) == []
    assert parser.feed(frame[1000:])[0].pixels[0, 5] == 5
    assert parser.bad_frames == 0


def test_buffer_stays_bounded_on_endless_garbage() -> None:
    parser = Thermal90640Parser()
    for _ in range(500):
        parser.feed(b"\x00\x5a\x5a\x13\x5a" * 64)
    assert parser.buffered() <= 4
    assert parser.bad_reasons["garbage"] >= 1


@FUZZ
@given(st.binary(max_size=4000), st.integers(min_value=1, max_value=600))
def test_random_bytes_never_raise(data: bytes, chunk: int) -> None:
    parser, _ = parse_all(data, chunk=chunk)
    assert parser.buffered() < FRAME_LENGTH


@FUZZ
@given(
    st.lists(st.integers(-32768, 32767), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 4 * FRAME_LENGTH), st.integers(0, 255)), max_size=12),
    st.integers(min_value=1, max_value=900),
)
def test_mutated_frames_never_raise(values: list[int], mutations: list[tuple[int, int]], chunk: int) -> None:
    data = bytearray(b"".join(handmade_frame([v] * 768, v) for v in values))
    for index, value in mutations:
        data[index % len(data)] = value
    parser, frames = parse_all(bytes(data), chunk=chunk)
    assert len(frames) + parser.bad_frames >= 1 or not values


@FUZZ
@given(
    st.lists(st.tuples(st.binary(max_size=60), st.integers(-4000, 12000)), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=2000),
)
def test_valid_frames_embedded_in_garbage_are_all_recovered(items: list[tuple[bytes, int]], chunk: int) -> None:
    data, expected = b"", []
    for garbage, value in items:
        pixels = (np.arange(768) + value).astype(np.int16).tolist()
        data += garbage + handmade_frame(pixels, value)
        expected.append(value)
    _, frames = parse_all(data, chunk=chunk)
    assert [f.ta_c100 for f in frames] == expected


def test_bytes_that_would_make_a_reply_ending_on_a_header_do_not_eat_the_frame() -> None:
    frame = handmade_frame([2300] * 768, 2500)
    parser, frames = parse_all(b"\x5a\x5a\xa6" + frame)  # 5A 5A A6 5A has a valid sum, but 1.66 is no emissivity
    assert len(frames) == 1 and parser.replies == 0 and parser.bad_reasons == {"garbage": 1}


def test_frame_ending_in_5a_leaves_nothing_behind() -> None:
    for ta in range(0, 400):  # some of these frames end in a checksum byte of 0x5A
        frame = handmade_frame([2200] * 768, ta)
        parser = Thermal90640Parser()
        assert len(parser.feed(frame)) == 1 and parser.buffered() == 0
        assert len(parser.feed(b"\x5a" + frame[1:])) == 1 and parser.bad_frames == 0
