"""The byte source of the exact samplers: `os.urandom` in whichever process draws (no numba here).

Kept apart from the numba kernels in `agent.privacy.bits` so that the resident agent can name a bit
source (and tests can pass a seeded one) without loading the JIT.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import numpy.typing as npt

from agent.errors import PrivacyError

Word32Array = npt.NDArray[np.uint32]
Int64Array = npt.NDArray[np.int64]  # what the samplers return; named here so callers need not import numba


class BitSource:
    """Random bytes for the samplers, read from the OS CSPRNG (`os.urandom`, i.e. getrandom).

    Subclasses override `read`; `words` checks the length of what came back, so a source that
    returns short (or raises) makes the sampler fail closed with PrivacyError.
    """

    def read(self, nbytes: int) -> bytes:
        """Return exactly `nbytes` bytes from the OS CSPRNG (blocks until it is seeded)."""
        return os.urandom(nbytes)

    def words(self, nwords: int) -> Word32Array:
        """Return `nwords` random uint32 words, or raise PrivacyError if the source came up short."""
        nbytes = 4 * nwords
        try:
            data = self.read(nbytes)
        except OSError as exc:
            raise PrivacyError(
                f"randomness source failed ({exc}); no noise drawn, nothing released; "
                "check that the OS entropy source (getrandom) is available"
            ) from exc
        if not isinstance(data, bytes | bytearray) or len(data) != nbytes:
            got = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
            raise PrivacyError(
                f"randomness source returned {got} bytes instead of {nbytes}; "
                "no noise drawn, nothing released; check the bit source"
            )
        return np.frombuffer(bytearray(data), dtype=np.uint32)


class DeterministicBitSource(BitSource):
    """TESTS ONLY: a reproducible byte stream (SHAKE-256 of seed and call counter).

    Anyone who knows the seed can subtract the noise, so this must never feed a release; it exists
    so unit tests can pin exact sampler outputs.
    """

    def __init__(self, seed_bytes: bytes) -> None:
        self._seed = bytes(seed_bytes)
        self._calls = 0

    def read(self, nbytes: int) -> bytes:
        """Return the next `nbytes` of the seeded stream (one SHAKE-256 output per call)."""
        block = hashlib.shake_256(self._seed + self._calls.to_bytes(8, "little")).digest(nbytes)
        self._calls += 1
        return block
