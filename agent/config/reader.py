"""Typed access to TOML tables: every mistake becomes one ConfigError naming file, key and fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from agent.contract.names import NAME_RE
from agent.errors import ConfigError

MAX_EPSILON = Fraction(10)


class TableReader:
    """Typed access to one TOML table that turns every mistake into a ConfigError."""

    def __init__(self, path: str, table: Mapping[str, Any], prefix: str) -> None:
        self.path, self.table, self.prefix = path, table, prefix
        self.used: set[str] = set()

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(self.path, f"{self.prefix}{key}", problem, fix)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, fix: str = "") -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is None:
                raise self.fail(key, "is required but missing", fix or f"add `{key} = ...`")
            return default
        value = self.table[key]
        if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else ()):
            raise self.fail(key, f"expected {_kind_name(kind)}, got a boolean", fix or "use a value of the right type")
        if not isinstance(value, kind):
            raise self.fail(
                key,
                f"expected {_kind_name(kind)}, got {type(value).__name__} {value!r}",
                fix or "use a value of the right type",
            )
        return value

    def name(self, key: str, default: str | None = None) -> str:
        value = self.get(key, str, default)
        if not NAME_RE.match(value):
            raise self.fail(
                key,
                f"{value!r} is not a valid name",
                "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            )
        return str(value)

    def int_in(self, key: str, default: int | None, low: int, high: int) -> int:
        value = self.get(key, int, default)
        if not low <= value <= high:
            raise self.fail(key, f"{value} is out of range", f"use a whole number from {low} to {high}")
        return int(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}", f"use one of {', '.join(choices)}")
        return str(value)

    def epsilon(self, key: str, default: str | None = None) -> Fraction:
        raw = self.get(key, (int, float, str), default)
        try:
            value = Fraction(str(raw))
        except (ValueError, ZeroDivisionError):
            raise self.fail(key, f"{raw!r} is not a number", 'write a positive number such as 0.5 or "1/2"') from None
        if not 0 < value <= MAX_EPSILON:
            raise self.fail(key, f"{raw} is out of range", f"use a positive epsilon no larger than {MAX_EPSILON}")
        return value

    def table_at(self, key: str) -> TableReader:
        self.used.add(key)
        sub = self.table.get(key, {})
        if not isinstance(sub, dict):
            raise self.fail(key, "must be a table", f"write it as a [{self.prefix}{key}] section")
        return TableReader(self.path, sub, f"{self.prefix}{key}.")

    def reject_unknown(self) -> None:
        for key in self.table:
            if key not in self.used:
                raise self.fail(key, "is not a known key", "remove it or check its spelling in sample-agent.toml")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        int: "a whole number",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_duration(reader: TableReader, key: str, default: str) -> int:
    """Seconds from `90s`, `15m`, `1h`, `30d` or a bare whole number of seconds."""
    raw = reader.get(key, (int, str), default)
    if isinstance(raw, int):
        seconds = raw
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", raw)
        if not match:
            raise reader.fail(key, f"{raw!r} is not a duration", 'write e.g. "90s", "15m", "1h" or "30d"')
        seconds = int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if seconds <= 0:
        raise reader.fail(key, f"{raw!r} must be positive", 'write e.g. "1h"')
    return seconds
