"""The district page and a shop's page, for one date range, in the coop's time zone and currency.

The district page shows only district aggregates (benchmarks need at least k_min shops) plus the open-alerts
panel; its status table lists every shop for the coop admin and only the shop's own row for a shop account.
A shop page shows that shop's own released figures against the district band, never another shop's series.
"""

from __future__ import annotations

import time
from typing import Any
from zoneinfo import ZoneInfo

from hub.auth import Session
from hub.charts import band_chart, share_chart
from hub.config import HubConfig
from hub.dashboard_alerts import alerts_panel
from hub.dashboard_data import district_data, shop_data, status_data
from hub.dashboard_layout import esc, range_form
from hub.dashboard_secagg import secagg_section
from hub.dashboard_series import district_series, shop_series
from hub.dashboard_time import TimeRange, label, money, stamp
from hub.db import Connection
from hub.sales_position import BAND_WORDS

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def freshness(shop: dict[str, Any]) -> str:
    """Honest freshness: a shop that never sent a summary is not "fresh" because its status arrived."""
    if shop.get("last_summary_at") is None:
        return "never"
    return "silent" if shop["silent"] else "fresh"


FRESHNESS_TEXT = {"never": "no summary yet", "silent": "silent", "fresh": "fresh"}


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    s = max(0, int(now - then))
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago" if s < 7200 else f"{s // 3600} h ago"


def _compare_label(rng: TimeRange, what: str) -> str:
    return f"{what}, one {rng.compare} earlier"


def _district_section(
    conn: Connection, config: HubConfig, section: dict[str, Any], rng: TimeRange, tz: ZoneInfo
) -> str:
    seconds, name = section["window_seconds"], section["window"]
    rows = district_series(conn, seconds, rng)
    span = rng.end_s - rng.start_s
    labels = [label(r["window_start_s"], tz, seconds, span) for r in rows]
    reason = section["reason"] or f"no district benchmark in this range (needs k_min = {config.k_min} shops)"
    chart = band_chart(
        f"District footfall per {name} window ({config.web.timezone})",
        labels,
        [r["p25"] for r in rows],
        [r["median"] for r in rows],
        [r["p75"] for r in rows],
        empty=reason,
        compare=[r["compare_median"] for r in rows] if rng.compare != "none" else None,
        compare_label=_compare_label(rng, "median"),
    )
    total = band_chart(
        f"District total footfall per {name} window",
        labels,
        [None] * len(rows),
        [None] * len(rows),
        [None] * len(rows),
        own=[float(r["district_total"]) if r["district_total"] is not None else None for r in rows],
        own_label="district total",
        empty=reason,
    )
    prof = {(p["weekday"], p["hour"]): p for p in section["weekday_hour"]}
    cells = [prof.get((d, h)) for d in range(7) for h in range(24)]
    week = band_chart(
        f"Typical week per {name} window (UTC, median over weeks)",
        [f"{WEEKDAYS[d]} {h:02d}h" for d in range(7) for h in range(24)],
        [c["p25"] if c else None for c in cells],
        [c["median"] if c else None for c in cells],
        [c["p75"] if c else None for c in cells],
        empty=reason,
    )
    why = f'<p class="reason">{esc(section["reason"])}</p>' if section["reason"] else ""
    why += (
        f"<p>Only windows with at least k_min = {config.k_min} shops are shown. The total is the sum over the shops"
        " in each window's benchmark; the typical week is by weekday and hour in UTC.</p>"
    )
    return (
        f'<h2 id="w-{esc(name)}">{esc(name)} windows ({section["shops"]} shop(s))</h2>{why}'
        f'<div class="card">{chart}</div><div class="card">{total}</div><div class="card">{week}</div>'
        + _district_shares(section, config, tz)
    )


def _ordered(categories: dict[str, Any], own: dict[str, float] | None = None) -> list[str]:
    """Categories by district median share, largest first; the shop's own extra ones and `other` last."""
    names = set(categories) | set(own or {})

    def key(name: str) -> tuple[int, float, str]:
        median = categories[name]["median"] if name in categories else (own or {}).get(name, 0.0) - 1.0
        return (name == "other", -median, name)

    return sorted(names, key=key)


def _district_shares(data: dict[str, Any], config: HubConfig, tz: ZoneInfo) -> str:
    if data.get("sales_note"):  # a shop account: no quartile of other shops' tier-2 values
        return f'<h2>Category sales shares</h2><p class="reason">{esc(data["sales_note"])}</p>'
    shares = data["categories"]
    if not shares or not shares["categories"]:
        return (
            "<h2>Category sales shares</h2>"
            f"<p>No window yet with POS sales (t2) from at least {config.k_min} shops.</p>"
        )
    cats = shares["categories"]
    names = _ordered(cats)
    chart = share_chart(
        f"Category sales shares, {stamp(shares['window_start_s'], tz)} ({shares['n_shops']} shops): share of revenue",
        names,
        [cats[c]["p25"] for c in names],
        [cats[c]["median"] for c in names],
        [cats[c]["p75"] for c in names],
    )
    line = ""
    if data["basket_value"]:
        b, cur = data["basket_value"][-1], config.web.currency
        line = (
            f"<p>Average basket value, {esc(stamp(int(b['window_start_s']), tz))} ({b['n_shops']} shops): median"
            f" {money(b['median'], cur)}, p25–p75 {money(b['p25'], cur)} to {money(b['p75'], cur)}.</p>"
        )
    return f'<h2>Category sales shares</h2><div class="card">{chart}</div>{line}'


def status_table(conn: Connection, config: HubConfig, session: Session, tz: ZoneInfo) -> str:
    now = time.time()
    data = status_data(conn, config, now)
    shops = [s for s in data["stores"] if session.user.may_see(s["store"])]
    rows = "".join(
        f'<tr><td><a href="/shop/{esc(s["store"])}">{esc(s["store"])}</a></td>'
        f'<td class="{esc(s["state"])}">{esc(s["state"])}</td><td>{s["connection"]}</td>'
        f"<td>{_ago(now, s['last_seen_at'])}</td><td>{esc(s['window'] or '-')}</td>"
        f"<td>{esc(stamp(s['last_window_s'], tz))}</td>"
        f'<td class="{freshness(s)}">{FRESHNESS_TEXT[freshness(s)]}</td>'
        f"<td>{s['missing']} in {s['open_gaps']} gap(s)</td></tr>"
        for s in shops
    )
    c = data["counters"]
    totals = ""
    if session.user.role == "admin":
        totals = (
            f"<p>stored {c.get('stored', 0)}, duplicates dropped {c.get('duplicates', 0)},"
            f" rejected {c.get('rejected', 0)}</p>"
        )
    return (
        "<h2>Shops: status and freshness</h2><div class=wrap><table><tr><th>shop</th><th>status</th>"
        "<th>connection</th><th>last seen</th><th>window length</th><th>last window</th><th>freshness</th>"
        f"<th>missing seq</th></tr>{rows}</table></div>{totals}"
    )


def district_body(conn: Connection, config: HubConfig, session: Session, rng: TimeRange, tz: ZoneInfo) -> str:
    data = district_data(conn, config, admin=session.user.role == "admin")
    sections = "".join(_district_section(conn, config, s, rng, tz) for s in data["windows"])
    if not sections:
        sections = f'<p class="reason">{esc(data["reason"])}</p>'
    return (
        f"<h1>Cooperative {esc(config.coop)}: district footfall</h1>"
        + range_form("/", rng, config.web.timezone, {"what": "district"})
        + alerts_panel(conn, session, tz)
        + sections
        + secagg_section(conn, rng, tz)
        + status_table(conn, config, session, tz)
    )


def _positions(cats: dict[str, Any]) -> str:
    """The shop's own band per category and for its basket value, in words (hub/sales_position.py)."""
    position = cats.get("position")
    if not position:
        return "<p>No district position yet: fewer than k_min shops reported sales in this window.</p>"
    items = [
        f"<li>{esc(name)}: your share is {BAND_WORDS[p['band']]} ({p['n_shops']} shops)</li>"
        for name, p in position["categories"].items()
    ]
    if position["basket_value"]:
        b = position["basket_value"]
        items.append(f"<li>average basket value: {BAND_WORDS[b['band']]} ({b['n_shops']} shops)</li>")
    return f'<ul class="positions">{"".join(items)}</ul>'


def _shop_shares(store: str, cats: dict[str, Any] | None, currency: str, tz: ZoneInfo) -> str:
    if cats is None:
        return "<h2>Category sales shares</h2><p>No complete POS sales (t2) window from this shop yet.</p>"
    district = (cats["district"] or {}).get("categories", {})
    own = cats["own"]
    names = _ordered(district, own)

    def q(name: str, key: str) -> float | None:
        return district[name][key] if name in district else None

    against = ", against the district band" if district else ""
    chart = share_chart(
        f"{store}: category sales shares, {stamp(cats['window_start_s'], tz)}{against}",
        names,
        [q(c, "p25") for c in names],
        [q(c, "median") for c in names],
        [q(c, "p75") for c in names],
        own=[own.get(c) for c in names],
        own_label=store,
    )
    dv = cats["district_basket_value"]
    line = f"<p>Your average basket value: {money(cats['own_basket_value'], currency)}"
    if dv:
        line += (
            f" (district median {money(dv['median'], currency)}, p25–p75 {money(dv['p25'], currency)} to"
            f" {money(dv['p75'], currency)})"
        )
    return f'<h2>Category sales shares</h2><div class="card">{chart}</div>{line}.</p>{_positions(cats)}'


def _amount(row: dict[str, Any], currency: str) -> str:
    if row["amount"] is None:
        return ""
    return money(row["amount"], currency) if "revenue" in str(row["stream"]) else str(row["amount"])


def shop_body(
    conn: Connection, config: HubConfig, store: str, rng: TimeRange, tz: ZoneInfo, admin: bool = True
) -> str | None:
    data = shop_data(conn, config, store, admin)
    if data is None:
        return None
    seconds, name = data["window_seconds"], data["window"] or "window"
    rows = shop_series(conn, store, seconds, rng) if seconds else []
    span = rng.end_s - rng.start_s
    chart = band_chart(
        f"{store}: footfall per {name} window vs the district ({config.web.timezone})",
        [label(r["window_start_s"], tz, int(seconds or 3600), span) for r in rows],
        [r["p25"] for r in rows],
        [r["median"] for r in rows],
        [r["p75"] for r in rows],
        own=[float(r["footfall"]) for r in rows],
        own_label=store,
        empty=data["reason"] or "no complete window from this shop in this range",
        compare=[r["compare_footfall"] for r in rows] if rng.compare != "none" else None,
        compare_label=_compare_label(rng, store),
    )
    st, cur = data["status"], config.web.currency
    released = "".join(
        f"<tr><td>{esc(r['window_start'])}</td><td>{esc(r['stream'])}</td><td>{esc(r['tier'])}</td>"
        f"<td>{esc(r['item'])}</td><td>{'' if r['entries'] is None else r['entries']}</td>"
        f"<td>{'' if r['exits'] is None else r['exits']}</td><td>{esc(_amount(r, cur))}</td>"
        f"<td>{r['epsilon']}</td></tr>"
        for r in data["released"][:48]
    )
    why = f'<p class="reason">{esc(data["reason"])}</p>' if data["reason"] else ""
    fresh = freshness(st)
    return (
        f"<h1>{esc(store)}</h1>"
        f'<p>status <span class="{esc(st["state"])}">{esc(st["state"])}</span>, connection {st["connection"]},'
        f' last window {esc(stamp(st["last_window_s"], tz))}, <span class="{fresh}">{FRESHNESS_TEXT[fresh]}</span>,'
        f" {st['missing']} sequence number(s) missing</p>{why}"
        + range_form(f"/shop/{store}", rng, config.web.timezone, {"what": "shop", "store": store})
        + f'<div class="card">{chart}</div>'
        + _shop_shares(store, data["categories"], cur, tz)
        + '<p><a href="/alerts">this shop\'s alerts</a></p>'
        "<h2>Your released figures (all tiers, newest first)</h2><div class=wrap><table><tr><th>window</th>"
        "<th>stream</th><th>tier</th><th>door / category</th><th>entries</th><th>exits</th>"
        f"<th>baskets / revenue</th><th>epsilon</th></tr>{released}</table></div>"
    )
