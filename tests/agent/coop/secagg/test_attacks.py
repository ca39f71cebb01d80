"""The hub's best attack, tampering, replay and bad signatures: refused, and nothing learnt."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from agent.coop.secagg import graph
from agent.coop.secagg.errors import Refused, RoundAborted, SecAggError
from agent.coop.secagg.loopback import propose
from agent.coop.secagg.messages import Member, Roster, UnmaskRequest, decode
from agent.coop.secagg.primitives import AgreementKey, IdentityKey
from agent.coop.secagg.shop import RoundPolicy, ShopRound, WindowLedger, pair_mask, self_mask

from .conftest import Coop

#: Every statistical assertion here fails by chance with probability below this.
ALPHA = 1e-6
POLICY = RoundPolicy(max_rho=Fraction(1, 8), sensitivity=1)


def advance_to_inputs(coop: Coop, round_id: str, length: int = 24, values: int = 0):
    """Run rounds 0-2 with every shop; return (config, shops, hub, inputs)."""
    config, shops, hub = coop.round(round_id, 7, length=length)
    inputs = {s: np.full(length, values, dtype=np.int64) for s in config.participants}
    for shop in shops.values():
        hub.receive_advert(shop.advertise())
    bundle = hub.advert_bundle()
    for shop in shops.values():
        hub.receive_shares(shop.share_keys(bundle))
    for shop_id, delivery in hub.deliveries().items():
        hub.receive_masked_input(shops[shop_id].masked_input(delivery, inputs[shop_id]))
    return config, shops, hub, inputs


def declare_dropped(shops, hub, victim: str):
    """The attack: the hub tells everyone else that `victim` dropped, though its masked input arrived."""
    survivors = tuple(s for s in sorted(shops) if s != victim)
    hub.survivor_list = survivors
    for shop_id in survivors:
        hub.receive_survivor_signature(shops[shop_id].sign_survivors(survivors))
    request = hub.unmask_request()
    assert request.dropped == (victim,)
    for shop_id in survivors:
        hub.receive_unmask_response(shops[shop_id].unmask(request))
    return request


def what_the_hub_can_compute(config, hub, victim: str) -> np.ndarray:
    """The victim's masked input with every pairwise mask removed (the hub rebuilt its mask key)."""
    key = AgreementKey(hub._recover(victim, "key", {}))
    assert key.public_bytes == hub.adverts[victim].mask_public  # the attack did get the mask key
    view = hub.inputs[victim].copy()
    for peer in graph.neighbours_of(config, hub.tag, victim):
        mask = pair_mask(key.agree(hub.adverts[peer].mask_public), hub.tag, victim, peer, config.length)
        view = view - mask if victim < peer else view + mask
    return view


def test_declaring_a_shop_dropped_after_its_input_yields_its_mask_key_but_never_its_seed(coop10: Coop) -> None:
    _config, shops, hub, _ = advance_to_inputs(coop10, "r-attack")
    victim = "store-0004"
    request = declare_dropped(shops, hub, victim)
    assert all(victim not in r.seed_shares for r in hub.responses.values())
    with pytest.raises(RoundAborted):
        hub._recover(victim, "seed", {})
    # Second try: the same shops, now asked for the victim's seed (victim listed as survivor).
    everyone = tuple(sorted(shops))
    second = dataclasses.replace(request, survivors=everyone, dropped=())
    for shop_id in request.survivors:
        with pytest.raises(Refused):
            shops[shop_id].sign_survivors(everyone)
        with pytest.raises(Refused):
            shops[shop_id].unmask(second)


def test_one_request_for_both_secrets_of_a_peer_is_refused_whole(coop10: Coop) -> None:
    _config, shops, hub, _ = advance_to_inputs(coop10, "r-both")
    everyone = hub.survivors()
    for shop_id in everyone:
        hub.receive_survivor_signature(shops[shop_id].sign_survivors(everyone))
    sigs = {s: hub.signatures[s].signature for s in everyone}
    greedy = UnmaskRequest(hub.tag, everyone, ("store-0004",), sigs)
    with pytest.raises(Refused, match="both"):
        shops["store-0001"].unmask(greedy)
    assert shops["store-0001"].revealed == {}


def test_unmask_request_without_threshold_signatures_is_refused(coop10: Coop) -> None:
    _config, shops, hub, _ = advance_to_inputs(coop10, "r-unsigned")
    everyone = hub.survivors()
    for shop_id in everyone[:6]:
        hub.receive_survivor_signature(shops[shop_id].sign_survivors(everyone))
    request = UnmaskRequest(hub.tag, everyone, (), {s: g.signature for s, g in hub.signatures.items()})
    with pytest.raises(Refused, match="signed"):
        shops["store-0000"].unmask(request)


