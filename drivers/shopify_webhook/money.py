"""Decimal amounts in a currency's minor units (pure; no I/O).

The number of minor digits comes from ISO 4217 itself: the `iso4217` package ships the maintenance
agency's (SIX) published table, so JPY has 0 digits, USD and EUR 2, KWD and BHD 3 without a hand list
here that would go stale. Amounts arrive as JSON strings ("409.94") or JSON numbers (195.66); the body
is parsed with `parse_float=Decimal`, so a number is never a binary float on its way to an integer.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache

from agent.driver_api.webhook import BadPayload

EXTRA_HINT = "pip install 'shopkeeper[pos]'"


class CurrencyTableMissing(ImportError):
    """The ISO 4217 table (the `pos` extra) is not installed."""


def currency_table_available() -> bool:
    """True when the ISO 4217 package is importable (checked when the driver's options are read)."""
    try:
        import iso4217  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def minor_digits(currency: str) -> int:
    """ISO 4217 minor units of a currency code: JPY 0, EUR 2, KWD 3; BadPayload for an unknown code."""
    try:
        from iso4217 import Currency
    except ImportError as exc:  # the driver refuses to start without it; this guards direct callers
        raise CurrencyTableMissing(f"the ISO 4217 table is missing: {EXTRA_HINT}") from exc
    code = currency.strip().upper()
    try:
        exponent = Currency(code).exponent
    except ValueError as exc:
        raise BadPayload(f"currency {currency!r} is not an ISO 4217 code") from exc
    if exponent is None:  # gold, SDR, test codes: no minor unit, never a shop's currency
        raise BadPayload(f"currency {code} has no minor unit in ISO 4217")
    return int(exponent)


def to_minor_units(value: object, currency: str, field: str = "amount") -> int:
    """A string ("409.94"), Decimal("195.66") or int as integer minor units of `currency`; BadPayload otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        # a float here means the body was parsed without parse_float=Decimal: refuse, never round
        raise BadPayload(f"{field} {value!r} is not a decimal amount")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation as exc:
        raise BadPayload(f"{field} {value!r} is not a decimal amount") from exc
    if not number.is_finite():
        raise BadPayload(f"{field} {value!r} is not finite")
    scaled = number.scaleb(minor_digits(currency))
    if scaled != scaled.to_integral_value():
        raise BadPayload(f"{field} {value!r} has more decimals than {currency.upper()} has minor units")
    return int(scaled)
