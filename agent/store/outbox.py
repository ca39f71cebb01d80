"""The outbox: released summaries waiting for the broker's PUBACK. Every SQL statement on its table is here.

Each operation takes the caller's sqlite3 connection, so transaction boundaries stay with the caller:
the privacy release enqueues its rows inside the transaction that writes the ledger and the spends,
and the publisher records a burst of PUBACKs in one transaction.

Order (DESIGN.md promise 5) is oldest first *per topic*, which is the order MQTT itself promises
(every topic is an "Ordered Topic", MQTT 5.0 section 4.6.1). A broker refuses a publish per topic (an
ACL, a quota), so a refused row holds back every newer row of its own topic and nothing else: only
the refused row is retried (a probe, with capped exponential backoff) until the broker accepts it,
then the rows behind it follow, oldest first. Other topics keep flowing meanwhile, so a tier-2 ACL
mistake does not also silence tier-1 footfall. Rows that were already in flight when the first
refusal came back (at most `max_inflight`) are past recall: the broker decides each on its own.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Collection, Iterable
from typing import Any

from agent.clock import NS_PER_S
from agent.store import Store

RETRY_BASE_S = 2.0  # first retry of a refused row
RETRY_CAP_S = 300.0  # never wait longer than this between two tries of a refused row
LATE_SLACK_NS = 60 * NS_PER_S
REJECTED_COUNTER = "outbox_rejected:"  # + the broker's reason text; one persisted counter per reason

# The columns a sender needs; `late` is the payload's own value, copied at enqueue.
_ROW = "seq, msg_id, topic, payload, late"
# A pending row the broker refused; it holds back the newer rows of its topic until it is accepted.
_REFUSED = "delivered_wall_ns IS NULL AND rejections > 0"
# A list of sequence numbers bound as ONE parameter (a JSON array): the statement's text stays the same
# whatever the list's length, so SQLite prepares it once (sqlite3's statement cache) instead of for every
# burst, and a burst of PUBACKs is one UPDATE instead of one per row.
_SEQS = "(SELECT value FROM json_each(?))"


@dataclasses.dataclass(frozen=True)
class OutboxRow:
    """One summary to send: its topic, the stored payload and the flags that go with it."""

    seq: int
    msg_id: str
    topic: str
    payload: str
    late: bool


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A topic the broker refuses right now, as the pending rows of that topic record it."""

    topic: str
    code: int  # the PUBACK reason code of the latest refusal (0x87 Not authorized, 0x97 Quota exceeded, ...)
    reason: str
    refused_rows: int  # pending rows the broker has refused at least once
    held_back: int  # pending rows of the topic from the oldest refused one on: none of them is sent
    attempts: int  # tries of the oldest refused row so far
    since_wall_ns: int  # first refusal of a row still pending
    next_attempt_wall_ns: int


def is_late(window_end_ns: int, released_wall_ns: int, grace_ns: int) -> bool:
    """The one definition of `late`: released more than twice the grace plus a minute after the window ended.

    A window is normally released at its end plus the grace; more than that again plus a minute means
    the agent was down, its clock was unsynchronised, or a backlog was being released. The payload
    carries this value and the MQTT v5 user property copies it, so a re-sent summary says the same.
    """
    return released_wall_ns - window_end_ns > 2 * grace_ns + LATE_SLACK_NS


def retry_delay_ns(attempts: int, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S) -> int:
    """Capped exponential backoff: base, 2 base, 4 base, ... up to cap, after the n-th refusal."""
    exponent = min(max(attempts - 1, 0), 32)  # 2**32 * base is past any cap; keeps the float finite
    return int(min(cap_s, base_s * 2.0**exponent) * NS_PER_S)


