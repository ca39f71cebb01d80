"""Money amounts as POS exports print them -> integer cents, and the file's decimal separator (pure).

Exports print amounts with currency symbols or codes (`$8.00`, `€1,19`, `8.00 USD`, `CHF 3.50`), a minus in
front or behind (`-$8.00`, `$-8.00`, `8.00-`) or accounting parentheses for refunds (`(8.00)`), and
thousands separators (`1,234.56`, `1.234,56`, `1 234,56`, `1'234.56`). Which of `.` and `,` is the decimal
separator is decided once per file from the values that can only be read one way (`1,19`, `8.00`,
`1.234,56`); a file whose values are all ambiguous (`1,190`) or contradict each other is refused with the
setting to set, never guessed: reading `1,19` with a decimal point as 119 dollars is a silent 100x error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SEPARATORS = (".", ",")
SETTING = "decimal_separator"
MAX_DIGITS = 15  # whole units: far above any till, far below int64 cents
_CURRENCY = re.compile(r"[€$£¥₹₩₽¢]|\b[A-Z]{3}\b|\bkr\b|\bFr\.?", re.IGNORECASE)
_SPACES = re.compile(r"[\s\u00a0\u202f']")
_NUMBER = re.compile(r"^\d[\d.,]*$")


class AmountError(ValueError):
    """The text is not an amount (or not under this decimal separator); the message says why."""


def _strip(text: str) -> tuple[str, bool]:
    """The digits-and-separators core of an amount and whether it is negative."""
    core = text.strip()
    negative = False
    if core.startswith("(") and core.endswith(")"):
        negative, core = True, core[1:-1]
    core = _SPACES.sub("", _CURRENCY.sub("", core))
    if core.startswith("-") or core.startswith("\u2212"):
        negative, core = not negative, core[1:]
    elif core.endswith("-"):
        negative, core = not negative, core[:-1]
    elif core.startswith("+"):
        core = core[1:]
    return core, negative


def decimal_vote(text: str) -> str | None:
    """The decimal separator this value proves ("." or ","), "?" when it could be either, None if it has none."""
    core, _ = _strip(text)
    if not _NUMBER.match(core):
        return None
    used = [s for s in SEPARATORS if s in core]
    if not used:
        return None
    if len(used) == 2:
        return core[max(core.rfind("."), core.rfind(","))]  # the last separator is the decimal one
    sep = used[0]
    if core.count(sep) > 1:
        return "," if sep == "." else "."  # repeated: thousands groups, so the decimal is the other one
    decimals = len(core) - core.index(sep) - 1
    if decimals == 3 and core.index(sep) <= 3:
        return "?"  # 1,190 or 1.190: thousands group or three decimals
    return sep


def detect_decimal(samples: Iterable[tuple[str, str]]) -> str:
    """The file's decimal separator from (where, text) amounts; AmountError naming the setting when unsure."""
    proof: dict[str, tuple[str, str]] = {}
    ambiguous: tuple[str, str] | None = None
    for where, text in samples:
        vote = decimal_vote(text)
        if vote == "?":
            ambiguous = ambiguous or (where, text)
        elif vote is not None:
            proof.setdefault(vote, (where, text))
    if len(proof) == 2:
        (w1, t1), (w2, t2) = proof["."], proof[","]
        raise AmountError(f"amounts use both '.' ({w1}: {t1!r}) and ',' ({w2}: {t2!r}) as decimal separator; "
                          f'set {SETTING} = "." or ","')  # fmt: skip
    if proof:
        return next(iter(proof))
    if ambiguous is not None:
        where, text = ambiguous
        raise AmountError(f"{where}: cannot tell whether {text!r} has a decimal or a thousands separator; "
                          f'set {SETTING} = "." or ","')  # fmt: skip
    return "."  # whole numbers only: either reading gives the same cents


def parse_amount(text: object, decimal: str, where: str) -> int:
    """An amount under the given decimal separator -> cents, exactly; AmountError otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        text = repr(text)  # JSON numbers: their shortest repr is the decimal the POS wrote, with a point
        decimal = "."
    if not isinstance(text, str) or not text.strip():
        raise AmountError(f"{where}: empty amount")
    core, negative = _strip(text)
    if not _NUMBER.match(core):
        raise AmountError(f"{where}: {text!r} is not an amount")
    thousands = "," if decimal == "." else "."
    whole, sep, frac = core.rpartition(decimal) if decimal in core else (core, "", "")
    if not sep:
        whole = core
    if decimal in whole:
        raise AmountError(f"{where}: {text!r} has more than one {decimal!r}; check {SETTING}")
    groups = whole.split(thousands)
    if len(groups) > 1 and (not 1 <= len(groups[0]) <= 3 or any(len(g) != 3 for g in groups[1:])):
        raise AmountError(f"{where}: {text!r} is not an amount with {SETTING} = {decimal!r}; set {SETTING} "
                          f'= "{thousands}" if the export writes {thousands!r} before the cents')  # fmt: skip
    digits = "".join(groups)
    if not digits.isdigit() or (sep and not frac.isdigit()):
        raise AmountError(f"{where}: {text!r} is not an amount")
    if len(digits) > MAX_DIGITS:  # before int(): a 60,000-digit "amount" is absurd, and slow to convert
        raise AmountError(f"{where}: {text[:40]!r} has more than {MAX_DIGITS} digits before the cents")
    if len(frac) > 2 and frac.rstrip("0") != frac[:2].rstrip("0"):
        raise AmountError(f"{where}: {text!r} has more than two decimals")
    cents = int(digits) * 100 + int((frac + "00")[:2])
    return -cents if negative else cents
