"""Crashed episodes: failures in the success rate and in STEP's sequences, or a refusal naming them."""

import csv

import pytest
from analysis_util import episode, write_results

from vlaforge.analysis import run_analysis
from vlaforge.analysis.results import ResultsError, load_results
from vlaforge.analysis.step_test import step_test
from vlaforge.cli import main

N = 40


@pytest.fixture
def results(tmp_path):
    """``steady`` succeeds on every other scene; ``crashy`` succeeds on the same scenes and crashes on the others
    (its hardest scenes): left out, its crashes would make it look perfect."""
    steady = [episode("Reach", i, "success" if i % 2 == 0 else "failure") for i in range(N)]
    crashy = [episode("Reach", i, "success" if i % 2 == 0 else "crashed") for i in range(N)]
    write_results(tmp_path / "r", "steady/Reach/rollouts/t0/results.json", steady, budget=N)
    write_results(tmp_path / "r", "crashy/Reach/rollouts/t0/results.json", crashy, budget=N)
    return str(tmp_path / "r")


def _csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_crashed_episodes_count_as_failures(results, tmp_path):
    metrics = run_analysis([results], str(tmp_path / "out"))
    rows = {r["model"]: r for r in _csv(tmp_path / "out" / "per_task.csv")}
    crashy = rows["crashy"]
    assert (int(crashy["completed"]), int(crashy["crashed"]), int(crashy["n"]), int(crashy["successes"])) == (
        N // 2, N // 2, N, N // 2)
    assert float(crashy["success_pct"]) == 50.0 == float(rows["steady"]["success_pct"])
    # STEP sees the crashes as failures in their place: the two sequences are the same, so no decision.
    sequence = load_results(results).outcomes("Reach", "crashy", crashed_as_failure=True)
    assert sequence == [i % 2 == 0 for i in range(N)]
    steady = load_results(results).outcomes("Reach", "steady")
    assert step_test(steady, [True] * (N // 2), N, 0.05)[0] == "p0 < p1"  # leaving the crashes out would decide
    pairs = _csv(tmp_path / "out" / "pairwise.csv")
    assert {p["decision"] for p in pairs} == {"fail to decide"} and {p["pairs"] for p in pairs} == {str(N)}
    assert metrics["crashy.crashed"] == N // 2 and metrics["crashy.episodes"] == N
    aggregate = {r["model"]: r for r in _csv(tmp_path / "out" / "aggregate.csv")}
    assert aggregate["crashy"]["balanced_n"] == str(N) and aggregate["crashy"]["crashed"] == str(N // 2)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "model crashy crashed on 20 episode(s) of task Reach" in html and "counted as failures" in html


def test_refuse_names_model_task_and_episodes(results, tmp_path, capsys):
    with pytest.raises(ResultsError, match=r"model crashy crashed on 20 episode\(s\) of task Reach "
                                           r"\(scenario_index 1, 3, .*crashy/Reach/rollouts/t0/results.json\)"):
        run_analysis([results], str(tmp_path / "out"), crashed="refuse")
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert main(["analyze", results, "--out", str(tmp_path / "o2"), "--crashed", "refuse"]) == 2
    err = capsys.readouterr().err
    assert "model crashy crashed on 20 episode(s) of task Reach" in err and "refused (crashed=refuse)" in err
    assert main(["analyze", results, "--out", str(tmp_path / "o3"), "--set", "crashed=ignore"]) == 2
    assert "step_analysis.crashed must be one of failure, refuse" in capsys.readouterr().err
