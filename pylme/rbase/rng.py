"""R's default random number generator, so that ``seed=`` means what ``set.seed`` means in R.

R's defaults are the Mersenne Twister for uniforms and inversion for normals. ``set.seed(s)``
scrambles ``s`` with the linear congruential step ``s <- 69069 s + 1`` (50 times, then once
per word) to fill the generator's 624-word state; ``unif_rand`` is the tempered 32-bit output
times 2^-32, kept inside (0, 1); ``norm_rand`` joins two uniforms into one of 2^27-times finer
resolution and inverts the normal distribution function. numpy's MT19937 is the same twister,
so with the state R would build it yields R's stream: ``simulate(fm, seed=1)`` and
``bootMer(fm, f, seed=1)`` draw exactly what lme4 draws after ``set.seed(1)``.
"""
from __future__ import annotations

import numpy as np

_MASK32 = 0xFFFFFFFF
_TWO_M32 = 2.3283064365386963e-10  # 2^-32, R's MT_genrand scale
_I2_32M1 = 2.328306437080797e-10  # 1 / (2^32 - 1), R's fixup margin
_BIG = 134217728.0  # 2^27


class RRandom:
    """A random stream identical to R's after ``set.seed(seed)`` (Mersenne-Twister, Inversion)."""

    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer, as for R's set.seed, not {seed!r}")
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": _r_seed_words(int(seed)), "pos": 624}}

    def runif(self, n: int) -> np.ndarray:
        """R's ``runif(n)``."""
        u = self._bits.random_raw(n).astype(np.float64) * _TWO_M32
        u[u <= 0.0] = 0.5 * _I2_32M1
        u[1.0 - u <= 0.0] = 1.0 - 0.5 * _I2_32M1
        return u

    def rnorm(self, n: int) -> np.ndarray:
        """R's ``rnorm(n)``: standard normal deviates by inversion, two uniforms per deviate."""
        from scipy.special import ndtri  # imported on first use: most fits draw nothing

        u = self.runif(2 * n).reshape(n, 2)
        return ndtri((np.floor(_BIG * u[:, 0]) + u[:, 1]) / _BIG)


def _r_seed_words(seed: int) -> np.ndarray:
    """The 624 state words R's ``set.seed(seed)`` puts into the Mersenne Twister."""
    s = seed & _MASK32
    for _ in range(50):
        s = (69069 * s + 1) & _MASK32
    words = np.empty(625, dtype=np.uint32)  # word 0 is R's position counter, then the state
    for j in range(625):
        s = (69069 * s + 1) & _MASK32
        words[j] = s
    return words[1:]
