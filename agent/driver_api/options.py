"""Declarative driver options: each option is declared once (key, type, default, allowed values, fix text).

A driver lists its options in one `Options(...)` table; `Options.parse` validates a `[drivers.<name>]`
table without I/O, fills in the defaults and raises `DriverOptionError(key, problem, fix)` for the first
bad key, unknown keys included, with every bad key of the table in its `problems` (so `check-config`
lists them all). A value under a secret key (agent.redaction) is never part of a message. The same
declaration is what `sample.toml` is checked against (`agent.driver_api.sample_toml`), so the code,
the defaults and the docs cannot drift apart.

    OPTIONS = Options(
        text("port", fix='set port = "/dev/serial/by-id/usb-..."'),
        name("door"),
        integer("baudrate", 9600, low=1),
    )
"""

from __future__ import annotations

import codecs
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

from agent.contract.names import NAME_RE
from agent.driver_api.contract import DriverOptionError
from agent.redaction import hidden, shown


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final[Any] = _Required()  # the option has no default: the table must set it
# NAME_RE is the agent's own rule for every public label (stores, doors, zones, categories): one rule.
NAME_FIX = 'use 1-63 lowercase letters, digits, "-" or "_", starting with a letter or digit, e.g. "front"'
NAMES_FIX = 'list names of 1-63 lowercase letters, digits, "-" or "_", e.g. ["till"]'
Check = Callable[[dict[str, Any]], None]


def _anything(value: Any) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Option:
    """One declared option. `default` is REQUIRED, None (optional, no value) or the value used when unset."""

    key: str
    default: Any = REQUIRED
    accept: Callable[[Any], bool] = _anything
    what: str = "a valid value"  # the problem reads "<value> is not <what>"
    fix: str = ""  # what to write instead; by default "use <default> (the default)"
    convert: Callable[[Any], Any] | None = None  # applied to the accepted (or default) value
    fields: Options | None = None  # a table of sub-options (or, with many=True, a list of such tables)
    many: bool = False
    sample_lists_all: bool = True  # False: sample.toml may show only some of the sub-options
    sensitive: bool = False  # a secret: its value never appears in a message (secret() sets it)

    @property
    def required(self) -> bool:
        """True when the table must set this option."""
        return self.default is REQUIRED

    def fix_text(self) -> str:
        """The fix a user reads when this option is wrong."""
        if self.fix:
            return self.fix
        if self.required or self.default is None:
            return f"set {self.key} to {self.what}"
        return f"use {_toml(self.default)} (the default)"

    def read(self, table: Mapping[str, Any], prefix: str) -> Any:
        """The option's value from `table` (or its default), checked and converted."""
        key = prefix + self.key
        if self.key not in table:
            if self.required:
                raise self._missing(key)
            value = self.default
            if self.fields is not None and value is not None:
                value = self._sub(value, key)
        else:
            value = self._check(table[self.key], key)
        return value if self.convert is None or value is None else self.convert(value)

    def _missing(self, key: str) -> DriverOptionError:
        return DriverOptionError(key, "missing or empty", self.fix_text())

    def _check(self, value: Any, key: str) -> Any:
        if self.fields is not None:
            return self._sub(value, key)
        if isinstance(value, str) and not value.strip() and self.required:
            raise self._missing(key)
        if not self.accept(value):
            raise DriverOptionError(key, f"{self._shown(key, value)} is not {self.what}", self.fix_text())
        return value

    def _shown(self, key: str, value: Any) -> str:
        # A secret option is hidden whatever its key is called; others follow the one naming rule.
        return hidden(key, value) if self.sensitive else shown(key, value)

    def _sub(self, value: Any, key: str) -> Any:
        assert self.fields is not None
        if not self.many:
            if not isinstance(value, Mapping):
                raise DriverOptionError(
                    key, f"{self._shown(key, value)} is not a table", f"write it as [drivers.<name>.{self.key}]"
                )
            return self.fields.parse(value, where=self.key, prefix=f"{key}.")
        if not isinstance(value, list) or not value:
            raise self._missing(key)
        return [self._one(entry, f"{key}[{i}]") for i, entry in enumerate(value)]

    def _one(self, entry: Any, key: str) -> dict[str, Any]:
        assert self.fields is not None
        if not isinstance(entry, Mapping):
            raise DriverOptionError(key, "is not a table", f"write [[drivers.<name>.{self.key}]] tables")
        return self.fields.parse(entry, where=self.what, prefix=f"{key}.")


class Options:
    """A driver's (or a sub-table's) declared options, in the order sample.toml shows them."""

    def __init__(self, *options: Option, checks: Sequence[Check] = ()) -> None:
        self.options = options
        self.by_key = {option.key: option for option in options}
        self.checks = tuple(checks)  # cross-option rules; each raises DriverOptionError with its own key

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options)

    def keys(self) -> list[str]:
        """The declared keys."""
        return list(self.by_key)

    def parse(self, table: Mapping[str, Any], where: str = "", prefix: str = "") -> dict[str, Any]:
        """Every declared option's value (defaults filled in); DriverOptionError listing every bad key."""
        problems: list[DriverOptionError] = []
        for key in table:
            if key not in self.by_key and not (key == "kind" and not prefix):
                takes = ", ".join(self.by_key)
                problems.append(
                    DriverOptionError(
                        prefix + key, "unknown option", f"remove it; {where or 'this table'} takes {takes}"
                    )
                )
        values = {}
        for option in self.options:
            try:
                values[option.key] = option.read(table, prefix)
            except DriverOptionError as exc:
                problems.extend(exc.problems)  # a sub-table lists all of its own
        if problems:
            first = problems[0]
            error = DriverOptionError(first.key, first.problem, first.fix)
            error.problems = problems
            raise error
        for check in self.checks:
            try:
                check(values)
            except DriverOptionError as exc:
                raise DriverOptionError(prefix + exc.key, exc.problem, exc.fix) from None
        return values


