"""The release journal: a second durable record of every release, outside the SQLite file.

Release once has to survive losing or rolling back the database (DESIGN.md promise 9): a damaged
write-ahead log that SQLite quietly rolls back, a restored backup, a corrupt file moved aside. So
every release is appended here, fsynced, BEFORE its SQLite transaction commits: whatever the
database forgets, the journal still holds, and `reconcile` (privacy/reconcile.py) puts it back at
start, before any window can be drawn again.

One line per released (window, stream), canonical JSON, hash-chained like the ledger (each line
commits to the one before it), holding the ledger row, the accountant's spend and the outbox
messages, so a lost release is re-sent with its stored values, never redrawn. A line cut short by a
crash during the append (no newline at the end of the file) was never committed to SQLite either:
it is dropped and the file truncated back to its last whole line. Damage anywhere else is refused:
the agent will not release while its record of what it released cannot be read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from agent.errors import PrivacyError

log = logging.getLogger(__name__)

JOURNAL_NAME = "release-journal.jsonl"
GENESIS = "0" * 64
FORMAT = 1


class JournalError(PrivacyError):
    """The journal cannot be read or extended; nothing may be released until an operator looks."""


@dataclasses.dataclass(frozen=True)
class JournalEntry:
    """One released (window, stream): its ledger row, spend and outbox messages, as committed."""

    release: dict[str, Any]  # release_ledger columns (without id), hash and prev_hash included
    spend: dict[str, Any]  # privacy_spend columns (without ledger_id)
    messages: tuple[dict[str, Any], ...]  # outbox rows: seq, msg_id, topic, payload, window_start_ns, created_wall_ns

    @property
    def key(self) -> tuple[int, str]:
        return int(self.release["window_start_ns"]), str(self.release["stream"])

    def body(self) -> dict[str, Any]:
        return {"release": self.release, "spend": self.spend, "messages": list(self.messages)}


def line_hash(prev: str, body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + "\n" + text).encode()).hexdigest()


class ReleaseJournal:
    """Append-only, fsynced, hash-chained file of releases."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._last_hash: str | None = None
        self._known_size = -1  # the file's size when _last_hash was taken; another size means re-read
        # Two threads write releases: the release thread (hourly windows, query answers, compaction) and the
        # secure-aggregation job (contributions). Each append happens inside its SQLite write transaction, so
        # journal order is ledger order; the lock keeps an append out of the middle of another or of compact().
        self.lock = threading.RLock()

    def read(self, repair: bool = True) -> list[JournalEntry]:
        """Every entry, oldest first; a torn last line is dropped, and cut from the file when `repair`.

        Only the agent repairs: a reader beside a running agent (`shopkeeper ledger verify`) may see an
        append in progress as a torn line, and must leave it alone.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self._last_hash, self._known_size = GENESIS, 0
            return []
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot be read ({exc.strerror}); nothing is released") from None
        whole, _, torn = data.rpartition(b"\n")
        if torn and repair:
            # The append that wrote this never finished, so its SQLite transaction never committed.
            log.warning(
                "%s: dropping a torn last line (%d bytes) left by a crash during an append", self.path, len(torn)
            )
            with self.path.open("r+b") as handle:
                handle.truncate(len(whole) + 1 if whole else 0)
                os.fsync(handle.fileno())
        entries: list[JournalEntry] = []
        prev = GENESIS
        for number, raw in enumerate(whole.split(b"\n") if whole else [], start=1):
            try:
                doc = json.loads(raw)
                body = {"release": doc["release"], "spend": doc["spend"], "messages": doc["messages"]}
                ok = doc["v"] == FORMAT and doc["prev"] == prev and doc["hash"] == line_hash(prev, body)
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise JournalError(
                    f"{self.path}: line {number} is damaged or out of order; the agent releases nothing until it"
                    " is repaired (see docs/operations.md, 'The release journal')"
                )
            entries.append(JournalEntry(body["release"], body["spend"], tuple(body["messages"])))
            prev = doc["hash"]
        self._last_hash = prev
        self._known_size = len(whole) + 1 if whole else 0
        return entries

    def append(self, entries: list[JournalEntry]) -> None:
        """Write entries as whole lines and fsync them; raises JournalError (nothing is released) on failure."""
        if not entries:
            return
        with self.lock:
            self._append(entries)

    def _append(self, entries: list[JournalEntry]) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if self._last_hash is None or size != self._known_size:  # e.g. rewritten by compact()
            self.read()
        prev = self._last_hash or GENESIS
        lines = []
        for entry in entries:
            digest = line_hash(prev, entry.body())
            lines.append(json.dumps({"v": FORMAT, "prev": prev, "hash": digest, **entry.body()}, sort_keys=True))
            prev = digest
        new_file = not self.path.exists()
        data = ("\n".join(lines) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            size = os.fstat(fd).st_size
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError:
                # Cut what a failed append left (a disk that filled up half way), so no entry of a
                # release that then rolls back stays in the journal.
                os.ftruncate(fd, size)
                os.fsync(fd)
                raise
            finally:
                os.close(fd)
            if new_file:  # the directory entry of a new file must be durable too
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            self._last_hash = None  # re-read before the next append: a partial write is cut then
            raise JournalError(f"{self.path}: cannot append ({exc.strerror}); the window is not released") from None
        self._last_hash = prev
        self._known_size = self.path.stat().st_size


def compact(journal: ReleaseJournal, keep_messages_after_ns: int, min_bytes: int) -> int:
    """Bound the journal: entries of windows before `keep_messages_after_ns` keep their ledger row and spend
    (what stops a redraw) but drop their outbox messages (delivered long ago), once the file is larger than
    `min_bytes`. The file is rewritten whole, re-chained, fsynced and renamed over the old one, so a crash
    leaves either file intact. Returns how many entries lost their messages."""
    with journal.lock:
        return _compact(journal, keep_messages_after_ns, min_bytes)


def _compact(journal: ReleaseJournal, keep_messages_after_ns: int, min_bytes: int) -> int:
    try:
        if journal.path.stat().st_size <= min_bytes:
            return 0
    except FileNotFoundError:
        return 0
    entries = journal.read()
    slimmed = 0
    kept: list[JournalEntry] = []
    for entry in entries:
        if entry.messages and int(entry.release["window_end_ns"]) < keep_messages_after_ns:
            entry = JournalEntry(entry.release, entry.spend, ())
            slimmed += 1
        kept.append(entry)
    if not slimmed:
        return 0
    fresh = ReleaseJournal(journal.path.with_name(journal.path.name + ".compacting"))
    fresh.path.unlink(missing_ok=True)
    fresh.append(kept)
    os.replace(fresh.path, journal.path)
    dir_fd = os.open(journal.path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    journal.read()  # take up the new chain's last hash
    log.info("release journal compacted: %d old entries keep their ledger rows, not their messages", slimmed)
    return slimmed
