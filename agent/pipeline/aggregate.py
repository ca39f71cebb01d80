"""Aggregation: each stream's TRUE table for one window, from the raw records (local only).

Door events are counted per public door; baskets are first clamped to the configured contribution
bounds (privacy/bounds.py), so no basket moves any released cell by more than the stream's
sensitivity. The counting itself is the numba kernel `count_footfall`, run by `kernels` (the kernel
worker process in the agent, so the resident process does not load numba).
"""

from __future__ import annotations

import numpy as np

from agent.config import AgentConfig
from agent.errors import PrivacyError
from agent.kernels.worker_process import InProcessKernels, Kernels
from agent.privacy.bounds import LineItem, bound_basket
from agent.privacy.plan import StreamPlan
from agent.store import Store, raw_events


class Aggregator:
    """Builds the true tables of every planned stream for one window."""

    def __init__(self, config: AgentConfig, store: Store, kernels: Kernels | None = None) -> None:
        self.config, self.store = config, store
        self.kernels: Kernels = InProcessKernels() if kernels is None else kernels

    def true_tables(self, start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
        """Stream name -> its (keys, fields) table of true values for the window."""
        door_table = self.door_counts(start_ns, end_ns)
        sales_table = self.sales_table(start_ns) if self.config.pos is not None else None
        return {plan.name: self._true_table(plan, door_table, sales_table) for plan in self.config.streams}

    def door_counts(self, start_ns: int, end_ns: int) -> np.ndarray:
        """(doors, 2): entries and exits per configured door."""
        rows = raw_events.door_counts_in(self.store.conn(), start_ns)
        index = {door: i for i, door in enumerate(self.config.doors)}
        n = len(rows)
        door_idx = np.fromiter((index.get(r[0], -1) for r in rows), dtype=np.int64, count=n)
        entries = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        exits = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        window_idx = np.zeros(n, dtype=np.int64)
        return self.kernels.count_footfall(window_idx, door_idx, entries, exits, 1, len(self.config.doors))[0]

    def sales_table(self, start_ns: int) -> np.ndarray:
        """(categories + 1, 2): bounded basket counts and revenue per category; the last row counts baskets.

        Only completed, unflagged sales count; every basket is clamped to the configured bounds first.
        """
        pos = self.config.pos
        assert pos is not None
        lines: dict[int, list[LineItem]] = {}
        for basket_id, category, quantity, total in raw_events.sale_lines_in(self.store.conn(), start_ns):
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
        table = self.kernels.count_footfall(
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
