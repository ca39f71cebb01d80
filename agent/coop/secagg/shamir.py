"""t-of-n Shamir secret sharing over the prime field GF(2**521 - 1).

Sharing is arithmetic, not a cipher: a random polynomial of degree t-1 whose constant term is the secret,
evaluated at x = 1..n; any t points give the secret back by Lagrange interpolation at 0, and t-1 points
are independent of it (information-theoretic). The field is the Mersenne prime 2**521 - 1, large enough
for the 32-byte secrets this protocol shares (X25519 private keys, self-mask seeds) in one piece.

Why not pycryptodome's `Crypto.Protocol.SecretSharing.Shamir`: it shares 16-byte secrets over GF(2**128),
so every 32-byte key would be split in two, and its `combine` rebuilds the Lagrange basis in pure Python
for every secret. The hub reconstructs one seed per surviving shop from the *same* set of responders, so
here the basis is computed once per responder set (`lagrange_at_zero`) and each secret is a dot product.
Coefficients come from `secrets` (os.urandom).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from agent.coop.secagg.errors import SecAggError

PRIME = (1 << 521) - 1
SHARE_BYTES = 66  # ceil(521 / 8)
SECRET_BYTES = 32


@dataclass(frozen=True)
class Share:
    """One point (x, y) of a sharing polynomial; x is the holder's 1-based index in the round."""

    x: int
    y: int

    def y_bytes(self) -> bytes:
        """The y coordinate as fixed-length big-endian bytes."""
        return self.y.to_bytes(SHARE_BYTES, "big")


def split(secret: bytes, threshold: int, xs: Sequence[int]) -> list[Share]:
    """Share a 32-byte `secret` so that any `threshold` of the points at `xs` recover it."""
    if len(secret) != SECRET_BYTES:
        raise SecAggError(f"a shared secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(xs):
        raise SecAggError(f"threshold {threshold} must be between 1 and the number of holders ({len(xs)})")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise SecAggError("share points must be distinct and non-zero")
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares = []
    for x in xs:
        y = 0
        for c in reversed(coefficients):  # Horner
            y = (y * x + c) % PRIME
        shares.append(Share(x, y))
    return shares


def lagrange_at_zero(xs: Sequence[int]) -> list[int]:
    """Lagrange coefficients l_i with f(0) = sum l_i f(x_i) for any polynomial of degree < len(xs)."""
    if len(set(xs)) != len(xs):
        raise SecAggError("duplicate share points")
    numerator = 1
    for x in xs:
        numerator = numerator * (-x) % PRIME
    coefficients = []
    for i, xi in enumerate(xs):
        denominator = -xi  # the (0 - x_i) factor removed from the common numerator
        for j, xj in enumerate(xs):
            if j != i:
                denominator = denominator * (xi - xj) % PRIME
        coefficients.append(numerator * pow(denominator % PRIME, -1, PRIME) % PRIME)
    return coefficients


def combine(shares: Sequence[Share], threshold: int, basis: Sequence[int] | None = None) -> bytes:
    """Recover the secret from the first `threshold` shares (pass `basis` from lagrange_at_zero to reuse it)."""
    if len(shares) < threshold:
        raise SecAggError(f"{len(shares)} shares cannot recover a secret shared {threshold}-of-n")
    used = shares[:threshold]
    weights = lagrange_at_zero([s.x for s in used]) if basis is None else basis
    value = sum(w * s.y for w, s in zip(weights, used, strict=True)) % PRIME
    if value >= 1 << (8 * SECRET_BYTES):
        raise SecAggError("shares do not interpolate to a 32-byte secret (corrupt or mixed shares)")
    return value.to_bytes(SECRET_BYTES, "big")
