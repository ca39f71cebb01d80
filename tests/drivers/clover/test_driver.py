"""The Clover driver over real HTTP on 127.0.0.1, with a local HTTP server playing Clover's REST API."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.driver_api.kit import RecordingSink
from drivers.clover.driver import CloverDriver

AUTH, MID = "0307e264-b33a-4913-88aa-37b10014a0b8", "9ZQTAJSQKZ391"
FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))["payload"]


class FlakySink(RecordingSink):
    def __init__(self) -> None:
        super().__init__()
        self.flush_ok = True

    def flush(self, timeout: float = 10.0) -> bool:
        return self.flush_ok


class CloverApi:
    """GET /v3/merchants/<mId>/orders/<id> and GET /v3/merchants/<mId>/orders?filter=modifiedTime>=N."""

    def __init__(self, orders: dict[str, dict[str, Any]]) -> None:
        self.orders, self.requests, self.fail = orders, [], False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                outer.requests.append((url.path, query, self.headers.get("Authorization", "")))
                parts = url.path.split("/")
                status, payload = 404, {"message": "Not Found"}
                if outer.fail:
                    status, payload = 500, {"message": "down"}
                elif parts[1:4] == ["v3", "merchants", MID] and len(parts) == 6 and parts[5] in outer.orders:
                    status, payload = 200, outer.orders[parts[5]]
                elif parts[1:4] == ["v3", "merchants", MID] and len(parts) == 5:
                    since = int(query["filter"][0].split(">=")[1])
                    found = [o for o in outer.orders.values() if o.get("modifiedTime", 0) >= since]
                    status, payload = 200, {"elements": found[int(query["offset"][0]) :][: int(query["limit"][0])]}
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(api: CloverApi, **options: Any) -> tuple[CloverDriver, FlakySink]:
    driver = CloverDriver.from_options("clover_pos", {
        "merchant_id": MID, "auth_code": AUTH, "access_token": "tok", "port": 0, "api_base": api.base,
        "poll_interval_s": 0, **options,
    })  # fmt: skip
    sink = FlakySink()
    driver.start(sink)
    deadline = time.monotonic() + 5
    while not driver.health()["connected"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return driver, sink


@pytest.fixture
def running() -> Iterator[tuple[CloverDriver, FlakySink, CloverApi]]:
    api = CloverApi({o["id"]: o for o in (fixture("order_paid_card_quantities_modifier"), fixture("order_full_refund"),
                                          fixture("order_open_unpaid"))})  # fmt: skip
    driver, sink = start(api)
    yield driver, sink, api
    driver.stop()
    api.close()


def notify(*object_ids: str, kind: str = "CREATE", merchant: str = MID, ts: int = 1779287120000) -> bytes:
    updates = [{"objectId": o, "type": kind, "ts": ts + i} for i, o in enumerate(object_ids)]
    return json.dumps({"appId": "DRKVJT2ZRRRSC", "merchants": {merchant: updates}}).encode()


def post(driver: CloverDriver, body: bytes, auth: str | None = AUTH) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["X-Clover-Auth"] = auth
    request = urllib.request.Request(f"http://127.0.0.1:{driver.bound_port}/clover/webhook", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_verification_request_is_answered_200_and_its_code_reported(running: Any) -> None:
    driver, sink, api = running
    status, text = post(driver, b'{"verificationCode":"ce7643c1-83ea-4218-abe6-da876c9c7a0a"}', auth=None)
    assert status == 200 and "ce7643c1-83ea-4218-abe6-da876c9c7a0a" in text
    assert any("ce7643c1-83ea-4218-abe6-da876c9c7a0a" in p for p in sink.problems)
    assert driver.health()["verification_code"] == "ce7643c1-83ea-4218-abe6-da876c9c7a0a"
    assert sink.readings == [] and api.requests == []


def test_an_order_notification_fetches_the_expanded_order_and_emits_the_sale(running: Any) -> None:
    driver, sink, api = running
    assert post(driver, notify("O:GHIVJT2ABCRSC"))[0] == 200
    (basket,) = sink.readings
    assert (basket.source_id, basket.total_cents, basket.payment) == ("GHIVJT2ABCRSC", 1869, "card")
    assert [ln.line_total_cents for ln in basket.lines] == [1300, 569]
    path, query, auth = api.requests[0]
    assert path == f"/v3/merchants/{MID}/orders/GHIVJT2ABCRSC" and auth == "Bearer tok"
    assert {"lineItems", "payments", "refunds", "credits"} <= set(query["expand"][0].split(","))


def test_missing_or_wrong_auth_header_is_401_and_nothing_is_fetched(running: Any) -> None:
    driver, sink, api = running
    assert post(driver, notify("O:GHIVJT2ABCRSC"), auth=None)[0] == 401
    assert post(driver, notify("O:GHIVJT2ABCRSC"), auth=AUTH[:-1] + "9")[0] == 401
    assert sink.readings == [] and api.requests == [] and sink.bad == ["bad_signature", "bad_signature"]


def test_a_refunded_order_emits_the_sale_and_a_refund_basket(running: Any) -> None:
    driver, sink, _ = running
    assert post(driver, notify("O:REFUNDED00001", kind="UPDATE"))[0] == 200
    assert [(b.source_id, b.kind, b.total_cents) for b in sink.readings] == [
        ("REFUNDED00001", "sale", 500), ("refund:REF0000000001", "refund", -500)]  # fmt: skip


def test_an_update_after_the_sale_emits_only_what_is_new(running: Any) -> None:
    driver, sink, api = running
    assert post(driver, notify("O:REFUNDED00001"))[0] == 200
    assert post(driver, notify("O:REFUNDED00001", kind="UPDATE", ts=1779287190000))[0] == 200
    assert len(sink.readings) == 2 and len(api.requests) == 2


def test_unpaid_deleted_foreign_and_payment_notices_store_nothing(running: Any) -> None:
    driver, sink, api = running
    assert post(driver, notify("O:OPENORDER0001"))[0] == 200
    assert post(driver, notify("O:GHIVJT2ABCRSC", kind="DELETE"))[0] == 200
    assert post(driver, notify("O:GHIVJT2ABCRSC", merchant="OTHERMERCHANT"))[0] == 200
    assert post(driver, notify("P:V1Z0C4GXFZKMA"))[0] == 200
    assert post(driver, notify("O:NOSUCHORDER01"))[0] == 200  # a 404: the order is gone
    assert sink.readings == [] and len(api.requests) == 2


def test_api_failure_answers_503_and_the_retry_is_stored(running: Any) -> None:
    driver, sink, api = running
    api.fail = True
    assert post(driver, notify("O:GHIVJT2ABCRSC"))[0] == 503
    api.fail = False
    assert post(driver, notify("O:GHIVJT2ABCRSC"))[0] == 200
    assert [b.source_id for b in sink.readings] == ["GHIVJT2ABCRSC"] and driver.health()["unavailable"] == 1


def test_replayed_body_is_acknowledged_once(running: Any) -> None:
    driver, sink, api = running
    assert [post(driver, notify("O:GHIVJT2ABCRSC"))[0] for _ in range(3)] == [200, 200, 200]
    assert len(sink.readings) == 1 and driver.health()["duplicates"] == 2 and len(api.requests) == 1


def test_failed_flush_answers_503_and_is_not_remembered(running: Any) -> None:
    driver, sink, _ = running
    sink.flush_ok = False
    assert post(driver, notify("O:GHIVJT2ABCRSC"))[0] == 503
    sink.flush_ok = True
    assert post(driver, notify("O:GHIVJT2ABCRSC"))[0] == 200
    assert [b.source_id for b in sink.readings] == ["GHIVJT2ABCRSC", "GHIVJT2ABCRSC"]  # the agent dedupes


def test_malformed_notification_is_400_with_the_reason(running: Any) -> None:
    driver, sink, _ = running
    status, text = post(driver, b'{"appId": "X"}')
    assert status == 400 and "merchants" in text and sink.readings == []


def test_the_poll_stores_orders_the_webhooks_missed_once() -> None:
    api = CloverApi(
        {o["id"]: o for o in (fixture("order_paid_card_quantities_modifier"), fixture("order_full_refund"))}
    )
    driver, sink = start(api)  # poll_interval_s = 0: no background poll, polls run here
    try:
        driver._since_ms = 0  # as if the previous poll was long ago
        assert driver.poll_once(sink) == 3
        driver._since_ms = 0
        assert driver.poll_once(sink) == 0  # everything is known: nothing is emitted twice
        assert post(driver, notify("O:GHIVJT2ABCRSC"))[0] == 200  # a late webhook for a polled order
    finally:
        driver.stop()
        api.close()
    assert sorted(b.source_id for b in sink.readings) == ["GHIVJT2ABCRSC", "REFUNDED00001", "refund:REF0000000001"]
    assert driver.health()["polls"] == 2
    _, query, _ = api.requests[0]
    assert query["filter"][0] == "modifiedTime>=0"


def test_the_background_poll_runs_at_start_and_looks_back() -> None:
    order = {**fixture("order_paid_card_quantities_modifier"), "modifiedTime": int(time.time() * 1000) - 30_000}
    api = CloverApi({order["id"]: order})
    driver, sink = start(api, poll_interval_s=3600, poll_lookback_s=120)
    try:
        sink.wait_for(lambda: len(sink.readings) == 1, 5, "the polled order")
    finally:
        driver.stop()
        api.close()
    since = int(api.requests[0][1]["filter"][0].split(">=")[1])
    assert 0 < time.time() * 1000 - since < 130_000  # the first poll looked back poll_lookback_s
    assert driver.health()["polled_baskets"] == 1


def test_a_webhook_stored_order_is_not_emitted_again_by_the_poll() -> None:
    api = CloverApi({"GHIVJT2ABCRSC": fixture("order_paid_card_quantities_modifier")})
    driver, sink = start(api)
    try:
        assert post(driver, notify("O:GHIVJT2ABCRSC"))[0] == 200
        driver._since_ms = 0
        assert driver.poll_once(sink) == 0
        api.fail = True
        with pytest.raises(Exception, match="HTTP 500"):
            driver.poll_once(sink)
    finally:
        driver.stop()
        api.close()
    assert len(sink.readings) == 1


def test_options_name_the_bad_key() -> None:
    from agent.driver_api import DriverOptionError

    base = {"merchant_id": MID, "auth_code": "a", "access_token": "t"}
    for bad, key in (({"merchant_id": "no spaces!"}, "merchant_id"), ({"poll_interval_s": 1}, "poll_interval_s"),
                     ({"api_base": "http://example.com"}, "api_base"), ({"auth_code": ""}, "auth_code")):  # fmt: skip
        with pytest.raises(DriverOptionError) as err:
            CloverDriver.from_options("c", {**base, **bad})
        assert err.value.key == key
