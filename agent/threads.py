"""Internal threads that cannot die quietly: a dead one ends the process (DESIGN.md promise 8).

The agent's own threads (ingest writer, publisher) run their loop through `start_guarded`. If the loop
ever ends on an exception, the thread logs it once at CRITICAL and calls the process's fatal handler,
which the running agent sets to stop and exit non-zero so systemd restarts it, instead of limping on
while /health still says ok. Drivers are not guarded this way: the supervisor restarts them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

FatalHandler = Callable[[str, BaseException], None]
#: Fault injection for the end-to-end tests (tests/e2e/test_agent_faults.py): a comma-separated list of
#: guarded thread names that die on start, the way a bug would end them. Never set in production.
FAILPOINT_ENV = "SHOPKEEPER_FAILPOINT_THREADS"


class InjectedFault(RuntimeError):
    """Raised inside a guarded thread named in SHOPKEEPER_FAILPOINT_THREADS."""


_handler: FatalHandler | None = None


def set_fatal_handler(handler: FatalHandler | None) -> None:
    """What to do when a guarded thread dies (the agent stops and exits non-zero)."""
    global _handler
    _handler = handler


def start_guarded(name: str, loop: Callable[[], None]) -> threading.Thread:
    """Run `loop` in a daemon thread; its death by exception is fatal to the process."""

    def run() -> None:
        try:
            if name in os.environ.get(FAILPOINT_ENV, "").split(","):
                raise InjectedFault(f"{FAILPOINT_ENV} names {name}")
            loop()
        except BaseException as exc:
            log.critical(
                "internal thread %s died: %s; the agent stops so it can be restarted", name, exc, exc_info=True
            )
            if _handler is not None:
                _handler(name, exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
