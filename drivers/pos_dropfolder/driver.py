"""POS drop-folder driver: polls a folder, parses finished exports with protocol.py, moves them to done/ or failed/."""

from __future__ import annotations

import codecs
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from agent.driver_api import BackgroundDriver, DriverOptionError, Sink
from agent.driver_api.options import Option, Options, choice, currency, flag, number, table, text
from drivers.pos_dropfolder.presets import PRESETS
from drivers.pos_dropfolder.protocol import FIELDS, DropFileError, ExportFormat, parse_csv, parse_jsonl
from drivers.pos_dropfolder.text_decoding import DecodeError, decode_export

SUFFIXES = {".csv": parse_csv, ".jsonl": parse_jsonl, ".ndjson": parse_jsonl}
MARKER = ".done"
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
            text, _ = decode_export(path.read_bytes(), self.encoding)
            baskets = SUFFIXES[path.suffix.lower()](text, self.fmt)
        except (DropFileError, DecodeError) as exc:
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
