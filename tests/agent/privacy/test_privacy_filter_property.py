"""The privacy filter holds under any order of hourly releases, secure-round charges and licensed queries,
and across restarts (the SQLite file reopened): no window's unit ever spends more than its lifetime budget."""

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
from agent.errors import PrivacyError
from agent.licensing import inbox
from agent.licensing.desk import LicensingDesk
from agent.pipeline.release import WindowReleaser
from agent.privacy import accountant, ledger
from agent.store import Store, releases
from tests.conftest import T0_NS, ManualClock, make_config
from tests.licensing_kit import encode, licensing_section, signed_query

HOUR = 3600 * NS_PER_S
LIFETIME = Fraction(2)
EPSILONS = st.sampled_from([Fraction(1, 4), Fraction(1, 2), Fraction(1), Fraction(3, 2)])
OPS = st.one_of(
    st.tuples(st.just("hours"), st.integers(1, 30)),
    st.tuples(st.just("secure"), st.integers(0, 71), EPSILONS),
    st.tuples(st.just("query"), st.integers(0, 2), EPSILONS),
    st.tuples(st.just("restart")),
)


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

    def secure(self, hour: int, epsilon: Fraction) -> None:
        """A secure-aggregation round's charge, through the entry points that work will use."""
        start = T0_NS + hour * HOUR
        self.rounds += 1
        stream = f"secagg:{self.rounds}"
        with self.store.transaction() as conn:
            if accountant.over_budget(conn, self.config.filter_budget, start, accountant.Charge(DOOR_EVENT, epsilon)):
                return
            row: dict[str, object] = {
                "window_start_ns": start,
                "window_end_ns": start + HOUR,
                "stream": stream,
                "noisy_values": "{}",
                "mechanism": "secure_aggregation",
                "parameters": "{}",
                "epsilon": str(epsilon),
                "sampler_version": "test",
                "released_wall_ns": self.clock.wall_ns(),
                "prev_hash": ledger.last_hash(conn),
            }
            row["hash"] = ledger.row_hash(str(row["prev_hash"]), row)
            ledger_id = releases.insert_ledger_row(conn, row)
            releases.insert_spend(conn, start, stream, DOOR_EVENT, str(epsilon), "", ledger_id, accountant.SECURE_ROUND)

    def query(self, day: int, epsilon: Fraction) -> None:
        params = {"start": f"2025-11-{16 + day}", "end": f"2025-11-{17 + day}"}
        message = signed_query(self.clock.wall_ns() + 30 * 24 * HOUR, params=params, epsilon=str(epsilon))
        assert self.config.licensing is not None
        key = self.config.licensing.coop_public_key
        inbox.receive(self.store, self.config.coop, key, encode(message), self.clock.wall_ns())
        self.desk.tick()


def spends(path: Path) -> Iterator[tuple[int, str, Fraction]]:
    """Every window's total epsilon per unit, read from the file by a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        totals: dict[tuple[int, str], Fraction] = {}
        for start, unit, eps in conn.execute("SELECT window_start_ns, unit, epsilon FROM privacy_spend"):
            totals[(start, unit)] = totals.get((start, unit), Fraction(0)) + Fraction(eps)
    finally:
        conn.close()
    for (start, unit), total in totals.items():
        yield start, unit, total


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=10))
def test_no_window_ever_spends_more_than_its_lifetime_budget(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(
            Path(tmp),
            extra=licensing_section(max_epsilon="3/2"),
            lifetime=f'lifetime_epsilon_per_window = "{LIFETIME}"',
        )
        box = Box(config, ManualClock())
        for op in ops:
            getattr(box, str(op[0]))(*op[1:])
            for start, unit, total in spends(config.db_path):
                assert total <= LIFETIME, f"window {start} spends {total} per {unit} after {op}"
        box.store.close()
        reopened = Store(config.db_path)  # across a restart: the same spends, still within the budget
        assert all(total <= LIFETIME for _s, _u, total in spends(config.db_path))
        reopened.close()
