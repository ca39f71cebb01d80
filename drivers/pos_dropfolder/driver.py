"""POS drop-folder driver: polls a folder, streams finished exports through stream.py, moves them to done/ or failed/.

Every entry is judged on its own, so one bad or unsafe file never stops the driver or holds up the next:
it is refused (moved to failed/ with its reason, or, when it cannot be read at all, left in place and
reported once), counted by reason in health, logged once, and shown in /health as `degraded` until the
owner clears failed/. The open refusals are kept in the agent's driver state (refusal_state.py), so a
restart keeps /health degraded and does not read a file left in place again. A file is taken only when
complete (see `_ready_files`), read in bounded memory, and stored in chunks that are committed one after
another. A crash or stop mid-file leaves the file in the folder; it is read again from the start, which
is safe because the agent stores a basket once per (driver, source_id) for life
(agent/store/raw_events.py insert_basket): what was committed is not counted twice, and the rest is stored.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import stat
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from agent.driver_api import BackgroundDriver, Basket, DriverOptionError, Sink
from agent.driver_api.options import Option, Options, choice, currency, flag, integer, number, table, text
from agent.logs import RateLimitedLog
from drivers.pos_dropfolder.exportfile import ExportFile, Identity, identity, refusal_before_open
from drivers.pos_dropfolder.folder_moves import move_to
from drivers.pos_dropfolder.presets import PRESETS
from drivers.pos_dropfolder.protocol import FIELDS, DropFileError, ExportFormat
from drivers.pos_dropfolder.refusal_state import refusals_from, state_for
from drivers.pos_dropfolder.stream import Limits, Plan, plan, receipt_baskets
from drivers.pos_dropfolder.writers import open_for_writing

log = logging.getLogger(__name__)
SUFFIXES = {".csv": ".csv", ".jsonl": ".jsonl", ".ndjson": ".jsonl"}
MARKER = ".done"
CHUNK_BASKETS = 500  # committed together: the writer's batch size; memory stays flat however long the file
DEGRADED_FILES_MAX = 1000  # refused files remembered for /health; the counters keep counting past it
# A column left unset is the preset's (or, without a preset, the field's own name): no fixed default here.
COLUMNS = Options(*(text(field, None, what="a column name", fix=f'use the POS\'s column name, e.g. "{field}"')
                    for field in FIELDS))  # fmt: skip


def _encoding(value: object) -> bool:
    try:
        return value == "auto" or (isinstance(value, str) and bool(codecs.lookup(value)))
    except LookupError:
        return False


def _one_decimal_setting(values: dict[str, Any]) -> None:
    if values["decimal"] is not None and values["decimal_separator"] != "auto":
        raise DriverOptionError("decimal", "is the old name of decimal_separator, and both are set", "remove decimal")


def _unchanged_key(st: os.stat_result) -> tuple[int, ...]:
    # ctime too: chmod changes only it, and a file made readable must be tried again
    return (*identity(st), st.st_mode, st.st_ctime_ns)


class PosDropFolderDriver(BackgroundDriver):
    """Emits one Basket per receipt in each finished export file, then moves the file out of the way."""

    kind: ClassVar[str] = "pos_dropfolder"
    options: ClassVar[Options] = Options(
        text("folder", fix='set folder = "/srv/pos-export"'),
        text("done_folder", None, what="a folder", fix='use "<folder>/done" (the default)'),
        text("failed_folder", None, what="a folder", fix='use "<folder>/failed" (the default)'),
        number("poll_interval_s", 2.0, low=0.01, high=3600),
        number("stable_s", 5.0, low=0, high=3600),
        flag("require_marker", False),
        integer("max_rows", 5_000_000, low=1, high=1_000_000_000, fix="use e.g. 5000000"),
        number("max_file_mb", 1024.0, low=0.001, high=1_000_000, fix="use e.g. 1024"),
        choice("preset", "", ("", *PRESETS), fix=f"use one of {', '.join(PRESETS)} (or leave it out)"),
        # The format's defaults are the ones ExportFormat (protocol.py) declares.
        choice("decimal_separator", ExportFormat.decimal, ("auto", ".", ","), fix='use "auto", "." or ","'),
        choice("decimal", None, (".", ","), fix="rename it decimal_separator"),  # the older name, still read
        Option(
            "delimiter",
            ExportFormat.delimiter,
            lambda v: isinstance(v, str) and (v == "auto" or len(v) == 1),
            '"auto" or one character',
            'use "auto", "," or ";"',
        ),
        Option("encoding", "utf-8", _encoding, "a known text encoding", 'use "utf-8" or e.g. "cp1252"'),
        currency(),
        table("columns", COLUMNS),
        checks=(_one_decimal_setting,),
    )

    def __init__(
        self,
        name: str,
        folder: str,
        *,
        done_folder: str | None,
        failed_folder: str | None,
        poll_interval_s: float,
        stable_s: float,
        require_marker: bool,
        encoding: str,
        delimiter: str,
        currency: str,
        columns: dict[str, str | None],
        preset: str = "",
        decimal_separator: str = "auto",
        decimal: str | None = None,
        max_rows: int = 5_000_000,
        max_file_mb: float = 1024.0,
        flush_timeout_s: float = 10.0,
    ) -> None:
        # The folder is looked at every poll_interval_s, and so is a folder that has gone away.
        super().__init__(name, backoff_initial_s=poll_interval_s, backoff_max_s=max(poll_interval_s, 5.0))
        self.folder = Path(folder)
        self.done = Path(done_folder) if done_folder else self.folder / "done"
        self.failed = Path(failed_folder) if failed_folder else self.folder / "failed"
        given = {field: column for field, column in columns.items() if column is not None}
        separator = decimal if decimal is not None else decimal_separator
        if preset:
            self.fmt = ExportFormat.for_preset(
                PRESETS[preset], columns=given, decimal=separator, delimiter=delimiter, currency=currency
            )
        else:
            self.fmt = ExportFormat({f: given.get(f, f) for f in FIELDS}, separator, delimiter, currency)
        self.poll_interval_s, self.stable_s, self.require_marker = poll_interval_s, stable_s, require_marker
        self.encoding, self.flush_timeout_s = encoding, flush_timeout_s
        self.limits, self.max_file_bytes = Limits(max_rows=max_rows), int(max_file_mb * 1024 * 1024)
        self.files_done = self.files_failed = self.rereads = 0
        self.refused: Counter[str] = Counter()
        self._seen: dict[Path, tuple[Identity, float]] = {}  # path -> (identity, unchanged since)
        self._in_place: dict[Path, tuple[int, ...]] = {}  # refused but not movable: reported once, until it changes
        self._open_refusals: dict[str, tuple[str, Path]] = {}  # name -> (reason, where it lies) while it lies there
        self._writing: set[str] = set()
        self._restored = False  # the open refusals of the last run, read from the driver state once
        self._log = RateLimitedLog(log, interval_s=3600.0)

    def _health_extra(self) -> dict[str, Any]:
        with self._health.lock:
            extra: dict[str, Any] = {"files_done": self.files_done, "files_failed": self.files_failed,
                                     "refused": dict(self.refused), "rereads": self.rereads,
                                     "waiting_for_writer": len(self._writing)}  # fmt: skip
            if self._open_refusals:
                reasons = Counter(reason for reason, _ in self._open_refusals.values())
                shown = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
                extra["degraded"] = (f"{len(self._open_refusals)} export file(s) refused ({shown}); "
                                     f"see {self.failed}/*.reason.txt and the agent log")  # fmt: skip
            return extra

    def _where(self) -> str:
        return str(self.folder)

    def _connect(self, sink: Sink) -> None:
        self._check_folder()
        if not self._restored:  # a DriverError from the store here is an outage: reported and retried
            self._restore(sink)

    def _restore(self, sink: Sink) -> None:
        """The refusals the last run left open: health stays degraded, files left in place are not retried."""
        restored = refusals_from(lambda key: sink.load_state(self.name, key))
        with self._health.lock:
            for name, reason, where, key in restored:
                self._open_refusals.setdefault(name, (reason, where))
                if key is not None:
                    self._in_place.setdefault(where, key)
        self._restored = True
        if restored:
            log.info("drop folder %s: %d refused file(s) still open from the last run", self.name, len(restored))

    def _persist(self, sink: Sink) -> None:
        """Save the open refusals (in emission order, so after the readings of the files before them)."""
        with self._health.lock:
            refusals = [
                (name, reason, where, self._in_place.get(where))
                for name, (reason, where) in self._open_refusals.items()
            ]
        self._save_state(sink, state_for(refusals))

    def _check_folder(self) -> None:
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder} is not a folder (unmounted?)")
        self.done.mkdir(parents=True, exist_ok=True)
        self.failed.mkdir(parents=True, exist_ok=True)

    def _session(self, sink: Sink) -> None:
        while True:
            for path in self._ready_files():
                if self._stop.is_set():
                    return
                self._take(sink, path)
            if self._forget_settled():
                self._persist(sink)
            if self._stop.wait(self.poll_interval_s):
                return
            self._check_folder()  # an unmounted share is an outage: reported once, retried

    # -- which files are complete ------------------------------------------------------------------
    def _ready_files(self) -> list[Path]:
        """Complete exports: marked NAME.done if required, else unchanged for stable_s and not open for writing.

        Symlinks and other non-regular entries are ready at once: they are refused, never opened.
        """
        now, ready, present = time.monotonic(), [], set()
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue  # gone since the listing
            present.add(path)
            if self._in_place.get(path) == _unchanged_key(st):
                continue  # already reported; looked at again once it changes (chmod, rewrite)
            if self.require_marker:
                if path.with_name(path.name + MARKER).exists():
                    ready.append(path)
                continue
            if not stat.S_ISREG(st.st_mode):
                ready.append(path)
                continue
            previous = self._seen.get(path)
            if previous is None or previous[0] != identity(st):
                self._seen[path] = (identity(st), now)
                if self.stable_s > 0:
                    continue
            if now - self._seen[path][1] >= self.stable_s:
                ready.append(path)
        self._seen = {p: v for p, v in self._seen.items() if p in present}
        self._in_place = {p: v for p, v in self._in_place.items() if p in present}
        if self.require_marker:
            return ready
        writing = open_for_writing([p for p in ready if p in self._seen])
        for path in writing:
            self._log.warning(
                f"writing:{path}", "drop folder %s: %s is still open for writing; waiting", self.name, path
            )
        with self._health.lock:
            self._writing = {p.name for p in writing}
        return [p for p in ready if p not in writing]

    # -- one file ----------------------------------------------------------------------------------
    def _take(self, sink: Sink, path: Path) -> None:
        """Store or refuse one entry; nothing raised here may stop the driver, except the folder going away."""
        try:
            self._process(sink, path)
        except DropFileError as exc:
            self._refuse(sink, path, exc)
        except OSError as exc:
            if not self.folder.is_dir():
                raise  # the share went away: an outage, reported once by the base and retried
            self._refuse(sink, path, DropFileError(f"cannot be read ({exc.strerror or exc})", "unreadable"))
        except Exception as exc:  # a bug must cost one file, not the driver: refused loudly, with the trace
            log.exception("drop folder %s: %s could not be read", self.name, path)
            self._refuse(sink, path, DropFileError(f"internal error {type(exc).__name__}; please report", "internal"))

    def _process(self, sink: Sink, path: Path) -> None:
        refusal = refusal_before_open(path, self.folder)
        if refusal is not None:
            raise refusal
        with ExportFile(path, self.encoding, self.limits.max_line_chars) as export:
            if export.opened[2] > self.max_file_bytes:
                raise DropFileError(f"{export.opened[2]} bytes, more than max_file_mb allows", "too_large")
            seen = self._seen.get(path)
            if seen is not None and seen[0] != export.opened:
                return self._reread(path, "it changed after it was judged complete")
            suffix = SUFFIXES[path.suffix.lower()]
            try:
                checked = self._plan(export, suffix)
            except DropFileError:
                if why := export.changed():  # rewritten under us: not the file's fault
                    return self._reread(path, why)
                raise
            if not self._store(sink, export, suffix, checked):
                return None
        try:
            self._move(path, self.done, "")
        except OSError as exc:  # stored, and must not be read as refused: it stays, reported once
            raise DropFileError(f"stored, but it cannot be moved to done/ ({exc.strerror})", "cannot_move") from exc
        with self._health.lock:
            self.files_done += 1
            self._health.frames += 1
        return None

    def _plan(self, export: ExportFile, suffix: str) -> Plan:
        try:
            return plan(export.lines, suffix, self.fmt, self.limits)
        except DropFileError as exc:
            if exc.reason == "bad_encoding" and export.use_fallback():
                return plan(export.lines, suffix, self.fmt, self.limits)
            raise

    def _store(self, sink: Sink, export: ExportFile, suffix: str, checked: Plan) -> bool:
        """Emit and commit the file's baskets in chunks; True when all are committed and the file is unchanged.

        The last receipt is held back until the file is known to be unchanged: a copy that resumes after a
        stall may still be adding rows to it, and a receipt stored short would stay short (stored once).
        """
        chunk: list[Basket] = []
        held: list[Basket] = []
        for receipt in receipt_baskets(export.lines, suffix, self.fmt, checked, self.limits):
            chunk += held
            held = receipt
            if len(chunk) >= CHUNK_BASKETS:
                if not self._commit(sink, export.path, chunk) or self._changed(export):
                    return False
                chunk = []
        if not self._commit(sink, export.path, chunk) or self._changed(export, writers=True):
            return False
        return self._commit(sink, export.path, held) and not self._changed(export)

    def _changed(self, export: ExportFile, *, writers: bool = False) -> bool:
        """Whether the file changed (then it is re-read later); `writers` also asks /proc (tens of ms)."""
        why = export.changed()
        if not why and writers and open_for_writing([export.path]):
            why = "a process opened it for writing while it was being read"
        if why:
            self._reread(export.path, why)
        return bool(why)

    def _commit(self, sink: Sink, path: Path, baskets: list[Basket]) -> bool:
        if not baskets:
            return True
        if not self._emit_all(sink, baskets):
            return False  # stop() has begun: the file stays and is read again (stored ones are not doubled)
        if not sink.flush(self.flush_timeout_s):
            self._report(sink, "problem", f"{path.name}: the store did not commit in time; the file stays for a retry")
            return False
        return True

    def _reread(self, path: Path, why: str) -> None:
        """Not moved: the file is read again once complete; what was stored stays stored (and is not doubled)."""
        self._seen.pop(path, None)  # its stability is judged afresh
        with self._health.lock:
            self.rereads += 1
        self._log.warning(f"reread:{path}", "drop folder %s: %s: %s; it stays and is read again", self.name, path, why)

    # -- refusals ----------------------------------------------------------------------------------
    def _refuse(self, sink: Sink, path: Path, exc: DropFileError) -> None:
        reason, text = exc.reason, f"{path.name}: {exc}"
        where = self.failed / path.name
        if reason in ("unreadable", "cannot_move"):
            where = path  # left where it is: once its permissions are fixed it is read like any other
        else:
            try:
                where = self._move(path, self.failed, text)
            except OSError as move_error:
                where, text = path, f"{text} (and it cannot be moved to failed/: {move_error.strerror})"
        if where == path:
            with contextlib.suppress(OSError):  # gone meanwhile: nothing left to remember
                self._in_place[path] = _unchanged_key(os.lstat(path))
        with self._health.lock:
            self.files_failed += 1
            self._health.bad_frames += 1
            self.refused[reason] += 1
            self._open_refusals[path.name] = (reason, where)
            while len(self._open_refusals) > DEGRADED_FILES_MAX:
                del self._open_refusals[next(iter(self._open_refusals))]
        self._log.warning(f"refused:{path}", "drop folder %s: refused %s", self.name, text)
        self._report(sink, "bad_frame", f"refused_file: {reason}")
        self._persist(sink)

    def _forget_settled(self) -> bool:
        """A refusal stops degrading health once the owner has dealt with the file (removed or fixed it).

        True when one was forgotten (the saved list is then out of date)."""
        with self._health.lock:
            settled = [
                name
                for name, (_, where) in self._open_refusals.items()
                if not os.path.lexists(where) or (where.parent == self.folder and where not in self._in_place)
            ]
            for name in settled:
                del self._open_refusals[name]
        return bool(settled)

    def _move(self, path: Path, target: Path, reason: str) -> Path:
        destination = move_to(path, target, reason)
        marker = path.with_name(path.name + MARKER)
        if marker.exists():
            marker.unlink()
        self._seen.pop(path, None)
        return destination
