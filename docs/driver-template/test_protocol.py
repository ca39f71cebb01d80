"""Tests for the pure parser (TEMPLATE: copy to tests/drivers/mydevice/test_protocol.py and rename mydevice)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from drivers.mydevice.protocol import CounterDeltas, Counts, LineParser, encode_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GOLDEN = Path(__file__).parent / "golden"
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_all(data: bytes, chunk: int | None = None) -> tuple[LineParser, list[Counts]]:
    parser = LineParser()
    out: list[Counts] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        out += parser.feed(data[i : i + step])
    return parser, out


def test_a_line_from_the_manual_decodes() -> None:
    # Put the manual's own example bytes here, byte for byte, with the page they come from.
    _, lines = parse_all(b"C,12,7*" + b"%02X" % (0x43 ^ 0x2C ^ 0x31 ^ 0x32 ^ 0x2C ^ 0x37) + b"\r\n")
    assert lines == [Counts(12, 7)]


def test_a_bad_checksum_is_counted_and_the_next_line_still_parses() -> None:
    parser, lines = parse_all(b"C,1,0*00\r\n" + encode_line(2, 0))
    assert lines == [Counts(2, 0)] and parser.bad_reasons == {"checksum": 1}


def test_deltas_start_at_the_baseline_and_follow_the_wrap() -> None:
    deltas = CounterDeltas()
    assert deltas.update(Counts(65534, 3)) == (0, 0)
    assert deltas.update(Counts(1, 4)) == (3, 1)


def golden_cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if (p / "input.bin").exists()) if GOLDEN.exists() else []


@pytest.mark.parametrize("case", golden_cases(), ids=lambda p: p.name)
def test_golden_case(case: Path) -> None:
    # A regression test is a folder: input.bin (bytes from the device) and expected.jsonl (one line per reading).
    _, lines = parse_all((case / "input.bin").read_bytes())
    expected = [json.loads(line) for line in (case / "expected.jsonl").read_text().splitlines()]
    assert [{"entries": c.entries, "exits": c.exits} for c in lines] == expected


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 40))
def test_random_bytes_never_raise(data: bytes, chunk: int) -> None:
    parse_all(data, chunk)


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, 65535), st.integers(0, 65535)), min_size=1, max_size=8),
    st.lists(st.binary(max_size=20).filter(lambda b: b"\n" not in b), max_size=8),
)
def test_valid_lines_after_garbage_lines_are_all_recovered(counts: list[tuple[int, int]], junk: list[bytes]) -> None:
    data = b"".join((junk[i] + b"\n" if i < len(junk) else b"") + encode_line(*c) for i, c in enumerate(counts))
    _, lines = parse_all(data, 7)
    assert lines == [Counts(*c) for c in counts]
