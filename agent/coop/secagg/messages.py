"""The messages of a round as plain frozen dataclasses, with one canonical JSON encoding for all of them.

Canonical JSON: sorted keys, no spaces, ASCII only, bytes as standard base64; the `kind` field names the
class. What a signature covers is the canonical encoding without its `signature` field, so a message
re-encoded anywhere (broker, hub, another shop) verifies the same. Every message carries the round tag
(a digest of the round's whole configuration, roster included): a message from another round, or from
the same round id under another roster or other parameters, fails the tag check before anything else.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from agent.coop.secagg.errors import SecAggError
from agent.coop.secagg.primitives import IdentityKey, digest, verify


def canonical(obj: object) -> bytes:
    """The canonical JSON bytes of a JSON-able object."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Message):
        return value.to_obj()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _from_json(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bytes:
        if not isinstance(value, str):
            raise SecAggError("expected base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise SecAggError("bad base64") from exc
    if hint in (str, int):
        if type(value) is not hint:
            raise SecAggError(f"expected {hint.__name__}, got {type(value).__name__}")
        return value
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, list):
            raise SecAggError("expected a list")
        return tuple(_from_json(inner, v) for v in value)
    if origin is dict:
        _key, inner = typing.get_args(hint)
        if not isinstance(value, dict):
            raise SecAggError("expected an object")
        return {_from_json(str, k): _from_json(inner, v) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Message):
        return hint.from_obj(value)
    raise SecAggError(f"cannot decode {hint!r}")  # pragma: no cover - a field type this codec lacks


_FIELDS: dict[type, tuple[dict[str, Any], frozenset[str]]] = {}


def _fields_of(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """Resolved field types and field names of a message class (resolved once per class)."""
    if cls not in _FIELDS:
        _FIELDS[cls] = typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls))
    return _FIELDS[cls]


