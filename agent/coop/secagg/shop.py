"""One shop's side of a round: advertise keys, share secrets, send the masked input, check, unmask.

The shop is the party that must stay honest when the hub is not, so every refusal lives here:
- a configuration that is not on the pinned roster, or whose threshold or noise breaks a guarantee;
- any message of another round (round tag), unsigned or wrongly signed, or not in canonical form;
- a survivor list shorter than the threshold (the round aborts: nothing is revealed);
- a second, different survivor list (it signs one per round), and an unmask request whose survivor list
  lacks `threshold` valid signatures;
- and, the point of it all, revealing both secrets of one peer: once it has sent a share of a peer's
  self-mask seed it never sends a share of that peer's mask key, and the other way round.
The windows of the round are spent in the shop's ledger *before* the masked input leaves, so a shop's
input for a window enters at most one round, whether or not that round completes (the differencing trap).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from agent.coop.secagg import graph
from agent.coop.secagg.errors import Refused, RoundAborted, SecAggError
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
    canonical,
)
from agent.coop.secagg.noise import NoiseDraw, NoisePlan, check_headroom, draw_noise_share, plan_noise
from agent.coop.secagg.primitives import (
    DOMAIN,
    AgreementKey,
    IdentityKey,
    derive_key,
    digest,
    expand_mask,
    open_sealed,
    seal,
)
from agent.coop.secagg.shamir import SHARE_BYTES, Share, split
from agent.privacy.bit_source import BitSource, Int64Array


@dataclass(frozen=True)
class RoundPolicy:
    """What this shop accepts from a hub's proposal (the hub is not trusted to pick the privacy level)."""

    max_rho: Fraction  # the most zCDP rho one round may spend on each window it covers
    sensitivity: int  # this shop's own L2 bound per privacy unit; the round must declare at least this
    min_honest: int = 2  # threshold minus assumed colluders must be at least this

    def check(self, config: RoundConfig) -> None:
        """Refuse a proposal that spends more than the policy allows or declares too small a sensitivity."""
        rho = Fraction(config.rho_num, config.rho_den)
        if rho > self.max_rho:
            raise Refused(f"round {config.round_id} asks rho {rho}; this shop's policy allows at most {self.max_rho}")
        if config.sensitivity < self.sensitivity:
            raise Refused(f"round {config.round_id} declares sensitivity {config.sensitivity} < {self.sensitivity}")
        if config.threshold - config.colluders < self.min_honest:
            raise Refused(f"round {config.round_id}: threshold - colluders < {self.min_honest} honest shops")


class WindowLedger:
    """Which round each window's input went into (in memory here; the agent's SQLite ledger later)."""

    def __init__(self) -> None:
        self.spent: dict[str, str] = {}

    def spend(self, windows: tuple[str, ...], round_id: str) -> None:
        """Record that `windows` enter `round_id`; Refused if any of them already entered another round."""
        taken = sorted(w for w in windows if self.spent.get(w, round_id) != round_id)
        if taken:
            raise Refused(f"windows {taken} already entered round(s) {sorted({self.spent[w] for w in taken})}")
        for window in windows:
            self.spent[window] = round_id


def pair_mask(secret: bytes, tag: bytes, a: str, b: str, length: int) -> np.ndarray:
    """The mask a pair shares: the lower id adds it, the higher subtracts it."""
    low, high = sorted((a, b))
    return expand_mask(derive_key(secret, "pair-mask", tag, low, high), length)


def self_mask(seed: bytes, tag: bytes, shop_id: str, length: int) -> np.ndarray:
    """The mask of a shop's own seed (removed by the hub once survivors reveal the seed)."""
    return expand_mask(derive_key(seed, "self-mask", tag, shop_id), length)


def seed_commitment(tag: bytes, shop_id: str, seed: bytes) -> bytes:
    """A binding, hiding commitment to a 32-byte random seed (SHA-256, domain-separated)."""
    return digest(DOMAIN + b"seed-commitment", tag, shop_id.encode(), seed)


def share_associated(tag: bytes, sender: str, recipient: str) -> bytes:
    """Associated data of a sealed share: the round and both ends."""
    return canonical({"round_tag": base64.b64encode(tag).decode(), "sender": sender, "recipient": recipient})


