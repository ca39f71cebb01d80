"""POS export files (CSV, JSON lines) -> Baskets (pure: text in, baskets out; no I/O).

One row per line item; rows with the same receipt_id and kind form one basket, in file order. Fields
(column names configurable, or set by a vendor preset, see presets.py): receipt_id, time, sku, name,
category, quantity, unit_price, line_total, payment, kind, discount, currency, refunded_amount. A line's
total is `line_total` (or `unit_price x quantity`) less its `discount`. A JSON-lines file holds either such
rows, or one basket per line with a `lines` list of items. Amounts may carry currency symbols and codes;
the decimal separator is configured or detected per file (amounts.py). A fractional quantity is a weighed
item and counts as 1. A refund row becomes a refund basket; an order exported as refunded becomes its sale
and a refund basket. Any bad row rejects the whole file (the reason names the line and the setting to
change), so a file is either stored completely or not at all. Files are read as streams (stream.py): a
receipt's rows must be together; every amount, quantity and text is bounded as the agent's store bounds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from agent.driver_api import Basket, BasketLine
from drivers.pos_dropfolder.amounts import AmountError, detect_decimal, parse_amount
from drivers.pos_dropfolder.presets import Column, Preset

FIELDS = ("receipt_id", "time", "sku", "name", "category", "quantity", "unit_price", "line_total", "payment", "kind",
          "discount", "currency", "refunded_amount")  # fmt: skip
MONEY = ("unit_price", "line_total", "discount", "refunded_amount")
KINDS = ("sale", "refund", "void")
PAYMENTS = {"cash": "cash", "card": "card", "other": "other", "": ""}
DELIMITERS = (",", ";", "\t", "|")
Row = tuple[str, Mapping[str, Any]]
# The agent's store refuses a basket beyond these (agent/pipeline/ingest.py); refusing the file here instead
# keeps a file from being moved to done/ with one of its receipts silently missing.
MAX_CENTS = 10**13
MAX_QUANTITY = 10**6
MAX_TEXT = 4096
MESSAGE_MAX = 300


class DropFileError(ValueError):
    """The file cannot be read as an export; the message says where, why and which setting to change."""

    def __init__(self, message: str, reason: str = "bad_file") -> None:
        # A message may quote the bad cell, which may be 64 kB: the reason file and the log stay short.
        super().__init__(message if len(message) <= MESSAGE_MAX else message[: MESSAGE_MAX - 3] + "...")
        self.reason = reason  # a short key: counted in health and metrics by it


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """How the shop's POS writes its export."""

    columns: Mapping[str, Column] = dataclasses.field(default_factory=lambda: {f: f for f in FIELDS})
    decimal: str = "auto"  # "auto" (detected per file), "." or ","
    delimiter: str = "auto"  # "auto" (from the header row) or one character
    currency: str = ""
    preset: Preset | None = None

    @classmethod
    def for_preset(cls, preset: Preset, **overrides: Any) -> ExportFormat:
        """The preset's columns with the shop's overrides on top."""
        columns: dict[str, Column] = dict(preset.columns)
        columns.update(overrides.pop("columns", {}))
        return cls(columns=columns, preset=preset, **overrides)


def parse_money(text: object, decimal: str, where: str) -> int:
    """'2,40' (decimal ",") -> 240, exactly; DropFileError otherwise."""
    try:
        cents = parse_amount(text, decimal, where)
    except AmountError as exc:
        raise DropFileError(str(exc), "bad_amount") from exc
    if abs(cents) > MAX_CENTS:
        raise DropFileError(f"{where}: {text!r} is beyond +-{MAX_CENTS} cents", "bad_amount")
    return cents


def _quantity(text: object, decimal: str, where: str) -> tuple[int, Decimal]:
    raw = str(text).strip() if text not in (None, "") else "1"
    try:
        value = Decimal(raw.replace(",", ".") if decimal == "," else raw.replace(",", ""))
    except InvalidOperation as exc:
        raise DropFileError(f"{where}: quantity {text!r} is not a number", "bad_amount") from exc
    if not value.is_finite() or value == 0:
        raise DropFileError(f"{where}: quantity {text!r} is not a nonzero number", "bad_amount")
    if abs(value) > MAX_QUANTITY:  # checked before int(): 1e999999 would be a million-digit integer
        raise DropFileError(f"{where}: quantity {text!r} is beyond {MAX_QUANTITY}", "bad_amount")
    if value != value.to_integral_value():
        return 1, abs(value)  # a weighed item counts once
    return abs(int(value)), Decimal(0)


def _given(row: Mapping[str, Any], key: str) -> bool:
    return row.get(key) not in (None, "")


