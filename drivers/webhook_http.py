"""A tiny webhook receiver shared by the POS webhook drivers (Square, Shopify): stdlib HTTP, one path.

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
- every refusal (401, 400, dead letter) is logged with its reason, at most once a minute per kind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from agent.driver_api import Basket, DriverHealth, DriverOptionError, Sink

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


class RefusalLog:
    """One log line per kind of refusal per interval; the lines suppressed in between are counted."""

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warn(self, driver: str, kind: str, reason: str, now: float | None = None) -> bool:
        """Log `reason` unless `kind` was logged less than interval_s ago; True when a line was written."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                self._suppressed[kind] += 1
                return False
            self._last[kind], more = now, self._suppressed.pop(kind, 0)
        log.warning("driver %s: %s: %s%s", driver, kind, reason, f" (and {more} more since)" if more else "")
        return True


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


def common_options(options: Mapping[str, Any], default_port: int, default_path: str) -> dict[str, Any]:
    """Validate host, port, path, recent_ids and flush_timeout_s (no I/O)."""
    host = options.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise DriverOptionError("host", f"{host!r} is not an address", 'use "127.0.0.1" behind a reverse proxy')
    port = options.get("port", default_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise DriverOptionError("port", f"{port!r} is not a TCP port", f"use e.g. {default_port}")
    path = options.get("path", default_path)
    if not isinstance(path, str) or not PATH.match(path):
        raise DriverOptionError("path", f"{path!r} is not a URL path", f'use e.g. "{default_path}"')
    recent = options.get("recent_ids", 10000)
    if isinstance(recent, bool) or not isinstance(recent, int) or recent < 1:
        raise DriverOptionError("recent_ids", f"{recent!r} is not a positive integer", "use 10000 (the default)")
    flush = options.get("flush_timeout_s", 10.0)
    if isinstance(flush, bool) or not isinstance(flush, int | float) or not 0 < flush <= 60:
        raise DriverOptionError("flush_timeout_s", f"{flush!r} is not between 0 and 60", "use 10 (the default)")
    return {"host": host, "port": port, "path": path, "recent_ids": recent, "flush_timeout_s": float(flush)}


def secret_option(options: Mapping[str, Any], key: str, what: str) -> str:
    """A secret given inline or as "env:VARIABLE"; the variable is read when used (see resolve_secret)."""
    value = options.get(key)
    if not isinstance(value, str) or not value or value == "env:":
        raise DriverOptionError(key, "missing or empty", f'set {key} = "env:VARIABLE" holding the {what}')
    return value


def resolve_secret(spec: str) -> str:
    """The secret itself: inline, or the named environment variable's value ("" when it is not set)."""
    return os.environ.get(spec[4:], "") if spec.startswith("env:") else spec


class WebhookDriver:
    """Lifecycle, HTTP and the acknowledgement rules; a subclass verifies and interprets events."""

    kind: ClassVar[str] = ""

    def __init__(
        self, name: str, *, host: str, port: int, path: str, recent_ids: int = 10000, flush_timeout_s: float = 10.0
    ) -> None:
        self.name, self.host, self.port, self.path = name, host, port, path
        self.flush_timeout_s = flush_timeout_s
        self.backoff_initial_s, self.backoff_max_s = 0.5, 10.0
        self.recent = RecentIds(recent_ids)
        self.outcomes: Counter[str] = Counter()
        self.refusals = RefusalLog()
        self.last_dead_letter = ""
        self._degraded = ""  # the last signed event we could not store, until one is stored again
        self.bound_port = 0
        self._health = DriverHealth()
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- subclass hooks --------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when the request's signature is valid."""
        raise NotImplementedError

    def interpret(self, headers: Mapping[str, str], body: bytes) -> Handled:
        """Turn a verified body into baskets; raise BadPayload or Unavailable."""
        raise NotImplementedError

    # -- driver contract -------------------------------------------------------------------------
    def doors(self) -> list[str]:
        """A POS feed watches no door."""
        return []

    def alive(self) -> bool:
        """False once the server thread has ended without stop()."""
        return self._stop.is_set() or (self._thread is not None and self._thread.is_alive())

    def health(self) -> dict[str, Any]:
        """The standard health keys plus counts per response kind."""
        snapshot = self._health.snapshot()
        with self._health.lock:
            keys = ("accepted", "duplicates", "ignored", "unauthorised", "malformed", "unavailable", "dead_letters")
            snapshot.update({k: self.outcomes[k] for k in keys})
            snapshot.update(self.outcomes)  # the drivers' own counters (ignored_test, ...) too
            snapshot["port"] = self.bound_port
            snapshot["last_dead_letter"] = self.last_dead_letter
            # degraded from a signed event that was refused or dead-lettered until an event is stored again
            snapshot["degraded"] = self._degraded
        return snapshot

    def start(self, sink: Sink) -> None:
        """Bind and serve in a background thread (binding is retried and reported, never raised)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"driver {self.name} already started")
        with self._emit_lock:
            self._stopped = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"{self.kind}-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; once this returns nothing more reaches the sink."""
        with self._emit_lock:
            self._stopped = True
        self._stop.set()
        server = self._server
        if server is not None:
            server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _count(self, outcome: str) -> None:
        with self._health.lock:
            self.outcomes[outcome] += 1

    def _report(self, sink: Sink, kind: str, text: str) -> None:
        with self._emit_lock:
            if self._stopped:
                return
            if kind == "problem":
                sink.problem(self.name, text)
            else:
                sink.bad_frame(self.name, text)
                with self._health.lock:
                    self._health.bad_frames += 1

    def _run(self, sink: Sink) -> None:
        delay, reported = self.backoff_initial_s, False
        while not self._stop.is_set():
            try:
                server = ThreadingHTTPServer((self.host, self.port), _handler_class(self, sink))
            except OSError as exc:
                with self._health.lock:
                    self._health.last_error = str(exc)
                if not reported:
                    self._report(sink, "problem", f"cannot listen on {self.host}:{self.port}: {exc}; retrying")
                    reported = True
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.backoff_max_s)
                continue
            server.daemon_threads = True
            self._server = server
            with self._health.lock:
                self.bound_port = server.server_address[1]
                self._health.connected = True
                self._health.reconnects += int(reported)
            try:
                if not self._stop.is_set():
                    server.serve_forever(poll_interval=0.1)
            finally:
                with contextlib.suppress(OSError):
                    server.server_close()
                self._server = None
                with self._health.lock:
                    self._health.connected = False
            break

    def handle(self, sink: Sink, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Apply the acknowledgement rules to one request; returns (status, text)."""
        if not self.verify(headers, body):
            self._count("unauthorised")
            self._report(sink, "bad_frame", "bad_signature")
            self.refusals.warn(self.name, "401 bad signature", "check the secret and the notification URL")
            return 401, "bad or missing signature\n"
        try:
            handled = self.interpret(headers, body)
        except BadPayload as exc:
            self._count("malformed")
            self._report(sink, "bad_frame", f"malformed: {exc}")
            self.refusals.warn(self.name, "400 malformed", str(exc))
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
        with self._emit_lock:
            if self._stopped:
                return 503, "shutting down\n"
            for basket in handled.baskets:
                sink.emit(basket)
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
        with self._emit_lock:
            if self._stopped:
                return 503, "shutting down\n"
            sink.emit(exc.record)
        if not sink.flush(self.flush_timeout_s):
            self._count("unavailable")
            return 503, "not stored yet, retry\n"
        self.recent.add(exc.event_id)
        self._count("dead_letters")
        # one counter key for all dead letters (the agent keys bad frames by reason; ids would grow it without bound)
        self._report(sink, "bad_frame", "dead_letter")
        with self._health.lock:
            self.last_dead_letter = f"event {exc.event_id}: {exc.reason}"
            self._health.last_error = self.last_dead_letter
            self._degraded = f"dead letter: {self.last_dead_letter}"
        self.refusals.warn(self.name, "dead letter", f"event {exc.event_id}: {exc.reason}")
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
