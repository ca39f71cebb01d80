"""Which named groups of a regex take part in every match (pure): custom patterns are checked with it.

A shop's item pattern with an optional `name` group (`(?P<name>...)?`, or the group in one branch of an
alternation only) matches lines where the group is None, and reading such a match would crash or store a
nameless line. `check-config` refuses such a pattern up front; this walks the parsed regex (the standard
library's own parser) to find the groups that are guaranteed to participate.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

_parser: Any = importlib.import_module("re._parser")  # the stdlib's regex parser (sre_parse before 3.11)
_c: Any = importlib.import_module("re._constants")


def _required(items: Any, names: dict[int, str]) -> set[str]:
    found: set[str] = set()
    for op, av in items:
        if op is _c.SUBPATTERN:
            group, _, _, inner = av
            found |= _required(inner, names) | ({names[group]} if group in names else set())
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)):
            low, _, inner = av
            if low >= 1:
                found |= _required(inner, names)
        elif op is _c.BRANCH:
            branches = [_required(alt, names) for alt in av[1]]
            found |= set.intersection(*branches) if branches else set()
        elif op is _c.GROUPREF_EXISTS:
            _, yes, no = av
            found |= _required(yes, names) & (_required(no, names) if no is not None else set())
        elif op is _c.ASSERT:
            found |= _required(av[1], names)
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            found |= _required(av, names)
    return found


def required_groups(pattern: re.Pattern[str]) -> set[str]:
    """Named groups that are set in every match of the pattern."""
    names = {index: name for name, index in pattern.groupindex.items()}
    return _required(_parser.parse(pattern.pattern, pattern.flags), names)


def check_groups(key: str, pattern: re.Pattern[str], needed: tuple[str, ...]) -> None:
    """ValueError naming the key when a needed group is missing or can be left out of a match."""
    missing = [g for g in needed if g not in pattern.groupindex]
    if missing:
        raise ValueError(f"{key}: needs the named groups {missing}")
    optional = [g for g in needed if g not in required_groups(pattern)]
    if optional:
        raise ValueError(f"{key}: the named groups {optional} can be left out of a match (inside ?, * or one branch "
                         "of |); a match without them cannot be read, so make them required")  # fmt: skip
