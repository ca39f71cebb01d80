"""The cryptographic building blocks, all from `cryptography` (OpenSSL): no home-made cipher.

- identity: Ed25519, one long-lived key per shop, enrolled with the coop (the roster);
- key agreement: X25519, two fresh key pairs per round (one for masks, one for encrypting shares);
- key derivation: HKDF-SHA256, with the round tag and both shop ids in `info`, so a key (and every mask
  or share it protects) is bound to one round of one roster;
- masks: the ChaCha20 keystream of a derived key, read as little-endian uint64 words (arithmetic mod 2**64);
- shares in transit: ChaCha20-Poly1305 with the round tag, sender and recipient as associated data.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.coop.secagg.errors import SecAggError

Vector = npt.NDArray[np.uint64]

#: Every signature, key derivation and associated data starts with this, so nothing here is valid elsewhere.
DOMAIN = b"shopkeeper/secagg/v1/"
_RAW = serialization.Encoding.Raw
_RAW_PUBLIC = serialization.PublicFormat.Raw
_RAW_PRIVATE = serialization.PrivateFormat.Raw
_NO_ENCRYPTION = serialization.NoEncryption()


def digest(*parts: bytes) -> bytes:
    """SHA-256 over length-prefixed parts (unambiguous concatenation)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


class IdentityKey:
    """A shop's long-lived Ed25519 signing key (the public half is on the coop's roster)."""

    def __init__(self, private: Ed25519PrivateKey | None = None) -> None:
        self._private = Ed25519PrivateKey.generate() if private is None else private

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte raw public key, as enrolled."""
        return self._private.public_key().public_bytes(_RAW, _RAW_PUBLIC)

    def sign(self, kind: str, body: bytes) -> bytes:
        """Sign `body` for message kind `kind` (domain-separated)."""
        return self._private.sign(DOMAIN + kind.encode() + b"\0" + body)


def verify(public: bytes, kind: str, body: bytes, signature: bytes) -> None:
    """Raise SecAggError unless `signature` is the enrolled key's signature of `body` for `kind`."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, DOMAIN + kind.encode() + b"\0" + body)
    except (InvalidSignature, ValueError) as exc:
        raise SecAggError(f"bad signature on a {kind} message") from exc


class AgreementKey:
    """A per-round X25519 key pair; the private half can be exported for Shamir sharing."""

    def __init__(self, private_bytes: bytes | None = None) -> None:
        raw = os.urandom(32) if private_bytes is None else private_bytes
        self._private = X25519PrivateKey.from_private_bytes(raw)
        self.private_bytes = self._private.private_bytes(_RAW, _RAW_PRIVATE, _NO_ENCRYPTION)
        self.public_bytes = self._private.public_key().public_bytes(_RAW, _RAW_PUBLIC)

    def agree(self, peer_public: bytes) -> bytes:
        """The raw X25519 shared secret with `peer_public` (refuses an all-zero result)."""
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError as exc:  # a low-order point gives an all-zero secret; OpenSSL refuses it
            raise SecAggError("peer advertised an invalid X25519 key") from exc


def derive_key(secret: bytes, purpose: str, round_tag: bytes, *ids: str) -> bytes:
    """A 32-byte key for `purpose`, bound to the round and the ids (HKDF-SHA256)."""
    info = digest(DOMAIN + purpose.encode(), round_tag, *(i.encode() for i in ids))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def expand_mask(key: bytes, length: int) -> Vector:
    """`length` pseudo-random uint64 words: the ChaCha20 keystream of `key` (zero nonce; keys are single-use)."""
    encryptor = Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None).encryptor()
    stream = encryptor.update(b"\0" * (8 * length))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> tuple[bytes, bytes]:
    """Encrypt and authenticate; returns (nonce, ciphertext)."""
    nonce = os.urandom(12)
    return nonce, ChaCha20Poly1305(key).encrypt(nonce, plaintext, DOMAIN + associated)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes:
    """Decrypt and check; raise SecAggError if the ciphertext or its context was altered."""
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, DOMAIN + associated)
    except (InvalidTag, ValueError) as exc:
        raise SecAggError("an encrypted share failed authentication (tampered, misdirected or replayed)") from exc
