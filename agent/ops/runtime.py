"""Wire the parts together and run until told to stop."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from agent.clock import AcceleratedClock, Clock, SyncCheck, SystemClock
from agent.config import AgentConfig
from agent.contract import secagg_shop_filters
from agent.coop.watermark import WatermarkGate
from agent.errors import InternalThreadDied, PrivacyError
from agent.licensing.desk import LicensingDesk
from agent.ops.health import HealthServer
from agent.ops.sdnotify import notify, watchdog_interval_s
from agent.ops.supervisor import DriverSupervisor
from agent.owner import sensors as owner_sensors
from agent.owner.home_assistant import HomeAssistantBridge
from agent.owner.server import OwnerPageServer
from agent.pipeline.ingest import IngestWriter
from agent.pipeline.publish import Publisher
from agent.pipeline.release import WindowReleaser
from agent.pipeline.retention import Retention
from agent.store import Store
from agent.threads import set_fatal_handler

if TYPE_CHECKING:
    from agent.coop.round_participant import RoundParticipant

log = logging.getLogger(__name__)
# A tick that is still running when the next is due is skipped by design (max_instances=1, coalesce);
# APScheduler reports each skip as a warning, which is noise here.
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
# "Running job ... executed successfully" twice per tick is about 120,000 lines a day: not for owners.
logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)


def make_clock(config: AgentConfig) -> Clock:
    """The accelerated clock when the demo or a test set one in the environment, else the system clock."""
    accelerated = AcceleratedClock.from_env()
    if accelerated is not None:
        log.warning("running on an accelerated clock (x%g): for demos and tests only", accelerated.factor)
        return accelerated
    return SystemClock(SyncCheck(config.sync_source))


class Agent:
    """One running agent: drivers -> ingest -> SQLite -> window release -> outbox -> MQTT."""

    def __init__(self, config: AgentConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or make_clock(config)
        self.store = Store(config.db_path)
        self.ingest = IngestWriter(
            self.store, self.clock, categorize=config.pos.categorize if config.pos is not None else None
        )
        # Nothing is released after a start before the coop's watermark is read (agent/coop/watermark.py).
        self.watermark = WatermarkGate(self.store, config.coop, config.store, config.mqtt.watermark_wait_s)
        self.releaser = WindowReleaser(
            config, self.store, self.clock, flush_ingest=self.ingest.flush, watermark=self.watermark
        )
        self.publisher = Publisher(config, self.store, self.clock, watermark=self.watermark)
        # Answers share the hourly release's journal and thread: the journal has one writer.
        self.licensing = (
            LicensingDesk(config, self.store, self.clock, self.releaser.journal, kernels=self.releaser.kernels)
            if config.licensing is not None
            else None
        )
        self.retention = Retention(self.store, self.clock, config.raw_max_age_s, config.raw_max_bytes)
        self.supervisor = DriverSupervisor()
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.health_server: HealthServer | None = None
        self.owner_page: OwnerPageServer | None = None
        self.home_assistant: HomeAssistantBridge | None = None  # exact figures to the shop's own broker
        self.sensor_recorder = owner_sensors.SensorRecorder()
        self.rounds: RoundParticipant | None = None
        if config.secagg is not None:
            from agent.coop.round_participant import RoundParticipant  # needs the coop extra (cryptography)

            # On the publisher's connection: the coop broker ties a client id to the certificate, so a second
            # client of this shop would disconnect the first (agent/coop/round_participant.py).
            # The release's kernel worker draws the rounds' noise shares too: numba never loads in this process.
            self.rounds = RoundParticipant(
                config,
                self.store,
                self.clock,
                self.publisher.send_round_message,
                journal=self.releaser.journal,
                kernels=self.releaser.kernels,
            )
            self.publisher.round_handler = self.rounds.on_message
            self.publisher.round_filters = secagg_shop_filters(config.coop, config.store)
        self.stopped = threading.Event()
        self.fatal: str | None = None  # why an internal thread died; the process then exits non-zero
        self._release_failed = False
        self.release_error: str | None = None  # why the last release tick failed, shown in /health
        self._last_tick = time.monotonic()

    def start(self) -> None:
        self.ingest.start()
        self.publisher.start()
        for driver in self.config.drivers:
            self.supervisor.start(driver, self.ingest.sink_for(str(getattr(driver, "name", driver.kind))))
        tick_s = self.tick_real_s()
        self.scheduler.add_job(
            self._window_tick, "interval", seconds=tick_s, id="window_tick", max_instances=1, coalesce=True
        )
        self.scheduler.add_job(
            self._retention,
            "interval",
            seconds=max(tick_s, min(60.0, 30 * tick_s)),
            id="retention",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.supervisor.check, "interval", seconds=2, id="supervise", max_instances=1, coalesce=True
        )
        # What `shopkeeper status` (another process) shows of the sensors: the drivers' health, kept fresh.
        self.scheduler.add_job(
            self._persist_sensors, "interval", seconds=2, id="owner_sensors", max_instances=1, coalesce=True
        )
        # The daily forecast: checked every ten (agent-clock) minutes, fitted once per local day, in a child
        # process (agent/forecast/job.py), so the fit never adds to this process's memory.
        self.scheduler.add_job(
            self._forecast_tick,
            "interval",
            seconds=max(5.0, self.clock.real_seconds(600)),
            id="forecast",
            max_instances=1,
            coalesce=True,
        )
        if self.rounds is not None:
            self.scheduler.add_job(
                self._round_tick, "interval", seconds=0.2, id="secagg_rounds", max_instances=1, coalesce=True
            )
        if self.config.home_assistant is not None:
            # A client of its own, to the shop's broker (never the coop's: the config refuses that).
            self.home_assistant = HomeAssistantBridge(
                self.store, self.config, self.config.home_assistant, self.clock.wall_ns
            )
            self.home_assistant.start()
            self.scheduler.add_job(
                self._home_assistant_states, "interval", seconds=max(0.5, tick_s), id="home_assistant",
                max_instances=1, coalesce=True,
            )  # fmt: skip
        self.scheduler.start()
        self._persist_sensors()
        if self.config.health_listen is not None:
            try:
                self.health_server = HealthServer(self, *self.config.health_listen)
                self.health_server.start()
                host, port = self.config.health_listen[0], self.health_server.port
                log.info("health and metrics on http://%s:%d/health", host, port)
            except OSError as exc:
                log.error("health endpoint %s:%d not started: %s", *self.config.health_listen, exc)
        if self.config.owner_page is not None:
            try:
                self.owner_page = OwnerPageServer(self.store, self.config, self.config.owner_page, self.clock.wall_ns)
                self.owner_page.start()
            except OSError as exc:
                where = self.config.owner_page
                log.error("owner page %s:%d not started: %s", where.host, where.port, exc)
        notify("READY=1")
        log.info("agent started: store %s, database %s", self.config.store, self.config.db_path)

    def tick_real_s(self) -> float:
        # Ticking at a fraction of the grace keeps release latency small on an accelerated clock.
        return max(0.05, min(self.config.tick_s, self.clock.real_seconds(self.config.grace_s) / 4))

    def _window_tick(self) -> None:
        try:
            if self.releaser.tick():
                self.publisher.wake()
            if self.licensing is not None and self.licensing.tick():
                self.publisher.wake()
            self._release_failed = False
            self.release_error = None
        except PrivacyError as exc:
            if not self._release_failed:
                log.error("%s", exc)
            self._release_failed = True
            self.release_error = str(exc)
        except Exception as exc:  # a dead kernel worker lands here: loud, shown in /health, retried
            log.exception("window release failed; will retry at the next tick")
            self.release_error = f"{type(exc).__name__}: {exc}"
        self._last_tick = time.monotonic()

    def _retention(self) -> None:
        try:
            self.retention.run()
        except Exception:
            log.exception("retention failed; will retry")

    def _forecast_tick(self) -> None:
        from agent.forecast import job  # light: no numpy; the fit itself runs in its own process

        try:
            zone = self.config.owner_page.timezone if self.config.owner_page else ""
            job.daily(self.store, self.config.db_path, zone, self.clock.wall_ns())
        except Exception:
            log.exception("forecast refresh failed; will retry")

    def _round_tick(self) -> None:
        assert self.rounds is not None
        try:
            self.rounds.tick()
        except Exception:
            log.exception("secure-aggregation job failed; will retry")

    def _home_assistant_states(self) -> None:
        try:
            if self.home_assistant is not None:
                self.home_assistant.publish_states()
        except Exception:
            log.exception("could not send the figures to Home Assistant; will retry")

    def _persist_sensors(self) -> None:
        try:
            self.sensor_recorder.persist(self)
        except Exception:
            log.exception("could not record the sensors' state for status; will retry")

    def alive(self) -> bool:
        """True while the release loop keeps ticking (what the systemd watchdog checks)."""
        return time.monotonic() - self._last_tick < 3 * self.tick_real_s() + 30

    def _thread_died(self, name: str, exc: BaseException) -> None:
        self.fatal = f"internal thread {name} died: {type(exc).__name__}: {exc}"
        self.stopped.set()

    def run_forever(self) -> None:
        """Start, then serve until SIGTERM or SIGINT; pings the systemd watchdog while healthy.

        Raises InternalThreadDied (the CLI exits 1, systemd restarts the agent) when one of the agent's
        own threads died, instead of running on without it.
        """
        set_fatal_handler(self._thread_died)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stopped.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        interval = watchdog_interval_s() or 5.0
        while not self.stopped.wait(interval):
            if self.alive():
                notify("WATCHDOG=1")
            else:
                log.error("the release loop has not ticked for a while; withholding the watchdog ping")
        self.stop()
        set_fatal_handler(None)
        if self.fatal is not None:
            raise InternalThreadDied(f"{self.fatal}; stopped so that systemd restarts the agent")

    def stop(self) -> None:
        notify("STOPPING=1")
        self.scheduler.shutdown(wait=True)  # first, so the supervisor cannot restart what we stop
        self.supervisor.stop_all()
        if self.health_server is not None:
            self.health_server.stop()
        if self.owner_page is not None:
            self.owner_page.stop()
        if self.home_assistant is not None:
            self.home_assistant.stop()
        self.ingest.stop()
        self.publisher.stop()
        if self.rounds is not None:
            self.rounds.round_kernels.close()
        self.releaser.kernels.close()
        with contextlib.suppress(Exception):  # a clean stop says so to `status`; never blocks the stop
            self.sensor_recorder.persist(self, stopped=True)
        self.store.close()
