"""Shopify webhook driver: the shared HTTP receiver with Shopify's HMAC; order, cancel and refund topics."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

from agent.driver_api import DriverOptionError
from drivers.shopify_webhook.money import EXTRA_HINT, currency_table_available
from drivers.shopify_webhook.protocol import interpret_topic, parse_json, signature_ok
from drivers.webhook_http import COMMON_OPTIONS, Handled, WebhookDriver, common_options, resolve_secret, secret_option

OPTIONS = (*COMMON_OPTIONS, "secret", "currency", "taxes_included")


class ShopifyWebhookDriver(WebhookDriver):
    """Receives Shopify webhooks: an order becomes a sale Basket, a refund a refund Basket."""

    kind: ClassVar[str] = "shopify"

    def __init__(self, name: str, *, secret: str, currency: str = "", taxes_included: bool = False,
                 **common: Any) -> None:  # fmt: skip
        super().__init__(name, **common)
        self.secret, self.currency, self.taxes_included = secret, currency, taxes_included

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> ShopifyWebhookDriver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; shopify takes {', '.join(OPTIONS)}")
        if not currency_table_available():
            raise DriverOptionError("kind", "the ISO 4217 table (the pos extra) is not installed", EXTRA_HINT)
        common = common_options(options, 8089, "/shopify/webhook")
        currency = options.get("currency", "")
        if not isinstance(currency, str) or (currency and not (len(currency) == 3 and currency.isalpha())):
            raise DriverOptionError("currency", f"{currency!r} is not an ISO 4217 code", 'use e.g. "EUR" or ""')
        taxes_included = options.get("taxes_included", False)
        if not isinstance(taxes_included, bool):
            fix = "true when the shop's prices include tax (Settings > Taxes and duties)"
            raise DriverOptionError("taxes_included", f"{taxes_included!r} is not true or false", fix)
        return cls(name, secret=secret_option(options, "secret", "app's webhook secret"), currency=currency.upper(),
                   taxes_included=taxes_included, **common)  # fmt: skip

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.shopify_webhook").joinpath("sample.toml").read_text(encoding="utf-8")

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