class ShopRound:
    """A shop's state for one round; each method is one protocol step and may be called once."""

    def __init__(
        self,
        identity: IdentityKey,
        shop_id: str,
        roster: Roster,
        pinned_roster_digest: bytes,
        config: RoundConfig,
        ledger: WindowLedger,
        policy: RoundPolicy,
        bits: BitSource | None = None,
    ) -> None:
        if roster.digest() != pinned_roster_digest or config.roster_digest != pinned_roster_digest:
            raise Refused("the round's roster is not the roster this shop enrolled in")
        if config.coop != roster.coop or roster.key_of(shop_id) != identity.public_bytes:
            raise Refused(f"{shop_id} is not enrolled with this identity key in coop {roster.coop}")
        graph.check_graph(config)
        policy.check(config)
        for participant in config.participants:
            roster.key_of(participant)
        config.index_of(shop_id)
        if config.length < 1 or config.value_bound < 0:
            raise SecAggError("vector length must be positive and value_bound non-negative")
        self.plan: NoisePlan = plan_noise(config)
        check_headroom(config, self.plan)
        self.identity, self.shop_id, self.roster, self.config = identity, shop_id, roster, config
        self.tag = config.tag()
        self.ledger, self.bits = ledger, bits
        self.neighbours = graph.neighbours_of(config, self.tag, shop_id)
        self.mask_key, self.enc_key, self.seed = AgreementKey(), AgreementKey(), os.urandom(32)
        self.step = "advertise"
        self.adverts: dict[str, KeyAdvert] = {}
        self.held: dict[str, tuple[bytes, bytes]] = {}  # holder's shares: peer -> (mask-key share, seed share)
        self.revealed: dict[str, str] = {}  # peer -> "seed" or "key": what this shop has revealed about it
        self.noise: Int64Array | None = None  # this shop's own noise share: kept on the box, for its ledger
        self.signed_survivors: tuple[str, ...] | None = None
        self.answer: tuple[UnmaskRequest, UnmaskResponse] | None = None

    def _advance(self, expected: str, following: str) -> None:
        if self.step != expected:
            raise Refused(f"{self.shop_id}: {expected} asked at step {self.step}; each step runs once, in order")
        self.step = following

    def _check_tag(self, tag: bytes, what: str) -> None:
        if tag != self.tag:
            raise Refused(f"{what} belongs to another round (round tag mismatch); replay refused")

    def advertise(self) -> KeyAdvert:
        """Round 0: the two fresh public keys, signed with the identity key."""
        self._advance("advertise", "share")
        commitment = seed_commitment(self.tag, self.shop_id, self.seed)
        advert = KeyAdvert(self.tag, self.shop_id, self.mask_key.public_bytes, self.enc_key.public_bytes, commitment)
        return advert.signed(self.identity)

    def share_keys(self, bundle: AdvertBundle) -> ShareBundle:
        """Round 1: check every advert, then seal shares of the mask key and seed to each neighbour."""
        self._advance("share", "input")
        self._check_tag(bundle.round_tag, "advert bundle")
        for advert in bundle.adverts:
            self._check_tag(advert.round_tag, f"advert of {advert.shop_id}")
            if advert.shop_id in self.adverts or advert.shop_id not in self.config.participants:
                raise Refused(f"advert of {advert.shop_id} is duplicated or not from a participant")
            advert.check_signature(self.roster.key_of(advert.shop_id))
            self.adverts[advert.shop_id] = advert
        mine = self.adverts.get(self.shop_id)
        if mine is None or (mine.mask_public, mine.enc_public) != (
            self.mask_key.public_bytes,
            self.enc_key.public_bytes,
        ):
            raise Refused("the advert bundle does not carry this shop's own keys")
        if len(self.adverts) < self.config.threshold:
            raise RoundAborted(f"only {len(self.adverts)} shops advertised keys; threshold {self.config.threshold}")
        holders = [v for v in self.neighbours if v in self.adverts]
        needed = graph.share_threshold(self.config)
        if len(holders) + 1 < needed:
            raise RoundAborted(f"{len(holders) + 1} holders for {self.shop_id}'s secrets; {needed} needed")
        everyone = [self.shop_id, *holders]
        xs = [self.config.index_of(v) for v in everyone]
        key_shares = split(self.mask_key.private_bytes, needed, xs)
        seed_shares = split(self.seed, needed, xs)
        self.held[self.shop_id] = (key_shares[0].y_bytes(), seed_shares[0].y_bytes())
        sealed = []
        for v, key_share, seed_share in zip(everyone[1:], key_shares[1:], seed_shares[1:], strict=True):
            plaintext = key_share.y_bytes() + seed_share.y_bytes()
            nonce, ciphertext = seal(self._share_key(v), plaintext, share_associated(self.tag, self.shop_id, v))
            sealed.append(EncryptedShare(self.tag, self.shop_id, v, nonce, ciphertext))
        return ShareBundle(self.tag, self.shop_id, tuple(sealed))

    def _share_key(self, peer: str) -> bytes:
        low, high = sorted((self.shop_id, peer))
        return derive_key(self.enc_key.agree(self.adverts[peer].enc_public), "share-seal", self.tag, low, high)

    def masked_input(self, delivery: ShareBundle, values: Int64Array, draw: NoiseDraw | None = None) -> MaskedInput:
        """Round 2: open the shares sent to this shop, spend the windows, add noise and masks, sign.

        `draw` draws the noise share elsewhere (the agent's kernel worker); it is called after the spend.
        """
        self._advance("input", "check")
        self._check_tag(delivery.round_tag, "share delivery")
        if delivery.shop_id != self.shop_id:
            raise Refused("share delivery addressed to another shop")
        for sealed in delivery.shares:
            self._check_tag(sealed.round_tag, f"share from {sealed.sender}")
            v = sealed.sender
            if sealed.recipient != self.shop_id or v not in self.neighbours or v not in self.adverts or v in self.held:
                raise Refused(f"share from {v} is misdirected, duplicated or not from a neighbour")
            plain = open_sealed(
                self._share_key(v), sealed.nonce, sealed.ciphertext, share_associated(self.tag, v, self.shop_id)
            )
            if len(plain) != 2 * SHARE_BYTES:
                raise Refused(f"share from {v} has the wrong size")
            self.held[v] = (plain[:SHARE_BYTES], plain[SHARE_BYTES:])
        peers = [v for v in self.neighbours if v in self.held]
        if len(self.held) < self.config.threshold and graph.complete(self.config):
            raise RoundAborted(f"only {len(self.held)} shops shared keys; threshold {self.config.threshold}")
        vector = np.asarray(values)
        if vector.shape != (self.config.length,) or vector.dtype.kind not in "iu":
            raise SecAggError(f"input must be {self.config.length} integers")
        if np.abs(vector.astype(np.int64)).max(initial=0) > self.config.value_bound:
            raise SecAggError(f"an input value exceeds the round's bound {self.config.value_bound}; clamp upstream")
        self.ledger.spend(self.config.windows, self.config.round_id)  # spent even if the round aborts later
        self.noise = draw_noise_share(self.config, self.plan, self.bits, draw)
        masked = (vector.astype(np.int64) + self.noise).view(np.uint64).copy()
        masked += self_mask(self.seed, self.tag, self.shop_id, self.config.length)
        for v in peers:
            mask = pair_mask(
                self.mask_key.agree(self.adverts[v].mask_public), self.tag, self.shop_id, v, self.config.length
            )
            if self.shop_id < v:
                masked += mask
            else:
                masked -= mask
        return MaskedInput(self.tag, self.shop_id, masked.astype("<u8").tobytes()).signed(self.identity)

    def sign_survivors(self, survivors: tuple[str, ...]) -> SurvivorSignature:
        """Round 3: sign the survivor list the hub shows (one list per round, containing this shop)."""
        if self.step not in ("check", "unmask"):
            raise Refused(f"survivor check asked at step {self.step}")
        if self.signed_survivors is not None and survivors != self.signed_survivors:
            raise Refused("a second, different survivor list for this round; refused")
        if list(survivors) != sorted(set(survivors)) or self.shop_id not in survivors:
            raise Refused("survivor list must be sorted, distinct and include this shop")
        if any(s not in self.adverts for s in survivors):
            raise Refused("survivor list names a shop that never advertised keys")
        if len(survivors) < self.config.threshold:
            self.step = "aborted"
            raise RoundAborted(
                f"{len(survivors)} survivors is below threshold {self.config.threshold}; nothing revealed"
            )
        self.signed_survivors, self.step = survivors, "unmask"
        return SurvivorSignature(self.tag, self.shop_id, survivors).signed(self.identity)

    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Round 4: shares of survivors' seeds and dropped shops' mask keys; never both for one peer."""
        self._check_tag(request.round_tag, "unmask request")
        if self.answer is not None:
            if request == self.answer[0]:
                return self.answer[1]  # the same request again (a lost reply): the same answer
            raise Refused("a second, different unmask request for this round; refused")
        if self.step != "unmask" or request.survivors != self.signed_survivors:
            raise Refused("unmask request does not match the survivor list this shop signed")
        if len(request.survivors) < self.config.threshold:
            raise RoundAborted("too few survivors; nothing revealed")
        if set(request.survivors) & set(request.dropped):
            raise Refused("a shop is listed as both survivor and dropped; refusing to reveal both of its secrets")
        signers = set()
        for signer, signature in request.signatures.items():
            if signer not in request.survivors:
                raise Refused(f"survivor signature of {signer}, who is not on the list")
            SurvivorSignature(self.tag, signer, request.survivors, signature).check_signature(
                self.roster.key_of(signer)
            )
            signers.add(signer)
        if len(signers) < self.config.threshold:
            raise Refused(f"only {len(signers)} shops signed the survivor list; threshold {self.config.threshold}")
        wanted = {v: "seed" for v in request.survivors if v in self.held}
        wanted.update({v: "key" for v in request.dropped if v in self.held})
        clash = sorted(v for v, what in wanted.items() if self.revealed.get(v, what) != what)
        if clash or self.shop_id in request.dropped:
            raise Refused(f"already revealed the other secret of {clash or [self.shop_id]}; refusing both kinds")
        self.revealed.update(wanted)
        response = UnmaskResponse(
            self.tag,
            self.shop_id,
            seed_shares={v: self.held[v][1] for v, what in wanted.items() if what == "seed"},
            key_shares={v: self.held[v][0] for v, what in wanted.items() if what == "key"},
        ).signed(self.identity)
        self.answer, self.step = (request, response), "done"
        return response


def share_of(config: RoundConfig, holder: str, y: bytes) -> Share:
    """A revealed share as a Shamir point (x is the holder's index)."""
    return Share(config.index_of(holder), int.from_bytes(y, "big"))
