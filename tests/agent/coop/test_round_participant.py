"""The agent's side of a round as it runs in the agent: a real SQLite store, the real configuration, hub
messages fed as the MQTT topics and bytes they arrive as, and an in-process hub and two peer shops
(agent/coop/secagg core). What must hold: the charge, the spent windows and the input marked sent are
one transaction before the masked input leaves; a window enters at most one round; an over-budget round
is refused with nothing written or sent; a restarted agent stays out of a round it had joined."""

from __future__ import annotations

import json
import typing
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.clock import NS_PER_S
from agent.clock import Clock as AgentClock
from agent.config import AgentConfig, load_config
from agent.contract import DOOR_EVENT, parse_secagg_topic, secagg_delivery_topic, secagg_hub_topic
from agent.coop import identity
from agent.coop.round_participant import RoundParticipant
from agent.coop.secagg.hub import HubRound
from agent.coop.secagg.messages import Member, Message, Roster, RoundConfig
from agent.coop.secagg.primitives import IdentityKey
from agent.coop.secagg.shop import RoundPolicy, ShopRound, WindowLedger
from agent.coop.secagg.transport import SHOP_STEP_KINDS, Cell, RoundOpening, RoundResult, SurvivorList, decode_step
from agent.demo import write_demo_config
from agent.privacy import ledger
from agent.store import Store, releases

DAY_S = 1_794_823_200  # 2026-11-16T10:00:00Z
WINDOW_S = 60
PEERS = ("shop-b", "shop-c")
RHO = Fraction(1, 12)  # n = 3, t = 2: sigma^2 = 6, shares of variance 3


class Clock:
    def wall_ns(self) -> int:
        return (DAY_S + 3600) * NS_PER_S


class Setup:
    def __init__(self, tmp_path: Path, budget_rho: str = "1") -> None:
        links = {d: tmp_path / "dev" / d for d in ("front", "back")}
        path = write_demo_config(tmp_path, 1883, links, window=f"{WINDOW_S}s", grace="5s")
        me = identity.load_or_create(tmp_path / "data" / "secagg-identity.key")
        self.keys = {"demo-store": me, **{p: IdentityKey() for p in PEERS}}
        self.roster = Roster("riverside", tuple(Member(s, k.public_bytes) for s, k in sorted(self.keys.items())))
        text = path.read_text().replace(
            "budget_epsilon_per_window = 1\n",
            f'budget_epsilon_per_window = 1\nbudget_rho_per_window = "{budget_rho}"\n',
        )
        path.write_text(text + f'\n[secagg]\nroster_digest = "{self.roster.digest().hex()}"\n')
        self.config: AgentConfig = load_config(path)
        self.store = Store(self.config.db_path)
        self.sent: list[tuple[str, bytes]] = []

    def participant(self) -> RoundParticipant:
        return RoundParticipant(
            self.config, self.store, typing.cast(AgentClock, Clock()), lambda t, p: self.sent.append((t, p))
        )

    def release(self, window: int, entries: int) -> None:
        """A window released locally, with `entries` door events at the front door."""
        start = (DAY_S + window * WINDOW_S) * NS_PER_S
        with self.store.transaction() as conn:
            for _ in range(entries):
                conn.execute(
                    "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits, window_ns)"
                    " VALUES ('b', 0, ?, 1, 'front_door', 'front', 1, 0, ?)",
                    (start + 1, start),
                )
            row: dict[str, Any] = {
                "window_start_ns": start,
                "window_end_ns": start + WINDOW_S * NS_PER_S,
                "stream": "footfall_store",
                "noisy_values": "{}",
                "mechanism": "discrete_laplace",
                "parameters": "{}",
                "epsilon": "1/2",
                "sampler_version": "test",
                "released_wall_ns": start,
            }
            row["prev_hash"] = ledger.last_hash(conn)
            row["hash"] = ledger.row_hash(row["prev_hash"], row)
            ledger_id = releases.insert_ledger_row(conn, row)
            releases.insert_spend(conn, start, "footfall_store", DOOR_EVENT, "1/2", "", ledger_id)

    def round(self, round_id: str, windows: range) -> RoundConfig:
        cells = tuple(Cell("footfall_store", "all", "entries", DAY_S + w * WINDOW_S, WINDOW_S).name for w in windows)
        participants = tuple(sorted(self.keys))
        return RoundConfig(
            "riverside", round_id, self.roster.digest(), participants, 2, 0, len(cells), 1000, 1,
            RHO.numerator, RHO.denominator, 0, cells,
        )  # fmt: skip

    def sent_of(self, step: str) -> list[Message]:
        return [decode_step(step, p, SHOP_STEP_KINDS) for t, p in self.sent if parse_secagg_topic(t).step == step]


def feed(participant: RoundParticipant, topic: str, message: Message) -> None:
    participant.on_message(topic, message.encode())
    participant.tick()


