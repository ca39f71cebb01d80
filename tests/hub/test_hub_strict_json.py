"""The hub speaks strict JSON both ways: NaN, Infinity and overflowing numbers are refused on the wire, and
every JSON the dashboard serves (/api/..., the JSON export) parses under a parser that refuses them too."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from hub.wire import Refusal, decode_payload
from tests.hub.web_fixtures import ADMIN_PASSWORD, Served, serve


def strict(body: bytes) -> Any:
    """Parse as RFC 8259 JSON: the constants Python's json module accepts by default are an error."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"not strict JSON: {name}")

    def finite(text: str) -> float:
        value = float(text)
        assert math.isfinite(value), f"not strict JSON: {text}"
        return value

    return json.loads(body.decode("utf-8"), parse_constant=refuse, parse_float=finite)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("strict-json"))


@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"], ids=["nan", "inf", "-inf", "1e999", "-1e999"]
)
def test_the_wire_refuses_numbers_json_has_not(number: str) -> None:
    payload = f'{{"values": {{"entries": {number}}}}}'.encode()
    with pytest.raises(Refusal, match="not JSON"):
        decode_payload(payload)


def test_every_json_endpoint_serves_strict_json(served: Served) -> None:
    admin = served.sign_in("coop-admin", ADMIN_PASSWORD)
    paths = ["/api/status", "/api/district", "/api/alerts", "/api/shop/shop-0001"]
    export = "/export?what={}&store=shop-0001&range=week&date=2025-11-29&format=json"
    paths += [export.format(what) for what in ("shop", "district", "alerts")]
    for path in paths:
        status, headers, body, _c = served.request("GET", path, cookies=admin)
        assert status == 200, (path, status, body[:200])
        assert headers["Content-Type"].startswith("application/json"), path
        assert strict(body), path  # parses, and holds something
    district = strict(served.request("GET", "/api/district", cookies=admin)[2])
    assert any(isinstance(v, float) for v in _numbers(district)), "the district figures include fractions"


def test_a_nan_in_a_figure_is_a_logged_500_never_invalid_json(
    served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    admin = served.sign_in("coop-admin", ADMIN_PASSWORD)
    monkeypatch.setattr("hub.dashboard.district_data", lambda _conn, _cfg: {"median": float("nan")})
    status, _headers, body, _c = served.request("GET", "/api/district", cookies=admin)
    assert status == 500 and b"NaN" not in body
    assert "/api/district failed" in caplog.text


def _numbers(node: Any) -> Iterator[float | int]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _numbers(value)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield node
