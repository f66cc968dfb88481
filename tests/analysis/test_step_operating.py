"""Error rates of the sequential tests under both guarantees (exact, by dynamic programming over the decision
regions, and simulated) and their caches."""

import math
import os

import numpy as np
import pytest

from vlaforge.analysis import lai_test as lai
from vlaforge.analysis import step_test
from vlaforge.analysis.guarantee import PER_DIRECTION, TWO_SIDED
from vlaforge.analysis.lai_test import false_positive_rate, get_constant, lai_test
from vlaforge.analysis.step_test import (dead_time, exact_characteristics, get_table, risk_budget, simulate,
                                         step_test as run_step, table_uri)

N_MAX, ALPHA, REPS = 200, 0.05, 3000


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.8, 0.95])
def test_false_positive_rate_at_most_alpha(p):
    rates = simulate(N_MAX, ALPHA, p, p, REPS, seed=int(p * 100))
    wrong = rates["p0 < p1"] + rates["p0 > p1"]
    # Three standard errors of a binomial proportion at alpha: the test must not exceed it.
    assert wrong <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS), rates
    # Mirrored: each direction gets about half of the errors (loosely, Monte-Carlo noise).
    assert abs(rates["p0 < p1"] - rates["p0 > p1"]) <= 4 * math.sqrt(ALPHA / REPS)


def test_power_against_clear_difference():
    rates = simulate(N_MAX, ALPHA, 0.5, 0.8, 500, seed=1)
    assert rates["p0 < p1"] > 0.9
    assert rates["p0 > p1"] < 0.01
    assert rates["mean_pairs"] < N_MAX / 2


def test_dead_time_and_budget():
    assert dead_time(200) == 8
    assert risk_budget(7, 200, ALPHA) == 0.0
    assert risk_budget(200, 200, ALPHA) == pytest.approx(ALPHA)


def test_table_is_cached_as_a_file_and_reused(monkeypatch):
    n_max = 30
    table = get_table(n_max, ALPHA)
    uri = table_uri(n_max, ALPHA)
    assert os.path.isfile(uri) and uri.startswith(os.environ["VLAFORGE_CACHE"])
    step_test._MEMORY.clear()

    def refuse(*args, **kwargs):
        raise AssertionError("the cached table should have been used")

    monkeypatch.setattr(step_test, "synthesize", refuse)
    again = get_table(n_max, ALPHA)
    assert np.array_equal(again.full, table.full) and np.array_equal(again.frac_probs, table.frac_probs)


def test_cache_key_holds_everything_that_shapes_a_table(monkeypatch):
    n_max = 30
    uris = {table_uri(n, a, g) for n in (30, 31) for a in (0.05, 0.1) for g in (TWO_SIDED, PER_DIRECTION)}
    assert len(uris) == 8
    # Per direction at alpha is the two-sided synthesis at 2 alpha, yet each guarantee keeps its own file.
    per = get_table(n_max, ALPHA, PER_DIRECTION)
    assert np.array_equal(per.full, get_table(n_max, 2 * ALPHA, TWO_SIDED).full)
    assert not np.array_equal(per.full, get_table(n_max, ALPHA, TWO_SIDED).full)
    assert os.path.isfile(table_uri(n_max, ALPHA, PER_DIRECTION))
    # A table stored under another guarantee's name is refused, not reused.
    step_test._MEMORY.clear()
    with open(table_uri(n_max, ALPHA, PER_DIRECTION), "rb") as f:
        data = f.read()
    monkeypatch.setenv("VLAFORGE_CACHE", os.path.join(os.environ["VLAFORGE_CACHE"], "swapped"))
    os.makedirs(os.path.dirname(table_uri(n_max, ALPHA)))
    with open(table_uri(n_max, ALPHA), "wb") as f:
        f.write(data)
    with pytest.raises(ValueError, match="built for .*per-direction"):
        get_table(n_max, ALPHA)
    # A new synthesis (version or constants) gets new file names, and a table it did not build is refused.
    old_uri = table_uri(n_max, ALPHA, PER_DIRECTION)
    monkeypatch.setattr(step_test, "SYNTHESIS_KEY", "v999-test")
    assert table_uri(n_max, ALPHA, PER_DIRECTION) != old_uri
    os.makedirs(os.path.dirname(table_uri(n_max, ALPHA, PER_DIRECTION)), exist_ok=True)
    with open(table_uri(n_max, ALPHA, PER_DIRECTION), "wb") as f:
        f.write(data)
    with pytest.raises(ValueError, match="expected .*v999-test"):
        get_table(n_max, ALPHA, PER_DIRECTION)
    step_test._MEMORY.clear()


