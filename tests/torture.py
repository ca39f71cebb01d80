"""How hard the torture tests push: the issues' minimum counts under `make test`, more under `make torture`.

`SHOPKEEPER_TORTURE=full` (what `make torture` sets) runs each torture test at its full count; unset (or
"min") runs the minimum its issue demands (fifty SIGKILLs, twenty durability trials, ten restarts), which
is what `make test` runs. Every count is seeded the same way at either level, so a failure reproduces with
the same level and the same seed.
"""

from __future__ import annotations

import os

LEVEL_VARIABLE = "SHOPKEEPER_TORTURE"
LEVELS = ("min", "full")


def level() -> str:
    """The torture level asked for in the environment ("min" unless it says "full")."""
    value = os.environ.get(LEVEL_VARIABLE, "min").strip().lower() or "min"
    if value not in LEVELS:
        raise ValueError(f"{LEVEL_VARIABLE}={value!r}: use one of {', '.join(LEVELS)}")
    return value


def count(minimum: int, full: int) -> int:
    """`minimum` (never fewer: the issue's demand) or, under `make torture`, `full`."""
    return max(minimum, full) if level() == "full" else minimum
