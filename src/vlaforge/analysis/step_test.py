"""STEP: a near-optimal sequential test comparing two success rates (Snyder et al., RSS 2025).

The test watches the running success counts ``x`` (policy 0) and ``y`` (policy 1) after ``t`` pairs
of episodes and stops at the first pair where the state lies in the rejection region of a decision
table. The table is synthesised for ``(n_max, alpha)`` by dynamic programming over the joint
distribution of ``(x, y)`` under a grid of null hypotheses ``p0 = p1 = p`` plus one linear program per
``t`` that spends a linearly growing risk budget on as many rejecting states as possible. The test is
mirrored: the region for "y ahead" (``p0 < p1``) and its swap (``p0 > p1``) each get ``alpha / 2``
under the two-sided guarantee, or ``alpha`` each under the per-direction one (see
:mod:`vlaforge.analysis.guarantee`). Synthesis takes ~10 s of one core for ``n_max = 200`` (~100 s for
500), so tables are cached as ``.npz`` files under ``$VLAFORGE_CACHE`` (default ``~/.cache/vlaforge``) in
``step/``, keyed by everything that shapes them: guarantee, ``n_max``, ``alpha`` and the synthesis
version.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, vstack
from tqdm import tqdm

from vlaforge import storage
from vlaforge.analysis.guarantee import TWO_SIDED, check_guarantee, direction_alpha

log = logging.getLogger(__name__)

P0_LESS = "p0 < p1"
P0_GREATER = "p0 > p1"
UNDECIDED = "fail to decide"

N_CONTROL_POINTS = 129
# Bump when the synthesis changes: tables built by an older synthesis are then never reused.
SYNTHESIS_VERSION = 2
# A state whose probability under every control point is below this is unreachable: reject it for free.
_NEGLIGIBLE = 1e-300
# LP weights this close to 0 or 1 are rounded (HiGHS returns e.g. 0.9999999999).
_ROUND = 1e-9
# LP candidates: states whose rejection would cost at most this many times the remaining budget.
_MAX_COST_RATIO = 1e3
# LP cost entries below this fraction of the budget (divided by the number of variables) are dropped.
_DROP = 1e-9
# The version and every constant of the synthesis, in the cache key.
SYNTHESIS_KEY = f"v{SYNTHESIS_VERSION}-" + hashlib.sha256(repr(
    (N_CONTROL_POINTS, _NEGLIGIBLE, _ROUND, _MAX_COST_RATIO, _DROP)).encode()).hexdigest()[:8]


def dead_time(n_max: int) -> int:
    """No decision is taken before this many pairs (8 for ``n_max = 200``)."""
    return max(4, int(math.floor(math.log2(n_max))) + 1)


def risk_budget(t: int, n_max: int, alpha: float) -> float:
    """Cumulative false-positive probability the test may have spent after ``t`` pairs."""
    dead = dead_time(n_max)
    if t < dead:
        return 0.0
    return alpha * (t - dead + 1) / (n_max + 1 - dead)


def control_points(n_max: int, count: int = N_CONTROL_POINTS) -> np.ndarray:
    """Null success rates from ``1/n_max`` to ``1 - 1/n_max``, neighbours equally far apart in KL divergence.

    Equal spacing in ``arcsin(sqrt(p))`` (the Fisher-information metric of the Bernoulli family) gives
    neighbouring points equal KL divergence to first order; the grid is symmetric about 1/2.
    """
    lo = math.asin(math.sqrt(1.0 / n_max))
    theta = np.linspace(lo, math.pi / 2 - lo, count)
    return np.sin(theta) ** 2


@dataclass(frozen=True)
class StepTable:
    """The rejection region for "y ahead" (``p0 < p1``) after ``t`` pairs with ``x`` and ``y`` successes.

    ``alpha`` is the level of the pairwise test, spent as ``guarantee`` says. ``full[t, x]`` is the
    smallest ``y`` rejected with certainty (``t + 1`` when none); below it, the sorted ``frac_keys``
    (``(t * (n_max+1) + x) * (n_max+1) + y``) carry fractional rejection probabilities ``frac_probs``;
    every other state continues. The region for "x ahead" is its swap.
    """

    n_max: int
    alpha: float
    guarantee: str
    full: np.ndarray
    frac_keys: np.ndarray
    frac_probs: np.ndarray

    def reject_probability(self, t, x, y) -> np.ndarray:
        """Probability of rejecting towards ``p0 < p1`` in state ``(t, x, y)`` (arrays broadcast)."""
        t, x, y = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in (t, x, y)))
        prob = (y >= self.full[t, x]).astype(float)
        side = self.n_max + 1
        keys = (t * side + x) * side + y
        pos = np.searchsorted(self.frac_keys, keys)
        pos = np.minimum(pos, max(len(self.frac_keys) - 1, 0))
        if len(self.frac_keys):
            hit = self.frac_keys[pos] == keys
            prob = np.where(hit, self.frac_probs[pos], prob)
        return prob

    def region(self, t: int) -> np.ndarray:
        """Rejection probabilities towards ``p0 < p1`` for every state ``(x, y)`` after ``t`` pairs."""
        xs, ys = np.meshgrid(np.arange(t + 1), np.arange(t + 1), indexing="ij")
        return self.reject_probability(t, xs, ys)

    @property
    def key(self) -> tuple[str, int, float, str]:
        """What shapes the table: (guarantee, n_max, alpha, synthesis key)."""
        return self.guarantee, self.n_max, self.alpha, SYNTHESIS_KEY

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, synthesis=SYNTHESIS_KEY, guarantee=self.guarantee, n_max=self.n_max,
                            alpha=self.alpha, full=self.full, frac_keys=self.frac_keys, frac_probs=self.frac_probs)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str, key: tuple[str, int, float, str]) -> StepTable:
        """The table stored in ``data``, which must have been built for ``key`` (see :attr:`key`)."""
        try:
            with np.load(io.BytesIO(data)) as z:
                table = cls(int(z["n_max"]), float(z["alpha"]), str(z["guarantee"]), z["full"], z["frac_keys"],
                            z["frac_probs"])
                stored = (*table.key[:3], str(z["synthesis"]))
        except (ValueError, KeyError, OSError) as err:
            raise ValueError(f"{source}: unreadable STEP table: {err}") from err
        if stored != key:
            raise ValueError(f"{source}: STEP table built for (guarantee, n_max, alpha, synthesis) = {stored}, "
                             f"expected {key}; delete the file")
        return table


def _propagate(mass: np.ndarray, p: np.ndarray, t: int) -> None:
    """Advance the (control point, x, y) mass from ``t - 1`` to ``t`` pairs in place.

    One Bernoulli(p) draw for each policy: first along x, then along y.
    """
    p = p[:, None, None]
    q = 1.0 - p
    mass[:, 1:t + 1, :t] = q * mass[:, 1:t + 1, :t] + p * mass[:, :t, :t]
    mass[:, 0, :t] *= q[:, 0]
    mass[:, :t + 1, 1:t + 1] = q * mass[:, :t + 1, 1:t + 1] + p * mass[:, :t + 1, :t]
    mass[:, :t + 1, 0] *= q[:, 0]


def _solve_step(mass: np.ndarray, remaining: np.ndarray, t: int) -> np.ndarray:
    """Rejection weights ``w[x, y]`` for "y ahead" after ``t`` pairs, spending at most ``remaining`` per point.

    The LP maximises the number of rejected states subject to, per control point, new rejected mass
    <= remaining budget; a state and its mirror image ``(t - y, t - x)`` (both policies swapped and
    success swapped with failure) share one weight, and the region is monotone: more successes for
    policy 1 or fewer for policy 0 never turn a rejection into a continuation. Candidates are the states
    with ``y > x`` taken from the top (largest ``y - x``) of each row down to the first state that could
    be rejected with probability below ``1 / _MAX_COST_RATIO`` under some control point; states that
    no control point can reach are rejected for free.
    """
    ux, uy = np.triu_indices(t + 1, 1)  # the states with y > x
    own = mass[:, ux, uy]
    orbit_cost = np.where(ux + uy == t, own, own + mass[:, t - uy, t - ux])
    free = orbit_cost.max(axis=0) <= _NEGLIGIBLE
    with np.errstate(divide="ignore", invalid="ignore"):
        affordable = (orbit_cost / np.maximum(remaining, 0.0)[:, None]).max(axis=0) <= _MAX_COST_RATIO
    bad = np.zeros((t + 1, t + 1), dtype=bool)
    bad[ux, uy] = ~free & ~affordable
    # A state stays out when a state with fewer policy-0 and more policy-1 successes is out.
    blocked = np.logical_or.accumulate(np.logical_or.accumulate(bad, axis=0)[:, ::-1], axis=1)[:, ::-1][ux, uy]
    weights = np.zeros((t + 1, t + 1))
    weights[ux[free & ~blocked], uy[free & ~blocked]] = 1.0
    candidate = ~free & ~blocked
    canonical = candidate & (ux + uy <= t)
    cx, cy = ux[canonical], uy[canonical]
    n_var = len(cx)
    if n_var == 0:
        return weights
    cost = orbit_cost[:, canonical]
    index = np.full((t + 1, t + 1), -1)
    index[cx, cy] = np.arange(n_var)
    index[t - cy, t - cx] = np.arange(n_var)
    size = np.where(cx + cy == t, 1.0, 2.0)
    # Monotone region: w(x, y) <= w(x, y + 1) and w(x, y) <= w(x - 1, y).
    px, py = ux[candidate], uy[candidate]
    pairs = []
    for nx, ny in ((px, py + 1), (px - 1, py)):
        ok = (ny <= t) & (nx >= 0)
        j = index[px[ok], py[ok]]
        k = index[nx[ok], ny[ok]]
        keep = (k >= 0) & (k != j)
        pairs.append(np.stack([j[keep], k[keep]], axis=1))
    pairs = np.unique(np.concatenate(pairs), axis=0)
    n_rows = len(pairs)
    budget = np.maximum(remaining, 0.0)
    # A control point that could afford rejecting every candidate constrains nothing.
    binding = cost.sum(axis=1) > budget
    cost, budget = cost[binding], budget[binding]
    # Scale each risk row so that HiGHS's tolerances are relative to the budget, not absolute.
    scale = 1.0 / np.maximum(np.maximum(budget, cost.max(axis=1, initial=0.0)), 1e-300)
    scaled = cost * scale[:, None]
    # Entries this small cannot matter (all of them together shift a row by < 1e-9 of its budget); dropping
    # them keeps the LP sparse: each control point only weighs states near its own success rate.
    scaled[cost < _DROP * budget[:, None] / n_var] = 0.0
    a_ub = vstack([
        coo_matrix(scaled),
        coo_matrix((np.tile([1.0, -1.0], n_rows), (np.repeat(np.arange(n_rows), 2), pairs.ravel())),
                   shape=(n_rows, n_var)),
    ]).tocsr()
    b_ub = np.concatenate([budget * scale, np.zeros(n_rows)])
    log.debug("t=%d: %d LP variables, %d monotonicity rows", t, n_var, n_rows)
    res = linprog(-size, A_ub=a_ub, b_ub=b_ub, bounds=(0.0, 1.0), method="highs-ds")
    if res.status != 0:
        raise RuntimeError(f"STEP table synthesis: LP at t={t} failed: {res.message}")
    w = np.clip(res.x, 0.0, 1.0)
    w[w < _ROUND] = 0.0
    w[w > 1.0 - _ROUND] = 1.0
    weights[cx, cy] = w
    weights[t - cy, t - cx] = w
    # Remove violations of monotonicity within the LP tolerance (~1e-7): the smallest monotone majorant.
    return np.maximum.accumulate(np.maximum.accumulate(weights, axis=1)[::-1], axis=0)[::-1]


def synthesize(n_max: int, alpha: float, guarantee: str = TWO_SIDED, progress: bool = True) -> StepTable:
    """Build the mirrored STEP decision table for ``n_max`` pairs at level ``alpha`` spent as ``guarantee``
    says (``alpha / 2`` per direction for two-sided, ``alpha`` per direction for per-direction)."""
    if n_max < 1:
        raise ValueError(f"STEP: n_max must be >= 1, got {n_max}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"STEP: alpha must lie in (0, 1), got {alpha}")
    start = time.perf_counter()
    side_alpha = direction_alpha(alpha, guarantee)
    # The grid is symmetric about 1/2 and the region is mirror-symmetric, so the risk at 1 - p equals the
    # risk at p: the points p <= 1/2 carry every constraint.
    p = control_points(n_max)[:N_CONTROL_POINTS // 2 + 1]
    mass = np.zeros((len(p), n_max + 1, n_max + 1))
    mass[:, 0, 0] = 1.0
    spent = np.zeros(len(p))
    full = np.zeros((n_max + 1, n_max + 1), dtype=np.int16)
    for t in range(n_max + 1):
        full[t, :] = t + 1
    frac_keys: list[np.ndarray] = []
    frac_probs: list[np.ndarray] = []
    dead = dead_time(n_max)
    side = n_max + 1
    for t in tqdm(range(1, n_max + 1), desc=f"STEP table n_max={n_max} alpha={alpha:.3g} {guarantee}",
                  disable=not progress, leave=False):
        _propagate(mass, p, t)
        if t < dead:
            continue
        remaining = risk_budget(t, n_max, side_alpha) - spent
        w = _solve_step(mass[:, :t + 1, :t + 1], remaining, t)
        spent += np.einsum("kxy,xy->k", mass[:, :t + 1, :t + 1], w)
        # Remove the stopped mass of both sides: "y ahead" with weights w, "x ahead" with its swap.
        mass[:, :t + 1, :t + 1] *= (1.0 - w)[None] * (1.0 - w.T)[None]
        full[t, :t + 1] = t + 1 - (w >= 1.0).sum(axis=1)
        fx, fy = np.nonzero((w > 0.0) & (w < 1.0))
        frac_keys.append((t * side + fx) * side + fy)
        frac_probs.append(w[fx, fy])
    keys = np.concatenate(frac_keys).astype(np.int64) if frac_keys else np.zeros(0, dtype=np.int64)
    probs = np.concatenate(frac_probs) if frac_probs else np.zeros(0)
    order = np.argsort(keys)
    table = StepTable(n_max, alpha, guarantee, full, keys[order], probs[order])
    log.info("STEP table n_max=%d alpha=%.3g (%s) synthesised in %.1f s (worst-case risk per direction %.3g "
             "of %.3g)", n_max, alpha, guarantee, time.perf_counter() - start, spent.max(), side_alpha)
    return table


def cache_dir() -> str:
    root = os.environ.get("VLAFORGE_CACHE") or str(Path.home() / ".cache" / "vlaforge")
    return storage.join(root, "step")


def table_uri(n_max: int, alpha: float, guarantee: str = TWO_SIDED) -> str:
    """The cache file of the table for ``(guarantee, n_max, alpha)`` built by this synthesis."""
    return storage.join(cache_dir(), f"step_{check_guarantee(guarantee)}_nmax{n_max}_alpha{alpha:.10g}_"
                                     f"{SYNTHESIS_KEY}.npz")


_MEMORY: dict[tuple[str, int, float, str], StepTable] = {}


def get_table(n_max: int, alpha: float, guarantee: str = TWO_SIDED) -> StepTable:
    """The table for ``(guarantee, n_max, alpha)``: from memory, else the cache file, else synthesised and
    cached."""
    key = (check_guarantee(guarantee), int(n_max), float(alpha), SYNTHESIS_KEY)
    if key in _MEMORY:
        return _MEMORY[key]
    uri = table_uri(key[1], key[2], guarantee)
    if storage.exists(uri):
        table = StepTable.from_bytes(storage.read_bytes(uri), uri, key)
    else:
        table = synthesize(key[1], key[2], guarantee)
        storage.write_bytes(uri, table.to_bytes())
    _MEMORY[key] = table
    return table


def step_test(outcomes0, outcomes1, n_max: int, alpha: float, seed: int = 0,
              guarantee: str = TWO_SIDED) -> tuple[str, int]:
    """Run STEP on two paired outcome sequences; returns (decision, number of pairs used).

    The sequences are cut to the shorter length and to ``n_max``. A fractional rejection draws from a
    generator seeded with ``seed``, so a run is reproducible.
    """
    a = np.asarray(outcomes0, dtype=bool)
    b = np.asarray(outcomes1, dtype=bool)
    n = min(len(a), len(b), n_max)
    if n == 0:
        return UNDECIDED, 0
    table = get_table(n_max, alpha, guarantee)
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1)
    x = np.cumsum(a[:n])
    y = np.cumsum(b[:n])
    lead_y = table.reject_probability(t, np.minimum(x, y), np.maximum(x, y))
    for i in range(n):
        if x[i] == y[i]:
            continue
        prob = lead_y[i]
        if prob >= 1.0 or (prob > 0.0 and rng.random() < prob):
            return (P0_LESS if y[i] > x[i] else P0_GREATER), int(t[i])
    return UNDECIDED, n


def simulate(n_max: int, alpha: float, p0: float, p1: float, reps: int, seed: int = 0,
             guarantee: str = TWO_SIDED) -> dict[str, float]:
    """Monte-Carlo operating characteristics of STEP for true rates ``p0`` and ``p1``.

    Returns the fractions of runs deciding "p0 < p1" and "p0 > p1" and the mean number of pairs used.
    """
    table = get_table(n_max, alpha, guarantee)
    rng = np.random.default_rng(seed)
    x = np.zeros(reps, dtype=np.int64)
    y = np.zeros(reps, dtype=np.int64)
    decision = np.zeros(reps, dtype=np.int8)  # 0 running, 1 "p0 < p1", -1 "p0 > p1"
    used = np.full(reps, n_max)
    for t in range(1, n_max + 1):
        live = decision == 0
        x[live] += rng.random(live.sum()) < p0
        y[live] += rng.random(live.sum()) < p1
        prob = table.reject_probability(t, np.minimum(x, y), np.maximum(x, y))
        stop = live & (x != y) & (rng.random(reps) < prob)
        decision[stop] = np.where(y[stop] > x[stop], 1, -1)
        used[stop] = t
    return {"p0 < p1": float(np.mean(decision == 1)), "p0 > p1": float(np.mean(decision == -1)),
            "mean_pairs": float(used.mean())}


def exact_characteristics(n_max: int, alpha: float, p0: float, p1: float,
                          guarantee: str = TWO_SIDED) -> dict[str, float]:
    """Exact probabilities of each decision and the expected number of pairs, by dynamic programming over
    the test's decision regions."""
    table = get_table(n_max, alpha, guarantee)
    mass = np.zeros((n_max + 1, n_max + 1))
    mass[0, 0] = 1.0
    decided = {P0_LESS: 0.0, P0_GREATER: 0.0}
    expected_pairs = 0.0
    for t in range(1, n_max + 1):
        old = mass[:t, :t].copy()
        mass[:t + 1, :t + 1] = 0.0
        mass[:t, :t] += (1 - p0) * (1 - p1) * old
        mass[1:t + 1, :t] += p0 * (1 - p1) * old
        mass[:t, 1:t + 1] += (1 - p0) * p1 * old
        mass[1:t + 1, 1:t + 1] += p0 * p1 * old
        w = table.region(t)
        less, greater = mass[:t + 1, :t + 1] * w, mass[:t + 1, :t + 1] * w.T
        decided[P0_LESS] += less.sum()
        decided[P0_GREATER] += greater.sum()
        expected_pairs += t * (less.sum() + greater.sum())
        mass[:t + 1, :t + 1] -= less + greater
    expected_pairs += n_max * mass.sum()
    return {**{k: float(v) for k, v in decided.items()}, "mean_pairs": float(expected_pairs)}
