"""The drop folder's open refusals kept in the agent's driver state, so a restart neither forgets nor retries them.

Without it a restart would clear `/health`'s degraded reason while refused files still lie in failed/,
and would read a file left in place (unreadable) again and log it again although nothing changed. The
state API holds short text values (agent/driver_api/contract.py: at most MAX_STATE_KEYS keys per save,
MAX_STATE_VALUE characters each), so the list is JSON cut into chunks under `refused.0`, `refused.1`, ...
with their number in `refused.n`, all saved in one call (one transaction: never half a list). When the
list is longer than the chunks can hold, the oldest refusals are left out of the saved copy (the
newest are what the owner is working through); in memory the driver still holds up to
DEGRADED_FILES_MAX of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from agent.driver_api.contract import MAX_STATE_KEYS, MAX_STATE_VALUE

log = logging.getLogger(__name__)
COUNT_KEY = "refused.n"
MAX_CHUNKS = MAX_STATE_KEYS - 1  # one key holds the count
# (file name, reason, where it lies, the stat key of a file left in place or None)
Refusal = tuple[str, str, Path, tuple[int, ...] | None]


def state_for(refusals: list[Refusal]) -> dict[str, str]:
    """The driver-state keys holding `refusals` (oldest first), dropping the oldest until they fit."""
    rows = [[name, reason, str(where), list(key) if key is not None else None] for name, reason, where, key in refusals]
    while True:
        text = json.dumps(rows, separators=(",", ":"))
        chunks = [text[i : i + MAX_STATE_VALUE] for i in range(0, len(text), MAX_STATE_VALUE)] or ["[]"]
        if len(chunks) <= MAX_CHUNKS:
            break
        rows = rows[len(rows) // 10 or 1 :]  # drop the oldest tenth and try again
    state = {f"refused.{i}": chunk for i, chunk in enumerate(chunks)}
    state[COUNT_KEY] = str(len(chunks))
    return state


def refusals_from(load: Callable[[str], str | None]) -> list[Refusal]:
    """The refusals saved by `state_for`, read through `load(key)`; [] when none (or unreadable: logged)."""
    count = load(COUNT_KEY)
    if count is None:
        return []
    try:
        text = "".join(load(f"refused.{i}") or "" for i in range(int(count)))
        rows = json.loads(text)
        return [(str(n), str(r), Path(w), tuple(int(x) for x in k) if k is not None else None) for n, r, w, k in rows]
    except (ValueError, TypeError) as exc:  # a damaged saved list costs the memory of refusals, nothing else
        log.warning("drop folder: the saved list of refused files cannot be read (%s); starting without it", exc)
        return []
