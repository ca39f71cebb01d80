"""A damaged SQLite file is moved aside with a message and the agent starts fresh."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agent.store import Store


def make_db(path: Path, rows: int = 2000) -> None:
    store = Store(path)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES ('b', ?, ?, 1, 'd', 'front', 1, 0)",
            [(i, i) for i in range(rows)],
        )
    store.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def test_truncated_file_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shopkeeper.db"
    make_db(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.ERROR):
        store = Store(path)
    assert store.recovered_from is not None and store.recovered_from.exists()
    assert store.recovered_from.read_bytes() == data[: len(data) // 2], "the damaged file is kept for inspection"
    assert store.conn().execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert str(store.recovered_from) in caplog.text and "moved it to" in caplog.text


def test_garbage_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "shopkeeper.db"
    path.write_bytes(b"this is not a database" * 100)
    store = Store(path)
    assert store.recovered_from is not None
    assert store.conn().execute("SELECT count(*) FROM _migrations").fetchone()[0] >= 4


def test_healthy_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "shopkeeper.db"
    make_db(path, rows=10)
    store = Store(path)
    assert store.recovered_from is None
    assert store.conn().execute("SELECT count(*) FROM events").fetchone()[0] == 10


def test_a_new_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Raw sales and door events: 0600 even when the umask would give 0644 (outside systemd)."""
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "data" / "shopkeeper.db")
        with store.transaction() as conn:
            Store.set_state(conn, "probe", "1")
    finally:
        os.umask(old)
    for suffix in ("", "-wal"):
        mode = (tmp_path / "data" / f"shopkeeper.db{suffix}").stat().st_mode & 0o777
        assert mode == 0o600, f"shopkeeper.db{suffix} is {oct(mode)}"
    store.close()
