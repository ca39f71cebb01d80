"""The drop folder under faults, on real files with the real driver thread and the agent's real store.

A stalled copy and a file replaced while it is read are stored completely and once; every bad or unsafe
file is refused with its reason (counted, in health) while later files keep being stored.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.driver_api import Reading
from agent.pipeline.ingest import DriverSink, IngestWriter
from agent.store import Store
from drivers.pos_dropfolder import driver as driver_module
from drivers.pos_dropfolder import exportfile
from drivers.pos_dropfolder.driver import PosDropFolderDriver
from tests.conftest import ManualClock

HEADER = "receipt_id,name,quantity,unit_price\n"
NAME = "pos_export"


def rows(first: int, last: int, lines_each: int = 1) -> str:
    return "".join(f"R{n:04d},Item {k},1,1.{k:02d}\n" for n in range(first, last + 1) for k in range(lines_each))


def drop(folder: Path, name: str, text: str) -> Path:
    partial = folder / f".{name}.part"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, folder / name)
    return folder / name


def wait(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class HookedSink:
    """The agent's own sink for the driver, with a hook run before each flush (to act mid-file)."""

    def __init__(self, inner: DriverSink) -> None:
        self.inner, self.flushes, self.bad = inner, 0, list[str]()
        self.before_flush: Callable[[int], object] = lambda _n: None

    def emit(self, reading: Reading) -> None:
        self.inner.emit(reading)

    def bad_frame(self, driver: str, reason: str) -> None:
        self.bad.append(reason)
        self.inner.bad_frame(driver, reason)

    def problem(self, driver: str, message: str) -> None:
        self.inner.problem(driver, message)

    def save_state(self, driver: str, state: Mapping[str, str]) -> None:
        self.inner.save_state(driver, state)

    def load_state(self, driver: str, key: str) -> str | None:
        return self.inner.load_state(driver, key)

    def flush(self, timeout: float = 10.0) -> bool:
        self.flushes += 1
        self.before_flush(self.flushes)
        return self.inner.flush(timeout)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    return tmp_path / "in"


@pytest.fixture
def store(config: AgentConfig, clock: ManualClock) -> Iterator[tuple[Store, IngestWriter]]:
    db = Store(config.db_path)
    writer = IngestWriter(db, clock)
    writer.start()
    yield db, writer
    writer.stop()


def start(
    folder: Path, writer: IngestWriter, before_flush: Callable[[int], object] | None = None, **options: Any
) -> tuple[PosDropFolderDriver, HookedSink]:
    settings = {"folder": str(folder), "poll_interval_s": 0.02, "stable_s": 0.1, **options}
    driver = PosDropFolderDriver.from_options(NAME, settings)
    sink = HookedSink(writer.sink_for(NAME))
    if before_flush is not None:
        sink.before_flush = before_flush
    driver.start(sink)
    return driver, sink


def stored(db: Store) -> dict[str, int]:
    """source_id -> number of lines, of every basket in the store."""
    query = "SELECT b.source_id, count(l.basket_id) FROM baskets b JOIN basket_lines l ON l.basket_id = b.id"
    return dict(db.conn().execute(query + " GROUP BY b.id").fetchall())


def baskets_stored(db: Store) -> int:
    return int(db.conn().execute("SELECT count(*) FROM baskets").fetchone()[0])


def test_a_stalled_copy_is_taken_only_when_complete(folder: Path, store: Any) -> None:
    db, writer = store
    driver, _ = start(folder, writer)
    try:
        with (folder / "copy.csv").open("w", encoding="utf-8") as out:
            out.write(HEADER + rows(1, 50))
            out.flush()
            # Unchanged for far longer than stable_s, but its writer still holds it open: not taken.
            wait(lambda: driver.health()["waiting_for_writer"] == 1, "the driver to see the open writer")
            time.sleep(0.5)  # a stall of five times stable_s (a bounded wait: nothing else can be awaited)
            assert baskets_stored(db) == 0 and not (folder / "done" / "copy.csv").exists()
            out.write(rows(51, 100))
        wait(lambda: (folder / "done" / "copy.csv").exists(), "the file to be stored")
    finally:
        driver.stop()
    assert stored(db) == {f"R{n:04d}": 1 for n in range(1, 101)}
    assert driver.health()["files_done"] == 1 and driver.health()["waiting_for_writer"] == 0


