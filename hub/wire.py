"""Decoding one MQTT payload into JSON without ever raising anything but `Refusal`, and within bounds.

Each check runs before the work it protects: the size before decoding, strict UTF-8 before parsing
(`json.loads` on bytes would guess UTF-16 or UTF-32), the nesting depth before the recursive parser,
integer length while parsing (no bignums), and no NaN, Infinity, overflowing floats or duplicate keys
(the hub's JSON API must stay valid JSON, and a duplicate key would let a reader and a validator see
two different messages).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from agent.contract import MAX_INT_DIGITS, MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES


class Refusal(Exception):
    """One message refused: `reason` is short and from a fixed set (it is counted per store), `detail` says more."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail[:300]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects, strings skipped; linear, no recursion."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _constant(name: str) -> Any:
    raise Refusal("not JSON: NaN or Infinity", name)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refusal("not JSON: number out of range", text[:40])
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise Refusal("not JSON: integer too long", f"{len(text)} digits")
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _v in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise Refusal("not JSON: duplicate key", key[:80])
    return doc


def decode_payload(payload: bytes, size: int | None = None) -> Any:
    """The JSON document in `payload` (`size`: its length on the wire when `payload` was cut short on receipt)."""
    size = len(payload) if size is None else size
    if size > MAX_PAYLOAD_BYTES:
        raise Refusal("payload too large", f"{size} bytes; at most {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal("not UTF-8", str(exc)) from None
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise Refusal("JSON nested too deep", f"more than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int, object_pairs_hook=_object)
    except Refusal:
        raise
    except RecursionError:  # not reached after the depth check; kept so no input can ever raise it out of here
        raise Refusal("JSON nested too deep", "recursion limit") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise Refusal("not JSON", str(exc)) from None
