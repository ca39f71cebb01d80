"""The hub's side of a round as a library: collect, forward, check survivors, unmask the sum.

The hub is the party the protocol does not trust, so this module holds no secret of any shop; it verifies
what it forwards (so one bad shop cannot stall the round for everyone) and it refuses to finish a round
below the threshold. Its output is the district sum (true inputs plus the survivors' noise shares), read
as signed int64 from the arithmetic mod 2**64.
"""

from __future__ import annotations

import numpy as np

from agent.coop.secagg import graph
from agent.coop.secagg.errors import RoundAborted, SecAggError
from agent.coop.secagg.messages import (
    AdvertBundle,
    EncryptedShare,
    KeyAdvert,
    MaskedInput,
    Roster,
    RoundConfig,
    ShareBundle,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskResponse,
)
from agent.coop.secagg.primitives import AgreementKey
from agent.coop.secagg.shamir import Share, combine, lagrange_at_zero
from agent.coop.secagg.shop import pair_mask, seed_commitment, self_mask
from agent.privacy.bit_source import Int64Array


class HubRound:
    """The hub's state for one round."""

    def __init__(self, roster: Roster, config: RoundConfig) -> None:
        if config.roster_digest != roster.digest():
            raise SecAggError("round configuration names another roster")
        graph.check_graph(config)
        self.roster, self.config, self.tag = roster, config, config.tag()
        self.adverts: dict[str, KeyAdvert] = {}
        self.sealed: dict[str, dict[str, EncryptedShare]] = {}  # recipient -> sender -> share
        self.senders: set[str] = set()
        self.inputs: dict[str, np.ndarray] = {}
        self.survivor_list: tuple[str, ...] | None = None
        self.signatures: dict[str, SurvivorSignature] = {}
        self.responses: dict[str, UnmaskResponse] = {}
        self.closed = False

    def _check(self, tag: bytes, shop_id: str) -> None:
        if tag != self.tag:
            raise SecAggError(f"message from {shop_id} belongs to another round")
        if shop_id not in self.config.participants:
            raise SecAggError(f"{shop_id} is not a participant")

    def receive_advert(self, advert: KeyAdvert) -> None:
        """Round 0: keep a correctly signed advert (one per shop)."""
        self._check(advert.round_tag, advert.shop_id)
        advert.check_signature(self.roster.key_of(advert.shop_id))
        if advert.shop_id in self.adverts:
            raise SecAggError(f"second advert from {advert.shop_id}")
        self.adverts[advert.shop_id] = advert

    def advert_bundle(self) -> AdvertBundle:
        """Close round 0; abort below the threshold."""
        if len(self.adverts) < self.config.threshold:
            raise RoundAborted(f"{len(self.adverts)} adverts; threshold {self.config.threshold}")
        return AdvertBundle(self.tag, tuple(self.adverts[s] for s in sorted(self.adverts)))

    def receive_shares(self, bundle: ShareBundle) -> None:
        """Round 1: file a sender's sealed shares by recipient."""
        self._check(bundle.round_tag, bundle.shop_id)
        if bundle.shop_id not in self.adverts or bundle.shop_id in self.senders:
            raise SecAggError(f"shares from {bundle.shop_id}: no advert, or sent twice")
        allowed = set(graph.neighbours_of(self.config, self.tag, bundle.shop_id)) & set(self.adverts)
        if {s.recipient for s in bundle.shares} != allowed or len(bundle.shares) != len(allowed):
            raise SecAggError(f"shares from {bundle.shop_id} do not cover its neighbours exactly once")
        if any(s.sender != bundle.shop_id or s.round_tag != self.tag for s in bundle.shares):
            raise SecAggError(f"shares from {bundle.shop_id} carry another sender or round")
        self.senders.add(bundle.shop_id)
        for share in bundle.shares:
            self.sealed.setdefault(share.recipient, {})[bundle.shop_id] = share

    def deliveries(self) -> dict[str, ShareBundle]:
        """Close round 1: each sender's bundle of shares addressed to it (from other senders only)."""
        if len(self.senders) < self.config.threshold:
            raise RoundAborted(f"{len(self.senders)} shops shared keys; threshold {self.config.threshold}")
        out = {}
        for recipient in sorted(self.senders):
            got = self.sealed.get(recipient, {})
            out[recipient] = ShareBundle(self.tag, recipient, tuple(got[s] for s in sorted(got) if s in self.senders))
        return out

    def receive_masked_input(self, message: MaskedInput) -> None:
        """Round 2: keep a signed masked vector of the right length from a shop that shared keys."""
        self._check(message.round_tag, message.shop_id)
        message.check_signature(self.roster.key_of(message.shop_id))
        if message.shop_id not in self.senders or message.shop_id in self.inputs:
            raise SecAggError(f"masked input from {message.shop_id}: did not share keys, or sent twice")
        if len(message.vector) != 8 * self.config.length:
            raise SecAggError(f"masked input from {message.shop_id} has the wrong length")
        self.inputs[message.shop_id] = np.frombuffer(message.vector, dtype="<u8").astype(np.uint64)

    def survivors(self) -> tuple[str, ...]:
        """Close round 2: the sorted survivor list the shops are asked to sign; abort below the threshold."""
        if len(self.inputs) < self.config.threshold:
            self.closed = True
            raise RoundAborted(f"{len(self.inputs)} masked inputs; threshold {self.config.threshold}; nothing revealed")
        self.survivor_list = tuple(sorted(self.inputs))
        return self.survivor_list

    def receive_survivor_signature(self, signature: SurvivorSignature) -> None:
        """Round 3: keep a valid signature over the survivor list."""
        self._check(signature.round_tag, signature.shop_id)
        if signature.survivors != self.survivor_list:
            raise SecAggError(f"{signature.shop_id} signed another survivor list")
        signature.check_signature(self.roster.key_of(signature.shop_id))
        self.signatures[signature.shop_id] = signature

    def unmask_request(self) -> UnmaskRequest:
        """Close round 3: the request every survivor receives."""
        if self.survivor_list is None or len(self.signatures) < self.config.threshold:
            raise RoundAborted(f"{len(self.signatures)} survivor signatures; threshold {self.config.threshold}")
        dropped = tuple(sorted(self.senders - set(self.survivor_list)))
        sigs = {shop: self.signatures[shop].signature for shop in sorted(self.signatures)}
        return UnmaskRequest(self.tag, self.survivor_list, dropped, sigs)

    def receive_unmask_response(self, response: UnmaskResponse) -> None:
        """Round 4: keep a signed response from a survivor."""
        self._check(response.round_tag, response.shop_id)
        if self.survivor_list is None or response.shop_id not in self.survivor_list:
            raise SecAggError(f"unmask response from {response.shop_id}, who is not a survivor")
        response.check_signature(self.roster.key_of(response.shop_id))
        self.responses[response.shop_id] = response

    def _recover(self, owner: str, kind: str, bases: dict[tuple[int, ...], list[int]]) -> bytes:
        needed = graph.share_threshold(self.config)
        shares = []
        for holder in sorted(self.responses):
            revealed = self.responses[holder].seed_shares if kind == "seed" else self.responses[holder].key_shares
            if owner in revealed:
                shares.append(Share(self.config.index_of(holder), int.from_bytes(revealed[owner], "big")))
            if len(shares) == needed:
                break
        if len(shares) < needed:
            raise RoundAborted(f"{len(shares)} shares of {owner}'s {kind}; {needed} needed")
        xs = tuple(s.x for s in shares)
        if xs not in bases:
            bases[xs] = lagrange_at_zero(xs)
        try:
            return combine(shares, needed, bases[xs])
        except SecAggError as exc:
            raise RoundAborted(f"shares of {owner}'s {kind} are corrupt (a shop lied)") from exc

    def finish(self) -> Int64Array:
        """Remove the masks and return the district sum (inputs plus noise shares of the survivors)."""
        if self.survivor_list is None or len(self.survivor_list) < self.config.threshold:
            raise RoundAborted("no survivor list at or above the threshold; nothing to unmask")
        length = self.config.length
        bases: dict[tuple[int, ...], list[int]] = {}
        total = np.zeros(length, dtype=np.uint64)
        for shop in self.survivor_list:
            seed = self._recover(shop, "seed", bases)
            if seed_commitment(self.tag, shop, seed) != self.adverts[shop].seed_commitment:
                raise RoundAborted(f"shares of {shop}'s seed do not match its commitment (a shop lied)")
            total += self.inputs[shop]
            total -= self_mask(seed, self.tag, shop, length)
        survivors = set(self.survivor_list)
        for dropped in sorted(self.senders - survivors):
            key = AgreementKey(self._recover(dropped, "key", bases))
            if key.public_bytes != self.adverts[dropped].mask_public:
                raise RoundAborted(f"shares of {dropped}'s mask key do not match its advert (a shop lied)")
            for shop in graph.neighbours_of(self.config, self.tag, dropped):
                if shop in survivors and dropped in self.sealed.get(shop, {}):
                    mask = pair_mask(key.agree(self.adverts[shop].mask_public), self.tag, shop, dropped, length)
                    if shop < dropped:
                        total -= mask  # the survivor added it
                    else:
                        total += mask
        self.closed = True
        return total.view(np.int64)
