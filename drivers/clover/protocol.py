"""Clover webhook notifications and REST orders -> Basket (pure: bytes and dicts in, typed results out; no I/O).

Sources (named again next to each test fixture):
- docs.clover.com "Use webhooks": the verification request is one POST with `{"verificationCode": "..."}`;
  every later message carries the app's Clover Auth Code in the `X-Clover-Auth` header; a message is
  `{"appId": ..., "merchants": {"<merchantId>": [{"objectId": "O:<orderId>", "type": "CREATE" | "UPDATE" |
  "DELETE", "ts": <ms>}]}}` and Clover does not guarantee when, or if, a notification arrives.
- clover/clover-android-sdk `v3/order/Order.java`, `LineItem.java`: an order has `id`, `currency`, `total`
  (cents), `state`, `createdTime` / `modifiedTime` (ms), and `lineItems`, `payments`, `refunds`, `credits`
  as `{"elements": [...]}`; a line item has `name`, `price` (cents), `unitQty`, `unitName`, `item.id`,
  `discounts`, `modifications`, `refunded`, `exchanged`, `isRevenue`.
- clover/clover-android-sdk `v3/order/OrderCalc.java`: `unitQty` is divided by 1000 (thousandths of the unit),
  modifications add to the price, line discounts are negative `amount`s or a `percentage`, refunded and
  exchanged lines do not count.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from agent.driver_api import Basket, BasketLine
from agent.driver_api.webhook import BadPayload

UNIT_QTY_DIVISOR = 1000
NOTIFICATION_TYPES = ("CREATE", "UPDATE", "DELETE")
PAID_STATES = ("locked", "paid")  # "open" orders are still being rung up


def auth_ok(expected: str, header: str | None) -> bool:
    """Constant-time comparison of X-Clover-Auth with the configured auth code."""
    if not expected or not header:
        return False
    return hmac.compare_digest(expected.encode(), header.strip().encode())


@dataclasses.dataclass(frozen=True)
class OrderNotice:
    """One order notification: fetch the order, unless it was deleted."""

    merchant_id: str
    order_id: str
    type: str
    ts_ms: int


@dataclasses.dataclass(frozen=True)
class Notification:
    """A parsed webhook body: a verification request, or notices (non-order objects are counted, not fetched)."""

    verification_code: str = ""
    orders: tuple[OrderNotice, ...] = ()
    other_objects: int = 0


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"body is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise BadPayload("body is not a JSON object")
    return data


def verification_code(body: bytes) -> str:
    """The code of a verification request (a JSON object with only verificationCode), else ""."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    if isinstance(data, dict) and set(data) == {"verificationCode"} and isinstance(data["verificationCode"], str):
        return data["verificationCode"].strip()
    return ""


def parse_notification(body: bytes) -> Notification:
    """Parse a webhook body; raise BadPayload with the reason."""
    code = verification_code(body)
    if code:
        return Notification(verification_code=code)
    data = _json_object(body)
    merchants = data.get("merchants")
    if not isinstance(merchants, dict):
        raise BadPayload("merchants is missing or not an object")
    notices, others = [], 0
    for merchant_id, updates in merchants.items():
        if not isinstance(updates, list):
            raise BadPayload(f"merchants.{merchant_id} is not a list")
        for index, update in enumerate(updates):
            where = f"merchants.{merchant_id}[{index}]"
            if not isinstance(update, dict) or not isinstance(update.get("objectId"), str):
                raise BadPayload(f"{where}.objectId is missing")
            prefix, _, object_id = update["objectId"].partition(":")
            kind, ts = update.get("type"), update.get("ts", 0)
            if kind not in NOTIFICATION_TYPES:
                raise BadPayload(f"{where}.type {kind!r} is not CREATE, UPDATE or DELETE")
            if isinstance(ts, bool) or not isinstance(ts, int):
                raise BadPayload(f"{where}.ts is not an integer (ms)")
            if prefix != "O":
                others += 1  # payments (P:), items (I:), customers (C:): the order notice carries the sale
                continue
            if not object_id:
                raise BadPayload(f"{where}.objectId has no order id")
            notices.append(OrderNotice(str(merchant_id), object_id, kind, ts))
    return Notification(orders=tuple(notices), other_objects=others)


