"""The licensing desk: decides each stored query under the shop's policy, then answers it once or refuses it.

Run from the release thread (agent/ops/runtime.py), after the hourly windows: the release journal has
one writer. Order of the checks, each refusal carrying its reason back to the coop:
1. the policy (kind, requester, epsilon per query); with manual approval the query then waits for the
   owner (`shopkeeper queries approve|refuse`, or the buttons on the local page);
2. expiry; the range must end at or before the newest released window (a window still open or not yet
   released cannot be asked about); retention must not have removed any of the range's raw data;
3. the privacy filter: the query's epsilon in every window it touches must fit that window's lifetime
   budget, checked BEFORE any noise is drawn;
then the noise is drawn once, and the ledger row (with the query id and the credit), one spend per window,
the answer's outbox message and the query's new status are written in ONE transaction, journaled before it
commits. The filter is checked again inside that transaction, which is what decides.

A district query (`combine = secure_aggregation`) is never answered on its own: after the same checks
(the filter with the round's rho, epsilon^2 / 2, per window) the box sends only that it accepts, with its
table's public keys, and waits for the hub's round; the round participant (agent/coop/round_participant.py)
charges the windows and enters the true table into the masked sum, and nothing else of it leaves.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from fractions import Fraction
from typing import Any

import numpy as np

from agent.clock import Clock
from agent.config import AgentConfig
from agent.contract import iso_utc
from agent.contract.licensing import ACCEPTED, ANSWER_SCHEMA, ANSWERED, REFUSED, answer_msg_id, answer_topic
from agent.errors import PrivacyError
from agent.kernels.worker_process import InProcessKernels, Kernels, KernelWorker
from agent.licensing import catalogue
from agent.licensing.catalogue import Query
from agent.licensing.inbox import query_from_row
from agent.privacy import accountant, ledger
from agent.privacy.bit_source import BitSource
from agent.privacy.journal import ReleaseJournal
from agent.privacy.reconcile import NEXT_WINDOW_KEY, entries_for_ledger_ids
from agent.privacy.sampler_version import SAMPLER_VERSION
from agent.store import Store, outbox, releases
from agent.store import licensing as licensing_sql

log = logging.getLogger(__name__)
MECHANISM = "discrete_laplace"
RECEIVED, PENDING, APPROVED, OWNER_REFUSED = "received", "pending", "approved", "owner_refused"


class LicensingDesk:
    """Turns stored queries into answers or refusals, each released once."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store,
        clock: Clock,
        journal: ReleaseJournal,
        bits: BitSource | None = None,
        kernels: Kernels | None = None,
    ) -> None:
        assert config.licensing is not None
        self.config, self.policy, self.store, self.clock = config, config.licensing, store, clock
        self.journal = journal
        # The noise is drawn where the hourly release draws it: in the kernel worker (the agent passes the
        # release thread's), so the resident agent never loads numba; a test's bit source keeps it in process.
        if kernels is None:
            kernels = InProcessKernels(bits) if bits is not None else KernelWorker()
        self.kernels = kernels
        self.window_ns = config.window_s * 1_000_000_000

    def tick(self) -> int:
        """Decide every received or approved query; returns how many answers or refusals were released."""
        done = 0
        conn = self.store.conn()
        rows = [r for status in (RECEIVED, APPROVED, OWNER_REFUSED) for r in licensing_sql.queries(conn, status)]
        for row in rows:
            query = query_from_row(row)
            if row["status"] == OWNER_REFUSED:
                self.refuse(query, row["reason"])
                done += 1
                continue
            if row["status"] == RECEIVED:
                reason = self.policy.refusal(query.kind, query.requester, query.epsilon) or self._unsupported(query)
                if reason is not None:
                    self.refuse(query, reason)
                    done += 1
                    continue
                if self.policy.approval == "manual":
                    with self.store.transaction() as tx:
                        licensing_sql.set_status(tx, query.query_id, PENDING, "", self.clock.wall_ns())
                    log.info("licensing query %s waits for the owner's approval", query.query_id)
                    continue
            done += self.answer(query)
        return done

    # -- checks --------------------------------------------------------------------------------------
    def _unsupported(self, query: Query) -> str | None:
        if query.kind == catalogue.FOOTFALL_HOUR_OF_WEEK and 3600 % self.config.window_s:
            return "this shop's windows are longer than an hour, so it cannot answer by hour of the week"
        if query.unit == catalogue.BASKET and self.config.pos is None:
            return "this shop has no point-of-sale feed"
        if query.district and self.config.secagg is None:
            return "this shop takes no part in secure aggregation ([secagg] is not set up): no district figures"
        return None

    def why_not_now(self, conn: sqlite3.Connection, query: Query) -> str | None:
        """Why the query cannot be answered now (expiry, open windows, retention, the filter), or None."""
        now = self.clock.wall_ns()
        if query.expires_ns <= now:
            return f"the query expired at {iso_utc(query.expires_ns)} before it could be answered"
        released_before = int(Store.state_in(conn, NEXT_WINDOW_KEY) or 0)
        if query.end_ns > released_before:
            return (
                f"the range ends at {iso_utc(query.end_ns)}, after the newest released window"
                f" (released up to {iso_utc(released_before) if released_before else 'nothing yet'}); ask again later"
            )
        gone = Store.state_in(conn, licensing_sql.RAW_GONE_KEY)
        if gone is not None and query.start_ns <= int(gone):
            return (
                f"this shop no longer holds the raw data of windows up to {iso_utc(int(gone))} (removed by its"
                " retention, storage.raw_max_age), so the range cannot be asked about"
            )
        over = accountant.first_over_budget(
            conn, self.config.filter_budget, query.windows(self.window_ns), charge(query)
        )
        if over is not None:
            return (
                f"window {iso_utc(over[0])}: answering would spend {over[1]} per {query.unit} of its lifetime budget"
                f" (privacy.{'lifetime_rho_per_window' if query.district else 'lifetime_epsilon_per_window'});"
                " nothing was drawn"
            )
        return None

    # -- releases ------------------------------------------------------------------------------------
    def answer(self, query: Query) -> int:
        """Answer once (or refuse with the reason why it cannot be answered now); returns 1."""
        problem = self.why_not_now(self.store.conn(), query)  # before any noise is drawn
        if problem is not None:
            self.refuse(query, problem)
            return 1
        if query.district:
            return self.accept(query)
        keys, true = true_answer(self.config, self.store.conn(), query)  # true values: local only
        # t = sensitivity / epsilon, exact; the sampler refuses a scale out of its range (PrivacyError).
        scale = Fraction(catalogue.l1_sensitivity(query.kind, self._bounds())) / query.epsilon
        num, den = scale.numerator, scale.denominator
        with self.kernels.session():
            noisy = true + self.kernels.discrete_laplace(num, den, true.size)
        values = {key: int(v) for key, v in zip(keys, noisy, strict=True)}
        with self.store.transaction() as conn:
            if self._already_released(conn, query):
                return 0
            problem = self.why_not_now(conn, query)
            if problem is not None:  # another release took the budget meanwhile: fail closed, drawn values dropped
                raise PrivacyError(f"query {query.query_id}: {problem}")
            parameters = {
                "noise_parameter": f"{num}/{den}",
                "l1_sensitivity": catalogue.l1_sensitivity(query.kind, self._bounds()),
                "unit": query.unit,
                "keys": list(keys),
                **query.about(),
            }
            ledger_id = self._ledger_row(conn, query, values, MECHANISM, parameters, str(query.epsilon))
            for window in query.windows(self.window_ns):
                releases.insert_spend(
                    conn, window, query.stream, query.unit, str(query.epsilon), "", ledger_id, accountant.QUERY
                )
            privacy = {
                "mechanism": MECHANISM,
                "epsilon_exact": str(query.epsilon),
                "l1_sensitivity": parameters["l1_sensitivity"],
                "noise_scale_exact": f"{num}/{den}",
                "noise_scale": num / den,
                "unit": query.unit,
            }
            self._message(conn, ledger_id, query, ANSWERED, "", values, privacy)
            licensing_sql.set_status(conn, query.query_id, ANSWERED, "", self.clock.wall_ns(), ledger_id)
            self.journal.append(entries_for_ledger_ids(conn, [ledger_id]))
        log.info(
            "answered licensing query %s (%s, epsilon %s, credit %d cents)",
            query.query_id,
            query.kind,
            query.epsilon,
            query.credit_cents,
        )
        return 1

    def accept(self, query: Query) -> int:
        """A district query: send that this shop will enter the hub's round (no values, no spend yet); returns 1.

        The acceptance is a ledger row without a spend, like a refusal: what leaves is the shop's yes, its table's
        public keys and the sensitivity it will require, none of which depends on its data.
        """
        keys = catalogue.keys_of(query.kind, self.config.pos.taxonomy if self.config.pos is not None else ())
        with self.store.transaction() as conn:
            if self._already_released(conn, query):
                return 0
            problem = self.why_not_now(conn, query)
            if problem is not None:
                raise PrivacyError(f"query {query.query_id}: {problem}")
            about = {
                **query.about(),
                "keys": list(keys),
                "l2_sensitivity": catalogue.l2_sensitivity_ceiling(query.kind, self._bounds()),
                "round_rho": str(query.round_rho),
            }
            ledger_id = self._ledger_row(conn, query, {}, "accepted_for_secure_round", about, "0")
            privacy = {"round_rho": about["round_rho"], "l2_sensitivity": about["l2_sensitivity"], "unit": query.unit}
            self._message(conn, ledger_id, query, ACCEPTED, "", None, privacy, list(keys))
            licensing_sql.set_status(conn, query.query_id, ACCEPTED, "", self.clock.wall_ns(), ledger_id)
            self.journal.append(entries_for_ledger_ids(conn, [ledger_id]))
        log.info("accepted district query %s (%s): waiting for the hub's secure round", query.query_id, query.kind)
        return 1

    def refuse(self, query: Query, reason: str) -> None:
        """Release the refusal once (ledger row without spend, outbox message with the reason)."""
        with self.store.transaction() as conn:
            if self._already_released(conn, query):
                return
            ledger_id = self._ledger_row(conn, query, {}, "refused", {"reason": reason, **query.about()}, "0")
            self._message(conn, ledger_id, query, REFUSED, reason, None, None)
            licensing_sql.set_status(conn, query.query_id, REFUSED, reason, self.clock.wall_ns(), ledger_id)
            self.journal.append(entries_for_ledger_ids(conn, [ledger_id]))
        log.info("refused licensing query %s: %s", query.query_id, reason)

    def _already_released(self, conn: sqlite3.Connection, query: Query) -> bool:
        row = licensing_sql.query(conn, query.query_id)
        return releases.is_released(conn, query.start_ns, query.stream) or (
            row is not None and row["status"] in (ANSWERED, REFUSED)
        )

    def _ledger_row(
        self,
        conn: sqlite3.Connection,
        query: Query,
        values: dict[str, int],
        mechanism: str,
        parameters: dict[str, Any],
        epsilon: str,
    ) -> int:
        row: dict[str, Any] = {
            "window_start_ns": query.start_ns,
            "window_end_ns": query.end_ns,
            "stream": query.stream,
            "noisy_values": json.dumps(values, sort_keys=True),
            "mechanism": mechanism,
            "parameters": json.dumps(parameters, sort_keys=True),
            "epsilon": epsilon,
            "sampler_version": SAMPLER_VERSION,
            "released_wall_ns": self.clock.wall_ns(),
        }
        row["prev_hash"] = ledger.last_hash(conn)
        row["hash"] = ledger.row_hash(row["prev_hash"], row)
        return releases.insert_ledger_row(conn, row)

    def _message(
        self,
        conn: sqlite3.Connection,
        ledger_id: int,
        query: Query,
        status: str,
        reason: str,
        values: dict[str, int] | None,
        privacy: dict[str, Any] | None,
        keys: list[str] | None = None,
    ) -> None:
        msg_id = answer_msg_id(self.config.coop, self.config.store, query.query_id)
        now = self.clock.wall_ns()
        seq = outbox.enqueue(
            conn, msg_id, answer_topic(self.config.coop, self.config.store), query.start_ns, ledger_id, now
        )
        payload = {
            "schema": ANSWER_SCHEMA,
            "msg_id": msg_id,
            "seq": seq,
            "coop": self.config.coop,
            "store": self.config.store,
            "query_id": query.query_id,
            "kind": query.kind,
            "status": status,
            "reason": reason,
            "values": values,
            "credit_cents": query.credit_cents if status == ANSWERED else 0,
            "privacy": privacy,
            "late": False,
        }
        if query.district:
            payload["combine"] = query.combine
            payload["keys"] = keys
        outbox.set_payload(conn, seq, payload)

    def _bounds(self) -> catalogue.BasketBounds | None:
        return None if self.config.pos is None else self.config.pos.bounds


