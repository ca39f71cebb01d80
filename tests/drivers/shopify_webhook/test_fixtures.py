"""Shopify's own published payloads (fixtures/, sources in fixtures/SOURCES.md), parsed and posted over real HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import drivers.shopify_webhook.driver as driver_module
from agent.driver_api import Basket, BasketLine, DriverOptionError
from agent.driver_api.kit import RecordingSink
from agent.driver_api.webhook import BadPayload
from drivers.shopify_webhook.driver import ShopifyWebhookDriver
from drivers.shopify_webhook.money import to_minor_units
from drivers.shopify_webhook.protocol import interpret_topic, parse_json, shopify_signature

FIXTURES = Path(__file__).parent / "fixtures"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
SECRET = "fixture-secret"


def basket_of(expected: dict[str, Any]) -> Basket:
    lines = tuple(BasketLine(*line) for line in expected["lines"])
    return Basket(expected["source_id"], lines, expected["total_cents"], expected["kind"], expected["payment"],
                  expected["currency"], expected["flagged"], expected["pos_time"])  # fmt: skip


def test_the_corpus_covers_what_issue_14_asks_for() -> None:
    files = {p.name for p in FIXTURES.glob("*.json")} - {"expected.json"}
    assert len(files) >= 10 and files == {case["file"] for case in CASES}
    currencies = {case["basket"]["currency"] for case in CASES if "basket" in case}
    assert {"JPY", "USD", "EUR", "KWD", "BHD"} <= currencies  # 0, 2 and 3 minor digits
    kinds = {case["basket"]["kind"] for case in CASES if "basket" in case}
    assert kinds == {"sale", "refund", "void"} and any(case.get("ignored") == "test" for case in CASES)


def test_every_fixture_names_its_source() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    for case in CASES:
        assert f"`{case['file']}`" in sources, f"{case['file']} has no line in SOURCES.md"


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
def test_fixture_parses_to_the_expected_basket(case: dict[str, Any]) -> None:
    outcome = interpret_topic(case["topic"], parse_json((FIXTURES / case["file"]).read_bytes()))
    if "ignored" in case:
        assert outcome.baskets == () and outcome.ignored == case["ignored"]
    else:
        assert outcome.baskets == (basket_of(case["basket"]),)


def test_discounted_line_is_what_the_customer_paid() -> None:
    order = parse_json((FIXTURES / "order_discount_allocation.json").read_bytes())
    (basket,) = interpret_topic("orders/create", order).baskets
    assert basket.lines[0].line_total_cents == 18109 == basket.total_cents  # not the 199.00 list price


def test_json_number_subtotals_are_read_exactly() -> None:
    refund = parse_json((FIXTURES / "refund_json_numbers.json").read_bytes())
    assert str(refund["refund_line_items"][0]["subtotal"]) == "195.66"  # Decimal, never a float
    (basket,) = interpret_topic("refunds/create", refund).baskets
    assert [line.line_total_cents for line in basket.lines] == [-(19566 + 398), -(19567 + 398)]


def test_jpy_refund_without_a_currency_key_uses_zero_minor_digits() -> None:
    refund = parse_json((FIXTURES / "refund_jpy_derived.json").read_bytes())
    (basket,) = interpret_topic("refunds/create", refund).baskets
    assert (basket.currency, basket.total_cents) == ("JPY", -500)


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


def post(drv: ShopifyWebhookDriver, body: bytes, topic: str, hook_id: str) -> tuple[int, str]:
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": hook_id, "Content-Type": "application/json",
               "X-Shopify-Hmac-Sha256": shopify_signature(SECRET, body)}  # fmt: skip
    request = urllib.request.Request(f"http://127.0.0.1:{drv.bound_port}/shopify/webhook", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_every_fixture_over_http_is_stored_or_counted(driver: Any) -> None:
    drv, sink = driver
    for index, case in enumerate(CASES):
        status, text = post(drv, (FIXTURES / case["file"]).read_bytes(), case["topic"], f"wh-{index}")
        assert status == 200, f"{case['file']}: {status} {text}"
    assert sink.readings == [basket_of(case["basket"]) for case in CASES if "basket" in case]
    health = drv.health()
    assert health["ignored_test"] == sum(case.get("ignored") == "test" for case in CASES) == 3
    assert health["malformed"] == 0 and sink.bad == []


def test_refund_without_any_currency_is_refused_with_the_setting_to_change(driver: Any, caplog: Any) -> None:
    drv, sink = driver
    refund = json.loads((FIXTURES / "refund_jpy_derived.json").read_text(encoding="utf-8"))
    for transaction in refund["transactions"]:
        del transaction["currency"]
    for item in refund["refund_line_items"]:
        del item["subtotal_set"]
    status, text = post(drv, json.dumps(refund).encode(), "refunds/create", "wh-nocur")
    assert status == 400 and "set currency" in text and sink.readings == []
    assert any("set currency" in record.getMessage() for record in caplog.records)  # logged, not only counted


def test_configured_currency_reads_a_refund_that_names_none() -> None:
    refund = parse_json((FIXTURES / "refund_jpy_derived.json").read_bytes())
    for transaction in refund["transactions"]:
        del transaction["currency"]
    for item in refund["refund_line_items"]:
        del item["subtotal_set"]
    (basket,) = interpret_topic("refunds/create", refund, currency="JPY").baskets
    assert basket.total_cents == -500


def test_taxes_included_setting_keeps_refund_tax_inside_the_line() -> None:
    refund = parse_json((FIXTURES / "refund_json_numbers.json").read_bytes())
    (basket,) = interpret_topic("refunds/create", refund, taxes_included=True).baskets
    assert [line.line_total_cents for line in basket.lines] == [-19566, -19567]


def test_ignored_topic_is_acknowledged_and_counted(driver: Any) -> None:
    drv, sink = driver
    body = (FIXTURES / "order_discount_allocation.json").read_bytes()
    status, text = post(drv, body, "orders/edited", "wh-edit")
    assert status == 200 and "not re-read" in text and sink.readings == []
    assert drv.health()["ignored_topic"] == 1


def test_missing_currency_table_names_the_extra_to_install(monkeypatch: Any) -> None:
    monkeypatch.setattr(driver_module, "currency_table_available", lambda: False)
    with pytest.raises(DriverOptionError, match=r"shopkeeper\[pos\]"):
        ShopifyWebhookDriver.from_options("shopify_pos", {"secret": SECRET, "port": 0})


def test_a_float_amount_is_refused_not_rounded() -> None:
    with pytest.raises(BadPayload, match="not a decimal amount"):
        to_minor_units(195.66, "USD", "subtotal")
    assert to_minor_units(json.loads("195.66", parse_float=Decimal), "USD") == 19566


def test_a_refused_signed_event_degrades_health_until_an_event_is_stored(driver: Any) -> None:
    drv, _ = driver
    order = json.loads((FIXTURES / "order_discount_allocation.json").read_text(encoding="utf-8"))
    order["total_price"] = "12.345"
    assert post(drv, json.dumps(order).encode(), "orders/create", "wh-bad")[0] == 400
    assert "total_price" in drv.health()["degraded"]
    assert post(drv, (FIXTURES / "order_discount_allocation.json").read_bytes(), "orders/create", "wh-ok")[0] == 200
    assert drv.health()["degraded"] == ""
