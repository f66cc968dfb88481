"""``vlaforge ablation`` on the tiny preset: every variant is trained with one budget, evaluated on the same
scenes (repeats on disjoint blocks of them), and lands in one STEP report and one generated table."""

from __future__ import annotations

import json

import pytest

from vlaforge.ablation import SWAPPED, pooled, results_markdown, write_results_doc
from vlaforge.cli import main


def test_pooled_repeats_give_intervals_and_spread():
    runs = [{"tasks": {"a": {"successes": 4, "episodes": 5}}, "success_rate": 0.8},
            {"tasks": {"a": {"successes": 2, "episodes": 5}}, "success_rate": 0.4}]
    out = pooled(runs, ["a"])
    assert out["tasks"]["a"]["successes"] == 6 and out["tasks"]["all"]["episodes"] == 10
    low, high = out["tasks"]["all"]["ci95"]
    assert low < 0.6 < high and high - low > 0.4  # 6/10 is not precise
    assert out["repeat_mean"] == pytest.approx(0.6) and out["repeat_sd"] == pytest.approx(0.2828, abs=1e-3)


def test_results_table_counts_every_run():
    def run(repeat, k, steps=None):
        return {"repeat": repeat, "seed": repeat, "episodes": f"{2 * repeat}:{2 * repeat + 2}", "steps": steps,
                "train_seconds": 60.0 if steps else None, "final_val_loss": 0.05 if steps else None,
                "tasks": {"a": {"successes": k, "episodes": 2}}, "success_rate": k / 2}
    variants = {"pretrained": {"runs": [run(0, 2, 100), run(1, 1, 110)]},
                "random-init": {"runs": [run(0, 0, 90), run(1, 1, 95)]}, SWAPPED: {"runs": [run(0, 1), run(1, 0)]},
                "expert": {"runs": [{"episodes": "0:4", "tasks": {"a": {"successes": 4, "episodes": 4}},
                                     "success_rate": 1.0}]}}
    for variant in variants.values():
        variant["pooled"] = pooled(variant["runs"], ["a"])
    table = results_markdown({"tasks": ["a"], "budget": {"max_steps": 200, "max_minutes": 1, "global_batch_size": 8},
                              "variants": variants, "scenes": "0:4", "split": "test", "episodes_per_repeat": 2,
                              "repeats": 2, "preset": "p", "overrides": []})
    assert "| pretrained | 100, 110 | 1.0, 1.0 | 75 [19, 99] |" in table  # pooled 3/4
    assert "| pretrained | 1 | 1 | 2:4 | 110 | 1.0 | 0.0500 | 1/2 | 50.0% |" in table
    assert f"| {SWAPPED} | 0 | 0 | 0:2 | - | - | - | 1/2 | 50.0% |" in table
    assert "| expert | all | - | 0:4 | - | - | - | 4/4 | 100.0% |" in table


@pytest.mark.slow
@pytest.mark.timeout(2400)  # upstream stages + 4 trainings + 5 evaluations + STEP
def test_ablation_on_the_tiny_preset(tmp_path, capsys):
    out, doc = tmp_path / "ablation", tmp_path / "doc"
    args = ["ablation", "--preset", "tiny", "--out", str(out), "--repeats", "2", "--results-doc", str(doc),
            "--set", "vla.train.max_steps=20", "--set", "sim_eval.episodes=\"0:2\"", "--set", "sim_eval.workers=0",
            "--set", "sim_eval.tasks=[reach-v3, push-v3]", "--set", "demos.tasks=[reach-v3, push-v3]",
            "--set", "demos.episodes_per_task=3"]
    assert main(args) == 0
    record = json.loads((out / "ablation.json").read_text())
    assert set(record["variants"]) == {"pretrained", "random-init", SWAPPED, "expert", "random"}
    assert record["budget"]["max_steps"] == 20 and record["split"] == "eval" and record["scenes"] == "0:4"
    for name in ("pretrained", "random-init"):
        runs = record["variants"][name]["runs"]
        assert [r["seed"] for r in runs] == [0, 1] and all(r["steps"] == 20 for r in runs)
        assert [r["episodes"] for r in runs] == ["0:2", "2:4"]
        assert record["variants"][name]["pooled"]["tasks"]["all"]["episodes"] == 8
    policy = json.loads((out / "policies" / "random-init-0" / "config.json").read_text())
    assert policy["random_backbone"] is True
    swapped = json.loads(next((out / "rollouts" / SWAPPED / "PushV3" / "rollouts").glob("*/results.json"))
                         .read_text())
    assert len(swapped["evaluations"]) == 4
    assert record["variants"]["expert"]["pooled"]["tasks"]["all"]["rate"] >= 0.75
    table = (doc / "ablation.md").read_text()
    assert "| random-init | 20, 20 |" in table and "95% Clopper-Pearson" in table
    assert "random-init" in (doc / "README.md").read_text() and "random-init" in (out / "tables.md").read_text()
    assert "| pretrained |" in capsys.readouterr().out
    write_results_doc(str(out), str(doc))  # regenerating from the results files gives the same table
    assert (doc / "ablation.md").read_text() == table