def test_what_the_attack_leaves_of_the_victims_input_is_uniform_mod_2_64(coop10: Coop) -> None:
    # The attacked shop's input is 0 in one run and the largest allowed value in another; either way what the
    # hub holds is input + noise + a ChaCha20 self-mask: its top byte passes a chi-square test of uniformity.
    for values in (0, 10**9):
        config, shops, hub, _ = advance_to_inputs(coop10, f"r-uniform-{values}", length=8192, values=values)
        declare_dropped(shops, hub, "store-0004")
        view = what_the_hub_can_compute(config, hub, "store-0004")
        top = (view >> np.uint64(56)).astype(np.int64)
        assert stats.chisquare(np.bincount(top, minlength=256)).pvalue > ALPHA
        # Power check: only the self-mask stands between the hub and input + noise; with the seed (which the
        # honest shops never revealed) the same view is exactly that, and the same test rejects it.
        victim = shops["store-0004"]
        unmasked = view - self_mask(victim.seed, hub.tag, "store-0004", config.length)
        assert np.array_equal(unmasked.view(np.int64), values + victim.noise)
        top_unmasked = (unmasked >> np.uint64(56)).astype(np.int64)
        assert stats.chisquare(np.bincount(top_unmasked, minlength=256) + 1).pvalue < ALPHA


def test_adverts_signed_by_another_key_are_refused_by_hub_and_shops(coop10: Coop) -> None:
    _config, shops, hub = coop10.round("r-sig", 7)
    adverts = [shop.advertise() for shop in shops.values()]
    forged = dataclasses.replace(adverts[3], mask_public=AgreementKey().public_bytes).signed(IdentityKey())
    with pytest.raises(SecAggError, match="signature"):
        hub.receive_advert(forged)
    for advert in adverts:
        hub.receive_advert(advert)
    bundle = hub.advert_bundle()
    swapped = dataclasses.replace(bundle, adverts=(*bundle.adverts[:3], forged, *bundle.adverts[4:]))
    with pytest.raises(SecAggError, match="signature"):
        shops["store-0000"].share_keys(swapped)


def test_tampered_masked_input_and_tampered_or_misdirected_shares_are_refused(coop10: Coop) -> None:
    _config, shops, hub = coop10.round("r-tamper", 7)
    for shop in shops.values():
        hub.receive_advert(shop.advertise())
    bundle = hub.advert_bundle()
    for shop in shops.values():
        hub.receive_shares(shop.share_keys(bundle))
    deliveries = hub.deliveries()
    delivery = deliveries["store-0000"]
    first = delivery.shares[0]
    flipped = dataclasses.replace(first, ciphertext=bytes([first.ciphertext[0] ^ 1]) + first.ciphertext[1:])
    with pytest.raises(SecAggError, match="authentication"):
        shops["store-0000"].masked_input(dataclasses.replace(delivery, shares=(flipped,)), np.zeros(24, dtype=np.int64))
    # A share for store-0001 handed to store-0002 under the right name fails too (bound to both ends).
    other = deliveries["store-0001"].shares[1]
    readdressed = dataclasses.replace(other, recipient="store-0002")
    with pytest.raises(SecAggError):
        shops["store-0002"].masked_input(
            dataclasses.replace(deliveries["store-0002"], shares=(readdressed,)), np.zeros(24, dtype=np.int64)
        )
    masked = shops["store-0003"].masked_input(deliveries["store-0003"], np.zeros(24, dtype=np.int64))
    bent = dataclasses.replace(masked, vector=bytes([masked.vector[0] ^ 1]) + masked.vector[1:])
    with pytest.raises(SecAggError, match="signature"):
        hub.receive_masked_input(bent)


def test_messages_of_another_round_are_refused(coop10: Coop) -> None:
    _config_a, shops_a, hub_a = coop10.round("r-one", 7)
    _config_b, shops_b, hub_b = coop10.round("r-two", 7)
    old = shops_a["store-0001"].advertise()
    with pytest.raises(SecAggError, match="another round"):
        hub_b.receive_advert(old)
    # Rewriting the tag breaks the signature, which covers it.
    with pytest.raises(SecAggError, match="signature"):
        hub_b.receive_advert(dataclasses.replace(old, round_tag=hub_b.tag))
    for shop in shops_b.values():
        hub_b.receive_advert(shop.advertise())
    bundle_b = hub_b.advert_bundle()
    with pytest.raises(Refused, match="another round"):
        shops_b["store-0002"].share_keys(dataclasses.replace(bundle_b, round_tag=hub_a.tag))


