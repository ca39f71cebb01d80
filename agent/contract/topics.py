"""Topic and message-id shapes (docs/topics.md): built here for the agent, parsed here for the hub.

coop/v1/<coop>/<store>/<tier>/<segment>/<window name>    a shop's summaries
coop/v1/<coop>/<store>/status                            a shop's retained birth and last will
coop/v1/<coop>/_hub/t1/benchmarks/<metric>/[<window name>/]<window start>   district benchmarks
coop/v1/<coop>/_hub/t2/alerts/<store>                    alerts about one shop
coop/v1/<coop>/_hub/t1/queries                           signed licensing queries (docs/licensing.md)
coop/v1/<coop>/<store>/licensing/answers                 one store's answers and refusals
coop/v1/<coop>/_hub/t1/forecast/model                    the coop's forecast model (retained, one message)
coop/v1/<coop>/_hub/t1/alerts/district                   the newest district warning against it (retained)
coop/v1/<coop>/_hub/t2/sales-position/<store>            one shop's own position among the district's sales
coop/v1/<coop>/_hub/t2/watermark/<store>                 the newest window end the hub holds of one shop

The three `_hub/t2/.../<store>` topics are private to their store: only the hub writes them and only that
store (and the hub) reads them (deploy/mosquitto/coop.acl).
"""

from __future__ import annotations

import dataclasses

from agent.contract.names import NAME_RE
from agent.contract.streams import TIERS, StreamSpec, stream_by_segment
from agent.contract.windows import V1_IMPLIED_WINDOW_S, iso_utc, window_name, window_seconds

ROOT = "coop/v1"
HUB_SEGMENT = "_hub"  # the hub writes only under coop/v1/<coop>/_hub/...; no store may be called this


def summary_topic(coop: str, store: str, tier: str, spec: StreamSpec, window_s: int) -> str:
    """Where one stream of one shop is published, e.g. coop/v1/riverside/store-0042/t1/footfall/hourly."""
    return f"{ROOT}/{coop}/{store}/{tier}/{spec.stream(window_s)}"


def status_topic(coop: str, store: str) -> str:
    return f"{ROOT}/{coop}/{store}/status"


def msg_id(coop: str, store: str, spec: StreamSpec, window_s: int, window_start_ns: int, key: str) -> str:
    """Stable per (store, stream, window, key): the hub de-duplicates on it. One-key streams omit the key."""
    text = f"{coop}/{store}/{spec.stream(window_s)}/{iso_utc(window_start_ns)}"
    return text if spec.key_field is None else f"{text}/{key}"


@dataclasses.dataclass(frozen=True)
class SummaryTopic:
    """A parsed summary topic."""

    coop: str
    store: str
    tier: str
    spec: StreamSpec
    window_s: int

    @property
    def stream(self) -> str:
        return self.spec.stream(self.window_s)


def parse_summary_topic(topic: str) -> SummaryTopic:
    """The parts of a summary topic; ValueError naming what is wrong."""
    parts = topic.split("/")
    if len(parts) != 7 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise ValueError("topic is not coop/v1/<coop>/<store>/<tier>/<stream>/<window>")
    coop, store, tier, segment, name = parts[2:]
    if store == HUB_SEGMENT:
        raise ValueError("topic is under the hub's own _hub/ level")
    if tier not in TIERS:
        raise ValueError(f"tier {tier[:20]!r} is not one of {', '.join(TIERS)}")
    spec = stream_by_segment(segment)
    if spec is None:
        raise ValueError(f"no stream is published as {segment[:40]!r}")
    return SummaryTopic(coop, store, tier, spec, window_seconds(name))


# -- the hub's own topics --------------------------------------------------------------------------
def benchmark_topic(coop: str, metric: str, window_s: int, window_start: str) -> str:
    """Retained district benchmark of one window. Hourly keeps its v1 topic; other lengths name theirs."""
    base = f"{ROOT}/{coop}/{HUB_SEGMENT}/t1/benchmarks/{metric}"
    if window_s == V1_IMPLIED_WINDOW_S:
        return f"{base}/{window_start}"
    return f"{base}/{window_name(window_s)}/{window_start}"


def benchmark_filter(coop: str, window_s: int) -> str:
    """The subscription that receives every benchmark of one window length, and of no other length."""
    base = f"{ROOT}/{coop}/{HUB_SEGMENT}/t1/benchmarks/+"
    return f"{base}/+" if window_s == V1_IMPLIED_WINDOW_S else f"{base}/{window_name(window_s)}/+"


def alert_topic(coop: str, store: str) -> str:
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t2/alerts/{store}"


