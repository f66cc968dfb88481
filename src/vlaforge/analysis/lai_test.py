"""Lai's (1988) sequential test of ``p0 = p1`` for long comparisons (``n_max > 500``).

Only discordant pairs (exactly one policy succeeded) carry information. With ``n_d`` discordant pairs of
which ``k`` favour policy 1, ``p_hat = k / n_d`` and the test stops when
``n_d * KL(p_hat || 1/2) >= g(c * n_d)``; the sign of ``p_hat - 1/2`` gives the direction. ``g`` has
Lai's small-``t`` form ``log(1/t) + 1/2 log log(1/t)`` and decreases to 0 for large ``t``. The constant
``c`` is calibrated per ``(guarantee, n_max, alpha)`` by an exact dynamic program over the symmetric random
walk of discordant pairs:

- two-sided: the rate of any false decision is at most ``alpha`` under the worst null ``p0 = p1 = 1/2``,
  whose number of discordant pairs among ``n_max`` is Binomial(n_max, 1/2);
- per-direction: each direction's false-decision rate is at most ``alpha`` even if every one of the
  ``n_max`` pairs is discordant. This is the calibration that reproduces the reference's decisions (it
  decides the shared test vector at the reference's pair 13; per direction over Binomial(n_max, 1/2)
  discordant pairs would decide at pair 12).

Calibration takes about a second; the constant is cached beside the STEP tables.
"""

from __future__ import annotations

import functools
import json

import numpy as np
from scipy.special import xlogy
from scipy.stats import binom

from vlaforge import storage
from vlaforge.analysis.guarantee import TWO_SIDED, check_guarantee
from vlaforge.analysis.step_test import P0_GREATER, P0_LESS, UNDECIDED, cache_dir

# Bump when the calibration changes: constants from an older calibration are then never reused.
CALIBRATION_VERSION = 2


def boundary(t: np.ndarray) -> np.ndarray:
    """Lai's boundary ``g(t)``: ~ ``log(1/t) + 1/2 log log(1/t)`` as ``t -> 0``, decreasing to 0."""
    u = np.log1p(1.0 / np.asarray(t, dtype=float))
    return u + 0.5 * np.log1p(u)


