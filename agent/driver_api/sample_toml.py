"""Check a driver's sample.toml against its declared Options: the docs and the code cannot drift.

The rules (docs/writing-a-driver.md, section 8): every declared option appears in the sample, set or
commented out (`# baudrate = 9600`); a commented-out option, or a set optional one, shows exactly the
declared default; a required option is set; and the sample shows no key that is not declared.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any

from agent.driver_api.options import Option, Options

HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(?:#.*)?$")
COMMENTED = re.compile(r"^\s*#(?!#)\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(.+?)\s*$")


class _Unreadable(str):
    """A commented-out value that is not TOML; compared as never equal to a default."""


def commented_keys(text: str) -> dict[str, dict[str, Any]]:
    """Commented-out `# key = value` lines, by the dotted path of the table they stand in."""
    found: dict[str, dict[str, Any]] = {}
    path = ""
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            path = header.group(1)
            continue
        match = COMMENTED.match(line)
        if match:
            try:
                value: Any = tomllib.loads(f"v = {match.group(2)}")["v"]
            except tomllib.TOMLDecodeError:
                value = _Unreadable(match.group(2))
            found.setdefault(path, {})[match.group(1)] = value
    return found


def sample_problems(options: Options, text: str, kind: str) -> list[str]:
    """What in sample.toml disagrees with the declaration; [] when they agree."""
    tables = tomllib.loads(text).get("drivers", {})
    ours = {name: t for name, t in tables.items() if isinstance(t, Mapping) and t.get("kind") == kind}
    if not ours:
        return [f'sample.toml has no [drivers.<name>] table with kind = "{kind}"']
    problems: list[str] = []
    commented = commented_keys(text)
    for name, table in ours.items():
        _compare(options, {k: v for k, v in table.items() if k != "kind"}, commented, f"drivers.{name}", problems)
    return problems


def _normal(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_normal(v) for v in value]
    return value


def _fixed_default(option: Option) -> bool:
    return not option.required and option.default is not None


def _compare(
    options: Options,
    active: Mapping[str, Any],
    commented: Mapping[str, Mapping[str, Any]],
    path: str,
    problems: list[str],
    lists_all: bool = True,
) -> None:
    shown = commented.get(path, {})
    for key in [*active, *shown]:
        if key not in options.by_key:
            problems.append(f"{path}.{key} is in sample.toml but is not a declared option")
    for option in options:
        where = f"{path}.{option.key}"
        if option.fields is not None:
            _compare_table(option, active.get(option.key), commented, where, problems)
        elif option.key in active:
            if _fixed_default(option) and _normal(active[option.key]) != _normal(option.default):
                problems.append(f"{where} is set to {active[option.key]!r}, not its default {option.default!r}")
        elif option.key in shown:
            if option.required:
                problems.append(f"{where} is required, but sample.toml only shows it commented out")
            elif _fixed_default(option) and _normal(shown[option.key]) != _normal(option.default):
                problems.append(
                    f"{where} is shown as {shown[option.key]!r}; its declared default is {option.default!r}"
                )
        elif option.required or lists_all:
            problems.append(f"{where} is declared but sample.toml does not show it")


def _compare_table(
    option: Option, active: Any, commented: Mapping[str, Mapping[str, Any]], where: str, problems: list[str]
) -> None:
    assert option.fields is not None
    if not option.many:
        if active is None and where not in commented:
            problems.append(f"sample.toml has no [{where}] table")
        table = active if isinstance(active, Mapping) else {}
        _compare(option.fields, table, commented, where, problems, option.sample_lists_all)
        return
    entries = [e for e in active if isinstance(e, Mapping)] if isinstance(active, list) else []
    if not entries:
        problems.append(f"sample.toml has no [[{where}]] table")
    shown = commented.get(where, {})
    keys = {key for entry in entries for key in entry} | set(shown)
    for key in sorted(keys - set(option.fields.by_key)):
        problems.append(f"{where}.{key} is in sample.toml but is not a declared option")
    for field in option.fields:
        # Entries are examples and differ from one another: only commented-out values must be defaults.
        if field.key in shown and _fixed_default(field) and _normal(shown[field.key]) != _normal(field.default):
            problems.append(f"{where}.{field.key} is shown as {shown[field.key]!r}; its default is {field.default!r}")
        elif field.key not in keys:
            problems.append(f"{where}.{field.key} is declared but sample.toml does not show it")
