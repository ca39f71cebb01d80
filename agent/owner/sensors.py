"""Sensors and feeds in words: working, silent since, refusing, not connected.

The running agent writes a snapshot of its drivers' health to SQLite every few seconds
(`agent_state.owner_driver_health`), so that `shopkeeper status`, a separate process, reads the same
state the page shows; the time of the last reading comes from the raw tables themselves.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from agent.owner.localtime import NS_PER_S, LocalZone, ago

if TYPE_CHECKING:
    from agent.ops.runtime import Agent

STATE_KEY = "owner_driver_health"
PAYMENT_FEEDS = ("square", "shopify", "clover")
STALE_S = 60  # a snapshot older than this (real seconds) means the agent is not running
WORDS = {  # a driver kind's name for an owner
    "terabee": "door counter",
    "ld2410": "presence sensor",
    "thermal90640": "thermal people counter",
    "beam_gpio": "light-beam counter",
    "modbus_counter": "door counter",
    "mqtt_sensors": "door and motion sensors",
    "escpos": "till printer",
    "square": "Square",
    "shopify": "Shopify",
    "clover": "Clover",
    "pos_dropfolder": "till export folder",
}


def unset_secrets(driver: object) -> list[str]:
    """Settings given as "env:VARIABLE" whose variable is empty, e.g. `signature_key (SQUARE_KEY)`."""
    found = []
    objects = [("", driver)] + [(f"{k}.", v) for k, v in vars(driver).items() if hasattr(v, "__dict__")]
    for prefix, obj in objects:
        for key, value in vars(obj).items():
            if isinstance(value, str) and value.startswith("env:") and not os.environ.get(value[4:]):
                found.append(f"{prefix}{key} ({value[4:]})")
    return found


def snapshot(agent: Agent, stopped: bool = False) -> dict[str, Any]:
    """What the page and `status` need of the running parts, as plain JSON."""
    drivers = {}
    health = agent.supervisor.health()
    for driver in agent.config.drivers:
        name = str(getattr(driver, "name", driver.kind))
        drivers[name] = {
            "kind": driver.kind,
            "doors": list(driver.doors()),
            "health": health.get(name, {}),
            "unset_secrets": unset_secrets(driver),
        }
    ingest = agent.ingest.stats()
    return {
        "at_ns": agent.clock.wall_ns(),
        "real_ns": time.time_ns(),
        "drivers": drivers,
        "refused": ingest["refused"],
        "store_error": ingest["store_error"],
        "mqtt_connected": agent.publisher.connected,
        "clock_synced": agent.clock.synced(),
        "stopped": stopped,
    }


class SensorRecorder:
    """Writes the snapshot for `shopkeeper status` when it changed, or every `REFRESH_S` to show the agent lives.

    Every write is an fsync (synchronous=FULL); on a Pi's SD card that is wear, so unchanged health is not
    rewritten every few seconds.
    """

    REFRESH_S = 20

    def __init__(self) -> None:
        self._last = ""
        self._written = 0.0

    def persist(self, agent: Agent, stopped: bool = False) -> bool:
        """Write if due (always when `stopped`, at a clean stop); returns whether it wrote."""
        snap = snapshot(agent, stopped)
        content = json.dumps(
            {k: v for k, v in snap.items() if k not in ("at_ns", "real_ns")}, sort_keys=True, default=str
        )
        if content == self._last and time.monotonic() - self._written < self.REFRESH_S and not stopped:
            return False
        with agent.store.transaction() as conn:
            agent.store.set_state(conn, STATE_KEY, json.dumps(snap, sort_keys=True, default=str))
        self._last, self._written = content, time.monotonic()
        return True


def stored_snapshot(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT value FROM agent_state WHERE key = ?", (STATE_KEY,)).fetchone()
    return json.loads(row[0]) if row else None


def last_readings(conn: sqlite3.Connection) -> dict[str, int]:
    """Driver name -> wall time of its newest stored reading (door, presence or basket)."""
    out: dict[str, int] = {}
    for table in ("events", "presence_events", "baskets"):
        for driver, newest in conn.execute(f"SELECT driver, max(wall_ns) FROM {table} GROUP BY driver"):
            out[str(driver)] = max(out.get(str(driver), 0), int(newest))
    return out


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def describe(name: str, entry: dict[str, Any], last_ns: int | None, now_ns: int, zone: LocalZone) -> dict[str, Any]:
    """One driver's state word and its sentence, e.g. ("working", "front door counter: last reading 2 minutes ago")."""
    kind, health = entry.get("kind", ""), entry.get("health", {})
    doors = entry.get("doors") or []
    word = WORDS.get(kind, kind)
    if len(doors) == 1:  # "front door counter", "back door presence sensor"
        word = f"{doors[0]} {word}" if word.startswith("door ") else f"{doors[0]} door {word}"
    label = f"{word} ({name})" if word != name else name
    last = f"last reading {ago(now_ns, last_ns)}" if last_ns else "no reading yet"
    problems = []
    refused = sum(int(health.get(k, 0) or 0) for k in ("unauthorised",))
    if refused:  # a POS webhook's refused requests are payments the shop made that were not counted
        what = ("payment notification", "payment notifications") if kind in PAYMENT_FEEDS else ("request", "requests")
        problems.append(_count(refused, f"{what[0]} refused", f"{what[1]} refused") + " (bad or missing signature)")
    for key in entry.get("unset_secrets", []):
        problems.append(f"{key.split(' ')[0].replace('_', ' ')} not set (environment variable {key.split('(')[1]}")
    for key, words in (("malformed", "malformed"), ("dead_letters", "kept as dead letters"), ("bad_frames", "")):
        n = int(health.get(key, 0) or 0)
        if n and key == "bad_frames" and not refused:
            problems.append(_count(n, "unreadable frame skipped", "unreadable frames skipped"))
        elif n and words:
            problems.append(f"{_count(n, 'event', 'events')} {words}")
    if not health.get("running", True):
        state = "stopped"
        why = health.get("last_error") or "it stopped"
        restarts = _count(int(health.get("restarts", 0)), "restart", "restarts")
        text = f"stopped: {why}; the agent keeps restarting it ({restarts} so far)"
    elif not health.get("connected", True):
        state = "not connected"
        text = f"not connected: {health.get('last_error') or 'no answer from the device'}; {last}"
    elif health.get("degraded") or refused or entry.get("unset_secrets"):
        state = "refusing"
        text = f"{last}; " + "; ".join(problems or [str(health.get("degraded"))])
        problems = []
    elif last_ns and now_ns - last_ns > 3600 * NS_PER_S:
        state = "silent"
        text = f"connected, silent since {zone.clock(last_ns)}"
    else:
        state = "working"
        text = last
    if problems:
        text += "; " + "; ".join(problems)
    return {"name": name, "kind": kind, "state": state, "label": label, "text": f"{label}: {text}"}


def sensor_states(conn: sqlite3.Connection, now_ns: int, zone: LocalZone) -> tuple[list[dict[str, Any]], str]:
    """Every driver described, and one sentence on whether the agent itself is running."""
    snap = stored_snapshot(conn)
    if snap is None:
        return [], "the agent has not reported its sensors yet (is it running?)"
    last = last_readings(conn)
    states = [describe(n, e, last.get(n), now_ns, zone) for n, e in sorted(snap["drivers"].items())]
    age_s = (time.time_ns() - int(snap["real_ns"])) // NS_PER_S
    if snap.get("stopped"):
        agent = f"the agent is stopped (it stopped cleanly {ago(time.time_ns(), int(snap['real_ns']))})"
    elif age_s > STALE_S:
        agent = f"the agent is NOT running (last heard from {ago(time.time_ns(), int(snap['real_ns']))}; no clean stop)"
    else:
        agent = "the agent is running"
    return states, agent
