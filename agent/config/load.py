"""Load and validate the agent's TOML configuration before anything starts.

Every problem becomes one ConfigError naming the file, the key and the fix; the CLI prints it on one
line and exits with code 2. Validation does no I/O beyond reading the file (drivers validate their
own options without touching devices).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from agent.config.pos import CategoryRule, PosSettings
from agent.config.reader import NAME_RE, TableReader, parse_duration
from agent.contract import STREAMS, TIERS, StreamSpec, is_window_length, status_topic, stream_by_segment, summary_topic
from agent.contract import window_name as contract_window_name
from agent.driver_api import Driver, DriverOptionError, installed_drivers
from agent.errors import ConfigError
from agent.owner.settings import OwnerPageSettings, read_owner_page
from agent.privacy.bounds import OTHER, BasketBounds
from agent.privacy.plan import StreamPlan, UnitBudget, footfall_plans, plan_problems, sales_plans

SYNC_SOURCES = ("auto", "timesyncd", "timedatectl", "always", "never")
MECHANISMS = ("discrete_laplace", "discrete_gaussian")


@dataclasses.dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    username: str = ""
    password: str = ""
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    keepalive_s: int = 30
    max_inflight: int = 20
    protocol: str = "v5"
    watermark_wait_s: int = 60  # how long a start waits for the coop's watermark before releasing


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    path: Path
    coop: str
    store: str
    data_dir: Path
    doors: tuple[str, ...]
    window_s: int
    grace_s: int
    tick_s: float
    sync_source: str
    budget: UnitBudget
    streams: tuple[StreamPlan, ...]
    mqtt: MqttSettings
    drivers: tuple[Driver, ...]
    raw_max_age_s: int
    raw_max_bytes: int
    log_level: str
    health_listen: tuple[str, int] | None = None
    pos: PosSettings | None = None
    owner_page: OwnerPageSettings | None = None  # the owner's local page (agent/owner); None: off

    @property
    def db_path(self) -> Path:
        """The SQLite file that holds raw events, the ledger and the outbox."""
        return self.data_dir / "shopkeeper.db"

    @property
    def window_name(self) -> str:
        """The topic level naming the window length, e.g. `hourly` (agent/contract/windows.py)."""
        return contract_window_name(self.window_s)

    def topic(self, tier: str, stream: StreamSpec | str) -> str:
        """The MQTT topic of one stream, given as its spec or its topic segment (docs/topics.md)."""
        spec = stream_by_segment(stream) if isinstance(stream, str) else stream
        if spec is None:
            raise ValueError(f"no stream is published as {stream!r}")
        return summary_topic(self.coop, self.store, tier, spec, self.window_s)

    @property
    def status_topic(self) -> str:
        return status_topic(self.coop, self.store)


def load_config(path: str | Path, drivers: Mapping[str, type[Driver]] | None = None) -> AgentConfig:
    """Read and validate `path`; raises ConfigError on the first problem."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            where, "(file)", f"cannot be read ({exc.strerror})", "check the path and permissions"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "(syntax)", f"is not valid TOML ({exc})", "fix the TOML syntax at that line") from None
    root = TableReader(where, data, "")
    agent = root.table_at("agent")
    coop, store = agent.name("coop"), agent.name("store")
    data_dir = Path(agent.get("data_dir", str, "/var/lib/shopkeeper"))
    if not data_dir.is_absolute():
        data_dir = (path.parent / data_dir).resolve()
    doors_raw = agent.get("doors", list, fix='list the public door names, e.g. doors = ["front"]')
    if not doors_raw or not all(isinstance(d, str) and NAME_RE.match(d) for d in doors_raw):
        raise agent.fail("doors", "must be a non-empty list of names", 'write e.g. doors = ["front", "back"]')
    if len(set(doors_raw)) != len(doors_raw):
        raise agent.fail("doors", "lists a door twice", "list each door once")
    log_level = agent.choice("log_level", "info", ("debug", "info", "warning", "error"))
    agent.reject_unknown()

    windows = root.table_at("windows")
    window_s = parse_duration(windows, "length", "1h")
    if not is_window_length(window_s):
        raise windows.fail(
            "length",
            f"{window_s}s does not divide a day into whole windows",
            'use a length of at least 60s that divides 24h, e.g. "15m" or "1h"',
        )
    grace_s = parse_duration(windows, "grace", "2m")
    if grace_s >= window_s:
        raise windows.fail("grace", "is not shorter than the window", "use a grace shorter than the window length")
    tick_raw = windows.get("tick_s", (int, float), 5)
    if not 0 < tick_raw <= 60:
        raise windows.fail("tick_s", f"{tick_raw} is out of range", "use a number of seconds above 0 and at most 60")
    windows.reject_unknown()

    clock = root.table_at("clock")
    sync_source = clock.choice("sync_source", "auto", SYNC_SOURCES)
    clock.reject_unknown()

    privacy = root.table_at("privacy")
    budget = UnitBudget(
        epsilon=privacy.epsilon("budget_epsilon_per_window", "1"),
        rho=privacy.epsilon("budget_rho_per_window") if "budget_rho_per_window" in privacy.table else None,
    )
    privacy.used.add("budget_rho_per_window")
    pos = _pos_settings(root.table_at("pos"))
    stream_settings = {}
    for spec in STREAMS:
        section = privacy.table_at(spec.name)
        if not section.get("enabled", bool, not spec.needs_pos or pos is not None):
            section.reject_unknown()
            continue
        if spec.needs_pos and pos is None:
            raise section.fail("enabled", "needs the public category taxonomy", "add a [pos] section with taxonomy")
        stream_settings[spec.name] = _stream_settings(section, spec.default_epsilon, spec.tier)
    streams = tuple(footfall_plans(doors_raw, stream_settings))
    if pos is not None:
        streams += tuple(sales_plans(pos.taxonomy, pos.bounds, stream_settings))
    if not streams:
        raise privacy.fail("footfall_door", "every stream is disabled", "enable at least one stream")
    privacy.reject_unknown()
    problems = plan_problems(streams, budget)
    if problems:
        key = "budget_rho_per_window" if "rho" in problems[0] else "budget_epsilon_per_window"
        raise privacy.fail(key, "; ".join(problems), "lower the streams' epsilon (or rho) or raise the budget")

    mqtt = _mqtt_settings(root.table_at("mqtt"), f"{coop}-{store}")
    storage = root.table_at("storage")
    raw_max_age_s = parse_duration(storage, "raw_max_age", "30d")
    raw_max_mb = storage.int_in("raw_max_mb", 512, 1, 1_000_000)
    storage.reject_unknown()

    health = root.table_at("health")
    listen = health.get("listen", str, "127.0.0.1:9465")
    health_listen: tuple[str, int] | None = None
    if listen:
        host, _, port_text = listen.rpartition(":")
        if host not in ("127.0.0.1", "::1", "localhost") or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise health.fail(
                "listen",
                f"{listen!r} is not a loopback host:port",
                'use e.g. "127.0.0.1:9465" (the endpoint is for this box only), or "" to turn it off',
            )
        health_listen = (host, int(port_text))
    health.reject_unknown()
    owner_page = read_owner_page(root.table_at("owner_page"))

    driver_table = root.table_at("drivers")
    known = installed_drivers() if drivers is None else drivers
    built = []
    door_owner: dict[str, str] = {}
    for name in driver_table.table:
        section = driver_table.table_at(name)
        if not NAME_RE.match(name):
            raise driver_table.fail(
                name, "is not a valid driver instance name", "use lowercase letters, digits, '-', '_'"
            )
        kind = section.get("kind", str, fix='add kind = "terabee" (see `shopkeeper drivers`)')
        if kind not in known:
            raise section.fail(
                "kind",
                f"no installed driver is called {kind!r}",
                f"use one of {', '.join(sorted(known)) or '(none installed)'}",
            )
        options = {k: v for k, v in section.table.items() if k != "kind"}
        try:
            driver = known[kind].from_options(name, options)
        except DriverOptionError as exc:
            raise ConfigError(where, f"drivers.{name}.{exc.key}", exc.problem, exc.fix) from None
        for door in driver.doors():
            if door not in doors_raw:
                raise section.fail("door", f"{door!r} is not in agent.doors", f'add "{door}" to agent.doors')
            # Two counters on one door would count each passage twice (twice the sensitivity the noise
            # was sized for, and a wrong footfall); there is no merge rule, so each door has one driver.
            if door in door_owner:
                raise section.fail(
                    "door",
                    f"door {door!r} is already counted by driver {door_owner[door]!r}: every passage would count twice",
                    "give each door one counting driver; name a second entrance as its own door in agent.doors",
                )
            door_owner[door] = name
        built.append(driver)
    root.reject_unknown()
    return AgentConfig(
        path=path,
        coop=coop,
        store=store,
        data_dir=data_dir,
        doors=tuple(doors_raw),
        window_s=window_s,
        grace_s=grace_s,
        tick_s=float(tick_raw),
        sync_source=sync_source,
        budget=budget,
        streams=streams,
        mqtt=mqtt,
        drivers=tuple(built),
        raw_max_age_s=raw_max_age_s,
        raw_max_bytes=raw_max_mb * 1024 * 1024,
        log_level=log_level,
        health_listen=health_listen,
        pos=pos,
        owner_page=owner_page,
    )


