"""Window close and privacy release.

At each window end plus grace, the true tables of every planned stream are aggregated (numba), the
noise for every cell of every stream is drawn in one batch from the OS CSPRNG, and the ledger rows, the
accountant's spends and the outbox rows are written in ONE transaction. A (window, stream) that has a
ledger row is never drawn again: restarts and retries publish the stored values (DESIGN.md promises 2-4).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from agent.clock import NS_PER_S, Clock, boot_id
from agent.config import AgentConfig
from agent.errors import PrivacyError
from agent.kernels.footfall import count_footfall
from agent.privacy import ledger
from agent.privacy.bounds import LineItem, bound_basket
from agent.privacy.plan import StreamPlan
from agent.privacy.sampler import SAMPLER_VERSION, BitSource, discrete_gaussian, discrete_laplace
from agent.store import Store

log = logging.getLogger(__name__)

TIMED_TABLES = ("events", "baskets")  # raw records whose window is fixed once their time is trusted



def iso_utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fraction_or_none(value: Fraction | None) -> tuple[float | None, str | None]:
    return (None, None) if value is None else (float(value), str(value))


class WindowReleaser:
    """Closes due windows in order and releases each (window, stream) exactly once."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store,
        clock: Clock,
        flush_ingest: Callable[[], object] = lambda: None,
        bits: BitSource | None = None,
    ) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.flush_ingest = flush_ingest
        self.bits = bits
        self.window_ns = config.window_s * NS_PER_S
        self.grace_ns = config.grace_s * NS_PER_S
        # A window released this long after its end was held up (agent down, clock unsynced, backlog).
        self.late_after_ns = 2 * self.grace_ns + 60 * NS_PER_S
        self.boot_id = boot_id()
        if clock.synced():
            self._ensure_first_window()

    def _ensure_first_window(self) -> None:
        """The first window holds the first trusted reading: now, or the oldest event re-based at sync."""
        if self.store.get_state("next_window_start_ns") is not None:
            return
        with self.store.transaction() as conn:
            if self.store.get_state("next_window_start_ns") is None:
                oldest = conn.execute("SELECT min(wall_ns) FROM events WHERE synced = 1").fetchone()[0]
                first_ns = min(self.clock.wall_ns(), oldest) if oldest is not None else self.clock.wall_ns()
                Store.set_state(conn, "next_window_start_ns", str(first_ns // self.window_ns * self.window_ns))

    def next_window_start(self) -> int:
        return int(self.store.get_state("next_window_start_ns") or 0)

    def tick(self) -> int:
        """Release every window whose end plus grace has passed; returns how many were released."""
        if not self.clock.synced():
            log.debug("clock not synchronised; holding window release")
            return 0
        self.flush_ingest()
        if self.store.get_state("next_window_start_ns") is None:
            self._rebase()  # a first start on an unsynced clock: place its readings first
            self._ensure_first_window()
        self.settle_event_times()
        released = 0
        while True:
            start = self.next_window_start()
            if start + self.window_ns + self.grace_ns > self.clock.wall_ns():
                return released
            # Readings that arrive while a backlog of windows is released are settled at the next
            # tick (in their own window, or late in the oldest open one): never lost, never twice.
            self.release_window(start)
            released += 1

    def settle_event_times(self) -> None:
        """Re-base events stamped before the clock synced, then fix each event's window once.

        Re-basing uses the monotonic stamps: wall = sync_wall - (sync_mono - event_mono), valid within
        one boot. An event whose wall time falls in a window already released (a backward clock jump,
        or a reading that arrived after its window closed) counts in the oldest open window instead:
        late, but neither lost nor counted twice.
        """
        rebased, stale = self._rebase()
        next_open = self.next_window_start()
        with self.store.transaction() as conn:
            late = 0
            for table in TIMED_TABLES:
                late += conn.execute(
                    f"UPDATE {table} SET window_ns = ? WHERE window_ns IS NULL AND synced = 1 AND wall_ns < ?",
                    (next_open, next_open),
                ).rowcount
                conn.execute(
                    f"UPDATE {table} SET window_ns = wall_ns - (wall_ns % ?) WHERE window_ns IS NULL AND synced = 1",
                    (self.window_ns,),
                )
            if late:
                Store.bump_counter(conn, "events_counted_late", late)
        if rebased or stale:
            log.info(
                "clock synchronised: re-based %d event(s) from their monotonic stamps (%d from an "
                "earlier boot kept their wall time)",
                rebased,
                stale,
            )

    def _rebase(self) -> tuple[int, int]:
        """Give events stamped on an unsynchronised clock their true wall time (same boot only)."""
        mono, wall = self.clock.monotonic_ns(), self.clock.wall_ns()
        with self.store.transaction() as conn:
            rebased = stale = 0
            for table in TIMED_TABLES:
                rebased += conn.execute(
                    f"UPDATE {table} SET wall_ns = ? - (? - mono_ns), synced = 1 WHERE synced = 0 AND boot_id = ?",
                    (wall, mono, self.boot_id),
                ).rowcount
                stale += conn.execute(f"UPDATE {table} SET synced = 1 WHERE synced = 0").rowcount
            for name, count in (("events_rebased", rebased), ("events_from_unsynced_old_boot", stale)):
                if count:
                    Store.bump_counter(conn, name, count)
        return rebased, stale

    def release_window(self, start_ns: int) -> None:
        """Aggregate, draw all noise once, and commit ledger + spends + outbox + next window together."""
        end_ns = start_ns + self.window_ns
        door_table = self._door_counts(start_ns, end_ns)  # true values: local only
        sales_table = self._sales_table(start_ns) if self.config.pos is not None else None
        noisy: dict[str, np.ndarray] = {}
        # Every cell's noise for this window is drawn here, in one batch, before anything is written or sent.
        for plan in self.config.streams:
            true = self._true_table(plan, door_table, sales_table)
            noisy[plan.name] = true + self._noise(plan, true.size).reshape(true.shape)
        with self.store.transaction() as conn:
            for plan in self.config.streams:
                if self._already_released(conn, start_ns, plan):
                    continue  # its stored values stand; never draw again
                self._check_budget(conn, start_ns, plan)
                self._record(conn, start_ns, end_ns, plan, noisy[plan.name])
            Store.set_state(conn, "next_window_start_ns", str(end_ns))
        log.info("released window %s (%s)", iso_utc(start_ns), ", ".join(p.name for p in self.config.streams))

    # -- true tables (local only) ------------------------------------------------------------------
    def _door_counts(self, start_ns: int, end_ns: int) -> np.ndarray:
        rows = (
            self.store.conn()
            .execute("SELECT door, entries, exits FROM events WHERE window_ns = ?", (start_ns,))
            .fetchall()
        )
        index = {door: i for i, door in enumerate(self.config.doors)}
        n = len(rows)
        door_idx = np.fromiter((index.get(r[0], -1) for r in rows), dtype=np.int64, count=n)
        entries = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        exits = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        window_idx = np.zeros(n, dtype=np.int64)
        return count_footfall(window_idx, door_idx, entries, exits, 1, len(self.config.doors))[0]

    def _sales_table(self, start_ns: int) -> np.ndarray:
        """(categories + 1, 2): bounded basket counts and revenue per category; the last row counts baskets.

        Only completed, unflagged sales count; every basket is clamped to the configured bounds first
        (agent/privacy/bounds.py), so no basket moves any released cell by more than the sensitivity.
        """
        pos = self.config.pos
        assert pos is not None
        lines: dict[int, list[LineItem]] = {}
        for basket_id, category, quantity, total in self.store.conn().execute(
            "SELECT l.basket_id, l.category, l.quantity, l.line_total_cents FROM basket_lines l"
            " JOIN baskets b ON b.id = l.basket_id WHERE b.window_ns = ? AND b.kind = 'sale' AND b.flagged = ''",
            (start_ns,),
        ):
            lines.setdefault(basket_id, []).append(LineItem(category, quantity, total))
        index = {category: i for i, category in enumerate(pos.taxonomy)}
        keys, baskets, revenue = [], [], []
        n_baskets = 0
        for items in lines.values():
            contributions = bound_basket(items, pos.taxonomy, pos.bounds)
            n_baskets += bool(contributions)
            for category, c in contributions.items():
                keys.append(index[category])
                baskets.append(c.baskets)
                revenue.append(c.revenue_cents)
        n = len(keys)
        table = count_footfall(
            np.zeros(n, dtype=np.int64),
            np.array(keys, dtype=np.int64),
            np.array(baskets, dtype=np.int64),
            np.array(revenue, dtype=np.int64),
            1,
            len(pos.taxonomy),
        )[0]
        return np.vstack([table, np.array([[n_baskets, 0]], dtype=np.int64)])

    @staticmethod
    def _true_table(plan: StreamPlan, door_table: np.ndarray, sales_table: np.ndarray | None) -> np.ndarray:
        if plan.name == "footfall_door":
            return door_table
        if plan.name == "footfall_store":
            return door_table.sum(axis=0, keepdims=True)
        if plan.name == "sales_count" and sales_table is not None:
            return sales_table[:, :1]  # categories, then `all`
        if plan.name == "sales_revenue" and sales_table is not None:
            return sales_table[:-1, 1:]
        raise PrivacyError(f"no aggregation is defined for stream {plan.name}; nothing was released")

    def _noise(self, plan: StreamPlan, count: int) -> np.ndarray:
        num, den = plan.noise_parameters()
        if plan.mechanism == "discrete_laplace":
            return discrete_laplace(num, den, count, self.bits)
        return discrete_gaussian(num, den, count, self.bits)

    # -- the transaction's parts -------------------------------------------------------------------
    @staticmethod
    def _already_released(conn: sqlite3.Connection, start_ns: int, plan: StreamPlan) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM release_ledger WHERE window_start_ns = ? AND stream = ?", (start_ns, plan.name)
            ).fetchone()
            is not None
        )

    def _check_budget(self, conn: sqlite3.Connection, start_ns: int, plan: StreamPlan) -> None:
        """The accountant: refuse (fail closed) if this window's spend on the unit would exceed the budget."""
        rows = conn.execute(
            "SELECT epsilon, rho FROM privacy_spend WHERE window_start_ns = ? AND unit = ?", (start_ns, plan.unit)
        ).fetchall()
        eps_spent = sum((Fraction(e) for e, _r in rows if e), Fraction(0))
        rho_spent = sum((Fraction(r) for _e, r in rows if r), Fraction(0))
        budget = self.config.budget
        if plan.rho is None and all(not r for _e, r in rows):
            total: Fraction = eps_spent + (plan.epsilon or Fraction(0))
            over = total > budget.epsilon
            what = f"epsilon {total}, over the budget {budget.epsilon}"
        else:
            total = rho_spent + plan.rho_cost + sum((Fraction(e) ** 2 / 2 for e, r in rows if e and not r), Fraction(0))
            over = budget.rho is None or total > budget.rho
            what = f"rho {total}, over the budget {budget.rho}"
        if over:
            raise PrivacyError(
                f"window {iso_utc(start_ns)}: releasing {plan.name} would spend {what} "
                f"per {plan.unit}; nothing was released"
            )

    def _record(
        self, conn: sqlite3.Connection, start_ns: int, end_ns: int, plan: StreamPlan, noisy: np.ndarray
    ) -> None:
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
        cursor = conn.execute(
            f"INSERT INTO release_ledger ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
        )
        ledger_id = int(cursor.lastrowid or 0)
        conn.execute(
            "INSERT INTO privacy_spend (window_start_ns, stream, unit, epsilon, ledger_id, rho)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                start_ns,
                plan.name,
                plan.unit,
                str(plan.epsilon) if plan.epsilon is not None else "",
                ledger_id,
                str(plan.rho) if plan.rho is not None else "",
            ),
        )
        for key in plan.keys:
            published = {field: plan.post_process(v) for field, v in values[key].items()}
            self._queue_message(conn, ledger_id, start_ns, end_ns, plan, key, published)

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
        cfg = self.config
        stream_path = f"{plan.topic_stream}/{cfg.window_name}"
        msg_id = f"{cfg.coop}/{cfg.store}/{stream_path}/{iso_utc(start_ns)}"
        if plan.key_field is not None:
            msg_id += f"/{key}"
        cursor = conn.execute(
            "INSERT INTO outbox (msg_id, topic, payload, window_start_ns, ledger_id, created_wall_ns)"
            " VALUES (?, ?, '', ?, ?, ?)",
            (msg_id, cfg.topic(plan.tier, plan.topic_stream), start_ns, ledger_id, self.clock.wall_ns()),
        )
        seq = int(cursor.lastrowid or 0)
        num, den = plan.noise_parameters()
        epsilon, epsilon_exact = fraction_or_none(plan.epsilon)
        rho, rho_exact = fraction_or_none(plan.rho)
        payload: dict[str, Any] = {
            "schema": plan.schema,
            "msg_id": msg_id,
            "seq": seq,
            "coop": cfg.coop,
            "store": cfg.store,
            "stream": stream_path,
            "tier": plan.tier,
            "window": {"start": iso_utc(start_ns), "end": iso_utc(end_ns), "seconds": cfg.window_s},
            "values": values,
            "late": self.clock.wall_ns() - end_ns > self.late_after_ns,
            "privacy": {
                "mechanism": plan.mechanism,
                "epsilon": epsilon,
                "epsilon_exact": epsilon_exact,
                "rho": rho,
                "rho_exact": rho_exact,
                "sensitivity": plan.l1_sensitivity,
                "sensitivity_l2_squared": plan.l2_sensitivity_squared,
                "scale": f"{num}/{den}" if plan.mechanism == "discrete_laplace" else None,
                "sigma2": f"{num}/{den}" if plan.mechanism == "discrete_gaussian" else None,
                "unit": plan.unit,
                "sampler": SAMPLER_VERSION,
                "post_processing": {"clamp_negative": plan.clamp_negative, "suppress_below": plan.suppress_below},
            },
        }
        if plan.key_field is not None:
            payload[plan.key_field] = key
        conn.execute(
            "UPDATE outbox SET payload = ? WHERE seq = ?",
            (json.dumps(payload, sort_keys=True, separators=(",", ":")), seq),
        )