def run_round(
    s: Setup,
    participant: RoundParticipant,
    config: RoundConfig,
    peer_inputs: list[int],
    peers: dict[str, ShopRound] | None = None,
) -> np.ndarray:
    """Hub and peers in process; the participant only through topics and bytes. Returns the unmasked sum
    (and fills `peers`, when given, with the peers' round states, whose noise a test may subtract)."""
    hub = HubRound(s.roster, config)
    policy = RoundPolicy(Fraction(config.rho_num, config.rho_den), 1)
    peers = {} if peers is None else peers
    for p in PEERS:
        peers[p] = ShopRound(s.keys[p], p, s.roster, s.roster.digest(), config, WindowLedger(), policy)
    topic = lambda step: secagg_hub_topic("riverside", config.round_id, step)  # noqa: E731
    feed(participant, topic("config"), RoundOpening(config, s.roster))
    for advert in [*s.sent_of("advert"), *(peer.advertise() for peer in peers.values())]:
        hub.receive_advert(advert)  # type: ignore[arg-type]
    bundle = hub.advert_bundle()
    feed(participant, topic("adverts"), bundle)
    for shares in [*s.sent_of("shares"), *(peer.share_keys(bundle) for peer in peers.values())]:
        hub.receive_shares(shares)  # type: ignore[arg-type]
    deliveries = hub.deliveries()
    feed(participant, secagg_delivery_topic("riverside", config.round_id, "demo-store"), deliveries["demo-store"])
    values = np.asarray(peer_inputs, dtype=np.int64)
    for masked in [*s.sent_of("input"), *(peers[p].masked_input(deliveries[p], values) for p in PEERS)]:
        hub.receive_masked_input(masked)  # type: ignore[arg-type]
    survivors = hub.survivors()
    feed(participant, topic("survivors"), SurvivorList(hub.tag, survivors))
    for signature in [*s.sent_of("survivors"), *(peer.sign_survivors(survivors) for peer in peers.values())]:
        hub.receive_survivor_signature(signature)  # type: ignore[arg-type]
    request = hub.unmask_request()
    feed(participant, topic("unmask"), request)
    for response in [*s.sent_of("unmask"), *(peer.unmask(request) for peer in peers.values())]:
        hub.receive_unmask_response(response)  # type: ignore[arg-type]
    total = hub.finish()
    feed(participant, topic("result"), RoundResult(hub.tag, "released", survivors, "summed 3"))
    return total


def state(s: Setup, round_id: str) -> dict[str, Any]:
    s.store.conn().row_factory = None
    row = (
        s.store.conn()
        .execute(
            "SELECT state, reason, true_values, noise_values, survivors FROM secagg_rounds WHERE round_id = ?",
            (round_id,),
        )
        .fetchone()
    )
    return dict(zip(("state", "reason", "true", "noise", "survivors"), row, strict=True)) if row else {}


def secagg_spends(s: Setup) -> list[tuple[int, str, str]]:
    return [
        (int(w), str(e), str(r))
        for w, e, r in s.store.conn().execute(
            "SELECT window_start_ns, epsilon, rho FROM privacy_spend WHERE stream = 'secagg:footfall_store'"
            " ORDER BY window_start_ns"
        )
    ]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path)
    for window, entries in enumerate((3, 0, 5)):
        s.release(window, entries)
    return s


def test_a_round_sums_the_true_counts_and_charges_each_window_once(setup: Setup) -> None:
    total = run_round(setup, setup.participant(), setup.round("r-1", range(3)), [1, 2, 3])
    row = state(setup, "r-1")
    assert row["state"] == "released" and row["survivors"] == 3
    assert json.loads(row["true"]) == [3, 0, 5]
    # The hub's sum holds this shop's true counts and its own noise exactly (the peers' noise is theirs).
    assert row["noise"] is not None and len(json.loads(row["noise"])) == 3
    starts = [(DAY_S + w * WINDOW_S) * NS_PER_S for w in range(3)]
    spends = secagg_spends(setup)
    assert [w for w, _e, _r in spends] == starts and all(e == "" and Fraction(r) >= RHO for _w, e, r in spends)
    spent = setup.store.conn().execute("SELECT window_start_ns, round_id FROM secagg_windows").fetchall()
    assert sorted(spent) == [(s, "r-1") for s in starts]
    assert total.shape == (3,) and total.dtype == np.int64


def test_a_window_enters_at_most_one_round(setup: Setup) -> None:
    run_round(setup, setup.participant(), setup.round("r-1", range(3)), [0, 0, 0])
    setup.sent.clear()
    participant = setup.participant()
    feed(
        participant,
        secagg_hub_topic("riverside", "r-2", "config"),
        RoundOpening(setup.round("r-2", range(1, 3)), setup.roster),
    )
    assert setup.sent == []  # not even a key advert
    row = state(setup, "r-2")
    assert row["state"] == "refused" and "already entered round(s) ['r-1']" in row["reason"]
    assert len(secagg_spends(setup)) == 3  # nothing charged for r-2


