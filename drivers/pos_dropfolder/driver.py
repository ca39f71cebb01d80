"""POS drop-folder driver: polls a folder, parses finished exports with protocol.py, moves them to done/ or failed/."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from agent.driver_api import DriverHealth, DriverOptionError, Sink
from drivers.pos_dropfolder.presets import PRESETS
from drivers.pos_dropfolder.protocol import FIELDS, DropFileError, ExportFormat, parse_csv, parse_jsonl
from drivers.pos_dropfolder.text_decoding import DecodeError, decode_export

OPTIONS = ("folder", "done_folder", "failed_folder", "poll_interval_s", "stable_s", "require_marker", "encoding",
           "preset", "decimal_separator", "decimal", "delimiter", "currency", "columns")  # fmt: skip
SUFFIXES = {".csv": parse_csv, ".jsonl": parse_jsonl, ".ndjson": parse_jsonl}
MARKER = ".done"


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise DriverOptionError(key, f"{value!r} is not between {low} and {high}", f"use {default} (the default)")
    return float(value)


class PosDropFolderDriver:
    """Emits one Basket per receipt in each finished export file, then moves the file out of the way."""

    kind: ClassVar[str] = "pos_dropfolder"

    def __init__(self, name: str, folder: Path, *, done: Path, failed: Path, fmt: ExportFormat,
                 poll_interval_s: float = 2.0, stable_s: float = 5.0, require_marker: bool = False,
                 encoding: str = "utf-8", flush_timeout_s: float = 10.0) -> None:  # fmt: skip
        self.name, self.folder, self.done, self.failed, self.fmt = name, folder, done, failed, fmt
        self.poll_interval_s, self.stable_s, self.require_marker = poll_interval_s, stable_s, require_marker
        self.encoding, self.flush_timeout_s = encoding, flush_timeout_s
        self.files_done = self.files_failed = 0
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, unchanged since)
        self._health = DriverHealth()
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> PosDropFolderDriver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; pos_dropfolder takes {', '.join(OPTIONS)}")
        folder = options.get("folder")
        if not isinstance(folder, str) or not folder.strip():
            raise DriverOptionError("folder", "missing or empty", 'set folder = "/srv/pos-export"')
        root = Path(folder)
        paths = {}
        for key, default in (("done_folder", root / "done"), ("failed_folder", root / "failed")):
            value = options.get(key, str(default))
            if not isinstance(value, str) or not value:
                raise DriverOptionError(key, f"{value!r} is not a folder", f'use "{default}"')
            paths[key] = Path(value)
        key = "decimal" if "decimal" in options and "decimal_separator" not in options else "decimal_separator"
        decimal = options.get(key, "auto")  # "decimal" is the older name of the same setting
        if decimal not in ("auto", ".", ","):
            raise DriverOptionError(key, f"{decimal!r} is not auto, '.' or ','", 'use "auto", "." or ","')
        delimiter = options.get("delimiter", "auto")
        if not isinstance(delimiter, str) or not (delimiter == "auto" or len(delimiter) == 1):
            raise DriverOptionError("delimiter", f"{delimiter!r} is not one character", 'use "auto", "," or ";"')
        preset_name = options.get("preset", "")
        if preset_name != "" and preset_name not in PRESETS:
            raise DriverOptionError("preset", f"{preset_name!r} is not a known export",
                                    f"use one of {', '.join(PRESETS)} (or leave it out)")  # fmt: skip
        columns = options.get("columns", {})
        if not isinstance(columns, Mapping) or not all(isinstance(v, str) and v for v in columns.values()):
            raise DriverOptionError("columns", "is not a table of column names", "write [drivers.<name>.columns]")
        for key in columns:
            if key not in FIELDS:
                raise DriverOptionError(f"columns.{key}", "unknown field", f"use one of {', '.join(FIELDS)}")
        currency = options.get("currency", "")
        if not isinstance(currency, str) or (currency and not (len(currency) == 3 and currency.isalpha())):
            raise DriverOptionError("currency", f"{currency!r} is not an ISO 4217 code", 'use e.g. "EUR" or ""')
        encoding = options.get("encoding", "utf-8")
        try:
            "".encode(encoding)
        except (LookupError, TypeError) as exc:
            raise DriverOptionError("encoding", f"{encoding!r} is not an encoding", 'use "utf-8"') from exc
        marker = options.get("require_marker", False)
        if not isinstance(marker, bool):
            raise DriverOptionError("require_marker", f"{marker!r} is not true or false", "use true or false")
        if preset_name:
            fmt = ExportFormat.for_preset(PRESETS[preset_name], columns=dict(columns), decimal=decimal,
                                          delimiter=delimiter, currency=currency.upper())  # fmt: skip
        else:
            fmt = ExportFormat({f: columns.get(f, f) for f in FIELDS}, decimal, delimiter, currency.upper())
        return cls(name, root, done=paths["done_folder"], failed=paths["failed_folder"], fmt=fmt,
                   poll_interval_s=_number(options, "poll_interval_s", 2.0, 0.01, 3600),
                   stable_s=_number(options, "stable_s", 5.0, 0, 3600), require_marker=marker,
                   encoding=encoding)  # fmt: skip

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.pos_dropfolder").joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """A POS export watches no door."""
        return []

    def alive(self) -> bool:
        """False once the polling thread has ended without stop()."""
        return self._stop.is_set() or (self._thread is not None and self._thread.is_alive())

    def health(self) -> dict[str, Any]:
        """The standard keys (frames = files stored) plus files_done and files_failed."""
        snapshot = self._health.snapshot()
        with self._health.lock:
            snapshot.update(files_done=self.files_done, files_failed=self.files_failed)
        return snapshot

    def start(self, sink: Sink) -> None:
        """Start polling."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"driver {self.name} already started")
        with self._emit_lock:
            self._stopped = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"dropfolder-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; once this returns nothing more reaches the sink."""
        with self._emit_lock:
            self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _report(self, sink: Sink, kind: str, text: str) -> None:
        with self._emit_lock:
            if self._stopped:
                return
            if kind == "problem":
                sink.problem(self.name, text)
            else:
                sink.bad_frame(self.name, text)

    def _run(self, sink: Sink) -> None:
        ever, outage = False, False
        while not self._stop.is_set():
            try:
                if not self.folder.is_dir():
                    raise FileNotFoundError(f"{self.folder} is not a folder (unmounted?)")
                self.done.mkdir(parents=True, exist_ok=True)
                self.failed.mkdir(parents=True, exist_ok=True)
                with self._health.lock:
                    self._health.reconnects += int(outage and ever)
                    self._health.connected = True
                ever, outage = True, False
                for path in self._ready_files():
                    if self._stop.is_set():
                        break
                    self._process(sink, path)
            except OSError as exc:
                with self._health.lock:
                    self._health.connected, self._health.last_error = False, str(exc)
                if not outage:
                    self._report(sink, "problem", f"{self.folder}: {exc}; retrying")
                    outage = True
            self._stop.wait(self.poll_interval_s)
        with self._health.lock:
            self._health.connected = False

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
        with self._emit_lock:
            if self._stopped:
                return
            for basket in baskets:
                sink.emit(basket)
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