def enqueue(
    conn: sqlite3.Connection, msg_id: str, topic: str, window_start_ns: int, ledger_id: int, created_wall_ns: int
) -> int:
    """Add one summary's row and return its sequence number; `set_payload` fills it in the same transaction.

    Two steps because the payload carries its own `seq`, which SQLite assigns here.
    """
    cursor = conn.execute(
        "INSERT INTO outbox (msg_id, topic, payload, window_start_ns, ledger_id, created_wall_ns)"
        " VALUES (?, ?, '', ?, ?, ?)",
        (msg_id, topic, window_start_ns, ledger_id, created_wall_ns),
    )
    return int(cursor.lastrowid or 0)


def set_payload(conn: sqlite3.Connection, seq: int, payload: dict[str, Any]) -> None:
    """Store the row's payload, and beside it the payload's own `late` (the user property copies it)."""
    conn.execute(
        "UPDATE outbox SET payload = ?, late = ? WHERE seq = ?",
        (json.dumps(payload, sort_keys=True, separators=(",", ":")), int(bool(payload["late"])), seq),
    )


def next_batch(
    conn: sqlite3.Connection,
    limit: int,
    now_ns: int,
    exclude: Collection[int] = (),
    cap_s: float = RETRY_CAP_S,
) -> list[OutboxRow]:
    """Up to `limit` rows to send now, oldest first, leaving out `exclude` (already with the MQTT client).

    A refused row is sent again only once its backoff has passed; until it is accepted, no newer row of
    its topic is sent. A retry time further ahead than the cap can only come from the wall clock stepping
    back, and counts as due, so a clock step cannot hold a topic for longer than the cap.
    """
    if limit <= 0:
        return []
    rows = conn.execute(
        f"SELECT {_ROW} FROM outbox AS o WHERE delivered_wall_ns IS NULL AND seq NOT IN {_SEQS}"
        " AND (rejections = 0 OR next_attempt_wall_ns <= ? OR next_attempt_wall_ns > ?)"
        f" AND NOT EXISTS (SELECT 1 FROM outbox AS h WHERE {_REFUSED} AND h.topic = o.topic AND h.seq < o.seq)"
        " ORDER BY seq LIMIT ?",
        (json.dumps(list(exclude)), now_ns, now_ns + int(cap_s * NS_PER_S), limit),
    ).fetchall()
    return [OutboxRow(seq, msg_id, topic, payload, bool(late)) for seq, msg_id, topic, payload, late in rows]


def accept(conn: sqlite3.Connection, seqs: Iterable[int], now_ns: int) -> int:
    """Mark rows delivered (their PUBACK succeeded); returns how many were newly marked.

    Call it once per burst of PUBACKs, inside one transaction: one fsync for the burst, not one per row.
    """
    seqs = list(seqs)
    if not seqs:
        return 0
    ids = json.dumps(seqs)
    marked = conn.execute(
        f"UPDATE outbox SET delivered_wall_ns = ? WHERE seq IN {_SEQS} AND delivered_wall_ns IS NULL", (now_ns, ids)
    ).rowcount
    # The broker took a row of these topics, so whatever refused them has cleared: other refused rows
    # of the same topics are due now instead of at the end of their backoff (still one at a time, oldest first).
    conn.execute(
        f"UPDATE outbox SET next_attempt_wall_ns = ? WHERE {_REFUSED} AND next_attempt_wall_ns > ?"
        f" AND topic IN (SELECT topic FROM outbox WHERE seq IN {_SEQS})",
        (now_ns, now_ns, ids),
    )
    return marked


def reject(
    conn: sqlite3.Connection,
    seq: int,
    code: int,
    reason: str,
    now_ns: int,
    base_s: float = RETRY_BASE_S,
    cap_s: float = RETRY_CAP_S,
) -> int:
    """Record a refused PUBACK: the row stays pending, retried after a capped exponential backoff.

    Counted per reason in the persisted counters. Returns the row's number of refusals so far.
    """
    row = conn.execute("SELECT rejections FROM outbox WHERE seq = ? AND delivered_wall_ns IS NULL", (seq,)).fetchone()
    Store.bump_counter(conn, REJECTED_COUNTER + reason)
    if row is None:  # delivered meanwhile (a duplicate PUBACK after a reconnect): nothing to hold back
        return 0
    attempts = int(row[0]) + 1
    conn.execute(
        "UPDATE outbox SET rejections = ?, reject_code = ?, reject_reason = ?,"
        " first_rejected_wall_ns = coalesce(first_rejected_wall_ns, ?), last_rejected_wall_ns = ?,"
        " next_attempt_wall_ns = ? WHERE seq = ?",
        (attempts, code, reason, now_ns, now_ns, now_ns + retry_delay_ns(attempts, base_s, cap_s), seq),
    )
    return attempts


