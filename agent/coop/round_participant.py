"""This shop's side of the coop's secure-aggregation rounds over MQTT, run as an APScheduler job.

The hub's messages arrive on the agent's existing coop connection (agent/pipeline/publish.py): the coop
broker names every connection after its certificate (`use_identity_as_username`, `use_username_as_clientid`),
so a second client with the shop's certificate would take the first one's session over and disconnect it.
The network thread only queues them (bounded); the job drains the queue and runs each step of the core
(agent/coop/secagg/shop.py), whose refusals are the shop's protection against a hostile hub.

What is durable, and when:
- joining a round is recorded before the key advert leaves, so a restarted agent never answers a round
  whose keys it lost (a restart is a drop, which the protocol survives);
- the masked input's windows are charged (accountant first), spent (the differencing trap) and the input
  marked sent in ONE SQLite transaction before the masked input is published (agent/privacy/contribution.py).

No JIT here: the round's true cells and its noise share come from the kernels the agent passes (the release's
kernel worker, whose own os.urandom feeds the sampler). A worker is held, and warmed in the background, from
the moment a round is joined until every live round has drawn its share (round_kernels.py), so the input step
never waits for numba to load.
"""

from __future__ import annotations

import logging
import math
import queue
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from agent.clock import NS_PER_S, Clock
from agent.config import AgentConfig
from agent.contract import HUB_SEGMENT, parse_secagg_topic, secagg_shop_topic
from agent.coop import identity, query_round
from agent.coop.query_round import QueryContribution
from agent.coop.round_kernels import RoundKernels
from agent.coop.secagg.errors import Refused, RoundAborted, SecAggError
from agent.coop.secagg.messages import AdvertBundle, Message, ShareBundle, UnmaskRequest
from agent.coop.secagg.shop import RoundPolicy, ShopRound, WindowLedger
from agent.coop.secagg.transport import HUB_STEP_KINDS, RoundOpening, RoundResult, SurvivorList, decode_step, parse_cell
from agent.errors import PrivacyError
from agent.kernels.worker_process import InProcessKernels, Kernels
from agent.pipeline.aggregate import Aggregator
from agent.privacy.contribution import charge_contribution, charged_rho
from agent.privacy.journal import JOURNAL_NAME, ReleaseJournal
from agent.privacy.plan import StreamPlan
from agent.privacy.reconcile import entries_for_ledger_ids
from agent.store import Store, releases
from agent.store import secagg as rounds_sql

log = logging.getLogger(__name__)

INBOX_MAX = 1000  # hub messages waiting for the job; more are dropped and counted (the round survives drops)
LIVE_MAX = 8  # rounds held in memory at once; the oldest is forgotten (a drop) past this
# A hub may open at most this many rounds a day with this shop (each is a row in its ledger): a hub that opens
# more is ignored, so it cannot grow the shop's database without bound.
MAX_ROUNDS_PER_DAY = 100


class _Contribution(WindowLedger):
    """The core's window ledger for one round: its `spend` is the SQLite transaction that charges the round."""

    def __init__(self, owner: RoundParticipant, plan: StreamPlan, starts: list[int], window_ns: int) -> None:
        super().__init__()
        self.owner, self.plan, self.starts, self.window_ns = owner, plan, starts, window_ns
        self.values: list[int] = []
        self.rho = Fraction(0)
        self.parameters: dict[str, object] = {}

    def spend(self, windows: tuple[str, ...], round_id: str) -> None:
        """Called by ShopRound.masked_input before any noise is drawn or anything is masked."""
        del windows  # the cells' windows are self.starts, checked when the round was opened
        store, config = self.owner.store, self.owner.config
        with store.transaction() as conn:
            taken = rounds_sql.spent_windows(conn, self.plan.name, self.starts)
            if taken:
                raise Refused(f"windows already entered round(s) {sorted(set(taken.values()))}; refusing a second")
            wall = self.owner.clock.wall_ns()
            ledger_ids = charge_contribution(
                conn,
                config.filter_budget,  # the window's lifetime budget: the hourly release already spent in it
                self.plan,
                round_id,
                self.starts,
                self.window_ns,
                self.rho,
                self.parameters,
                wall,
            )
            rounds_sql.mark_input_sent(conn, round_id, self.values, wall)
            # In the release journal before COMMIT, like every release: a lost or rolled-back database then
            # gets the charge and the trap back at the next start (reconcile), so the window never enters a
            # second round and its lifetime budget still counts this round.
            self.owner.journal.append(entries_for_ledger_ids(conn, ledger_ids))


