"""The bounds a schema-valid payload must also keep before the hub stores it (agent/contract/bounds.py).

JSON Schema says the shape; these say the sense: integers that are integers (Draft 2020-12 lets `1.0`
and `1e300` pass as "integer"), released values within their stream's bounds, sequence numbers and
connection counters within 2^53, windows on real calendar dates between 2020 and a day after the hub's
clock, rational noise parameters with no zero part, and text the database can hold. Each failure raises
one `Refusal` whose reason names the field (`values.entries out of range`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from agent.contract import (
    CONNECTION_MAX,
    EARLIEST_WINDOW_S,
    FUTURE_SLACK_S,
    MAX_EPSILON,
    MAX_FRACTION_PART,
    MAX_SENSITIVITY,
    MAX_SUPPRESS_BELOW,
    MAX_TEXT,
    MAX_WINDOW_TOTAL,
    SEQ_MAX,
    StreamSpec,
    parse_iso,
)
from hub.wire import Refusal


def integer(name: str, value: Any, low: int, high: int, *, nullable: bool = False) -> int | None:
    """`value` as an int within [low, high]; None only when nullable."""
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refusal(f"{name} not an integer", repr(value)[:80])
    if not low <= value <= high:
        raise Refusal(f"{name} out of range", f"{value} not in [{low}, {high}]"[:300])
    return value


def text(name: str, value: Any, limit: int = MAX_TEXT) -> str:
    """Printable text a database column can hold: no control characters, NULs or lone surrogates."""
    if not isinstance(value, str):
        raise Refusal(f"{name} not a string", repr(value)[:80])
    if not 1 <= len(value) <= limit:
        raise Refusal(f"{name} wrong length", f"{len(value)} characters; 1 to {limit}")
    if not value.isprintable() or any("\ud800" <= c <= "\udfff" for c in value):
        raise Refusal(f"{name} not printable text", repr(value)[:80])
    return value


def instant(name: str, value: str) -> int:
    """Wire UTC text as Unix seconds; the schema's pattern admits 2026-02-30, the calendar does not."""
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        raise Refusal(f"{name} not a real date", value[:40]) from None


def window(doc: dict[str, Any], window_s: int, now: float) -> int:
    """The window's start in Unix seconds, after every check of its times."""
    start_s, end_s = instant("window.start", doc["start"]), instant("window.end", doc["end"])
    if doc["seconds"] != window_s:
        raise Refusal("window.seconds not the length its topic names", f"{doc['seconds']} != {window_s}")
    if end_s - start_s != window_s:
        raise Refusal("window end - start differs from window.seconds", f"{doc['start']} .. {doc['end']}")
    if start_s % window_s:
        # Agents align windows to the epoch; the hub compares shops window by window on that grid.
        raise Refusal("window start not a multiple of window.seconds since the epoch", doc["start"])
    if start_s < EARLIEST_WINDOW_S:
        raise Refusal("window before 2020", doc["start"])
    if end_s > now + FUTURE_SLACK_S:
        raise Refusal("window ends more than a day after the hub's clock", doc["end"])
    return start_s


def values(doc: dict[str, Any], spec: StreamSpec) -> dict[str, int | None]:
    """The released values, each within its stream's bounds (which keeps 64-bit SQL sums from overflowing)."""
    return {
        field.name: integer(f"values.{field.name}", doc.get(field.name), field.minimum, field.maximum, nullable=True)
        for field in spec.values
    }


def fraction(name: str, value: Any, *, nullable: bool = True) -> Fraction | None:
    """`n/d` (or `n`) text with 1 <= n, d <= 2^48: no zero denominator, no zero noise, no bignum."""
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise Refusal(f"{name} missing", repr(value)[:80])
    num, _, den = value.partition("/")
    if not num.isdigit() or not (den or "1").isdigit() or len(num) > 15 or len(den) > 15:
        raise Refusal(f"{name} not a fraction", value[:40])
    n, d = int(num), int(den or "1")
    if not (1 <= n <= MAX_FRACTION_PART and 1 <= d <= MAX_FRACTION_PART):
        raise Refusal(f"{name} out of range", value[:40])
    return Fraction(n, d)


def _cost(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= MAX_EPSILON:
        raise Refusal(f"{name} out of range", repr(value)[:40])
    return float(value)


def privacy(doc: dict[str, Any], spec: StreamSpec) -> None:
    """A privacy block that describes one of the two mechanisms honestly enough to compute its noise."""
    text("privacy.unit", doc["unit"])
    text("privacy.sampler", doc["sampler"])
    integer("privacy.sensitivity", doc["sensitivity"], 1, MAX_SENSITIVITY)
    integer("privacy.sensitivity_l2_squared", doc["sensitivity_l2_squared"], 1, MAX_SENSITIVITY)
    post = doc["post_processing"]
    integer("privacy.post_processing.suppress_below", post["suppress_below"], 1, MAX_SUPPRESS_BELOW, nullable=True)
    epsilon, rho = _cost("privacy.epsilon", doc["epsilon"]), _cost("privacy.rho", doc["rho"])
    for total in ("epsilon_window_total", "rho_window_total"):  # newer payloads: the unit's cost over all streams
        value = doc.get(total)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= MAX_WINDOW_TOTAL
        ):
            raise Refusal(f"privacy.{total} out of range", repr(value)[:40])
    for exact in ("epsilon_exact", "rho_exact"):
        value = fraction(f"privacy.{exact}", doc[exact])
        if value is not None and value > MAX_EPSILON:
            raise Refusal(f"privacy.{exact} out of range", doc[exact][:40])
    if doc["mechanism"] == "discrete_laplace":
        if epsilon is None or doc["sigma2"] is not None or rho is not None:
            raise Refusal("privacy block inconsistent with discrete_laplace", "needs epsilon and scale only")
        fraction("privacy.scale", doc["scale"], nullable=False)
    else:
        if rho is None or doc["scale"] is not None or epsilon is not None:
            raise Refusal("privacy block inconsistent with discrete_gaussian", "needs rho and sigma2 only")
        fraction("privacy.sigma2", doc["sigma2"], nullable=False)


def sequence(value: Any) -> int:
    result = integer("seq", value, 1, SEQ_MAX)
    assert result is not None
    return result


def connection(value: Any) -> int:
    result = integer("connection", value, 1, CONNECTION_MAX)
    assert result is not None
    return result
