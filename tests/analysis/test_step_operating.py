"""Error rates of the sequential tests (false positives under p0 = p1 at most alpha) and their caches."""

import math
import os

import numpy as np
import pytest

from vlaforge.analysis import step_test
from vlaforge.analysis.lai_test import false_positive_rate, get_constant, lai_test
from vlaforge.analysis.step_test import (dead_time, exact_characteristics, get_table, risk_budget, simulate,
                                         table_uri)

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


def test_exact_false_positive_rate_between_control_points():
    """Exactly, not only by simulation: p values off the synthesis grid stay within alpha."""
    for p in (0.003, 0.013, 0.1, 0.37, 0.5, 0.61, 0.9, 0.997):
        rates = exact_characteristics(N_MAX, ALPHA, p, p)
        assert rates["p0 < p1"] + rates["p0 > p1"] <= ALPHA * (1 + 1e-3), (p, rates)
        assert rates["p0 < p1"] == pytest.approx(rates["p0 > p1"], rel=1e-6)
    # Composite null p0 > p1 for the "p0 < p1" side: even less often.
    assert exact_characteristics(N_MAX, ALPHA, 0.6, 0.5)["p0 < p1"] < ALPHA / 2