class _Live:
    """A round this shop is in: the core's state, its contribution, and the hub steps already answered."""

    def __init__(
        self, shop: ShopRound, contribution: _Contribution | QueryContribution, cells: list[tuple[int, str, str]]
    ) -> None:
        self.shop, self.contribution, self.cells = shop, contribution, cells
        self.answered: set[str] = set()


class RoundParticipant:
    """Answers the hub's round messages with this shop's protocol steps."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store,
        clock: Clock,
        send: Callable[[str, bytes], None],
        journal: ReleaseJournal | None = None,
        kernels: Kernels | None = None,
    ) -> None:
        assert config.secagg is not None
        self.config, self.settings, self.store, self.clock, self.send = config, config.secagg, store, clock, send
        # The agent passes the release thread's journal (one instance, one lock); alone (tests), its own.
        self.journal = journal if journal is not None else ReleaseJournal(config.data_dir / JOURNAL_NAME)
        self.identity = identity.load_or_create(self.settings.identity_key)
        # The agent passes the release's kernel worker (one child at a time); alone (tests), in process.
        self.kernels: Kernels = kernels if kernels is not None else InProcessKernels()
        self.aggregator = Aggregator(config, store, self.kernels)
        self.round_kernels = RoundKernels(self.kernels)
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=INBOX_MAX)
        self.live: dict[str, _Live] = {}
        self.dropped = 0

    # -- network thread ------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        """Queue one hub message for the job (never blocks the network thread)."""
        try:
            self.inbox.put_nowait((topic, payload))
        except queue.Full:
            self.dropped += 1  # counted here (network thread); the job writes it to the counters

    # -- the job -------------------------------------------------------------------------------
    def tick(self) -> None:
        """Handle every queued message; a bad one is refused alone, with its reason, and counted."""
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            log.warning("%d secure-aggregation messages dropped: the job's queue was full", dropped)
            with self.store.transaction() as conn:
                Store.bump_counter(conn, "secagg_messages_dropped", dropped)
        while True:
            try:
                topic, payload = self.inbox.get_nowait()
            except queue.Empty:
                self.round_kernels.follow(self.live)  # a worker warm while a round still needs its share
                return
            try:
                self._handle(topic, payload)
            except Exception as exc:  # one bad message never stops the job or other rounds
                round_id = _round_of(topic)
                if not isinstance(exc, (SecAggError, PrivacyError)):
                    log.exception("secure-aggregation message on %s failed", topic[:200])
                self._end(round_id, "aborted" if isinstance(exc, RoundAborted) else "refused", str(exc))
            self.round_kernels.follow(self.live)  # held from the round's opening, even if its steps come at once

    def _handle(self, topic: str, payload: bytes) -> None:
        parsed = parse_secagg_topic(topic)
        if parsed.coop != self.config.coop or parsed.sender != HUB_SEGMENT:
            raise SecAggError(f"{topic[:200]} is not a hub message of coop {self.config.coop}")
        if not payload or parsed.addressee not in (None, self.config.store):
            return  # a retained message being cleared, or (never, with the ACL) another shop's shares
        message = decode_step(parsed.step, payload, HUB_STEP_KINDS)
        if isinstance(message, RoundOpening):
            if message.config.round_id != parsed.round_id:
                raise Refused(f"opening on {parsed.round_id} names round {message.config.round_id[:60]}")
            self._open(message)
            return
        live = self.live.get(parsed.round_id)
        if live is None:
            return  # not a round this shop is in, or one whose keys it lost in a restart
        if parsed.step in live.answered and parsed.step != "unmask":
            return  # a QoS 1 duplicate; a second unmask request goes to the core, which refuses a different one
        if getattr(message, "round_tag", None) != live.shop.tag:
            raise Refused(f"{parsed.step} message of round {parsed.round_id} carries another round tag")
        live.answered.add(parsed.step)
        self._step(parsed.round_id, parsed.step, live, message)

    def _step(self, round_id: str, step: str, live: _Live, message: Message) -> None:
        shop = live.shop
        if isinstance(message, AdvertBundle):
            self._publish(round_id, "shares", shop.share_keys(message))
        elif isinstance(message, ShareBundle):
            values = self._values(live)
            live.contribution.values = [int(v) for v in values]
            # Charges and spends first (_Contribution.spend), then draws the share in the kernel worker.
            masked = shop.masked_input(message, values, draw=self.kernels.discrete_gaussian)
            assert shop.noise is not None
            with self.store.transaction() as conn:
                rounds_sql.record_noise(conn, round_id, [int(v) for v in shop.noise])
            self._publish(round_id, "input", masked)
        elif isinstance(message, SurvivorList):
            self._publish(round_id, "survivors", shop.sign_survivors(message.survivors))
        elif isinstance(message, UnmaskRequest):
            self._publish(round_id, "unmask", shop.unmask(message))
        elif isinstance(message, RoundResult):
            included = self.config.store in message.survivors
            state = "released" if message.outcome == "released" else "aborted"
            self._end(round_id, state, message.reason, len(message.survivors), included)
        else:  # pragma: no cover - decode_step admits only the kinds above
            raise SecAggError(f"unexpected {step} message")

    def _open(self, opening: RoundOpening) -> None:
        config = opening.config
        if self.config.store not in config.participants or config.coop != self.config.coop:
            return  # a round of other shops
        with self.store.transaction() as conn:
            if rounds_sql.known_round(conn, config.round_id) is not None:
                return  # joined before (a duplicate, or a round whose keys a restart lost): stay out
            day_ago = self.clock.wall_ns() - 86400 * NS_PER_S
            if rounds_sql.rounds_since(conn, day_ago) >= MAX_ROUNDS_PER_DAY:
                Store.bump_counter(conn, "secagg_rounds_over_daily_cap")
                log.warning("round %s ignored: %d rounds in a day already", config.round_id[:60], MAX_ROUNDS_PER_DAY)
                return
        cells = [parse_cell(c) for c in config.windows]
        streams = {c.stream for c in cells}
        plan = next((p for p in self.config.streams if p.name in streams), None)
        window_ns = self.config.window_s * NS_PER_S
        stream = plan.name if plan is not None else ",".join(sorted(streams))[:60]
        tag = config.tag()
        with self.store.transaction() as conn:
            rounds_sql.insert_round(
                conn,
                config.round_id,
                tag,
                stream,
                config.windows,
                window_ns,
                len(config.participants),
                config.threshold,
                str(Fraction(config.rho_num, config.rho_den)),
                "",
                self.clock.wall_ns(),
            )
        query_id = query_round.query_id_of(streams)
        if query_id is not None:
            self._open_query(opening, query_id)
            return
        if plan is None or len(streams) != 1 or plan.name not in self.settings.streams:
            wanted = list(self.settings.streams)
            raise Refused(f"round {config.round_id} sums {sorted(streams)}; this shop contributes {wanted}")
        starts = sorted({c.window_start_s * NS_PER_S for c in cells})
        placed = []
        for c in cells:
            if c.window_s != self.config.window_s or c.key not in plan.keys or c.field not in plan.fields:
                raise Refused(f"round cell {c.name[:80]} is not a {self.config.window_s}s cell of {plan.name}")
            placed.append((c.window_start_s * NS_PER_S, c.key, c.field))
        with self.store.transaction() as conn:
            unreleased = [s for s in starts if not releases.is_released(conn, s, plan.name)]
            taken = rounds_sql.spent_windows(conn, plan.name, starts)
        if unreleased:
            raise Refused(f"round {config.round_id} covers {len(unreleased)} windows not yet closed here")
        if taken:
            raise Refused(f"round {config.round_id}: windows already entered round(s) {sorted(set(taken.values()))}")
        l2 = math.isqrt(plan.l2_sensitivity_squared - 1) + 1  # ceil(sqrt): the round must declare at least this
        policy = RoundPolicy(self.settings.max_rho, l2, self.settings.min_honest)
        contribution = _Contribution(self, plan, starts, window_ns)
        shop = ShopRound(
            self.identity, self.config.store, opening.roster, self.settings.roster_digest, config, contribution, policy
        )
        self._join(shop, contribution, placed, plan.unit)
        log.info("joined secure-aggregation round %s (%d cells of %s)", config.round_id, len(cells), plan.name)

    def _open_query(self, opening: RoundOpening, query_id: str) -> None:
        """A round carrying a district licensing query this shop accepted (agent/coop/query_round.py)."""
        config = opening.config
        with self.store.transaction() as conn:
            query = query_round.accepted_query(conn, self.config, config, query_id)
        policy = query_round.query_policy(self.config, query, self.settings.min_honest)
        contribution = QueryContribution(self.store, self.config, self.journal, query, self.clock.wall_ns())
        shop = ShopRound(
            self.identity, self.config.store, opening.roster, self.settings.roster_digest, config, contribution, policy
        )
        self._join(shop, contribution, [], query.unit)
        log.info("joined secure-aggregation round %s for district query %s", config.round_id, query_id)

    def _join(
        self,
        shop: ShopRound,
        contribution: _Contribution | QueryContribution,
        cells: list[tuple[int, str, str]],
        unit: str,
    ) -> None:
        """Record what the round will charge, hold it live, and send this shop's key advert."""
        config = shop.config
        contribution.rho = charged_rho(Fraction(config.rho_num, config.rho_den), shop.plan.tau, config.length)
        contribution.parameters = {
            "round_id": config.round_id,
            "round_tag": shop.tag.hex(),
            "participants": len(config.participants),
            "threshold": config.threshold,
            "colluders": config.colluders,
            "share_sigma2": str(shop.plan.share_sigma2),
            "central_sigma2": str(shop.plan.central_sigma2),
            "l2_sensitivity": config.sensitivity,
            "rho_bound": shop.plan.rho_bound,
            "unit": unit,
        }
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE secagg_rounds SET share_sigma2 = ?, rho = ? WHERE round_id = ?",
                (str(shop.plan.share_sigma2), str(contribution.rho), config.round_id),
            )
        while len(self.live) >= LIVE_MAX:
            oldest = next(iter(self.live))
            self._end(oldest, "aborted", "forgotten: too many rounds at once on this shop")
        self.live[config.round_id] = _Live(shop, contribution, cells)
        self._publish(config.round_id, "advert", shop.advertise())

    def _values(self, live: _Live) -> np.ndarray:
        """The true cells of the round from the raw records, clamped to the round's value bound."""
        if isinstance(live.contribution, QueryContribution):
            live.contribution.wall_ns = self.clock.wall_ns()
            bound = live.shop.config.value_bound
            return query_round.query_values(self.config, self.store.conn(), live.contribution.query, bound)
        plan, window_ns = live.contribution.plan, live.contribution.window_ns
        tables = {s: self.aggregator.true_tables(s, s + window_ns)[plan.name] for s in live.contribution.starts}
        bound = live.shop.config.value_bound
        out = [
            min(max(int(tables[s][plan.keys.index(k), plan.fields.index(f)]), -bound), bound) for s, k, f in live.cells
        ]
        return np.asarray(out, dtype=np.int64)

    def _publish(self, round_id: str, step: str, message: Message) -> None:
        self.send(secagg_shop_topic(self.config.coop, self.config.store, round_id, step), message.encode())

    def _end(
        self, round_id: str, state: str, reason: str, survivors: int | None = None, included: bool | None = None
    ) -> None:
        live = self.live.pop(round_id, None)
        if state != "released":
            log.warning("secure-aggregation round %s %s: %s", round_id, state, reason[:300])
        with self.store.transaction() as conn:
            rounds_sql.finish_round(conn, round_id, state, reason, self.clock.wall_ns(), survivors, included)
            if live is not None and isinstance(live.contribution, QueryContribution):
                query_id = live.contribution.query.query_id
                query_round.round_ended(conn, query_id, state, included, reason, self.clock.wall_ns())
            if state == "refused":
                Store.bump_counter(conn, "secagg_refused")
            elif state == "aborted":
                Store.bump_counter(conn, "secagg_aborted")
            else:
                Store.bump_counter(conn, "secagg_released")


def _round_of(topic: str) -> str:
    parts = topic.split("/")
    return parts[5] if len(parts) > 5 else ""