def charge(query: Query) -> accountant.Charge:
    """What the query costs each window it touches: epsilon, or for a district round its rho (epsilon^2 / 2)."""
    if query.district:
        return accountant.Charge(query.unit, rho=query.round_rho)
    return accountant.Charge(query.unit, query.epsilon)


def true_answer(config: AgentConfig, conn: sqlite3.Connection, query: Query) -> tuple[tuple[str, ...], np.ndarray]:
    """The query's public keys and true table from the raw data still held (local only, never published)."""
    taxonomy = config.pos.taxonomy if config.pos is not None else ()
    keys = catalogue.keys_of(query.kind, taxonomy)
    if query.kind == catalogue.FOOTFALL_HOUR_OF_WEEK:
        return keys, catalogue.footfall_hour_of_week(
            licensing_sql.entries_by_window(conn, query.start_ns, query.end_ns)
        )
    assert config.pos is not None
    lines = licensing_sql.sale_lines_between(conn, query.start_ns, query.end_ns)
    if query.kind == catalogue.CATEGORY_SHARES_BY_MONTH:
        return keys, catalogue.category_baskets(lines, taxonomy, config.pos.bounds)
    return keys, catalogue.basket_value_bins(lines, taxonomy, config.pos.bounds)


def decide(store: Store, query_id: str, approve: bool, now_ns: int, reason: str = "") -> str:
    """The owner's decision on a pending query (CLI and local page); the desk releases it at its next tick.

    A refusal by the owner is recorded as `approved = False` with the reason; the desk sends it.
    """
    with store.transaction() as conn:
        row = licensing_sql.query(conn, query_id)
        if row is None:
            return f"no query {query_id!r}"
        if row["status"] != PENDING:
            return f"query {query_id} is {row['status']}, not waiting for a decision"
        if approve:
            licensing_sql.set_status(conn, query_id, APPROVED, "", now_ns)
        else:
            licensing_sql.set_status(conn, query_id, OWNER_REFUSED, reason or "the shop's owner said no", now_ns)
    return "approved" if approve else "refused"
