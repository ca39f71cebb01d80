"""Square webhooks and orders -> Basket (pure: JSON bytes and dicts in, typed results out; no I/O).

Sources (protocols.md 4.2): the webhook envelope `{merchant_id, type, event_id, created_at, data:
{type, id, object: {payment | refund}}}`; `X-Square-HmacSha256-Signature` = base64(HMAC-SHA256(
signature key, notification URL + raw body)); money is an integer in the smallest currency unit
(`amount_money.amount`); an `OrderLineItem` has `name`, `quantity` (a string, "3" or "1.70000" when
`quantity_unit` is set), `catalog_object_id`, `base_price_money`, `total_money`. Orders made in the
Square Point of Sale app fire no `order.created`, so a sale is `payment.created` / `payment.updated`
with `status: COMPLETED`, followed to its order with RetrieveOrder.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from agent.driver_api import Basket, BasketLine
from drivers.webhook_http import BadPayload

PAYMENT_EVENTS = ("payment.created", "payment.updated")
REFUND_EVENTS = ("refund.created", "refund.updated")


def square_signature(signature_key: str, notification_url: str, body: bytes) -> str:
    """base64(HMAC-SHA256(key, url + body)), the value of X-Square-HmacSha256-Signature."""
    digest = hmac.new(signature_key.encode(), notification_url.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_ok(signature_key: str, notification_url: str, body: bytes, header: str | None) -> bool:
    """Constant-time comparison of the header with the expected signature."""
    if not header:
        return False
    return hmac.compare_digest(square_signature(signature_key, notification_url, body).encode(), header.encode())


@dataclasses.dataclass(frozen=True)
class SquareEvent:
    """The parts of a webhook event the driver acts on."""

    event_id: str
    type: str
    created_at: str
    payment: dict[str, Any] | None = None
    refund: dict[str, Any] | None = None

    def order_id(self) -> str:
        """The order to fetch, "" if none."""
        source = self.payment or self.refund or {}
        return str(source.get("order_id") or "")


def parse_event(body: bytes) -> SquareEvent:
    """Parse and check the envelope; raise BadPayload with a reason."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"body is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(event, dict):
        raise BadPayload("body is not a JSON object")
    event_id, kind = event.get("event_id"), event.get("type")
    if not isinstance(event_id, str) or not event_id:
        raise BadPayload("event_id is missing")
    if not isinstance(kind, str) or not kind:
        raise BadPayload("type is missing")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    payment = refund = None
    if kind in PAYMENT_EVENTS or kind in REFUND_EVENTS:
        key = "payment" if kind in PAYMENT_EVENTS else "refund"
        inner = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(inner, dict) or not isinstance(inner.get("id"), str):
            raise BadPayload(f"data.object.{key} with an id is missing")
        _money(inner, "amount_money")
        payment, refund = (inner, None) if key == "payment" else (None, inner)
    return SquareEvent(event_id, kind, str(event.get("created_at", "")), payment, refund)


def _money(obj: dict[str, Any], key: str) -> tuple[int, str]:
    money = obj.get(key)
    if not isinstance(money, dict) or isinstance(money.get("amount"), bool) or not isinstance(money.get("amount"), int):
        raise BadPayload(f"{key}.amount is not an integer in minor units")
    return money["amount"], str(money.get("currency", ""))


def quantity_of(text: object, has_unit: bool = False) -> tuple[int, bool]:
    """("3") -> (3, False); ("1.70000") or a measured unit -> (1, True): a weighed item counts once."""
    try:
        value = Decimal(str(text))
    except InvalidOperation as exc:
        raise BadPayload(f"quantity {text!r} is not a number") from exc
    if not value.is_finite() or value <= 0:
        raise BadPayload(f"quantity {text!r} is not positive")
    if has_unit or value != value.to_integral_value():
        return 1, True
    return int(value), False


def _payment_kind(payment: dict[str, Any] | None) -> str:
    source = str((payment or {}).get("source_type", "")).upper()
    return {"CARD": "card", "CASH": "cash"}.get(source, "other" if source else "")


def _lines(items: object, sign: int) -> tuple[BasketLine, ...]:
    if not isinstance(items, list):
        raise BadPayload("line_items is not a list")
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadPayload(f"line_items[{index}] is not an object")
        qty, weighed = quantity_of(item.get("quantity", "1"), bool(item.get("quantity_unit")))
        total, _ = _money(item, "total_money")
        unit = total if weighed else _money(item, "base_price_money")[0] if "base_price_money" in item else total // qty
        lines.append(
            BasketLine(
                name=str(item.get("name", "")),
                quantity=qty,
                unit_price_cents=abs(unit),
                line_total_cents=sign * abs(total),
                sku=str(item.get("catalog_object_id", "")),  # no category on Square line items; map by sku
            )
        )
    return tuple(lines)


def sale_basket(order: dict[str, Any], payment: dict[str, Any] | None) -> Basket:
    """A completed order as a sale; source_id is the order id (payment.created and .updated share it)."""
    if not isinstance(order, dict) or not isinstance(order.get("id"), str):
        raise BadPayload("the order has no id")
    total, currency = _money(order, "total_money")
    return Basket(
        source_id=order["id"],
        lines=_lines(order.get("line_items", []), 1),
        total_cents=total,
        kind="sale",
        payment=_payment_kind(payment),
        currency=currency,
        pos_time=str(order.get("closed_at") or order.get("created_at") or ""),
    )


def payment_only_basket(payment: dict[str, Any]) -> Basket:
    """A completed payment without an order (a quick amount): no lines, flagged so it stays local."""
    total, currency = _money(payment, "amount_money")
    return Basket(f"payment:{payment['id']}", (), total, "sale", _payment_kind(payment), currency, "no_items",
                  str(payment.get("created_at", "")))  # fmt: skip


def refund_basket(refund: dict[str, Any], order: dict[str, Any] | None) -> Basket:
    """A completed refund: itemised from the order's returns when it has them, else one unitemised line."""
    amount, currency = _money(refund, "amount_money")
    lines: tuple[BasketLine, ...] = ()
    if order:
        returned = [item for r in order.get("returns", []) or [] for item in r.get("return_line_items", []) or []]
        if returned:
            lines = _lines(returned, -1)
        elif order.get("line_items") and _money(order, "total_money")[0] == amount:
            lines = _lines(order["line_items"], -1)  # a full refund of the order
    if not lines:
        lines = (BasketLine("refund (not itemised)", 1, amount, -amount),)
    return Basket(f"refund:{refund['id']}", lines, -amount, "refund", "", currency, "",
                  str(refund.get("created_at", "")))  # fmt: skip
