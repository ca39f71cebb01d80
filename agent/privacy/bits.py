"""Random bits for the exact samplers: the byte source (Python) and the bit-level kernels (numba).

Every random bit the samplers use is drawn here. The Python side fills a uint32 buffer from
`os.urandom` (getrandom; blocks until the kernel pool is seeded, which is the intended behaviour at
boot). Kernels read it bit by bit through a small int64 state vector; when the buffer runs dry in
the middle of a draw they set an error code instead of inventing bits, and the caller fails closed.

The Bernoulli kernels are CKS20 (Canonne, Kamath, Steinke 2020, arXiv 2004.00010) Algorithm 1:
Bernoulli(exp(-gamma)) for rational gamma from Bernoulli(n/d) draws only, and Bernoulli(n/d) is a
uniform integer below d (by rejection) compared with n. Integer arithmetic only; every product is
checked against `PRODUCT_LIMIT` before it is formed.
"""

from __future__ import annotations

import os  # noqa: F401 - tests patch bits.os.urandom; the read itself is in bit_source

import numpy as np

from agent.kernels.numba_shim import njit

# The byte source lives in bit_source (no numba there); re-exported for the samplers' old imports.
from agent.privacy.bit_source import BitSource, DeterministicBitSource, Int64Array, Word32Array  # noqa: F401

#: No intermediate product in a kernel may exceed this (int64 max is 2**63 - 1).
PRODUCT_LIMIT = 1 << 62

# Layout of the int64 state vector the kernels share: next unread word, reservoir of unread bits,
# number of bits in the reservoir, error code.
STATE_WORD = 0
STATE_RESERVOIR = 1
STATE_AVAILABLE = 2
STATE_ERROR = 3
STATE_SIZE = 4

#: Error codes a kernel can leave in `state[STATE_ERROR]`.
ERROR_NONE = 0
ERROR_OUT_OF_BITS = 1
ERROR_BOUND = 2


def new_state() -> Int64Array:
    """A fresh kernel state vector: start of the buffer, empty reservoir, no error."""
    return np.zeros(STATE_SIZE, dtype=np.int64)


@njit
def take_bits(buf: Word32Array, state: Int64Array, nbits: int) -> int:
    """Return the next `nbits` (1..31) random bits as an int; on an empty buffer flag the error."""
    available = state[STATE_AVAILABLE]
    reservoir = state[STATE_RESERVOIR]
    if available < nbits:
        word = state[STATE_WORD]
        if word >= buf.shape[0]:
            state[STATE_ERROR] = ERROR_OUT_OF_BITS
            return 0
        # available <= 30 here, so the reservoir stays below 2**62.
        reservoir |= np.int64(buf[word]) << available
        state[STATE_WORD] = word + 1
        available += 32
    value = reservoir & ((1 << nbits) - 1)
    state[STATE_RESERVOIR] = reservoir >> nbits
    state[STATE_AVAILABLE] = available - nbits
    return value


@njit
def draw_bits(buf: Word32Array, state: Int64Array, nbits: int) -> int:
    """Return the next `nbits` (1..62) random bits as a non-negative int."""
    if nbits <= 31:
        return take_bits(buf, state, nbits)
    low = take_bits(buf, state, 31)
    high = take_bits(buf, state, nbits - 31)
    return low | (high << 31)


@njit
def draw_uniform_below(buf: Word32Array, state: Int64Array, bound: int) -> int:
    """Return a uniform integer in [0, bound) for 1 <= bound <= 2**62, by rejection on bit_length bits."""
    if bound == 1:
        return 0
    nbits = 0
    rest = bound - 1
    while rest > 0:
        rest >>= 1
        nbits += 1
    while True:
        value = draw_bits(buf, state, nbits)
        if state[STATE_ERROR] != ERROR_NONE:
            return 0
        if value < bound:
            return value


@njit
def draw_bernoulli_exp_fraction(buf: Word32Array, state: Int64Array, num: int, den: int) -> int:
    """Return 1 with probability exp(-num/den) for 0 <= num <= den (CKS20 Alg. 1, gamma in [0, 1]).

    K counts Bernoulli(gamma/K) successes until the first failure; P(K odd) = exp(-gamma).
    """
    if num == 0:
        return 1
    k = 1
    while True:
        if den > PRODUCT_LIMIT // k:
            state[STATE_ERROR] = ERROR_BOUND
            return 0
        success = draw_uniform_below(buf, state, den * k) < num
        if state[STATE_ERROR] != ERROR_NONE:
            return 0
        if not success:
            return k & 1
        k += 1


@njit
def draw_bernoulli_exp(buf: Word32Array, state: Int64Array, num: int, den: int) -> int:
    """Return 1 with probability exp(-num/den) for num >= 0, den >= 1 (CKS20 Alg. 1, any gamma)."""
    whole = num // den
    for _ in range(whole):
        if draw_bernoulli_exp_fraction(buf, state, 1, 1) == 0:
            return 0
    return draw_bernoulli_exp_fraction(buf, state, num - whole * den, den)
