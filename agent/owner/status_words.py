"""`shopkeeper status` in plain words: sensors and feeds first, then what is kept here, what left, what waits.

Times are in the box's zone (or `[owner_page] timezone`), named once; nothing prints Python's None.
"""

from __future__ import annotations

import time
from typing import Any

from agent.clock import AcceleratedClock
from agent.config import AgentConfig
from agent.forecast import words as forecast_words
from agent.owner import figures, sensors, sent
from agent.owner.localtime import LocalZone, ago, money
from agent.store import Store, outbox


def _now_ns() -> int:
    # The demo and the tests run the agent on an accelerated clock; status reads the same clock from the environment.
    accelerated = AcceleratedClock.from_env()
    return accelerated.wall_ns() if accelerated is not None else time.time_ns()


def collect(store: Store, config: AgentConfig) -> dict[str, Any]:
    """The owner's part of the status report (merged into `collect_status`, so `--json` has it too)."""
    conn = store.conn()
    zone = LocalZone(config.owner_page.timezone if config.owner_page else "")
    now = _now_ns()
    states, agent_state = sensors.sensor_states(conn, now, zone)
    day = figures.today(conn, zone, now)
    count, oldest, newest = conn.execute("SELECT count(*), min(wall_ns), max(wall_ns) FROM baskets").fetchone()
    windows, last_start, last_end = conn.execute(
        "SELECT count(DISTINCT window_start_ns), max(window_start_ns), max(window_end_ns) FROM release_ledger"
    ).fetchone()
    pending, oldest_pending = outbox.pending(conn)
    delivered, last_delivered = outbox.delivered(conn)
    return {
        "zone": zone.name,
        "now_local": zone.clock(now),
        "agent": agent_state,
        "sensors": [{k: s[k] for k in ("name", "kind", "state", "text")} for s in states],
        "baskets": {
            "count": int(count),
            "oldest_local": zone.clock(int(oldest)) if oldest else "",
            "newest_local": zone.clock(int(newest)) if newest else "",
        },
        "today": {
            "day": zone.day_start(now).strftime("%A %d %b"),
            "doors": {d: {"entries": e, "exits": x} for d, (e, x) in sorted(day.door_totals().items())},
            "baskets": day.baskets,
            "revenue_cents": day.revenue_cents,
            "currency": day.currency,
        },
        "words": {
            "windows": int(windows or 0),
            "last_window": zone.span(int(last_start), int(last_end)) if last_start is not None else "",
            "pending": pending,
            "oldest_pending": ago(now, oldest_pending) if oldest_pending else "",
            "delivered": delivered,
            "last_delivered": zone.clock(int(last_delivered)) if last_delivered else "",
            "status_messages": len(sent.status_messages(conn, zone)),
            "raw_newest": _raw_newest(store, zone),
        },
        "budget": sent.budget(config),
        "forecast": _forecast_line(conn, zone, now),
    }


def _forecast_line(conn: Any, zone: LocalZone, now: int) -> str:
    """Today's forecast and its warning in one line ("" when there is no forecast)."""
    rep = forecast_words.report(conn, zone, now)
    if rep is None or not rep.get("available"):
        return f"no forecast: {rep['error']}" if rep else ""
    today = next((d for d in rep["days"] if d["day"] == zone.at(now).date().isoformat()), None)
    line = f"today about {today['people']} people ({today['lo80']} to {today['hi80']})" if today else "made"
    line += f", made {rep['made_local']}"
    if rep["warning"]:
        line += f"; {rep['warning']}"
    if rep["error"]:
        line += f"; the latest refresh failed: {rep['error']}"
    return line


def _raw_newest(store: Store, zone: LocalZone) -> str:
    newest = store.conn().execute("SELECT max(wall_ns) FROM events").fetchone()[0]
    return zone.clock(int(newest)) if newest else ""


def format_words(report: dict[str, Any]) -> list[str]:
    """Lines for the terminal, in the order an owner asks: are my sensors working, what is kept, what left."""
    w, raw, baskets, today = report["words"], report["raw_events"], report["baskets"], report["today"]
    lines = [
        f"Shop {report['store']} ({report['coop']} coop). Now {report['now_local']}; times in {report['zone']}.",
        f"{report['agent'][:1].upper()}{report['agent'][1:]}.",
        "",
        "Sensors and feeds:",
    ]
    width = max((len(s["state"]) for s in report["sensors"]), default=0)
    lines += [f"  {s['state']:<{width}}  {s['text']}" for s in report["sensors"]] or ["  none configured"]
    doors = "; ".join(f"{d} door {v['entries']} in, {v['exits']} out" for d, v in today["doors"].items())
    lines += [
        "",
        f"Today ({today['day']}), exact, kept on this box: {doors or 'no door counts'};"
        f" {today['baskets']} baskets, {money(today['revenue_cents'], today['currency'])}.",
    ]
    if report.get("forecast"):
        lines.append(f"Forecast (this box's own, `shopkeeper forecast`): {report['forecast']}.")
    lines += [
        "",
        "Kept on this box (raw, never sent):",
        f"  {raw['count']} door readings" + (f", the newest {w['raw_newest']}" if w["raw_newest"] else ""),
        f"  {baskets['count']} baskets"
        + (f", from {baskets['oldest_local']} to {baskets['newest_local']}" if baskets["count"] else ""),
        "",
        "What left the shop:",
        f"  {w['windows']} windows released"
        + (f", the last one {w['last_window']}" if w["last_window"] else "")
        + f"; {w['delivered']} summaries delivered"
        + (f", the last {w['last_delivered']}" if w["last_delivered"] else "")
        + f"; {w['status_messages']} status messages (online/offline)",
    ]
    b = report["budget"]
    units = ", ".join(f"one {u} \u03b5 {e}" for u, e in b["units"].items())
    lines.append(f"  privacy: at most \u03b5 {b['budget']} per window for any one door event or basket ({units})")
    lines += ["", "Waiting to be sent:"]
    if w["pending"]:
        lines.append(f"  {w['pending']} summaries, the oldest released {w['oldest_pending']}")
    else:
        lines.append("  nothing: every released summary reached the broker")
    lines.append(f"  broker connections so far: {report['mqtt_connections']}")
    return lines