def test_a_round_on_a_roster_with_a_swapped_key_is_refused(coop10: Coop) -> None:
    members = list(coop10.roster.members)
    members[5] = Member(members[5].shop_id, IdentityKey().public_bytes)  # the hub swaps one shop's key
    swapped = Roster(coop10.roster.coop, tuple(members))
    config = propose(swapped, "r-swap", 7, 24, 10**6, 1, Fraction(1, 8))
    with pytest.raises(Refused, match="roster"):
        ShopRound(
            coop10.keys["store-0000"], "store-0000", swapped, coop10.roster.digest(), config, WindowLedger(), POLICY
        )


def test_non_canonical_or_unknown_messages_do_not_decode(coop10: Coop) -> None:
    _config, shops, _ = coop10.round("r-codec", 7)
    data = shops["store-0000"].advertise().encode()
    assert decode(data).encode() == data
    with pytest.raises(SecAggError, match="canonical"):
        decode(data.replace(b",", b", ", 1))
    with pytest.raises(SecAggError):
        decode(data.replace(b'"kind":"key_advert"', b'"kind":"nope"'))
    with pytest.raises(SecAggError):
        decode(data[:-1] + b',"extra":1}')


def test_a_shop_revealing_a_wrong_seed_share_makes_the_round_abort_instead_of_lying(coop10: Coop) -> None:
    _config, shops, hub, _ = advance_to_inputs(coop10, "r-liar")
    key_share, seed_share = shops["store-0001"].held["store-0002"]
    shops["store-0001"].held["store-0002"] = (key_share, bytes(len(seed_share) - 1) + b"\x01")
    survivors = hub.survivors()
    for shop_id in survivors:
        hub.receive_survivor_signature(shops[shop_id].sign_survivors(survivors))
    request = hub.unmask_request()
    for shop_id in survivors:
        hub.receive_unmask_response(shops[shop_id].unmask(request))
    # Caught either as no 32-byte secret or as a seed that does not match the advertised commitment.
    with pytest.raises(RoundAborted, match="a shop lied"):
        hub.finish()


def test_a_shop_sharing_another_seed_than_it_committed_to_is_caught(coop10: Coop) -> None:
    _config, shops, hub = coop10.round("r-commit", 7)
    for shop in shops.values():
        hub.receive_advert(shop.advertise())
    shops["store-0002"].seed = bytes(32)  # shares (and masks with) a seed other than the committed one
    bundle = hub.advert_bundle()
    for shop in shops.values():
        hub.receive_shares(shop.share_keys(bundle))
    for shop_id, delivery in hub.deliveries().items():
        hub.receive_masked_input(shops[shop_id].masked_input(delivery, np.zeros(24, dtype=np.int64)))
    survivors = hub.survivors()
    for shop_id in survivors:
        hub.receive_survivor_signature(shops[shop_id].sign_survivors(survivors))
    request = hub.unmask_request()
    for shop_id in survivors:
        hub.receive_unmask_response(shops[shop_id].unmask(request))
    with pytest.raises(RoundAborted, match="commitment"):
        hub.finish()


def test_a_sealed_share_replayed_into_another_round_fails_authentication(coop10: Coop) -> None:
    rounds = []
    for round_id in ("r-old", "r-new"):
        _config, shops, hub = coop10.round(round_id, 7)
        for shop in shops.values():
            hub.receive_advert(shop.advertise())
        bundle = hub.advert_bundle()
        for shop in shops.values():
            hub.receive_shares(shop.share_keys(bundle))
        rounds.append((shops, hub.deliveries()))
    (_, old), (shops, new) = rounds
    replayed = dataclasses.replace(old["store-0000"].shares[0], round_tag=new["store-0000"].round_tag)
    forged = dataclasses.replace(new["store-0000"], shares=(replayed,))
    with pytest.raises(SecAggError, match="authentication"):
        shops["store-0000"].masked_input(forged, np.zeros(24, dtype=np.int64))


@pytest.mark.parametrize(
    "rho, colluders, policy, problem",
    [
        (Fraction(1, 2), 0, POLICY, "policy allows"),
        (Fraction(1, 8), 0, RoundPolicy(Fraction(1, 8), sensitivity=2), "sensitivity"),
        (Fraction(1, 8), 2, RoundPolicy(Fraction(1, 8), sensitivity=1, min_honest=7), "honest"),
    ],
)
def test_a_proposal_beyond_the_shops_policy_is_refused(
    coop10: Coop, rho: Fraction, colluders: int, policy: RoundPolicy, problem: str
) -> None:
    # The hub picks the round's parameters; each shop holds them to its own policy.
    config = propose(coop10.roster, "r-policy", 8, 24, 10**6, 1, rho, colluders=colluders)
    with pytest.raises(Refused, match=problem):
        ShopRound(
            coop10.keys["store-0000"],
            "store-0000",
            coop10.roster,
            coop10.roster.digest(),
            config,
            WindowLedger(),
            policy,
        )
