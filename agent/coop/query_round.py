"""A secure-aggregation round that carries a district licensing query (docs/licensing.md): the shop's side.

The licensing desk (agent/licensing/desk.py) accepted the query under the shop's policy and told the coop;
the hub then proposes one round whose cells are the query's table, `query:<id>|<key>|count|<start>|<length>`.
This module checks that proposal against the query the shop accepted (the hub is not trusted: the cells, the
range, the sensitivity and the rho must be the query's) and charges it.

What it costs. The district sum the hub unmasks carries at least sigma^2 = Delta^2 / (2 rho) of distributed
discrete Gaussian noise, so it is rho-zCDP for one privacy unit (Kairouz, Liu, Steinke 2021, Theorem 1; the
bound with its tau excess is agent/privacy/contribution.py `charged_rho`). The round may ask at most the
query's rho, epsilon^2 / 2 (the zCDP cost of a pure epsilon answer, Bun and Steinke 2016, Proposition 1.4), and
must declare at least the table's L2 sensitivity (agent/licensing/catalogue.py). A unit lies in one window,
so every window of the query's range is charged the round's rho once, kind `query`, in the transaction that
marks the input sent and moves the query to answered, journaled before it commits; the filter is checked in
that transaction (the lifetime budget decides), before anything is masked or drawn.
"""

from __future__ import annotations

import json
import sqlite3
from fractions import Fraction

import numpy as np

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.contract.licensing import ACCEPTED, ANSWERED
from agent.coop.secagg.errors import Refused
from agent.coop.secagg.messages import RoundConfig
from agent.coop.secagg.shop import RoundPolicy, WindowLedger
from agent.coop.secagg.transport import Cell
from agent.errors import PrivacyError
from agent.licensing import catalogue
from agent.licensing.catalogue import Query
from agent.licensing.desk import true_answer
from agent.licensing.inbox import query_from_row
from agent.privacy import accountant, ledger
from agent.privacy.contribution import MECHANISM
from agent.privacy.journal import ReleaseJournal
from agent.privacy.reconcile import entries_for_ledger_ids
from agent.privacy.sampler_version import SAMPLER_VERSION
from agent.store import Store, releases
from agent.store import licensing as licensing_sql
from agent.store import secagg as rounds_sql

NOT_COMBINED = "not_combined"  # the input left (its windows are spent) but the round ended without summing it


def round_stream(query: Query) -> str:
    """The ledger and spend stream of a query's round contribution (the acceptance holds `query.stream`)."""
    return f"{query.stream}/round"


def query_id_of(streams: set[str]) -> str | None:
    """The query a round's cells belong to, or None when they are not one query's cells."""
    if len(streams) != 1:
        return None
    (stream,) = streams
    return stream[len(releases.QUERY_PREFIX) :] if stream.startswith(releases.QUERY_PREFIX) else None


def query_cells(config: AgentConfig, query: Query) -> tuple[str, ...]:
    """The cells a round for `query` must have, in order: one per public key of its table."""
    taxonomy = config.pos.taxonomy if config.pos is not None else ()
    start_s, length_s = query.start_ns // NS_PER_S, (query.end_ns - query.start_ns) // NS_PER_S
    return tuple(
        Cell(query.stream, key, catalogue.COUNT_FIELD, start_s, length_s).name
        for key in catalogue.keys_of(query.kind, taxonomy)
    )


def accepted_query(conn: sqlite3.Connection, config: AgentConfig, round_config: RoundConfig, query_id: str) -> Query:
    """The accepted district query the round carries; Refused (with why) if the round is not exactly its cells."""
    row = licensing_sql.query(conn, query_id)
    if row is None:
        raise Refused(f"round {round_config.round_id} carries query {query_id[:60]}, which this shop never received")
    query = query_from_row(row)
    if not query.district or row["status"] != ACCEPTED:
        raise Refused(
            f"round {round_config.round_id}: query {query_id} is {row['status']} here, not accepted for a round"
        )
    if tuple(round_config.windows) != query_cells(config, query):
        raise Refused(f"round {round_config.round_id}: its cells are not query {query_id}'s table")
    return query