# -- data licensing (agent/licensing, hub/licensing.py) ------------------------------------------
def query_topic(coop: str) -> str:
    """Where the hub publishes signed queries; every member's box subscribes (only the hub may write it)."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t1/queries"


def answer_topic(coop: str, store: str) -> str:
    """Where one store publishes its answers and refusals (only that store may write it; the hub reads)."""
    return f"{ROOT}/{coop}/{store}/licensing/answers"


def answer_store(coop: str, topic: str) -> str | None:
    """The store of an answer topic, or None when the topic is not one."""
    parts = topic.split("/")
    if (
        len(parts) == 6
        and f"{parts[0]}/{parts[1]}" == ROOT
        and parts[2] == coop
        and parts[4:] == ["licensing", "answers"]
    ):
        return parts[3]
    return None


def forecast_model_topic(coop: str) -> str:
    """Retained: the coop's district forecast model (hub/forecast_model.py), built from secure sums only."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t1/forecast/model"


def district_alert_topic(coop: str) -> str:
    """Retained: the newest district early warning against the coop's forecast (every member reads it)."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t1/alerts/district"


# -- secure aggregation (docs/secure-aggregation.md) -------------------------------------------------
SECAGG = "secagg"
#: What a shop sends for one round, in protocol order: key advert, sealed shares, masked input, its
#: signature over the survivor list, its unmask response.
SECAGG_SHOP_STEPS = ("advert", "shares", "input", "survivors", "unmask")
#: What the hub sends to every participant: the opening (configuration and roster), the advert bundle, the
#: survivor list, the unmask request, the result. Each shop's incoming shares go to `shares/<store>`.
SECAGG_HUB_STEPS = ("config", "adverts", "survivors", "unmask", "result")


def secagg_shop_topic(coop: str, store: str, round_id: str, step: str) -> str:
    """A shop's message of one round step, e.g. coop/v1/riverside/store-0042/secagg/r-20261116/advert."""
    return f"{ROOT}/{coop}/{store}/{SECAGG}/{round_id}/{step}"


def secagg_hub_topic(coop: str, round_id: str, step: str) -> str:
    """The hub's message of one round step to every participant (retained while the round runs)."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/{SECAGG}/{round_id}/{step}"


def secagg_delivery_topic(coop: str, round_id: str, store: str) -> str:
    """The sealed shares addressed to one shop: only that shop may read it (deploy/mosquitto/coop.acl)."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/{SECAGG}/{round_id}/shares/{store}"


def secagg_shop_filters(coop: str, store: str) -> list[str]:
    """What a shop subscribes to: every round's broadcasts, and the shares addressed to it alone."""
    base = f"{ROOT}/{coop}/{HUB_SEGMENT}/{SECAGG}/+"
    return [f"{base}/+", f"{base}/shares/{store}"]


@dataclasses.dataclass(frozen=True)
class SecAggTopic:
    """A parsed secure-aggregation topic: who sent it (a store or the hub), the round, the step, and for a
    share delivery the store it is addressed to."""

    coop: str
    sender: str
    round_id: str
    step: str
    addressee: str | None = None


def parse_secagg_topic(topic: str) -> SecAggTopic:
    """The parts of a secure-aggregation topic; ValueError naming what is wrong."""
    parts = topic.split("/")
    if len(parts) not in (7, 8) or f"{parts[0]}/{parts[1]}" != ROOT or parts[4] != SECAGG:
        raise ValueError("topic is not coop/v1/<coop>/<sender>/secagg/<round>/<step>[/<store>]")
    coop, sender, _, round_id, step = parts[2:7]
    if not NAME_RE.match(round_id):
        raise ValueError(f"round id {round_id[:40]!r} is not a valid name")
    if sender == HUB_SEGMENT:
        if len(parts) == 8:
            if step != "shares" or not NAME_RE.match(parts[7]):
                raise ValueError("only share deliveries are addressed to one store")
            return SecAggTopic(coop, sender, round_id, step, parts[7])
        if step not in SECAGG_HUB_STEPS:
            raise ValueError(f"the hub sends no secure-aggregation step {step[:20]!r}")
        return SecAggTopic(coop, sender, round_id, step)
    if len(parts) != 7 or not NAME_RE.match(sender):
        raise ValueError("a shop's secure-aggregation topic is coop/v1/<coop>/<store>/secagg/<round>/<step>")
    if step not in SECAGG_SHOP_STEPS:
        raise ValueError(f"a shop sends no secure-aggregation step {step[:20]!r}")
    return SecAggTopic(coop, sender, round_id, step)


def sales_position_topic(coop: str, store: str) -> str:
    """Retained: this shop's own band among the district's POS sales figures (tier 2, this store only)."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t2/sales-position/{store}"


def watermark_topic(coop: str, store: str) -> str:
    """Retained: `released_through`, the newest window end the hub has stored for this store (this store only)."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t2/watermark/{store}"
