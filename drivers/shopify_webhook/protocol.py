"""Shopify order and refund webhooks -> Basket (pure: bytes and dicts in, typed results out; no I/O).

Sources (protocols.md 4.3; the fixtures in tests/drivers/shopify_webhook/fixtures/ name theirs): the
headers `X-Shopify-Topic`, `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app secret, raw body)) and
`X-Shopify-Webhook-Id`; an order body is the REST Admin order, a refund body the REST refund.

What a basket holds, for every topic (the same rule as the Square driver):
- money is integer minor units of the order's currency (ISO 4217 digits, see money.py);
- a line's total is what the customer paid for it: `price x quantity`, less its `discount_allocations`
  (line discounts and its share of order-level codes, which Shopify allocates onto lines), plus its
  `tax_lines` when the shop adds tax on top (`taxes_included: false`); with tax-inclusive prices the
  tax is already in the price. So category revenue is the same whether a shop prices with or without
  tax, and shipping and tips stay out of the lines (they are in the basket total, `total_price`); a tip
  is a line item that names its `tip_payment_gateway` (ShopifySharp's LineItem model; GraphQL `TipSale`);
- a refund is a refund basket with negative lines and the money paid back as its total, never a sale;
- a cancellation (`orders/cancelled`, or an order that arrives already cancelled or voided) is a void
  basket with the order's lines, as a voided receipt is; the money returned comes with `refunds/create`;
- Shopify's test notifications and test-gateway orders (`test: true`) are stored nowhere.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

from agent.driver_api import Basket, BasketLine
from agent.driver_api.webhook import BadPayload
from drivers.shopify_webhook.money import to_minor_units

__all__ = ["Outcome", "interpret_topic", "parse_json", "shopify_signature", "signature_ok", "to_minor_units"]

SALE_TOPICS = ("orders/create", "orders/paid")  # both carry the whole order; the agent stores it once by id
VOID_TOPICS = ("orders/cancelled",)
REFUND_TOPICS = ("refunds/create",)
# Order topics that carry nothing the baskets lack, each with the reason it is acknowledged unstored.
IGNORED_TOPICS = {
    "orders/updated": "the sale is read from orders/create; refunds and cancellations have their own topics",
    "orders/edited": "an edit after the sale is not re-read: the basket stays as the order was created",
    "orders/fulfilled": "fulfilment does not change what was sold",
    "orders/partially_fulfilled": "fulfilment does not change what was sold",
    "orders/delete": "deleting an order in the admin does not undo the sale",
    "order_transactions/create": "payments are read with the order; refunds with refunds/create",
}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one webhook body turned into: baskets to store, or the counted reason nothing was stored."""

    baskets: tuple[Basket, ...] = ()
    ignored: str = ""  # a short counter name: "test", "topic", ...
    note: str = ""


def shopify_signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)), the value of X-Shopify-Hmac-Sha256."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time comparison of the header with the expected signature."""
    return bool(header) and hmac.compare_digest(shopify_signature(secret, body).encode(), str(header).encode())


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object with JSON numbers as Decimal (exact), or BadPayload."""
    try:
        obj = json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"body is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(obj, dict):
        raise BadPayload("body is not a JSON object")
    if isinstance(obj.get("id"), bool) or not isinstance(obj.get("id"), int | str) or obj.get("id") in ("", None):
        raise BadPayload("id is missing")
    return obj


def interpret_topic(topic: str, obj: dict[str, Any], currency: str = "", taxes_included: bool = False) -> Outcome:
    """One verified body by its X-Shopify-Topic; `currency` and `taxes_included` are the shop's settings."""
    if topic in SALE_TOPICS or topic in VOID_TOPICS:
        if obj.get("test") is True:
            return Outcome(ignored="test", note="test notification or test order, not stored")
        cancelled = bool(obj.get("cancelled_at")) or obj.get("financial_status") == "voided"
        kind = "void" if topic in VOID_TOPICS or cancelled else "sale"
        return Outcome((order_basket(obj, kind),))
    if topic in REFUND_TOPICS:
        if _is_test_refund(obj):
            return Outcome(ignored="test", note="refund on the test gateway, not stored")
        return Outcome((refund_basket(obj, currency, taxes_included),))
    reason = IGNORED_TOPICS.get(topic)
    if reason:
        return Outcome(ignored="topic", note=f"{topic}: {reason}")
    return Outcome(ignored="topic", note=f"topic {topic!r} is not used")