def _stream_settings(section: TableReader, default_epsilon: str, default_tier: str) -> dict[str, object]:
    settings: dict[str, object] = {
        "tier": section.choice("tier", default_tier, TIERS),
        "mechanism": section.choice("mechanism", "discrete_laplace", MECHANISMS),
        "clamp_negative": section.get("clamp_negative", bool, False),
    }
    if "suppress_below" in section.table:
        settings["suppress_below"] = section.int_in("suppress_below", None, 1, 1_000_000)
    if settings["mechanism"] == "discrete_laplace":
        settings["epsilon"] = section.epsilon("epsilon", default_epsilon)
        if "rho" in section.table:
            raise section.fail("rho", "applies to discrete_gaussian only", "remove rho or set that mechanism")
    else:
        settings["rho"] = section.epsilon("rho")
        if "epsilon" in section.table:
            raise section.fail("epsilon", "does not apply to discrete_gaussian", "use rho instead")
    section.reject_unknown()
    return settings


def _pos_settings(pos: TableReader) -> PosSettings | None:
    """The [pos] section: taxonomy, mapping rules and contribution bounds; None when absent."""
    if not pos.table:
        return None
    taxonomy = pos.get("taxonomy", list, fix='list the public categories, e.g. taxonomy = ["bakery", "dairy"]')
    if not taxonomy or not all(isinstance(c, str) and NAME_RE.match(c) for c in taxonomy):
        raise pos.fail("taxonomy", "must be a non-empty list of names", 'write e.g. taxonomy = ["bakery", "dairy"]')
    if len(set(taxonomy)) != len(taxonomy):
        raise pos.fail("taxonomy", "lists a category twice", "list each category once")
    categories = (*tuple(c for c in taxonomy if c != OTHER), OTHER)
    rules = []
    raw_rules = pos.get("category_rules", list, [])
    for i, raw in enumerate(raw_rules):
        rule = TableReader(pos.path, raw if isinstance(raw, dict) else {}, f"pos.category_rules[{i}].")
        category = rule.get("category", str, fix='add category = "<one of pos.taxonomy>"')
        if category not in categories:
            raise rule.fail("category", f"{category!r} is not in pos.taxonomy", "use a category from the taxonomy")
        kinds = [k for k in ("sku", "name_pattern", "pos_category") if k in rule.table]
        if len(kinds) != 1:
            raise rule.fail(
                "sku", "a rule needs exactly one of sku, name_pattern, pos_category", "give each rule one matcher"
            )
        pattern = None
        if kinds[0] == "name_pattern":
            try:
                pattern = re.compile(rule.get("name_pattern", str), re.IGNORECASE)
            except re.error as exc:
                raise rule.fail(
                    "name_pattern", f"is not a valid regular expression ({exc})", "fix the pattern"
                ) from None
        rules.append(
            CategoryRule(
                category=category,
                sku=rule.get("sku", str, ""),
                name_pattern=pattern,
                pos_category=rule.get("pos_category", str, ""),
            )
        )
        rule.reject_unknown()
    bounds_table = pos.table_at("bounds")
    bounds = BasketBounds(
        max_categories=bounds_table.int_in("max_categories", 3, 1, len(categories)),
        max_items_per_category=bounds_table.int_in("max_items_per_category", 10, 1, 10_000),
        max_revenue_per_category_cents=bounds_table.int_in("max_revenue_per_category_cents", 10_000, 1, 10**9),
        max_revenue_per_basket_cents=bounds_table.int_in("max_revenue_per_basket_cents", 20_000, 1, 10**9),
    )
    bounds_table.reject_unknown()
    pos.reject_unknown()
    return PosSettings(taxonomy=categories, rules=tuple(rules), bounds=bounds)