def pending(conn: sqlite3.Connection) -> tuple[int, int | None]:
    """How many rows wait for a successful PUBACK, and when the oldest was released (wall ns)."""
    count, oldest = conn.execute(
        "SELECT count(*), min(created_wall_ns) FROM outbox WHERE delivered_wall_ns IS NULL"
    ).fetchone()
    return int(count), oldest


def delivered(conn: sqlite3.Connection) -> tuple[int, int | None]:
    """How many rows the broker accepted (and are not pruned yet), and when the last one was."""
    count, last = conn.execute(
        "SELECT count(*), max(delivered_wall_ns) FROM outbox WHERE delivered_wall_ns IS NOT NULL"
    ).fetchone()
    return int(count), last


def rejections(conn: sqlite3.Connection) -> list[Rejection]:
    """One entry per topic the broker refuses now (a pending row it refused), oldest refusal first."""
    out = []
    for topic, refused, head, since, next_at in conn.execute(
        f"SELECT topic, count(*), min(seq), min(first_rejected_wall_ns), min(next_attempt_wall_ns) FROM outbox"
        f" WHERE {_REFUSED} GROUP BY topic ORDER BY min(seq)"
    ).fetchall():
        code, reason, attempts = conn.execute(
            f"SELECT reject_code, reject_reason, (SELECT rejections FROM outbox WHERE seq = ?) FROM outbox"
            f" WHERE {_REFUSED} AND topic = ? ORDER BY last_rejected_wall_ns DESC, seq DESC LIMIT 1",
            (head, topic),
        ).fetchone()
        held = conn.execute(
            "SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL AND topic = ? AND seq >= ?", (topic, head)
        ).fetchone()[0]
        out.append(Rejection(topic, int(code), str(reason), int(refused), int(held), int(attempts), since, next_at))
    return out


# What the release journal keeps of each message, to put it back exactly as committed (privacy/reconcile.py).
MESSAGE_COLUMNS = ("seq", "msg_id", "topic", "payload", "window_start_ns", "created_wall_ns")


def messages_of(conn: sqlite3.Connection, ledger_id: int) -> list[dict[str, Any]]:
    """The rows one release wrote, oldest first, as the release journal records them."""
    return [
        dict(zip(MESSAGE_COLUMNS, m, strict=True))
        for m in conn.execute(
            f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM outbox WHERE ledger_id = ? ORDER BY seq", (ledger_id,)
        )
    ]


def restore(conn: sqlite3.Connection, message: dict[str, Any], ledger_id: int) -> bool:
    """Put a journalled row back, pending, with its original seq and msg_id; False if either is taken."""
    late = bool(json.loads(message["payload"]).get("late", False)) if message["payload"] else False
    cursor = conn.execute(
        "INSERT OR IGNORE INTO outbox (seq, msg_id, topic, payload, window_start_ns, ledger_id, created_wall_ns, late)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message["seq"],
            message["msg_id"],
            message["topic"],
            message["payload"],
            message["window_start_ns"],
            ledger_id,
            message["created_wall_ns"],
            int(late),
        ),
    )
    return cursor.rowcount == 1


def prune_delivered(conn: sqlite3.Connection, released_before_ns: int) -> int:
    """Delete delivered rows released before the given wall time; pending rows are never deleted."""
    return conn.execute(
        "DELETE FROM outbox WHERE delivered_wall_ns IS NOT NULL AND created_wall_ns < ?", (released_before_ns,)
    ).rowcount
