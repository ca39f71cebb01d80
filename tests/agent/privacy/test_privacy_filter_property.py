"""The privacy filter holds under any order of hourly releases, secure-round charges, licensed queries and
district queries combined by secure aggregation, and across restarts (the SQLite file reopened): no window's
unit ever spends more than its lifetime budget, in epsilon while every spend is pure, in rho (each pure spend
counted as epsilon^2 / 2) once any is zCDP. The secure-round and district charges go through the very code
the agent runs (agent/privacy/contribution.py, agent/coop/query_round.py)."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.contract import DOOR_EVENT
from agent.contract.licensing import ACCEPTED, SECURE_AGGREGATION
from agent.coop.query_round import QueryContribution
from agent.coop.secagg.errors import Refused
from agent.errors import PrivacyError
from agent.licensing import inbox
from agent.licensing.desk import LicensingDesk
from agent.licensing.inbox import query_from_row
from agent.pipeline.release import WindowReleaser
from agent.privacy.contribution import charge_contribution
from agent.store import Store
from agent.store import licensing as licensing_sql
from agent.store import secagg as rounds_sql
from tests.conftest import T0_NS, ManualClock, make_config
from tests.licensing_kit import encode, licensing_section, signed_query

HOUR = 3600 * NS_PER_S
LIFETIME = Fraction(2)
LIFETIME_RHO = Fraction(1)
EPSILONS = st.sampled_from([Fraction(1, 4), Fraction(1, 2), Fraction(1), Fraction(3, 2)])
RHOS = st.sampled_from([Fraction(1, 32), Fraction(1, 8), Fraction(1, 2)])
OPS = st.one_of(
    st.tuples(st.just("hours"), st.integers(1, 30)),
    st.tuples(st.just("secure"), st.integers(0, 71), RHOS),
    st.tuples(st.just("query"), st.integers(0, 2), EPSILONS),
    st.tuples(st.just("district"), st.integers(0, 2), EPSILONS),
    st.tuples(st.just("restart")),
)
SECAGG = f'\n[secagg]\nroster_digest = "{"00" * 32}"\nstreams = []\n'


class Box:
    """One shop's store, hourly releaser and licensing desk over one SQLite file, restartable."""

    def __init__(self, config: AgentConfig, clock: ManualClock) -> None:
        self.config, self.clock = config, clock
        self.rounds = 0
        self.open()

    def open(self) -> None:
        self.store = Store(self.config.db_path)
        self.releaser = WindowReleaser(self.config, self.store, self.clock)
        self.desk = LicensingDesk(self.config, self.store, self.clock, self.releaser.journal)

    def restart(self) -> None:
        self.store.close()
        self.open()

    def hours(self, n: int) -> None:
        self.clock.advance(n * 3600)
        with contextlib.suppress(PrivacyError):  # refused, fail closed: a secure round took the window first
            self.releaser.tick()

    def secure(self, hour: int, rho: Fraction) -> None:
        """A secure-aggregation round's charge (zCDP), as the round participant makes it before its input leaves."""
        start = T0_NS + hour * HOUR
        self.rounds += 1
        plan = next(p for p in self.config.streams if p.unit == DOOR_EVENT)
        wall = self.clock.wall_ns()
        round_id = f"r-{self.rounds}"
        with contextlib.suppress(PrivacyError), self.store.transaction() as conn:
            rounds_sql.insert_round(conn, round_id, b"\0" * 32, plan.name, (), HOUR, 3, 2, str(rho), "", wall)
            if rounds_sql.spent_windows(conn, plan.name, [start]):
                return  # the window entered a round of this stream before: the participant refuses a second
            # Refused over the lifetime budget (PrivacyError): nothing of the charge is written.
            charge_contribution(conn, self.config.filter_budget, plan, round_id, [start], HOUR, rho, {}, wall)

    def query(self, day: int, epsilon: Fraction, combine: str = "") -> None:
        params = {"start": f"2025-11-{16 + day}", "end": f"2025-11-{17 + day}"}
        message = signed_query(
            self.clock.wall_ns() + 30 * 24 * HOUR, params=params, epsilon=str(epsilon), combine=combine
        )
        assert self.config.licensing is not None
        key = self.config.licensing.coop_public_key
        inbox.receive(self.store, self.config.coop, key, encode(message), self.clock.wall_ns())
        self.desk.tick()

    def district(self, day: int, epsilon: Fraction) -> None:
        """A district query: accepted by the desk, then its round's charge at the moment the input is masked."""
        self.query(day, epsilon, SECURE_AGGREGATION)
        for row in licensing_sql.queries(self.store.conn(), ACCEPTED):
            query = query_from_row(row)
            contribution = QueryContribution(
                self.store, self.config, self.releaser.journal, query, self.clock.wall_ns()
            )
            contribution.rho = query.round_rho
            with contextlib.suppress(PrivacyError, Refused):
                contribution.spend((), f"query-{query.query_id}")


