"""POS export files (CSV, JSON lines) -> Baskets (pure: text in, baskets out; no I/O).

One row per line item; rows with the same receipt_id form one basket, in file order. Columns
(names configurable): receipt_id, time, sku, name, category, quantity, unit_price, line_total,
payment, kind. A JSON-lines file holds either such rows, or one basket per line with a `lines`
list of items. Money is parsed with Decimal using the configured decimal separator; a fractional
quantity is a weighed item and counts as 1. Any bad row rejects the whole file (the reason names
the line), so a file is either stored completely or not at all.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from agent.driver_api import Basket, BasketLine

FIELDS = ("receipt_id", "time", "sku", "name", "category", "quantity", "unit_price", "line_total", "payment", "kind")
KINDS = ("sale", "refund", "void")
PAYMENTS = {"cash": "cash", "card": "card", "other": "other", "": ""}


class DropFileError(ValueError):
    """The file cannot be read as an export; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """How the shop's POS writes its export."""

    columns: Mapping[str, str] = dataclasses.field(default_factory=lambda: {f: f for f in FIELDS})
    decimal: str = "."
    delimiter: str = ","
    currency: str = ""


def parse_money(text: object, decimal: str, where: str) -> int:
    """'2,40' (decimal ",") -> 240, exactly; DropFileError otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        text = repr(text)  # JSON numbers: their shortest repr is the decimal the POS wrote
    if not isinstance(text, str) or not text.strip():
        raise DropFileError(f"{where}: empty amount")
    cleaned = text.strip().replace(" ", "")
    # Thousands separators go; the decimal separator becomes a point.
    cleaned = cleaned.replace(".", "").replace(",", ".") if decimal == "," else cleaned.replace(",", "")
    try:
        value = Decimal(cleaned).scaleb(2)
    except InvalidOperation as exc:
        raise DropFileError(f"{where}: {text!r} is not an amount") from exc
    if not value.is_finite() or value != value.to_integral_value():
        raise DropFileError(f"{where}: {text!r} has more than two decimals")
    return int(value)


def _quantity(text: object, decimal: str, where: str) -> tuple[int, bool]:
    raw = str(text).strip() if text is not None else "1"
    try:
        value = Decimal((raw or "1").replace(",", ".") if decimal == "," else (raw or "1"))
    except InvalidOperation as exc:
        raise DropFileError(f"{where}: quantity {text!r} is not a number") from exc
    if not value.is_finite() or value == 0:
        raise DropFileError(f"{where}: quantity {text!r} is not a nonzero number")
    if value != value.to_integral_value():
        return 1, True
    return abs(int(value)), False


def _line(row: Mapping[str, Any], fmt: ExportFormat, where: str, kind: str) -> BasketLine:
    name = str(row.get("name") or "").strip()
    if not name and not row.get("sku"):
        raise DropFileError(f"{where}: neither name nor sku")
    qty, weighed = _quantity(row.get("quantity"), fmt.decimal, where)
    has_total, has_unit = row.get("line_total") not in (None, ""), row.get("unit_price") not in (None, "")
    if not has_total and not has_unit:
        raise DropFileError(f"{where}: neither unit_price nor line_total")
    total = parse_money(row["line_total"], fmt.decimal, where) if has_total else 0
    unit = parse_money(row["unit_price"], fmt.decimal, where) if has_unit else 0
    if not has_total:
        total = unit * qty
    if not has_unit or weighed:
        unit = abs(total) if weighed else abs(total) // qty
    if kind == "refund":
        total = -abs(total)
    return BasketLine(name or str(row.get("sku")), qty, abs(unit), total, str(row.get("sku") or ""),
                      str(row.get("category") or ""))  # fmt: skip


def baskets_from_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], fmt: ExportFormat) -> list[Basket]:
    """Group item rows by receipt_id into baskets (rows given as (where, row))."""
    groups: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for where, row in rows:
        receipt = str(row.get("receipt_id") or "").strip()
        if not receipt:
            raise DropFileError(f"{where}: receipt_id is empty")
        groups.setdefault(receipt, []).append((where, row))
    out = []
    for receipt, items in groups.items():
        where, first = items[0]
        kind = str(first.get("kind") or "sale").strip().lower()
        if kind not in KINDS:
            raise DropFileError(f"{where}: kind {kind!r} is not sale, refund or void")
        payment = str(first.get("payment") or "").strip().lower()
        lines = tuple(_line(row, fmt, w, kind) for w, row in items)
        out.append(Basket(receipt, lines, sum(ln.line_total_cents for ln in lines), kind,
                          PAYMENTS.get(payment, "other"), fmt.currency, "", str(first.get("time") or "")))  # fmt: skip
    return out


def _renamed(row: Mapping[str, Any], fmt: ExportFormat) -> dict[str, Any]:
    return {field: row.get(fmt.columns.get(field, field)) for field in FIELDS}


def parse_csv(text: str, fmt: ExportFormat) -> list[Basket]:
    """A CSV export with a header row."""
    reader = csv.DictReader(io.StringIO(text), delimiter=fmt.delimiter)
    header = reader.fieldnames or []
    missing = [fmt.columns.get(f, f) for f in ("receipt_id", "name") if fmt.columns.get(f, f) not in header]
    if missing:
        raise DropFileError(f"line 1: the header lacks the columns {missing}")
    try:
        rows = [(f"line {reader.line_num}", _renamed(row, fmt)) for row in reader]
    except csv.Error as exc:
        raise DropFileError(f"line {reader.line_num}: {exc}") from exc
    return baskets_from_rows(rows, fmt)


def parse_jsonl(text: str, fmt: ExportFormat) -> list[Basket]:
    """JSON lines: item rows, or baskets with a `lines` list."""
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DropFileError(f"line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise DropFileError(f"line {number}: not a JSON object")
        row = _renamed(obj, fmt)
        if isinstance(obj.get("lines"), list):
            for item in obj["lines"]:
                if not isinstance(item, dict):
                    raise DropFileError(f"line {number}: an entry of lines is not an object")
                rows.append(
                    (f"line {number}", {**row, **{k: v for k, v in _renamed(item, fmt).items() if v is not None}})
                )
        else:
            rows.append((f"line {number}", row))
    return baskets_from_rows(rows, fmt)
