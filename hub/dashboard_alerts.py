"""Alerts that explain themselves: what was observed, the baseline and band it was judged against, since when,
and a link to the shop's chart on that day. Acknowledging an alert records who and when; the alert is kept.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from hub.auth import Session, User
from hub.contract import parse_iso
from hub.dashboard_layout import csrf_field, esc
from hub.dashboard_time import stamp
from hub.db import Connection
from hub.queries import alert_store, alerts_explained


def explain(alert: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """The plain-language parts of one alert row (from alerts_explained)."""
    p = alert["payload"]
    kind, store = str(alert["kind"]), str(alert["store"])
    window = p.get("window") or {}
    start = parse_iso(window["start"]) if window.get("start") else None
    if start is None and p.get("last_window"):
        start = parse_iso(p["last_window"])
    out: dict[str, Any] = {
        "alert_id": alert["alert_id"],
        "store": store,
        "kind": kind,
        "since": stamp(start, tz) if start is not None else stamp(alert["raised_at"], tz),
        "since_s": start if start is not None else int(alert["raised_at"]),
        "raised": stamp(alert["raised_at"], tz),
        "acked_by": alert["acked_by"],
        "acked_at": stamp(alert["acked_at"], tz) if alert["acked_at"] is not None else None,
    }
    if "observed" in p and "baseline" in p:
        spread, z = float(p.get("spread") or 0), float(p.get("z") or 0)
        low, high = float(p["baseline"]) - z * spread, float(p["baseline"]) + z * spread
        out["observed"] = p["observed"]
        out["baseline"] = p["baseline"]
        out["band"] = [round(max(low, 0.0), 1), round(high, 1)]
        out["summary"] = (
            f"{store}: {p['observed']:g} entries in the {window.get('seconds', 3600) // 60}-minute window from"
            f" {out['since']}; the baseline (median of the same window over {p.get('history_weeks', '?')} past weeks)"
            f" is {float(p['baseline']):g}, and the normal band (baseline ± {z:g} spreads) is"
            f" {out['band'][0]:g} to {out['band'][1]:g}."
        )
    else:
        out["summary"] = f"{store}: {kind}: {p.get('detail', '')}" + (
            f" (last window {out['since']})" if p.get("last_window") else ""
        )
    day = dt.datetime.fromtimestamp(start if start is not None else alert["raised_at"], tz=tz).date()
    out["chart"] = f"/shop/{store}?" + urlencode({"range": "day", "date": day.isoformat()})
    return out


def _alert_html(a: dict[str, Any], session: Session) -> str:
    acked = a["acked_by"] is not None
    if acked:
        action = f"acknowledged by {esc(a['acked_by'])} at {esc(a['acked_at'])}"
    else:
        action = (
            f'<form method="post" action="/alerts/ack">{csrf_field(session)}'
            f'<input type="hidden" name="alert_id" value="{esc(a["alert_id"])}">'
            '<button type="submit">Acknowledge</button></form>'
        )
    facts = ""
    if "observed" in a:
        facts = (
            f"<br>observed <b>{a['observed']:g}</b> · baseline {a['baseline']:g} · band {a['band'][0]:g}"
            f"–{a['band'][1]:g}"
        )
    return (
        f'<div class="alert{" acked" if acked else ""}" data-alert-id="{esc(a["alert_id"])}">'
        f"<b>{esc(a['kind'])}</b> · {esc(a['store'])} · since {esc(a['since'])}{facts}"
        f'<br>{esc(a["summary"])}<br><a href="{esc(a["chart"])}">chart at that time</a> · raised {esc(a["raised"])}'
        f" · {action}</div>"
    )


def visible_alerts(conn: Connection, user: User, tz: ZoneInfo, acked: bool | None = None) -> list[dict[str, Any]]:
    """The alerts this user may see (a shop sees its own), explained."""
    store = None if user.role == "admin" else user.store
    return [explain(a, tz) for a in alerts_explained(conn, store=store, acked=acked)]


def alerts_panel(conn: Connection, session: Session, tz: ZoneInfo, limit: int = 5) -> str:
    open_alerts = visible_alerts(conn, session.user, tz, acked=False)
    items = "".join(_alert_html(a, session) for a in open_alerts[:limit]) or "<p>No open alerts.</p>"
    more = f' <a href="/alerts">all alerts ({len(open_alerts)} open)</a>'
    return f'<section id="alerts"><h2>Open alerts</h2>{items}<p>{more}</p></section>'


def alerts_body(conn: Connection, session: Session, tz: ZoneInfo) -> str:
    rows = visible_alerts(conn, session.user, tz)
    open_rows = [a for a in rows if a["acked_by"] is None]
    done = [a for a in rows if a["acked_by"] is not None]
    return (
        f"<h1>Alerts</h1><h2>Open ({len(open_rows)})</h2>"
        + ("".join(_alert_html(a, session) for a in open_rows) or "<p>No open alerts.</p>")
        + f"<h2>Acknowledged ({len(done)})</h2>"
        + ("".join(_alert_html(a, session) for a in done) or "<p>None acknowledged yet.</p>")
    )


def acknowledge(conn: Connection, user: User, alert_id: str) -> bool:
    """Record the acknowledgement once; False when the alert does not exist or is not this user's to see."""
    store = alert_store(conn, alert_id)
    if store is None or not user.may_see(store):
        return False
    conn.execute(
        "INSERT INTO alert_acks (alert_id, acked_by, acked_at) VALUES (?, ?, ?) ON CONFLICT (alert_id) DO NOTHING",
        (alert_id, user.name, time.time()),
    )
    return True
