"""Load and validate the hub's TOML configuration before anything starts.

Every problem becomes one HubConfigError naming the file, the key and the fix; the CLI prints it on
one line and exits with code 2. See hub/sample-hub.toml for every key and its default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.contract.names import NAME_RE
from hub.errors import HubConfigError

GROUP_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class HubMqtt:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    username: str = ""
    password: str = ""
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    keepalive_s: int = 30
    session_expiry_s: int = 86400
    receive_maximum: int = 1000


@dataclasses.dataclass(frozen=True)
class AlertSettings:
    z: float = 3.0
    weeks: int = 8
    min_weeks: int = 3
    silent_windows: int = 2


@dataclasses.dataclass(frozen=True)
class WebSettings:
    """The dashboard as the coop's browsers reach it: its public URL (Host check, Secure cookies), the coop's
    time zone and currency, and the limits that keep slow or many clients from starving it."""

    url: str = ""  # e.g. "https://hub.riverside.coop"; "" means http://<hub.dashboard>
    timezone: str = "UTC"
    currency: str = "EUR"
    max_connections: int = 64
    request_timeout_s: float = 10.0
    session_hours: float = 12.0

    @property
    def secure_cookies(self) -> bool:
        return self.url.startswith("https://")


@dataclasses.dataclass(frozen=True)
class SecAggHubSettings:
    """Where the coop's roster of enrolled identity keys is, and how long each round step may wait."""

    roster: Path  # JSON: {"coop": ..., "members": {store id: base64 Ed25519 public key}}
    step_timeout_s: float  # a shop that has not answered a step by then is dropped from the round
    poll_s: float  # how often the coordinator looks for a planned round
    licensing_wait_s: float = 3600.0  # a district query's round starts once all shops replied, or after this


@dataclasses.dataclass(frozen=True)
class HubConfig:
    path: Path
    coop: str
    database: str
    k_min: int
    dashboard: str  # "host:port", or "" for no dashboard on this worker
    worker_group: str
    worker_id: str
    tasks: bool
    task_interval_s: float
    batch_max: int
    log_level: str
    mqtt: HubMqtt
    alerts: AlertSettings
    web: WebSettings = dataclasses.field(default_factory=WebSettings)
    secagg: SecAggHubSettings | None = None  # secure-aggregation rounds (hub/secagg.py); None: off

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Host header values the dashboard answers (DNS rebinding): the public URL's host, else the listen
        address and, on loopback, localhost; each with and without its port."""
        from urllib.parse import urlsplit

        names: set[str] = set()
        if self.web.url:
            parts = urlsplit(self.web.url)
            if parts.hostname:
                names.add(parts.hostname.lower())
                names.add(parts.netloc.lower())
        elif self.dashboard_address:
            host, port = self.dashboard_address
            local = host in ("127.0.0.1", "::1", "localhost")
            for name in (host, "localhost") if local else (host,):
                names.update({name.lower(), f"{name.lower()}:{port}"})
        return frozenset(names)

    @property
    def is_postgres(self) -> bool:
        return is_postgres_dsn(self.database)

    @property
    def topic_filter(self) -> str:
        """What the hub subscribes to: the whole coop, shared among the worker group when there is one."""
        base = f"coop/v1/{self.coop}/#"
        return f"$share/{self.worker_group}/{base}" if self.worker_group else base

    @property
    def dashboard_address(self) -> tuple[str, int] | None:
        if not self.dashboard:
            return None
        host, _, port = self.dashboard.rpartition(":")
        return host, int(port)


def sqlite_base_dir(config_path: Path) -> Path:
    """Where a relative SQLite path points: the unit's state directory under systemd (the config then
    arrives read-only, as a credential), else the folder of the configuration file."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) if state else config_path.parent


