"""Typed access to TOML tables: every mistake becomes one ConfigError naming file, key and fix.

A reader given a `problems` list (load_config gives one) records a mistake there and goes on with the
key's default where it has one, so `check-config` can list every problem of a file at once; a mistake
the section cannot go on from (a required key missing) is still raised, and load_config records it
and goes on with the next section. A value under a secret key is never shown (agent.redaction).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, TypeVar

from agent.contract.names import NAME_RE
from agent.errors import ConfigError
from agent.redaction import shown

T = TypeVar("T")

MAX_EPSILON = Fraction(10)


class TableReader:
    """Typed access to one TOML table that turns every mistake into a ConfigError."""

    def __init__(
        self, path: str, table: Mapping[str, Any], prefix: str, problems: list[ConfigError] | None = None
    ) -> None:
        self.path, self.table, self.prefix, self.problems = path, table, prefix, problems
        self.used: set[str] = set()

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(self.path, f"{self.prefix}{key}", problem, fix)

    def note(self, error: ConfigError) -> None:
        """Record `error` and go on when collecting problems; raise it otherwise."""
        if self.problems is None:
            raise error
        self.problems.append(error)

    def show(self, key: str, value: Any) -> str:
        """The value as a message may print it (a secret key's value never)."""
        return shown(self.prefix + key, value)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, fix: str = "") -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is None:
                raise self.fail(key, "is required but missing", fix or f"add `{key} = ...`")
            return default
        value = self.table[key]
        error = None
        if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else ()):
            error = self.fail(
                key, f"expected {_kind_name(kind)}, got a boolean", fix or "use a value of the right type"
            )
        elif not isinstance(value, kind):
            error = self.fail(
                key,
                f"expected {_kind_name(kind)}, got {type(value).__name__} {self.show(key, value)}",
                fix or "use a value of the right type",
            )
        if error is None:
            return value
        if default is None:
            raise error
        self.note(error)
        return default

    def name(self, key: str, default: str | None = None) -> str:
        value = self.get(key, str, default)
        if not NAME_RE.match(value):
            self.note(
                self.fail(
                    key,
                    f"{self.show(key, value)} is not a valid name",
                    "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
                )
            )
        return str(value)

    def int_in(self, key: str, default: int | None, low: int, high: int) -> int:
        value = self.get(key, int, default)
        if not low <= value <= high:
            problem = f"{self.show(key, value)} is out of range"  # an int's repr is its digits
            self.note(self.fail(key, problem, f"use a whole number from {low} to {high}"))
            return min(max(int(value), low), high)  # only to go on looking: the file is refused anyway
        return int(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            self.note(
                self.fail(
                    key,
                    f"{self.show(key, value)} is not one of {', '.join(choices)}",
                    f"use one of {', '.join(choices)}",
                )
            )
            return default
        return str(value)

    def epsilon(self, key: str, default: str | None = None) -> Fraction:
        raw = self.get(key, (int, float, str), default)
        try:
            value = Fraction(str(raw))
        except (ValueError, ZeroDivisionError):
            raise self.fail(
                key, f"{self.show(key, raw)} is not a number", 'write a positive number such as 0.5 or "1/2"'
            ) from None
        if not 0 < value <= MAX_EPSILON:
            raise self.fail(key, f"{raw} is out of range", f"use a positive epsilon no larger than {MAX_EPSILON}")
        return value

    def table_at(self, key: str) -> TableReader:
        self.used.add(key)
        sub = self.table.get(key, {})
        if not isinstance(sub, dict):
            raise self.fail(key, "must be a table", f"write it as a [{self.prefix}{key}] section")
        return TableReader(self.path, sub, f"{self.prefix}{key}.", self.problems)

    def child(self, table: Mapping[str, Any], prefix: str) -> TableReader:
        """A reader for a table inside this one (a list entry), collecting into the same problems."""
        return TableReader(self.path, table, prefix, self.problems)

    def reject_unknown(self) -> None:
        """Every key of the table nobody read is a problem (each one recorded, not only the first)."""
        for key in self.table:
            if key not in self.used:
                self.note(self.fail(key, "is not a known key", "remove it or check its spelling in sample-agent.toml"))


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


def collect(problems: list[ConfigError] | None, read: Callable[[], T], fallback: T) -> T:
    """`read()`, or `fallback` after recording the problem that stopped it, so later sections are checked too."""
    try:
        return read()
    except ConfigError as exc:
        if problems is None:
            raise
        problems.append(exc)
        return fallback
