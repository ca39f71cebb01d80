"""The payload's `scope` (door, store, category): optional in v1, checked by the hub, and what makes a sum safe."""

from __future__ import annotations

import json

import pytest

from agent.config import AgentConfig
from agent.pipeline.release import WindowReleaser
from agent.store import Store
from devtools.loadgen import synthetic_sales
from hub.contract import Rejected, Summary, parse_message
from tests.conftest import ManualClock


@pytest.fixture
def published(config: AgentConfig, clock: ManualClock) -> list[tuple[str, dict[str, object]]]:
    """Two windows of real agent payloads (two doors and the store total)."""
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600 + 121)
    assert releaser.tick() == 2
    rows = store.conn().execute("SELECT topic, payload FROM outbox ORDER BY seq").fetchall()
    store.close()
    return [(str(t), json.loads(p)) for t, p in rows]


def parse(topic: str, doc: dict[str, object], now: float) -> object:
    return parse_message("riverside", topic, json.dumps(doc).encode(), now=now)


def test_every_summary_names_its_scope_and_the_hub_accepts_it(published: list[tuple[str, dict[str, object]]]) -> None:
    scopes = {(d["stream"], d["scope"]) for _t, d in published}
    assert scopes == {("footfall/hourly", "door"), ("footfall-total/hourly", "store")}
    now = 1_763_251_200 + 3 * 3600
    assert all(isinstance(parse(t, d, now), Summary) for t, d in published)


def test_each_scope_covers_every_event_exactly_once_per_window(
    published: list[tuple[str, dict[str, object]]], config: AgentConfig
) -> None:
    """Summing over coop/v1/# is safe once a reader keeps one scope: per window, one `store` message (the whole
    shop) or one `door` message per door (the Node-RED flow added both: 66 where the truth was 32)."""
    per_window: dict[object, list[object]] = {}
    for _t, d in published:
        per_window.setdefault(d["window"]["start"], []).append(d["scope"])  # type: ignore[index]
    assert len(per_window) == 2
    for scopes in per_window.values():
        assert scopes.count("store") == 1 and scopes.count("door") == len(config.doors)


def test_a_wrong_scope_is_refused_and_a_missing_one_is_accepted(
    published: list[tuple[str, dict[str, object]]],
) -> None:
    now = 1_763_251_200 + 3 * 3600
    topic, door = next((t, d) for t, d in published if d["scope"] == "door")
    wrong = parse(topic, {**door, "scope": "store"}, now)  # the door schema allows only "door"
    assert isinstance(wrong, Rejected) and wrong.reason == "scope not an allowed value"
    # The sales schema allows both of its scopes; which one is right depends on the key, checked by the hub.
    for category, scope, ok in (("bakery", "category", True), ("all", "store", True), ("bakery", "store", False)):
        sales_topic, text = synthetic_sales("riverside", "store-0042", "count", category, 1_763_251_200, 1, 5)
        parsed = parse(sales_topic, {**json.loads(text), "scope": scope}, now)
        assert (
            isinstance(parsed, Summary)
            if ok
            else (isinstance(parsed, Rejected) and parsed.reason == "scope does not match its stream and key")
        ), (category, scope, parsed)
    older_agent = {k: v for k, v in door.items() if k != "scope"}
    assert isinstance(parse(topic, older_agent, now), Summary)
