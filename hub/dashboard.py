"""The hub's web dashboard and JSON API (stdlib ThreadingHTTPServer, server-side SVG).

Pages and /api/... endpoints are built from the same data functions (hub/dashboard_data.py). The district
page shows only district aggregates (published benchmarks, which need at least k shops), one section per
window length, and each shop's status and freshness. /shop/<store> shows that shop's own released figures
(every stream and tier) against the district band of its own window length, and never another shop's own
series. An empty chart says why it is empty.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.contract import DEFAULT_WINDOW_S
from hub.charts import band_chart, share_chart
from hub.config import NAME_RE, HubConfig
from hub.dashboard_data import RECENT_WINDOWS, district_data, shop_categories, shop_data, status_data
from hub.db import Connection, Database
from hub.refusals import health_text

__all__ = ["DashboardServer", "district_data", "shop_categories", "shop_data", "status_data"]
log = logging.getLogger(__name__)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _label(window_s: int, seconds: int = 3600) -> str:
    """A window's start for a chart axis: `Mon 09h`, or `Mon 09:15` for windows shorter than an hour."""
    t = dt.datetime.fromtimestamp(window_s, tz=dt.UTC)
    return f"{WEEKDAYS[t.weekday()]} {t.hour:02d}h" if seconds >= 3600 else f"{WEEKDAYS[t.weekday()]} {t:%H:%M}"


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    s = max(0, int(now - then))
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago" if s < 7200 else f"{s // 3600} h ago"


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:0 auto;padding:0.8em;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;width:100%;font-size:0.9em}td,th{padding:4px 6px;border-bottom:1px solid #ddd;"
        "text-align:left}.wrap{overflow-x:auto}.offline,.silent{color:#b30000;font-weight:bold}"
        ".online{color:#006d2c}.card{margin:1em 0}h1{font-size:1.4em}h2{font-size:1.1em}"
        "</style></head><body>" + body + "</body></html>"
    ).encode()


def _district_section_html(section: dict[str, Any], config: HubConfig) -> str:
    """Footfall, the typical week and category shares of one window length."""
    seconds, name = section["window_seconds"], section["window"]
    rows = section["benchmarks"][-RECENT_WINDOWS:]
    reason = section["reason"] or "no benchmark yet"
    chart = band_chart(
        f"District footfall per {name} window (shops' entries; windows with at least {config.k_min} shops)",
        [_label(r["window_start_s"], seconds) for r in rows],
        [r["p25"] for r in rows],
        [r["median"] for r in rows],
        [r["p75"] for r in rows],
        empty=reason,
    )
    prof = {(p["weekday"], p["hour"]): p for p in section["weekday_hour"]}
    cells = [prof.get((d, h)) for d in range(7) for h in range(24)]
    week = band_chart(
        f"Typical week: district footfall per {name} window by weekday and hour (median over weeks)",
        [f"{WEEKDAYS[d]} {h:02d}h" for d in range(7) for h in range(24)],
        [c["p25"] if c else None for c in cells],
        [c["median"] if c else None for c in cells],
        [c["p75"] if c else None for c in cells],
        empty=reason,
    )
    why = f'<p class="reason">{html.escape(section["reason"])}</p>' if section["reason"] else ""
    return (
        f'<h2 id="w-{html.escape(name)}">{html.escape(name)} windows ({section["shops"]} shop(s))</h2>{why}'
        f'<div class="card">{chart}</div><div class="card">{week}</div>' + _district_shares_html(section, config)
    )


def district_page(conn: Connection, config: HubConfig) -> bytes:
    data = district_data(conn, config)
    sections = "".join(_district_section_html(s, config) for s in data["windows"])
    if not sections:
        sections = f'<p class="reason">{html.escape(data["reason"])}</p>'
    return _page(
        f"{config.coop} hub",
        (
            f"<h1>Cooperative {html.escape(config.coop)}: district footfall</h1>"
            + sections
            + _status_table(conn, config)
            + '<p><a href="/api/district">/api/district</a> · <a href="/api/status">/api/status</a></p>'
        ),
    )


