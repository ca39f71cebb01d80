"""The owner page's HTTP server: loopback by default; beyond the box only after sign-in with the owner's password.

Sign-in hygiene: the Host header must name this box (a DNS-rebinding page cannot pose as it); sessions
are random 256-bit tokens in HttpOnly, SameSite=Strict cookies; every form carries a CSRF token bound
to the session (or, for the sign-in form, to a short-lived cookie); failed sign-ins are rate-limited
per peer and overall; every answer carries a strict CSP, X-Frame-Options, nosniff and no-referrer.
One request at a time, with a socket timeout: the page reads SQLite through one connection.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import logging
import secrets
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from agent.config import AgentConfig
from agent.licensing.desk import decide
from agent.owner import figures, page
from agent.owner.localtime import LocalZone
from agent.owner.settings import OwnerPageSettings, is_loopback, verify_password
from agent.store import Store

log = logging.getLogger(__name__)

SESSION_COOKIE, LOGIN_COOKIE = "shopkeeper_owner", "shopkeeper_login"
SESSION_S = 12 * 3600
FAILURES_PER_PEER, FAILURES_OVERALL, FAILURE_WINDOW_S = 5, 30, 300.0
MAX_BODY = 4096
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclasses.dataclass
class Session:
    csrf: str
    expires: float


class Gate:
    """Sessions, CSRF tokens and the sign-in rate limit; the HTTP handler asks it, it does no I/O."""

    def __init__(self, password_hash: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.password_hash = password_hash
        self.monotonic = monotonic
        self.sessions: dict[str, Session] = {}
        self.failures: dict[str, deque[float]] = {}
        self.all_failures: deque[float] = deque()
        self.lock = threading.Lock()

    def session(self, token: str | None) -> Session | None:
        with self.lock:
            found = self.sessions.get(token or "")
            if found is not None and found.expires < self.monotonic():
                del self.sessions[token or ""]
                return None
            return found

    def retry_after(self, peer: str) -> int:
        """Seconds until `peer` may try to sign in again (0: now)."""
        now = self.monotonic()
        with self.lock:
            waits = []
            for times, limit in (
                (self.failures.get(peer, deque()), FAILURES_PER_PEER),
                (self.all_failures, FAILURES_OVERALL),
            ):
                while times and times[0] < now - FAILURE_WINDOW_S:
                    times.popleft()
                if len(times) >= limit:
                    waits.append(int(times[0] + FAILURE_WINDOW_S - now) + 1)
            return max(waits, default=0)

    def sign_in(self, peer: str, password: str) -> str | None:
        """A new session token when the password is right; a failure is counted."""
        if self.password_hash and verify_password(password, self.password_hash):
            token = secrets.token_urlsafe(32)
            with self.lock:
                now = self.monotonic()  # forget expired sessions, so the table stays as small as the sign-ins
                self.sessions = {t: s for t, s in self.sessions.items() if s.expires >= now}
                self.sessions[token] = Session(secrets.token_urlsafe(32), self.monotonic() + SESSION_S)
                self.failures.pop(peer, None)
            return token
        with self.lock:
            now = self.monotonic()
            if len(self.failures) > 1000:  # many peers guessing: keep the table bounded (the overall limit still holds)
                self.failures = {p: t for p, t in self.failures.items() if t and t[-1] >= now - FAILURE_WINDOW_S}
            self.failures.setdefault(peer, deque()).append(now)
            self.all_failures.append(now)
        return None

    def sign_out(self, token: str | None) -> None:
        with self.lock:
            self.sessions.pop(token or "", None)


def host_allowed(host_header: str, settings: OwnerPageSettings) -> bool:
    """True when the Host header names this box: an IP literal, localhost, its host name, or a listed name.

    A DNS-rebinding attack needs a domain name that resolves to this box; refusing any other name stops it.
    """
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":")[0]
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    names = {"localhost", socket.gethostname().lower(), f"{socket.gethostname().lower()}.local"}
    return host in names | {h.lower() for h in settings.allowed_hosts}


class OwnerPageServer:
    """Serves the owner page from the agent's own store, in one background thread."""

    def __init__(
        self, store: Store, config: AgentConfig, settings: OwnerPageSettings, now_ns: Callable[[], int]
    ) -> None:
        self.store, self.config, self.settings, self.now_ns = store, config, settings, now_ns
        self.zone = LocalZone(settings.timezone)
        self.gate = Gate(settings.password_hash)
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        server_class = type("OwnerHTTPServer", (HTTPServer,), {"address_family": family})
        self.server = server_class((settings.host, settings.port), _handler_for(self))
        self.thread = threading.Thread(target=self.server.serve_forever, name="owner-page", daemon=True)
        if settings.lan and not settings.password_hash:
            log.warning(
                "owner page listens on %s:%d but no password is set: it answers this box only"
                " (set one with `shopkeeper owner-password`)", settings.host, self.port,
            )  # fmt: skip

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()
        log.info("owner page on http://%s:%d/", self.settings.host, self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def export(self, path: str, query: dict[str, list[str]]) -> tuple[str, str]:
        """(file name, CSV text) for one export; dates in the query are local days, `to` exclusive."""
        import datetime as dt

        now = self.now_ns()
        start, end = self.zone.week_start(now), self.zone.day_start(now, -1)
        if "from" in query:
            start = dt.datetime.combine(dt.date.fromisoformat(query["from"][0]), dt.time(0), tzinfo=self.zone.tz)
        if "to" in query:
            end = dt.datetime.combine(dt.date.fromisoformat(query["to"][0]), dt.time(0), tzinfo=self.zone.tz)
        conn = self.store.conn()
        maker = figures.sales_csv if path == "/export/sales.csv" else figures.footfall_csv
        name = f"{self.config.store}-{path.rsplit('/', 1)[1][:-4]}-{start:%Y-%m-%d}-to-{end:%Y-%m-%d}.csv"
        return name, maker(conn, self.zone, start, end)


def _cookies(header: str | None) -> dict[str, str]:
    out = {}
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out


LOGIN_FORM = (
    "<h1>Sign in</h1><p>This page shows your shop's exact figures. From another device it needs the owner's"
    " password (set with <code>shopkeeper owner-password</code>).</p>{error}"
    '<form method="post" action="/login"><input type="hidden" name="csrf" value="{csrf}">'
    '<label>Password <input type="password" name="password" autocomplete="current-password" required></label> '
    "<button>Sign in</button></form>"
)


def _handler_for(owner: OwnerPageServer) -> type[BaseHTTPRequestHandler]:
    settings = owner.settings

    class Handler(BaseHTTPRequestHandler):
        server_version = "shopkeeper-owner"
        sys_version = ""
        timeout = 10  # a slow client cannot hold the one serving thread for long

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("owner page: " + format, *args)

        def _send(self, code: int, body: bytes, kind: str = "text/html; charset=utf-8", **extra: str) -> None:
            self.send_response(code)
            for name, value in {**HEADERS, "Content-Type": kind, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            for name, value in extra.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _text(self, code: int, title: str, text: str, **extra: str) -> None:
            from html import escape

            self._send(code, page.document(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"), **extra)

        def _cookie(self, name: str, value: str, max_age: int, path: str = "/") -> str:
            secure = "; Secure" if settings.secure_cookie else ""
            return f"{name}={value}; Max-Age={max_age}; Path={path}; HttpOnly; SameSite=Strict{secure}"

        def _admitted(self) -> bool:
            """Host checked; a peer beyond this box refused while no password is set."""
            if not host_allowed(self.headers.get("Host", ""), settings):
                self._text(400, "Unexpected address", "Open this page by the box's address or name.")
                return False
            if not settings.password_hash and not is_loopback(self.client_address[0]):
                self._text(
                    403, "Not from here",
                    "The owner page answers this box only until the owner sets a password: run"
                    " `shopkeeper owner-password` on the box and add the line it prints to [owner_page].",
                )  # fmt: skip
                return False
            return True

        def _session(self) -> tuple[str | None, Session | None]:
            token = _cookies(self.headers.get("Cookie")).get(SESSION_COOKIE)
            return token, owner.gate.session(token)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            if not self._admitted():
                return
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/style.css":
                self._send(200, page.STYLE.encode(), "text/css; charset=utf-8")
                return
            _token, session = self._session()
            if url.path == "/login":
                self._login_form("")
                return
            if settings.password_hash and session is None:
                self._send(303, b"", Location="/login")
                return
            try:
                if url.path == "/":
                    now = owner.now_ns()
                    data = page.gather(owner.store, owner.config, owner.zone, now)
                    body = page.render(data, owner.config, owner.zone, session.csrf if session else "", bool(session))
                    self._send(200, body)
                elif url.path in ("/export/sales.csv", "/export/footfall.csv"):
                    name, text = owner.export(url.path, urllib.parse.parse_qs(url.query))
                    self._send(200, text.encode(), "text/csv; charset=utf-8",
                               Content_Disposition=f'attachment; filename="{name}"')  # fmt: skip
                else:
                    self._text(404, "Not found", "Try the main page at /.")
            except ValueError as exc:  # a bad date in an export address
                self._text(400, "Bad request", str(exc))
            except Exception:  # a bug in the page must never take the agent down
                log.exception("owner page failed")
                self._text(500, "Error", "The page failed; the agent log says why.")

        def _login_form(self, error: str, code: int = 200) -> None:
            from html import escape

            csrf = secrets.token_urlsafe(32)
            form = LOGIN_FORM.format(csrf=csrf, error=f'<p class="state-refused">{escape(error)}</p>' if error else "")
            self._send(code, page.document("Sign in", form), Set_Cookie=self._cookie(LOGIN_COOKIE, csrf, 600, "/login"))

        def _form(self) -> dict[str, str] | None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._text(413, "Too large", "That form is too large.")
                return None
            fields = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            return {k: v[0] for k, v in fields.items()}

        def do_POST(self) -> None:
            if not self._admitted():
                return
            form = self._form()
            if form is None:
                return
            cookies = _cookies(self.headers.get("Cookie"))
            path = urllib.parse.urlsplit(self.path).path
            if path == "/login":
                expected = cookies.get(LOGIN_COOKIE, "")
                if not expected or not hmac.compare_digest(expected, form.get("csrf", "")):
                    self._text(403, "Form expired", "Reload the sign-in page and try again.")
                    return
                peer = self.client_address[0]
                wait = owner.gate.retry_after(peer)
                if wait:
                    self._text(429, "Too many tries", f"Wait {wait} s before trying again.", Retry_After=str(wait))
                    return
                token = owner.gate.sign_in(peer, form.get("password", ""))
                if token is None:
                    log.warning("owner page: failed sign-in from %s", peer)
                    self._login_form("Wrong password.", 401)
                    return
                self._send(303, b"", Location="/", Set_Cookie=self._cookie(SESSION_COOKIE, token, SESSION_S))
            elif path == "/logout":
                token, session = self._session()
                if session is None or not hmac.compare_digest(session.csrf, form.get("csrf", "")):
                    self._text(403, "Form expired", "Reload the page and try again.")
                    return
                owner.gate.sign_out(token)
                self._send(303, b"", Location="/login", Set_Cookie=self._cookie(SESSION_COOKIE, "", 0))
            elif path in ("/queries/approve", "/queries/refuse"):
                # The owner's decision on a licensing query: only a signed-in session with its CSRF token may
                # make it (without a password the page has no session, so a page on another site cannot either).
                _token, session = self._session()
                if session is None or not hmac.compare_digest(session.csrf, form.get("csrf", "")):
                    self._text(403, "Form expired", "Sign in, reload the page and try again.")
                    return
                outcome = decide(
                    owner.store, form.get("query_id", ""), path.endswith("approve"), owner.now_ns(),
                    "the shop's owner said no",
                )  # fmt: skip
                if outcome not in ("approved", "refused"):
                    self._text(409, "Not decided", outcome)
                    return
                log.info("owner page: query %s %s by the owner", form.get("query_id", ""), outcome)
                self._send(303, b"", Location="/#data-requests")
            else:
                self._text(404, "Not found", "Nothing to send here.")

    return Handler
