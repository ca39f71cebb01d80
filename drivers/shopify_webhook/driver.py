"""Shopify webhook driver: the shared HTTP receiver with Shopify's HMAC; orders/create and refunds/create."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agent.driver_api.options import Options, currency, secret
from agent.driver_api.webhook import Handled, WebhookDriver, resolve_secret, webhook_options
from drivers.shopify_webhook.protocol import (
    REFUND_TOPICS,
    SALE_TOPICS,
    order_basket,
    parse_json,
    refund_basket,
    signature_ok,
)


class ShopifyWebhookDriver(WebhookDriver):
    """Receives Shopify webhooks: an order becomes a sale Basket, a refund a refund Basket."""

    kind: ClassVar[str] = "shopify"
    options: ClassVar[Options] = webhook_options(
        8089, "/shopify/webhook", secret("secret", "app's webhook secret"), currency()
    )

    def __init__(self, name: str, *, secret: str, currency: str, **common: Any) -> None:
        super().__init__(name, **common)
        self.secret, self.currency = secret, currency

    def verify(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Shopify's HMAC over the raw body."""
        secret = resolve_secret(self.secret)
        return bool(secret) and signature_ok(secret, body, headers.get("x-shopify-hmac-sha256"))

    def interpret(self, headers: Mapping[str, str], body: bytes) -> Handled:
        """orders/create -> sale, refunds/create -> refund; other topics are acknowledged and not stored."""
        topic = headers.get("x-shopify-topic", "")
        obj = parse_json(body)
        # X-Shopify-Webhook-Id is the same on every retry of one delivery; the topic and id stand in without it.
        event_id = headers.get("x-shopify-webhook-id") or f"{topic}:{obj['id']}"
        if topic in SALE_TOPICS:
            return Handled(event_id, (order_basket(obj),))
        if topic in REFUND_TOPICS:
            return Handled(event_id, (refund_basket(obj, self.currency),))
        return Handled(event_id, note=f"topic {topic!r} is not used")