def _line(row: Mapping[str, Any], decimal: str, where: str, kind: str) -> BasketLine:
    name = str(row.get("name") or "").strip()
    if not name and not row.get("sku"):
        raise DropFileError(f"{where}: neither name nor sku")
    qty, weight = _quantity(row.get("quantity"), decimal, where)
    weighed = bool(weight)
    if not _given(row, "line_total") and not _given(row, "unit_price"):
        raise DropFileError(f"{where}: neither unit_price nor line_total")
    unit = abs(parse_money(row["unit_price"], decimal, where)) if _given(row, "unit_price") else None
    if _given(row, "line_total"):
        gross = parse_money(row["line_total"], decimal, where)
    else:
        gross = int((Decimal(unit or 0) * (weight or qty)).quantize(Decimal(1), ROUND_HALF_UP))
    discount = abs(parse_money(row["discount"], decimal, where)) if _given(row, "discount") else 0
    if discount > abs(gross):
        raise DropFileError(f"{where}: the discount {row['discount']!r} is larger than the line {abs(gross)} cents")
    total = abs(gross) - discount
    if total > MAX_CENTS:
        raise DropFileError(f"{where}: the line total {total} cents is beyond +-{MAX_CENTS}", "bad_amount")
    texts = (name, str(row.get("sku") or ""), str(row.get("category") or ""))
    if any(len(t) > MAX_TEXT for t in texts):
        raise DropFileError(f"{where}: a name, sku or category is longer than {MAX_TEXT} characters", "field_too_long")
    if unit is None or weighed:
        unit = total if weighed else abs(gross) // qty
    if kind == "refund" or (kind != "void" and gross < 0):
        total = -total
    return BasketLine(name or str(row.get("sku")), qty, unit, total, str(row.get("sku") or ""),
                      str(row.get("category") or ""))  # fmt: skip


def _kind(value: object, preset: Preset | None, where: str) -> str:
    text = str(value or "").strip().lower()
    kinds = preset.kinds if preset else {}
    kind = kinds.get(text, text or "sale") if kinds else text or "sale"
    if kind not in KINDS:
        known = ", ".join(sorted(kinds)) if kinds else "sale, refund or void"
        raise DropFileError(f"{where}: kind {str(value)[:40]!r} is not {known}")
    return kind


def _payment(row: Mapping[str, Any], preset: Preset | None, decimal: str, where: str) -> str:
    if preset and preset.payment_amounts:
        for payment, column in preset.payment_amounts:
            raw = row.get(f"amount:{column}")
            if raw not in (None, "") and parse_money(raw, decimal, where) != 0:
                return payment
        return ""
    text = str(row.get("payment") or "").strip().lower()
    if preset and preset.payments:
        return preset.payments.get(text, "other" if text else "")
    return PAYMENTS.get(text, "other")


def receipt_of(row: Mapping[str, Any], where: str) -> str:
    """The row's receipt id; DropFileError when it has none."""
    receipt = str(row.get("receipt_id") or "").strip()
    if not receipt:
        raise DropFileError(f"{where}: receipt_id is empty")
    return receipt


Groups = dict[tuple[str, str], list[Row]]


def group_rows(rows: Iterable[Row], fmt: ExportFormat) -> tuple[Groups, dict[str, tuple[str, str]]]:
    """Item rows grouped by (receipt_id, kind), in order, and each receipt's (kind, raw kind) of its first row."""
    groups: Groups = {}
    order_kind: dict[str, tuple[str, str]] = {}  # receipt -> (kind, raw kind value) of its first row that has one
    for where, row in rows:
        receipt = receipt_of(row, where)
        if _given(row, "kind") or receipt not in order_kind:
            kind = _kind(row.get("kind"), fmt.preset, where)
            order_kind.setdefault(receipt, (kind, str(row.get("kind") or "")))
        else:
            kind = order_kind[receipt][0]  # later rows of a Shopify order leave the order's fields empty
        groups.setdefault((receipt, kind), []).append((where, row))
    return groups, order_kind


