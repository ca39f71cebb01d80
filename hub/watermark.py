"""Each store's watermark: the newest window end the hub has stored of it, retained on its private topic.

The agent reads it back before it releases anything after a start (agent/coop/watermark.py), so a window
the coop already holds is never drawn again, even when the shop lost both its database and its release
journal. One figure per store over every stream (tiers 1 and 2): the agent releases all streams of a
window in one transaction and windows in order, so any stream's newest window bounds them all, and a
stream added later (a POS) does not look behind. Only the hub writes `_hub/t2/watermark/<store>` and only
that store reads it (deploy/mosquitto/coop.acl). It only ever moves forward from this worker; with several
workers one may briefly retain an older figure than another, which is still a true lower bound.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.contract import iso, published_json, watermark_topic
from hub.db import Connection

WATERMARK_SCHEMA = "shopkeeper.hub-watermark.v1"


def released_through(conn: Connection, store: str) -> int | None:
    """The newest window end (UTC seconds) of any summary stored for `store`."""
    rows = conn.query("SELECT MAX(window_start_s + window_seconds) FROM summaries WHERE store = ?", (store,))
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def watermark_payload(coop: str, store: str, through_s: int, now: float) -> str:
    doc = {
        "schema": WATERMARK_SCHEMA,
        "coop": coop,
        "store": store,
        "released_through": iso(through_s),
        "scope": "every stream of the store",
        "updated_at": iso(int(now)),
    }
    return published_json(doc)


def watermark_messages(
    conn: Connection, coop: str, stores: Iterable[str], sent: dict[str, int], now: float
) -> list[tuple[str, str]]:
    """(topic, payload) for every store whose watermark moved past what this worker last sent (`sent`,
    updated in place)."""
    out = []
    for store in sorted(set(stores)):
        through = released_through(conn, store)
        if through is None or through <= sent.get(store, -1):
            continue
        sent[store] = through
        out.append((watermark_topic(coop, store), watermark_payload(coop, store, through, now)))
    return out
