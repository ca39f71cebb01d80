"""The dashboard's HTTP server: bounded connections, slow clients dropped, security headers, Host checked.

A plain ThreadingHTTPServer starts one thread per connection and waits forever for a client that sends one
byte a minute (issue 12: 200 slow connections took the hub from 15 to 214 threads). Here a semaphore caps the
connections being served (over the cap a client gets 503 at once, without a thread), each socket read times
out, and a watchdog closes any connection that has not delivered its whole request within the timeout, so a
client trickling bytes cannot hold a slot either. Every response carries the headers a browser expects, and a
request whose Host is not the configured dashboard host is refused (DNS rebinding).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)
MAX_BODY = 8192  # the dashboard's forms are a few fields
# No script at all, styles only from our own stylesheet, nothing framed, forms post only to us.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    cookies: dict[str, str]
    address: str
    host: str


@dataclasses.dataclass
class Response:
    status: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)


App = Callable[[Request], Response]


def text(status: int, message: str) -> Response:
    return Response(status, "text/plain; charset=utf-8", (message + "\n").encode())


class BoundedHTTPServer(ThreadingHTTPServer):
    """At most `max_connections` served at once; requests must arrive whole within `timeout_s`."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int, timeout_s: float
    ) -> None:
        self.max_connections, self.timeout_s = max_connections, timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._reading: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self.refused = self.timed_out = 0
        super().__init__(address, handler)
        self._watchdog_stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="hub-dashboard-watchdog", daemon=True)
        self._watchdog.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            with contextlib.suppress(OSError):  # a short answer without a thread; the client may retry
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n")
            self.shutdown_request(request)
            return
        with self._lock:
            self._reading[request] = time.monotonic() + self.timeout_s
        try:
            super().process_request(request, client_address)
        except Exception:
            self.request_done(request)
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.request_done(request)
            self._slots.release()

    def request_done(self, request: Any) -> None:
        """The request is read in full: the watchdog no longer needs to watch it."""
        with self._lock:
            self._reading.pop(request, None)

    def _watch(self) -> None:
        while not self._watchdog_stop.wait(min(0.5, self.timeout_s / 4)):
            now = time.monotonic()
            with self._lock:
                late = [s for s, deadline in self._reading.items() if deadline < now]
                for s in late:
                    del self._reading[s]
            for s in late:
                self.timed_out += 1
                with contextlib.suppress(OSError):  # wakes the handler's blocked read, which then ends the connection
                    s.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        self._watchdog_stop.set()
        super().server_close()


class SecureHandler(BaseHTTPRequestHandler):
    """Parses a request into `Request`, refuses unknown hosts, and answers with the security headers."""

    app: App
    allowed_hosts: frozenset[str]
    timeout = 10.0  # per socket read; set per server from the configuration
    server: BoundedHTTPServer
    server_version = "shopkeeper-hub"
    sys_version = ""

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self.send_error(405)

    def _read_form(self) -> dict[str, str] | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        body = self.rfile.read(length) if length else b""
        try:
            return dict(parse_qsl(body.decode("utf-8"), max_num_fields=20))
        except (UnicodeDecodeError, ValueError):
            return None

    def _dispatch(self, method: str) -> None:
        form: dict[str, str] | None = {}
        if method == "POST":
            form = self._read_form()
        self.server.request_done(self.request)
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.allowed_hosts:
            self._send(text(421, "unknown host: this dashboard answers only to its configured address"))
            return
        if form is None:
            self._send(text(400, "bad form"))
            return
        parts = urlsplit(self.path)
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
        except Exception:  # a malformed cookie header is treated as no cookies
            jar = SimpleCookie()
        request = Request(
            method=method,
            path=parts.path,
            query=dict(parse_qsl(parts.query, max_num_fields=20)),
            form=form,
            cookies={k: v.value for k, v in jar.items()},
            address=str(self.client_address[0]),
            host=host,
        )
        try:
            response = self.app(request)
        except Exception:
            log.exception("dashboard request %s %s failed", method, parts.path)
            response = text(500, "internal error")
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: " + format, *args)