def _ordered(categories: dict[str, Any], own: dict[str, float] | None = None) -> list[str]:
    """Categories by district median share, largest first; the shop's own extra ones and `other` last."""
    names = set(categories) | set(own or {})

    def key(name: str) -> tuple[int, float, str]:
        median = categories[name]["median"] if name in categories else (own or {}).get(name, 0.0) - 1.0
        return (name == "other", -median, name)

    return sorted(names, key=key)


def _blank(value: Any) -> str:
    return "" if value is None else str(value)


def _cents(value: float | None) -> str:
    return "-" if value is None else f"{value / 100:,.2f}"


def _district_shares_html(data: dict[str, Any], config: HubConfig) -> str:
    shares = data["categories"]
    if not shares or not shares["categories"]:
        return (
            f"<h2>Category sales shares</h2><p>No window yet with POS sales (t2) from at least {config.k_min}"
            " shops.</p>"
        )
    cats = shares["categories"]
    names = _ordered(cats)
    chart = share_chart(
        f"Category sales shares, {_label(shares['window_start_s'], shares['window_seconds'])}"
        f" ({shares['n_shops']} shops): share of revenue",
        names,
        [cats[c]["p25"] for c in names],
        [cats[c]["median"] for c in names],
        [cats[c]["p75"] for c in names],
    )
    basket = data["basket_value"]
    line = ""
    if basket:
        b = basket[-1]
        line = (
            f"<p>Average basket value, {_label(int(b['window_start_s']), int(b['window_seconds']))}"
            f" ({b['n_shops']} shops): median"
            f" {_cents(b['median'])}, p25–p75 {_cents(b['p25'])}–{_cents(b['p75'])}.</p>"
        )
    return f'<h2>Category sales shares</h2><div class="card">{chart}</div>{line}'


def _shop_shares_html(store: str, cats: dict[str, Any] | None) -> str:
    if cats is None:
        return "<h2>Category sales shares</h2><p>No complete POS sales (t2) window from this shop yet.</p>"
    district = (cats["district"] or {}).get("categories", {})
    own = cats["own"]
    names = _ordered(district, own)

    def q(name: str, key: str) -> float | None:
        return district[name][key] if name in district else None

    chart = share_chart(
        f"{store}: category sales shares, {_label(cats['window_start_s'], cats['window_seconds'])},"
        " against the district band",
        names,
        [q(c, "p25") for c in names],
        [q(c, "median") for c in names],
        [q(c, "p75") for c in names],
        own=[own.get(c) for c in names],
        own_label=store,
    )
    dv = cats["district_basket_value"]
    line = f"<p>Your average basket value: {_cents(cats['own_basket_value'])}"
    if dv:
        line += f" (district median {_cents(dv['median'])}, p25–p75 {_cents(dv['p25'])}–{_cents(dv['p75'])})"
    return f'<h2>Category sales shares</h2><div class="card">{chart}</div>{line}.</p>'


def _status_table(conn: Connection, config: HubConfig) -> str:
    now = time.time()
    data = status_data(conn, config, now)
    rows = "".join(
        f'<tr><td><a href="/shop/{html.escape(s["store"])}">{html.escape(s["store"])}</a></td>'
        f'<td class="{html.escape(s["state"])}">{html.escape(s["state"])}</td><td>{s["connection"]}</td>'
        f"<td>{_ago(now, s['last_seen_at'])}</td><td>{html.escape(s['window'] or '-')}</td>"
        f"<td>{s['last_window'] or '-'}</td>"
        f'<td class="{"silent" if s["silent"] else ""}">{"silent" if s["silent"] else "fresh"}</td>'
        f"<td>{s['missing']} in {s['open_gaps']} gap(s)</td></tr>"
        for s in data["stores"]
    )
    c = data["counters"]
    return (
        "<h2>Shops: status and freshness</h2><div class=wrap><table><tr><th>shop</th><th>status</th>"
        "<th>connection</th><th>last seen</th><th>window length</th><th>last window</th><th>freshness</th>"
        "<th>missing seq</th></tr>"
        f"{rows}</table></div><p>stored {c.get('stored', 0)}, duplicates dropped {c.get('duplicates', 0)},"
        f" rejected {c.get('rejected', 0)}</p>"
    )