# -- the kinds of option the built-in drivers use ---------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def text(key: str, default: Any = REQUIRED, *, fix: str = "", what: str = "a non-empty string") -> Option:
    """A string; a required one must not be blank, and surrounding blanks are removed."""
    return Option(key, default, lambda v: isinstance(v, str) and bool(v.strip()), what, fix, str.strip)


def serial_port(key: str = "port") -> Option:
    """A serial port: a /dev/serial/by-id/... path or any pyserial URL (loop://, socket://, spy://)."""
    return text(key, fix=f'set {key} = "/dev/serial/by-id/usb-..." (or a pyserial URL such as socket://host:port)')


def string(key: str, default: Any, *, fix: str = "quote it") -> Option:
    """Any string, the empty one included (user names, optional labels)."""
    return Option(key, default, lambda v: isinstance(v, str), "a string", fix)


def name(key: str, default: Any = REQUIRED, *, what: str = "door") -> Option:
    """A public label (door, zone): the agent's NAME_RE."""
    return Option(key, default, lambda v: isinstance(v, str) and bool(NAME_RE.match(v)), f"a {what} name", NAME_FIX)


def names(key: str, default: Any = REQUIRED, *, what: str = "zone") -> Option:
    """A list of public labels."""

    def accept(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) and NAME_RE.match(v) for v in value)

    return Option(key, default, accept, f"a list of {what} names", NAMES_FIX, list)


def flag(key: str, default: bool) -> Option:
    """true or false."""
    return Option(key, default, lambda v: isinstance(v, bool), "true or false", "use true or false")


def integer(key: str, default: Any, *, low: int | None = None, high: int | None = None, fix: str = "") -> Option:
    """A whole number, optionally within [low, high]."""
    if low == 1 and high is None:
        what = "a positive integer"
    elif high is None:
        what = f"a whole number of at least {low}" if low is not None else "a whole number"
    else:
        what = f"a whole number from {low if low is not None else '-inf'} to {high}"

    def accept(value: Any) -> bool:
        return _is_int(value) and (low is None or value >= low) and (high is None or value <= high)

    return Option(key, default, accept, what, fix)


def number(key: str, default: Any, *, low: float, high: float, above: bool = False, fix: str = "") -> Option:
    """A number within [low, high] (or (low, high] with above=True), as a float."""
    what = f"a number above {low:g} and up to {high:g}" if above else f"a number from {low:g} to {high:g}"

    def accept(value: Any) -> bool:
        return _is_number(value) and (value > low if above else value >= low) and value <= high

    return Option(key, default, accept, what, fix, float)


def choice(key: str, default: Any, choices: Sequence[Any], *, fix: str = "", convert: Any = None) -> Option:
    """One of a fixed set of values (booleans never match 0 or 1)."""
    shown = ", ".join(_toml(c) for c in choices)

    def accept(value: Any) -> bool:
        return not isinstance(value, bool) and value in choices

    return Option(key, default, accept, f"one of {shown}", fix or f"use one of {shown}", convert)


def tcp_port(key: str, default: int, *, allow_zero: bool = False) -> Option:
    """A TCP port; 0 (any free port) only where a listener may take one."""
    return integer(key, default, low=0 if allow_zero else 1, high=65535, fix=f"use e.g. {default}")


def secret(key: str, what: str) -> Option:
    """A secret given inline or as "env:VARIABLE"; the variable is read when used (see resolve_secret)."""
    return Option(
        key,
        REQUIRED,
        lambda v: isinstance(v, str) and bool(v) and v != "env:",
        f'the {what} or "env:VARIABLE"',
        f'set {key} = "env:VARIABLE" holding the {what}',
        sensitive=True,
    )


def currency(key: str = "currency") -> Option:
    """An ISO 4217 code, stored upper-case; "" leaves it unset."""

    def accept(value: Any) -> bool:
        return isinstance(value, str) and (not value or (len(value) == 3 and value.isalpha()))

    return Option(key, "", accept, "an ISO 4217 code", 'use e.g. "EUR" or ""', str.upper)


def codec(key: str, default: str, *, fix: str) -> Option:
    """A Python text codec name (code pages, file encodings)."""

    def accept(value: Any) -> bool:
        try:
            codecs.lookup(value)
        except (LookupError, TypeError):
            return False
        return True

    return Option(key, default, accept, "a known text encoding", fix)


def table(key: str, fields: Options, *, convert: Any = None, sample_lists_all: bool = True) -> Option:
    """A sub-table ([drivers.<name>.<key>]) of declared options; absent means every default."""
    return Option(key, {}, what="a table", convert=convert, fields=fields, sample_lists_all=sample_lists_all)


def tables(key: str, fields: Options, *, what: str, fix: str) -> Option:
    """A non-empty list of sub-tables ([[drivers.<name>.<key>]]); `what` names one entry ("a sensor")."""
    return Option(key, REQUIRED, what=what, fix=fix, fields=fields, many=True)
