"""The hub's web dashboard and JSON API: signed-in pages, alerts, date ranges and exports.

Every page and /api/... endpoint needs a session (`shopkeeper hub add-user` creates accounts); only /login,
/healthz and the stylesheet are open. A coop admin sees every shop; a shop account sees its own shop and the
district figures, and a shop it may not see answers 404, exactly like one that does not exist. Every POST
(sign-in, sign-out, acknowledging an alert) checks a CSRF token: the session's own, or for the sign-in form a
random value that must match its SameSite=Strict cookie. Pages are built from the same data functions as the
JSON API (hub/dashboard_data.py, hub/dashboard_series.py).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from hub.auth import LoginLimiter, Session, authenticate, close_session, find_session, open_session
from hub.config import NAME_RE, HubConfig
from hub.dashboard_alerts import acknowledge, alerts_body, visible_alerts
from hub.dashboard_data import district_data, shop_categories, shop_data, status_data
from hub.dashboard_export import export_rows, to_csv, to_json
from hub.dashboard_layout import STYLESHEET, esc, page
from hub.dashboard_pages import district_body, shop_body, status_table
from hub.dashboard_time import parse_range
from hub.db import Connection, Database
from hub.queries import latest_window
from hub.refusals import health_text
from hub.web_server import BoundedHTTPServer, Request, Response, SecureHandler, text

__all__ = ["DashboardServer", "district_data", "shop_categories", "shop_data", "status_data"]
log = logging.getLogger(__name__)
SESSION_COOKIE = "hub_session"
LOGIN_COOKIE = "hub_login_csrf"
HTML = "text/html; charset=utf-8"
# Where a sign-in may send the browser back to: a path on this site only (no `//host`, no `/\\host`, no CR/LF).
SAFE_NEXT = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~?=&%+-]*")


def _json(data: Any, status: int = 200) -> Response:
    # allow_nan=False: a NaN that slipped into a figure is a 500 in the log, never invalid JSON to a client.
    return Response(status, "application/json", json.dumps(data, sort_keys=True, allow_nan=False).encode())


def _redirect(location: str, *cookies: str) -> Response:
    return Response(303, HTML, b"", [("Location", location), *(("Set-Cookie", c) for c in cookies)])


class DashboardApp:
    """Request in, response out; holds the sign-in rate limiter."""

    def __init__(self, config: HubConfig, database: Database) -> None:
        self.config, self.database = config, database
        self.tz = ZoneInfo(config.web.timezone)
        self.limiter = LoginLimiter()

    def _cookie(self, name: str, value: str, max_age: int) -> str:
        secure = "; Secure" if self.config.web.secure_cookies else ""
        return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"

    def __call__(self, request: Request) -> Response:
        if request.path == "/favicon.ico":
            return text(404, "no icon")
        if request.path == "/healthz":
            # 200 either way: a misbehaving member is named here, it is no reason to restart the hub.
            conn = self.database.connect()
            try:
                return Response(200, "text/plain; charset=utf-8", health_text(conn).encode())
            finally:
                conn.close()
        if request.path == "/static/hub.css":
            return Response(200, "text/css; charset=utf-8", STYLESHEET.encode(), [("Cache-Control", "max-age=3600")])
        conn = self.database.connect()
        try:
            if request.path == "/login":
                return self._login(conn, request)
            session = find_session(conn, request.cookies.get(SESSION_COOKIE, ""))
            if session is None:
                if request.path.startswith("/api/") or request.path == "/export":
                    return _json({"error": "sign in first"}, 401)
                return _redirect("/login?next=" + quote(request.path))
            if request.method == "POST":
                if not hmac.compare_digest(request.form.get("csrf", ""), session.csrf):
                    return text(403, "the form's CSRF token is missing or wrong: reload the page and try again")
                return self._post(conn, request, session)
            return self._get(conn, request, session)
        finally:
            conn.close()

    # -- sign-in ---------------------------------------------------------------------------------
    def _login_form(self, error: str = "", next_path: str = "/", status: int = 200, token: str = "") -> Response:
        # Keep the token a browser already holds: a second tab, or the favicon request that a browser sends on
        # its own, must not invalidate the form already on screen.
        if not re.fullmatch(r"[A-Za-z0-9_-]{32}", token):
            token = secrets.token_urlsafe(24)
        body = (
            f'<div class="login"><h1>Sign in to {esc(self.config.coop)}</h1>'
            + (f'<p class="error">{esc(error)}</p>' if error else "")
            + '<form method="post" action="/login">'
            f'<input type="hidden" name="csrf" value="{token}">'
            f'<input type="hidden" name="next" value="{esc(next_path)}">'
            '<label>account <input name="name" autocomplete="username" required></label>'
            '<label>password <input name="password" type="password" autocomplete="current-password" required></label>'
            '<button type="submit">Sign in</button></form></div>'
        )
        return Response(status, HTML, page("Sign in", body), [("Set-Cookie", self._cookie(LOGIN_COOKIE, token, 3600))])

    def _login(self, conn: Connection, request: Request) -> Response:
        next_path = request.form.get("next") or request.query.get("next") or "/"
        if not SAFE_NEXT.fullmatch(next_path):
            next_path = "/"  # never an open redirect to another site
        if request.method != "POST":
            return self._login_form(next_path=next_path, token=request.cookies.get(LOGIN_COOKIE, ""))
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not hmac.compare_digest(request.form.get("csrf", ""), cookie):
            return self._login_form("The sign-in form expired: please try again.", next_path, 403)
        name, password = request.form.get("name", "")[:64], request.form.get("password", "")[:1024]
        wait = self.limiter.blocked(name, request.address)
        if wait > 0:
            log.warning("dashboard: sign-in refused for %r from %s (rate limit)", name, request.address)
            response = self._login_form(f"Too many failed sign-ins: try again in {int(wait) + 1} s.", next_path, 429)
            response.headers.append(("Retry-After", str(int(wait) + 1)))
            return response
        user = authenticate(conn, name, password)
        if user is None:
            self.limiter.failed(name, request.address)
            return self._login_form("Wrong account or password.", next_path, 401)
        self.limiter.succeeded(name)
        lifetime = int(self.config.web.session_hours * 3600)
        token = open_session(conn, user, lifetime)
        return _redirect(next_path, self._cookie(SESSION_COOKIE, token, lifetime), self._cookie(LOGIN_COOKIE, "", 0))

    # -- signed in ---------------------------------------------------------------------------------
    def _post(self, conn: Connection, request: Request, session: Session) -> Response:
        if request.path == "/logout":
            close_session(conn, request.cookies.get(SESSION_COOKIE, ""))
            return _redirect("/login", self._cookie(SESSION_COOKIE, "", 0))
        if request.path == "/alerts/ack":
            if not acknowledge(conn, session.user, request.form.get("alert_id", "")):
                return text(404, "no such alert")
            return _redirect("/alerts")
        return text(404, "not found")

    def _range(self, conn: Connection, request: Request) -> Any:
        return parse_range(request.query, self.tz, latest_window(conn))

    def _html(self, title: str, body: str, session: Session) -> Response:
        return Response(200, HTML, page(f"{title} · {self.config.coop} hub", body, session))

    def _get(self, conn: Connection, request: Request, session: Session) -> Response:
        cfg, user, path = self.config, session.user, request.path
        if path in ("/", "/index.html"):
            return self._html(
                "District", district_body(conn, cfg, session, self._range(conn, request), self.tz), session
            )
        if path == "/alerts":
            rng = self._range(conn, request)
            csv_q, json_q = rng.query(what="alerts", format="csv"), rng.query(what="alerts", format="json")
            links = (
                f'<p class="exports">Download the alerts of {esc(rng.first_day.isoformat())} to'
                f" {esc(rng.last_day.isoformat())}:"
                f' <a class="export-csv" href="/export?{esc(csv_q)}">CSV</a>'
                f'<a class="export-json" href="/export?{esc(json_q)}">JSON</a></p>'
            )
            return self._html("Alerts", alerts_body(conn, session, self.tz) + links, session)
        if path == "/shops" and user.role == "admin":
            return self._html("Shops", status_table(conn, cfg, session, self.tz), session)
        if path == "/export":
            return self._export(conn, request, session)
        if path == "/api/status":
            data = status_data(conn, cfg)
            data["stores"] = [s for s in data["stores"] if user.may_see(s["store"])]
            if user.role != "admin":
                data.pop("counters", None)
            return _json(data)
        if path == "/api/district":
            return _json(district_data(conn, cfg, admin=user.role == "admin"))
        if path == "/api/alerts":
            return _json({"alerts": visible_alerts(conn, user, self.tz)})
        for prefix in ("/shop/", "/api/shop/"):
            if path.startswith(prefix):
                store = path[len(prefix) :].strip("/")
                if not NAME_RE.match(store) or not user.may_see(store):
                    break
                if prefix == "/api/shop/":
                    shop = shop_data(conn, cfg, store, admin=user.role == "admin")
                    return _json(shop) if shop is not None else text(404, "not found")
                body = shop_body(conn, cfg, store, self._range(conn, request), self.tz, user.role == "admin")
                if body is None:
                    break
                return self._html(store, body, session)
        return text(404, "not found")

    def _export(self, conn: Connection, request: Request, session: Session) -> Response:
        rng = self._range(conn, request)
        found = export_rows(conn, session.user, request.query, rng, self.tz)
        if found is None:
            return text(404, "nothing to export: unknown `what`, or a shop this account may not see")
        stem, columns, rows = found
        name = f"{stem}-{rng.first_day.isoformat()}-{rng.last_day.isoformat()}"
        if request.query.get("format") == "json":
            return Response(200, "application/json", to_json(columns, rows, rng))
        disposition = ("Content-Disposition", f'attachment; filename="{name}.csv"')
        return Response(200, "text/csv; charset=utf-8", to_csv(columns, rows), [disposition])


class DashboardServer:
    """Serves the dashboard on the configured address until stopped."""

    def __init__(self, config: HubConfig, database: Database) -> None:
        address = config.dashboard_address
        if address is None:
            raise ValueError("the dashboard is disabled in this configuration")
        self.config, self.database = config, database
        self.app = DashboardApp(config, database)
        handler = type(
            "Handler",
            (SecureHandler,),
            {"app": self.app, "allowed_hosts": config.allowed_hosts, "timeout": config.web.request_timeout_s},
        )
        self.httpd = BoundedHTTPServer(address, handler, config.web.max_connections, config.web.request_timeout_s)
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
