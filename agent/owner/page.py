"""The owner's page as HTML: every value escaped, no script, one small stylesheet, SVG plots."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from agent.config import AgentConfig
from agent.coop.district import my_shop_vs_district
from agent.forecast import words as forecast_words
from agent.owner import contributions, figures, sensors, sent
from agent.owner.forecast_html import forecast_html
from agent.owner.localtime import DAYS, LocalZone, money
from agent.owner.requests_html import requests_html
from agent.owner.svg import COLOURS, bars
from agent.store import Store
from agent.store import licensing as licensing_sql

STYLE = (
    # overflow-wrap: a device path or an error text without spaces must not widen the page on a phone
    "body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:0 .8rem;color:#222;"
    "overflow-wrap:anywhere}"
    "h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.15rem .5rem;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.scroll{overflow-x:auto}"
    ".chart{width:100%;height:auto;max-height:16rem}.key i{display:inline-block;width:.8em;height:.8em;"
    "margin:0 .2em 0 .8em}.state-working{color:#276227}.state-refusing,.state-stopped,.state-not-connected,"
    ".state-refused{color:#a11;font-weight:bold}.state-silent,.state-pending{color:#8a5a00}"
    "li{margin:.25rem 0}.small{color:#555;font-size:.9rem}nav a{margin-right:.8rem}"
    "form.inline{display:inline}button{font:inherit}"
    + "".join(f".c{i}{{background:{c}}}" for i, c in enumerate(COLOURS))
)


def document(title: str, body: str) -> bytes:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><link rel="stylesheet" href="/style.css"></head>'
        f"<body>{body}</body></html>"
    ).encode()


def _table(head: list[str], rows: list[list[str]], attrs: list[str] | None = None) -> str:
    """An HTML table from already escaped cells; `attrs` adds per-row data attributes (for scripts and tests)."""
    attrs = attrs or [""] * len(rows)
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(f"<tr{a}>{''.join(f'<td>{c}</td>' for c in r)}</tr>" for r, a in zip(rows, attrs, strict=True))
    return f'<div class="scroll"><table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>'


def _period_html(p: figures.Period, title: str, zone: LocalZone, hourly: bool) -> str:
    out = [f'<h2 id="{escape(title.lower().replace(" ", "-"))}">{escape(title)}</h2>']
    totals = p.door_totals()
    occupancy = p.occupancy_by_hour()
    summary = ", ".join(f"{escape(d)} door: {e} in, {x} out" for d, (e, x) in sorted(totals.items()))
    out.append(f"<p>Exact figures, from this box only: {summary or 'no door counts yet'}.")
    if hourly and occupancy:
        out.append(f" Inside now, by the counts: about {max(0, occupancy[-1][1])}.")
    out.append(
        f" Sales: {p.baskets} baskets, {escape(money(p.revenue_cents, p.currency))}"
        + (f"; {p.refunds} refunds or voids ({escape(money(p.refunds_cents, p.currency))})" if p.refunds else "")
        + ".</p>"
    )
    if p.waiting_for_clock:
        out.append(f"<p>{p.waiting_for_clock} readings wait for the clock to be synchronised and are not shown.</p>")
    if hourly:
        hours = sorted({r.hour for r in p.door_hours} | set(p.sales_by_hour))
        doors = sorted(totals)
        cells = {(r.door, r.hour): r for r in p.door_hours}
        labels = [f"{h:%H}" for h in hours]
        out.append(
            bars(
                f"Entries per hour ({zone.name})",
                labels,
                {d: [cells[(d, h)].entries if (d, h) in cells else 0 for h in hours] for d in doors},
            )
        )
        rows, attrs = [], []
        occ = dict(occupancy)
        for h in hours:
            for d in doors:
                c = cells.get((d, h))
                e, x = (c.entries, c.exits) if c else (0, 0)
                rows.append([f"{h:%H:%M}", escape(d), str(e), str(x), str(occ.get(h, "")) if d == doors[-1] else ""])
                attrs.append(
                    f' class="door-hour" data-hour="{h:%H:%M}" data-door="{escape(d)}" data-in="{e}" data-out="{x}"'
                )
        out.append(_table([f"hour ({escape(zone.name)})", "door", "in", "out", "inside after"], rows, attrs))
        if p.sales_by_hour:
            sh = sorted(p.sales_by_hour)
            out.append(
                bars(
                    f"Baskets per hour ({zone.name})",
                    [f"{h:%H}" for h in sh],
                    {"baskets": [p.sales_by_hour[h][0] for h in sh]},
                )
            )
    else:
        days = p.by_day(zone)
        rows = [
            [f"{DAYS[d.weekday()]} {d:%d %b}", str(e), str(x), str(b), escape(money(c, p.currency))]
            for d, e, x, b, c in days
        ]
        out.append(
            bars(
                "Entries per day",
                [f"{DAYS[d.weekday()][:3]}" for d, *_ in days],
                {"in": [r[1] for r in days], "out": [r[2] for r in days]},
            )
        )
        out.append(_table(["day", "in", "out", "baskets", "sales"], rows))
    if p.categories:
        rows = [
            [escape(c.category), str(c.baskets), str(c.items), escape(money(c.revenue_cents, p.currency))]
            for c in p.categories
        ]
        attrs = [
            f' class="category" data-category="{escape(c.category)}" data-baskets="{c.baskets}"'
            f' data-cents="{c.revenue_cents}"'
            for c in p.categories
        ]
        out.append(_table(["category", "baskets", "items", "sales"], rows, attrs))
        out.append(
            bars(
                "Sales per category", [c.category for c in p.categories], {"baskets": [c.baskets for c in p.categories]}
            )
        )
    return "".join(out)


def gather(store: Store, config: AgentConfig, zone: LocalZone, now_ns: int) -> dict[str, Any]:
    """Everything the page shows, read once from SQLite."""
    conn = store.conn()
    states, agent_state = sensors.sensor_states(conn, now_ns, zone)
    day = figures.today(conn, zone, now_ns)
    return {
        "now": zone.clock(now_ns),
        "sensors": states,
        "agent": agent_state,
        "today": day,
        "week": figures.this_week(conn, zone, now_ns),
        "sent": sent.summaries(conn, zone, day.currency),
        "status_messages": sent.status_messages(conn, zone),
        "budget": sent.budget(config),
        "district": my_shop_vs_district(store, limit=24),
        "queries": licensing_sql.queries(conn),
        "forecast": forecast_words.report(conn, zone, now_ns),
        "rounds": contributions.contributions(conn, zone),
    }


def render(data: dict[str, Any], config: AgentConfig, zone: LocalZone, csrf: str, signed_in: bool) -> bytes:
    """The whole page; `csrf` goes into every form."""
    z = escape(zone.name)
    parts = [
        f'<h1>{escape(config.store)} <span class="small">({escape(config.coop)} coop)</span></h1>',
        f'<p class="small">Now: {escape(data["now"])} ({z}); all times on this page are {z}. '
        f"{escape(data['agent'][:1].upper() + data['agent'][1:])}.</p>",
        '<nav><a href="#sensors">Sensors</a><a href="#today">Today</a><a href="#forecast">Forecast</a>'
        '<a href="#this-week">This week</a>'
        '<a href="#what-left">What left the shop</a><a href="#privacy">Privacy</a><a href="#district">District</a>'
        '<a href="#data-requests">Data requests</a><a href="#export">Export</a></nav>',
    ]
    if signed_in:
        parts.append(
            '<form class="inline" method="post" action="/logout">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            "<button>Sign out</button></form>"
        )
    parts.append('<h2 id="sensors">Sensors and feeds</h2><ul>')
    for s in data["sensors"] or [{"state": "unknown", "text": "no sensors or feeds are configured", "name": ""}]:
        parts.append(
            f'<li class="sensor state-{escape(s["state"].replace(" ", "-"))}" data-driver="{escape(s["name"])}"'
            f' data-state="{escape(s["state"])}"><b>{escape(s["state"])}</b> \u2013 {escape(s["text"])}</li>'
        )
    parts.append("</ul>")
    parts.append(_period_html(data["today"], "Today", zone, hourly=True))
    parts.append(forecast_html(data["forecast"], data["today"].currency))
    parts.append(_period_html(data["week"], "This week", zone, hourly=False))
    parts.append(_sent_html(data))
    parts.append(_budget_html(data["budget"]))
    parts.append(_district_html(data["district"]))
    parts.append(_rounds_html(data["rounds"]))
    parts.append(requests_html(data.get("queries", []), csrf, signed_in, config.licensing is not None))
    parts.append(
        '<h2 id="export">Export for your accountant</h2><p>Your own exact data as CSV (it never leaves this box'
        ' unless you download it): <a href="/export/sales.csv">sales, one line per item, this week</a> \u00b7 '
        '<a href="/export/footfall.csv">door counts per hour, this week</a>. Add <code>?from=2026-11-01&amp;'
        f"to=2026-12-01</code> to the address for other dates (times in {z}).</p>"
    )
    return document(f"{config.store}: your shop", "".join(parts))


def _sent_html(data: dict[str, Any]) -> str:
    items = data["sent"]
    delivered = sum(1 for m in items if m["state"] == "delivered")
    out = [
        '<h2 id="what-left">What left the shop</h2>',
        f"<p>Every message this box sent to the coop, newest first: {len(items)} summaries ({delivered} delivered,"
        f" {len(items) - delivered} still here) and {len(data['status_messages'])} status messages. Each summary"
        " carries"
        " noise drawn once on this box; the exact figures above never leave it.</p>",
        '<ol class="sent-list" reversed>',
    ]
    for m in items:
        out.append(
            f'<li class="sent state-{escape(m["state"])}" data-msg-id="{escape(m["msg_id"])}"'
            f' data-topic="{escape(m["topic"])}" data-values="{escape(json.dumps(m["values"], sort_keys=True))}">'
            f'<b>{escape(m["window"])}</b>, {escape(m["text"])}. <span class="small">{escape(m["cost"])};'
            f" {escape(m['window_total'])}; {escape(m['state_text'])}{'; sent late' if m['late'] else ''}.</span></li>"
        )
    out.append("</ol><h3>Status messages (kept by the broker, shown to coop members)</h3><ul>")
    for s in data["status_messages"]:
        out.append(
            f'<li class="status-message" data-topic="{escape(s["topic"])}" data-payload="{escape(s["payload"])}">'
            f"{escape(s['text'])}</li>"
        )
    out.append("</ul>")
    return "".join(out)


def _rounds_html(rounds: list[dict[str, Any]]) -> str:
    if not rounds:
        return ""
    items = "".join(
        f'<li class="round state-{escape(r["state"])}" data-round="{escape(r["round_id"])}">'
        f'{escape(r["text"][:1].upper() + r["text"][1:])}. <span class="small">{escape(r["cost"])}.</span></li>'
        for r in rounds
    )
    return (
        '<h2 id="district-totals">Secure district totals</h2><p>Rounds in which this box added its exact figures,'
        " masked so that the coop's hub can read only the total over many shops (with noise added once for the"
        f" district), never yours:</p><ul>{items}</ul>"
    )


def _budget_html(b: dict[str, Any]) -> str:
    units = "; ".join(f"one {escape(u)} costs at most \u03b5 {escape(e)}" for u, e in b["units"].items())
    people = "".join(f"<li>{escape(who)}: \u03b5 {escape(eps)} {escape(when)}</li>" for who, eps, when in b["people"])
    return (
        '<h2 id="privacy">Privacy budget</h2>'
        f"<p>Each window may spend at most \u03b5 {escape(b['budget'])} on any one door event or basket; {units}."
        " \u03b5 (epsilon) measures how much one passage or one sale can change what the coop sees: at \u03b5 1,"
        " anyone's odds about a single passage change by at most a factor of e (about 2.7). A person is several"
        " passages and sales, so their figure adds up:</p>"
        f'<ul>{people}</ul><p class="small">These are upper bounds (docs/privacy.md explains them).</p>'
        + (
            f"<p>Everything that ever touches one window together (these summaries and the data requests you"
            f" answer) may spend at most \u03b5 {escape(b['lifetime'])} on it, for the life of this box.</p>"
            if b.get("lifetime", b["budget"]) != b["budget"]
            else ""
        )
    )


def _district_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<h2 id="district">District</h2><p>The coop has sent no district comparison yet.</p>'
    table = [
        [escape(r["window"]), "\u2013" if r["mine"] is None else str(r["mine"]),
         f"{r['district_p25']:.0f} / {r['district_median']:.0f} / {r['district_p75']:.0f}", str(r["n_shops"]),
         escape(r["position"] or "")]
        for r in rows
    ]  # fmt: skip
    return (
        '<h2 id="district">District</h2><p>Your released (noisy) footfall next to the district\'s middle half,'
        " as the coop's hub computed it from released values only.</p>"
        + _table(["window (UTC)", "yours", "district p25 / median / p75", "shops", "you are"], table)
    )
