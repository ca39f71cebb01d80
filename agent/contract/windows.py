"""Window lengths, their names in topics, and UTC time as it appears on the wire.

A window length is carried in every payload (`window.seconds`) and named in the topic's last level.
The names are part of the published v1 topics (`hourly`, `15min`, `daily`, else `<n>s`): never change one.
"""

from __future__ import annotations

import datetime as dt

NS_PER_S = 1_000_000_000
DAY_S = 86_400
MIN_WINDOW_S = 60
DEFAULT_WINDOW_S = 3600  # the agent's default `[windows] length`
# Lengths that existed before the window was named in hub topics and ids: those keep their v1 form.
V1_IMPLIED_WINDOW_S = 3600
_NAMED = {3600: "hourly", 86400: "daily", 900: "15min"}
_BY_NAME = {name: seconds for seconds, name in _NAMED.items()}
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Every length a window may have: at least a minute, and whole windows per day (so windows align to the epoch
# day and a day's windows never straddle midnight).
WINDOW_LENGTHS: tuple[int, ...] = tuple(s for s in range(MIN_WINDOW_S, DAY_S + 1) if DAY_S % s == 0)


def is_window_length(seconds: int) -> bool:
    """True for a length the contract allows (see WINDOW_LENGTHS)."""
    return MIN_WINDOW_S <= seconds <= DAY_S and DAY_S % seconds == 0


def window_name(seconds: int) -> str:
    """The topic level naming a window length: `hourly`, `15min`, `daily`, else `<n>s` (e.g. `60s`)."""
    return _NAMED.get(seconds, f"{seconds}s")


def window_seconds(name: str) -> int:
    """The length a window name stands for; ValueError for a name `window_name` would not produce."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    digits = name[:-1]
    if name.endswith("s") and digits.isdigit() and not digits.startswith("0"):
        seconds = int(digits)
        if seconds not in _NAMED and is_window_length(seconds):
            return seconds
    raise ValueError(f"{name!r} is not a window name (hourly, 15min, daily or <n>s for a length dividing a day)")


def iso_utc(ns: int) -> str:
    """Wall time in ns as the wire's UTC text, whole seconds: 2026-11-16T09:00:00Z."""
    return dt.datetime.fromtimestamp(ns // NS_PER_S, tz=dt.UTC).strftime(UTC_FORMAT)


def iso_seconds(seconds: int) -> str:
    """Unix seconds as the wire's UTC text."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime(UTC_FORMAT)


def parse_iso(text: str) -> int:
    """The wire's UTC text as Unix seconds; ValueError for any other shape."""
    return int(dt.datetime.strptime(text, UTC_FORMAT).replace(tzinfo=dt.UTC).timestamp())
