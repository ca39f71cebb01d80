"""What travels on each secure-aggregation topic (agent/contract/topics.py), and the hub's three messages
the in-process core did not need: the opening, the survivor list and the result.

Every shop message is one core message, signed by the shop where the core signs it; the hub's messages
are unsigned on purpose (the hub is not trusted: what matters in them is signed by shops or sealed
between them). A payload is accepted only if its kind is the one its topic's step carries and its round
tag matches the round the receiver holds, so a message cannot be moved to another step or round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agent.coop.secagg.errors import SecAggError
from agent.coop.secagg.messages import (
    AdvertBundle,
    KeyAdvert,
    MaskedInput,
    Message,
    Roster,
    RoundConfig,
    ShareBundle,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskResponse,
    decode,
)


@dataclass(frozen=True)
class RoundOpening(Message):
    """Hub to shops: the proposed round and the roster it names (each shop checks it against its pinned digest)."""

    kind: ClassVar[str] = "round_opening"
    config: RoundConfig
    roster: Roster


@dataclass(frozen=True)
class SurvivorList(Message):
    """Hub to shops (round 3): the shops whose masked input arrived, for each to sign once."""

    kind: ClassVar[str] = "survivor_list"
    round_tag: bytes
    survivors: tuple[str, ...]


@dataclass(frozen=True)
class RoundResult(Message):
    """Hub to shops: how the round ended. It names who was summed, never the sum (that stays at the hub)."""

    kind: ClassVar[str] = "round_result"
    round_tag: bytes
    outcome: str  # "released" or "aborted"
    survivors: tuple[str, ...]
    reason: str


#: The message kind each shop step carries.
SHOP_STEP_KINDS: dict[str, type[Message]] = {
    "advert": KeyAdvert,
    "shares": ShareBundle,
    "input": MaskedInput,
    "survivors": SurvivorSignature,
    "unmask": UnmaskResponse,
}
#: The message kind each hub step carries ("shares" is the per-store delivery).
HUB_STEP_KINDS: dict[str, type[Message]] = {
    "config": RoundOpening,
    "adverts": AdvertBundle,
    "shares": ShareBundle,
    "survivors": SurvivorList,
    "unmask": UnmaskRequest,
    "result": RoundResult,
}


def decode_step(step: str, payload: bytes, kinds: dict[str, type[Message]]) -> Message:
    """Decode `payload` and check it is the kind `step` carries; SecAggError otherwise."""
    expected = kinds.get(step)
    if expected is None:
        raise SecAggError(f"no secure-aggregation step {step[:20]!r}")
    message = decode(payload)
    if type(message) is not expected:
        raise SecAggError(f"a {message.kind} message on the {step} topic (expected {expected.kind})")
    return message


def sender_of(message: Message) -> str | None:
    """The shop id a shop message names (it must equal the topic's store), or None for hub messages."""
    shop = getattr(message, "shop_id", None)
    return shop if isinstance(shop, str) else None


@dataclass(frozen=True)
class Cell:
    """One entry of a round's vector: one value field of one key of one stream in one window."""

    stream: str
    key: str
    field: str
    window_start_s: int
    window_s: int

    @property
    def name(self) -> str:
        """The text form in RoundConfig.windows (so the round tag binds every cell's window)."""
        return f"{self.stream}|{self.key}|{self.field}|{self.window_start_s}|{self.window_s}"


def parse_cell(text: str) -> Cell:
    """A cell from its text form; SecAggError when it is not one."""
    parts = text.split("|")
    if len(parts) != 5 or not parts[3].isdigit() or not parts[4].isdigit():
        raise SecAggError(f"round cell {text[:80]!r} is not stream|key|field|window_start_s|window_s")
    return Cell(parts[0], parts[1], parts[2], int(parts[3]), int(parts[4]))