def test_corrupt_cache_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("VLAFORGE_CACHE", str(tmp_path))
    step_test._MEMORY.clear()
    uri = table_uri(12, ALPHA)
    os.makedirs(os.path.dirname(uri))
    with open(uri, "wb") as f:
        f.write(b"not a table")
    with pytest.raises(ValueError, match="unreadable STEP table"):
        get_table(12, ALPHA)
    step_test._MEMORY.clear()


@pytest.mark.parametrize("n_max", [800, 3800])
def test_lai_calibration_controls_false_positives(n_max):
    c = get_constant(n_max, ALPHA)
    assert 0.8 * ALPHA <= false_positive_rate(c, n_max) <= ALPHA
    # Monte-Carlo check of the whole test at p0 = p1 = 0.3 (fewer discordant pairs: a lower rate).
    rng = np.random.default_rng(n_max)
    decisions = [lai_test(rng.random(n_max) < 0.3, rng.random(n_max) < 0.3, n_max, ALPHA)[0] for _ in range(300)]
    assert np.mean([d != "fail to decide" for d in decisions]) <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / 300)


def test_per_direction_operating_characteristics_match_the_reference():
    """Exact figures of the reference STEP library as VLA Foundry uses it (n_max 200, alpha 0.05 per direction)."""
    power = exact_characteristics(N_MAX, ALPHA, 0.35, 0.50, PER_DIRECTION)
    assert power["p0 < p1"] == pytest.approx(0.87, abs=0.01)
    assert power["mean_pairs"] == pytest.approx(110, abs=3)
    assert power["p0 > p1"] < 1e-3
    equal = exact_characteristics(N_MAX, ALPHA, 0.5, 0.5, PER_DIRECTION)
    assert equal["p0 < p1"] == pytest.approx(ALPHA, rel=0.01) and equal["p0 < p1"] <= ALPHA * (1 + 1e-3)
    assert equal["p0 < p1"] + equal["p0 > p1"] == pytest.approx(2 * ALPHA, rel=0.01)
    # Between the 129 control points the risk can pass the budget slightly: at most 0.15 % (at p ~ 0.02) here.
    for p in (0.02, 0.2, 0.77):
        rates = exact_characteristics(N_MAX, ALPHA, p, p, PER_DIRECTION)
        assert max(rates["p0 < p1"], rates["p0 > p1"]) <= ALPHA * (1 + 2e-3), (p, rates)
    # The same pair under the two-sided guarantee: at most alpha in total, less power, more pairs.
    strict = exact_characteristics(N_MAX, ALPHA, 0.5, 0.5)
    assert strict["p0 < p1"] + strict["p0 > p1"] <= ALPHA * (1 + 1e-3)
    strict_power = exact_characteristics(N_MAX, ALPHA, 0.35, 0.50)
    assert strict_power["p0 < p1"] < power["p0 < p1"] - 0.05 and strict_power["mean_pairs"] > power["mean_pairs"]
    # The simulation agrees with the dynamic program.
    mc = simulate(N_MAX, ALPHA, 0.35, 0.50, 1000, seed=5, guarantee=PER_DIRECTION)
    assert mc["p0 < p1"] == pytest.approx(power["p0 < p1"], abs=4 * math.sqrt(0.87 * 0.13 / 1000))