def query_policy(config: AgentConfig, query: Query, min_honest: int) -> RoundPolicy:
    """At most the query's rho, at least its table's L2 sensitivity (the shop's own limits, not the hub's)."""
    bounds = config.pos.bounds if config.pos is not None else None
    return RoundPolicy(query.round_rho, catalogue.l2_sensitivity_ceiling(query.kind, bounds), min_honest)


def query_values(config: AgentConfig, conn: sqlite3.Connection, query: Query, value_bound: int) -> np.ndarray:
    """The true table, each cell clamped to the round's value bound (local only: it goes into the masked sum)."""
    _keys, table = true_answer(config, conn, query)
    return np.clip(table, -value_bound, value_bound).astype(np.int64)


class QueryContribution(WindowLedger):
    """The core's window ledger for a query round: `spend` is the one transaction that charges it."""

    def __init__(self, store: Store, config: AgentConfig, journal: ReleaseJournal, query: Query, wall_ns: int) -> None:
        super().__init__()
        self.store, self.config, self.journal, self.query = store, config, journal, query
        self.wall_ns = wall_ns  # refreshed by the caller just before the input is masked
        self.values: list[int] = []
        self.rho = Fraction(0)
        self.parameters: dict[str, object] = {}

    def spend(self, windows: tuple[str, ...], round_id: str) -> None:
        """Called by ShopRound.masked_input before any noise is drawn or anything is masked."""
        del windows  # the query's windows: every window of its range
        query, window_ns = self.query, self.config.window_s * NS_PER_S
        with self.store.transaction() as conn:
            row = licensing_sql.query(conn, query.query_id)
            if row is None or row["status"] != ACCEPTED:
                raise Refused(f"query {query.query_id} is no longer waiting for its round; refusing a second input")
            charge = accountant.Charge(query.unit, rho=self.rho)
            over = accountant.first_over_budget(conn, self.config.filter_budget, query.windows(window_ns), charge)
            if over is not None:
                raise PrivacyError(f"round {round_id}: query {query.query_id} would spend {over[1]} per {query.unit}")
            ledger_id = self._ledger_row(conn, round_id)
            for start in query.windows(window_ns):  # under the round row's stream, as the journal restores them
                releases.insert_spend(
                    conn, start, round_stream(query), query.unit, "", str(self.rho), ledger_id, accountant.QUERY
                )
            reason = f"entered secure round {round_id}"
            licensing_sql.set_status(conn, query.query_id, ANSWERED, reason, self.wall_ns, ledger_id)
            rounds_sql.mark_input_sent(conn, round_id, self.values, self.wall_ns)
            # Journaled before COMMIT like every release: a lost database gets the charge back at the next start.
            self.journal.append(entries_for_ledger_ids(conn, [ledger_id]))

    def _ledger_row(self, conn: sqlite3.Connection, round_id: str) -> int:
        query = self.query
        row: dict[str, object] = {
            "window_start_ns": query.start_ns,
            "window_end_ns": query.end_ns,
            "stream": round_stream(query),
            # What left: a masked vector (uniform mod 2**64 on its own); the hub learns only the district sum.
            "noisy_values": json.dumps({"round_id": round_id, "sent": "masked input"}, sort_keys=True),
            "mechanism": MECHANISM,
            "parameters": json.dumps({**self.parameters, **query.about(), "unit": query.unit}, sort_keys=True),
            "epsilon": f"rho={self.rho}",
            "sampler_version": SAMPLER_VERSION,
            "released_wall_ns": self.wall_ns,
        }
        row["prev_hash"] = ledger.last_hash(conn)
        row["hash"] = ledger.row_hash(str(row["prev_hash"]), row)
        return releases.insert_ledger_row(conn, row)


def round_ended(
    conn: sqlite3.Connection, query_id: str, state: str, included: bool | None, reason: str, now: int
) -> None:
    """After the round: a query whose input left but was not summed says so (its windows stay spent)."""
    row = licensing_sql.query(conn, query_id)
    if row is None or row["status"] != ANSWERED:
        return  # the input never left: the query stays accepted or refused as it was
    if state == "released" and included:
        licensing_sql.set_status(conn, query_id, ANSWERED, f"{row['reason']}; summed", now, row["ledger_id"])
    else:
        why = f"{row['reason']}; the round ended without this shop's input ({reason[:200]}); its windows stay spent"
        licensing_sql.set_status(conn, query_id, NOT_COMBINED, why, now, row["ledger_id"])
