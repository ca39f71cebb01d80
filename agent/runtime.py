"""Wire the parts together and run until told to stop."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from agent.clock import AcceleratedClock, Clock, SyncCheck, SystemClock
from agent.config import AgentConfig
from agent.errors import PrivacyError
from agent.ingest import IngestWriter
from agent.publish import Publisher
from agent.release import WindowReleaser
from agent.sdnotify import notify, watchdog_interval_s
from agent.store import Store

log = logging.getLogger(__name__)


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
        self.ingest = IngestWriter(self.store, self.clock)
        self.releaser = WindowReleaser(config, self.store, self.clock, flush_ingest=self.ingest.flush)
        self.publisher = Publisher(config, self.store)
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.stopped = threading.Event()
        self._release_failed = False

    def start(self) -> None:
        self.ingest.start()
        self.publisher.start()
        for driver in self.config.drivers:
            driver.start(self.ingest.sink_for(self._driver_name(driver)))
        tick_real_s = max(0.05, self._tick_real_s())
        self.scheduler.add_job(
            self._window_tick, "interval", seconds=tick_real_s, id="window_tick", max_instances=1, coalesce=True
        )
        self.scheduler.start()
        notify("READY=1")
        log.info("agent started: store %s, database %s", self.config.store, self.config.db_path)

    def _tick_real_s(self) -> float:
        # Ticking at a fixed fraction of the grace keeps release latency small on an accelerated clock.
        return min(self.config.tick_s, self.clock.real_seconds(self.config.grace_s) / 4)

    @staticmethod
    def _driver_name(driver: object) -> str:
        return str(getattr(driver, "name", type(driver).__name__))

    def _window_tick(self) -> None:
        try:
            if self.releaser.tick():
                self.publisher.wake()
        except PrivacyError as exc:
            if not self._release_failed:
                log.error("%s", exc)
            self._release_failed = True
        except Exception:
            log.exception("window release failed; will retry at the next tick")

    def run_forever(self) -> None:
        """Start, then serve until SIGTERM or SIGINT; pings the systemd watchdog meanwhile."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stopped.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        interval = watchdog_interval_s() or 5.0
        while not self.stopped.wait(interval):
            notify("WATCHDOG=1")
        self.stop()

    def stop(self) -> None:
        notify("STOPPING=1")
        for driver in self.config.drivers:
            driver.stop()
        self.scheduler.shutdown(wait=True)
        self.ingest.stop()
        self.publisher.stop()
        self.store.close()
