"""Square webhook driver: the shared HTTP receiver, Square's signature, and an OrderSource for RetrieveOrder."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from agent.driver_api.options import Option, Options, secret, text
from agent.driver_api.webhook import (
    BadPayload,
    DeadLetter,
    Handled,
    Unavailable,
    WebhookDriver,
    resolve_secret,
    webhook_options,
)
from drivers.square_webhook.protocol import (
    SquareEvent,
    build,
    dead_letter_record,
    fetch_failure_is_permanent,
    parse_event,
    plan,
    signature_ok,
)

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
SQUARE_OPTIONS = (
    Option("notification_url", accept=lambda v: isinstance(v, str) and v.startswith(("https://", "http://")),
           what="a URL", fix="copy the URL exactly as set in Square's Developer Console"),
    secret("signature_key", "webhook signature key"),
    secret("access_token", "Square access token"),
    Option("api_base", "https://connect.squareup.com",
           lambda v: isinstance(v, str) and v.startswith(("https://", "http://127.0.0.1", "http://localhost")),
           "an https URL", 'use "https://connect.squareup.com"'),
    text("api_version", "2025-01-23", what="a version", fix='use e.g. "2025-01-23"'),
)  # fmt: skip


class FetchRefused(RuntimeError):
    """The order can never be fetched as things stand (404, a refused token): retrying will not help."""


class OrderSource(Protocol):
    """Where the driver gets an order's line items."""

    def fetch_order(self, order_id: str) -> dict[str, Any]:
        """The order object; raise Unavailable when it cannot be fetched now, FetchRefused when never."""


class SquareOrdersApi:
    """RetrieveOrder over HTTPS: GET {api_base}/v2/orders/{order_id} with the access token."""

    def __init__(self, access_token: str, api_base: str, api_version: str, timeout_s: float = 10.0) -> None:
        self.access_token, self.api_base, self.api_version = access_token, api_base.rstrip("/"), api_version
        self.timeout_s = timeout_s

    def fetch_order(self, order_id: str) -> dict[str, Any]:
        """The order object from Square."""
        url = f"{self.api_base}/v2/orders/{urllib.parse.quote(order_id, safe='')}"
        token = resolve_secret(self.access_token)
        if not token:  # an unset env variable: every fetch would be refused, so say which setting it is
            raise FetchRefused(f"RetrieveOrder {order_id}: access_token is empty ({self.access_token})")
        request = urllib.request.Request(url, headers={
            "Authorization": f"Bearer {token}", "Square-Version": self.api_version, "Accept": "application/json",
        })  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            reason = f"RetrieveOrder {order_id}: HTTP {exc.code}"
            if fetch_failure_is_permanent(exc.code):
                raise FetchRefused(reason) from exc
            raise Unavailable(reason) from exc
        except (OSError, ValueError) as exc:
            raise Unavailable(f"RetrieveOrder {order_id}: {exc}") from exc
        order = payload.get("order") if isinstance(payload, dict) else None
        if not isinstance(order, dict):
            raise Unavailable(f"RetrieveOrder {order_id}: no order in the answer")
        return order


class SquareWebhookDriver(WebhookDriver):
    """Receives Square webhooks; a completed payment becomes a sale Basket, a completed refund a refund Basket."""

    kind: ClassVar[str] = "square"
    options: ClassVar[Options] = webhook_options(8088, "/square/webhook", *SQUARE_OPTIONS)

    def __init__(self, name: str, *, signature_key: str, notification_url: str, access_token: str, api_base: str,
                 api_version: str, orders: OrderSource | None = None, **common: Any) -> None:  # fmt: skip
        super().__init__(name, **common)
        self.signature_key, self.notification_url = signature_key, notification_url
        self.orders = orders or SquareOrdersApi(access_token, api_base, api_version)

    def verify(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Square's HMAC over the notification URL and the raw body."""
        key = resolve_secret(self.signature_key)
        return bool(key) and signature_ok(key, self.notification_url, body, headers.get(SIGNATURE_HEADER))

    def interpret(self, headers: Mapping[str, str], body: bytes) -> Handled:
        """Payments, refunds and orders per protocol.plan; the order is fetched only after the replay check."""
        event = parse_event(body)
        if event.event_id in self.recent:  # a replay during an outage must not wait for (or fail on) Square
            return Handled(event.event_id)
        step = plan(event)
        if step.ignore:
            return Handled(event.event_id, note=step.note, counter=f"ignored_{step.ignore}")
        if step.basket is not None:
            return Handled(event.event_id, (step.basket,))
        order = self._order(step.fetch_order, event)
        try:
            return Handled(event.event_id, (build(step, event, order),))
        except BadPayload as exc:  # the event was fine; Square's order is not, and a retry brings the same order
            raise _dead_letter(event, f"order {step.fetch_order} is malformed: {exc}") from exc

    def _order(self, order_id: str, event: SquareEvent) -> dict[str, Any]:
        try:
            order = self.orders.fetch_order(order_id)
        except FetchRefused as exc:
            raise _dead_letter(event, str(exc)) from exc
        if order.get("id") != order_id:
            raise _dead_letter(event, f"RetrieveOrder {order_id} answered with id {order.get('id')!r}")
        return order


def _dead_letter(event: SquareEvent, reason: str) -> DeadLetter:
    return DeadLetter(event.event_id, reason, dead_letter_record(event, reason))
