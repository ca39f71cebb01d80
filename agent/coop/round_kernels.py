"""A kernel worker held warm while a secure-aggregation round still needs this shop's noise share.

The resident agent never loads numba; a round's share is drawn in the kernel worker. Starting that worker
(and loading the sampler from numba's cache) takes about a second here and several on a small box, and the
hub gives a shop STEP_TIMEOUT_S (4 s in the tests) to answer the input step. So the worker is held from the
moment the shop joins a round (its advert has left) and warmed in a background thread while the shares step
runs; the input step then finds it ready. It is let go once every live round has drawn its share, or after
HOLD_MAX_S, so a round the hub abandons does not keep the JIT in memory.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from agent.kernels.worker_process import Kernels

log = logging.getLogger(__name__)

# A round's steps take seconds (the hub's step timeout is 4 s in the tests, about 30 s in a coop): a round
# still short of its input after two minutes has been abandoned by the hub.
HOLD_MAX_S = 120.0
# The steps whose next message needs the share: after the advert ("share"), after the shares ("input").
BEFORE_THE_SHARE = ("share", "input")


class _Round(Protocol):
    shop: Any  # agent.coop.secagg.shop.ShopRound: its `step` and `noise`


class RoundKernels:
    """Holds one kernel session while any live round has yet to draw its share (`follow`, each job tick)."""

    def __init__(self, kernels: Kernels, hold_max_s: float = HOLD_MAX_S) -> None:
        self.kernels, self.hold_max_s = kernels, hold_max_s
        self._held: contextlib.ExitStack | None = None
        self._first_seen: dict[str, float] = {}
        self.warmups = 0  # background warm-ups started (tests read it)
        self.warm = threading.Event()  # set once the last warm-up has answered

    @property
    def held(self) -> bool:
        """Whether a kernel session is held for rounds now."""
        return self._held is not None

    def follow(self, live: Mapping[str, _Round]) -> None:
        """Hold (and warm) the kernels while a live round still needs its share; let them go once none does."""
        now = time.monotonic()
        for gone in set(self._first_seen) - set(live):
            del self._first_seen[gone]
        waiting = [
            round_id
            for round_id, r in live.items()
            if r.shop.noise is None
            and r.shop.step in BEFORE_THE_SHARE
            and now - self._first_seen.setdefault(round_id, now) < self.hold_max_s
        ]
        if waiting and self._held is None:
            self._held = contextlib.ExitStack()
            self._held.enter_context(self.kernels.session())
            self.warm.clear()
            self.warmups += 1
            threading.Thread(target=self._warm_up, name="secagg-kernel-warmup", daemon=True).start()
        elif not waiting and self._held is not None:
            held, self._held = self._held, None
            held.close()  # the worker stops now unless a release holds it too (or keeps it for the next)

    def close(self) -> None:
        """Let the kernels go (the agent is stopping)."""
        if self._held is not None:
            held, self._held = self._held, None
            held.close()

    def _warm_up(self) -> None:
        # Starts the worker and loads both kernels the input step runs (the true cells, the share). The
        # samples are thrown away unseen: nothing drawn here is ever published or recorded.
        try:
            zero = np.zeros(1, dtype=np.int64)
            self.kernels.count_footfall(zero, zero, zero, zero, 1, 1)
            self.kernels.discrete_gaussian(1, 1, 1)
        except Exception as exc:  # the input step will try again, and refuse the round loudly if it fails too
            log.warning("kernel worker warm-up for a secure-aggregation round failed: %s", exc)
        finally:
            self.warm.set()
