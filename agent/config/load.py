"""Load and validate the agent's TOML configuration before anything starts.

Every problem becomes one ConfigError naming the file, the key and the fix; the CLI prints it on one
line and exits with code 2. Validation does no I/O beyond reading the file (drivers validate their
own options without touching devices).
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

from agent.config.home_assistant import HomeAssistantSettings, read_home_assistant
from agent.config.pos import PosSettings, read_pos
from agent.config.privacy import read_privacy
from agent.config.reader import NAME_RE, TableReader, collect, parse_duration
from agent.config.secagg import SecAggSettings, read_secagg
from agent.contract import StreamSpec, is_window_length, status_topic, stream_by_segment, summary_topic
from agent.contract import window_name as contract_window_name
from agent.driver_api import Driver, DriverOptionError, installed_drivers
from agent.errors import ConfigError, ConfigProblems
from agent.licensing.policy import LicensingPolicy, read_licensing
from agent.owner.settings import OwnerPageSettings, read_owner_page
from agent.privacy.plan import StreamPlan, UnitBudget
from agent.redaction import scrub, secret_values

SYNC_SOURCES = ("auto", "timesyncd", "timedatectl", "always", "never")


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
    secagg: SecAggSettings | None = None  # secure-aggregation rounds (agent/coop/round_participant); None: off
    lifetime: UnitBudget | None = None  # the privacy filter's budget per unit and window; None: `budget`
    licensing: LicensingPolicy | None = None  # which coop queries this shop answers (agent/licensing)
    home_assistant: HomeAssistantSettings | None = None  # exact figures to the shop's own broker; None: off

    @property
    def filter_budget(self) -> UnitBudget:
        """What every release touching a window may spend in it, all kinds together (privacy/accountant.py)."""
        return self.lifetime if self.lifetime is not None else self.budget

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
    """Read and validate `path`; raises ConfigProblems listing every problem found (secrets never shown)."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        error = ConfigError(where, "(file)", f"cannot be read ({exc.strerror})", "check the path and permissions")
        raise ConfigProblems([error]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        error = ConfigError(where, "(syntax)", f"is not valid TOML ({exc})", "fix the TOML syntax at that line")
        raise ConfigProblems([error]) from None
    problems: list[ConfigError] = []
    config = None
    try:
        config = _read(path, TableReader(where, data, "", problems), drivers)
    except ConfigError as exc:  # a problem outside any section's reach: still reported with the rest
        problems.append(exc)
    if problems or config is None:
        # A second line of defence behind TableReader.show and the options' own redaction: a value under
        # a secret key never reaches a message, whichever path wrote the message.
        secrets = secret_values(data)
        errors = problems or [ConfigError(where, "(file)", "could not be read", "check it with check-config")]
        raise ConfigProblems(
            [ConfigError(e.path, e.key, scrub(e.problem, secrets), scrub(e.fix, secrets)) for e in errors]
        )
    return config


@dataclasses.dataclass(frozen=True)
class _AgentSection:
    coop: str
    store: str
    data_dir: Path
    doors: tuple[str, ...] | None  # None: the doors could not be read, so nothing is checked against them
    log_level: str


def _agent_section(agent: TableReader, config_dir: Path) -> _AgentSection:
    # A missing coop or store is recorded and the rest of the section still checked.
    coop = collect(agent.problems, lambda: agent.name("coop"), "invalid")
    store = collect(agent.problems, lambda: agent.name("store"), "invalid")
    data_dir = Path(agent.get("data_dir", str, "/var/lib/shopkeeper"))
    if not data_dir.is_absolute():
        data_dir = (config_dir / data_dir).resolve()
    doors: tuple[str, ...] | None = None
    doors_raw: list[object] = collect(
        agent.problems, lambda: agent.get("doors", list, fix='list the public door names, e.g. doors = ["front"]'), []
    )
    if not doors_raw or not all(isinstance(d, str) and NAME_RE.match(d) for d in doors_raw):
        if "doors" in agent.table:
            agent.note(agent.fail("doors", "must be a non-empty list of names", 'write e.g. doors = ["front", "back"]'))
    elif len(set(doors_raw)) != len(doors_raw):
        agent.note(agent.fail("doors", "lists a door twice", "list each door once"))
    else:
        doors = tuple(str(d) for d in doors_raw)
    log_level = agent.choice("log_level", "info", ("debug", "info", "warning", "error"))
    agent.reject_unknown()
    return _AgentSection(coop, store, data_dir, doors, log_level)


def _windows_section(windows: TableReader) -> tuple[int, int, float]:
    window_s = parse_duration(windows, "length", "1h")
    if not is_window_length(window_s):
        raise windows.fail(
            "length",
            f"{window_s}s does not divide a day into whole windows",
            'use a length of at least 60s that divides 24h, e.g. "15m" or "1h"',
        )
    grace_s = parse_duration(windows, "grace", "2m")
    if grace_s >= window_s:
        windows.note(
            windows.fail("grace", "is not shorter than the window", "use a grace shorter than the window length")
        )
    tick_raw = windows.get("tick_s", (int, float), 5)
    if not 0 < tick_raw <= 60:
        windows.note(
            windows.fail("tick_s", f"{tick_raw} is out of range", "use a number of seconds above 0 and at most 60")
        )
    windows.reject_unknown()
    return window_s, grace_s, float(tick_raw)


def _storage_section(storage: TableReader) -> tuple[int, int]:
    raw_max_age_s = parse_duration(storage, "raw_max_age", "30d")
    raw_max_mb = storage.int_in("raw_max_mb", 512, 1, 1_000_000)
    storage.reject_unknown()
    return raw_max_age_s, raw_max_mb * 1024 * 1024


def _health_section(health: TableReader) -> tuple[str, int] | None:
    listen = health.get("listen", str, "127.0.0.1:9465")
    health.reject_unknown()
    if not listen:
        return None
    host, _, port_text = listen.rpartition(":")
    if host not in ("127.0.0.1", "::1", "localhost") or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise health.fail(
            "listen",
            f"{listen!r} is not a loopback host:port",
            'use e.g. "127.0.0.1:9465" (the endpoint is for this box only), or "" to turn it off',
        )
    return host, int(port_text)


def _drivers_section(
    driver_table: TableReader, known: Mapping[str, type[Driver]], doors: tuple[str, ...] | None
) -> tuple[Driver, ...]:
    """Every [drivers.<name>] table built; each driver's problems recorded and the next one checked."""
    built = []
    door_owner: dict[str, str] = {}
    for name in driver_table.table:
        driver: Driver | None = collect(
            driver_table.problems, functools.partial(_one_driver, driver_table, name, known), None
        )
        if driver is None:
            continue
        section = driver_table.table_at(name)
        for door in driver.doors():
            if doors is not None and door not in doors:
                section.note(section.fail("door", f"{door!r} is not in agent.doors", f'add "{door}" to agent.doors'))
            # Two counters on one door would count each passage twice (twice the sensitivity the noise
            # was sized for, and a wrong footfall); there is no merge rule, so each door has one driver.
            elif door in door_owner:
                section.note(
                    section.fail(
                        "door",
                        f"door {door!r} is already counted by driver {door_owner[door]!r}: every passage would count"
                        " twice",
                        "give each door one counting driver; name a second entrance as its own door in agent.doors",
                    )
                )
            else:
                door_owner[door] = name
        built.append(driver)
    return tuple(built)


def _one_driver(driver_table: TableReader, name: str, known: Mapping[str, type[Driver]]) -> Driver | None:
    section = driver_table.table_at(name)
    if not NAME_RE.match(name):
        raise driver_table.fail(name, "is not a valid driver instance name", "use lowercase letters, digits, '-', '_'")
    kind = section.get("kind", str, fix='add kind = "terabee" (see `shopkeeper drivers`)')
    if kind not in known:
        raise section.fail(
            "kind",
            f"no installed driver is called {kind!r}",
            f"use one of {', '.join(sorted(known)) or '(none installed)'}",
        )
    options = {k: v for k, v in section.table.items() if k != "kind"}
    try:
        return known[kind].from_options(name, options)
    except DriverOptionError as exc:
        # Options.parse lists every bad key of the table in `problems` (the error itself first).
        for problem in exc.problems:
            driver_table.note(
                ConfigError(driver_table.path, f"drivers.{name}.{problem.key}", problem.problem, problem.fix)
            )
        return None


def _read(path: Path, root: TableReader, drivers: Mapping[str, type[Driver]] | None) -> AgentConfig | None:
    """The configuration from the parsed file, or None when `root.problems` has any; every section is read."""
    problems = root.problems
    unknown = _AgentSection("invalid", "invalid", path.parent, None, "info")
    agent = collect(problems, lambda: _agent_section(root.table_at("agent"), path.parent), unknown)
    window_s, grace_s, tick_s = collect(problems, lambda: _windows_section(root.table_at("windows")), (3600, 0, 5.0))
    clock = root.table_at("clock")
    sync_source = clock.choice("sync_source", "auto", SYNC_SOURCES)
    clock.reject_unknown()
    pos = collect(problems, lambda: read_pos(root.table_at("pos")), None)
    no_budget = UnitBudget(epsilon=Fraction(1), rho=None)
    no_plan: tuple[UnitBudget, tuple[StreamPlan, ...], UnitBudget] = (no_budget, (), no_budget)
    budget, streams, lifetime = collect(
        problems,
        lambda: read_privacy(root.table_at("privacy"), agent.doors or ("unknown",), pos),
        no_plan,
    )
    mqtt = collect(problems, lambda: _mqtt_settings(root.table_at("mqtt"), f"{agent.coop}-{agent.store}"), None)
    raw_max_age_s, raw_max_bytes = collect(problems, lambda: _storage_section(root.table_at("storage")), (0, 0))
    health_listen = collect(problems, lambda: _health_section(root.table_at("health")), None)
    owner_page = collect(problems, lambda: read_owner_page(root.table_at("owner_page")), None)
    home_assistant = collect(
        problems, lambda: read_home_assistant(root.table_at("home_assistant"), agent.store, mqtt), None
    )
    licensing = collect(problems, lambda: read_licensing(root.table_at("licensing")), None)
    secagg = collect(problems, lambda: read_secagg(root.table_at("secagg"), agent.data_dir, streams), None)
    known = installed_drivers() if drivers is None else drivers
    built = _drivers_section(root.table_at("drivers"), known, agent.doors)
    root.reject_unknown()
    if problems or mqtt is None or agent.doors is None:
        return None
    return AgentConfig(
        path=path,
        coop=agent.coop,
        store=agent.store,
        data_dir=agent.data_dir,
        doors=agent.doors,
        window_s=window_s,
        grace_s=grace_s,
        tick_s=tick_s,
        sync_source=sync_source,
        budget=budget,
        streams=streams,
        mqtt=mqtt,
        drivers=built,
        raw_max_age_s=raw_max_age_s,
        raw_max_bytes=raw_max_bytes,
        log_level=agent.log_level,
        health_listen=health_listen,
        pos=pos,
        owner_page=owner_page,
        secagg=secagg,
        lifetime=lifetime,
        licensing=licensing,
        home_assistant=home_assistant,
    )


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
