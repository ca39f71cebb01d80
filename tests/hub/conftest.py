"""Hub test fixtures: a real PostgreSQL (Debian's server on a loopback port), hub configs, hub processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.local_postgres import LocalPostgres, postgres_bin_dir
from hub.db import Connection, Database

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    # A missing server is a failed setup, not a reason to skip: deploy/bootstrap.sh installs it.
    assert postgres_bin_dir() is not None, "PostgreSQL server binaries are missing: run deploy/bootstrap.sh"
    with LocalPostgres() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: LocalPostgres) -> str:
    """A DSN to a fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"hub_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same tests against both backends."""
    url = str(tmp_path / "hub.db") if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    db = Database(url)
    db.migrate()
    yield db


@pytest.fixture
def conn(database: Database) -> Iterator[Connection]:
    connection = database.connect()
    yield connection
    connection.close()


def write_hub_config(path: Path, port: int, database: str, **hub: Any) -> Path:
    """A hub TOML with the given [hub] keys; port is the broker's."""
    settings: dict[str, Any] = {
        "coop": "riverside",
        "database": database,
        "dashboard": "",
        "task_interval_s": 0.5,
        **hub,
    }
    lines = ["[hub]"]
    for key, value in settings.items():
        lines.append(f"{key} = {_toml(value)}")
    lines += ["", "[mqtt]", f"port = {port}", "keepalive_s = 5"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


class HubProcess:
    """`python -m hub run CONFIG` as a real subprocess, with its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HubProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub", "run", str(self.config)],
                cwd=REPO,
                stdout=out,
                stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def wait_subscribed(self, timeout: float = 20.0) -> None:
        wait_for(lambda: "subscribing to" in self.log.read_text(errors="replace"), timeout, "hub to subscribe")
        time.sleep(0.3)  # SUBACK follows the log line by a round trip

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def count(database: Database, sql: str, params: tuple[Any, ...] = ()) -> int:
    connection = database.connect()
    try:
        return int(connection.query(sql, params)[0][0])
    finally:
        connection.close()


def dashboard_cookie(database: str) -> str:
    """A signed-in coop admin's session cookie for the dashboard of the hub using `database`."""
    from hub.auth import User, add_user, open_session

    db = Database(database)
    db.migrate()
    conn = db.connect()
    try:
        if not conn.query("SELECT 1 FROM hub_users WHERE name = ?", ("test-admin",)):
            add_user(conn, "test-admin", "admin", None, uuid.uuid4().hex)
        return "hub_session=" + open_session(conn, User("test-admin", "admin", None), 3600)
    finally:
        conn.close()


def http_get(url: str, cookie: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status), response.read()
