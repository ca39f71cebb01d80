"""Window close and privacy release.

At each window end plus grace, the true per-door counts are aggregated (numba), noise for every cell
is drawn in one batch from the OS CSPRNG, and the ledger row, the accountant's spend and the outbox
rows are written in ONE transaction. A window that has a ledger row is never drawn again: restarts
and retries publish the stored values (DESIGN.md promises 2 to 4).
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

from agent.clock import NS_PER_S, Clock
from agent.config import AgentConfig, StreamSettings
from agent.errors import PrivacyError
from agent.kernels.footfall import count_footfall
from agent.privacy import ledger
from agent.privacy.sampler import SAMPLER_VERSION, BitSource, discrete_laplace, laplace_scale_for
from agent.store import Store

log = logging.getLogger(__name__)

UNIT = "door event"
# One door event adds 1 to exactly one cell (entries or exits of one door in one window), so the
# L1 sensitivity of the per-door table is 1 (docs/privacy.md, "footfall per door").
FOOTFALL_DOOR_SENSITIVITY = 1
PAYLOAD_SCHEMA = "shopkeeper.footfall-door.v1"


def iso_utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epsilon_json(value: Fraction) -> float:
    return float(value)


class WindowReleaser:
    """Closes due windows in order and releases each exactly once."""

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
        self.stream = next(s for s in config.streams if s.name == "footfall")
        self._ensure_first_window()

    def _ensure_first_window(self) -> None:
        if self.store.get_state("next_window_start_ns") is None:
            first = self.clock.wall_ns() // self.window_ns * self.window_ns
            with self.store.transaction() as conn:
                if self.store.get_state("next_window_start_ns") is None:
                    Store.set_state(conn, "next_window_start_ns", str(first))

    def next_window_start(self) -> int:
        return int(self.store.get_state("next_window_start_ns") or 0)

    def tick(self) -> int:
        """Release every window whose end plus grace has passed; returns how many were released."""
        if not self.clock.synced():
            log.debug("clock not synchronised; holding window release")
            return 0
        released = 0
        while True:
            start = self.next_window_start()
            if start + self.window_ns + self.grace_ns > self.clock.wall_ns():
                return released
            self.flush_ingest()
            self.release_window(start)
            released += 1

    def release_window(self, start_ns: int) -> None:
        """Aggregate, draw noise once, and commit ledger + spend + outbox + next window together."""
        end_ns = start_ns + self.window_ns
        true_counts = self._true_counts(start_ns, end_ns)  # (doors, 2), local only
        stream = self.stream
        scale_num, scale_den = laplace_scale_for(FOOTFALL_DOOR_SENSITIVITY, stream.epsilon)
        # Every cell's noise is drawn here, in one batch, before anything is written or sent.
        noise = discrete_laplace(scale_num, scale_den, true_counts.size, self.bits).reshape(true_counts.shape)
        noisy = true_counts + noise
        values = {
            door: {"entries": int(noisy[i, 0]), "exits": int(noisy[i, 1])} for i, door in enumerate(self.config.doors)
        }
        parameters = {
            "scale": f"{scale_num}/{scale_den}",
            "sensitivity": FOOTFALL_DOOR_SENSITIVITY,
            "unit": UNIT,
            "doors": list(self.config.doors),
        }
        with self.store.transaction() as conn:
            if self._already_released(conn, start_ns, stream):
                # Another path released this window first; its stored values stand.
                Store.set_state(conn, "next_window_start_ns", str(end_ns))
                return
            self._check_budget(conn, start_ns, stream)
            row: dict[str, Any] = {
                "window_start_ns": start_ns,
                "window_end_ns": end_ns,
                "stream": stream.name,
                "noisy_values": json.dumps(values, sort_keys=True),
                "mechanism": stream.mechanism,
                "parameters": json.dumps(parameters, sort_keys=True),
                "epsilon": str(stream.epsilon),
                "sampler_version": SAMPLER_VERSION,
                "released_wall_ns": self.clock.wall_ns(),
            }
            row["prev_hash"] = ledger.last_hash(conn)
            row["hash"] = ledger.row_hash(row["prev_hash"], row)
            cursor = conn.execute(
                f"INSERT INTO release_ledger ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            ledger_id = int(cursor.lastrowid or 0)
            conn.execute(
                "INSERT INTO privacy_spend VALUES (?, ?, ?, ?, ?)",
                (start_ns, stream.name, UNIT, str(stream.epsilon), ledger_id),
            )
            for door in self.config.doors:
                self._queue_message(conn, ledger_id, start_ns, end_ns, stream, door, values[door], parameters)
            Store.set_state(conn, "next_window_start_ns", str(end_ns))
        log.info("released window %s (%s, epsilon %s)", iso_utc(start_ns), stream.name, stream.epsilon)

    def _true_counts(self, start_ns: int, end_ns: int) -> np.ndarray:
        rows = (
            self.store.conn()
            .execute("SELECT door, entries, exits FROM events WHERE wall_ns >= ? AND wall_ns < ?", (start_ns, end_ns))
            .fetchall()
        )
        index = {door: i for i, door in enumerate(self.config.doors)}
        n = len(rows)
        door_idx = np.fromiter((index.get(r[0], -1) for r in rows), dtype=np.int64, count=n)
        entries = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
        exits = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        window_idx = np.zeros(n, dtype=np.int64)
        return count_footfall(window_idx, door_idx, entries, exits, 1, len(self.config.doors))[0]

    @staticmethod
    def _already_released(conn: sqlite3.Connection, start_ns: int, stream: StreamSettings) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM release_ledger WHERE window_start_ns = ? AND stream = ?", (start_ns, stream.name)
            ).fetchone()
            is not None
        )

    def _check_budget(self, conn: sqlite3.Connection, start_ns: int, stream: StreamSettings) -> None:
        """The accountant: refuse (fail closed) if this window's spend on a door event would exceed the budget."""
        spent = sum(
            (
                Fraction(r[0])
                for r in conn.execute(
                    "SELECT epsilon FROM privacy_spend WHERE window_start_ns = ? AND unit = ?", (start_ns, UNIT)
                )
            ),
            Fraction(0),
        )
        if spent + stream.epsilon > self.config.budget_epsilon:
            raise PrivacyError(
                f"window {iso_utc(start_ns)}: releasing {stream.name} would spend {spent + stream.epsilon} "
                f"per {UNIT}, over the budget {self.config.budget_epsilon}; nothing was released"
            )

    def _queue_message(
        self,
        conn: sqlite3.Connection,
        ledger_id: int,
        start_ns: int,
        end_ns: int,
        stream: StreamSettings,
        door: str,
        values: dict[str, int],
        parameters: dict[str, Any],
    ) -> None:
        cfg = self.config
        stream_path = f"{stream.name}/{cfg.window_name}"
        msg_id = f"{cfg.coop}/{cfg.store}/{stream_path}/{iso_utc(start_ns)}/{door}"
        cursor = conn.execute(
            "INSERT INTO outbox (msg_id, topic, payload, window_start_ns, ledger_id, created_wall_ns)"
            " VALUES (?, ?, '', ?, ?, ?)",
            (msg_id, cfg.topic(stream.tier, stream.name), start_ns, ledger_id, self.clock.wall_ns()),
        )
        seq = int(cursor.lastrowid or 0)
        payload = {
            "schema": PAYLOAD_SCHEMA,
            "msg_id": msg_id,
            "seq": seq,
            "coop": cfg.coop,
            "store": cfg.store,
            "stream": stream_path,
            "tier": stream.tier,
            "door": door,
            "window": {"start": iso_utc(start_ns), "end": iso_utc(end_ns), "seconds": cfg.window_s},
            "values": values,
            "privacy": {
                "mechanism": stream.mechanism,
                "epsilon": epsilon_json(stream.epsilon),
                "epsilon_exact": str(stream.epsilon),
                "sensitivity": parameters["sensitivity"],
                "scale": parameters["scale"],
                "unit": UNIT,
                "sampler": SAMPLER_VERSION,
            },
        }
        conn.execute(
            "UPDATE outbox SET payload = ? WHERE seq = ?",
            (json.dumps(payload, sort_keys=True, separators=(",", ":")), seq),
        )
