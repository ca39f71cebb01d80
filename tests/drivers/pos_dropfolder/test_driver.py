"""The drop-folder driver on a real folder: CSV and JSONL stored once, bad files to failed/, unfinished files left."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.driver_api import Basket, BasketLine
from agent.driver_api.kit import RecordingSink
from drivers.pos_dropfolder.driver import PosDropFolderDriver
from drivers.pos_dropfolder.protocol import DropFileError, ExportFormat, parse_csv

CSV = """receipt_id,time,sku,name,category,quantity,unit_price,line_total,payment,kind
R1,2026-11-16T10:00:00Z,BR1,Brötchen,bakery,3,0.45,1.35,cash,sale
R1,2026-11-16T10:00:00Z,MI1,Milch 1L,dairy,1,1.19,,cash,sale
R2,2026-11-16T10:05:00Z,AP1,Äpfel lose,produce,0.754,,1.88,card,refund
"""


def poll(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    return tmp_path / "in"


@pytest.fixture
def running(folder: Path) -> Iterator[tuple[PosDropFolderDriver, RecordingSink]]:
    driver = PosDropFolderDriver.from_options("pos_export", {"folder": str(folder), "poll_interval_s": 0.02,
                                                             "stable_s": 0.1})  # fmt: skip
    sink = RecordingSink()
    driver.start(sink)
    yield driver, sink
    driver.stop()


def drop(folder: Path, name: str, text: str) -> None:
    tmp = folder / f".{name}.part"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / name)


def test_csv_rows_become_baskets_grouped_by_receipt() -> None:
    baskets = parse_csv(CSV, ExportFormat())
    assert baskets == [
        Basket("R1", (BasketLine("Brötchen", 3, 45, 135, "BR1", "bakery"),
                      BasketLine("Milch 1L", 1, 119, 119, "MI1", "dairy")),
               254, "sale", "cash", "", "", "2026-11-16T10:00:00Z"),
        Basket("R2", (BasketLine("Äpfel lose", 1, 188, -188, "AP1", "produce"),), -188, "refund", "card", "", "",
               "2026-11-16T10:05:00Z"),
    ]  # fmt: skip


def test_renamed_columns_and_decimal_comma() -> None:
    text = "Bon;Artikel;Menge;Preis\n7;Brezel;2;0,80\n"
    fmt = ExportFormat({"receipt_id": "Bon", "name": "Artikel", "quantity": "Menge", "unit_price": "Preis"}, ",", ";")
    (basket,) = parse_csv(text, fmt)
    assert (basket.source_id, basket.total_cents, basket.lines[0].unit_price_cents) == ("7", 160, 80)


def test_a_bad_row_names_its_line() -> None:
    with pytest.raises(DropFileError, match="line 3"):
        parse_csv("receipt_id,name,unit_price\nR1,Tea,1.00\nR2,Milk,abc\n", ExportFormat())


def test_csv_file_is_stored_once_and_moved_to_done(folder: Path, running: Any) -> None:
    driver, sink = running
    drop(folder, "day.csv", CSV)
    poll(lambda: (folder / "done" / "day.csv").exists())
    time.sleep(0.2)  # several more polls: the claim is that the file is not read again
    assert [b.source_id for b in sink.readings] == ["R1", "R2"]
    assert not (folder / "day.csv").exists() and driver.health()["files_done"] == 1


def test_jsonl_rows_and_nested_baskets_are_stored(folder: Path, running: Any) -> None:
    _, sink = running
    lines = [
        {"receipt_id": "J1", "name": "Tea", "quantity": 2, "unit_price": "1.50"},
        {"receipt_id": "J2", "payment": "card", "lines": [{"name": "Milk", "sku": "M", "line_total": "0.99"}]},
    ]
    drop(folder, "x.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    poll(lambda: (folder / "done" / "x.jsonl").exists())
    assert [(b.source_id, b.total_cents) for b in sink.readings] == [("J1", 300), ("J2", 99)]


def test_bad_file_goes_to_failed_with_its_reason(folder: Path, running: Any) -> None:
    driver, sink = running
    drop(folder, "bad.csv", "receipt_id,name,unit_price\nR1,Tea,lots\n")
    poll(lambda: (folder / "failed" / "bad.csv.reason.txt").exists())
    assert "line 2" in (folder / "failed" / "bad.csv.reason.txt").read_text()
    assert (folder / "failed" / "bad.csv").exists() and sink.readings == []
    assert sink.bad and driver.health()["bad_frames"] == 1


def test_a_file_still_being_written_is_not_taken(folder: Path, running: Any) -> None:
    _, sink = running
    path = folder / "growing.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write(CSV.splitlines()[0] + "\n")
        for _ in range(10):  # a row every 50 ms, inside the 0.1 s stability window each time
            out.write(CSV.splitlines()[1] + "\n")
            out.flush()
            time.sleep(0.05)
        assert sink.readings == [] and path.exists()
    poll(lambda: (folder / "done" / "growing.csv").exists())
    assert len(sink.readings) == 1 and len(sink.readings[0].lines) == 10


def test_with_require_marker_only_marked_files_are_taken(folder: Path) -> None:
    driver = PosDropFolderDriver.from_options("p", {"folder": str(folder), "poll_interval_s": 0.02,
                                                    "require_marker": True})  # fmt: skip
    sink = RecordingSink()
    driver.start(sink)
    try:
        drop(folder, "a.csv", CSV)
        time.sleep(0.2)  # several polls: nothing may happen without the marker
        assert sink.readings == []
        (folder / "a.csv.done").touch()
        poll(lambda: (folder / "done" / "a.csv").exists())
    finally:
        driver.stop()
    assert len(sink.readings) == 2 and not (folder / "a.csv.done").exists()


def test_a_failed_flush_leaves_the_file_for_a_retry(folder: Path) -> None:
    class NoCommit(RecordingSink):
        ok = False

        def flush(self, timeout: float = 10.0) -> bool:
            return self.ok

    driver = PosDropFolderDriver.from_options("p", {"folder": str(folder), "poll_interval_s": 0.02, "stable_s": 0})
    sink = NoCommit()
    driver.start(sink)
    try:
        drop(folder, "a.csv", CSV)
        sink.wait_for(lambda: len(sink.problems) >= 1, 5, "a problem report")
        assert (folder / "a.csv").exists() and not (folder / "done" / "a.csv").exists()
        sink.ok = True
        poll(lambda: (folder / "done" / "a.csv").exists())
    finally:
        driver.stop()
