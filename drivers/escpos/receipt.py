"""Printed receipt text -> Basket, with configurable regular expressions (pure: no I/O, no clock).

Every pattern is a Python regex; `{amount}` inside it stands for AMOUNT (a money amount with an
optional currency symbol, decimal comma or point, thousands separators and a leading or trailing
minus). Item patterns name their groups `name`, `total` and optionally `qty` and `unit`; the
quantity-line pattern names `qty` and `unit` and applies to the item just above it (qty-after) or,
when that item already has a quantity or does not add up, to the next item (qty-first).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence

from agent.driver_api import Basket, BasketLine
from drivers.escpos.pattern_check import check_groups
from drivers.escpos.protocol import PrintedReceipt

CURRENCY = r"(?:[€$£¥]|EUR|USD|GBP|CHF|SEK|NOK|DKK|PLN|CZK|kr)"
AMOUNT = rf"(?:-\s?)?(?:{CURRENCY}\s?)?-?\d{{1,3}}(?:[.,'\u00a0]?\d{{3}})*[.,]\d{{2}}(?:\s?{CURRENCY})?-?"

DEFAULT_ITEMS: tuple[str, ...] = (
    # "2 x Croissant 1.20 2.40" / "2x Croissant   2.40": quantity first on the item line
    r"^\s*(?P<qty>\d{1,4})\s*[xX×*]\s*(?P<name>\S.*?)(?:\s+(?P<unit>{amount}))?\s+(?P<total>{amount})(?:\s+[A-Z])?$",
    # "Croissant x2   2.40": quantity after the name
    r"^\s*(?P<name>\S.*?)\s+[xX×](?P<qty>\d{1,4})\s{2,}(?P<total>{amount})(?:\s+[A-Z])?$",
    # "Croissant   2.40 A": name, two or more spaces, the line total, an optional tax letter
    r"^\s*(?P<name>\S.*?)\s{2,}(?P<total>{amount})(?:\s+[A-Z])?$",
)
# An item printed on two lines: the name alone, then "  2 @ 1.20      2.40" (a pattern with \n spans two lines).
TWO_LINE_ITEM = (
    r"^\s*(?P<name>\S.*?)\s*\n\s*(?P<qty>\d{1,4})\s*(?:[xX×*@]|St\.?|pcs)\s*(?:[xX@]\s*)?(?P<unit>{amount})"
    r"\s+(?P<total>{amount})(?:\s+[A-Z])?\s*$"
)
# "2 x Croissant         1.20     2.40" or "2  Croissant   2.40": the quantity first (layout "qty_prefix").
QTY_PREFIX = (
    r"^\s*(?P<qty>\d{1,4})(?:\s*[xX×*]\s*|\s+)(?P<name>\S.*?)(?:\s{2,}(?P<unit>{amount}))?\s{2,}"
    r"(?P<total>{amount})(?:\s+[A-Z])?$"
)
# "Croissant        2 x 1.20      2.40 A": a quantity column beside the right-aligned total (absent for 1).
RIGHT_ALIGNED = (
    r"^\s*(?P<name>\S.*?)\s{2,}(?:(?P<qty>\d{1,4})\s*[xX×@]\s*(?P<unit>{amount})\s{2,})?(?P<total>{amount})"
    r"(?:\s+[A-Z])?$"
)
AUTO_ITEMS = (TWO_LINE_ITEM, DEFAULT_ITEMS[0], DEFAULT_ITEMS[1], RIGHT_ALIGNED, DEFAULT_ITEMS[2])
DEFAULT_QTY_LINE = r"^\s*(?P<qty>\d{1,4})\s*(?:[xX×*@]|St\.?|pcs)\s*(?:[xX@]\s*)?(?P<unit>{amount})(?:\s+{amount})?\s*$"
DEFAULT_TOTAL = (
    r"(?i)^\s*(?:\*+\s*)?(?:TOTAL|TOTAAL|SUMME|GESAMT|TOTALE|ZU ZAHLEN|TE BETALEN|AMOUNT DUE|BALANCE DUE|"
    r"RETOUR TOTAL|REFUND TOTAL)\b[^0-9\-]*?(?P<total>{amount})\s*\**$"
)
DEFAULT_SUBTOTAL = r"(?i)^\s*(?:SUB-?TOTAL|ZWISCHENSUMME|SUBTOTAAL|SOUS-TOTAL)\b[^0-9\-]*?(?P<total>{amount})\s*$"
DEFAULT_STOP = (
    r"(?i)^\s*(?:SUB-?TOTAL|ZWISCHENSUMME|SUBTOTAAL|(?:INCL\.?\s*)?(?:TAX|VAT|MWST|MWSt|BTW|TVA|USt)\b|"
    r"NET\b|NETTO\b|DISCOUNT TOTAL|\d+(?:[.,]\d+)?\s?%)"
)
DEFAULT_RECEIPT_NUMBER = (
    r"(?i)\b(?:RECEIPT|BELEG|BON|BONNUMMER|TICKET|TRANS(?:ACTION)?|TRX|INVOICE)[\s.-]*"
    r"(?:NO\.?|NR\.?|NUMBER|NUMMER|#)?\s*[:#]?\s*(?P<id>(?=[A-Z/-]*\d)[A-Z0-9][A-Z0-9/-]*)\b"
)
# A refund or void marker is a line of its own ("*** REFUND ***", "STORNO BON"), so a footer such
# as "Return policy: 30 days" is not one.
DEFAULT_REFUND = (
    r"(?im)^[\s*=#-]*(?:REFUND|RETOUR|RETOURE|RETURN|R[ÜU]CKGABE|ERSTATTUNG|GUTSCHRIFT|REMBOURSEMENT)"
    r"(?:\s+(?:RECEIPT|BON|BELEG|TICKET))?[\s*=#-]*$"
)
DEFAULT_VOID = (
    r"(?im)^[\s*=#-]*(?:VOID|VOIDED|STORNO|STORNIERT|CANCELL?ED|ANNULLIERT|GEANNULEERD|ANNUL[EÉ])"
    r"(?:\s+(?:RECEIPT|BON|BELEG|TICKET|SALE|TRANSACTION))?[\s*=#-]*$"
)
DEFAULT_CASH = r"(?i)^\s*(?:CASH|BAR|BARGELD|CONTANT|ESP[EÈ]CES)\b"
DEFAULT_CARD = r"(?i)^\s*(?:CARD|KARTE|EC[- ]?KARTE|GIROCARD|PIN|VISA|MASTERCARD|MAESTRO|AMEX|DEBIT|CREDIT|CB)\b"
DEFAULT_TIME = r"(?P<time>\d{1,4}[-./]\d{1,2}[-./]\d{2,4}[ T]+\d{1,2}:\d{2}(?::\d{2})?)"


@dataclasses.dataclass(frozen=True)
class ReceiptPatterns:
    """The regular expressions that read a shop's receipt layout (defaults cover common layouts)."""

    items: tuple[str, ...] = AUTO_ITEMS
    qty_line: str = DEFAULT_QTY_LINE
    total: str = DEFAULT_TOTAL
    subtotal: str = DEFAULT_SUBTOTAL  # tax-exclusive layouts: the items add up to this, not to the total
    stop: str = DEFAULT_STOP  # lines that are never items (subtotal, tax, percentages)
    receipt_number: str = DEFAULT_RECEIPT_NUMBER
    refund: str = DEFAULT_REFUND
    void: str = DEFAULT_VOID
    cash: str = DEFAULT_CASH
    card: str = DEFAULT_CARD
    time: str = DEFAULT_TIME
    decimal: str = "auto"  # "auto", "." or ","

    def compile(self) -> CompiledPatterns:
        """Compile every pattern; raises ValueError naming the field whose regex is wrong."""
        if self.decimal not in ("auto", ".", ","):
            raise ValueError(f"decimal: {self.decimal!r} is not auto, '.' or ','")
        items = tuple(_compile(f"items[{i}]", source) for i, source in enumerate(self.items))
        for index, regex in enumerate(items):
            check_groups(f"items[{index}]", regex, ("name", "total"))
        singles = {
            f.name: _compile(f.name, getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in ("items", "decimal")
        }
        for name, groups in (("qty_line", ("qty", "unit")), ("total", ("total",)), ("subtotal", ("total",)),
                             ("receipt_number", ("id",))):  # fmt: skip
            check_groups(name, singles[name], groups)
        two_line = tuple(r for r, source in zip(items, self.items, strict=True) if _spans_lines(source))
        one_line = tuple(r for r, source in zip(items, self.items, strict=True) if not _spans_lines(source))
        return CompiledPatterns(items=one_line, two_line_items=two_line, decimal=self.decimal, **singles)


def _spans_lines(source: str) -> bool:
    """A pattern that names a line break (\\n) is matched against a line and the one after it."""
    return "\n" in source or "\\n" in source


def _compile(key: str, source: str) -> re.Pattern[str]:
    try:
        return re.compile(source.replace("{amount}", AMOUNT))
    except re.error as exc:
        raise ValueError(f"{key}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class CompiledPatterns:
    """ReceiptPatterns, compiled."""

    items: tuple[re.Pattern[str], ...]
    two_line_items: tuple[re.Pattern[str], ...]
    qty_line: re.Pattern[str]
    total: re.Pattern[str]
    subtotal: re.Pattern[str]
    stop: re.Pattern[str]
    receipt_number: re.Pattern[str]
    refund: re.Pattern[str]
    void: re.Pattern[str]
    cash: re.Pattern[str]
    card: re.Pattern[str]
    time: re.Pattern[str]
    decimal: str


DEFAULT_PATTERNS = ReceiptPatterns().compile()


@dataclasses.dataclass(frozen=True)
class ReceiptResult:
    """A basket, or the reason a printout is not one (a report, a test print)."""

    basket: Basket | None
    reason: str = ""


def parse_amount(text: str, decimal: str = "auto") -> int | None:
    """'1.234,56 €' -> 123456, '2,40-' -> -240, '$-3.00' -> -300; None when it is not an amount."""
    text = text.strip()
    negative = text.startswith("-") or text.endswith("-") or "-" in text.split(".")[0].split(",")[0]
    digits = re.sub(r"[^0-9.,]", "", text)
    if not digits or not digits[-1].isdigit():
        return None
    point = decimal
    if point == "auto":
        point = digits[-3] if len(digits) >= 3 and digits[-3] in ".," else "."
    whole, sep, frac = digits.rpartition(point)
    if not sep:
        whole, frac = digits, "00"
    whole = re.sub(r"[.,]", "", whole) or "0"
    if len(frac) != 2 or not frac.isdigit() or not whole.isdigit():
        return None
    cents = int(whole) * 100 + int(frac)
    return -cents if negative else cents


@dataclasses.dataclass
class _Item:
    name: str
    total: int
    qty: int | None = None
    unit: int | None = None


def _apply_qty(item: _Item, qty: int, unit: int) -> bool:
    if item.qty is not None or qty * unit != abs(item.total):
        return False
    item.qty, item.unit = qty, unit
    return True


def receipt_to_basket(
    receipt: PrintedReceipt, patterns: CompiledPatterns = DEFAULT_PATTERNS, currency: str = ""
) -> ReceiptResult:
    """Read items, total, kind, payment, receipt number and time from one printed receipt."""
    lines = [line.text for line in receipt.lines]
    items: list[_Item] = []
    pending_qty: tuple[int, int] | None = None
    total: int | None = None
    subtotal: int | None = None
    markers: list[str] = []
    payment = ""
    consumed = -1  # the index of a line already read as the second line of a two-line item
    for index, text in enumerate(lines):
        if index == consumed:
            continue
        if total is None and index + 1 < len(lines) and patterns.two_line_items:
            item = _match_two_line(text, lines[index + 1], patterns)
            if item is not None:
                items.append(item)
                consumed = index + 1
                continue
        if total is None:
            found = patterns.total.search(text)
            if found:
                total = parse_amount(found.group("total"), patterns.decimal)
                continue
            found = patterns.subtotal.search(text)
            if found:
                subtotal = parse_amount(found.group("total"), patterns.decimal)
                continue
            qty_match = patterns.qty_line.search(text)
            if qty_match:
                qty, unit = int(qty_match.group("qty")), parse_amount(qty_match.group("unit"), patterns.decimal)
                if unit is not None and not (items and _apply_qty(items[-1], qty, unit)):
                    pending_qty = (qty, unit)
                continue
            item = None if patterns.stop.search(text) else _match_item(text, patterns)
            if item is not None:
                if pending_qty is not None:
                    _apply_qty(item, *pending_qty)
                    pending_qty = None
                items.append(item)
                continue
        else:
            if not payment and patterns.cash.search(text):
                payment = "cash"
            elif not payment and patterns.card.search(text):
                payment = "card"
        markers.append(text)
    if total is None:
        return ReceiptResult(None, "no_total")
    marker_text = "\n".join(markers)
    kind = "void" if patterns.void.search(marker_text) else "refund" if patterns.refund.search(marker_text) else ""
    if not kind:
        kind = "refund" if total < 0 else "sale"
    basket_lines = tuple(_line(item, kind) for item in items)
    if kind == "refund":
        total = -abs(total)
    if receipt.drawer_kicks and not payment:
        payment = "cash"
    flagged = ""
    if not basket_lines:
        flagged = "no_items"
    elif (items_sum := sum(line.line_total_cents for line in basket_lines)) != total and (
        subtotal is None or abs(items_sum) != abs(subtotal)
    ):
        flagged = "total_mismatch"
    return ReceiptResult(
        Basket(
            source_id=_source_id(receipt, patterns),
            lines=basket_lines,
            total_cents=total,
            kind=kind,
            payment=payment,
            currency=currency,
            flagged=flagged,
            pos_time=_first(patterns.time, lines, "time"),
        )
    )


def _match_two_line(first: str, second: str, patterns: CompiledPatterns) -> _Item | None:
    """A name line and its "qty @ unit   total" line, when they add up and the first line is no item itself."""
    if any(p.search(first) for p in (patterns.total, patterns.subtotal, patterns.stop)):
        return None
    if _match_item(first, patterns) is not None:
        return None  # "Croissant   2.40" then "2 x 1.20": a one-line item and its quantity line
    item = _match_item(f"{first}\n{second}", patterns, patterns.two_line_items)
    if item is None or item.qty is None or item.unit is None or item.qty * item.unit != abs(item.total):
        return None
    return item


def _match_item(
    text: str, patterns: CompiledPatterns, regexes: tuple[re.Pattern[str], ...] | None = None
) -> _Item | None:
    for regex in patterns.items if regexes is None else regexes:
        found = regex.search(text)
        if not found:
            continue
        groups = found.groupdict()
        line_total = parse_amount(groups.get("total") or "", patterns.decimal)
        name = (groups.get("name") or "").strip()
        if line_total is None or not name:
            continue  # check_groups refuses patterns that can match without these; this guards the rest
        item = _Item(name, line_total)
        unit = parse_amount(groups["unit"], patterns.decimal) if groups.get("unit") else None
        if groups.get("qty"):
            qty = int(groups["qty"])
            if unit is None and qty and line_total % qty == 0:
                unit = abs(line_total) // qty
            if unit is not None:
                item.qty, item.unit = qty, abs(unit)
        return item
    return None


def _line(item: _Item, kind: str) -> BasketLine:
    total = -abs(item.total) if kind == "refund" else item.total
    qty = item.qty if item.qty is not None else 1
    unit = item.unit if item.unit is not None else abs(item.total)
    return BasketLine(name=item.name, quantity=qty, unit_price_cents=unit, line_total_cents=total)


def _first(regex: re.Pattern[str], lines: Sequence[str], group: str) -> str:
    for text in lines:
        found = regex.search(text)
        if found and found.groupdict().get(group):
            return found.group(group)
    return ""


def _source_id(receipt: PrintedReceipt, patterns: CompiledPatterns) -> str:
    number = _first(patterns.receipt_number, [line.text for line in receipt.lines], "id")
    if number:
        return number
    return "sha256:" + hashlib.sha256(receipt.text.encode("utf-8")).hexdigest()[:24]
