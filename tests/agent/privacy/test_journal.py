"""The release journal: a second record of every release, so no window is drawn twice when the database
forgets (a rolled-back WAL, a restored backup, a new database) or when an append fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.ops.status import verify_ledger
from agent.pipeline.release import WindowReleaser
from agent.privacy.journal import JOURNAL_NAME, JournalError, ReleaseJournal
from agent.store import Store
from tests.conftest import T0_NS, ManualClock

HOUR = 3600 * NS_PER_S


def add_hourly_events(store: Store, hours: int) -> None:
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES ('b', 0, ?, 1, 'test', 'front', 3, 2)",
            [(T0_NS + h * HOUR + 60 * NS_PER_S,) for h in range(hours)],
        )


def snapshot(store: Store) -> dict[str, list[tuple[object, ...]]]:
    conn = store.conn()
    return {
        "ledger": conn.execute(
            "SELECT window_start_ns, stream, noisy_values, hash FROM release_ledger ORDER BY id"
        ).fetchall(),
        "outbox": conn.execute("SELECT seq, msg_id, payload FROM outbox ORDER BY seq").fetchall(),
    }


def copy_database(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if Path(str(src) + suffix).exists():
            shutil.copy(Path(str(src) + suffix), Path(str(dst) + suffix))


def journal_of(config: AgentConfig) -> Path:
    return config.data_dir / JOURNAL_NAME


def test_every_release_is_journaled_before_it_commits(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    add_hourly_events(store, 3)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3 * 3600 + 121)
    assert releaser.tick() == 3
    entries = ReleaseJournal(journal_of(config)).read()
    ledger = snapshot(store)["ledger"]
    assert [(e.key[0], e.key[1], e.release["hash"]) for e in entries] == [(s, st, h) for s, st, _v, h in ledger]
    assert sum(len(e.messages) for e in entries) == len(snapshot(store)["outbox"])
    assert verify_ledger(config) == []


def test_a_restored_backup_gets_its_later_releases_back_and_draws_nothing_again(
    config: AgentConfig, clock: ManualClock, tmp_path: Path
) -> None:
    store = Store(config.db_path)
    add_hourly_events(store, 4)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    assert releaser.tick() == 1
    store.close()
    backup = tmp_path / "backup.db"
    copy_database(config.db_path, backup)  # the owner's nightly backup, taken after window 00:00
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600)
    assert releaser.tick() == 2  # windows 01:00 and 02:00
    published = snapshot(store)
    store.close()

    for suffix in ("", "-wal", "-shm"):  # the documented restore: the older file replaces the current one
        Path(str(config.db_path) + suffix).unlink(missing_ok=True)
    copy_database(backup, config.db_path)
    assert verify_ledger(config) != [], "verify must see that the database is behind the journal"
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    assert snapshot(store) == published, "the lost releases come back with their stored values"
    assert releaser.tick() == 0, "window 03:00 is not due yet; 01:00 and 02:00 are never drawn again"
    assert store.counters()["releases_restored_from_journal"] == 2 * len(config.streams)
    assert verify_ledger(config) == []


def test_a_new_database_with_a_clock_behind_redraws_nothing(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    add_hourly_events(store, 3)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3 * 3600 + 121)
    assert releaser.tick() == 3
    published = snapshot(store)
    store.close()
    for suffix in ("", "-wal", "-shm"):  # a corrupt file moved aside: the agent starts on an empty one
        Path(str(config.db_path) + suffix).unlink(missing_ok=True)
    clock.now_ns = T0_NS + 30 * 60 * NS_PER_S  # a trusted clock that is behind at restart
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    assert snapshot(store) == published
    clock.advance(5 * 3600)
    released = releaser.tick()
    ledger = snapshot(store)["ledger"]
    assert len(ledger) == len(published["ledger"]) + released * len(config.streams)
    keys = [(s, st) for s, st, _v, _h in ledger]
    assert len(keys) == len(set(keys)), "no (window, stream) is released twice"


def test_a_torn_last_line_is_dropped_and_the_window_released_once(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    add_hourly_events(store, 2)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    assert releaser.tick() == 1
    path = journal_of(config)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"v": 1, "prev": "abc", "hash"')  # a crash in the middle of an append
    store.close()
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    assert path.read_bytes() == whole, "the torn tail is cut back to the last whole line"
    clock.advance(3600)
    assert releaser.tick() == 1
    assert verify_ledger(config) == []


def test_a_damaged_journal_line_stops_the_release(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    add_hourly_events(store, 2)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600 + 121)
    assert releaser.tick() == 2
    path = journal_of(config)
    lines = path.read_text().splitlines()
    doc = json.loads(lines[0])
    doc["release"]["noisy_values"] += " "  # an edited value: the line no longer matches its hash
    path.write_text("\n".join([json.dumps(doc, sort_keys=True), *lines[1:]]) + "\n")
    store.close()
    with pytest.raises(JournalError, match="line 1 is damaged"):
        WindowReleaser(config, Store(config.db_path), clock)
    assert any("line 1 is damaged" in p for p in verify_ledger(config))


def test_a_failed_journal_append_releases_nothing_and_the_retry_draws_once(
    config: AgentConfig, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(config.db_path)
    add_hourly_events(store, 1)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    original = ReleaseJournal.append

    def disk_full(self: ReleaseJournal, entries: list[object]) -> None:
        raise JournalError("no space left on device (simulated)")

    monkeypatch.setattr(ReleaseJournal, "append", disk_full)
    with pytest.raises(JournalError):
        releaser.tick()
    assert snapshot(store) == {"ledger": [], "outbox": []}, "the transaction rolled back"
    monkeypatch.setattr(ReleaseJournal, "append", original)
    assert releaser.tick() == 1
    assert len(ReleaseJournal(journal_of(config)).read()) == len(config.streams)
    assert verify_ledger(config) == []


def test_compaction_keeps_every_release_but_drops_old_messages(config: AgentConfig, clock: ManualClock) -> None:
    from agent.privacy.journal import compact

    store = Store(config.db_path)
    add_hourly_events(store, 3)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3 * 3600 + 121)
    assert releaser.tick() == 3
    journal = ReleaseJournal(journal_of(config))
    before = journal.read()
    size = journal_of(config).stat().st_size
    assert compact(journal, T0_NS + 2 * HOUR, min_bytes=size + 1) == 0, "a small journal is never rewritten"
    slimmed = compact(journal, T0_NS + 2 * HOUR, min_bytes=0)  # windows 00:00 lose their messages (end 01:00)
    after = ReleaseJournal(journal_of(config)).read()
    assert slimmed == len(config.streams) and journal_of(config).stat().st_size < size
    assert [e.release for e in after] == [e.release for e in before], "every release and its hash is kept"
    assert [len(e.messages) > 0 for e in after] == [e.release["window_end_ns"] >= T0_NS + 2 * HOUR for e in before]
    assert verify_ledger(config) == []
    clock.advance(3600)
    assert releaser.tick() == 1, "the releaser appends to the rewritten chain"
    assert verify_ledger(config) == []
