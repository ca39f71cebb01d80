"""POS drop-folder driver: polls a folder, parses finished exports with protocol.py, moves them to done/ or failed/."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

from agent.driver_api import BackgroundDriver, Sink
from agent.driver_api.options import Option, Options, choice, codec, currency, flag, number, table, text
from drivers.pos_dropfolder.protocol import FIELDS, DropFileError, ExportFormat, parse_csv, parse_jsonl

SUFFIXES = {".csv": parse_csv, ".jsonl": parse_jsonl, ".ndjson": parse_jsonl}
MARKER = ".done"
COLUMNS = Options(*(text(field, field, what="a column name", fix=f'use the POS\'s column name, e.g. "{field}"')
                    for field in FIELDS))  # fmt: skip


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
        codec("encoding", "utf-8", fix='use "utf-8"'),
        # The format's defaults are the ones ExportFormat (protocol.py) declares.
        choice("decimal", ExportFormat.decimal, (".", ","), fix='use "." or ","'),
        Option(
            "delimiter",
            ExportFormat.delimiter,
            lambda v: isinstance(v, str) and len(v) == 1,
            "one character",
            'use "," or ";"',
        ),
        currency(),
        table("columns", COLUMNS),
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
        decimal: str,
        delimiter: str,
        currency: str,
        columns: dict[str, str],
        flush_timeout_s: float = 10.0,
    ) -> None:
        # The folder is looked at every poll_interval_s, and so is a folder that has gone away.
        super().__init__(name, backoff_initial_s=poll_interval_s, backoff_max_s=max(poll_interval_s, 5.0))
        self.folder = Path(folder)
        self.done = Path(done_folder) if done_folder else self.folder / "done"
        self.failed = Path(failed_folder) if failed_folder else self.folder / "failed"
        self.fmt = ExportFormat(columns, decimal, delimiter, currency)
        self.poll_interval_s, self.stable_s, self.require_marker = poll_interval_s, stable_s, require_marker
        self.encoding, self.flush_timeout_s = encoding, flush_timeout_s
        self.files_done = self.files_failed = 0
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, unchanged since)

    def _health_extra(self) -> dict[str, Any]:
        with self._health.lock:
            return {"files_done": self.files_done, "files_failed": self.files_failed}

    def _where(self) -> str:
        return str(self.folder)

    def _connect(self, sink: Sink) -> None:
        self._check_folder()

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
                self._process(sink, path)
            if self._stop.wait(self.poll_interval_s):
                return
            self._check_folder()  # an unmounted share is an outage: reported once, retried

    def _ready_files(self) -> list[Path]:
        """Finished exports: with a NAME.done marker if required, else unchanged for stable_s seconds."""
        now, ready, present = time.monotonic(), [], set()
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in SUFFIXES or not path.is_file():
                continue
            present.add(path)
            if self.require_marker:
                if path.with_name(path.name + MARKER).exists():
                    ready.append(path)
                continue
            stat = path.stat()
            size_mtime = (stat.st_size, stat.st_mtime_ns)
            previous = self._seen.get(path)
            if previous is None or previous[:2] != size_mtime:
                self._seen[path] = (*size_mtime, now)
                if self.stable_s > 0:
                    continue
            if now - self._seen[path][2] >= self.stable_s:
                ready.append(path)
        self._seen = {p: v for p, v in self._seen.items() if p in present}
        return ready

    def _process(self, sink: Sink, path: Path) -> None:
        try:
            baskets = SUFFIXES[path.suffix.lower()](path.read_bytes().decode(self.encoding), self.fmt)
        except (DropFileError, UnicodeDecodeError) as exc:
            reason = f"{path.name}: {exc}"
            self._move(path, self.failed, reason)
            with self._health.lock:
                self.files_failed += 1
                self._health.bad_frames += 1
            self._report(sink, "bad_frame", f"bad_file: {reason}")
            return
        if not self._emit_all(sink, baskets):
            return
        if not sink.flush(self.flush_timeout_s):
            self._report(sink, "problem", f"{path.name}: the store did not commit in time; the file stays for a retry")
            return
        self._move(path, self.done, "")
        with self._health.lock:
            self.files_done += 1
            self._health.frames += 1

    def _move(self, path: Path, target: Path, reason: str) -> None:
        destination = target / path.name
        counter = 1
        while destination.exists():
            destination = target / f"{path.stem}.{counter}{path.suffix}"
            counter += 1
        if reason:
            # Written whole under a temporary name, then renamed: a reader never sees a half-written reason.
            reason_path = destination.with_name(destination.name + ".reason.txt")
            partial = reason_path.with_name("." + reason_path.name + ".part")
            partial.write_text(reason + "\n", encoding="utf-8")
            os.replace(partial, reason_path)
        os.replace(path, destination)
        marker = path.with_name(path.name + MARKER)
        if marker.exists():
            marker.unlink()
        self._seen.pop(path, None)
