"""Shopify order and refund webhooks -> Basket (pure: bytes and dicts in, typed results out; no I/O).

Sources (protocols.md 4.3): headers `X-Shopify-Topic`, `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(
app secret, raw body)), `X-Shopify-Webhook-Id`; the REST Admin order (also the `orders/create` body,
fixture `Shopify/shopify_python_api` `test/fixtures/order.json`): `id`, `name`, `created_at`,
`currency`, `total_price` (a decimal string, "409.94"), `payment_gateway_names`,
`line_items[] {title, name, sku, quantity (int), price (string), total_discount (string)}`. A refund
(`refunds/create`): `id`, `order_id`, `created_at`, `refund_line_items[] {quantity, subtotal,
line_item {title, sku, price}}`, `transactions[] {kind, status, amount}`. Money goes through Decimal,
never float.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from agent.driver_api import Basket, BasketLine
from drivers.webhook_http import BadPayload

# ISO 4217 minor units where they are not 2; "cents" below means minor units of the order's currency.
MINOR_UNITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "XAF": 0, "XOF": 0, "PYG": 0,
               "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3}  # fmt: skip
SALE_TOPICS = ("orders/create",)
REFUND_TOPICS = ("refunds/create",)


def shopify_signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)), the value of X-Shopify-Hmac-Sha256."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time comparison of the header with the expected signature."""
    return bool(header) and hmac.compare_digest(shopify_signature(secret, body).encode(), str(header).encode())


def to_minor_units(text: object, currency: str = "", field: str = "amount") -> int:
    """'409.94' -> 40994 (Decimal, exact); raises BadPayload when it is not an exact amount."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise BadPayload(f"{field} {text!r} is not a decimal string")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise BadPayload(f"{field} {text!r} is not a decimal string") from exc
    if not value.is_finite():
        raise BadPayload(f"{field} {text!r} is not finite")
    scaled = value.scaleb(MINOR_UNITS.get(currency.upper(), 2))
    if scaled != scaled.to_integral_value():
        raise BadPayload(f"{field} {text!r} has more decimals than {currency or 'the currency'} allows")
    return int(scaled)


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or BadPayload."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"body is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(obj, dict):
        raise BadPayload("body is not a JSON object")
    if isinstance(obj.get("id"), bool) or not isinstance(obj.get("id"), int | str) or obj.get("id") in ("", None):
        raise BadPayload("id is missing")
    return obj


def _payment(order: dict[str, Any]) -> str:
    gateways = [str(g).lower() for g in order.get("payment_gateway_names") or []]
    if not gateways:
        return ""
    if any("cash" in g for g in gateways):
        return "cash"
    return "card" if any(g in ("shopify_payments", "stripe", "paypal") or "card" in g for g in gateways) else "other"


def order_basket(order: dict[str, Any]) -> Basket:
    """An orders/create body as a sale; source_id is the order id."""
    currency = str(order.get("currency") or order.get("presentment_currency") or "")
    items = order.get("line_items")
    if not isinstance(items, list):
        raise BadPayload("line_items is not a list")
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadPayload(f"line_items[{index}] is not an object")
        qty = item.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
            raise BadPayload(f"line_items[{index}].quantity {qty!r} is not a positive integer")
        unit = to_minor_units(item.get("price"), currency, f"line_items[{index}].price")
        discount = to_minor_units(item.get("total_discount", "0"), currency, f"line_items[{index}].total_discount")
        lines.append(BasketLine(
            name=str(item.get("title") or item.get("name") or ""), quantity=qty, unit_price_cents=unit,
            line_total_cents=unit * qty - discount, sku=str(item.get("sku") or ""),
            pos_category=str(item.get("product_type") or ""),
        ))  # fmt: skip
    return Basket(
        source_id=str(order["id"]),
        lines=tuple(lines),
        total_cents=to_minor_units(order.get("total_price"), currency, "total_price"),
        kind="sale",
        payment=_payment(order),
        currency=currency,
        pos_time=str(order.get("processed_at") or order.get("created_at") or ""),
    )


def refund_basket(refund: dict[str, Any], currency: str = "") -> Basket:
    """A refunds/create body as a refund with negative line totals; source_id is "refund:<id>"."""
    items = refund.get("refund_line_items", [])
    if not isinstance(items, list):
        raise BadPayload("refund_line_items is not a list")
    currency = currency or str(refund.get("currency") or "")
    lines = []
    for index, item in enumerate(items):
        line_item = item.get("line_item") if isinstance(item, dict) else None
        if not isinstance(line_item, dict):
            raise BadPayload(f"refund_line_items[{index}].line_item is missing")
        qty = item.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
            raise BadPayload(f"refund_line_items[{index}].quantity {qty!r} is not a positive integer")
        unit = to_minor_units(line_item.get("price"), currency, f"refund_line_items[{index}].line_item.price")
        subtotal = to_minor_units(item.get("subtotal", str(Decimal(unit * qty).scaleb(-2))), currency, "subtotal")
        lines.append(BasketLine(
            name=str(line_item.get("title") or line_item.get("name") or ""), quantity=qty, unit_price_cents=unit,
            line_total_cents=-abs(subtotal), sku=str(line_item.get("sku") or ""),
            pos_category=str(line_item.get("product_type") or ""),
        ))  # fmt: skip
    paid_back = [
        to_minor_units(t.get("amount"), currency, "transactions.amount")
        for t in refund.get("transactions") or []
        if isinstance(t, dict) and t.get("kind") == "refund" and t.get("status", "success") == "success"
    ]
    total = -abs(sum(paid_back)) if paid_back else sum(line.line_total_cents for line in lines)
    return Basket(f"refund:{refund['id']}", tuple(lines), total, "refund", "", currency, "",
                  str(refund.get("processed_at") or refund.get("created_at") or ""))  # fmt: skip
