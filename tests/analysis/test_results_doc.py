"""`vlaforge results-doc`: a docs/results page generated from a real analysis of a small results folder
with recorded episodes: the headline table, the tables, and one caption per episode strip."""

import json

import numpy as np

from vlaforge.analysis.headline import headline_table, to_text, verdict
from vlaforge.analysis.run import run_analysis
from vlaforge.cli import main
from vlaforge.sim.video import write_video

RATES = {"vlaforge_policy": {"DrawerOpenV3": 1.0, "ButtonPressTopdownV3": 0.5},
         "random": {"DrawerOpenV3": 0.0, "ButtonPressTopdownV3": 0.0}}
EPISODES = 24


def write_rollouts(root):
    """sim_eval's layout: results.json records (seed, steps) and the first two episodes' videos."""
    for model, per_task in RATES.items():
        for task, rate in per_task.items():
            folder = root / model / task / "rollouts" / "20260101-000000"
            evaluations = [{"skill_type": task, "scenario_index": i, "is_success": i < rate * EPISODES,
                            "is_pending": False, "total_time": 1.0, "failure_message": None,
                            "num_steps": 40 + i, "seed": 1000 + i} for i in range(EPISODES)]
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(json.dumps({"max_sample_size_per_model": EPISODES,
                                                             "evaluations": evaluations}))
            for i in range(2):
                frames = [np.full((16, 16, 3), 40 * k, np.uint8) for k in range(4)]
                write_video(str(folder / "videos" / f"episode_{i:06d}.gif"), frames, "gif")


def test_results_page_from_an_analysis(tmp_path, capsys):
    results, details, page = tmp_path / "results", tmp_path / "details", tmp_path / "docs" / "tiny"
    write_rollouts(results)
    run_analysis([str(results)], str(details))

    head, rows = headline_table(str(details))
    assert head == ["task", "vlaforge_policy", "random", "vlaforge_policy vs random"]
    assert rows[0][0] == "ButtonPressTopdownV3" and rows[0][1].startswith("12/24 50% [")
    assert rows[1][1].startswith("24/24 100% [") and rows[1][2].startswith("0/24 0% [")
    assert rows[1][3] == "better"
    assert "DrawerOpenV3" in to_text((head, rows)).splitlines()[2]

    assert main(["results-doc", str(details), "--results", str(results), "--out", str(page),
                 "--title", "Tiny", "--note", "`make run`, 24 episodes per task"]) == 0
    readme = (page / "README.md").read_text()
    assert capsys.readouterr().out.strip() == str(page / "README.md")
    assert readme.startswith("# Tiny\n\n`make run`, 24 episodes per task\n")
    assert "| DrawerOpenV3 | 24/24 100% [" in readme and "## Per task" in readme and "### " not in readme
    captions = [line for line in readme.splitlines() if line.startswith("*")]
    assert len(captions) == 8  # 2 models x 2 tasks x 2 recorded episodes
    assert "*vlaforge_policy · DrawerOpenV3 · episode 1, scene seed 1001 · success in 41 steps*" in captions
    assert "*random · ButtonPressTopdownV3 · episode 0, scene seed 1000 · failure after 40 steps*" in captions
    strip = "episodes/vlaforge_policy/DrawerOpenV3/episode_000001.png"
    assert f"]({strip})" in readme and (page / strip).read_bytes()[:4] == b"\x89PNG"
    assert (page / "plot_tasks.png").is_file() and "(plot_tasks.png)" in readme


def test_verdict_reads_either_order():
    pair = {"policy0": "a", "policy1": "b", "decision": "p0 < p1", "significant": "yes"}
    assert verdict(pair, "b") == "better" and verdict(pair, "a") == "worse"
    assert verdict({**pair, "decision": "fail to decide", "significant": "no"}, "a") == "no difference shown"
