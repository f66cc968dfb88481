"""Benchmark of the step_analysis stage.

1. Time to analyse 9 models x 19 tasks x 200 episodes: cold (STEP table synthesis and Lai calibration,
   empty cache) and warm (tables read from the cache file, as a new process would), with the ratio.
2. STEP's operating characteristics at n_max = 200, alpha = 0.05: false-positive rate under p0 = p1 for
   several p, and power against p0 = 0.5, p1 = 0.8 with the mean number of pairs used, against a
   fixed-sample baseline measured in the same run (Fisher's exact test on all 200 pairs).
3. Both guarantees side by side, exactly (dynamic programming over each test's decision regions): STEP at
   n_max = 200 against the reference's figures for the per-direction test (power 0.87 for 0.35 vs 0.50 in
   about 110 pairs, equal policies separated with probability about 0.10), and Lai's test at n_max = 3800.

Usage: .venv/bin/python bench/step_analysis.py [--reps 4000]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import numpy as np
from scipy.stats import fisher_exact

from vlaforge.analysis import lai_test, step_test
from vlaforge.analysis.guarantee import GUARANTEES
from vlaforge.analysis.run import run_analysis
from vlaforge.analysis.synthetic import write_results

N_MODELS, N_TASKS, EPISODES = 9, 19, 200


def _timed_run(results: str, out: str) -> float:
    step_test._MEMORY.clear()
    lai_test.get_constant.cache_clear()
    start = time.perf_counter()
    run_analysis([results], out)
    return time.perf_counter() - start


def bench_analysis(tmp: str) -> None:
    rng = np.random.default_rng(0)
    rates = {f"model_{m}": {f"Task{t:02d}": float(rng.uniform(0.1, 0.9)) for t in range(N_TASKS)}
             for m in range(N_MODELS)}
    results = os.path.join(tmp, "results")
    write_results(results, rates, EPISODES, seed=1)
    os.environ["VLAFORGE_CACHE"] = os.path.join(tmp, "cache")
    cold = _timed_run(results, os.path.join(tmp, "out_cold"))
    warm = _timed_run(results, os.path.join(tmp, "out_warm"))
    pairs = N_MODELS * (N_MODELS - 1) // 2 * (N_TASKS + 1)
    print(f"analysis of {N_MODELS} models x {N_TASKS} tasks x {EPISODES} episodes ({pairs} pairwise tests):")
    print(f"  cold (STEP table synthesis + Lai calibration): {cold:7.2f} s")
    print(f"  warm (cached tables):                          {warm:7.2f} s")
    print(f"  cold / warm:                                   {cold / warm:7.1f} x")


def fisher_power(p0: float, p1: float, n: int, alpha: float, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        a, b = rng.binomial(n, p0), rng.binomial(n, p1)
        hits += fisher_exact([[a, n - a], [b, n - b]]).pvalue <= alpha
    return hits / reps


def bench_operating(reps: int) -> None:
    n_max, alpha = 200, 0.05
    print(f"STEP operating characteristics, n_max={n_max}, alpha={alpha} (exact by dynamic programming; "
          f"Monte-Carlo with {reps} runs):")
    for p in (0.05, 0.2, 0.5, 0.8, 0.95):
        exact = step_test.exact_characteristics(n_max, alpha, p, p)
        mc = step_test.simulate(n_max, alpha, p, p, reps, seed=int(100 * p))
        wrong = mc["p0 < p1"] + mc["p0 > p1"]
        print(f"  p0 = p1 = {p:4.2f}: false-positive rate exact {exact['p0 < p1'] + exact['p0 > p1']:.4f}, "
              f"simulated {wrong:.4f} +- {np.sqrt(wrong * (1 - wrong) / reps):.4f}")
    for p1 in (0.8, 0.65):
        exact = step_test.exact_characteristics(n_max, alpha, 0.5, p1)
        mc = step_test.simulate(n_max, alpha, 0.5, p1, reps, seed=7)
        fixed = fisher_power(0.5, p1, n_max, alpha, min(reps, 2000), seed=7)
        print(f"  p0=0.5 vs p1={p1}: STEP power exact {exact['p0 < p1']:.4f} (simulated {mc['p0 < p1']:.4f}), "
              f"wrong direction {exact['p0 > p1']:.2e}, {exact['mean_pairs']:.1f} pairs on average")
        print(f"      baseline Fisher exact test on all {n_max} pairs: power {fixed:.4f}; "
              f"STEP uses {n_max / exact['mean_pairs']:.2f}x fewer pairs")


def _decided(rates: dict[str, float]) -> str:
    return (f"'p0 < p1' {rates['p0 < p1']:.4f}, 'p0 > p1' {rates['p0 > p1']:.4f}, "
            f"either {rates['p0 < p1'] + rates['p0 > p1']:.4f}, {rates['mean_pairs']:.1f} pairs on average")


def bench_guarantees() -> None:
    print("Both guarantees, exact by dynamic programming over the decision regions (alpha = 0.05):")
    for test, module, n_max, p0 in (("STEP", step_test, 200, 0.35), ("Lai", lai_test, 3800, 0.45)):
        for guarantee in GUARANTEES:
            start = time.perf_counter()
            equal = module.exact_characteristics(n_max, 0.05, 0.5, 0.5, guarantee)
            power = module.exact_characteristics(n_max, 0.05, p0, 0.50, guarantee)
            worst = max(module.exact_characteristics(n_max, 0.05, p, p, guarantee)["p0 < p1"]
                        for p in (0.02, 0.1, 0.3, 0.5))
            print(f"  {test} n_max={n_max} {guarantee} ({time.perf_counter() - start:.1f} s incl. table/constant):")
            print(f"    p0 = p1 = 0.5:        {_decided(equal)}")
            print(f"    p0 = {p0:.2f}, p1 = 0.50: {_decided(power)}")
            print(f"    worst one-direction false-positive rate over p in (0.02, 0.1, 0.3, 0.5): {worst:.5f}")
    print("  reference (per-direction STEP, n_max=200): power 0.87, about 110 pairs, equal policies about 0.10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-step-") as tmp:
        bench_analysis(tmp)
        bench_operating(args.reps)
        bench_guarantees()


if __name__ == "__main__":
    main()
