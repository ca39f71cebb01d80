"""The owner page's sign-in hygiene over real HTTP: LAN refused without a password, Host checked, sessions,
CSRF, rate-limited sign-in, security headers."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.owner.server import OwnerPageServer, host_allowed
from agent.owner.settings import OwnerPageSettings, hash_password, verify_password
from agent.store import Store
from tests.conftest import T0_NS, make_config
from tests.e2e.harness import lan_address

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)  # once: scrypt is slow on purpose
LAN = lan_address()
needs_lan = pytest.mark.skipif(LAN is None, reason="this machine has no non-loopback IPv4 address")


def serve(tmp_path: Path, host: str, password_hash: str = "") -> OwnerPageServer:
    config = make_config(tmp_path)
    server = OwnerPageServer(Store(config.db_path), config, OwnerPageSettings(host, 0, password_hash), lambda: T0_NS)
    server.start()
    return server


@pytest.fixture
def open_page(tmp_path: Path) -> Iterator[OwnerPageServer]:
    server = serve(tmp_path, "0.0.0.0")
    yield server
    server.stop()


@pytest.fixture
def locked_page(tmp_path: Path) -> Iterator[OwnerPageServer]:
    server = serve(tmp_path, LAN or "127.0.0.1", HASH)
    yield server
    server.stop()


def request(
    host: str, port: int, method: str = "GET", path: str = "/", body: str = "", headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    conn.request(method, path, body=body.encode(), headers=sent)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def cookie(response: http.client.HTTPResponse, name: str) -> str:
    match = re.search(rf"{name}=([^;]*)", response.getheader("Set-Cookie") or "")
    return match.group(1) if match else ""


def test_scrypt_hash_verifies_only_its_password() -> None:
    assert verify_password(PASSWORD, HASH) and not verify_password(PASSWORD + "x", HASH)
    assert not verify_password(PASSWORD, "plain text") and hash_password(PASSWORD) != HASH  # salted


def test_host_header_must_name_this_box() -> None:
    settings = OwnerPageSettings(allowed_hosts=("shop-box.local",))
    for ok in ("127.0.0.1:8088", "[::1]:8088", "192.0.2.7", "localhost:8088", "shop-box.local"):
        assert host_allowed(ok, settings), ok
    for bad in ("attacker.example:8088", "", "127.0.0.1.nip.io"):
        assert not host_allowed(bad, settings), bad


def test_loopback_sees_the_page_without_a_password_with_security_headers(open_page: OwnerPageServer) -> None:
    response = request("127.0.0.1", open_page.port)
    assert response.status == 200
    assert "frame-ancestors 'none'" in (response.getheader("Content-Security-Policy") or "")
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "no-referrer"


@needs_lan
def test_the_shops_network_is_refused_while_no_password_is_set(open_page: OwnerPageServer) -> None:
    assert LAN is not None
    assert request(LAN, open_page.port).status == 403
    assert request(LAN, open_page.port, "GET", "/export/sales.csv").status == 403


def test_a_rebinding_host_name_is_refused(open_page: OwnerPageServer) -> None:
    assert request("127.0.0.1", open_page.port, headers={"Host": "attacker.example"}).status == 400


def test_sign_in_needs_the_csrf_token_and_the_password(locked_page: OwnerPageServer) -> None:
    host, port = locked_page.settings.host, locked_page.port
    first = request(host, port)
    assert first.status == 303 and first.getheader("Location") == "/login"
    form = request(host, port, "GET", "/login")
    csrf = cookie(form, "shopkeeper_login")
    assert "HttpOnly" in (form.getheader("Set-Cookie") or "") and "SameSite=Strict" in (
        form.getheader("Set-Cookie") or ""
    )
    no_token = request(host, port, "POST", "/login", f"password={PASSWORD}")
    assert no_token.status == 403
    with_cookie = {"Cookie": f"shopkeeper_login={csrf}"}
    wrong = request(host, port, "POST", "/login", f"csrf={csrf}&password=nope", with_cookie)
    assert wrong.status == 401
    right = request(host, port, "POST", "/login", f"csrf={csrf}&password={PASSWORD.replace(' ', '+')}", with_cookie)
    assert right.status == 303 and "HttpOnly" in (right.getheader("Set-Cookie") or "")
    session = {"Cookie": f"shopkeeper_owner={cookie(right, 'shopkeeper_owner')}"}
    assert request(host, port, headers=session).status == 200
    assert request(host, port, "POST", "/logout", "csrf=forged", session).status == 403
    assert request(host, port, headers=session).status == 200, "a forged sign-out does nothing"


def test_failed_sign_ins_are_rate_limited(locked_page: OwnerPageServer) -> None:
    host, port = locked_page.settings.host, locked_page.port
    csrf = cookie(request(host, port, "GET", "/login"), "shopkeeper_login")
    headers = {"Cookie": f"shopkeeper_login={csrf}"}
    for _ in range(5):
        assert request(host, port, "POST", "/login", f"csrf={csrf}&password=guess", headers).status == 401
    blocked = request(host, port, "POST", "/login", f"csrf={csrf}&password={PASSWORD.replace(' ', '+')}", headers)
    assert blocked.status == 429 and int(blocked.getheader("Retry-After") or 0) > 0
