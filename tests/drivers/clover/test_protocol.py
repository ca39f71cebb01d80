"""Clover's published payload shapes (fixtures/, each naming its source) parsed to the expected baskets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from agent.driver_api.webhook import BadPayload
from drivers.clover.protocol import auth_ok, line_of, order_baskets, parse_notification

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))


def test_there_are_at_least_five_fixtures_each_naming_its_source() -> None:
    assert len(CASES) >= 5
    assert all(load(name)["source"].strip() for name in CASES)


@pytest.mark.parametrize("name", CASES)
def test_fixture_parses_to_the_expected_result(name: str) -> None:
    case = load(name)
    if case["kind"] == "notification":
        got: Any = dataclasses.asdict(parse_notification(json.dumps(case["payload"]).encode()))
        got["orders"] = list(got["orders"])
    else:
        got = [dataclasses.asdict(b) for b in order_baskets(case["payload"])[0]]
    assert json.loads(json.dumps(got)) == case["expected"]


def test_amounts_are_integer_cents_in_every_basket() -> None:
    for name in CASES:
        case = load(name)
        if case["kind"] != "order":
            continue
        for basket in order_baskets(case["payload"])[0]:
            values = [basket.total_cents] + [
                v for ln in basket.lines for v in (ln.unit_price_cents, ln.line_total_cents)
            ]
            assert all(type(v) is int for v in values), name


def test_an_unpaid_order_says_why_it_is_not_stored() -> None:
    baskets, note = order_baskets(load("order_open_unpaid")["payload"])
    assert baskets == [] and "not paid" in note


def test_weighed_quantity_rounds_half_up_to_the_cent() -> None:
    line = line_of({"name": "Ham", "price": 1099, "unitQty": 455, "unitName": "lb"})  # 500.045 cents
    assert (line.quantity, line.unit_price_cents, line.line_total_cents) == (1, 500, 500)
    assert line_of({"name": "Ham", "price": 1000, "unitQty": 455}).line_total_cents == 455


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"[]", "not a JSON object"), (b'{"appId": "A"}', "merchants"), (b"\xff", "not JSON"),
     (b'{"merchants": {"M": [{"objectId": "O:X", "type": "MAYBE", "ts": 1}]}}', "type"),
     (b'{"merchants": {"M": [{"objectId": "O:", "type": "CREATE", "ts": 1}]}}', "no order id")],
)  # fmt: skip
def test_malformed_notifications_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason):
        parse_notification(body)


def test_a_non_integer_price_is_refused() -> None:
    with pytest.raises(BadPayload, match="price"):
        line_of({"name": "Tea", "price": "2.50"})


def test_auth_code_must_match_exactly() -> None:
    assert auth_ok("0307e264-b33a-4913-88aa-37b10014a0b8", "0307e264-b33a-4913-88aa-37b10014a0b8")
    assert not auth_ok("0307e264-b33a-4913-88aa-37b10014a0b8", "0307e264-b33a-4913-88aa-37b10014a0b9")
    assert not auth_ok("", "")
    assert not auth_ok("secret", None)