def _items(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = obj.get(key, [])
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise BadPayload(f"{key} is not a list of objects")
    return items


def _quantity(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadPayload(f"{where}.quantity {value!r} is not a positive integer")
    return value


def _sum(items: list[dict[str, Any]], key: str, currency: str, where: str) -> int:
    return sum(to_minor_units(item.get(key, "0"), currency, f"{where}.{key}") for item in items)


def _payment(order: dict[str, Any]) -> str:
    gateways = [str(g).lower() for g in order.get("payment_gateway_names") or [] if g]
    if not gateways:
        return ""
    if any("cash" in g for g in gateways):
        return "cash"
    return "card" if any(g in ("shopify_payments", "stripe", "paypal") or "card" in g for g in gateways) else "other"


def order_line(item: dict[str, Any], currency: str, taxes_included: bool, where: str) -> BasketLine:
    """One order line as the customer paid for it: after its discount allocations, with added tax."""
    qty = _quantity(item.get("quantity"), where)
    unit = to_minor_units(item.get("price"), currency, f"{where}.price")
    allocations = _items(item, "discount_allocations")
    if allocations:
        discount = _sum(allocations, "amount", currency, f"{where}.discount_allocations")
    else:  # older API versions and draft orders put the line's discount here instead
        discount = to_minor_units(item.get("total_discount") or "0", currency, f"{where}.total_discount")
    tax = 0 if taxes_included else _sum(_items(item, "tax_lines"), "price", currency, f"{where}.tax_lines")
    return BasketLine(
        name=str(item.get("title") or item.get("name") or ""), quantity=qty, unit_price_cents=unit,
        line_total_cents=unit * qty - discount + tax, sku=str(item.get("sku") or ""),
        pos_category=str(item.get("product_type") or ""),
    )  # fmt: skip


def is_tip(item: dict[str, Any]) -> bool:
    """A tip is a line item that names its tip gateway (GraphQL `TipSale` points at a LineItem); not goods sold."""
    return bool(item.get("tip_payment_gateway") or item.get("tip_payment_method"))


def order_basket(order: dict[str, Any], kind: str = "sale") -> Basket:
    """An order body as a sale (or a void); source_id is the order id, "void:<id>" for a void."""
    currency = str(order.get("currency") or "")
    if not currency:
        raise BadPayload("currency is missing")
    taxes_included = order.get("taxes_included") is True
    if "line_items" not in order or not isinstance(order.get("line_items"), list):
        raise BadPayload("line_items is not a list")
    lines = tuple(
        order_line(item, currency, taxes_included, f"line_items[{index}]")
        for index, item in enumerate(_items(order, "line_items"))
        if not is_tip(item)
    )
    return Basket(
        source_id=str(order["id"]) if kind == "sale" else f"void:{order['id']}",
        lines=lines,
        total_cents=to_minor_units(order.get("total_price"), currency, "total_price"),
        kind=kind,
        payment=_payment(order),
        currency=currency.upper(),
        pos_time=str(order.get("processed_at") or order.get("created_at") or ""),
    )


def _is_test_refund(refund: dict[str, Any]) -> bool:
    transactions = [t for t in _items(refund, "transactions") if t.get("kind") == "refund"]
    return bool(transactions) and all(t.get("test") is True for t in transactions)


def refund_currency(refund: dict[str, Any], fallback: str = "") -> str:
    """The refund's currency: from the body (its transactions or money sets) first, else the shop's setting."""
    candidates = [refund.get("currency")]
    candidates += [t.get("currency") for t in _items(refund, "transactions")]
    for item in _items(refund, "refund_line_items"):
        money_set = item.get("subtotal_set")
        money = money_set.get("shop_money") if isinstance(money_set, dict) else None
        candidates.append(money.get("currency_code") if isinstance(money, dict) else None)
    found = next((str(c) for c in candidates if isinstance(c, str) and c), fallback)
    if not found:
        # guessing two digits would store a JPY refund 100 times too large: refuse, loudly, with the fix
        raise BadPayload('the refund names no currency; set currency = "<ISO code>" for this driver')
    return found.upper()


def refund_basket(refund: dict[str, Any], currency: str = "", taxes_included: bool = False) -> Basket:
    """A refunds/create body as a refund basket: negative lines, the money paid back as its total."""
    currency = refund_currency(refund, currency)
    lines = []
    for index, item in enumerate(_items(refund, "refund_line_items")):
        where = f"refund_line_items[{index}]"
        line_item = item.get("line_item")
        if not isinstance(line_item, dict):
            raise BadPayload(f"{where}.line_item is missing")
        qty = _quantity(item.get("quantity"), where)
        if "subtotal" in item:  # after discounts; the line's tax is given beside it
            paid = to_minor_units(item["subtotal"], currency, f"{where}.subtotal")
            if not taxes_included:
                paid += to_minor_units(item.get("total_tax", "0"), currency, f"{where}.total_tax")
        else:  # older bodies: the refunded share of the original line
            whole = order_line(line_item, currency, taxes_included, f"{where}.line_item")
            paid = whole.line_total_cents * qty // _quantity(line_item.get("quantity", qty), f"{where}.line_item")
        unit = to_minor_units(line_item.get("price"), currency, f"{where}.line_item.price")
        lines.append(BasketLine(
            name=str(line_item.get("title") or line_item.get("name") or ""), quantity=qty, unit_price_cents=unit,
            line_total_cents=-abs(paid), sku=str(line_item.get("sku") or ""),
            pos_category=str(line_item.get("product_type") or ""),
        ))  # fmt: skip
    paid_back = [
        to_minor_units(t.get("amount"), currency, "transactions.amount")
        for t in _items(refund, "transactions")
        if t.get("kind") == "refund" and t.get("status", "success") == "success"
    ]
    total = -abs(sum(paid_back)) if paid_back else sum(line.line_total_cents for line in lines)
    return Basket(f"refund:{refund['id']}", tuple(lines), total, "refund", "", currency, "",
                  str(refund.get("processed_at") or refund.get("created_at") or ""))  # fmt: skip