def late_separation(t_star: int) -> tuple[list[bool], list[bool]]:
    """Outcomes of 200 pairs that the per-direction region rejects (with certainty) first at pair ``t_star``,
    and that never enter the two-sided region: tied pairs, then policy 1 alone succeeds until the
    per-direction region is reached, then both fail."""
    two, per = get_table(N_MAX, ALPHA), get_table(N_MAX, ALPHA, PER_DIRECTION)
    t = np.arange(1, N_MAX + 1)
    for x0 in sorted(range(t_star), key=lambda x: abs(x - 0.4 * t_star)):
        gap = next((d for d in range(1, t_star - x0 + 1) if per.reject_probability(t_star, x0, x0 + d) >= 1), None)
        if gap is None:
            continue
        ties = t_star - gap
        a = np.array([True] * x0 + [False] * (N_MAX - x0))
        b = np.array([True] * x0 + [False] * (ties - x0) + [True] * gap + [False] * (N_MAX - t_star))
        x, y = np.cumsum(a), np.cumsum(b)
        p_per = per.reject_probability(t, np.minimum(x, y), np.maximum(x, y))
        p_two = two.reject_probability(t, np.minimum(x, y), np.maximum(x, y))
        if p_per[t_star - 1] == 1.0 and not p_per[:t_star - 1].any() and not p_two.any():
            return a.tolist(), b.tolist()
    raise AssertionError(f"no late separation at pair {t_star}")


def test_per_direction_separates_late_where_two_sided_does_not():
    a, b = late_separation(170)
    assert sum(b[:170]) - sum(a[:170]) >= 10 and len(a) == len(b) == N_MAX
    for seed in range(3):
        assert run_step(a, b, N_MAX, ALPHA, seed, PER_DIRECTION) == ("p0 < p1", 170)
        assert run_step(b, a, N_MAX, ALPHA, seed, PER_DIRECTION) == ("p0 > p1", 170)
        assert run_step(a, b, N_MAX, ALPHA, seed, TWO_SIDED) == ("fail to decide", N_MAX)


@pytest.mark.parametrize("guarantee", [TWO_SIDED, PER_DIRECTION])
def test_lai_operating_characteristics(guarantee):
    """Lai's test (n_max > 500) under each guarantee, exactly; and the exact figures against a simulation."""
    n_max = 3800
    equal = lai.exact_characteristics(n_max, ALPHA, 0.5, 0.5, guarantee)
    assert equal["p0 < p1"] == pytest.approx(equal["p0 > p1"], rel=1e-9)
    if guarantee == TWO_SIDED:
        assert 0.8 * ALPHA <= equal["p0 < p1"] + equal["p0 > p1"] <= ALPHA
    else:  # each direction at most alpha even with every pair discordant; at p = 1/2 about alpha / 2
        assert equal["p0 < p1"] <= lai.false_positive_rate(get_constant(n_max, ALPHA, guarantee), n_max, guarantee)
        assert lai.false_positive_rate(get_constant(n_max, ALPHA, guarantee), n_max, guarantee) <= ALPHA
        assert 0.4 * ALPHA <= equal["p0 < p1"] <= ALPHA
    assert sum(lai.exact_characteristics(n_max, ALPHA, 0.2, 0.2, guarantee)[k] for k in ("p0 < p1", "p0 > p1")) \
        < equal["p0 < p1"] + equal["p0 > p1"]
    n_small = 800
    exact = lai.exact_characteristics(n_small, ALPHA, 0.45, 0.55, guarantee)
    rng = np.random.default_rng(11)
    runs = [lai_test(rng.random(n_small) < 0.45, rng.random(n_small) < 0.55, n_small, ALPHA, guarantee)
            for _ in range(600)]
    power = np.mean([d == "p0 < p1" for d, _ in runs])
    assert power == pytest.approx(exact["p0 < p1"], abs=4 * math.sqrt(0.25 / 600))
    assert np.mean([u for _, u in runs]) == pytest.approx(exact["mean_pairs"], rel=0.05)


def test_exact_false_positive_rate_between_control_points():
    """Exactly, not only by simulation: p values off the synthesis grid stay within alpha."""
    for p in (0.003, 0.013, 0.1, 0.37, 0.5, 0.61, 0.9, 0.997):
        rates = exact_characteristics(N_MAX, ALPHA, p, p)
        assert rates["p0 < p1"] + rates["p0 > p1"] <= ALPHA * (1 + 1e-3), (p, rates)
        assert rates["p0 < p1"] == pytest.approx(rates["p0 > p1"], rel=1e-6)
    # Composite null p0 > p1 for the "p0 < p1" side: even less often.
    assert exact_characteristics(N_MAX, ALPHA, 0.6, 0.5)["p0 < p1"] < ALPHA / 2
