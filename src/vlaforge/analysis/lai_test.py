"""Lai's (1988) sequential test of ``p0 = p1`` for long comparisons (``n_max > 500``).

Only discordant pairs (exactly one policy succeeded) carry information. With ``n_d`` discordant pairs of
which ``k`` favour policy 1, ``p_hat = k / n_d`` and the test stops when
``n_d * KL(p_hat || 1/2) >= g(c * n_d)``; the sign of ``p_hat - 1/2`` gives the direction. ``g`` has
Lai's small-``t`` form ``log(1/t) + 1/2 log log(1/t)`` and decreases to 0 for large ``t``. The constant
``c`` is calibrated per ``(n_max, alpha)`` by an exact dynamic program over the symmetric random walk of
discordant pairs (the worst null, ``p0 = p1 = 1/2``), so that the two-sided false-positive rate is at most
``alpha``. Calibration takes about a second; the constant is cached beside the STEP tables.
"""

from __future__ import annotations

import functools
import json

import numpy as np
from scipy.special import xlogy
from scipy.stats import binom

from vlaforge import storage
from vlaforge.analysis.step_test import P0_GREATER, P0_LESS, UNDECIDED, cache_dir


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


def false_positive_rate(c: float, n_max: int) -> float:
    """Exact two-sided rejection probability under ``p0 = p1 = 1/2`` within ``n_max`` pairs."""
    walk = np.zeros(n_max + 2)
    walk[0] = 1.0
    stopped_by = np.zeros(n_max + 1)  # probability of having rejected within n_d discordant pairs
    low = _low_rejections(c, n_max)
    for n_d in range(1, n_max + 1):
        walk[1:n_d + 1] = 0.5 * walk[1:n_d + 1] + 0.5 * walk[:n_d]
        walk[0] *= 0.5
        r = low[n_d]
        hit = 0.0
        if r >= 0:
            hit = walk[:r + 1].sum() + walk[n_d - r:n_d + 1].sum()
            walk[:r + 1] = 0.0
            walk[n_d - r:n_d + 1] = 0.0
        stopped_by[n_d] = stopped_by[n_d - 1] + hit
    # Among n_max pairs, the number of discordant ones is Binomial(n_max, 2 p (1 - p)) <= Binomial(n_max, 1/2).
    return float(np.dot(binom.pmf(np.arange(n_max + 1), n_max, 0.5), stopped_by))


def calibrate(n_max: int, alpha: float) -> float:
    """The largest ``c`` (to 0.1 % in log scale) whose false-positive rate is at most ``alpha``."""
    if n_max < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"Lai test: need n_max >= 1 and 0 < alpha < 1, got n_max={n_max}, alpha={alpha}")
    lo, hi = np.log(1e-12 / n_max), np.log(1e6 / n_max)
    while hi - lo > 1e-3:
        mid = 0.5 * (lo + hi)
        if false_positive_rate(float(np.exp(mid)), n_max) <= alpha:
            lo = mid
        else:
            hi = mid
    return float(np.exp(lo))


def constant_uri(n_max: int, alpha: float) -> str:
    return storage.join(cache_dir(), f"lai_nmax{n_max}_alpha{alpha:.10g}.json")


@functools.lru_cache(maxsize=64)
def get_constant(n_max: int, alpha: float) -> float:
    """The calibrated ``c`` for ``(n_max, alpha)``: from memory, else the cache file, else calibrated and cached."""
    uri = constant_uri(n_max, alpha)
    if storage.exists(uri):
        try:
            return float(json.loads(storage.read_text(uri))["c"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{uri}: unreadable Lai constant: {err}") from err
    c = calibrate(n_max, alpha)
    storage.write_text(uri, json.dumps({"n_max": n_max, "alpha": alpha, "c": c}))
    return c


def lai_test(outcomes0, outcomes1, n_max: int, alpha: float) -> tuple[str, int]:
    """Run Lai's test on two paired outcome sequences; returns (decision, number of pairs used)."""
    a = np.asarray(outcomes0, dtype=bool)
    b = np.asarray(outcomes1, dtype=bool)
    n = min(len(a), len(b), n_max)
    if n == 0:
        return UNDECIDED, 0
    c = get_constant(int(n_max), float(alpha))
    a, b = a[:n], b[:n]
    n_d = np.cumsum(a != b)
    k = np.cumsum(b & ~a)
    stop = (n_d > 0) & (kl_from_half(k, n_d) >= boundary(c * np.maximum(n_d, 1)))
    hits = np.nonzero(stop)[0]
    if len(hits) == 0:
        return UNDECIDED, n
    i = int(hits[0])
    return (P0_LESS if 2 * k[i] > n_d[i] else P0_GREATER), i + 1
