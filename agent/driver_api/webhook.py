"""WebhookDriver: a BackgroundDriver that receives POS webhooks (Square, Shopify): stdlib HTTP, one path.

The contract every webhook driver keeps:
- a bad or missing signature -> 401, nothing stored;
- a malformed body -> 400 with the reason in the body;
- a replayed event id -> 200 without a second emission (a bounded LRU here; the agent also dedupes on
  (driver, source_id), so a replay after a restart is stored once too);
- 200 only after `sink.flush()` returned True (acknowledged means durable); otherwise 503 so the
  POS retries. A transient upstream failure (an order that cannot be fetched now) is a 503 as well;
- a permanent upstream failure (the order does not exist, the token is refused) is a dead letter: a
  flagged basket records the event durably (kept local, out of every release), the reason is counted
  and logged, and the answer is 200, so the POS does not retry for ever;
- every refusal (401, 400, dead letter) is logged with its reason, at most once a minute per kind, and
  /health is degraded with the last one until an event is stored again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.contract.secrets import resolve_secret as resolve_secret  # part of the driver SDK since wave 1
from agent.driver_api.base import BackgroundDriver
from agent.driver_api.contract import Sink
from agent.driver_api.options import Check, Option, Options, integer, number, secret, tcp_port, text
from agent.driver_api.readings import Basket
from agent.logs import RateLimitedLog

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
COMMON_OPTIONS = ("host", "port", "path", "recent_ids", "flush_timeout_s")
PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


class BadPayload(ValueError):
    """The body is not a well-formed event; the message is the reason sent back with the 400."""


class Unavailable(RuntimeError):
    """Something the event needs is unavailable right now (answer 503 so the sender retries)."""


class DeadLetter(RuntimeError):
    """Something the event needs will never be available: store `record` (a flagged basket), answer 200."""

    def __init__(self, event_id: str, reason: str, record: Basket) -> None:
        super().__init__(reason)
        self.event_id, self.reason, self.record = event_id, reason, record


@dataclasses.dataclass(frozen=True)
class Handled:
    """What one verified event turned into: its id (for replay detection) and the baskets to store."""

    event_id: str
    baskets: tuple[Basket, ...] = ()
    note: str = ""  # why an event produced nothing (ignored type, unfinished payment)
    counter: str = ""  # an extra counter shown in health, e.g. "ignored_test" for a test notification


class RecentIds:
    """A bounded, thread-safe set of the most recently acknowledged event ids."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            return event_id in self._ids

    def add(self, event_id: str) -> None:
        with self._lock:
            self._ids[event_id] = None
            self._ids.move_to_end(event_id)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)


def webhook_options(default_port: int, default_path: str, *extra: Option, checks: Sequence[Check] = ()) -> Options:
    """The receiver's declared options (host, port, path, recent_ids, flush_timeout_s), then the driver's own."""
    return Options(
        text("host", "127.0.0.1", what="an address", fix='use "127.0.0.1" behind a reverse proxy'),
        tcp_port("port", default_port, allow_zero=True),
        Option(
            "path",
            default_path,
            lambda v: isinstance(v, str) and bool(PATH.match(v)),
            "a URL path",
            f'use e.g. "{default_path}"',
        ),
        integer("recent_ids", 10000, low=1),
        number("flush_timeout_s", 10.0, low=0, high=60, above=True),
        *extra,
        checks=checks,
    )


def common_options(options: Mapping[str, Any], default_port: int, default_path: str) -> dict[str, Any]:
    """Validate host, port, path, recent_ids and flush_timeout_s (no I/O); kept for drivers written before Options."""
    declared = webhook_options(default_port, default_path)
    return declared.parse({k: v for k, v in options.items() if k in COMMON_OPTIONS})


def secret_option(options: Mapping[str, Any], key: str, what: str) -> str:
    """A secret given inline or as "env:VARIABLE"; kept for drivers written before Options (use `secret`)."""
    return str(secret(key, what).read(options, ""))