def test_an_over_budget_round_is_refused_before_its_input_leaves(tmp_path: Path) -> None:
    s = Setup(tmp_path, budget_rho="1/8")  # the local release's (1/2)^2/2 = 1/8 leaves no room for the round
    for window in range(3):
        s.release(window, 1)
    run_round(s, s.participant(), s.round("r-1", range(3)), [0, 0, 0])  # t = 2: the two peers finish it alone
    assert s.sent_of("input") == [] and len(s.sent_of("shares")) == 1
    row = state(s, "r-1")
    assert row["state"] == "refused" and "over the budget" in row["reason"]
    assert secagg_spends(s) == [] and s.store.conn().execute("SELECT COUNT(*) FROM secagg_windows").fetchone() == (0,)


def test_a_restarted_agent_stays_out_of_a_round_it_had_joined(setup: Setup) -> None:
    config = setup.round("r-1", range(3))
    feed(setup.participant(), secagg_hub_topic("riverside", "r-1", "config"), RoundOpening(config, setup.roster))
    assert len(setup.sent_of("advert")) == 1
    restarted = setup.participant()  # a new process: the round's keys are gone
    feed(restarted, secagg_hub_topic("riverside", "r-1", "config"), RoundOpening(config, setup.roster))
    assert len(setup.sent_of("advert")) == 1  # no second advert
    assert state(setup, "r-1")["state"] == "joined"


def test_a_round_over_windows_not_yet_released_here_is_refused(setup: Setup) -> None:
    participant = setup.participant()
    feed(
        participant,
        secagg_hub_topic("riverside", "r-9", "config"),
        RoundOpening(setup.round("r-9", range(2, 5)), setup.roster),
    )
    assert setup.sent == []
    assert "not yet closed here" in state(setup, "r-9")["reason"]


def test_a_round_on_another_roster_is_refused(setup: Setup) -> None:
    other = Roster("riverside", (*setup.roster.members, Member("shop-z", IdentityKey().public_bytes)))
    config = setup.round("r-1", range(3))
    forged = RoundConfig(**{**config.__dict__, "roster_digest": other.digest()})
    feed(setup.participant(), secagg_hub_topic("riverside", "r-1", "config"), RoundOpening(forged, other))
    assert setup.sent == []
    assert "roster" in state(setup, "r-1")["reason"]


def test_a_hub_opening_more_rounds_than_the_daily_cap_is_ignored(setup: Setup) -> None:
    from agent.coop.round_participant import MAX_ROUNDS_PER_DAY
    from agent.store import secagg as rounds_sql

    with setup.store.transaction() as conn:
        for i in range(MAX_ROUNDS_PER_DAY):
            rounds_sql.insert_round(
                conn, f"old-{i}", b"\0" * 32, "footfall_store", (), 60, 3, 2, "1/12", "3", Clock().wall_ns()
            )
    feed(
        setup.participant(),
        secagg_hub_topic("riverside", "r-1", "config"),
        RoundOpening(setup.round("r-1", range(3)), setup.roster),
    )
    assert setup.sent == [] and state(setup, "r-1") == {}  # not even recorded: the ledger cannot be flooded
    assert setup.store.counters().get("secagg_rounds_over_daily_cap") == 1


def test_a_contribution_is_journaled_so_a_lost_database_keeps_its_charge_and_its_trap(setup: Setup) -> None:
    from agent.privacy.journal import JOURNAL_NAME, ReleaseJournal
    from agent.privacy.reconcile import reconcile
    from agent.store import secagg as rounds_sql

    run_round(setup, setup.participant(), setup.round("r-1", range(3)), [0, 0, 0])
    starts = [(DAY_S + w * WINDOW_S) * NS_PER_S for w in range(3)]
    journal = ReleaseJournal(setup.config.data_dir / JOURNAL_NAME)
    journaled = [e.key for e in journal.read(repair=False)]
    assert journaled == [(s, "secagg:footfall_store") for s in starts]  # before COMMIT, one entry per window
    charged = secagg_spends(setup)
    # The database is lost (a fresh file), the journal survives: reconcile puts the charge back, and the
    # trap (a window enters one round, ever) holds on the restored ledger rows alone.
    setup.store.close()
    setup.config.db_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{setup.config.db_path}{suffix}").unlink(missing_ok=True)
    setup.store = Store(setup.config.db_path)
    assert reconcile(setup.store, journal).restored == 3
    assert secagg_spends(setup) == charged
    assert rounds_sql.spent_windows(setup.store.conn(), "footfall_store", starts) == {s: "r-1" for s in starts}