def shop_page(conn: Connection, config: HubConfig, store: str) -> bytes | None:
    data = shop_data(conn, config, store)
    if data is None:
        return None
    ff = data["footfall"]

    def band(key: str) -> list[float | None]:
        return [f["district"][key] if f["district"] else None for f in ff]

    seconds, name = data["window_seconds"] or DEFAULT_WINDOW_S, data["window"] or "window"
    chart = band_chart(
        f"{store}: footfall per {name} window against the district band",
        [_label(f["window_start_s"], seconds) for f in ff],
        band("p25"),
        band("median"),
        band("p75"),
        own=[float(f["footfall"]) for f in ff],
        own_label=store,
        empty=data["reason"] or "no data yet",
    )
    why = f'<p class="reason">{html.escape(data["reason"])}</p>' if data["reason"] else ""
    esc = html.escape
    released = "".join(
        f"<tr><td>{esc(r['window_start'])}</td><td>{esc(r['stream'])}</td><td>{esc(r['tier'])}</td>"
        f"<td>{esc(r['item'])}</td><td>{_blank(r['entries'])}</td><td>{_blank(r['exits'])}</td>"
        f"<td>{_blank(r['amount'])}</td><td>{r['epsilon']}</td></tr>"
        for r in data["released"][:48]
    )
    alert_rows = (
        "".join(
            f"<li>{esc(a['kind'])}: {esc(json.dumps(a['payload'].get('window') or a['payload'].get('detail')))}</li>"
            for a in data["alerts"]
        )
        or "<li>none</li>"
    )
    st = data["status"]
    return _page(
        f"{store} · {config.coop} hub",
        (
            f'<p><a href="/">district</a></p><h1>{esc(store)}</h1>'
            f'<p>status <span class="{esc(st["state"])}">{esc(st["state"])}</span>, connection {st["connection"]},'
            f" last window {st['last_window'] or '-'}, {'silent' if st['silent'] else 'fresh'},"
            f" {st['missing']} sequence number(s) missing</p>{why}"
            f'<div class="card">{chart}</div>'
            + _shop_shares_html(store, data["categories"])
            + f"<h2>Alerts</h2><ul>{alert_rows}</ul>"
            "<h2>Your released figures (all tiers)</h2><div class=wrap><table><tr><th>window</th><th>stream</th>"
            "<th>tier</th><th>door / category</th><th>entries</th><th>exits</th><th>baskets / cents</th>"
            f"<th>epsilon</th></tr>{released}</table></div>"
            f'<p><a href="/api/shop/{esc(store)}">/api/shop/{esc(store)}</a></p>'
        ),
    )


class DashboardServer:
    """Serves the dashboard on the configured address until stopped."""

    def __init__(self, config: HubConfig, database: Database) -> None:
        address = config.dashboard_address
        if address is None:
            raise ValueError("the dashboard is disabled in this configuration")
        self.config, self.database = config, database
        handler = type("Handler", (_Handler,), {"dashboard": self})
        self.httpd = ThreadingHTTPServer(address, handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hub-dashboard", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        conn = self.database.connect()
        try:
            return self._route(conn, path.split("?", 1)[0])
        finally:
            conn.close()

    def _route(self, conn: Connection, path: str) -> tuple[int, str, bytes]:
        cfg = self.config
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", district_page(conn, cfg)
        if path == "/healthz":
            # 200 either way: a misbehaving member is named here, it is no reason to restart the hub.
            return 200, "text/plain; charset=utf-8", health_text(conn).encode()
        if path == "/api/status":
            return _json(status_data(conn, cfg))
        if path == "/api/district":
            return _json(district_data(conn, cfg))
        for prefix, builder in (("/shop/", shop_page), ("/api/shop/", shop_data)):
            if path.startswith(prefix):
                store = path[len(prefix) :].strip("/")
                if not NAME_RE.match(store):
                    break
                result = builder(conn, cfg, store)
                if result is None:
                    break
                if isinstance(result, bytes):
                    return 200, "text/html; charset=utf-8", result
                return _json(result)
        return 404, "text/plain", b"not found\n"


def _json(data: Any) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(data, sort_keys=True).encode()


class _Handler(BaseHTTPRequestHandler):
    dashboard: DashboardServer

    def do_GET(self) -> None:
        try:
            code, ctype, body = self.dashboard.respond(self.path)
        except Exception:
            log.exception("dashboard request %s failed", self.path)
            code, ctype, body = 500, "text/plain", b"internal error\n"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: " + format, *args)
