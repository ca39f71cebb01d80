"""A record of the retained status messages the publisher sent (birth and goodbye), for the owner's "what left".

They leave the shop like the summaries do, so the owner sees them too. Bounded: the newest
`KEEP` are kept in `agent_state`, which needs no migration.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

STATE_KEY = "status_messages_sent"
KEEP = 200


def record(conn: sqlite3.Connection, topic: str, payload: str, wall_ns: int, how: str) -> None:
    """Append one sent status message; `how` says who sent it ("agent", or "broker" for the last will)."""
    row = conn.execute("SELECT value FROM agent_state WHERE key = ?", (STATE_KEY,)).fetchone()
    sent = json.loads(row[0]) if row else []
    sent.append({"topic": topic, "payload": payload, "wall_ns": wall_ns, "how": how})
    conn.execute(
        "INSERT INTO agent_state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (STATE_KEY, json.dumps(sent[-KEEP:])),
    )


def sent(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every recorded status message, oldest first."""
    row = conn.execute("SELECT value FROM agent_state WHERE key = ?", (STATE_KEY,)).fetchone()
    return list(json.loads(row[0])) if row else []
