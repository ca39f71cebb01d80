"""An export read as a stream of lines -> Baskets, in bounded memory (pure: lines in, baskets out).

A file is read in passes over the same lines, so nothing grows with its size: one pass to find its
decimal separator (only when `decimal_separator = "auto"`), one to check every row (`plan`), and one to
emit (`baskets`). Only the check pass may refuse a file, so a refused file stores nothing: the file stays
all or nothing. Rows are grouped one receipt at a time, so a receipt's rows must be together (as every
vendor export writes them); a receipt that comes back after other receipts is refused rather than stored
as two baskets of which the agent would keep only the first. Lines, fields, rows per receipt and rows per
file are bounded, each refusal with its own reason key.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, TextIO

import numpy as np

from agent.driver_api import Basket
from drivers.pos_dropfolder.presets import matching_presets
from drivers.pos_dropfolder.protocol import (
    FIELDS,
    DropFileError,
    ExportFormat,
    Row,
    baskets_from_rows,
    detect_file_decimal,
    group_rows,
    receipt_of,
    renamed,
)

DELIMITERS = (",", ";", "\t", "|")
MAX_FIELD_CHARS = 64 * 1024  # below csv's own 128 kB default, which stays as it is: it is process-wide
MAX_LINE_CHARS = 1024 * 1024
MAX_RECEIPT_ROWS = 10_000
MAX_RECEIPT_CHARS = 8 * 1024 * 1024
Lines = Callable[[], Iterator[str]]  # opens the file's lines afresh, from the start


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on one file; each refusal names the bound and the setting."""

    max_rows: int = 5_000_000
    max_field_chars: int = MAX_FIELD_CHARS
    max_line_chars: int = MAX_LINE_CHARS


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the check pass learnt about a file that the emit pass needs."""

    decimal: str
    several_kinds: frozenset[int]  # hash() of each receipt with baskets of more than one kind
    rows: int
    baskets: int


def bounded_lines(text: TextIO, max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The text stream's lines (ends kept, for csv); DropFileError for a line longer than max_chars."""
    number = 0
    while True:
        try:
            line = text.readline(max_chars + 1)
        except UnicodeDecodeError as exc:
            raise DropFileError(f"line {number + 1}: not {exc.encoding}; check encoding", "bad_encoding") from exc
        if not line:
            return
        number += 1
        if len(line) > max_chars:
            raise DropFileError(f"line {number}: longer than {max_chars} characters", "line_too_long")
        yield line


