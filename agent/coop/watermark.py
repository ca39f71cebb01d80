"""The coop-held watermark: the newest window end the hub has stored of this store, read back at start.

The release journal survives a rolled-back or restored database, but not a fresh disk (both lost) or a
restored copy of the whole data folder. The hub holds a third record no local mishap can touch: it
publishes, retained, on `coop/v1/<coop>/_hub/t2/watermark/<store>` (only the hub writes it, only this
store reads it) `released_through`, the latest window end it has stored of this store over every stream.
One figure for all streams is enough: the agent releases every stream of a window in one transaction and
windows in order, so a window the hub holds of any stream means every earlier window was released.

Before it releases anything after a start, the agent waits for it (bounded: `mqtt.watermark_wait_s`). The
wait ends early when the watermark arrives, or when the broker has answered a later subscription (a broker
sends a topic's retained message right after the SUBACK of its subscription, before it handles the next
SUBSCRIBE), which then means the coop holds none: a fresh store. Reconcile (privacy/reconcile.py) then
treats every window at or before the watermark as released.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from agent.clock import NS_PER_S
from agent.contract import parse_iso
from agent.store import Store

log = logging.getLogger(__name__)

WATERMARK_SCHEMA = "shopkeeper.hub-watermark.v1"
WATERMARK_KEY = "coop_watermark_ns"  # the newest watermark read (never lowered)
WATERMARK_READ_KEY = "coop_watermark_read_wall_ns"
APPLIED_KEY = "coop_watermark_applied_ns"


def parse_watermark(payload: bytes, coop: str, store: str) -> int:
    """`released_through` in ns; ValueError naming what is wrong."""
    try:
        doc = json.loads(payload)
    except ValueError:
        raise ValueError("watermark is not JSON") from None
    if not isinstance(doc, dict) or doc.get("schema") != WATERMARK_SCHEMA:
        raise ValueError(f"watermark schema is not {WATERMARK_SCHEMA}")
    if doc.get("coop") != coop or doc.get("store") != store:
        raise ValueError("watermark names another coop or store")
    through = doc.get("released_through")
    if not isinstance(through, str):
        raise ValueError("watermark has no released_through")
    return parse_iso(through) * NS_PER_S


class WatermarkGate:
    """Holds the first release after a start until the coop's watermark is read or the wait is over."""

    def __init__(self, store: Store, coop: str, shop: str, wait_s: float) -> None:
        self.store, self.coop, self.shop, self.wait_s = store, coop, shop, wait_s
        self._deadline = time.monotonic() + wait_s
        self._lock = threading.Lock()
        self._received = False
        self._answered = False  # the broker answered the subscription after the watermark's
        self._logged = False

    def record(self, payload: bytes) -> bool:
        """Store a watermark message (paho's thread); False, counted, when it does not parse."""
        if not payload:  # an empty retained message: the hub cleared it
            return True
        try:
            through_ns = parse_watermark(payload, self.coop, self.shop)
        except ValueError as exc:
            log.error("ignored the coop's watermark message: %s", exc)
            with self.store.transaction() as conn:
                Store.bump_counter(conn, "watermark_messages_ignored")
            return False
        with self.store.transaction() as conn:
            current = conn.execute("SELECT value FROM agent_state WHERE key = ?", (WATERMARK_KEY,)).fetchone()
            if current is None or int(current[0]) < through_ns:
                Store.set_state(conn, WATERMARK_KEY, str(through_ns))
            Store.set_state(conn, WATERMARK_READ_KEY, str(time.time_ns()))
        with self._lock:
            self._received = True
        return True

    def answered(self) -> None:
        """The broker's SUBACK for the subscription made after the watermark's (paho's thread)."""
        with self._lock:
            self._answered = True

    def ready(self) -> bool:
        """True once the watermark was read, the broker says there is none, or the wait is over."""
        if self.wait_s <= 0:  # mqtt.watermark_wait_s = 0: not waited for (one that arrives is still applied)
            return True
        with self._lock:
            done = self._received or self._answered or time.monotonic() >= self._deadline
            if done and not self._logged:
                self._logged = True
                if self._received:
                    log.info("read the coop's watermark before releasing")
                elif self._answered:
                    log.warning(
                        "the coop holds no watermark for this store (a fresh store, or the hub has stored"
                        " nothing of it yet): releasing on the database and the release journal alone"
                    )
                else:
                    log.error(
                        "the coop's watermark could not be read within %.0f s (broker unreachable?): releasing"
                        " on the database and the release journal alone",
                        self.wait_s,
                    )
            return done

    def describe(self) -> dict[str, Any]:
        """What /health shows."""
        stored = self.store.get_state(WATERMARK_KEY)
        if self.wait_s <= 0:
            return {
                "state": "off",
                "detail": "not waited for (mqtt.watermark_wait_s = 0); applied when one arrives",
                "released_through_ns": int(stored) if stored is not None else None,
            }
        with self._lock:
            received, answered = self._received, self._answered
            waiting = not (received or answered or time.monotonic() >= self._deadline)
        if waiting:
            state, words = "waiting", f"waiting up to {self.wait_s:.0f} s for the coop's watermark before releasing"
        elif received:
            state, words = "read", "read from the coop"
        elif answered:
            state, words = "none", "the coop holds no watermark for this store (a fresh store): released without one"
        else:
            state, words = "unreadable", f"not read within {self.wait_s:.0f} s: released on the journal alone"
        return {
            "state": state,
            "detail": words,
            "released_through_ns": int(stored) if stored is not None else None,
        }
