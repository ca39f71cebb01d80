"""Square webhooks and orders -> Basket (pure: JSON bytes and dicts in, typed results out; no I/O).

Sources (protocols.md 4.2; Square's API reference examples, square/connect-api-specification api.json;
the fixtures in tests/drivers/square_webhook/fixtures/ name theirs): the envelope `{merchant_id, type,
event_id, created_at, data: {type, id, object: {payment | refund | order_created | order_updated}}}`;
`X-Square-HmacSha256-Signature` = base64(HMAC-SHA256(signature key, notification URL + raw body)); money
is an integer in the currency's smallest unit (`amount_money.amount`), so no ISO table is needed here.

Which event does what (`plan`): payment and order events carry ids, so the order is fetched
(RetrieveOrder) after the replay check, and only for events that can make a basket:
- `payment.created` / `payment.updated` with `status: COMPLETED` -> the order's sale (source_id = the
  order id, so a second payment of a split tender or an `order.updated` stores it once);
- a `payment.updated` that reports a refund (`refunded_money`, `refund_ids`) -> nothing: the refund's
  own `refund.updated` carries it, and re-reading the order here would emit the sale again;
- `refund.created` / `refund.updated` with `status: COMPLETED` -> a refund basket (negative lines);
- `order.created` / `order.updated` with state COMPLETED -> the sale (orders made through the API or
  Order Manager; the Point of Sale app publishes no `order.created`), CANCELED -> a void; OPEN or DRAFT
  orders are counted and left for their payment or a later update;
- `order.fulfillment.updated` and payments not (yet) completed are counted and not stored.

A line's total is Square's `total_money`: after its discounts (line and its share of order-level ones),
with its taxes whether additive or inclusive, the same rule as the Shopify driver; tips and service
charges stay in the basket total (`total_money`) and out of the lines.
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
from agent.driver_api.webhook import BadPayload

PAYMENT_EVENTS = ("payment.created", "payment.updated")
REFUND_EVENTS = ("refund.created", "refund.updated")
ORDER_EVENTS = ("order.created", "order.updated")
# Upstream answers that will not change on retry: the order is gone, the token is refused or lacks scope.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410, 422})


def square_signature(signature_key: str, notification_url: str, body: bytes) -> str:
    """base64(HMAC-SHA256(key, url + body)), the value of X-Square-HmacSha256-Signature."""
    digest = hmac.new(signature_key.encode(), notification_url.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_ok(signature_key: str, notification_url: str, body: bytes, header: str | None) -> bool:
    """Constant-time comparison of the header with the expected signature."""
    if not header:
        return False
    return hmac.compare_digest(square_signature(signature_key, notification_url, body).encode(), header.encode())


def fetch_failure_is_permanent(status: int | None) -> bool:
    """True for an HTTP status a retry cannot fix (404, 401, 403, ...); timeouts, 429 and 5xx are transient."""
    return status in PERMANENT_STATUSES


@dataclasses.dataclass(frozen=True)
class SquareEvent:
    """The parts of a webhook event the driver acts on."""

    event_id: str
    type: str
    created_at: str
    payment: dict[str, Any] | None = None
    refund: dict[str, Any] | None = None
    order_stub: dict[str, Any] | None = None  # order_created / order_updated: ids and state only

    def order_id(self) -> str:
        """The order to fetch, "" if none."""
        source = self.payment or self.refund or self.order_stub or {}
        return str(source.get("order_id") or "")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What an event needs: nothing (`ignore` names the counter), a basket now, or an order fetch first."""

    ignore: str = ""
    note: str = ""
    basket: Basket | None = None
    fetch_order: str = ""
    build: str = ""  # "sale", "refund", "void": what the fetched order becomes


def parse_event(body: bytes) -> SquareEvent:
    """Parse and check the envelope; raise BadPayload with a reason."""
    try:
        event = json.loads(body, parse_float=Decimal)
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
    payment = refund = stub = None
    if kind in PAYMENT_EVENTS or kind in REFUND_EVENTS:
        key = "payment" if kind in PAYMENT_EVENTS else "refund"
        inner = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(inner, dict) or not isinstance(inner.get("id"), str):
            raise BadPayload(f"data.object.{key} with an id is missing")
        money(inner, "amount_money")
        payment, refund = (inner, None) if key == "payment" else (None, inner)
    elif kind in ORDER_EVENTS:
        key = kind.replace(".", "_")
        stub = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(stub, dict) or not isinstance(stub.get("order_id"), str) or not stub["order_id"]:
            raise BadPayload(f"data.object.{key}.order_id is missing")
    return SquareEvent(event_id, kind, str(event.get("created_at", "")), payment, refund, stub)


