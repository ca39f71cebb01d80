"""The Shopify webhook driver over real HTTP on 127.0.0.1: signature, replay, malformed bodies, Decimal money."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from agent.driver_api import Basket, BasketLine
from agent.driver_api.kit import RecordingSink
from agent.driver_api.webhook import BadPayload
from drivers.shopify_webhook.driver import ShopifyWebhookDriver
from drivers.shopify_webhook.protocol import shopify_signature, to_minor_units

SECRET = "hush"
ORDER = {
    "id": 450789469, "name": "#1001", "created_at": "2008-01-10T11:00:00-05:00", "currency": "USD",
    "total_price": "409.94", "payment_gateway_names": ["bogus"], "source_name": "pos",
    "line_items": [
        {"id": 466157049, "title": "IPod Nano - 8gb", "sku": "IPOD2008GREEN", "quantity": 1, "price": "199.00",
         "total_discount": "0.00", "product_type": "Cult Products"},
        {"id": 518995019, "title": "IPod Nano - 8gb", "sku": "IPOD2008RED", "quantity": 1, "price": "199.00",
         "total_discount": "0.00"},
    ],
}  # fmt: skip


@pytest.fixture
def driver() -> Iterator[tuple[ShopifyWebhookDriver, RecordingSink]]:
    drv = ShopifyWebhookDriver.from_options("shopify_pos", {"secret": SECRET, "port": 0})
    sink = RecordingSink()
    drv.start(sink)
    deadline = time.monotonic() + 5
    while not drv.health()["connected"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield drv, sink
    drv.stop()


def post(drv: ShopifyWebhookDriver, body: bytes, topic: str = "orders/create", hook_id: str = "wh-1",
         signature: str | None = "auto") -> tuple[int, str]:  # fmt: skip
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": hook_id, "Content-Type": "application/json"}
    if signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = shopify_signature(SECRET, body) if signature == "auto" else signature
    request = urllib.request.Request(f"http://127.0.0.1:{drv.bound_port}/shopify/webhook", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_orders_create_becomes_a_basket_with_exact_money(driver: Any) -> None:
    drv, sink = driver
    assert post(drv, json.dumps(ORDER).encode())[0] == 200
    assert sink.readings == [Basket("450789469", (
        BasketLine("IPod Nano - 8gb", 1, 19900, 19900, "IPOD2008GREEN", "Cult Products"),
        BasketLine("IPod Nano - 8gb", 1, 19900, 19900, "IPOD2008RED"),
    ), 40994, "sale", "other", "USD", "", "2008-01-10T11:00:00-05:00")]  # fmt: skip


def test_bad_signature_is_401_and_nothing_is_emitted(driver: Any) -> None:
    drv, sink = driver
    body = json.dumps(ORDER).encode()
    assert post(drv, body, signature=shopify_signature("wrong", body))[0] == 401
    assert post(drv, body, signature=None)[0] == 401
    assert sink.readings == []


def test_replayed_webhook_id_is_emitted_once(driver: Any) -> None:
    drv, sink = driver
    body = json.dumps(ORDER).encode()
    assert [post(drv, body)[0] for _ in range(2)] == [200, 200]
    assert len(sink.readings) == 1


def test_malformed_body_is_400_with_the_reason(driver: Any) -> None:
    drv, sink = driver
    status, text = post(drv, json.dumps({**ORDER, "total_price": "12.345"}).encode())
    assert status == 400 and "total_price" in text
    assert sink.readings == []


def test_refund_has_negative_lines_and_total(driver: Any) -> None:
    drv, sink = driver
    line = ORDER["line_items"][0]  # type: ignore[index]
    refund = {"id": 509562969, "order_id": 450789469, "created_at": "2008-01-10T12:00:00-05:00",
              "refund_line_items": [{"quantity": 1, "subtotal": "199.00", "line_item": line}],
              "transactions": [{"kind": "refund", "status": "success", "amount": "209.00",
                                "currency": "USD"}]}  # fmt: skip
    assert post(drv, json.dumps(refund).encode(), topic="refunds/create", hook_id="wh-r")[0] == 200
    (basket,) = sink.readings
    assert (basket.source_id, basket.kind, basket.total_cents) == ("refund:509562969", "refund", -20900)
    assert basket.lines[0].line_total_cents == -19900


@pytest.mark.parametrize(
    ("text", "currency", "cents"),
    [("409.94", "USD", 40994), ("0.10", "EUR", 10), ("1000", "JPY", 1000), ("1.234", "KWD", 1234)],
)
def test_decimal_strings_become_exact_minor_units(text: str, currency: str, cents: int) -> None:
    assert to_minor_units(text, currency) == cents


def test_more_decimals_than_the_currency_has_is_rejected() -> None:
    with pytest.raises(BadPayload):
        to_minor_units("0.001", "USD")
