"""A dashboard served in-process over real HTTP on a SQLite hub seeded with synthetic shop days."""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from agent.demo.local_broker import free_port
from devtools.loadgen import shop_days
from hub.auth import add_user
from hub.config import load_hub_config
from hub.contract import iso, parse_message
from hub.dashboard import DashboardServer
from hub.db import Database
from hub.storage import store_batch
from hub.tasks import PeriodicTasks

DAY = 1_763_251_200  # 2025-11-16T00:00:00Z
ADMIN_PASSWORD = "admin-password-1"
SHOP_PASSWORD = "shop-password-01"
SPIKE_S = DAY + 14 * 86400 + 12 * 3600  # one shop's door counts a crowd: a footfall alert with a story


def write_config(path: Path, db: str, port: int, **web: Any) -> Path:
    lines = ["[hub]", 'coop = "riverside"', f'database = "{db}"', "k_min = 3", f'dashboard = "127.0.0.1:{port}"']
    lines += ["", "[alerts]", "min_weeks = 2", "", "[web]", 'timezone = "Europe/Amsterdam"', 'currency = "EUR"']
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in web.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def seed(database: Database, shops: int = 4, days: int = 15) -> None:
    """Store synthetic summaries as the subscriber would, then run the benchmark and alert pass once."""
    conn = database.connect()
    try:
        messages = [_spiked(t, p) for t, p in shop_days("riverside", shops, DAY, hours=24 * days)]
        for i in range(0, len(messages), 500):
            parsed = [parse_message("riverside", t, p.encode()) for t, p in messages[i : i + 500]]
            store_batch(conn, "hub-test", parsed)
        config = load_hub_config_for(database)
        PeriodicTasks(config, database, lambda _t, _p, _r: None).run_once(conn)
    finally:
        conn.close()


def _spiked(topic: str, payload: str) -> tuple[str, str]:
    data = json.loads(payload)
    if data["store"] == "shop-0001" and data["window"]["start"] == iso(SPIKE_S):
        data["values"]["entries"] = 900
        return topic, json.dumps(data)
    return topic, payload


_configs: dict[str, Any] = {}


def load_hub_config_for(database: Database) -> Any:
    return _configs[database.url]


@dataclass
class Served:
    server: DashboardServer
    database: Database
    port: int

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        host: str | None = None,
    ) -> tuple[int, dict[str, str], bytes, dict[str, str]]:
        """(status, headers, body, cookies set) of one request over a real socket."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Host": host or f"127.0.0.1:{self.port}"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        jar: SimpleCookie = SimpleCookie()
        for value in response.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        conn.close()
        return response.status, dict(response.headers), data, {k: v.value for k, v in jar.items()}

    def sign_in(self, name: str, password: str) -> dict[str, str]:
        """Signs in through the real form; returns the session cookie jar."""
        _status, _h, body, cookies = self.request("GET", "/login")
        token = re.search(rb'name="csrf" value="([^"]+)"', body)
        assert token is not None
        status, _headers, _b, set_cookies = self.request(
            "POST",
            "/login",
            {"csrf": token.group(1).decode(), "name": name, "password": password, "next": "/"},
            cookies,
        )
        assert status == 303, (status, _b)
        return {"hub_session": set_cookies["hub_session"]}

    def csrf(self, cookies: dict[str, str], path: str = "/alerts") -> str:
        body = self.request("GET", path, cookies=cookies)[2]
        match = re.search(rb'name="csrf" value="([^"]+)"', body)
        assert match is not None
        return match.group(1).decode()


def serve(tmp_path: Path, seeded: bool = True, **web: Any) -> Iterator[Served]:
    port = free_port()
    db_path = str(tmp_path / "hub.db")
    config = load_hub_config(write_config(tmp_path / "hub.toml", db_path, port, **web))
    database = Database(config.database)
    database.migrate()
    _configs[database.url] = config
    conn = database.connect()
    add_user(conn, "coop-admin", "admin", None, ADMIN_PASSWORD)
    add_user(conn, "shop1", "shop", "shop-0001", SHOP_PASSWORD)
    conn.close()
    if seeded:
        seed(database)
    server = DashboardServer(config, database)
    thread = threading.Thread(target=server.start)
    thread.start()
    thread.join()
    try:
        yield Served(server, database, port)
    finally:
        server.stop()
