"""Square's own published examples (fixtures/, sources in fixtures/SOURCES.md), parsed and posted over real HTTP,
with a local HTTP server standing in for RetrieveOrder (and for its failures)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.driver_api import Basket, BasketLine
from agent.driver_kit import RecordingSink
from drivers.square_webhook.driver import SquareWebhookDriver
from drivers.square_webhook.protocol import fetch_failure_is_permanent, refund_basket, sale_basket, square_signature

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED: dict[str, list[dict[str, Any]]] = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
KEY, URL = "fixture-signature-key", "https://shop.example.org/square/webhook"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def basket_of(expected: dict[str, Any]) -> Basket:
    lines = tuple(BasketLine(*line) for line in expected["lines"])
    return Basket(expected["source_id"], lines, expected["total_cents"], expected["kind"], expected["payment"],
                  expected["currency"], expected["flagged"], expected["pos_time"])  # fmt: skip


class OrderApi:
    """GET /v2/orders/<id> like RetrieveOrder: the order file named for the id (answered under that id), or `fail`."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.fail: int | None = None  # an HTTP status to answer every request with
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                order_id = self.path.rsplit("/", 1)[-1]
                outer.requests.append(order_id)
                order = outer.orders.get(order_id)
                status = outer.fail or (200 if order else 404)
                answer = {"order": {**order, "id": order_id}} if status == 200 and order else None
                body = json.dumps(answer or {"errors": [{"category": "API_ERROR", "code": "NOT_FOUND"}]}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def running() -> Iterator[tuple[SquareWebhookDriver, RecordingSink, OrderApi]]:
    api = OrderApi()
    driver = SquareWebhookDriver.from_options("square_pos", {
        "notification_url": URL, "signature_key": KEY, "access_token": "tok", "port": 0, "api_base": api.base,
    })  # fmt: skip
    sink = RecordingSink()
    driver.start(sink)
    deadline = time.monotonic() + 5
    while not driver.health()["connected"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield driver, sink, api
    driver.stop()
    api.close()


def post(driver: SquareWebhookDriver, body: bytes) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "X-Square-HmacSha256-Signature": square_signature(KEY, URL, body)}
    request = urllib.request.Request(f"http://127.0.0.1:{driver.bound_port}/square/webhook", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_corpus_covers_what_issue_14_asks_for() -> None:
    files = {p.name for p in FIXTURES.glob("*.json")} - {"expected.json"}
    assert len(files) >= 10
    named = {c["event"] for c in EXPECTED["events"]} | {c.get("order", "") for c in EXPECTED["events"]}
    named |= {c["order"] for c in EXPECTED["orders"]} | {c["refund"] for c in EXPECTED["refunds"]}
    assert files - named == {"update_payment_response.json"}  # the source of the derived tip event only
    baskets = [c["basket"] for group in EXPECTED.values() for c in group if "basket" in c]
    assert {"JPY", "USD", "KWD"} <= {b["currency"] for b in baskets}  # 0, 2 and 3 minor digits
    assert {"sale", "refund", "void"} == {b["kind"] for b in baskets}


def test_every_fixture_names_its_source() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    for path in FIXTURES.glob("*.json"):
        assert path.name == "expected.json" or f"`{path.name}`" in sources, f"{path.name} has no line in SOURCES.md"


@pytest.mark.parametrize("case", EXPECTED["orders"], ids=[c["order"] for c in EXPECTED["orders"]])
def test_order_example_becomes_the_expected_sale(case: dict[str, Any]) -> None:
    doc = load(case["order"])
    order = doc["orders"][0] if case["path"] == "orders.0" else doc["order"]
    assert sale_basket(order, None) == basket_of(case["basket"])


def test_refund_example_without_an_order_is_one_unitemised_line() -> None:
    (case,) = EXPECTED["refunds"]
    assert refund_basket(load(case["refund"])["refund"], None) == basket_of(case["basket"])


def test_line_totals_follow_discounts_and_taxes() -> None:
    created = sale_basket(load("create_order_response.json")["order"], None)
    assert [line.line_total_cents for line in created.lines] == [1648, 4528]  # 1599 - 87 + 136; 4500 - 346 + 374
    inclusive = sale_basket(load("checkout_order_inclusive_tax_derived.json")["order"], None)
    assert sum(line.line_total_cents for line in inclusive.lines) == inclusive.total_cents == 14503


@pytest.mark.parametrize("case", EXPECTED["events"], ids=[c["event"] for c in EXPECTED["events"]])
def test_event_example_over_http(running: Any, case: dict[str, Any]) -> None:
    driver, sink, api = running
    event = load(case["event"])
    if "order" in case:
        stub = event["data"]["object"]
        order_id = next(iter(stub.values()))["order_id"]
        api.orders[order_id] = load(case["order"])["order"]
    status, text = post(driver, (FIXTURES / case["event"]).read_bytes())
    assert status == 200, text
    if "ignored" in case:
        assert sink.readings == [] and api.requests == []  # an event that makes no basket fetches nothing
        assert driver.health()[f"ignored_{case['ignored']}"] == 1
    else:
        assert sink.readings == [basket_of(case["basket"])]
        assert len(api.requests) == 1


def test_refund_payment_update_does_not_emit_the_sale_again(running: Any) -> None:
    driver, sink, api = running
    api.orders["03O3USaPaAaFnI6kkwB1JxGgBsUZY"] = load("retrieve_order_response.json")["order"]
    assert post(driver, (FIXTURES / "payment_updated_event.json").read_bytes())[0] == 200
    assert post(driver, (FIXTURES / "payment_updated_refunded_derived_event.json").read_bytes())[0] == 200
    assert [b.kind for b in sink.readings] == ["sale"] and len(api.requests) == 1


def test_permanent_fetch_error_is_a_dead_letter_not_an_endless_503(running: Any, caplog: Any) -> None:
    driver, sink, api = running  # no order is known yet: RetrieveOrder answers 404
    body = (FIXTURES / "payment_updated_event.json").read_bytes()
    status, text = post(driver, body)
    assert status == 200 and "dead letter" in text and "HTTP 404" in text
    (record,) = sink.readings
    assert (record.flagged, record.total_cents, record.lines) == ("dead_letter", 100, ())  # kept local, out of releases
    health = driver.health()
    assert health["dead_letters"] == 1 and "HTTP 404" in health["last_dead_letter"]
    assert sink.bad == ["dead_letter"]
    assert any("dead letter" in r.getMessage() and "HTTP 404" in r.getMessage() for r in caplog.records)
    assert post(driver, body)[0] == 200 and len(sink.readings) == 1  # Square's retry is a duplicate
    assert "HTTP 404" in driver.health()["degraded"]  # /health says degraded while it lasts
    api.orders["03O3USaPaAaFnI6kkwB1JxGgBsUZY"] = load("retrieve_order_response.json")["order"]
    replay = load("payment_updated_event.json")
    replay["event_id"] = "a-later-event"
    assert post(driver, json.dumps(replay).encode())[0] == 200
    assert driver.health()["degraded"] == "" and len(sink.readings) == 2  # stored again: no longer degraded


@pytest.mark.parametrize("status", [401, 403])
def test_refused_token_is_a_dead_letter(running: Any, status: int) -> None:
    driver, sink, api = running
    api.fail = status
    assert post(driver, (FIXTURES / "refund_updated_event.json").read_bytes())[0] == 200
    (record,) = sink.readings
    assert (record.kind, record.total_cents, record.flagged) == ("refund", -1000, "dead_letter")


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_fetch_error_answers_503_and_the_retry_stores_the_sale(running: Any, status: int) -> None:
    driver, sink, api = running
    body = (FIXTURES / "payment_updated_event.json").read_bytes()
    api.fail = status
    assert post(driver, body)[0] == 503 and sink.readings == []
    api.fail = None
    api.orders["03O3USaPaAaFnI6kkwB1JxGgBsUZY"] = load("retrieve_order_response.json")["order"]
    assert post(driver, body)[0] == 200 and [b.source_id for b in sink.readings] == ["03O3USaPaAaFnI6kkwB1JxGgBsUZY"]


def test_replay_during_an_outage_is_answered_without_fetching(running: Any) -> None:
    driver, sink, api = running
    api.orders["03O3USaPaAaFnI6kkwB1JxGgBsUZY"] = load("retrieve_order_response.json")["order"]
    body = (FIXTURES / "payment_updated_event.json").read_bytes()
    assert post(driver, body)[0] == 200
    api.fail = 503  # Square is down now; its replay of the stored event must still be acknowledged
    assert post(driver, body)[0] == 200
    assert len(sink.readings) == 1 and api.requests == ["03O3USaPaAaFnI6kkwB1JxGgBsUZY"]
    assert driver.health()["duplicates"] == 1


def test_unset_access_token_is_a_dead_letter_naming_the_setting(running: Any, monkeypatch: Any) -> None:
    driver, _, api = running
    monkeypatch.delenv("SQ_TOKEN_FOR_TEST", raising=False)
    driver.orders.access_token = "env:SQ_TOKEN_FOR_TEST"  # type: ignore[attr-defined]
    status, text = post(driver, (FIXTURES / "payment_updated_event.json").read_bytes())
    assert status == 200 and "access_token is empty (env:SQ_TOKEN_FOR_TEST)" in text and api.requests == []


@pytest.mark.parametrize(("status", "permanent"), [(404, True), (401, True), (403, True), (500, False),
                                                   (502, False), (429, False), (None, False)])  # fmt: skip
def test_fetch_failures_are_classified(status: int | None, permanent: bool) -> None:
    assert fetch_failure_is_permanent(status) is permanent


def test_malformed_fetched_order_is_a_dead_letter_not_a_400(running: Any) -> None:
    driver, sink, api = running
    order = load("retrieve_order_response.json")["order"]
    del order["total_money"]  # the event is well formed; the order Square answered with is not
    api.orders["03O3USaPaAaFnI6kkwB1JxGgBsUZY"] = order
    status, text = post(driver, (FIXTURES / "payment_updated_event.json").read_bytes())
    assert status == 200 and "is malformed: total_money.amount" in text
    assert [b.flagged for b in sink.readings] == ["dead_letter"] and driver.health()["malformed"] == 0