def spends(path: Path) -> Iterator[tuple[int, str, Fraction, Fraction]]:
    """Every window's total per unit and the budget it is held to (epsilon, or rho once any spend is zCDP),
    read from the file by a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        rows: dict[tuple[int, str], list[tuple[str, str]]] = {}
        for start, unit, eps, rho in conn.execute("SELECT window_start_ns, unit, epsilon, rho FROM privacy_spend"):
            rows.setdefault((start, unit), []).append((eps, rho))
    finally:
        conn.close()
    for (start, unit), spent in rows.items():
        if all(not rho for _e, rho in spent):
            yield start, unit, sum((Fraction(e) for e, _r in spent), Fraction(0)), LIFETIME
        else:
            total = sum((Fraction(r) if r else Fraction(e) ** 2 / 2 for e, r in spent), Fraction(0))
            yield start, unit, total, LIFETIME_RHO


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=10))
def test_no_window_ever_spends_more_than_its_lifetime_budget(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(
            Path(tmp),
            extra=licensing_section(max_epsilon="3/2") + SECAGG,
            lifetime=f'lifetime_epsilon_per_window = "{LIFETIME}"\nlifetime_rho_per_window = "{LIFETIME_RHO}"',
        )
        box = Box(config, ManualClock())
        for op in ops:
            getattr(box, str(op[0]))(*op[1:])
            for start, unit, total, budget in spends(config.db_path):
                assert total <= budget, f"window {start} spends {total} per {unit} after {op}"
        box.store.close()
        reopened = Store(config.db_path)  # across a restart: the same spends, still within the budget
        assert all(total <= budget for _s, _u, total, budget in spends(config.db_path))
        reopened.close()


def test_each_kind_of_release_really_charges_in_the_property_box(tmp_path: Path) -> None:
    """The operations above are not vacuous: a released day takes a district query's and a secure round's rho,
    and a second district query that would go over the lifetime rho is refused with nothing spent."""
    config = make_config(
        tmp_path,
        extra=licensing_section(max_epsilon="3/2") + SECAGG,
        lifetime=f'lifetime_epsilon_per_window = "{LIFETIME}"\nlifetime_rho_per_window = "{LIFETIME_RHO}"',
    )
    box = Box(config, ManualClock())
    box.hours(30)
    box.district(0, Fraction(1))  # rho 1/2 in each of the day's 24 windows
    box.secure(3, Fraction(1, 8))
    kinds = sqlite3.connect(config.db_path).execute("SELECT kind, count(*) FROM privacy_spend GROUP BY kind")
    counted = dict(kinds.fetchall())
    assert counted["query"] == 24 and counted["secure_round"] == 1 and counted["summary"] >= 24
    box.district(0, Fraction(1))  # another 1/2 would exceed the rho budget of 1 with the hourly release's share
    again = sqlite3.connect(config.db_path).execute("SELECT count(*) FROM privacy_spend WHERE kind = 'query'")
    assert again.fetchone() == (24,)
    assert all(total <= budget for _s, _u, total, budget in spends(config.db_path))