class WebhookDriver(BackgroundDriver):
    """Binding, HTTP and the acknowledgement rules; a subclass verifies and interprets events."""

    def __init__(
        self, name: str, *, host: str, port: int, path: str, recent_ids: int = 10000, flush_timeout_s: float = 10.0
    ) -> None:
        super().__init__(name, backoff_initial_s=0.5, backoff_max_s=10.0)
        self.host, self.port, self.path = host, port, path
        self.flush_timeout_s = flush_timeout_s
        self.recent = RecentIds(recent_ids)
        self.outcomes: Counter[str] = Counter()
        self.refusals = RateLimitedLog(log)
        self.last_dead_letter = ""
        self._degraded = ""  # the last signed event we could not store, until one is stored again
        self.bound_port = 0
        self._server: ThreadingHTTPServer | None = None

    # -- subclass hooks --------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when the request's signature is valid."""
        raise NotImplementedError

    def interpret(self, headers: Mapping[str, str], body: bytes) -> Handled:
        """Turn a verified body into baskets; raise BadPayload or Unavailable."""
        raise NotImplementedError

    # -- BackgroundDriver hooks ------------------------------------------------------------------
    def _health_extra(self) -> dict[str, Any]:
        with self._health.lock:
            keys = ("accepted", "duplicates", "ignored", "unauthorised", "malformed", "unavailable", "dead_letters")
            return {
                **{k: self.outcomes[k] for k in keys},
                **self.outcomes,  # the drivers' own counters (ignored_test, ...) too
                "port": self.bound_port,
                "last_dead_letter": self.last_dead_letter,
                # a signed event refused or dead-lettered, until an event is stored again
                "degraded": self._degraded,
            }

    def _refused(self, kind: str, reason: str) -> None:
        self.refusals.warning(kind, "driver %s: %s: %s", self.name, kind, reason)

    def _where(self) -> str:
        return f"cannot listen on {self.host}:{self.port}"

    def _connect(self, sink: Sink) -> None:
        server = ThreadingHTTPServer((self.host, self.port), _handler_class(self, sink))
        server.daemon_threads = True
        server.timeout = 0.1  # how long stop() may wait for the accept loop
        self._server = server
        with self._health.lock:
            self.bound_port = server.server_address[1]

    def _session(self, sink: Sink) -> None:
        server = self._server
        assert server is not None
        while not self._stop.is_set():
            server.handle_request()  # one request (answered in its own thread) or a 0.1 s timeout

    def _disconnect(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.server_close()

    def _count(self, outcome: str) -> None:
        with self._health.lock:
            self.outcomes[outcome] += 1

    def _report_bad_request(self, sink: Sink, reason: str) -> None:
        self._report(sink, "bad_frame", reason)
        with self._health.lock:
            self._health.bad_frames += 1

    def handle(self, sink: Sink, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Apply the acknowledgement rules to one request; returns (status, text)."""
        if not self.verify(headers, body):
            self._count("unauthorised")
            self._report_bad_request(sink, "bad_signature")
            self._refused("401 bad signature", "check the secret and the notification URL")
            return 401, "bad or missing signature\n"
        try:
            handled = self.interpret(headers, body)
        except BadPayload as exc:
            self._count("malformed")
            self._report_bad_request(sink, "malformed")  # one counter key: reasons would grow it without bound
            self._refused("400 malformed", str(exc))
            with self._health.lock:  # a signed event refused: the POS retries, then gives up; say so in /health
                self._degraded = f"refused a signed event: {exc}"
            return 400, f"malformed event: {exc}\n"
        except Unavailable as exc:
            self._count("unavailable")
            self._report(sink, "problem", str(exc))
            return 503, f"try again later: {exc}\n"
        except DeadLetter as exc:
            if exc.event_id in self.recent:
                self._count("duplicates")
                return 200, "duplicate, already stored\n"
            return self._dead_letter(sink, exc)
        if handled.event_id in self.recent:
            self._count("duplicates")
            return 200, "duplicate, already stored\n"
        if not self._emit_all(sink, handled.baskets):
            return 503, "shutting down\n"
        if handled.baskets and not sink.flush(self.flush_timeout_s):
            self._count("unavailable")
            self._report(sink, "problem", f"event {handled.event_id}: the store did not commit in time")
            return 503, "not stored yet, retry\n"
        self.recent.add(handled.event_id)
        with self._health.lock:
            self._health.frames += 1
            if handled.baskets:
                self._degraded = ""
        self._count("accepted" if handled.baskets else "ignored")
        if handled.counter:
            self._count(handled.counter)
        return 200, f"ok{': ' + handled.note if handled.note else ''}\n"

    def _dead_letter(self, sink: Sink, exc: DeadLetter) -> tuple[int, str]:
        """Store the dead-letter record durably, count and log it, and answer 200 (503 if it is not stored)."""
        if not self._emit_all(sink, (exc.record,)):
            return 503, "shutting down\n"
        if not sink.flush(self.flush_timeout_s):
            self._count("unavailable")
            return 503, "not stored yet, retry\n"
        self.recent.add(exc.event_id)
        self._count("dead_letters")
        self._report_bad_request(sink, "dead_letter")
        with self._health.lock:
            self.last_dead_letter = f"event {exc.event_id}: {exc.reason}"
            self._health.last_error = self.last_dead_letter
            self._degraded = f"dead letter: {self.last_dead_letter}"
        self._refused("dead letter", f"event {exc.event_id}: {exc.reason}")
        return 200, f"dead letter recorded: {exc.reason}\n"


def _handler_class(driver: WebhookDriver, sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "shopkeeper-webhook"

        def log_message(self, format: str, *args: Any) -> None:  # the agent logs outcomes, not requests
            return

        def _answer(self, status: int, text: str) -> None:
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(405 if self.path.split("?")[0] == driver.path else 404, "POST only\n")

        def do_POST(self) -> None:
            if self.path.split("?")[0] != driver.path:
                self._answer(404, "unknown path\n")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._answer(411, "Content-Length required\n")
                return
            if not 0 <= length <= MAX_BODY_BYTES:
                self._answer(413, "body too large\n")
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._answer(*driver.handle(sink, headers, body))

    return Handler