def plan(event: SquareEvent) -> Plan:
    """Decide, without any I/O, what the event becomes (see the module docstring)."""
    if event.payment is not None:
        payment, status = event.payment, str(event.payment.get("status", ""))
        if payment.get("refund_ids") or _amount(payment.get("refunded_money")) > 0:
            return Plan("payment_refund_update", "a refund of this payment: refund.updated carries it")
        if status != "COMPLETED":
            return Plan("payment_not_completed", f"payment status {status or 'missing'}")
        if not event.order_id():
            return Plan(basket=payment_only_basket(payment))
        return Plan(fetch_order=event.order_id(), build="sale")
    if event.refund is not None:
        status = str(event.refund.get("status", ""))
        if status != "COMPLETED":
            return Plan("refund_not_completed", f"refund status {status or 'missing'}")
        if not event.order_id():
            return Plan(basket=refund_basket(event.refund, None))
        return Plan(fetch_order=event.order_id(), build="refund")
    if event.order_stub is not None:
        state = str(event.order_stub.get("state", ""))
        if state == "COMPLETED":
            return Plan(fetch_order=event.order_id(), build="sale")
        if state == "CANCELED":
            return Plan(fetch_order=event.order_id(), build="void")
        return Plan("order_not_final", f"order state {state or 'missing'}: its payment or a later update stores it")
    return Plan("event_type", f"{event.type} is not used")


def build(plan_: Plan, event: SquareEvent, order: dict[str, Any]) -> Basket:
    """The basket a fetched order makes for this plan."""
    if plan_.build == "refund" and event.refund is not None:
        return refund_basket(event.refund, order)
    if plan_.build == "void":
        return dataclasses.replace(sale_basket(order, None), source_id=f"void:{order['id']}", kind="void")
    return sale_basket(order, event.payment)


def dead_letter_record(event: SquareEvent, reason: str) -> Basket:
    """A flagged, unitemised basket that keeps an event whose order can never be fetched (kept local)."""
    source = event.refund or event.payment or {}
    amount, currency = money(source, "amount_money") if source else (0, "")
    is_refund = event.refund is not None
    return Basket(
        source_id=f"dead_letter:{event.event_id}",
        lines=(),
        total_cents=-amount if is_refund else amount,
        kind="refund" if is_refund else "sale",
        payment=_payment_kind(event.payment),
        currency=currency,
        flagged="dead_letter",
        pos_time=str(source.get("created_at") or event.created_at),
    )


def _amount(obj: object) -> int:
    amount = obj.get("amount") if isinstance(obj, dict) else 0
    return amount if isinstance(amount, int) and not isinstance(amount, bool) else 0


def money(obj: dict[str, Any], key: str) -> tuple[int, str]:
    """(amount in minor units, currency) of obj[key]; BadPayload when it is not an integer amount."""
    value = obj.get(key)
    if not isinstance(value, dict) or isinstance(value.get("amount"), bool) or not isinstance(value.get("amount"), int):
        raise BadPayload(f"{key}.amount is not an integer in minor units")
    return value["amount"], str(value.get("currency", ""))


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


def _payment_kind(payment: dict[str, Any] | None, order: dict[str, Any] | None = None) -> str:
    sources = [str((payment or {}).get("source_type", "")).upper()]
    sources += [str(t.get("type", "")).upper() for t in (order or {}).get("tenders") or [] if isinstance(t, dict)]
    kinds = {{"CARD": "card", "CASH": "cash"}.get(s, "other") for s in sources if s}
    if not kinds:
        return ""
    return kinds.pop() if len(kinds) == 1 else "other"


def _lines(items: object, sign: int) -> tuple[BasketLine, ...]:
    if not isinstance(items, list):
        raise BadPayload("line_items is not a list")
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadPayload(f"line_items[{index}] is not an object")
        qty, weighed = quantity_of(item.get("quantity", "1"), bool(item.get("quantity_unit")))
        total, _ = money(item, "total_money")
        unit = total if weighed else money(item, "base_price_money")[0] if "base_price_money" in item else total // qty
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
    total, currency = money(order, "total_money")
    return Basket(
        source_id=order["id"],
        lines=_lines(order.get("line_items", []), 1),
        total_cents=total,
        kind="sale",
        payment=_payment_kind(payment, order),
        currency=currency,
        pos_time=str(order.get("closed_at") or order.get("created_at") or ""),
    )


def payment_only_basket(payment: dict[str, Any]) -> Basket:
    """A completed payment without an order (a quick amount): no lines, flagged so it stays local."""
    total, currency = money(payment, "amount_money")
    return Basket(f"payment:{payment['id']}", (), total, "sale", _payment_kind(payment), currency, "no_items",
                  str(payment.get("created_at", "")))  # fmt: skip


def refund_basket(refund: dict[str, Any], order: dict[str, Any] | None) -> Basket:
    """A completed refund: itemised from the order's returns when it has them, else one unitemised line."""
    amount, currency = money(refund, "amount_money")
    lines: tuple[BasketLine, ...] = ()
    if order:
        returned = [item for r in order.get("returns", []) or [] for item in r.get("return_line_items", []) or []]
        if returned:
            lines = _lines(returned, -1)
        elif order.get("line_items") and money(order, "total_money")[0] == amount:
            lines = _lines(order["line_items"], -1)  # a full refund of the order
    if not lines:
        lines = (BasketLine("refund (not itemised)", 1, amount, -amount),)
    return Basket(f"refund:{refund['id']}", lines, -amount, "refund", "", currency, "",
                  str(refund.get("created_at", "")))  # fmt: skip
