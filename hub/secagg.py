"""The hub's secure-aggregation coordinator: runs planned rounds one at a time over the coop broker.

For each round it publishes the opening (configuration and roster) and then, step by step, what the core
(agent/coop/secagg/hub.py HubRound) produces: the advert bundle, each shop's sealed shares on that shop's
own topic, the survivor list, the unmask request and the result. A step closes when every expected shop
has answered or its timeout passes (a shop that has not answered is dropped); below the threshold the
round aborts, reveals nothing and stores nothing. Hub messages are retained while the round runs (a shop
reconnecting mid-round still sees them) and cleared when it ends.

Messages come from the subscriber's network thread into a bounded queue; this thread alone touches the
round. A message that fails the core's checks is refused alone, logged and counted; the round goes on.
With a hub worker group, run [secagg] on exactly one worker (it subscribes without the share group).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from agent.contract import MAX_PAYLOAD_BYTES, parse_secagg_topic, secagg_delivery_topic, secagg_hub_topic
from agent.coop.secagg.errors import SecAggError
from agent.coop.secagg.hub import HubRound
from agent.coop.secagg.messages import Message, Roster, RoundConfig
from agent.coop.secagg.noise import plan_noise
from agent.coop.secagg.transport import SHOP_STEP_KINDS, RoundOpening, RoundResult, SurvivorList, decode_step, sender_of
from hub import licensing_rounds, refusals, secagg_store
from hub.config import HubConfig
from hub.contract import Rejected
from hub.db import Connection, Database, topic_store_segment

log = logging.getLogger(__name__)

INBOX_MAX = 10_000
REFUSED = "secure-aggregation message refused"
Publish = Callable[[str, bytes, bool], object]

# What each step waits for, and the shop message that answers it.
_ANSWER = {"adverts": "advert", "shares": "shares", "input": "input", "check": "survivors", "unmask": "unmask"}


class _Running:
    """One round in progress: the core's state, the step, who is still expected, and the step's deadline."""

    def __init__(self, planned: secagg_store.PlannedRound, config: RoundConfig, core: HubRound) -> None:
        self.planned, self.config, self.core = planned, config, core
        self.step = "adverts"
        self.expected: set[str] = set(config.participants)
        self.answered: set[str] = set()
        self.deadline = 0.0
        self.retained: list[str] = []


class RoundCoordinator:
    """Runs the rounds planned in `secagg_rounds`, one at a time, on its own thread."""

    def __init__(self, config: HubConfig, database: Database, publish: Publish) -> None:
        assert config.secagg is not None
        self.config, self.settings, self.database, self.publish = config, config.secagg, database, publish
        self.roster: Roster = secagg_store.load_roster(self.settings.roster, config.coop)
        self.inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=INBOX_MAX)
        self.refused = 0  # shop messages refused since start (each logged with its reason)
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded_run, name="hub-secagg", daemon=True)
        self.on_fatal: Callable[[BaseException], None] | None = None
        self.ready = threading.Event()  # set once the hub's subscription is in place (replies would be lost before)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self.inbox.put_nowait(None)
        self._thread.join(10)

    def on_message(self, topic: str, payload: bytes) -> None:
        """From the network thread: queue a shop's round message (never blocks)."""
        try:
            self.inbox.put_nowait((topic, payload))
        except queue.Full:
            self.dropped += 1

    # -- the coordinator thread ----------------------------------------------------------------
    def _guarded_run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a dead coordinator ends the hub (systemd restarts it), never limps
            log.exception("the secure-aggregation coordinator died")
            if self.on_fatal is not None:
                self.on_fatal(exc)

    def _run(self) -> None:
        while not self.ready.wait(0.5):
            if self._stop.is_set():
                return
        conn = self.database.connect()
        try:
            self._abandon_unfinished(conn)
            while not self._stop.is_set():
                with conn.transaction():  # district licensing queries whose shops have all accepted or refused
                    licensing_rounds.plan_due(conn, self.roster, self.settings.licensing_wait_s, time.time())
                planned = secagg_store.next_planned(conn)
                if planned is None:
                    self._stop.wait(self.settings.poll_s)
                    continue
                self._run_round(conn, planned)
        finally:
            conn.close()

    def _abandon_unfinished(self, conn: Connection) -> None:
        """A round the hub was running when it stopped cannot go on (its state was in memory): abort it, tell the
        shops, and clear its retained messages. Its windows stay spent at the shops that sent an input."""
        for planned in secagg_store.unfinished(conn):
            try:
                config = self._config_of(planned)
            except SecAggError as exc:
                with conn.transaction():
                    secagg_store.finish(conn, planned.round_id, "aborted", f"hub restarted; {exc}", None)
                    licensing_rounds.round_ended(conn, planned, "aborted", (), f"hub restarted; {exc}")
                continue
            running = _Running(planned, config, HubRound(self.roster, config))
            running.retained = [
                *(
                    secagg_hub_topic(self.config.coop, config.round_id, step)
                    for step in ("config", "adverts", "survivors", "unmask")
                ),
                *(secagg_delivery_topic(self.config.coop, config.round_id, shop) for shop in config.participants),
            ]
            self._end(conn, running, "aborted", "the hub restarted during the round; nothing was revealed", ())

    def _config_of(self, planned: secagg_store.PlannedRound) -> RoundConfig:
        return RoundConfig(
            self.roster.coop,
            planned.round_id,
            self.roster.digest(),
            tuple(sorted(planned.participants or (m.shop_id for m in self.roster.members))),
            planned.threshold,
            planned.neighbours,
            len(planned.cells),
            planned.value_bound,
            planned.sensitivity,
            planned.rho.numerator,
            planned.rho.denominator,
            planned.colluders,
            planned.cells,
        )

    def _run_round(self, conn: Connection, planned: secagg_store.PlannedRound) -> None:
        try:
            config = self._config_of(planned)
            running = _Running(planned, config, HubRound(self.roster, config))
        except SecAggError as exc:
            with conn.transaction():
                secagg_store.finish(conn, planned.round_id, "refused", str(exc), None)
                licensing_rounds.round_ended(conn, planned, "refused", (), str(exc))
            log.error("secure-aggregation round %s not started: %s", planned.round_id, exc)
            return
        with conn.transaction():
            secagg_store.set_status(conn, planned.round_id, "adverts", len(config.participants))
        log.info(
            "secure-aggregation round %s: %d participants, threshold %d",
            config.round_id,
            len(config.participants),
            config.threshold,
        )
        self._send(running, "config", RoundOpening(config, self.roster))
        running.deadline = time.monotonic() + self.settings.step_timeout_s
        try:
            while not self._stop.is_set():
                timeout = max(0.0, running.deadline - time.monotonic())
                try:
                    item = self.inbox.get(timeout=min(timeout, 0.5))
                except queue.Empty:
                    item = None
                if item is not None:
                    self._receive(conn, running, *item)
                step_closed = running.expected <= running.answered or time.monotonic() >= running.deadline
                if step_closed and self._advance(conn, running):
                    return
        except SecAggError as exc:  # RoundAborted, or a check of the core failing while a step closes
            self._end(conn, running, "aborted", str(exc), ())
        if self._stop.is_set() and running.step != "done":
            self._end(conn, running, "aborted", "the hub stopped during the round", ())

    def _receive(self, conn: Connection, running: _Running, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_secagg_topic(topic)
            if parsed.round_id != running.config.round_id:
                return  # a late answer to an earlier round
            if parsed.step != _ANSWER.get(running.step):
                return  # a late answer to an earlier step of this round: that step is closed
            message = decode_step(parsed.step, payload, SHOP_STEP_KINDS)
            if sender_of(message) != parsed.sender:
                raise SecAggError(f"message on {parsed.sender}'s topic names {sender_of(message)}")
            if parsed.sender in running.answered:
                return  # a QoS 1 duplicate
            self._dispatch(running, parsed.step, message)
            running.answered.add(parsed.sender)
        except Exception as exc:  # one shop's message never stops the coordinator, whatever it trips
            self.refused += 1
            if isinstance(exc, (SecAggError, ValueError)):
                log.warning("refused a secure-aggregation message on %s: %s", topic[:200], exc)
            else:
                log.exception("unexpected error checking a secure-aggregation message on %s", topic[:200])
            # Counted per store and reason like every refusal, so /healthz names the misbehaving shop.
            refusal = Rejected(
                topic, REFUSED, payload[:MAX_PAYLOAD_BYTES], topic_store_segment(topic), str(exc)[:300], len(payload)
            )
            with conn.transaction():
                refusals.record(conn, self.config.worker_id, [refusal])

    @staticmethod
    def _dispatch(running: _Running, step: str, message: Message) -> None:
        core = running.core
        handler = {
            "advert": core.receive_advert,
            "shares": core.receive_shares,
            "input": core.receive_masked_input,
            "survivors": core.receive_survivor_signature,
            "unmask": core.receive_unmask_response,
        }[step]
        handler(message)  # type: ignore[operator]

    def _advance(self, conn: Connection, running: _Running) -> bool:
        """Close the current step and open the next; True once the round has ended."""
        core, rid = running.core, running.config.round_id
        if running.step == "adverts":
            self._send(running, "adverts", core.advert_bundle())
            nxt, expected = "shares", set(core.adverts)
        elif running.step == "shares":
            for shop, bundle in core.deliveries().items():
                self._send(running, "shares", bundle, secagg_delivery_topic(self.config.coop, rid, shop))
            nxt, expected = "input", set(core.senders)
        elif running.step == "input":
            survivors = core.survivors()
            self._send(running, "survivors", SurvivorList(core.tag, survivors))
            nxt, expected = "check", set(survivors)
        elif running.step == "check":
            request = core.unmask_request()
            self._send(running, "unmask", request)
            nxt, expected = "unmask", set(request.signatures)
        else:
            total = core.finish()
            survivors = core.survivor_list or ()
            plan = plan_noise(running.config)
            variance = float(plan.share_sigma2) * len(survivors)
            with conn.transaction():
                secagg_store.store_totals(
                    conn, rid, running.planned.cells, [int(v) for v in total], variance, len(survivors)
                )
                secagg_store.finish(conn, rid, "released", f"summed {len(survivors)} shops", len(survivors))
                licensing_rounds.round_ended(conn, running.planned, "released", survivors, f"summed {len(survivors)}")
            self._send(running, "result", RoundResult(core.tag, "released", survivors, f"summed {len(survivors)}"))
            self._clear(running)
            running.step = "done"
            log.info("secure-aggregation round %s released: %d shops summed", rid, len(survivors))
            return True
        running.step, running.expected, running.answered = nxt, expected, set()
        running.deadline = time.monotonic() + self.settings.step_timeout_s
        with conn.transaction():
            secagg_store.set_status(conn, rid, nxt)
        return False

    def _end(self, conn: Connection, running: _Running, status: str, reason: str, survivors: tuple[str, ...]) -> None:
        with conn.transaction():
            secagg_store.finish(conn, running.config.round_id, status, reason, None)
            licensing_rounds.round_ended(conn, running.planned, status, (), reason)
        self._send(running, "result", RoundResult(running.core.tag, status, survivors, reason))
        self._clear(running)
        running.step = "done"
        log.warning("secure-aggregation round %s %s: %s", running.config.round_id, status, reason)

    def _send(self, running: _Running, step: str, message: Message, topic: str | None = None) -> None:
        topic = topic or secagg_hub_topic(self.config.coop, running.config.round_id, step)
        # Retained, so a shop that reconnects mid-round still sees the step; the result stays (one small message
        # per round, so a shop that was away learns how the round ended), the rest is cleared at the end.
        self.publish(topic, message.encode(), True)
        if step != "result":
            running.retained.append(topic)

    def _clear(self, running: _Running) -> None:
        """Remove the round's retained messages from the broker (an empty retained payload deletes one)."""
        for topic in running.retained:
            self.publish(topic, b"", True)
        running.retained = []
