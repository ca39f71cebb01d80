"""The secure-aggregation topics of the contract: built and parsed the same way by agent and hub, and every
other shape refused with a reason."""

from __future__ import annotations

import pytest

from agent.contract import (
    SECAGG_HUB_STEPS,
    SECAGG_SHOP_STEPS,
    SecAggTopic,
    parse_secagg_topic,
    secagg_delivery_topic,
    secagg_hub_topic,
    secagg_shop_filters,
    secagg_shop_topic,
)


def test_every_step_topic_parses_back_to_its_parts() -> None:
    for step in SECAGG_SHOP_STEPS:
        topic = secagg_shop_topic("riverside", "store-0042", "r-1", step)
        assert parse_secagg_topic(topic) == SecAggTopic("riverside", "store-0042", "r-1", step)
    for step in SECAGG_HUB_STEPS:
        assert parse_secagg_topic(secagg_hub_topic("riverside", "r-1", step)) == SecAggTopic(
            "riverside", "_hub", "r-1", step
        )
    delivery = secagg_delivery_topic("riverside", "r-1", "store-0042")
    assert delivery == "coop/v1/riverside/_hub/secagg/r-1/shares/store-0042"
    assert parse_secagg_topic(delivery).addressee == "store-0042"


def test_a_shop_subscribes_to_the_broadcasts_and_its_own_shares_only() -> None:
    assert secagg_shop_filters("riverside", "store-0042") == [
        "coop/v1/riverside/_hub/secagg/+/+",
        "coop/v1/riverside/_hub/secagg/+/shares/store-0042",
    ]


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("coop/v1/riverside/store-1/secagg/r-1/result", "a shop sends no"),
        ("coop/v1/riverside/_hub/secagg/r-1/advert", "the hub sends no"),
        ("coop/v1/riverside/_hub/secagg/r-1/unmask/store-1", "only share deliveries"),
        ("coop/v1/riverside/store-1/secagg/R 1/advert", "round id"),
        ("coop/v1/riverside/store-1/secagg/r-1/input/x", "a shop's secure-aggregation topic"),
        ("coop/v1/riverside/store-1/t1/r-1/input", "is not coop/v1"),
    ],
)
def test_other_shapes_are_refused_with_a_reason(topic: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_secagg_topic(topic)
