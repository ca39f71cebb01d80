"""The dashboard over real HTTP: sign-in, roles, CSRF, login rate limit, Host check, headers, slow clients, exports."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.queries import benchmarks_between, shop_windows
from tests.hub.web_fixtures import ADMIN_PASSWORD, SHOP_PASSWORD, Served, serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path)


def test_pages_and_api_need_a_sign_in(served: Served) -> None:
    status, headers, _b, _c = served.request("GET", "/")
    assert status == 303 and headers["Location"].startswith("/login")
    assert served.request("GET", "/api/district")[0] == 401
    assert served.request("GET", "/export?what=district")[0] == 401
    assert served.request("GET", "/healthz")[0] == 200


def test_every_response_carries_the_security_headers(served: Served) -> None:
    for path in ("/login", "/healthz", "/nope"):
        headers = served.request("GET", path)[1]
        assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'none': no script at all
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_is_httponly_and_samesite_strict(served: Served) -> None:
    _s, _h, body, _cookies = served.request("GET", "/login")
    raw = served.request("GET", "/login")[1]["Set-Cookie"]
    assert "HttpOnly" in raw and "SameSite=Strict" in raw and "Secure" not in raw  # plain http here
    assert b"<script" not in body


def test_secure_cookie_behind_tls(tmp_path: Path) -> None:
    for s in serve(tmp_path, seeded=False, url="https://hub.riverside.example"):
        headers = s.request("GET", "/login", host="hub.riverside.example")[1]
        assert "Secure" in headers["Set-Cookie"]
        # ... and the listen address is no longer an accepted Host once a public URL is configured
        assert s.request("GET", "/login")[0] == 421


def test_unknown_host_is_refused(served: Served) -> None:
    assert served.request("GET", "/login", host="evil.example")[0] == 421
    assert served.request("GET", "/login", host=f"localhost:{served.port}")[0] == 200


def test_login_without_its_csrf_token_is_refused(served: Served) -> None:
    status = served.request("POST", "/login", {"name": "coop-admin", "password": ADMIN_PASSWORD, "csrf": "x"})[0]
    assert status == 403


def test_forms_without_the_session_csrf_token_are_refused(served: Served) -> None:
    cookies = served.sign_in("coop-admin", ADMIN_PASSWORD)
    assert served.request("POST", "/logout", {}, cookies)[0] == 403
    assert served.request("POST", "/logout", {"csrf": "forged"}, cookies)[0] == 403
    assert served.request("GET", "/", cookies=cookies)[0] == 200  # still signed in
    status = served.request("POST", "/logout", {"csrf": served.csrf(cookies)}, cookies)[0]
    assert status == 303
    assert served.request("GET", "/", cookies=cookies)[0] == 303  # signed out: back to /login


def test_login_is_rate_limited_per_account(served: Served) -> None:
    _s, _h, body, cookies = served.request("GET", "/login")
    token = body.split(b'name="csrf" value="')[1].split(b'"')[0].decode()
    codes = [
        served.request("POST", "/login", {"csrf": token, "name": "coop-admin", "password": "wrong"}, cookies)[0]
        for _ in range(6)
    ]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    # the right password is refused too while the account is blocked
    form = {"csrf": token, "name": "coop-admin", "password": ADMIN_PASSWORD}
    assert served.request("POST", "/login", form, cookies)[0] == 429


def test_shop_account_sees_only_its_own_shop(served: Served) -> None:
    cookies = served.sign_in("shop1", SHOP_PASSWORD)
    assert served.request("GET", "/shop/shop-0001", cookies=cookies)[0] == 200
    assert served.request("GET", "/shop/shop-0002", cookies=cookies)[0] == 404
    assert served.request("GET", "/api/shop/shop-0002", cookies=cookies)[0] == 404
    assert served.request("GET", "/export?what=shop&store=shop-0002", cookies=cookies)[0] == 404
    district = served.request("GET", "/", cookies=cookies)[2].decode()
    assert "shop-0001" in district and "shop-0002" not in district
    status = json.loads(served.request("GET", "/api/status", cookies=cookies)[2])
    assert [s["store"] for s in status["stores"]] == ["shop-0001"]
    admin = served.sign_in("coop-admin", ADMIN_PASSWORD)
    page = served.request("GET", "/", cookies=admin)[2].decode()
    everyone = [s["store"] for s in json.loads(served.request("GET", "/api/status", cookies=admin)[2])["stores"]]
    assert len(everyone) == 4 and all(f'href="/shop/{store}"' in page for store in everyone)


def test_csv_export_matches_the_database(served: Served) -> None:
    cookies = served.sign_in("shop1", SHOP_PASSWORD)
    query = "what=shop&store=shop-0001&range=week&date=2025-11-29&format=csv"
    status, headers, body, _c = served.request("GET", "/export?" + query, cookies=cookies)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    conn = served.database.connect()
    try:
        # 2025-11-23 .. 2025-11-29 in Europe/Amsterdam: 7 local days of hourly windows
        start, end = 1_763_852_400, 1_763_852_400 + 7 * 86400
        own = [sw for sw in shop_windows(conn, store="shop-0001", window_s=3600) if start <= sw.window_start_s < end]
        band = {int(b["window_start_s"]): b for b in benchmarks_between(conn, 3600, start, end)}
    finally:
        conn.close()
    assert len(rows) == len(own) == 7 * 24
    for row, sw in zip(rows, own, strict=True):
        assert int(row["footfall"]) == sw.footfall
        assert float(row["median"]) == pytest.approx(float(band[sw.window_start_s]["median"]))
    data = json.loads(served.request("GET", "/export?" + query.replace("csv", "json"), cookies=cookies)[2])
    assert [r["footfall"] for r in data["rows"]] == [int(r["footfall"]) for r in rows]


def test_alert_ack_needs_csrf_and_keeps_the_alert(served: Served) -> None:
    admin = served.sign_in("coop-admin", ADMIN_PASSWORD)
    alerts = json.loads(served.request("GET", "/api/alerts", cookies=admin)[2])["alerts"]
    assert alerts, "the seeded days should raise at least a silence or footfall alert"
    alert_id = alerts[0]["alert_id"]
    assert served.request("POST", "/alerts/ack", {"alert_id": alert_id}, admin)[0] == 403
    form = {"alert_id": alert_id, "csrf": served.csrf(admin)}
    assert served.request("POST", "/alerts/ack", form, admin)[0] == 303
    after = {a["alert_id"]: a for a in json.loads(served.request("GET", "/api/alerts", cookies=admin)[2])["alerts"]}
    assert after[alert_id]["acked_by"] == "coop-admin"  # kept, with who acknowledged it


def _threads() -> int:
    return threading.active_count()


def test_slow_clients_are_capped_and_timed_out(tmp_path: Path) -> None:
    for s in serve(tmp_path, seeded=False, max_connections=8, request_timeout_s=1.0):
        before = _threads()
        slow = []
        for _ in range(40):
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x")  # never finishes its headers
            slow.append(sock)
        # only the capped number of handler threads exist, however many clients wait
        assert _threads() <= before + 8
        # every slow connection is closed by the hub within the timeout (recv returns b"" or an error)
        deadline = time.monotonic() + 5
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            assert data == b"" or data.startswith(b"HTTP/1.0 503")
            sock.close()
        assert s.server.httpd.refused >= 1
        assert s.request("GET", "/healthz")[0] == 200  # and the dashboard still answers


def test_a_client_trickling_bytes_is_closed_after_the_request_timeout(tmp_path: Path) -> None:
    for s in serve(tmp_path, seeded=False, request_timeout_s=1.0):
        sock = socket.create_connection(("127.0.0.1", s.port))
        started = time.monotonic()
        closed_after = None
        # one byte every 0.3 s: each read succeeds within its own timeout, so only the whole-request deadline helps
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
            sock.settimeout(0.3)
            try:
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass  # still open: the pause between two bytes
            if time.monotonic() - started > 10:
                break
        sock.close()
        assert closed_after is not None and closed_after < 3.0, closed_after
        assert s.server.httpd.timed_out == 1


def test_sign_in_never_redirects_to_another_site(served: Served) -> None:
    _s, _h, body, cookies = served.request("GET", "/login")
    token = body.split(b'name="csrf" value="')[1].split(b'"')[0].decode()
    for target, expected in (("//evil.example/", "/"), ("/\\evil.example", "/"), ("/alerts", "/alerts")):
        form = {"csrf": token, "name": "coop-admin", "password": ADMIN_PASSWORD, "next": target}
        status, headers, _b, _c = served.request("POST", "/login", form, cookies)
        assert status == 303 and headers["Location"] == expected


def test_alerts_export_holds_only_what_the_role_may_see(served: Served) -> None:
    query = "/export?what=alerts&range=month&date=2025-11-30&format=csv"
    admin_rows = list(
        csv.DictReader(
            io.StringIO(served.request("GET", query, cookies=served.sign_in("coop-admin", ADMIN_PASSWORD))[2].decode())
        )
    )
    conn = served.database.connect()
    try:
        expected = {str(r[0]) for r in conn.query("SELECT alert_id FROM alerts")}
    finally:
        conn.close()
    assert {r["alert_id"] for r in admin_rows} == expected and expected
    spike = next(r for r in admin_rows if r["kind"] == "footfall_high")
    assert float(spike["observed"]) > float(spike["band_high"]) >= float(spike["baseline"])
    shop = served.sign_in("shop1", SHOP_PASSWORD)
    shop_rows = list(csv.DictReader(io.StringIO(served.request("GET", query, cookies=shop)[2].decode())))
    assert {r["store"] for r in shop_rows} <= {"shop-0001"}