def decoded_lines(binary: BinaryIO, codec: str, max_bytes: int = MAX_LINE_CHARS) -> Iterator[str]:
    """An ASCII-compatible encoding's lines, decoded one line at a time (so an error names its line)."""
    first_codec = codec
    codec = "utf-8" if codec == "utf-8-sig" else codec  # the mark is only at the start
    number = 0
    while True:
        raw = binary.readline(max_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_bytes:
            raise DropFileError(f"line {number}: longer than {max_bytes} bytes", "line_too_long")
        try:
            yield raw.decode(first_codec if number == 1 else codec)
        except UnicodeDecodeError as exc:
            byte = raw[exc.start]
            if codec == "utf-8":
                message = (f'line {number}: byte 0x{byte:02x} is not UTF-8; if the POS writes Windows-1252 '
                           f'(Excel "CSV" on Windows), set encoding = "cp1252"')  # fmt: skip
            else:
                message = f"line {number}: byte 0x{byte:02x} is not {codec}; check encoding"
            raise DropFileError(message, "bad_encoding") from exc


def _delimiter(header: str, fmt: ExportFormat) -> str:
    if fmt.delimiter != "auto":
        return fmt.delimiter
    return max(DELIMITERS, key=header.count) if any(d in header for d in DELIMITERS) else ","


def _too_long(sizes: list[int], limits: Limits, where: str) -> None:
    if sizes and max(sizes) > limits.max_field_chars:
        raise DropFileError(f"{where}: a field is longer than {limits.max_field_chars} characters", "field_too_long")


def _renamer(header: list[str], fmt: ExportFormat) -> Callable[[list[str]], dict[str, Any]]:
    """A CSV row's values -> our fields, as protocol.renamed does for a dict, by column index (it is the hot path)."""
    position = {column: i for i, column in enumerate(header)}  # a repeated column: the last one, as a dict would
    plan: list[tuple[str, int | None, tuple[int | None, ...]]] = []
    for field in FIELDS:
        column = fmt.columns.get(field, field)
        if isinstance(column, tuple):
            plan.append((field, None, tuple(position.get(c) for c in column)))
        else:
            plan.append((field, position.get(column), ()))
    if fmt.preset is not None:
        plan += [(f"amount:{column}", position.get(column), ()) for _, column in fmt.preset.payment_amounts]

    def rename(values: list[str]) -> dict[str, Any]:
        width = len(values)
        out: dict[str, Any] = {}
        for field, index, joined in plan:
            if joined:
                parts = [values[i].strip() for i in joined if i is not None and i < width]
                out[field] = " ".join(p for p in parts if p) or None
            else:
                out[field] = values[index] if index is not None and index < width else None
        return out

    return rename


SizedRow = tuple[str, dict[str, Any], int]  # (where, row, characters it took in the file)


def csv_rows(lines: Iterator[str], fmt: ExportFormat, limits: Limits) -> Iterator[SizedRow]:
    """Each CSV data row under our field names; blank rows are skipped (as csv.DictReader does)."""
    first = next(lines, "")
    reader = csv.reader(itertools.chain([first], lines), delimiter=_delimiter(first, fmt))
    try:
        header = [h.strip() for h in next(reader, [])]
        _too_long([len(h) for h in header], limits, "line 1")
        needed = (
            fmt.preset.required if fmt.preset else tuple(str(fmt.columns.get(f, f)) for f in ("receipt_id", "name"))
        )
        missing = [c for c in needed if c not in header]
        if missing:
            hint = matching_presets(header)
            fix = f'set preset = "{hint[0]}"' if hint else "set preset, or map them in [columns]"
            shape = f"the {fmt.preset.title}" if fmt.preset else "the configured columns"
            shown = [c[:40] for c in missing]
            raise DropFileError(f"line 1: the header lacks the columns {shown} of {shape}; {fix}", "bad_header")
        rename = _renamer(header, fmt)
        count = 0
        for values in reader:
            if not values:
                continue
            where = f"line {reader.line_num}"
            sizes = list(map(len, values))
            _too_long(sizes, limits, where)
            count += 1
            if count > limits.max_rows:
                raise DropFileError(f"{where}: more than max_rows = {limits.max_rows} rows", "too_many_rows")
            yield where, rename(values), sum(sizes)
    except csv.Error as exc:
        # csv's own limit (a field over 128 kB) lands here too
        reason = "field_too_long" if "field limit" in str(exc) else "bad_file"
        raise DropFileError(f"line {reader.line_num}: {exc}", reason) from exc


def jsonl_rows(lines: Iterator[str], fmt: ExportFormat, limits: Limits) -> Iterator[SizedRow]:
    """Each item: a JSON line is an item row, or a basket with a `lines` list of items."""
    count = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"line {number}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DropFileError(f"{where}: not JSON ({exc.msg})") from exc
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting 10,000 deep
            raise DropFileError(f"{where}: not JSON the agent takes ({type(exc).__name__})") from exc
        if not isinstance(obj, dict):
            raise DropFileError(f"{where}: not a JSON object")
        row = renamed(obj, fmt)
        items = obj.get("lines")
        for item in items if isinstance(items, list) else [None]:
            if item is not None and not isinstance(item, dict):
                raise DropFileError(f"{where}: an entry of lines is not an object")
            count += 1
            if count > limits.max_rows:
                raise DropFileError(f"{where}: more than max_rows = {limits.max_rows} rows", "too_many_rows")
            if item is None:
                yield where, row, len(raw)
            else:
                yield where, {**row, **{k: v for k, v in renamed(item, fmt).items() if v is not None}}, len(raw)


def rows_of(lines: Iterator[str], suffix: str, fmt: ExportFormat, limits: Limits) -> Iterator[SizedRow]:
    """The file's item rows, by its suffix (.csv, or JSON lines)."""
    return csv_rows(lines, fmt, limits) if suffix == ".csv" else jsonl_rows(lines, fmt, limits)


def _rows(sized: Iterable[SizedRow]) -> Iterator[Row]:
    return ((where, row) for where, row, _ in sized)


def receipt_runs(rows: Iterable[SizedRow]) -> Iterator[list[Row]]:
    """Consecutive rows of one receipt, bounded in rows and characters."""
    run: list[Row] = []
    current, chars = "", 0
    for where, row, size in rows:
        receipt = receipt_of(row, where)
        if receipt != current and run:
            yield run
            run, chars = [], 0
        current = receipt
        run.append((where, row))
        chars += size
        if len(run) > MAX_RECEIPT_ROWS or chars > MAX_RECEIPT_CHARS:
            raise DropFileError(f"{where}: receipt {receipt[:40]!r} has more than {MAX_RECEIPT_ROWS} rows or "
                                f"{MAX_RECEIPT_CHARS} characters", "receipt_too_large")  # fmt: skip
    if run:
        yield run


def _repeated(hashes: array[int]) -> set[int]:
    """The values that occur more than once (sorted in numpy: 8 bytes a value, not a Python set's ~60)."""
    values = np.frombuffer(hashes, dtype=np.int64).copy()
    values.sort()
    return set(values[1:][values[1:] == values[:-1]].tolist())


def plan(lines: Lines, suffix: str, fmt: ExportFormat, limits: Limits) -> Plan:
    """Check every row of the file (DropFileError with its reason on the first bad one); nothing is emitted."""
    decimal = detect_file_decimal(_rows(rows_of(lines(), suffix, fmt, limits)), fmt)
    groups, receipts = array("q"), array("q")
    rows = baskets = 0
    for run in receipt_runs(rows_of(lines(), suffix, fmt, limits)):
        rows += len(run)
        for receipt, kind in group_rows(run, fmt)[0]:
            groups.append(hash((receipt, kind)))
            receipts.append(hash(receipt))
        baskets += len(baskets_from_rows(run, fmt, decimal, lambda _receipt: False))
    split = _repeated(groups)
    if split:
        _name_split(lines, suffix, fmt, limits, split)
    return Plan(decimal, frozenset(_repeated(receipts)), rows, baskets)


def _name_split(lines: Lines, suffix: str, fmt: ExportFormat, limits: Limits, split: set[int]) -> None:
    first: dict[int, str] = {}
    for run in receipt_runs(rows_of(lines(), suffix, fmt, limits)):
        for (receipt, kind), items in group_rows(run, fmt)[0].items():
            key = hash((receipt, kind))
            if key in first:
                message = (f"{items[0][0]}: receipt {receipt[:40]!r} continues here after other receipts "
                           f"(it began at {first[key]}); export the rows sorted by receipt")  # fmt: skip
                raise DropFileError(message, "split_receipt")
            if key in split:
                first[key] = items[0][0]
    raise DropFileError(
        "a receipt's rows are split across the file; export the rows sorted by receipt", "split_receipt"
    )


def receipt_baskets(
    lines: Lines, suffix: str, fmt: ExportFormat, checked: Plan, limits: Limits
) -> Iterator[list[Basket]]:
    """The file's baskets, one receipt (one or more baskets) at a time, after plan() accepted it."""
    several = checked.several_kinds
    for run in receipt_runs(rows_of(lines(), suffix, fmt, limits)):
        yield baskets_from_rows(run, fmt, checked.decimal, lambda receipt: hash(receipt) in several)


def read_text(text: str, suffix: str, fmt: ExportFormat, limits: Limits | None = None) -> list[Basket]:
    """All baskets of an export held as text (tests, small files): the driver's own passes."""
    bounds = limits or Limits()

    def lines() -> Iterator[str]:
        return bounded_lines(io.StringIO(text), bounds.max_line_chars)

    checked = plan(lines, suffix, fmt, bounds)
    return [basket for run in receipt_baskets(lines, suffix, fmt, checked, bounds) for basket in run]
