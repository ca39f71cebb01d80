"""The page frame every dashboard page shares: stylesheet, navigation, the sign-out form, the range picker.

All text is escaped here or by the caller with html.escape; no page carries a script (the CSP forbids it),
so the range picker is a plain GET form and every action is a POST form with the session's CSRF token.
"""

from __future__ import annotations

import html
from typing import Any

from hub.auth import Session
from hub.dashboard_time import COMPARISONS, RANGES, TimeRange

esc = html.escape

# Served as /static/hub.css so the CSP can say style-src 'self' (no inline styles).
STYLESHEET = """
body{font-family:system-ui,sans-serif;margin:0 auto;padding:0.8em;max-width:1100px;color:#222}
table{border-collapse:collapse;width:100%;font-size:0.9em}td,th{padding:4px 6px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}.wrap{overflow-x:auto}.offline,.silent,.never{color:#b30000;font-weight:bold}
.online,.fresh{color:#006d2c}.card{margin:1em 0}h1{font-size:1.4em}h2{font-size:1.1em}
.chart{width:100%;height:auto;max-width:1080px}
nav{display:flex;flex-wrap:wrap;gap:0.6em 1.2em;align-items:center;border-bottom:1px solid #ddd;padding-bottom:0.5em}
nav .who{margin-left:auto;color:#555}nav form{display:inline}
form.range{display:flex;flex-wrap:wrap;gap:0.5em;align-items:end;margin:0.8em 0}
form.range label{display:flex;flex-direction:column;font-size:0.85em}
input,select,button{font-size:1em;padding:4px 6px}
.alert{border-left:4px solid #b30000;padding:0.3em 0.7em;margin:0.5em 0;background:#fff5f5}
.alert.acked{border-left-color:#999;background:#f6f6f6}
.login{max-width:22em;margin:3em auto}.login label{display:block;margin:0.6em 0}.login input{width:100%}
.error{color:#b30000}.exports a{margin-right:1em}
@media (max-width:600px){body{padding:0.4em}td,th{padding:3px 4px;font-size:0.85em}h1{font-size:1.2em}
nav .who{margin-left:0;width:100%}}
"""


def csrf_field(session: Session) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(session.csrf)}">'


def page(title: str, body: str, session: Session | None = None) -> bytes:
    nav = ""
    if session is not None:
        user = session.user
        links = ['<a href="/">District</a>', '<a href="/alerts">Alerts</a>']
        if user.role == "admin":
            links.append('<a href="/shops">Shops</a>')
        elif user.store:
            links.append(f'<a href="/shop/{esc(user.store)}">My shop</a>')
        role = "coop admin" if user.role == "admin" else f"shop {user.store}"
        nav = (
            "<nav>" + "".join(links) + f'<span class="who">signed in as {esc(user.name)} ({esc(role)})</span>'
            f'<form method="post" action="/logout">{csrf_field(session)}<button type="submit">Sign out</button>'
            "</form></nav>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f'<title>{esc(title)}</title><link rel="stylesheet" href="/static/hub.css"></head><body>'
        + nav
        + body
        + "</body></html>"
    ).encode()


def range_form(action: str, rng: TimeRange, tz_name: str, export: dict[str, str] | None = None) -> str:
    """The date-range picker (GET form) and, when `export` names what the page shows, its CSV and JSON links."""

    def options(choices: Any, chosen: str) -> str:
        return "".join(
            f'<option value="{esc(c)}"{" selected" if c == chosen else ""}>{esc(c)}</option>' for c in choices
        )

    custom = rng.kind == "custom"
    form = (
        f'<form class="range" method="get" action="{esc(action)}">'
        f'<label>range<select name="range">{options([*RANGES, "custom"], rng.kind)}</select></label>'
        f'<label>last day<input type="date" name="date" value="{esc(rng.last_day.isoformat())}"></label>'
        f'<label>custom from<input type="date" name="from" value="{esc(rng.first_day.isoformat() if custom else "")}">'
        "</label>"
        f'<label>custom to<input type="date" name="to" value="{esc(rng.last_day.isoformat() if custom else "")}">'
        "</label>"
        f'<label>compare with<select name="compare">{options(COMPARISONS, rng.compare)}</select></label>'
        '<button type="submit">Show</button></form>'
        f"<p>{esc(rng.first_day.isoformat())} to {esc(rng.last_day.isoformat())} ({esc(tz_name)})"
        + ("" if rng.compare == "none" else f", compared with one {esc(rng.compare)} earlier")
        + "</p>"
    )
    if export:
        csv_q, json_q = rng.query(**export, format="csv"), rng.query(**export, format="json")
        form += (
            f'<p class="exports">Download: <a class="export-csv" href="/export?{esc(csv_q)}">CSV</a>'
            f'<a class="export-json" href="/export?{esc(json_q)}">JSON</a></p>'
        )
    return form