def test_a_copy_that_resumes_while_read_is_read_again_and_its_last_receipt_kept_whole(
    folder: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer /proc cannot show (another machine) resumes after a stall, while the file is being read."""
    db, writer = store
    monkeypatch.setattr(driver_module, "open_for_writing", lambda _paths: set())
    monkeypatch.setattr(driver_module, "CHUNK_BASKETS", 10)
    path = drop(folder, "copy.csv", HEADER + rows(1, 49, 2) + "R0050,Item 0,1,1.00\n")  # stalls inside R0050

    def resume(flush: int) -> None:
        # Chunks of 10 receipts: the 5th flush is the last one before the end of what was written so far.
        if flush == 5:
            with path.open("a", encoding="utf-8") as out:
                out.write("R0050,Item 1,1,1.01\n" + rows(51, 100, 2))

    driver, _ = start(folder, writer, resume)
    try:
        wait(lambda: (folder / "done" / "copy.csv").exists(), "the completed file to be stored")
    finally:
        driver.stop()
    assert stored(db) == {f"R{n:04d}": 2 for n in range(1, 101)}  # R0050 whole: held back, not stored short
    assert driver.health()["rereads"] == 1 and driver.health()["files_done"] == 1


def test_a_file_replaced_while_read_is_not_moved_unread_and_is_stored_once(
    folder: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, writer = store
    monkeypatch.setattr(driver_module, "CHUNK_BASKETS", 10)
    path = drop(folder, "day.csv", HEADER + rows(1, 60))
    new_text = HEADER + rows(1, 80)  # the POS rewrote the day's export with more receipts
    driver, _ = start(folder, writer, lambda flush: drop(folder, "day.csv", new_text) if flush == 1 else None)
    try:
        wait(lambda: (folder / "done" / "day.csv").exists(), "the new file to be stored")
    finally:
        driver.stop()
    assert (folder / "done" / "day.csv").read_text(encoding="utf-8") == new_text
    assert not (folder / "done" / "day.1.csv").exists() and not path.exists()
    assert stored(db) == {f"R{n:04d}": 1 for n in range(1, 81)}
    assert driver.health()["rereads"] == 1 and driver.health()["files_done"] == 1


def _deep_json() -> str:
    return '{"receipt_id": "R1", "name": "x", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}\n"


BAD_FILES: dict[str, tuple[str, str, str]] = {  # case -> (file name, content, reason key)
    "huge_exponent_quantity": ("a.csv", HEADER + "R1,Tea,1e999999,1.00\n", "bad_amount"),
    "huge_exponent_price": ("a.csv", HEADER + "R1,Tea,1,1e999999\n", "bad_amount"),
    "amount_beyond_store_bound": ("a.csv", HEADER + "R1,Tea,1,999999999999999.00\n", "bad_amount"),
    "json_infinite_amount": ("a.jsonl", '{"receipt_id": "R1", "name": "Tea", "unit_price": 1e999999}\n', "bad_amount"),
    "json_5000_digit_number": (
        "a.jsonl",
        '{"receipt_id": "R1", "name": "Tea", "quantity": ' + "9" * 5000 + "}\n",
        "bad_file",
    ),
    "json_nested_deep": ("a.jsonl", _deep_json(), "bad_file"),
    "header_field_128_kB": ("a.csv", "receipt_id,name," + "h" * 128 * 1024 + "\nR1,Tea,1\n", "field_too_long"),
    "data_field_100_kB": ("a.csv", HEADER + "R1," + "n" * 100_000 + ",1,1.00\n", "field_too_long"),
    "line_of_2_MB": ("a.csv", HEADER + "R1," + "," * 2_000_000 + "\n", "line_too_long"),
    "price_of_60_kB": ("a.csv", HEADER + "R1,Tea,1," + "9x" * 30_000 + "\n", "bad_amount"),
    "name_longer_than_the_store_takes": ("a.csv", HEADER + "R1," + "n" * 5000 + ",1,1.00\n", "field_too_long"),
    "too_many_rows": ("a.csv", HEADER + rows(1, 30), "too_many_rows"),
    "receipt_split_across_file": ("a.csv", HEADER + "R1,Tea,1,1.00\nR2,Tea,1,1.00\nR1,Bun,1,1.00\n", "split_receipt"),
    "not_utf8": ("a.csv", HEADER + "R1,Cr\udce8me,1,1.00\n", "bad_encoding"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_is_refused_with_its_reason_and_later_files_are_stored(case: str, folder: Path, store: Any) -> None:
    db, writer = store
    name, content, reason = BAD_FILES[case]
    (folder / name).write_bytes(content.encode("utf-8", "surrogateescape"))
    driver, sink = start(folder, writer, max_rows=20)
    try:
        wait(lambda: (folder / "failed" / f"{name}.reason.txt").exists(), "the refusal")
        drop(folder, "b.csv", HEADER + "G1,Tea,1,1.50\n")
        wait(lambda: (folder / "done" / "b.csv").exists(), "the later good file")
        wait(lambda: driver.health()["files_done"] == 1, "the later file counted")  # counted after its move
        health = driver.health()
    finally:
        driver.stop()
    assert (folder / "failed" / name).exists() and not (folder / name).exists()
    text = (folder / "failed" / f"{name}.reason.txt").read_text(encoding="utf-8")
    assert text.startswith(f"{name}: ") and len(text) < 400  # says why, without echoing the bad input
    assert stored(db) == {"G1": 1}  # all or nothing: not one receipt of the refused file
    assert health["refused"] == {reason: 1} and health["files_done"] == 1 and driver.alive()
    assert reason in health["degraded"] and sink.bad == [f"refused_file: {reason}"]


@pytest.mark.parametrize("kind", ["symlink_out_of_folder", "symlink_inside", "fifo", "folder"])
def test_unsafe_entries_are_refused_never_followed(kind: str, folder: Path, store: Any) -> None:
    db, writer = store
    outside = folder.parent / "secret.csv"
    outside.write_text(HEADER + "S1,Secret,1,1.00\n", encoding="utf-8")
    entry = folder / "a.csv"
    if kind == "symlink_out_of_folder":
        entry.symlink_to(outside)
    elif kind == "symlink_inside":
        drop(folder, "z.txt", HEADER + "S2,Other,1,1.00\n")
        entry.symlink_to(folder / "z.txt")
    elif kind == "fifo":
        os.mkfifo(entry)
    else:
        entry.mkdir()
    driver, _ = start(folder, writer)
    try:
        wait(lambda: (folder / "failed" / "a.csv.reason.txt").exists(), "the refusal")
        drop(folder, "b.csv", HEADER + "G1,Tea,1,1.50\n")
        wait(lambda: (folder / "done" / "b.csv").exists(), "the later good file")
    finally:
        driver.stop()
    assert stored(db) == {"G1": 1} and outside.read_text(encoding="utf-8").startswith(HEADER)
    moved = folder / "failed" / "a.csv"
    assert moved.is_symlink() if kind.startswith("symlink") else os.path.lexists(moved)
    expected = "symlink" if kind.startswith("symlink") else "not_regular"
    assert driver.health()["refused"] == {expected: 1}


def test_an_unreadable_file_is_reported_once_then_read_when_fixed(
    folder: Path, store: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db, writer = store
    if os.geteuid() == 0:  # root reads a mode-000 file: make the driver's open honour the mode, as for a user
        real_open = os.open

        def honouring_open(path: Any, flags: int, *args: Any) -> int:
            if os.stat(path).st_mode & 0o444 == 0:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr(exportfile.os, "open", honouring_open)
    locked = drop(folder, "a.csv", HEADER + "U1,Tea,1,1.00\n")
    locked.chmod(0)
    caplog.set_level(logging.WARNING, logger=driver_module.__name__)
    driver, sink = start(folder, writer)
    try:
        wait(lambda: driver.health()["refused"].get("unreadable") == 1, "the refusal")
        for n in range(3):  # three later files, so many polls pass over the unreadable one
            drop(folder, f"b{n}.csv", HEADER + f"G{n},Tea,1,1.50\n")
            wait((folder / "done" / f"b{n}.csv").exists, "a later good file")
        health = driver.health()
        assert health["refused"] == {"unreadable": 1} and sink.bad == ["refused_file: unreadable"]
        assert "unreadable" in health["degraded"] and locked.exists()
        assert sum("a.csv" in r.getMessage() for r in caplog.records) == 1
        locked.chmod(0o644)  # the owner fixes the permissions: read like any other file
        wait(lambda: (folder / "done" / "a.csv").exists(), "the fixed file to be stored")
        wait(lambda: "degraded" not in driver.health(), "health to recover")
    finally:
        driver.stop()
    assert set(stored(db)) == {"U1", "G0", "G1", "G2"}


def test_health_recovers_once_the_owner_clears_failed(folder: Path, store: Any) -> None:
    _, writer = store
    drop(folder, "a.csv", HEADER + "R1,Tea,1,lots\n")
    driver, _ = start(folder, writer)
    try:
        wait(lambda: "degraded" in driver.health(), "the refusal to degrade health")
        for leftover in (folder / "failed").iterdir():
            leftover.unlink()
        wait(lambda: "degraded" not in driver.health(), "health to recover")
    finally:
        driver.stop()
    assert driver.health()["refused"] == {"bad_amount": 1}  # the count stays: it is a counter


def test_a_stop_mid_file_leaves_it_and_a_restart_stores_the_rest_once(
    folder: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, writer = store
    monkeypatch.setattr(driver_module, "CHUNK_BASKETS", 10)
    drop(folder, "day.csv", HEADER + rows(1, 50))
    drivers: list[PosDropFolderDriver] = []
    stopping = threading.Thread(target=lambda: drivers[0].stop())  # stop() from outside the driver's thread
    drivers.append(start(folder, writer, lambda flush: stopping.start() if flush == 2 else None)[0])
    wait(lambda: stopping.ident is not None and not stopping.is_alive(), "the stop")
    assert 10 <= baskets_stored(db) < 50 and (folder / "day.csv").exists()
    again, _ = start(folder, writer)
    try:
        wait(lambda: (folder / "done" / "day.csv").exists(), "the file to be stored after the restart")
    finally:
        again.stop()
    assert stored(db) == {f"R{n:04d}": 1 for n in range(1, 51)}
