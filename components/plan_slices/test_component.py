"""plan_slices: its interface, the slices it plans, and a width that cannot be planned failing the run with an
error naming the `<section>_slices` parameter."""

import pytest
from kfp import dsl, local

from components.plan_slices.component import plan_slices
from components.testing import assert_interface
from vlaforge.config import split_overrides
from vlaforge.fanout import SliceError, part_range, plan_slices as plan
from vlaforge.stages.plan_slices import run

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
TWO_TASKS = ["tasks=[reach-v3, push-v3]", 'episodes="0:4"']


def test_interface(tmp_path):
    assert_interface(plan_slices, {"section": "String", "preset": "String", "overrides": "String",
                                   "width": "Integer", "source_uri": "String"}, {"Output": "List"}, "sim", tmp_path)


def test_slices_cover_every_item_once_in_order():
    ranges = {"a": (0, 2), "b": (0, 6), "c": (3, 4)}
    for width in range(1, 10):
        slices = plan(ranges, width, "x_slices")
        assert len(slices) == width
        items = [(task, i) for s in slices for task, lo, hi in s for i in range(lo, hi)]
        assert items == [(task, i) for task, (lo, hi) in ranges.items() for i in range(lo, hi)]
    assert plan(ranges, 4, "x_slices") == [[("a", 0, 2)], [("b", 0, 3)], [("b", 3, 6)], [("c", 3, 4)]]


def test_slice_overrides_run_the_stage_on_its_share():
    assert [split_overrides(s)[2:] for s in run("sim_eval", "tiny", TWO_TASKS, 2)] == \
           [['tasks=["reach-v3", "push-v3"]', 'episodes="0:2"', "videos_per_task=1"],
            ['tasks=["reach-v3", "push-v3"]', 'episodes="2:4"', "videos_per_task=0"]]
    assert [split_overrides(s)[2:4] for s in run("sim_eval", "tiny", TWO_TASKS, 5)] == \
           [['tasks=["reach-v3"]', 'episodes="0:1"'], ['tasks=["reach-v3"]', 'episodes="1:2"'],
            ['tasks=["reach-v3"]', 'episodes="2:4"'], ['tasks=["push-v3"]', 'episodes="0:2"'],
            ['tasks=["push-v3"]', 'episodes="2:4"']]  # fewer episodes than slices: tasks split as plan_slices
    videos = run("sim_eval", "tiny", ["tasks=[reach-v3]", 'episodes="2:8"', "videos_per_task=3"], 3)  # of 2, 3, 4
    assert [split_overrides(s)[-2:] for s in videos] == [['episodes="2:4"', "videos_per_task=3"],
                                                        ['episodes="4:6"', "videos_per_task=1"],
                                                        ['episodes="6:8"', "videos_per_task=0"]]
    demos = run("demos", "tiny", ["tasks=[reach-v3]", "episodes_per_task=5"], 2)
    assert [split_overrides(s)[2:] for s in demos] == [
        ['tasks=["reach-v3"]', 'task_episodes={"reach-v3": 2}', "first_episode=0"],
        ['tasks=["reach-v3"]', 'task_episodes={"reach-v3": 3}', "first_episode=2"]]


def test_parts_of_inputs_counted_when_the_stage_runs(tmp_path):
    for name in ("a.txt", "b.txt", "c.jsonl"):
        (tmp_path / name).write_text("text")
    assert [split_overrides(s)[-1] for s in run("tokenize", "tiny", [f"corpus={tmp_path}"], 3)] == \
           ['part="1/3"', 'part="2/3"', 'part="3/3"']
    assert [split_overrides(s)[-1] for s in run("preprocess", "tiny", ["num_workers=0"], 2)] == \
           ['part="1/2"', 'part="2/2"']
    assert [part_range(f"{k}/3", 7, "x_slices", "episodes") for k in (1, 2, 3)] == \
           [range(0, 2), range(2, 4), range(4, 7)]  # as plan_slices cuts one range
    assert part_range("", 7, "x_slices", "episodes") == range(7)
    with pytest.raises(SliceError, match=r"tokenize_slices=4 asks for more slices than there are items to split "
                                         r"\(3: corpus files 0:3\)"):
        run("tokenize", "tiny", [f"corpus={tmp_path}"], 4)
    with pytest.raises(SliceError, match=r"x_slices=8 asks for more slices .* \(7: episodes 0:7\)"):
        part_range("1/8", 7, "x_slices", "episodes")


@pytest.mark.parametrize("section,width,message", [
    ("sim_eval", 0, "sim_eval_slices must be an integer >= 1, got 0"),
    ("sim_eval", 9, "sim_eval_slices=9 asks for more slices than there are items to split \\(8"),
    ("demos", 7, "demos_slices=7 asks for more slices")])
def test_a_width_that_cannot_be_planned_names_the_parameter(section, width, message):
    with pytest.raises(SliceError, match=message):
        run(section, "tiny", TWO_TASKS if section == "sim_eval" else ["tasks=[reach-v3]", "episodes_per_task=6"],
            width)


@dsl.pipeline(name="plan-slices-test")
def planned(width: int):
    plan_slices(section="sim_eval", preset="tiny", overrides="", width=width)


def test_a_bad_width_fails_the_run(tmp_path, capfd):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    with pytest.raises(RuntimeError, match="FAILURE"):
        planned(width=0)
    assert "sim_eval_slices must be an integer >= 1, got 0" in "".join(capfd.readouterr())


def test_imported_data_is_one_slice():
    assert run("captions", "tiny", [], 1, source_uri="s3://bucket/shards") == [""]
    with pytest.raises(SliceError, match="captions_slices must be 1 when a source URI is imported"):
        run("captions", "tiny", [], 2, source_uri="s3://bucket/shards")