def is_postgres_dsn(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://")) or database.startswith("host=")


def _secret(key: str) -> bool:
    # The agent's rule (agent/redaction.py), restated: the hub imports nothing of the agent but its contract.
    # A key naming a file holds a path (tls_key_file), which the operator needs to see.
    pattern = r"(^|_)(password|passwd|passphrase|secret|token|key|auth|credentials?)(_|$)"
    return not key.endswith("_file") and bool(re.search(pattern, key.lower()))


class _Table:
    """Typed access to one TOML table that turns every mistake into a HubConfigError."""

    def __init__(self, path: str, table: Mapping[str, Any], prefix: str) -> None:
        self.path, self.table, self.prefix = path, table, prefix
        self.used: set[str] = set()

    def fail(self, key: str, problem: str, fix: str) -> HubConfigError:
        return HubConfigError(self.path, f"{self.prefix}{key}", problem, fix)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, fix: str = "") -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is None:
                raise self.fail(key, "is required but missing", fix or f"add `{key} = ...`")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(
                {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(k, k.__name__)
                for k in kinds
            )
            shown = f"a {type(value).__name__} (not printed: {key} is a secret)" if _secret(key) else repr(value)
            raise self.fail(key, f"expected {names}, got {shown}", fix or "use a value of the right type")
        return value

    def int_in(self, key: str, default: int, low: int, high: int) -> int:
        value = int(self.get(key, int, default))
        if not low <= value <= high:
            raise self.fail(key, f"{value} is out of range", f"use a whole number from {low} to {high}")
        return value

    def number_in(self, key: str, default: float, low: float, high: float) -> float:
        value = float(self.get(key, (int, float), default))
        if not low <= value <= high:
            raise self.fail(key, f"{value} is out of range", f"use a number from {low} to {high}")
        return value

    def sub(self, key: str) -> _Table:
        self.used.add(key)
        value = self.table.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table", f"write it as a [{self.prefix}{key}] section")
        return _Table(self.path, value, f"{self.prefix}{key}.")

    def reject_unknown(self) -> None:
        for key in self.table:
            if key not in self.used:
                raise self.fail(key, "is not a known key", "remove it or check its spelling in hub/sample-hub.toml")


def load_hub_config(path: str | Path) -> HubConfig:
    """Read and validate `path`; raises HubConfigError on the first problem."""
    path = Path(path)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HubConfigError(where, "(file)", f"cannot be read ({exc.strerror})", "check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise HubConfigError(where, "(syntax)", f"is not valid TOML ({exc})", "fix the TOML at that line") from None
    root = _Table(where, data, "")
    hub = root.sub("hub")
    coop = hub.get("coop", str, fix='add coop = "riverside" under [hub]')
    if not NAME_RE.match(coop):
        raise hub.fail("coop", f"{coop!r} is not a valid name", "use 1-63 lowercase letters, digits, '-' or '_'")
    database = hub.get("database", str, "hub.db")
    if not database:
        raise hub.fail("database", "is empty", 'write a SQLite path such as "hub.db" or a postgresql:// DSN')
    if not is_postgres_dsn(database) and not Path(database).is_absolute():
        database = str((sqlite_base_dir(path) / database).resolve())
    k_min = hub.int_in("k_min", 5, 2, 100_000)
    dashboard = hub.get("dashboard", str, "127.0.0.1:8080")
    if dashboard:
        host, sep, port = dashboard.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise hub.fail("dashboard", f"{dashboard!r} is not host:port", 'write e.g. "127.0.0.1:8080" or ""')
    group = hub.get("worker_group", str, "")
    if group and not GROUP_RE.match(group):
        raise hub.fail("worker_group", f"{group!r} cannot be a share name", "use letters, digits, '-' or '_'")
    worker_id = hub.get("worker_id", str, "hub-1")
    if not NAME_RE.match(worker_id):
        raise hub.fail("worker_id", f"{worker_id!r} is not a valid name", "use lowercase letters, digits, - or _")
    tasks = hub.get("tasks", bool, True)
    task_interval_s = hub.number_in("task_interval_s", 5.0, 0.1, 3600.0)
    batch_max = hub.int_in("batch_max", 500, 1, 100_000)
    log_level = hub.get("log_level", str, "info")
    if log_level not in ("debug", "info", "warning", "error"):
        raise hub.fail("log_level", f"{log_level!r} is not a level", "use debug, info, warning or error")
    hub.reject_unknown()

    mq = root.sub("mqtt")
    mqtt = HubMqtt(
        host=mq.get("host", str, "127.0.0.1"),
        port=mq.int_in("port", 1883, 1, 65535),
        client_id=mq.get("client_id", str, f"shopkeeper-hub-{coop}-{worker_id}"),
        username=mq.get("username", str, ""),
        password=mq.get("password", str, ""),
        tls_ca_file=mq.get("tls_ca_file", str, ""),
        tls_cert_file=mq.get("tls_cert_file", str, ""),
        tls_key_file=mq.get("tls_key_file", str, ""),
        keepalive_s=mq.int_in("keepalive_s", 30, 5, 3600),
        session_expiry_s=mq.int_in("session_expiry_s", 86400, 60, 0xFFFFFFFF),
        receive_maximum=mq.int_in("receive_maximum", 1000, 1, 65535),
    )
    if mqtt.password and not mqtt.username:
        raise mq.fail("password", "is set without a username", "set mqtt.username too, or remove the password")
    if bool(mqtt.tls_cert_file) != bool(mqtt.tls_key_file):
        raise mq.fail("tls_cert_file", "needs tls_key_file (and the other way round)", "set both or neither")
    mq.reject_unknown()

    al = root.sub("alerts")
    alerts = AlertSettings(
        z=al.number_in("z", 3.0, 0.5, 100.0),
        weeks=al.int_in("weeks", 8, 1, 520),
        min_weeks=al.int_in("min_weeks", 3, 1, 520),
        silent_windows=al.int_in("silent_windows", 2, 1, 10_000),
    )
    if alerts.min_weeks > alerts.weeks:
        raise al.fail("min_weeks", f"{alerts.min_weeks} is more than weeks ({alerts.weeks})", "lower min_weeks")
    al.reject_unknown()
    web = _web_settings(root.sub("web"))
    sa = root.sub("secagg")
    secagg = None
    if sa.table:
        roster = Path(sa.get("roster", str, fix='add roster = "roster.json" (the enrolled identity keys)'))
        secagg = SecAggHubSettings(
            roster=roster if roster.is_absolute() else (path.parent / roster).resolve(),
            step_timeout_s=sa.number_in("step_timeout_s", 60.0, 0.5, 86400.0),
            poll_s=sa.number_in("poll_s", 2.0, 0.05, 3600.0),
            licensing_wait_s=sa.number_in("licensing_wait_s", 3600.0, 0.0, 30 * 86400.0),
        )
    sa.reject_unknown()
    root.reject_unknown()
    return HubConfig(
        path=path,
        coop=coop,
        database=database,
        k_min=k_min,
        dashboard=dashboard,
        worker_group=group,
        worker_id=worker_id,
        tasks=tasks,
        task_interval_s=task_interval_s,
        batch_max=batch_max,
        log_level=log_level,
        mqtt=mqtt,
        alerts=alerts,
        web=web,
        secagg=secagg,
    )


def _web_settings(t: _Table) -> WebSettings:
    import zoneinfo

    url = t.get("url", str, "")
    if url and not re.match(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$", url):
        raise t.fail("url", f"{url!r} is not a base URL", 'write e.g. "https://hub.riverside.coop"')
    tz = t.get("timezone", str, "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise t.fail(
            "timezone", f"{tz!r} is not a known time zone", 'use an IANA name such as "Europe/Amsterdam"'
        ) from None
    currency = t.get("currency", str, "EUR")
    if not re.match(r"^[A-Z]{3}$", currency):
        raise t.fail("currency", f"{currency!r} is not an ISO 4217 code", 'write e.g. "EUR" or "GBP"')
    web = WebSettings(
        url=url.rstrip("/"),
        timezone=tz,
        currency=currency,
        max_connections=t.int_in("max_connections", 64, 1, 10_000),
        request_timeout_s=t.number_in("request_timeout_s", 10.0, 0.1, 600.0),
        session_hours=t.number_in("session_hours", 12.0, 0.01, 24 * 90),
    )
    t.reject_unknown()
    return web
