"""The results loader: both layouts, merging, normalisation, renames, S3, and one error per broken rule."""

import json
import os

import pytest
from analysis_util import episode, write_results

from vlaforge import storage
from vlaforge.analysis.results import ResultsError, apply_renames, load_renames, load_results, normalise_task


def _eps(task, statuses, start=0):
    return [episode(task, start + i, s) for i, s in enumerate(statuses)]


def test_flat_layout_merges_timestamps_and_normalises_snake_case(tmp_path):
    write_results(tmp_path, "a/PutMugOnSaucer/rollouts/t0/results.json",
                  _eps("put_mug_on_saucer", ["success", "failure"]), budget=10)
    write_results(tmp_path, "a/PutMugOnSaucer/rollouts/t1/results.json",
                  _eps("PutMugOnSaucer", ["pending", "success"], start=2), budget=10)
    results = load_results(str(tmp_path))
    assert results.tasks == ["PutMugOnSaucer"] and results.models == ["a"] and results.budget == 10
    assert [e.scenario_index for e in results.get("PutMugOnSaucer", "a")] == [0, 1, 2, 3]
    assert results.outcomes("PutMugOnSaucer", "a") == [True, False, True]


def test_nested_layout_and_several_roots_merge(tmp_path):
    write_results(tmp_path / "r1", "set1/a/Reach/rollouts/t0/results.json", _eps("reach", ["success"]))
    write_results(tmp_path / "r1", "set1/b/Reach/rollouts/t0/results.json", _eps("reach", ["failure"]))
    write_results(tmp_path / "r2", "c/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]))
    results = load_results([str(tmp_path / "r1"), str(tmp_path / "r2")])
    assert results.models == ["a", "b", "c"] and results.tasks == ["Reach"]


def test_normalise_task():
    assert normalise_task("put_mug_on_saucer") == "PutMugOnSaucer"
    assert normalise_task("PutMugOnSaucer") == "PutMugOnSaucer"


def test_renames(tmp_path):
    write_results(tmp_path, "a/Reach/rollouts/t0/results.json", _eps("reach", ["success"]))
    write_results(tmp_path, "b/Reach/rollouts/t0/results.json", _eps("reach", ["failure"]))
    rename = tmp_path / "rename.yaml"
    rename.write_text("models: {a: Expert}\ntasks: {reach: Reach target}\n")
    results = apply_renames(load_results(str(tmp_path)), load_renames(str(rename)), str(rename))
    assert results.models == ["Expert", "b"] and results.tasks == ["Reach target"]
    rename.write_text("models: {a: b}\n")
    with pytest.raises(ResultsError, match="same display name"):
        apply_renames(load_results(str(tmp_path)), load_renames(str(rename)), str(rename))
    rename.write_text("model: {a: b}\n")
    with pytest.raises(ResultsError, match="rename.yaml"):
        load_renames(str(rename))


def test_s3_root(tmp_path, s3_bucket):
    local = write_results(tmp_path, "a/Reach/rollouts/t0/results.json", _eps("reach", ["success", "failure"]))
    storage.upload_file(local, f"{s3_bucket}/evals/a/Reach/rollouts/t0/results.json")
    results = load_results(f"{s3_bucket}/evals")
    assert results.outcomes("Reach", "a") == [True, False]
    assert results.get("Reach", "a")[0].source == f"{s3_bucket}/evals/a/Reach/rollouts/t0/results.json"


# --- each rule broken by a fixture gives its own error naming the file ---------------------------------

def test_missing_budget(tmp_path):
    bad = write_results(tmp_path, "a/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]), budget=None)
    with pytest.raises(ResultsError, match=f"{bad}: missing 'max_sample_size_per_model'"):
        load_results(str(tmp_path))


def test_budgets_differ(tmp_path):
    first = write_results(tmp_path, "a/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]), budget=50)
    second = write_results(tmp_path, "b/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]), budget=60)
    with pytest.raises(ResultsError) as err:
        load_results(str(tmp_path))
    assert second in str(err.value) and first in str(err.value) and "differs" in str(err.value)


def test_same_scenario_in_two_files_of_one_rollouts_folder(tmp_path):
    first = write_results(tmp_path, "a/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]))
    second = write_results(tmp_path, "a/Reach/rollouts/t1/results.json", _eps("Reach", ["failure"]))
    with pytest.raises(ResultsError, match="files of one rollouts folder hold the same") as err:
        load_results(str(tmp_path))
    assert first in str(err.value) and second in str(err.value)


def test_duplicate_task_model_scenario_across_folders(tmp_path):
    first = write_results(tmp_path / "r1", "a/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]))
    second = write_results(tmp_path / "r2", "set/a/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]))
    with pytest.raises(ResultsError, match=r"duplicate \(task, model, scenario_index\) = \(Reach, a, 0\)") as err:
        load_results([str(tmp_path / "r1"), str(tmp_path / "r2")])
    assert first in str(err.value) and second in str(err.value)


def test_duplicate_within_one_file(tmp_path):
    bad = write_results(tmp_path, "a/Reach/rollouts/t0/results.json",
                        [episode("Reach", 3, "success"), episode("reach", 3, "failure")])
    with pytest.raises(ResultsError, match=f"{bad}: scenario_index 3 of task Reach appears twice"):
        load_results(str(tmp_path))


def test_more_completed_than_budget(tmp_path):
    bad = write_results(tmp_path, "a/Reach/rollouts/t0/results.json",
                        _eps("Reach", ["success", "failure", "success", "pending"]), budget=2)
    with pytest.raises(ResultsError, match=f"{bad}: 3 completed episodes .* exceed max_sample_size_per_model=2"):
        load_results(str(tmp_path))


def test_invalid_json(tmp_path):
    bad = tmp_path / "a/Reach/rollouts/t0/results.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"max_sample_size_per_model": 5, "evaluations": [')
    with pytest.raises(ResultsError, match=f"{bad}: not valid JSON"):
        load_results(str(tmp_path))


@pytest.mark.parametrize("entry, message", [
    ({"skill_type": "Reach", "is_success": True}, "lacks 'scenario_index'"),
    ({"skill_type": "Reach", "scenario_index": 0}, "lacks 'is_success'"),
    ({"skill_type": "Reach", "scenario_index": "0", "is_success": True}, "scenario_index has the wrong type"),
    ({"skill_type": "Reach", "scenario_index": 0, "is_success": "yes"}, "is_success has the wrong type"),
])
def test_malformed_evaluation(tmp_path, entry, message):
    bad = write_results(tmp_path, "a/Reach/rollouts/t0/results.json", [entry])
    with pytest.raises(ResultsError, match=f"{bad}: evaluations\\[0\\].*{message}"):
        load_results(str(tmp_path))


def test_file_outside_the_layout(tmp_path):
    bad = write_results(tmp_path, "a/Reach/results.json", _eps("Reach", ["success"]))
    with pytest.raises(ResultsError, match=f"{bad}: results file outside the layout"):
        load_results(str(tmp_path))


def test_empty_and_missing_roots(tmp_path):
    with pytest.raises(ResultsError, match=f"{tmp_path}: no results.json found"):
        load_results(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_results(str(tmp_path / "nowhere"))


def test_error_leaves_other_files_untouched(tmp_path):
    good = write_results(tmp_path, "a/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]))
    before = open(good).read()
    write_results(tmp_path, "b/Reach/rollouts/t0/results.json", _eps("Reach", ["success"]), budget=None)
    with pytest.raises(ResultsError):
        load_results(str(tmp_path))
    assert open(good).read() == before and json.loads(before)["evaluations"]
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
