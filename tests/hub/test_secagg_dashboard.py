"""The district page shows the released secure totals with their noise band, to the coop and to shop
accounts alike (they are sums over at least a round's threshold of shops), over the real HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import secagg_store
from tests.hub.web_fixtures import ADMIN_PASSWORD, SHOP_PASSWORD, Served, serve

START_S = 1_794_823_200  # 2026-11-16T10:00:00Z


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path)


def test_the_district_page_charts_the_secure_totals(served: Served) -> None:
    conn = served.database.connect()
    try:
        cells = secagg_store.window_cells("footfall_store", "all", ("entries",), START_S, 3600, 3)
        with conn.transaction():
            secagg_store.store_totals(conn, "r-1", cells, [120, 340, 275], 96.0, 18)
    finally:
        conn.close()
    page = "/?range=custom&from=2026-11-16&to=2026-11-16"
    for name, password in (("coop-admin", ADMIN_PASSWORD), ("shop1", SHOP_PASSWORD)):
        body = served.request("GET", page, cookies=served.sign_in(name, password))[2].decode()
        assert 'id="secure-totals"' in body, name
        assert "Secure district total: footfall_store entries per 3600 s window (at least 18 shops)" in body
    outside = served.request(
        "GET", "/?range=custom&from=2026-11-20&to=2026-11-20", cookies=served.sign_in("coop-admin", ADMIN_PASSWORD)
    )[2].decode()
    assert 'id="secure-totals"' not in outside  # no round covered that day
