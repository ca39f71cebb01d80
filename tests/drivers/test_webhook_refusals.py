"""The shared webhook receiver's refusal log: every refusal is logged with its reason, at most once per interval."""

from __future__ import annotations

import logging
from typing import Any

from drivers.webhook_http import RefusalLog


def test_refusals_of_one_kind_are_logged_once_per_interval_with_the_suppressed_count(caplog: Any) -> None:
    refusals = RefusalLog(interval_s=60)
    with caplog.at_level(logging.WARNING, logger="drivers.webhook_http"):
        assert refusals.warn("shop", "400 malformed", "total_price 'x' is not a decimal amount", now=0.0)
        assert not refusals.warn("shop", "400 malformed", "another reason", now=30.0)
        assert not refusals.warn("shop", "400 malformed", "a third reason", now=59.0)
        assert refusals.warn("shop", "400 malformed", "later reason", now=61.0)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "driver shop: 400 malformed: total_price 'x' is not a decimal amount",
        "driver shop: 400 malformed: later reason (and 2 more since)",
    ]


def test_each_kind_of_refusal_has_its_own_interval(caplog: Any) -> None:
    refusals = RefusalLog(interval_s=60)
    with caplog.at_level(logging.WARNING, logger="drivers.webhook_http"):
        assert refusals.warn("shop", "401 bad signature", "check the secret", now=0.0)
        assert refusals.warn("shop", "dead letter", "event e1: HTTP 404", now=1.0)
    assert len(caplog.records) == 2
