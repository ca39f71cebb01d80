"""The owner page's data requests over real HTTP: Approve and Refuse need a signed-in session and its CSRF token."""

from __future__ import annotations

import http.client
import re
from pathlib import Path

from agent.clock import NS_PER_S
from agent.licensing import inbox
from agent.owner.server import OwnerPageServer
from agent.owner.settings import OwnerPageSettings, hash_password
from agent.store import Store
from agent.store import licensing as licensing_sql
from tests.conftest import T0_NS, make_config
from tests.licensing_kit import encode, licensing_section, signed_query

PASSWORD = "correct horse battery"


def call(port: int, method: str, path: str, body: str = "", cookie: str = "") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Host": f"127.0.0.1:{port}"}
    if cookie:
        headers["Cookie"] = cookie
    conn.request(method, path, body=body.encode(), headers=headers)
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    return response.status, text, response.getheader("Set-Cookie") or ""


def pending_query(tmp_path: Path, password_hash: str) -> tuple[OwnerPageServer, Store, str]:
    config = make_config(tmp_path, extra=licensing_section(approval="manual"))
    store = Store(config.db_path)
    assert config.licensing is not None
    message = signed_query(T0_NS + 3600 * NS_PER_S)
    assert inbox.receive(store, config.coop, config.licensing.coop_public_key, encode(message), T0_NS) == "stored"
    query_id = str(message["query"]["id"])  # type: ignore[index]
    with store.transaction() as conn:
        licensing_sql.set_status(conn, query_id, "pending", "", T0_NS)
    server = OwnerPageServer(store, config, OwnerPageSettings("127.0.0.1", 0, password_hash), lambda: T0_NS)
    server.start()
    return server, store, query_id


def test_owner_approves_a_query_with_the_session_token_only(tmp_path: Path) -> None:
    server, store, query_id = pending_query(tmp_path, hash_password(PASSWORD))
    try:
        _s, _b, login_cookie = call(server.port, "GET", "/login")
        login = re.search(r"shopkeeper_login=([^;]*)", login_cookie).group(1)  # type: ignore[union-attr]
        body = f"csrf={login}&password={PASSWORD.replace(' ', '+')}"
        _s, _b, session_cookie = call(server.port, "POST", "/login", body, f"shopkeeper_login={login}")
        session = session_cookie.split(";")[0]
        status, page, _c = call(server.port, "GET", "/", cookie=session)
        assert status == 200 and f'data-query-id="{query_id}" data-status="pending"' in page
        csrf = re.search(r'action="/queries/approve"><input type="hidden" name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        form = f"query_id={query_id}&csrf="
        assert call(server.port, "POST", "/queries/approve", form + "forged", session)[0] == 403
        assert call(server.port, "POST", "/queries/approve", form + csrf.group(1))[0] == 403  # no session
        assert licensing_sql.query(store.conn(), query_id)["status"] == "pending"  # type: ignore[index]
        status, _b, _c = call(server.port, "POST", "/queries/approve", form + csrf.group(1), session)
        assert status == 303
        assert licensing_sql.query(store.conn(), query_id)["status"] == "approved"  # type: ignore[index]
        assert call(server.port, "POST", "/queries/refuse", form + csrf.group(1), session)[0] == 409
    finally:
        server.stop()


def test_without_a_password_the_page_shows_requests_but_takes_no_decision(tmp_path: Path) -> None:
    server, store, query_id = pending_query(tmp_path, "")
    try:
        status, page, _c = call(server.port, "GET", "/")
        assert status == 200 and "shopkeeper queries approve|refuse" in page and "/queries/approve" not in page
        assert call(server.port, "POST", "/queries/refuse", f"query_id={query_id}&csrf=")[0] == 403
        assert licensing_sql.query(store.conn(), query_id)["status"] == "pending"  # type: ignore[index]
    finally:
        server.stop()


def test_answers_and_refusals_show_in_what_left_the_shop(tmp_path: Path) -> None:
    from agent.licensing.desk import LicensingDesk
    from agent.owner import page
    from agent.owner.localtime import LocalZone
    from tests.agent.licensing.test_desk import released_day, shop
    from tests.conftest import ManualClock

    clock = ManualClock()
    config = shop(tmp_path)
    store, releaser = released_day(config, clock, {9: 4})
    assert config.licensing is not None
    for message in (signed_query(clock.wall_ns() + 10**12), signed_query(clock.wall_ns() + 10**12, requester="x")):
        inbox.receive(store, config.coop, config.licensing.coop_public_key, encode(message), clock.wall_ns())
    assert LicensingDesk(config, store, clock, releaser.journal).tick() == 2
    zone = LocalZone("UTC")
    html = page.render(page.gather(store, config, zone, clock.wall_ns()), config, zone, "", False).decode()
    assert "answered, 168 figures" in html and "ε 1/2 in each window of the range; credit 2.50" in html
    assert "refused (this shop does not answer queries from &#x27;x&#x27;)" in html
    assert "nothing spent: refused" in html
    assert "may spend at most \u03b5 2 on it, for the life of this box" in html


def test_a_district_query_says_so_on_the_page(tmp_path: Path) -> None:
    """The owner decides knowing the answer goes only into the coop's secure sum (read from the signed query)."""
    from agent.contract.licensing import SECURE_AGGREGATION

    config = make_config(tmp_path, extra=licensing_section(approval="manual"))
    store = Store(config.db_path)
    assert config.licensing is not None
    for combine in ("", SECURE_AGGREGATION):
        message = signed_query(T0_NS + 3600 * NS_PER_S, combine=combine)
        assert inbox.receive(store, config.coop, config.licensing.coop_public_key, encode(message), T0_NS) == "stored"
    server = OwnerPageServer(store, config, OwnerPageSettings("127.0.0.1", 0, ""), lambda: T0_NS)
    server.start()
    try:
        status, page, _c = call(server.port, "GET", "/")
    finally:
        server.stop()
    assert status == 200 and page.count('class="request"') == 2
    assert page.count("the coop never sees this shop") == 1
