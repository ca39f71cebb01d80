"""Vendor export shapes (fixtures/cases.json, each naming its source): loaded exactly, or refused naming the setting."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.driver_api.kit import RecordingSink
from drivers.pos_dropfolder.amounts import AmountError, detect_decimal, parse_amount
from drivers.pos_dropfolder.driver import PosDropFolderDriver
from drivers.pos_dropfolder.protocol import DropFileError, ExportFormat, parse_csv
from drivers.pos_dropfolder.text_decoding import DecodeError, decode_export

FIXTURES = Path(__file__).parent / "fixtures"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text("utf-8"))
IDS = [f"{c['file'].removesuffix('.csv')}-{'-'.join(f'{k}={v}' for k, v in c['options'].items())}" for c in CASES]


def as_json(baskets: list[Any]) -> list[dict[str, Any]]:
    return json.loads(json.dumps([dataclasses.asdict(b) for b in baskets]))


def test_the_corpus_covers_every_vendor_delimiter_decimal_comma_and_bom() -> None:
    files = {c["file"] for c in CASES}
    for vendor in ("square_", "shopify_", "clover_"):
        assert any(f.startswith(vendor) for f in files), vendor
    raw = {f: (FIXTURES / f).read_bytes() for f in files}
    assert any(b.startswith(b"\xef\xbb\xbf") for b in raw.values()) and any(
        b[:1] not in (b"\xef", b"\xff") for b in raw.values()
    )
    assert any(b";" in b.split(b"\n")[0] for b in raw.values()) and any(b"decimal_comma" in f.encode() for f in files)
    assert all(c["source"] for c in CASES) and any("refused" in c for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_export_is_loaded_exactly_or_refused_naming_the_setting(case: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    options = {"folder": str(folder), "poll_interval_s": 0.02, "stable_s": 0, **case["options"]}
    if not options["preset"]:
        del options["preset"]
    driver = PosDropFolderDriver.from_options("pos_export", options)
    sink = RecordingSink()
    driver.start(sink)
    try:
        partial = folder / f".{case['file']}.part"
        shutil.copyfile(FIXTURES / case["file"], partial)
        os.replace(partial, folder / case["file"])
        deadline = time.monotonic() + 5
        while not list((folder / "done").glob("*.csv")) and not list((folder / "failed").glob("*.csv")):
            assert time.monotonic() < deadline, "the file was neither stored nor refused"
            time.sleep(0.02)
    finally:
        driver.stop()
    if "refused" in case:
        reason = (folder / "failed" / f"{case['file']}.reason.txt").read_text("utf-8")
        for part in case["refused"]:
            assert part in reason, f"{part!r} not in {reason!r}"
        assert sink.readings == [] and driver.health()["files_failed"] == 1
    else:
        assert (folder / "done" / case["file"]).exists()
        assert as_json(sink.readings) == case["expected"]


def test_a_mismatched_decimal_separator_is_never_read_as_thousands() -> None:
    with pytest.raises(DropFileError, match='decimal_separator = ","'):
        parse_csv('receipt_id,name,unit_price\nR1,Tea,"1,19"\n', ExportFormat(decimal="."))
    (basket,) = parse_csv('receipt_id,name,unit_price\nR1,Tea,"1,19"\n', ExportFormat())
    assert basket.total_cents == 119  # detected: a comma followed by two digits is a decimal comma


def test_a_bom_before_the_header_is_not_part_of_the_first_column() -> None:
    text, codec = decode_export(b"\xef\xbb\xbfreceipt_id,name,unit_price\nR1,Tea,1.50\n")
    (basket,) = parse_csv(text, ExportFormat())
    assert codec == "utf-8-sig" and basket.source_id == "R1"


@pytest.mark.parametrize(
    ("text", "decimal", "cents"),
    [("$8.00", ".", 800), ("€1,19", ",", 119), ("8.00 USD", ".", 800), ("(8.00)", ".", -800), ("-$8.00", ".", -800),
     ("$-8.00", ".", -800), ("8,00-", ",", -800), ("1.234,56 €", ",", 123456), ("1'234.56", ".", 123456),
     ("CHF 3.50", ".", 350), ("7", ",", 700)],
)  # fmt: skip
def test_amounts_with_symbols_codes_and_signs(text: str, decimal: str, cents: int) -> None:
    assert parse_amount(text, decimal, "x") == cents


@pytest.mark.parametrize("text", ["abc", "1.2.3", "$", "8.005"])
def test_non_amounts_are_refused(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, ".", "line 2")


def test_decimal_detection_needs_one_unambiguous_value() -> None:
    assert detect_decimal([("line 2", "1.234,56"), ("line 3", "1,250")]) == ","
    assert detect_decimal([("line 2", "12")]) == "."
    with pytest.raises(AmountError, match=r"line 2.*decimal_separator"):
        detect_decimal([("line 2", "1,250")])


def test_cp1252_is_refused_unless_configured() -> None:
    data = "receipt_id,name\nR1,Crème\n".encode("cp1252")
    with pytest.raises(DecodeError, match=r'line 2.*encoding = "cp1252"'):
        decode_export(data)
    assert decode_export(data, "cp1252") == ("receipt_id,name\nR1,Crème\n", "cp1252")


def test_options_accept_presets_and_refuse_unknown_words() -> None:
    from agent.driver_api import DriverOptionError

    PosDropFolderDriver.from_options("p", {"folder": "/x", "preset": "shopify_orders", "decimal_separator": ","})
    for bad, key in (({"preset": "square"}, "preset"), ({"decimal_separator": ";"}, "decimal_separator"),
                     ({"decimal": "x"}, "decimal")):  # fmt: skip
        with pytest.raises(DriverOptionError) as err:
            PosDropFolderDriver.from_options("p", {"folder": "/x", **bad})
        assert err.value.key == key


def test_rows_with_only_negative_amounts_and_no_kind_are_a_refund() -> None:
    text = 'receipt_id,name,quantity,line_total\nR7,Tea,1,"($1.50)"\nR7,Milk,1,-$0.99\nR8,Tea,1,$1.50\n'
    refund, sale = parse_csv(text, ExportFormat())
    assert (refund.source_id, refund.kind, refund.total_cents) == ("R7", "refund", -249)
    assert (sale.kind, sale.total_cents) == ("sale", 150)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.integers(-10**9, 10**9), st.sampled_from([".", ","]), st.booleans(), st.sampled_from(["", "$", "€", " EUR"]),
       st.sampled_from(["minus", "trailing", "parens"]))  # fmt: skip
def test_any_printed_amount_reads_back_to_its_cents(
    cents: int, point: str, grouped: bool, symbol: str, sign: str
) -> None:
    whole = f"{abs(cents) // 100:,}" if grouped else str(abs(cents) // 100)
    text = whole.replace(",", "." if point == "," else ",") + f"{point}{abs(cents) % 100:02d}"
    text = f"{symbol}{text}" if symbol in ("$", "€") else f"{text}{symbol}"
    if cents < 0:
        text = {"minus": f"-{text}", "trailing": f"{text}-", "parens": f"({text})"}[sign]
    assert parse_amount(text, point, "x") == cents
    assert detect_decimal([("x", text)]) == point