def _elements(obj: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """Clover's expanded collections are {"elements": [...]}; some answers give a bare list."""
    value = obj.get(key)
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get("elements", [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadPayload(f"{key} is not a list of objects")
    return value


def _cents(obj: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadPayload(f"{key} {value!r} is not an integer amount in cents")
    return value


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line_of(item: Mapping[str, Any], sign: int = 1) -> BasketLine:
    """One Clover line item: (price + modifications) x unitQty/1000, less its discounts, in cents."""
    price = _cents(item, "price", 0)
    modifications = sum(_cents(m, "amount", 0) for m in _elements(item, "modifications"))
    unit_qty = item.get("unitQty")
    if unit_qty is not None and (isinstance(unit_qty, bool) or not isinstance(unit_qty, int) or unit_qty <= 0):
        raise BadPayload(f"unitQty {unit_qty!r} is not a positive integer (thousandths)")
    gross = Decimal(price + modifications)
    if unit_qty is not None:
        gross = gross * unit_qty / UNIT_QTY_DIVISOR
    discount = Decimal(0)
    for entry in _elements(item, "discounts"):
        if entry.get("amount") is not None:
            discount += -_cents(entry, "amount")  # Clover stores an amount discount as a negative number
        elif entry.get("percentage") is not None:
            discount += gross * Decimal(_cents(entry, "percentage")) / 100
    total = _round(gross - discount)
    weighed = bool(item.get("unitName")) or (unit_qty is not None and unit_qty % UNIT_QTY_DIVISOR != 0)
    if weighed or unit_qty is None:
        quantity, unit = 1, total if weighed else price + modifications
    else:
        quantity, unit = unit_qty // UNIT_QTY_DIVISOR, price + modifications
    ref = item.get("item")
    sku = str(ref.get("id", "")) if isinstance(ref, dict) else ""
    return BasketLine(str(item.get("name", "")), quantity, abs(unit), sign * total, sku)


def _time(ms: object) -> str:
    if isinstance(ms, bool) or not isinstance(ms, int):
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _payment_kind(payments: list[dict[str, Any]]) -> str:
    labels = {str((p.get("tender") or {}).get("labelKey", "")) for p in payments if p.get("result") == "SUCCESS"}
    if not labels:
        return ""
    if labels == {"com.clover.tender.cash"}:
        return "cash"
    if labels <= {"com.clover.tender.credit_card", "com.clover.tender.debit_card"}:
        return "card"
    return "other"


def _counted(item: Mapping[str, Any]) -> bool:
    return not item.get("refunded") and not item.get("exchanged") and item.get("isRevenue", True) is not False


def order_baskets(order: Mapping[str, Any]) -> tuple[list[Basket], str]:
    """A fetched order -> (baskets, note): the sale once it is paid, one refund basket per refund or credit."""
    if not isinstance(order.get("id"), str) or not order["id"]:
        raise BadPayload("the order has no id")
    order_id, currency = order["id"], str(order.get("currency", ""))
    items = _elements(order, "lineItems")
    payments = _elements(order, "payments")
    paid = sum(_cents(p, "amount", 0) for p in payments if p.get("result", "SUCCESS") == "SUCCESS")
    total = _cents(order, "total", 0)
    baskets: list[Basket] = []
    note = ""
    if str(order.get("state", "")).lower() in PAID_STATES or (payments and paid >= total):
        lines = tuple(line_of(item) for item in items if _counted(item))
        flagged = "no_items" if not lines else ""
        baskets.append(Basket(order_id, lines, total, "sale", _payment_kind(payments), currency, flagged,
                              _time(order.get("createdTime"))))  # fmt: skip
    else:
        note = f"order {order_id} is not paid yet (state {order.get('state', '')!r})"
    for key, prefix in (("refunds", "refund"), ("credits", "credit")):
        for refund in _elements(order, key):
            baskets.append(_refund_basket(refund, prefix, order_id, items, total, currency))
    return baskets, note


def _refund_basket(refund: Mapping[str, Any], prefix: str, order_id: str, items: list[dict[str, Any]],
                   order_total: int, currency: str) -> Basket:  # fmt: skip
    if not isinstance(refund.get("id"), str):
        raise BadPayload(f"a {prefix} of order {order_id} has no id")
    amount = abs(_cents(refund, "amount"))
    own = _elements(refund, "lineItems")
    marked = tuple(line_of(item, -1) for item in items if item.get("refunded")) if prefix == "refund" else ()
    if own:
        lines = tuple(line_of(item, -1) for item in own)
    elif marked and -sum(ln.line_total_cents for ln in marked) == amount:
        lines = marked  # the order's lines marked refunded, when they are exactly what this refund paid back
    elif amount == order_total and items:
        lines = tuple(line_of(item, -1) for item in items if item.get("isRevenue", True) is not False)
    else:
        lines = (BasketLine("refund (not itemised)", 1, amount, -amount),)
    # Like a sale, the total includes tax and the lines do not; the release counts lines.
    return Basket(f"{prefix}:{refund['id']}", lines, -amount, "refund", "", currency, "",
                  _time(refund.get("createdTime")))  # fmt: skip


def orders_page(payload: object) -> list[dict[str, Any]]:
    """The orders of a list answer (`{"elements": [...]}`)."""
    if not isinstance(payload, dict):
        raise BadPayload("the order list is not a JSON object")
    return _elements(payload, "elements")
