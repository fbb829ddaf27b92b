"""A seeded pseudo-random permutation of range(n), computed per index in O(1) memory.

Shuffling a billion examples with a permutation table would take 8 GB per process; instead a
4-round Feistel network permutes the smallest even power of two ≥ n, and "cycle walking"
re-applies it to values that land outside range(n) (at most a few times: the domain is < 4n).
A bijection on the domain stays a bijection on range(n) this way.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 4
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a cheap, well-spread hash of 64-bit integers."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


class Permutation:
    def __init__(self, n: int, seed: int | list[int]):
        self.n = n
        bits = max(2, (max(n, 1) - 1).bit_length())
        self.half = np.uint64((bits + 1) // 2)
        self.low = np.uint64((1 << int(self.half)) - 1)
        self.keys = np.random.default_rng(seed).integers(0, 2**63, size=ROUNDS, dtype=np.uint64)

    def _round_trip(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.low
        for key in self.keys:
            left, right = right, left ^ (_mix(right ^ key) & self.low)
        return (left << self.half) | right

    def __call__(self, index) -> np.ndarray:
        x = np.atleast_1d(np.asarray(index, dtype=np.uint64))
        if self.n <= 1:
            return x.astype(np.int64)
        with np.errstate(over="ignore"):
            x = self._round_trip(x)
            outside = x >= self.n
            while outside.any():
                x[outside] = self._round_trip(x[outside])
                outside = x >= self.n
        return x.astype(np.int64)