def kl_from_half(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``n * KL(k/n || 1/2)`` in nats (0 where ``n = 0``)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    return xlogy(k, 2 * k / np.maximum(n, 1)) + xlogy(n - k, 2 * (n - k) / np.maximum(n, 1))


def _low_rejections(c: float, n_max: int) -> np.ndarray:
    """For each ``n_d`` in ``0..n_max``, the largest ``k <= n_d/2`` that rejects (-1 when none).

    ``n_d * KL(k/n_d || 1/2)`` falls as ``k`` rises to ``n_d/2``, so rejections are ``k <= r`` and,
    by symmetry, ``k >= n_d - r``.
    """
    n = np.arange(n_max + 1, dtype=float)
    g = boundary(c * np.maximum(n, 1))
    lo, hi = np.zeros_like(n), np.full_like(n, 0.5)
    for _ in range(60):  # bisection on the proportion p where n * KL(p || 1/2) = g
        mid = 0.5 * (lo + hi)
        above = kl_from_half(mid * n, n) >= g
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    r = np.floor(lo * n)
    r = np.where(kl_from_half(r, n) >= g, r, r - 1)
    r = np.where((r + 1 <= n / 2) & (kl_from_half(r + 1, n) >= g), r + 1, r)
    r[(r < 0) | (2 * r >= n)] = -1
    return r.astype(int)


def discordant_walk(c: float, n_max: int, favour1: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative probabilities of having decided "p0 < p1" and "p0 > p1" within ``n_d = 0..n_max``
    discordant pairs, when each discordant pair favours policy 1 with probability ``favour1``."""
    walk = np.zeros(n_max + 2)  # walk[k]: still undecided with k of the discordant pairs favouring policy 1
    walk[0] = 1.0
    less, greater = np.zeros(n_max + 1), np.zeros(n_max + 1)
    low = _low_rejections(c, n_max)
    for n_d in range(1, n_max + 1):
        walk[1:n_d + 1] = (1.0 - favour1) * walk[1:n_d + 1] + favour1 * walk[:n_d]
        walk[0] *= 1.0 - favour1
        r = low[n_d]
        up = down = 0.0
        if r >= 0:
            down, up = walk[:r + 1].sum(), walk[n_d - r:n_d + 1].sum()
            walk[:r + 1] = 0.0
            walk[n_d - r:n_d + 1] = 0.0
        less[n_d], greater[n_d] = less[n_d - 1] + up, greater[n_d - 1] + down
    return less, greater


def false_positive_rate(c: float, n_max: int, guarantee: str = TWO_SIDED) -> float:
    """Exact false-decision probability within ``n_max`` pairs that ``guarantee`` bounds by alpha.

    Two-sided: either direction, under ``p0 = p1 = 1/2`` (among ``n_max`` pairs the number of discordant
    ones is Binomial(n_max, 2 p (1 - p)) <= Binomial(n_max, 1/2)). Per-direction: one direction (both are
    equal by symmetry), with all ``n_max`` pairs discordant.
    """
    less, greater = discordant_walk(c, n_max)
    if check_guarantee(guarantee) == TWO_SIDED:
        return float(np.dot(binom.pmf(np.arange(n_max + 1), n_max, 0.5), less + greater))
    return float(less[n_max])


def calibrate(n_max: int, alpha: float, guarantee: str = TWO_SIDED) -> float:
    """The largest ``c`` (to 0.1 % in log scale) whose false-positive rate is at most ``alpha``."""
    if n_max < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"Lai test: need n_max >= 1 and 0 < alpha < 1, got n_max={n_max}, alpha={alpha}")
    lo, hi = np.log(1e-12 / n_max), np.log(1e6 / n_max)
    while hi - lo > 1e-3:
        mid = 0.5 * (lo + hi)
        if false_positive_rate(float(np.exp(mid)), n_max, guarantee) <= alpha:
            lo = mid
        else:
            hi = mid
    return float(np.exp(lo))


def constant_uri(n_max: int, alpha: float, guarantee: str = TWO_SIDED) -> str:
    return storage.join(cache_dir(), f"lai_{check_guarantee(guarantee)}_nmax{n_max}_alpha{alpha:.10g}_"
                                     f"v{CALIBRATION_VERSION}.json")


@functools.lru_cache(maxsize=64)
def get_constant(n_max: int, alpha: float, guarantee: str = TWO_SIDED) -> float:
    """The calibrated ``c`` for ``(guarantee, n_max, alpha)``: from memory, else the cache file, else
    calibrated and cached."""
    uri = constant_uri(n_max, alpha, guarantee)
    key = {"guarantee": guarantee, "n_max": n_max, "alpha": alpha, "version": CALIBRATION_VERSION}
    if storage.exists(uri):
        try:
            doc = json.loads(storage.read_text(uri))
            stored = {k: doc[k] for k in key}
            c = float(doc["c"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{uri}: unreadable Lai constant: {err}") from err
        if stored != key:
            raise ValueError(f"{uri}: Lai constant calibrated for {stored}, expected {key}; delete the file")
        return c
    c = calibrate(n_max, alpha, guarantee)
    storage.write_text(uri, json.dumps({**key, "c": c}))
    return c


def exact_characteristics(n_max: int, alpha: float, p0: float, p1: float,
                          guarantee: str = TWO_SIDED) -> dict[str, float]:
    """Exact probabilities of each decision and the expected number of pairs for true rates ``p0``, ``p1``.

    A pair is discordant with probability ``q = p0 (1 - p1) + p1 (1 - p0)`` and then favours policy 1
    with probability ``p1 (1 - p0) / q``: the walk of discordant pairs gives the decision after each
    number of them, and the Binomial number of discordant pairs among the first ``t`` pairs maps that to
    pairs.
    """
    q = p0 * (1 - p1) + p1 * (1 - p0)
    if q == 0.0:
        return {P0_LESS: 0.0, P0_GREATER: 0.0, "mean_pairs": float(n_max)}
    less, greater = discordant_walk(get_constant(int(n_max), float(alpha), guarantee), n_max, p1 * (1 - p0) / q)
    undecided = 1.0 - less - greater
    discordant = np.zeros(n_max + 1)  # distribution of the number of discordant pairs among the first t
    discordant[0] = 1.0
    mean_pairs = 0.0  # E[pairs used] = sum over t < n_max of P(undecided after t pairs)
    for t in range(n_max):
        mean_pairs += float(np.dot(discordant[:t + 1], undecided[:t + 1]))
        discordant[1:t + 2] = (1 - q) * discordant[1:t + 2] + q * discordant[:t + 1]
        discordant[0] *= 1 - q
    return {P0_LESS: float(np.dot(discordant, less)), P0_GREATER: float(np.dot(discordant, greater)),
            "mean_pairs": mean_pairs}


def lai_test(outcomes0, outcomes1, n_max: int, alpha: float, guarantee: str = TWO_SIDED) -> tuple[str, int]:
    """Run Lai's test on two paired outcome sequences; returns (decision, number of pairs used)."""
    a = np.asarray(outcomes0, dtype=bool)
    b = np.asarray(outcomes1, dtype=bool)
    n = min(len(a), len(b), n_max)
    if n == 0:
        return UNDECIDED, 0
    c = get_constant(int(n_max), float(alpha), guarantee)
    a, b = a[:n], b[:n]
    n_d = np.cumsum(a != b)
    k = np.cumsum(b & ~a)
    stop = (n_d > 0) & (kl_from_half(k, n_d) >= boundary(c * np.maximum(n_d, 1)))
    hits = np.nonzero(stop)[0]
    if len(hits) == 0:
        return UNDECIDED, n
    i = int(hits[0])
    return (P0_LESS if 2 * k[i] > n_d[i] else P0_GREATER), i + 1
