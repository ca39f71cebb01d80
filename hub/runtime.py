"""Wire the hub's parts together: database, subscriber, periodic tasks, dashboard."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from hub.config import HubConfig
from hub.dashboard import DashboardServer
from hub.db import Database
from hub.subscriber import HubSubscriber
from hub.tasks import PeriodicTasks

if TYPE_CHECKING:
    from hub.secagg import RoundCoordinator

log = logging.getLogger(__name__)


class Hub:
    """One hub worker. Several may run against one broker (shared subscription) and one PostgreSQL."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.database = Database(config.database)
        self.fatal: BaseException | None = None
        self.subscriber = HubSubscriber(config, self.database, on_fatal=self._on_fatal)
        self.tasks = (
            PeriodicTasks(config, self.database, lambda t, p, r: self.subscriber.publish(t, p, retain=r))
            if config.tasks
            else None
        )
        self.dashboard: DashboardServer | None = None
        self.rounds: RoundCoordinator | None = None
        if config.secagg is not None:
            from hub.secagg import RoundCoordinator  # needs the coop extra (cryptography)

            self.rounds = RoundCoordinator(
                config, self.database, lambda t, p, r: self.subscriber.client.publish(t, p, qos=1, retain=r)
            )
            self.rounds.on_fatal = self._on_fatal
            self.rounds.ready = self.subscriber.subscribed
            self.subscriber.round_handler = self.rounds.on_message
        self.stopped = threading.Event()

    def _on_fatal(self, exc: BaseException) -> None:
        """A dead internal thread ends the process with a failure (systemd restarts it); never a limping hub."""
        self.fatal = exc
        self.stopped.set()

    def start(self) -> None:
        applied = self.database.migrate()
        if applied:
            log.info("database %s: applied %s", self.database.kind, ", ".join(applied))
        self.subscriber.start()
        if self.rounds:
            self.rounds.start()
        if self.tasks:
            self.tasks.start()
        if self.config.dashboard_address:
            self.dashboard = DashboardServer(self.config, self.database)
            self.dashboard.start()
            log.info("dashboard on %s", self.dashboard.url)
        log.info("hub %s started (coop %s, %s)", self.config.worker_id, self.config.coop, self.database.kind)

    def stop(self) -> None:
        if self.dashboard:
            self.dashboard.stop()
        if self.tasks:
            self.tasks.stop()
        if self.rounds:
            self.rounds.stop()
        self.subscriber.stop()

    def run_forever(self) -> int:
        """Start, then serve until SIGTERM or SIGINT (exit code 0) or a dead internal thread (exit code 1)."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stopped.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        self.stopped.wait()
        self.stop()
        return 1 if self.fatal is not None else 0
