"""Privacy release: draw every cell's noise once, then ledger, spends and outbox rows in ONE transaction.

At each window end plus grace (window_close.py), the true tables of every planned stream
(aggregate.py) get their noise, drawn in one batch from the OS CSPRNG, and the ledger rows, the
accountant's spends and the outbox rows are written in ONE transaction. A (window, stream) that has a
ledger row is never drawn again: restarts and retries publish the stored values (DESIGN.md promises 2-4).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.clock import NS_PER_S, Clock
from agent.config import AgentConfig
from agent.contract import iso_utc
from agent.coop.watermark import APPLIED_KEY, WATERMARK_KEY, WatermarkGate
from agent.errors import PrivacyError
from agent.kernels.worker_process import InProcessKernels, Kernels, KernelWorker
from agent.pipeline import payloads
from agent.pipeline.aggregate import Aggregator
from agent.pipeline.window_close import WindowClose
from agent.privacy import accountant, ledger
from agent.privacy.bit_source import BitSource
from agent.privacy.journal import JOURNAL_NAME, JournalError, ReleaseJournal
from agent.privacy.journal import compact as compact_journal
from agent.privacy.plan import StreamPlan
from agent.privacy.reconcile import NEXT_WINDOW_KEY, apply_watermark, entries_for_ledger_ids, reconcile
from agent.privacy.sampler_version import SAMPLER_VERSION
from agent.store import Store, releases

log = logging.getLogger(__name__)

# The journal keeps a release's outbox messages (to re-send them after a database loss) for this long;
# older entries keep only their ledger row and spend, which is what stops a redraw. Checked once the file
# is larger than the threshold, so a small journal is never rewritten.
JOURNAL_MESSAGES_KEEP_S = 30 * 86400
JOURNAL_COMPACT_ABOVE_BYTES = 16 * 1024 * 1024
WATERMARK_AHEAD_MAX_NS = 7 * 86400 * NS_PER_S  # a coop watermark further ahead than this is refused
# The kernel worker (numba) is started per release and stopped after it, unless the next release is due
# within this many real seconds (an accelerated clock: the demo, the tests): restarting it that often
# would cost more than keeping it. Windows are at least minutes apart on a real clock.
KEEP_WORKER_BELOW_S = 10.0
__all__ = ["WindowReleaser", "iso_utc"]  # iso_utc lives in agent.contract; re-exported for old imports


class WindowReleaser:
    """Closes due windows in order and releases each (window, stream) exactly once."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store,
        clock: Clock,
        flush_ingest: Callable[[], object] = lambda: None,
        bits: BitSource | None = None,
        watermark: WatermarkGate | None = None,
        kernels: Kernels | None = None,
    ) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.watermark = watermark  # None: no coop watermark is waited for (unit tests, tools)
        self.flush_ingest = flush_ingest
        self.bits = bits
        # Counting and noise run in a kernel worker process started per release (no numba resident);
        # a given bit source (tests only) cannot cross a process, so it keeps the kernels in process.
        if kernels is None:
            kernels = KernelWorker() if bits is None else InProcessKernels(bits)
        self.kernels = kernels
        self.last_release_s = 0.0  # window start of the release to its commit, for logs and benchmarks
        self.window_ns = config.window_s * NS_PER_S
        self.grace_ns = config.grace_s * NS_PER_S
        # The journal is reconciled before the window grid is read: it may move the next window on.
        self.journal = ReleaseJournal(config.data_dir / JOURNAL_NAME)
        reconcile(store, self.journal)
        self._reconcile_due = False
        self.windows = WindowClose(config, store, clock)
        self.aggregate = Aggregator(config, store, self.kernels)

    def next_window_start(self) -> int:
        return self.windows.next_window_start()

    def tick(self) -> int:
        """Release every window whose end plus grace has passed; returns how many were released."""
        if not self.clock.synced():
            return 0
        if self.watermark is not None and not self.watermark.ready():
            return 0  # nothing is released after a start before the coop's watermark is read (or the wait ends)
        self.flush_ingest()
        self.apply_watermark()
        if self._reconcile_due:  # a journal append failed: what it left decides, never a second draw
            reconcile(self.store, self.journal)
            self.windows.refresh()
            self._reconcile_due = False
        with self.kernels.session():  # one worker for every window due now; none started if none is due
            released = self.windows.run_due(self.release_window)
            self.kernels.keep_alive = self._next_release_in_real_s() < KEEP_WORKER_BELOW_S
        if released:  # in this thread, between appends: the journal has one writer
            keep_after = self.clock.wall_ns() - JOURNAL_MESSAGES_KEEP_S * NS_PER_S
            compact_journal(self.journal, keep_after, JOURNAL_COMPACT_ABOVE_BYTES)
        return released

    def apply_watermark(self) -> int:
        """Skip to after the coop's watermark when it is ahead of the next window; returns windows lost."""
        stored = self.store.get_state(WATERMARK_KEY)
        if stored is None or stored == self.store.get_state(APPLIED_KEY):
            return 0
        if int(stored) > self.clock.wall_ns() + WATERMARK_AHEAD_MAX_NS:
            # A synced clock a week behind the coop is not this box's: a hub bug or a wrong store id. Skipping
            # to it would throw away every window until then, so it is refused, loudly, and nothing is skipped.
            log.error(
                "the coop's watermark %s is more than 7 days ahead of this box's clock: ignored (check the hub and"
                " agent.store)",
                iso_utc(int(stored)),
            )
            with self.store.transaction() as conn:
                Store.bump_counter(conn, "watermark_ahead_ignored")
                Store.set_state(conn, APPLIED_KEY, stored)
            return 0
        if self.store.get_state(NEXT_WINDOW_KEY) is None:  # as run_due does on a first start
            self.windows.rebase()
            self.windows.ensure_first_window()
        lost = apply_watermark(self.store, int(stored), self.windows.window_ns)
        with self.store.transaction() as conn:
            Store.set_state(conn, APPLIED_KEY, stored)
        self.windows.refresh()
        return lost

    def _next_release_in_real_s(self) -> float:
        due_ns = self.windows.next_window_start() + self.windows.window_ns + self.grace_ns
        return self.clock.real_seconds(max(0, due_ns - self.clock.wall_ns()) / NS_PER_S)

    def settle_event_times(self) -> None:
        self.windows.settle_event_times()

    def release_window(self, start_ns: int, end_ns: int | None = None) -> None:
        """Aggregate, draw all noise once, and commit ledger + spends + outbox + next window together."""
        end_ns = start_ns + self.windows.window_ns if end_ns is None else end_ns
        # The privacy filter first, before any noise is drawn: a window whose lifetime budget another
        # release (a query answer, a secure round) already took is refused here with nothing drawn.
        # It is checked again inside the transaction, which is what decides.
        conn = self.store.conn()
        due = [p for p in self.config.streams if not releases.is_released(conn, start_ns, p.name)]
        for charge in accountant.together(due):
            problem = accountant.over_budget(conn, self.config.filter_budget, start_ns, charge)
            if problem is not None:
                raise PrivacyError(
                    f"window {iso_utc(start_ns)}: releasing its summaries would spend {problem} per {charge.unit};"
                    " nothing was drawn or released"
                )
        began = time.monotonic()
        with self.kernels.session():
            true_tables = self.aggregate.true_tables(start_ns, end_ns)  # true values: local only
            noisy: dict[str, np.ndarray] = {}
            # Every cell's noise for this window is drawn here, in one batch, before anything is written or sent.
            for plan in self.config.streams:
                true = true_tables[plan.name]
                noisy[plan.name] = true + self._noise(plan, true.size).reshape(true.shape)
        with self.store.transaction() as conn:
            recorded = []
            for plan in self.config.streams:
                if releases.is_released(conn, start_ns, plan.name):
                    continue  # its stored values stand; never draw again
                self._check_budget(conn, start_ns, plan)
                recorded.append(self._record(conn, start_ns, end_ns, plan, noisy[plan.name]))
            self.windows.mark_released(conn, end_ns)
            # The journal line is durable before the transaction commits (privacy/journal.py).
            try:
                self.journal.append(entries_for_ledger_ids(conn, recorded))
            except JournalError:
                self._reconcile_due = True
                raise
        self.windows.refresh()
        self.last_release_s = time.monotonic() - began
        log.info(
            "released window %s (%s) in %.3f s",
            iso_utc(start_ns),
            ", ".join(p.name for p in self.config.streams),
            self.last_release_s,
        )

    def _noise(self, plan: StreamPlan, count: int) -> np.ndarray:
        num, den = plan.noise_parameters()
        if plan.mechanism == "discrete_laplace":
            return self.kernels.discrete_laplace(num, den, count)
        return self.kernels.discrete_gaussian(num, den, count)

    # -- the transaction's parts -------------------------------------------------------------------
    def _check_budget(self, conn: sqlite3.Connection, start_ns: int, plan: StreamPlan) -> None:
        """Fail closed: refuse the whole window if this stream would take a unit over its budget."""
        problem = accountant.over_budget(conn, self.config.filter_budget, start_ns, plan)
        if problem is not None:
            raise PrivacyError(
                f"window {iso_utc(start_ns)}: releasing {plan.name} would spend {problem} "
                f"per {plan.unit}; nothing was released"
            )

    def _record(self, conn: sqlite3.Connection, start_ns: int, end_ns: int, plan: StreamPlan, noisy: np.ndarray) -> int:
        """Ledger row, spend and outbox messages of one stream; returns the ledger id."""
        num, den = plan.noise_parameters()
        values = {
            key: {field: int(noisy[i, j]) for j, field in enumerate(plan.fields)} for i, key in enumerate(plan.keys)
        }
        parameters = {
            "noise_parameter": f"{num}/{den}",
            "l1_sensitivity": plan.l1_sensitivity,
            "l2_sensitivity_squared": plan.l2_sensitivity_squared,
            "unit": plan.unit,
            "keys": list(plan.keys),
            "clamp_negative": plan.clamp_negative,
            "suppress_below": plan.suppress_below,
        }
        row: dict[str, Any] = {
            "window_start_ns": start_ns,
            "window_end_ns": end_ns,
            "stream": plan.name,
            "noisy_values": json.dumps(values, sort_keys=True),
            "mechanism": plan.mechanism,
            "parameters": json.dumps(parameters, sort_keys=True),
            "epsilon": str(plan.epsilon) if plan.epsilon is not None else f"rho={plan.rho}",
            "sampler_version": SAMPLER_VERSION,
            "released_wall_ns": self.clock.wall_ns(),
        }
        row["prev_hash"] = ledger.last_hash(conn)
        row["hash"] = ledger.row_hash(row["prev_hash"], row)
        ledger_id = releases.insert_ledger_row(conn, row)
        releases.insert_spend(
            conn,
            start_ns,
            plan.name,
            plan.unit,
            str(plan.epsilon) if plan.epsilon is not None else "",
            str(plan.rho) if plan.rho is not None else "",
            ledger_id,
        )
        for key in plan.keys:
            published = {field: plan.post_process(v) for field, v in values[key].items()}
            self._queue_message(conn, ledger_id, start_ns, end_ns, plan, key, published)
        return ledger_id

    def _queue_message(
        self,
        conn: sqlite3.Connection,
        ledger_id: int,
        start_ns: int,
        end_ns: int,
        plan: StreamPlan,
        key: str,
        values: dict[str, int | None],
    ) -> None:
        payloads.queue_message(
            conn, self.config, ledger_id, start_ns, end_ns, plan, key, values, self.clock.wall_ns(), self.grace_ns
        )