def _mqtt_settings(mqtt: TableReader, default_client: str) -> MqttSettings:
    settings = MqttSettings(
        host=mqtt.get("host", str, "127.0.0.1"),
        port=mqtt.int_in("port", 1883, 1, 65535),
        client_id=mqtt.get("client_id", str, f"shopkeeper-{default_client}"),
        username=mqtt.get("username", str, ""),
        password=mqtt.get("password", str, ""),
        tls_ca_file=mqtt.get("tls_ca_file", str, ""),
        tls_cert_file=mqtt.get("tls_cert_file", str, ""),
        tls_key_file=mqtt.get("tls_key_file", str, ""),
        keepalive_s=mqtt.int_in("keepalive_s", 30, 5, 3600),
        max_inflight=mqtt.int_in("max_inflight", 20, 1, 1000),
        protocol=mqtt.choice("protocol", "v5", ("v5", "v3.1.1")),
        watermark_wait_s=mqtt.int_in("watermark_wait_s", 60, 0, 3600),
    )
    if settings.password and not settings.username:
        raise mqtt.fail("password", "is set without a username", "set mqtt.username too, or remove the password")
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise mqtt.fail("tls_cert_file", "needs tls_key_file (and the other way round)", "set both or neither")
    mqtt.reject_unknown()
    return settings
