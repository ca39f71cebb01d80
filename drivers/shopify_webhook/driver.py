"""Shopify webhook driver: the shared HTTP receiver with Shopify's HMAC; order, cancel and refund topics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agent.driver_api import DriverOptionError
from agent.driver_api.options import Options, currency, flag, secret
from agent.driver_api.webhook import Handled, WebhookDriver, resolve_secret, webhook_options
from drivers.shopify_webhook.money import EXTRA_HINT, currency_table_available
from drivers.shopify_webhook.protocol import interpret_topic, parse_json, signature_ok


def _currency_table_installed(_values: dict[str, Any]) -> None:
    if not currency_table_available():
        raise DriverOptionError("kind", "the ISO 4217 table (the pos extra) is not installed", EXTRA_HINT)


class ShopifyWebhookDriver(WebhookDriver):
    """Receives Shopify webhooks: an order becomes a sale Basket, a refund a refund Basket."""

    kind: ClassVar[str] = "shopify"
    options: ClassVar[Options] = webhook_options(
        8089,
        "/shopify/webhook",
        secret("secret", "app's webhook secret"),
        currency(),  # only for a refund that names no currency anywhere
        flag("taxes_included", False),  # refunds do not say whether the shop's prices include tax
        checks=[_currency_table_installed],
    )

    def __init__(
        self, name: str, *, secret: str, currency: str = "", taxes_included: bool = False, **common: Any
    ) -> None:
        super().__init__(name, **common)
        self.secret, self.currency, self.taxes_included = secret, currency, taxes_included

    def verify(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Shopify's HMAC over the raw body."""
        secret = resolve_secret(self.secret)
        return bool(secret) and signature_ok(secret, body, headers.get("x-shopify-hmac-sha256"))

    def interpret(self, headers: Mapping[str, str], body: bytes) -> Handled:
        """Orders -> sale or void, refunds -> refund; test notifications and other topics are counted, not stored."""
        topic = headers.get("x-shopify-topic", "")
        obj = parse_json(body)
        # X-Shopify-Webhook-Id is the same on every retry of one delivery; the topic and id stand in without it.
        event_id = headers.get("x-shopify-webhook-id") or f"{topic}:{obj['id']}"
        outcome = interpret_topic(topic, obj, self.currency, self.taxes_included)
        counter = f"ignored_{outcome.ignored}" if outcome.ignored else ""
        return Handled(event_id, outcome.baskets, outcome.note, counter)