def baskets_from_rows(
    rows: Iterable[Row],
    fmt: ExportFormat,
    decimal: str | None = None,
    several_kinds: Callable[[str], bool] | None = None,
) -> list[Basket]:
    """Group item rows by (receipt_id, kind) into baskets (rows given as (where, row)).

    `several_kinds(receipt)` says whether the receipt has baskets of more than one kind in the whole file
    (a streamed file is grouped one receipt at a time); by default it is judged from these rows.
    """
    point = decimal or (fmt.decimal if fmt.decimal != "auto" else ".")
    preset = fmt.preset
    groups, order_kind = group_rows(rows, fmt)
    if several_kinds is None:
        kinds_per_receipt: dict[str, int] = {}
        for receipt, _ in groups:
            kinds_per_receipt[receipt] = kinds_per_receipt.get(receipt, 0) + 1
        several_kinds = lambda receipt: kinds_per_receipt[receipt] > 1  # noqa: E731
    out = []
    for (receipt, kind), items in groups.items():
        where, first = items[0]
        # A vendor export reuses the sale's id for its refund rows; the refund needs an id of its own.
        source = receipt if kind == "sale" or (preset is None and not several_kinds(receipt)) else f"{kind}:{receipt}"
        if preset is not None and not preset.itemised:
            items = [(w, {**r, "name": r.get("name") or f"{preset.title} (not itemised)"}) for w, r in items]
        lines = tuple(_line(row, point, w, kind) for w, row in items)
        if kind == "sale" and not order_kind[receipt][1] and lines and all(ln.line_total_cents < 0 for ln in lines):
            kind = "refund"  # no kind column, only negative amounts (-$8.00, (8.00)): money paid back
            source = receipt if preset is None and not several_kinds(receipt) else f"refund:{receipt}"
        currency = str(first.get("currency") or fmt.currency).strip().upper()
        total = sum(ln.line_total_cents for ln in lines)
        if abs(total) > MAX_CENTS:
            raise DropFileError(
                f"{where}: receipt {receipt[:40]!r} totals {total} cents, beyond +-{MAX_CENTS}", "bad_amount"
            )
        basket = Basket(source, lines, total, kind,
                        _payment(first, preset, point, where), currency, "", str(first.get("time") or ""))  # fmt: skip
        out.append(basket)
        if kind == "sale":
            refund = _refund_of(basket, first, order_kind[receipt][1], preset, point, where)
            if refund is not None:
                out.append(refund)
    return out


def _refund_of(sale: Basket, first: Mapping[str, Any], raw_kind: str, preset: Preset | None, decimal: str,
               where: str) -> Basket | None:  # fmt: skip
    """The refund of an order that the export shows as (partly) refunded, or None."""
    amount = abs(parse_money(first["refunded_amount"], decimal, where)) if _given(first, "refunded_amount") else 0
    if not amount and preset is not None and raw_kind.strip().lower() in preset.fully_refunded:
        amount = sale.total_cents
    if not amount:
        return None
    if amount == sale.total_cents:
        lines = tuple(dataclasses.replace(ln, line_total_cents=-ln.line_total_cents) for ln in sale.lines)
    else:
        lines = (BasketLine("refund (not itemised)", 1, amount, -amount),)
    return Basket(f"refund:{sale.source_id}", lines, -amount, "refund", "", sale.currency, "", sale.pos_time)


def _cell(row: Mapping[str, Any], column: Column) -> Any:
    if isinstance(column, tuple):
        parts = [str(row.get(c) or "").strip() for c in column]
        return " ".join(p for p in parts if p) or None
    return row.get(column)


def renamed(row: Mapping[str, Any], fmt: ExportFormat) -> dict[str, Any]:
    """A row of the file's own columns -> our fields (and the preset's payment amount columns)."""
    out = {field: _cell(row, fmt.columns.get(field, field)) for field in FIELDS}
    if fmt.preset is not None:
        for _, column in fmt.preset.payment_amounts:
            out[f"amount:{column}"] = row.get(column)
    return out


def money_samples(rows: Iterable[Row]) -> Iterable[tuple[str, str]]:
    """(where, text) of every text amount: JSON numbers always use a point, only text tells the separator."""
    for where, row in rows:
        for key, value in row.items():
            if (key in MONEY or key.startswith("amount:")) and isinstance(value, str):
                yield where, value


def detect_file_decimal(rows: Iterable[Row], fmt: ExportFormat) -> str:
    """The decimal separator of these rows (the configured one unless "auto")."""
    if fmt.decimal != "auto":
        return fmt.decimal
    try:
        return detect_decimal(money_samples(rows))
    except AmountError as exc:
        raise DropFileError(str(exc), "bad_amount") from exc


def parse_csv(text: str, fmt: ExportFormat) -> list[Basket]:
    """A CSV export with a header row (read as the driver streams a file)."""
    from drivers.pos_dropfolder.stream import read_text  # stream.py builds on this module

    return read_text(text, ".csv", fmt)


def parse_jsonl(text: str, fmt: ExportFormat) -> list[Basket]:
    """JSON lines: item rows, or baskets with a `lines` list."""
    from drivers.pos_dropfolder.stream import read_text

    return read_text(text, ".jsonl", fmt)
