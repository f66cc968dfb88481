"""Every case of tests/analysis/data/step.json, the decisions under both guarantees."""

import csv
import html
import json
from pathlib import Path

import pytest
from analysis_util import episode, outcomes, write_results
from scipy.stats import binomtest

from vlaforge.analysis import run_analysis
from vlaforge.analysis.aggregate import balanced_outcomes, common_tasks
from vlaforge.analysis.guarantee import GUARANTEES, describe
from vlaforge.analysis.lai_test import lai_test
from vlaforge.analysis.letters import compact_letter_display
from vlaforge.analysis.results import check_episode_range, load_results
from vlaforge.analysis.step_test import step_test
from vlaforge.analysis.summary import clopper_pearson, summarize

VECTORS = json.loads((Path(__file__).resolve().parent / "data" / "step.json").read_text())


@pytest.mark.parametrize("case", VECTORS["clopper_pearson_90"], ids=lambda c: f"{c['successes']}/{c['n']}")
def test_clopper_pearson(case):
    low, high = clopper_pearson(case["successes"], case["n"])
    assert low == pytest.approx(case["low"], abs=1e-6)
    assert high == pytest.approx(case["high"], abs=1e-6)


@pytest.mark.parametrize("case", VECTORS["compact_letter_display"], ids=lambda c: str(c["significant_pairs"]))
def test_compact_letter_display(case):
    assert compact_letter_display(case["models_best_first"], case["significant_pairs"]) == case["letters"]


@pytest.mark.parametrize("guarantee", GUARANTEES)
@pytest.mark.parametrize("case", VECTORS["step_mirrored_nmax200_alpha005"], ids=lambda c: c["decision"])
def test_step_decisions(case, guarantee):
    a, b = outcomes(case["policy0"]), outcomes(case["policy1"])
    decision, used = step_test(a, b, n_max=200, alpha=0.05, guarantee=guarantee)
    assert decision == case["decision"]
    if decision != "fail to decide":
        assert used <= 10


@pytest.mark.parametrize("guarantee", GUARANTEES)
@pytest.mark.parametrize("case", VECTORS["lai_nmax3800_alpha005"], ids=lambda c: c["decision"])
def test_lai_decisions(case, guarantee):
    a, b = outcomes(case["policy0"]), outcomes(case["policy1"])
    decision, used = lai_test(a, b, n_max=3800, alpha=0.05, guarantee=guarantee)
    assert decision == case["decision"]
    assert used == 13  # the reference decides at pair 13
    assert lai_test(b, a, n_max=3800, alpha=0.05, guarantee=guarantee) == ("p0 > p1", used)


def _aggregation_outcomes(case) -> dict[str, dict[str, list[bool]]]:
    if "outcomes" in case:
        return {m: {t: outcomes(s) for t, s in per.items()} for m, per in case["outcomes"].items()}
    # Counts only: outcome values do not matter for the lengths.
    return {m: {t: [True] * n for t, n in per.items()} for m, per in case["counts"].items()}


@pytest.mark.parametrize("case", VECTORS["aggregation"], ids=lambda c: c["case"])
def test_aggregation(case):
    per_model = _aggregation_outcomes(case)
    common, excluded = common_tasks({m: {t: len(o) for t, o in per.items()} for m, per in per_model.items()})
    assert excluded == case.get("excluded_tasks", [])
    balanced = balanced_outcomes(per_model, common, seed=0)
    assert {m: min(len(per_model[m][t]) for t in common) for m in per_model} == case["per_model_min_n"]
    assert {m: len(seq) for m, seq in balanced.items()} == case["aggregate_length"]
    if "aggregate_successes" in case:
        assert {m: sum(seq) for m, seq in balanced.items()} == case["aggregate_successes"]


@pytest.mark.parametrize("case", VECTORS["episode_status"], ids=lambda c: c["case"])
def test_episode_status(case, tmp_path):
    evaluations = [episode("Reach", i, status) for i, status in enumerate(case["episodes"])]
    write_results(tmp_path, "m/Reach/rollouts/t0/results.json", evaluations, budget=case["budget"])
    (row,) = summarize(load_results(str(tmp_path)))
    assert (row.completed, row.successes, row.pending, row.crashed) == (
        case["completed"], case["successes"], case["pending"], case["crashed"])
    assert row.total == case["completed"] + case["crashed"]  # crashed episodes count as failures


def _csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("guarantee", GUARANTEES)
@pytest.mark.parametrize("case", [c for c in VECTORS["aggregation"] if "outcomes" in c], ids=lambda c: c["case"])
def test_counts_and_intervals_reproduce_under_both_guarantees(case, guarantee, tmp_path):
    """The whole stage on a vector's outcomes: counts, 90% Clopper-Pearson intervals (as the reference computes
    them, scipy's binomtest) and the balanced aggregate do not depend on the guarantee."""
    for model, per_task in case["outcomes"].items():
        for task, text in per_task.items():
            evaluations = [episode(task, i, "success" if won else "failure") for i, won in enumerate(outcomes(text))]
            write_results(tmp_path / "r", f"{model}/{task}/rollouts/t0/results.json", evaluations,
                          budget=case["budget"])
    run_analysis([str(tmp_path / "r")], str(tmp_path / "out"), guarantee=guarantee)
    rows = _csv(tmp_path / "out" / "per_task.csv")
    assert len(rows) == sum(len(per) for per in case["outcomes"].values())
    for row in rows:
        seq = outcomes(case["outcomes"][row["model"]][row["task"].lower()])
        n, wins = len(seq), sum(seq)
        assert (int(row["completed"]), int(row["n"]), int(row["successes"]), int(row["crashed"])) == (n, n, wins, 0)
        low, high = binomtest(wins, n).proportion_ci(0.9)
        assert float(row["ci90_low_pct"]) == pytest.approx(100 * low, abs=1e-4)
        assert float(row["ci90_high_pct"]) == pytest.approx(100 * high, abs=1e-4)
    aggregate = {r["model"]: r for r in _csv(tmp_path / "out" / "aggregate.csv")}
    assert {m: int(r["balanced_n"]) for m, r in aggregate.items()} == case["aggregate_length"]
    assert {m: int(r["balanced_successes"]) for m, r in aggregate.items()} == case["aggregate_successes"]
    assert html.escape(describe(guarantee, 0.05)) in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize("case", VECTORS["episode_ranges"], ids=lambda c: c["request"])
def test_episode_ranges(case):
    if case["ok"]:
        assert check_episode_range(case["request"], case["existing"], case["budget"])
    else:
        with pytest.raises(ValueError, match=case["reason"]):
            check_episode_range(case["request"], case["existing"], case["budget"])
