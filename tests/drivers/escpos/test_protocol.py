"""The pure ESC/POS tokenizer and receipt reader: golden folders, command lengths, code pages, fuzzing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.escpos.protocol import EscPosParser, PrintedReceipt
from drivers.escpos.receipt import ReceiptPatterns, parse_amount, receipt_to_basket
from firmware_sim.escpos import SimBasket, SimLine, encode_receipt

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.bin").exists())
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(data: bytes, chunk: int | None = None) -> tuple[EscPosParser, list[PrintedReceipt]]:
    parser = EscPosParser()
    step = chunk or max(1, len(data))
    receipts = []
    for i in range(0, len(data), step):
        receipts += parser.feed(data[i : i + step])
    return parser, receipts + parser.flush()


def baskets(data: bytes, chunk: int | None = None) -> list[dict[str, object]]:
    found = [receipt_to_basket(r).basket for r in parse(data, chunk)[1]]
    return json.loads(json.dumps([dataclasses.asdict(b) for b in found if b is not None]))


def test_there_are_at_least_twenty_golden_cases_three_by_hand() -> None:
    assert len(CASES) >= 20
    assert len([c for c in CASES if c.startswith("spec_")]) >= 3


@pytest.mark.parametrize("case", CASES)
def test_golden_case_parses_into_the_expected_baskets(case: str) -> None:
    expected = [json.loads(line) for line in (GOLDEN / case / "expected.jsonl").read_text("utf-8").splitlines()]
    assert baskets((GOLDEN / case / "input.bin").read_bytes()) == expected


@pytest.mark.parametrize("chunk", [1, 5, 7])
def test_a_stream_split_anywhere_parses_like_one_read(chunk: int) -> None:
    data = b"".join((GOLDEN / case / "input.bin").read_bytes() for case in CASES)
    assert baskets(data, chunk) == baskets(data)


def test_raster_image_payload_is_skipped_not_read_as_text() -> None:
    image = b"\x1dv0\x00\x03\x00\x02\x00" + b"TOTAL\n"  # 3 bytes x 2 rows = exactly these 6 bytes
    _, receipts = parse(b"\x1b@" + image + b"Tea    1.00\nTOTAL  1.00\n\x1dV\x00")
    assert [line.text for line in receipts[0].lines] == ["Tea    1.00", "TOTAL  1.00"]
    assert receipts[0].images == 1


def test_barcode_both_forms_are_skipped_and_kept() -> None:
    data = b"\x1b@\x1dk\x04AB\nC\x00\x1dk\x49\x03x\ny" + b"Tea  1.00\nTOTAL  1.00\n\x1dV\x00"
    _, receipts = parse(data)
    assert receipts[0].barcodes == ("AB\nC", "x\ny")
    assert receipts[0].lines[0].text == "Tea  1.00"


def test_qr_code_data_is_kept_and_not_printed() -> None:
    qr = b"\x1d(k\x0c\x00\x31\x50\x30https://x"
    _, receipts = parse(b"\x1b@" + qr + b"Tea  1.00\nTOTAL  1.00\n\x1dV\x00")
    assert receipts[0].qr_codes == ("https://x",)
    assert len(receipts[0].lines) == 2


def test_cut_with_feed_takes_two_arguments_and_plain_cut_one() -> None:
    parser, receipts = parse(b"A  1.00\nTOTAL 1.00\n\x1dVA\x41B  2.00\nTOTAL 2.00\n\x1dV\x01C  3.00\n")
    assert [r.lines[0].text for r in receipts] == ["A  1.00", "B  2.00", "C  3.00"]
    assert parser.bad_frames == 0


@pytest.mark.parametrize(
    ("table", "raw", "text"),
    [
        (0, b"\x81", "ü"),
        (2, b"\xd5", "ı"),
        (16, b"\x80", "€"),
        (19, b"\xd5", "€"),
        (17, b"\x95", "Х"),
        (40, b"\xa4", "€"),
    ],
)
def test_esc_t_switches_the_code_page(table: int, raw: bytes, text: str) -> None:
    _, receipts = parse(b"\x1b@\x1bt" + bytes([table]) + raw + b"\n\x1dV\x00")
    assert receipts[0].lines[0].text == text


def test_esc_at_resets_the_code_page_to_the_default() -> None:
    _, receipts = parse(b"\x1b@\x1bt\x10\x80\n\x1b@\x80\n")
    assert [r.lines[0].text for r in receipts] == ["€", "Ç"]


def test_drawer_kick_after_the_cut_belongs_to_the_receipt_just_cut() -> None:
    parser, receipts = parse(b"\x1b@Tea  1.00\nTOTAL  1.00\n\x1dVB\x00\x1bp\x00\x19\xfa\x1b@Milk  2.00\nTOTAL 2.00\n")
    assert [r.drawer_kicks for r in receipts] == [1, 0]
    assert receipt_to_basket(receipts[0]).basket.payment == "cash"  # type: ignore[union-attr]
    assert parser.drawer_kicks == 1


def test_unknown_commands_and_stray_control_bytes_are_counted() -> None:
    parser, _ = parse(b"\x1b\xff\x07\x1d\xfe")
    assert parser.bad_reasons == {"unknown_command": 2, "control_byte": 1}


def test_tab_always_separates_columns_by_two_spaces_or_more() -> None:
    _, receipts = parse(b"1234567\tX\n\x1dV\x00")
    assert receipts[0].lines[0].text == "1234567" + " " * 9 + "X"


@pytest.mark.parametrize(
    ("text", "cents"),
    [("2.40", 240), ("2,40", 240), ("1.234,56 €", 123456), ("$1,234.56", 123456), ("2,40-", -240), ("-$2.40", -240),
     ("EUR 12,34", 1234), ("abc", None)],
)  # fmt: skip
def test_amounts_in_common_notations(text: str, cents: int | None) -> None:
    assert parse_amount(text) == cents


def test_custom_item_pattern_reads_a_layout_the_defaults_do_not() -> None:
    patterns = ReceiptPatterns(items=(r"^(?P<total>{amount})\s+(?P<name>.+)$",)).compile()
    _, receipts = parse(b"2.40 Croissant\nTOTAL 2.40\n")
    basket = receipt_to_basket(receipts[0], patterns).basket
    assert basket is not None and basket.lines[0].name == "Croissant" and not basket.flagged


def test_a_bad_custom_pattern_names_its_key() -> None:
    with pytest.raises(ValueError, match=r"^total"):
        ReceiptPatterns(total=r"TOTAL (?P<total>[").compile()


def test_return_policy_footer_does_not_make_a_sale_a_refund() -> None:
    _, receipts = parse(b"Tea  1.00\nTOTAL  1.00\nReturn policy: 30 days\n")
    assert receipt_to_basket(receipts[0]).basket.kind == "sale"  # type: ignore[union-attr]


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_and_buffers_stay_bounded(data: bytes) -> None:
    parser = EscPosParser()
    for receipt in parser.feed(data) + parser.flush():
        receipt_to_basket(receipt)
    assert len(parser._buf) == 0


SAMPLE = encode_receipt(
    SimBasket("9", 1_800_000_000 * 10**9, (SimLine("Brötchen", "bakery", 2, 45), SimLine("Milch 1L", "dairy", 1, 119)),
              "sale", "cash", "boulangerie")
)  # fmt: skip


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255)), max_size=12), st.integers(1, 64))
def test_mutated_receipts_never_raise(mutations: list[tuple[int, int]], chunk: int) -> None:
    data = bytearray(SAMPLE)
    for index, value in mutations:
        data[index] = value
    parser = EscPosParser()
    received = []
    for i in range(0, len(data), chunk):
        received += parser.feed(bytes(data[i : i + chunk]))
    for receipt in received + parser.flush():
        receipt_to_basket(receipt)


@FUZZ
@given(st.binary(max_size=300).filter(lambda b: b"\x1b" not in b and b"\x1d" not in b and b"\x1c" not in b))
def test_a_receipt_after_garbage_and_an_init_is_recovered(garbage: bytes) -> None:
    parser = EscPosParser()
    receipts = parser.feed(garbage + b"\x1dV\x00" + SAMPLE) + parser.flush()
    found = [receipt_to_basket(r).basket for r in receipts]
    assert any(b is not None and b.source_id == "9" and b.total_cents == 209 for b in found)
