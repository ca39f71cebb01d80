"""A record of the retained status messages the publisher sent (birth and goodbye), for the owner's "what left".

They leave the shop like the summaries do, so the owner sees them too. Bounded: the newest
`KEEP` are kept in `agent_state`, which needs no migration.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from agent.store import Store

STATE_KEY = "status_messages_sent"
KEEP = 200


def record(conn: sqlite3.Connection, topic: str, payload: str, wall_ns: int, how: str) -> None:
    """Append one sent status message; `how` says who sent it ("agent", or "broker" for the last will)."""
    value = Store.state_in(conn, STATE_KEY)
    sent = json.loads(value) if value else []
    sent.append({"topic": topic, "payload": payload, "wall_ns": wall_ns, "how": how})
    Store.set_state(conn, STATE_KEY, json.dumps(sent[-KEEP:]))


def sent(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every recorded status message, oldest first."""
    value = Store.state_in(conn, STATE_KEY)
    return list(json.loads(value)) if value else []