class Message:
    """Base of every message: canonical encoding, decoding by kind, and signing of the body."""

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Message]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Message.registry[cls.kind] = cls

    def to_obj(self) -> dict[str, Any]:
        """A JSON-able dict of the fields plus `kind`."""
        obj = {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        obj["kind"] = self.kind
        return obj

    def encode(self) -> bytes:
        """The canonical JSON bytes (what travels over MQTT)."""
        return canonical(self.to_obj())

    @classmethod
    def from_obj(cls, obj: Any) -> Self:
        """Rebuild from a decoded JSON object; raise SecAggError on any missing, extra or mistyped field."""
        if not isinstance(obj, dict) or obj.get("kind") != cls.kind:
            raise SecAggError(f"not a {cls.kind} message")
        hints, names = _fields_of(cls)
        if set(obj) != names | {"kind"}:
            raise SecAggError(f"{cls.kind}: fields {sorted(set(obj) ^ (names | {'kind'}))} missing or unknown")
        return cls(**{name: _from_json(hints[name], obj[name]) for name in names})

    def body(self) -> bytes:
        """What a signature covers: the canonical encoding without the `signature` field."""
        obj = self.to_obj()
        obj.pop("signature", None)
        return canonical(obj)

    def signed(self, key: IdentityKey) -> Self:
        """A copy with `signature` set to `key`'s signature of the body."""
        return dataclasses.replace(self, signature=key.sign(self.kind, self.body()))  # type: ignore[type-var]

    def check_signature(self, public: bytes) -> None:
        """Raise SecAggError unless the message is signed by `public`."""
        verify(public, self.kind, self.body(), self.signature)  # type: ignore[attr-defined]


def decode(data: bytes) -> Message:
    """Parse canonical JSON bytes into the message class its `kind` names."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SecAggError("message is not JSON") from exc
    kind = obj.get("kind") if isinstance(obj, dict) else None
    cls = Message.registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SecAggError("message of unknown kind")
    message = cls.from_obj(obj)
    if message.encode() != data:
        raise SecAggError(f"{cls.kind} message is not in canonical form")
    return message


@dataclass(frozen=True)
class Member(Message):
    """One enrolled shop: its id and its Ed25519 identity public key."""

    kind: ClassVar[str] = "member"
    shop_id: str
    identity_public: bytes


@dataclass(frozen=True)
class Roster(Message):
    """The coop's enrolled shops; every shop pins its digest, so a swapped key changes every round tag."""

    kind: ClassVar[str] = "roster"
    coop: str
    members: tuple[Member, ...]

    def digest(self) -> bytes:
        """SHA-256 of the canonical roster."""
        return digest(self.encode())

    def key_of(self, shop_id: str) -> bytes:
        """The enrolled identity key of `shop_id`; SecAggError if it is not a member."""
        for member in self.members:
            if member.shop_id == shop_id:
                return member.identity_public
        raise SecAggError(f"{shop_id} is not on the roster")


@dataclass(frozen=True)
class RoundConfig(Message):
    """What the hub proposes for one round; its digest (the round tag) is bound into everything after."""

    kind: ClassVar[str] = "round_config"
    coop: str
    round_id: str
    roster_digest: bytes
    participants: tuple[str, ...]  # sorted shop ids; share x-coordinate = position + 1
    threshold: int  # least number of surviving shops whose sum may be unmasked
    neighbours: int  # 0: every pair masks and shares (SecAgg); k > 0: a random k-regular ring graph (SecAgg+)
    length: int  # entries in the vector
    value_bound: int  # |x_i| <= value_bound for every entry (enforced by the shop before masking)
    sensitivity: int  # L2 sensitivity of one shop's vector to one privacy unit (integer)
    rho_num: int  # the round's target zCDP rho for the sum = rho_num / rho_den
    rho_den: int
    colluders: int  # shops assumed to collude with the hub (their noise does not count)
    windows: tuple[str, ...]  # the windows this round covers (the differencing trap is per window)

    def tag(self) -> bytes:
        """The round tag: SHA-256 of the canonical configuration."""
        return digest(self.encode())

    def index_of(self, shop_id: str) -> int:
        """The 1-based share x-coordinate of a participant."""
        try:
            return self.participants.index(shop_id) + 1
        except ValueError as exc:
            raise SecAggError(f"{shop_id} is not a participant of round {self.round_id}") from exc


@dataclass(frozen=True)
class KeyAdvert(Message):
    """Round 0: a shop's two fresh X25519 public keys and a commitment to its seed, signed with its identity key.

    The commitment (a hash of a 32-byte random seed) lets the hub check a rebuilt seed, so a shop that sends
    wrong shares makes the round abort instead of silently corrupting the sum.
    """

    kind: ClassVar[str] = "key_advert"
    round_tag: bytes
    shop_id: str
    mask_public: bytes
    enc_public: bytes
    seed_commitment: bytes
    signature: bytes = b""


@dataclass(frozen=True)
class AdvertBundle(Message):
    """Hub to shops: every advert it received (each still signed by its shop)."""

    kind: ClassVar[str] = "advert_bundle"
    round_tag: bytes
    adverts: tuple[KeyAdvert, ...]


@dataclass(frozen=True)
class EncryptedShare(Message):
    """Round 1: one sender's shares (mask key, self-mask seed) for one recipient, sealed pairwise."""

    kind: ClassVar[str] = "encrypted_share"
    round_tag: bytes
    sender: str
    recipient: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class ShareBundle(Message):
    """A list of sealed shares: from one sender to the hub, or from the hub to one recipient."""

    kind: ClassVar[str] = "share_bundle"
    round_tag: bytes
    shop_id: str
    shares: tuple[EncryptedShare, ...]


@dataclass(frozen=True)
class MaskedInput(Message):
    """Round 2: the masked vector (little-endian uint64 words), signed."""

    kind: ClassVar[str] = "masked_input"
    round_tag: bytes
    shop_id: str
    vector: bytes
    signature: bytes = b""


@dataclass(frozen=True)
class SurvivorSignature(Message):
    """Round 3 (consistency check): a shop's signature over the survivor list it was shown."""

    kind: ClassVar[str] = "survivor_signature"
    round_tag: bytes
    shop_id: str
    survivors: tuple[str, ...]
    signature: bytes = b""


@dataclass(frozen=True)
class UnmaskRequest(Message):
    """Round 4: who survived and who dropped, with at least `threshold` shops' signatures over the survivors.

    `signatures` maps each signer to the signature of its SurvivorSignature over exactly these survivors.
    """

    kind: ClassVar[str] = "unmask_request"
    round_tag: bytes
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    signatures: dict[str, bytes]


@dataclass(frozen=True)
class UnmaskResponse(Message):
    """Round 4 answer: shares of survivors' self-mask seeds and of dropped shops' mask keys, never both for one peer."""

    kind: ClassVar[str] = "unmask_response"
    round_tag: bytes
    shop_id: str
    seed_shares: dict[str, bytes] = field(default_factory=dict)
    key_shares: dict[str, bytes] = field(default_factory=dict)
    signature: bytes = b""
