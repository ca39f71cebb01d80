"""Clover driver: the shared webhook receiver, the X-Clover-Auth check, orders fetched over REST, and a poll."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from agent.driver_api import Basket, Sink
from agent.driver_api.options import Option, Options, secret
from agent.driver_api.webhook import (
    BadPayload,
    Handled,
    RecentIds,
    Unavailable,
    WebhookDriver,
    resolve_secret,
    webhook_options,
)
from drivers.clover.protocol import auth_ok, order_baskets, orders_page, parse_notification, verification_code

AUTH_HEADER = "x-clover-auth"
EXPAND = "lineItems,lineItems.discounts,lineItems.modifications,payments,payments.tender,refunds,credits"
PAGE = 100
POLL_OVERLAP_MS = 60_000  # Clover's modifiedTime is the server's clock; look back a minute past the newest seen


class OrderSource(Protocol):
    """Where the driver gets Clover orders."""

    def fetch_order(self, merchant_id: str, order_id: str) -> dict[str, Any] | None:
        """The expanded order; None when Clover says it does not exist; raise Unavailable when it cannot say now."""

    def orders_modified_since(self, merchant_id: str, since_ms: int) -> list[dict[str, Any]]:
        """Every expanded order modified at or after since_ms; raise Unavailable on failure."""


class CloverOrdersApi:
    """Clover's REST API: GET /v3/merchants/{mId}/orders[/{orderId}] with the merchant's API token."""

    def __init__(self, access_token: str, api_base: str, timeout_s: float = 10.0) -> None:
        self.access_token, self.api_base, self.timeout_s = access_token, api_base.rstrip("/"), timeout_s

    def _get(self, path: str, query: Mapping[str, str]) -> Any:
        url = f"{self.api_base}{path}?{urllib.parse.urlencode(query, safe=',>=')}"
        request = urllib.request.Request(url, headers={
            "Authorization": f"Bearer {resolve_secret(self.access_token)}", "Accept": "application/json",
        })  # fmt: skip
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read())

    def fetch_order(self, merchant_id: str, order_id: str) -> dict[str, Any] | None:
        """GET /v3/merchants/{mId}/orders/{orderId}?expand=..."""
        path = (
            f"/v3/merchants/{urllib.parse.quote(merchant_id, safe='')}/orders/{urllib.parse.quote(order_id, safe='')}"
        )
        try:
            order = self._get(path, {"expand": EXPAND})
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise Unavailable(f"GET order {order_id}: HTTP {exc.code}") from exc
        except (OSError, ValueError) as exc:
            raise Unavailable(f"GET order {order_id}: {exc}") from exc
        if not isinstance(order, dict):
            raise Unavailable(f"GET order {order_id}: the answer is not an order")
        return order

    def orders_modified_since(self, merchant_id: str, since_ms: int) -> list[dict[str, Any]]:
        """GET /v3/merchants/{mId}/orders?filter=modifiedTime>=...&expand=..., page by page."""
        path = f"/v3/merchants/{urllib.parse.quote(merchant_id, safe='')}/orders"
        found: list[dict[str, Any]] = []
        for offset in range(0, 100 * PAGE, PAGE):  # at most 10000 orders per poll; the next poll continues
            query = {"filter": f"modifiedTime>={since_ms}", "expand": EXPAND, "limit": str(PAGE), "offset": str(offset)}
            try:
                page = orders_page(self._get(path, query))
            except urllib.error.HTTPError as exc:
                raise Unavailable(f"list orders: HTTP {exc.code}") from exc
            except (OSError, ValueError) as exc:
                raise Unavailable(f"list orders: {exc}") from exc
            found += page
            if len(page) < PAGE:
                break
        return found


def _seconds_or_off(key: str, default: float, low: float, high: float) -> Option:
    """0 (off) or a number of seconds in [low, high]."""

    def accept(value: Any) -> bool:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and (value == 0 or low <= value <= high)

    return Option(key, default, accept, f"0 or between {low:g} and {high:g} s", f"use {default} (the default)", float)


def _api_base(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://127.0.0.1", "http://localhost"))


class CloverDriver(WebhookDriver):
    """Receives Clover order notifications and polls for missed ones; a paid order is a sale, a refund a refund."""

    kind: ClassVar[str] = "clover"
    options: ClassVar[Options] = webhook_options(
        8090,
        "/clover/webhook",
        Option(
            "merchant_id",
            accept=lambda v: isinstance(v, str) and v.isalnum(),
            what="a merchant id",
            fix="copy the 13-character merchant id from the Clover dashboard",
        ),
        secret("auth_code", "Clover Auth Code"),
        secret("access_token", "Clover API token"),
        Option(
            "api_base",
            "https://api.clover.com",
            _api_base,
            "an https URL",
            'use "https://api.clover.com" (or "https://api.eu.clover.com")',
        ),
        _seconds_or_off("poll_interval_s", 300.0, 5, 86400),
        _seconds_or_off("poll_lookback_s", 3600.0, 60, 30 * 86400),
    )

    def __init__(
        self,
        name: str,
        *,
        auth_code: str,
        merchant_id: str,
        access_token: str = "",
        api_base: str = "https://api.clover.com",
        orders: OrderSource | None = None,
        poll_interval_s: float = 300.0,
        poll_lookback_s: float = 3600.0,
        **common: Any,
    ) -> None:
        super().__init__(name, **common)
        self.auth_code, self.merchant_id = auth_code, merchant_id
        self.orders: OrderSource = orders or CloverOrdersApi(access_token, api_base)
        self.poll_interval_s, self.poll_lookback_s = poll_interval_s, poll_lookback_s
        self.emitted = RecentIds(common.get("recent_ids", 10000))  # basket source ids, shared by webhook and poll
        self.last_verification_code = ""
        self.polls = self.poll_errors = self.polled_baskets = 0
        self._pending: dict[str, tuple[str, ...]] = {}
        self._pending_lock = threading.Lock()
        self._since_ms: int | None = None
        self._poll_thread: threading.Thread | None = None
        self._sink: Sink | None = None  # for reporting the verification code from the HTTP thread

    def _health_extra(self) -> dict[str, Any]:
        """The webhook keys plus the poll's counters and the last verification code."""
        extra = super()._health_extra()
        with self._health.lock:
            extra.update(polls=self.polls, poll_errors=self.poll_errors, polled_baskets=self.polled_baskets,
                         verification_code=self.last_verification_code)  # fmt: skip
        return extra

    # -- webhook ---------------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> bool:
        """X-Clover-Auth must equal the auth code; the one-time verification request comes before there is one."""
        if verification_code(body):
            return True
        return auth_ok(resolve_secret(self.auth_code), headers.get(AUTH_HEADER))

    def interpret(self, headers: Mapping[str, str], body: bytes) -> Handled:
        """Fetch every notified order of our merchant and turn it into baskets not stored yet."""
        notification = parse_notification(body)
        event_id = "sha256:" + hashlib.sha256(body).hexdigest()
        if notification.verification_code:
            return Handled(event_id, note=self._verification(notification.verification_code))
        if event_id in self.recent:
            return Handled(event_id)  # a replay: answered as a duplicate without fetching (works during an outage)
        baskets: list[Basket] = []
        for notice in notification.orders:
            if notice.merchant_id != self.merchant_id or notice.type == "DELETE":
                continue  # another merchant of the app, or an order deleted before it was paid
            order = self.orders.fetch_order(notice.merchant_id, notice.order_id)
            if order is None:
                continue
            if order.get("id") != notice.order_id:
                raise BadPayload(f"order {notice.order_id} answered with id {order.get('id')!r}")
            baskets += [b for b in order_baskets(order)[0] if b.source_id not in self.emitted]
        with self._pending_lock:
            self._pending[event_id] = tuple(b.source_id for b in baskets)
        return Handled(event_id, tuple(baskets), "" if baskets else "nothing new to store")

    def handle(self, sink: Sink, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """The shared acknowledgement rules; what was stored is remembered so the poll skips it."""
        status, text = super().handle(sink, headers, body)
        with self._pending_lock:
            sources = self._pending.pop("sha256:" + hashlib.sha256(body).hexdigest(), ())
        if status == 200:
            for source in sources:
                self.emitted.add(source)
        return status, text

    def _verification(self, code: str) -> str:
        with self._health.lock:
            new = code != self.last_verification_code
            self.last_verification_code = code
        if new and self._sink is not None:
            self._report(self._sink, "problem", f"Clover verification code {code}: paste it into the app's "
                         "Webhooks page in the Clover Developer Dashboard and press Verify")  # fmt: skip
        return f"verification code {code} logged; paste it into the Clover Developer Dashboard"

    # -- poll ------------------------------------------------------------------------------------
    def start(self, sink: Sink) -> None:
        """Serve webhooks and, unless poll_interval_s is 0, poll for orders the webhooks missed."""
        self._sink = sink
        super().start(sink)
        if self.poll_interval_s > 0:
            self._poll_thread = threading.Thread(target=self._poll_loop, args=(sink,), name=f"clover-poll-{self.name}",
                                                 daemon=True)  # fmt: skip
            self._poll_thread.start()

    def stop(self) -> None:
        """Stop serving and polling; once this returns nothing more reaches the sink."""
        super().stop()
        if self._poll_thread is not None:
            self._poll_thread.join(timeout=10)

    def _poll_loop(self, sink: Sink) -> None:
        reported = False
        while not self._stop.is_set():
            try:
                self.poll_once(sink)
                reported = False
            except Unavailable as exc:
                with self._health.lock:
                    self.poll_errors += 1
                    self._health.last_error = str(exc)
                if not reported:
                    self._report(sink, "problem", f"poll: {exc}; retrying at the next poll")
                    reported = True
            if self._stop.wait(self.poll_interval_s):
                break

    def poll_once(self, sink: Sink) -> int:
        """One poll: emit the baskets of orders modified since the last poll that were not stored yet."""
        since = self._since_ms
        if since is None:
            since = int(time.time() * 1000 - self.poll_lookback_s * 1000)  # the REST filter is in wall-clock ms
        newest, emitted = since, 0
        for order in self.orders.orders_modified_since(self.merchant_id, since):
            try:
                baskets = [b for b in order_baskets(order)[0] if b.source_id not in self.emitted]
            except BadPayload as exc:
                self._report(sink, "bad_frame", f"malformed order {order.get('id')!r}: {exc}")
                continue
            modified = order.get("modifiedTime")
            if isinstance(modified, int) and not isinstance(modified, bool):
                newest = max(newest, modified)
            with self._emit_lock:
                if self._stopped:
                    return emitted
                for basket in baskets:
                    sink.emit(basket)
            if baskets and not sink.flush(self.flush_timeout_s):
                raise Unavailable("the store did not commit the polled baskets in time")
            for basket in baskets:
                self.emitted.add(basket.source_id)
            emitted += len(baskets)
        self._since_ms = max(since, newest - POLL_OVERLAP_MS)
        with self._health.lock:
            self.polls += 1
            self.polled_baskets += emitted
        return emitted
