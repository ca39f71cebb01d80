"""The Square webhook driver over real HTTP on 127.0.0.1, with a local HTTP server playing RetrieveOrder."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.driver_api import Basket, BasketLine
from agent.driver_api.kit import RecordingSink
from drivers.square_webhook.driver import SquareWebhookDriver
from drivers.square_webhook.protocol import square_signature

KEY, URL = "test-signature-key", "https://shop.example.org/square/webhook"
ORDER = {
    "id": "ORDER1", "created_at": "2026-05-20T14:25:20Z", "closed_at": "2026-05-20T14:25:28Z",
    "total_money": {"amount": 1054, "currency": "USD"},
    "line_items": [
        {"uid": "a", "name": "Croissant", "quantity": "2", "catalog_object_id": "VAR-CRO",
         "base_price_money": {"amount": 250, "currency": "USD"}, "total_money": {"amount": 500, "currency": "USD"}},
        {"uid": "b", "name": "Cheddar", "quantity": "1.70000",
         "quantity_unit": {"measurement_unit": {"weight_unit": "IMPERIAL_POUND"}},
         "catalog_object_id": "VAR-CHE", "base_price_money": {"amount": 326, "currency": "USD"},
         "total_money": {"amount": 554, "currency": "USD"}},
    ],
}  # fmt: skip


class FlakySink(RecordingSink):
    def __init__(self) -> None:
        super().__init__()
        self.flush_ok = True

    def flush(self, timeout: float = 10.0) -> bool:
        return self.flush_ok


class OrderServer:
    """A local HTTP server answering GET /v2/orders/<id> like Square's RetrieveOrder."""

    def __init__(self, orders: dict[str, dict[str, Any]]) -> None:
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Authorization", "")))
                order = orders.get(self.path.rsplit("/", 1)[-1])
                body = json.dumps({"order": order} if order else {"errors": [{"code": "NOT_FOUND"}]}).encode()
                self.send_response(200 if order else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def running() -> Iterator[tuple[SquareWebhookDriver, FlakySink, OrderServer]]:
    orders = OrderServer({"ORDER1": ORDER})
    driver = SquareWebhookDriver.from_options("square_pos", {
        "notification_url": URL, "signature_key": KEY, "access_token": "tok", "port": 0, "api_base": orders.base,
    })  # fmt: skip
    sink = FlakySink()
    driver.start(sink)
    deadline = time.monotonic() + 5
    while not driver.health()["connected"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield driver, sink, orders
    driver.stop()
    orders.close()


def event(kind: str = "payment.updated", event_id: str = "ev-1", **payment: Any) -> bytes:
    obj = {"id": "PAY1", "status": "COMPLETED", "order_id": "ORDER1", "source_type": "CARD",
           "amount_money": {"amount": 1054, "currency": "USD"}, **payment}  # fmt: skip
    key = "refund" if kind.startswith("refund") else "payment"
    envelope = {"merchant_id": "M1", "type": kind, "event_id": event_id, "created_at": "2026-05-20T14:25:28.000Z",
                "data": {"type": key, "id": obj["id"], "object": {key: obj}}}  # fmt: skip
    return json.dumps(envelope).encode()


def post(driver: SquareWebhookDriver, body: bytes, signature: str | None = "auto") -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        signature = square_signature(KEY, URL, body)
    if signature is not None:
        headers["X-Square-HmacSha256-Signature"] = signature
    request = urllib.request.Request(f"http://127.0.0.1:{driver.bound_port}/square/webhook", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_completed_payment_fetches_the_order_and_emits_the_basket(running: Any) -> None:
    driver, sink, orders = running
    assert post(driver, event())[0] == 200
    assert sink.readings == [Basket("ORDER1", (
        BasketLine("Croissant", 2, 250, 500, "VAR-CRO"), BasketLine("Cheddar", 1, 554, 554, "VAR-CHE"),
    ), 1054, "sale", "card", "USD", "", "2026-05-20T14:25:28Z")]  # fmt: skip
    assert orders.requests == [("/v2/orders/ORDER1", "Bearer tok")]


def test_bad_signature_is_401_and_nothing_is_emitted(running: Any) -> None:
    driver, sink, orders = running
    assert post(driver, event(), signature="AAAA")[0] == 401
    assert post(driver, event(), signature=None)[0] == 401
    assert sink.readings == [] and orders.requests == []
    assert sink.bad == ["bad_signature", "bad_signature"]


def test_signature_over_another_url_is_rejected(running: Any) -> None:
    driver, sink, _ = running
    body = event()
    assert post(driver, body, signature=square_signature(KEY, URL + "x", body))[0] == 401
    assert sink.readings == []


def test_replayed_event_id_is_emitted_once(running: Any) -> None:
    driver, sink, _ = running
    assert [post(driver, event())[0] for _ in range(3)] == [200, 200, 200]
    assert len(sink.readings) == 1 and driver.health()["duplicates"] == 2


def test_malformed_body_is_400_with_the_reason(running: Any) -> None:
    driver, sink, _ = running
    status, text = post(driver, b"{not json")
    assert status == 400 and "not JSON" in text
    status, text = post(driver, json.dumps({"type": "payment.updated"}).encode())
    assert status == 400 and "event_id is missing" in text
    assert sink.readings == []


def test_unfinished_payment_is_acknowledged_and_not_stored(running: Any) -> None:
    driver, sink, orders = running
    assert post(driver, event(status="APPROVED"))[0] == 200
    assert sink.readings == [] and orders.requests == []


def test_failed_flush_answers_503_and_a_retry_is_stored(running: Any) -> None:
    driver, sink, _ = running
    sink.flush_ok = False
    assert post(driver, event())[0] == 503
    sink.flush_ok = True
    assert post(driver, event())[0] == 200  # not remembered as done: the retry goes through
    assert [b.source_id for b in sink.readings] == ["ORDER1", "ORDER1"]  # the agent dedupes on source_id


def test_unknown_order_is_a_dead_letter_answered_200(running: Any) -> None:
    driver, sink, _ = running
    assert post(driver, event(order_id="NOPE"))[0] == 200  # a 503 would make Square retry a 404 for a day
    (record,) = sink.readings
    assert (record.source_id, record.flagged, record.total_cents) == ("dead_letter:ev-1", "dead_letter", 1054)
    assert driver.health()["dead_letters"] == 1


def test_completed_full_refund_is_a_refund_with_negative_lines(running: Any) -> None:
    driver, sink, _ = running
    assert post(driver, event("refund.updated", "ev-r", id="REF1", payment_id="PAY1"))[0] == 200
    (basket,) = sink.readings
    assert (basket.source_id, basket.kind, basket.total_cents) == ("refund:REF1", "refund", -1054)
    assert [ln.line_total_cents for ln in basket.lines] == [-500, -554]
