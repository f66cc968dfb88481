"""The plan_slices stage: a fanned-out stage's work cut into slices, one complete override list per slice
(the stage's overrides with the slice's tasks and index range appended, for sim_eval, record_demos and
caption_data; with the slice's ``part="k/n"`` for tokenize and preprocess_robotics, whose inputs are
counted when they run)."""

from __future__ import annotations

from vlaforge.config import load, split_overrides
from vlaforge.data.corpus import corpus_files
from vlaforge.data.tokenize import TokenizeConfig
from vlaforge.fanout import Segment, SliceError, override_lines, part_names, plan_blocks, plan_slices
from vlaforge.robotics.config import load_config as preprocess_config
from vlaforge.sim.demos import DemoConfig
from vlaforge.sim.rollouts import parse_range
from vlaforge.sim.scene_captions import CaptionConfig
from vlaforge.stages.sim_eval import load_config

FANNED_OUT = ("sim_eval", "demos", "captions", "tokenize", "preprocess")  # preset sections whose stage can fan out


def config(section: str, preset: str, overrides: str | list[str]):
    """The config of a fanned-out ``section`` (one of ``FANNED_OUT``) from the preset and overrides."""
    if section == "sim_eval":
        return load_config(preset, overrides)
    if section == "demos":
        return load(DemoConfig, preset, overrides, "demos")
    if section == "captions":
        return load(CaptionConfig, preset, overrides, "captions")
    if section == "tokenize":
        return load(TokenizeConfig, preset, overrides, "tokenize")
    if section == "preprocess":
        return preprocess_config(preset, overrides)
    raise ValueError(f"fan-out section must be one of {', '.join(FANNED_OUT)}, got '{section}'")


def _ranges(section: str, cfg) -> dict[str, tuple[int, int]]:
    if section == "captions":
        return dict.fromkeys(cfg.tasks, (cfg.first_scene, cfg.first_scene + cfg.scenes_per_task))
    return {task: (cfg.indices(task).start, cfg.indices(task).stop) for task in cfg.tasks}


def _slice_values(section: str, segments: list[Segment], cfg) -> dict:
    tasks = [task for task, _, _ in segments]
    _, start, end = segments[0]
    # sim_eval and captions: a slice's tasks share one range (sim_eval: a block of every task; captions: whole tasks)
    if section == "sim_eval":  # videos of the same episodes as one run: the first videos_per_task of the range
        first = parse_range(cfg.episodes)[0]
        return {"tasks": tasks, "episodes": f"{start}:{end}",
                "videos_per_task": max(0, first + cfg.videos_per_task - start)}
    if section == "captions":
        return {"tasks": tasks, "first_scene": start, "scenes_per_task": end - start}
    return {"tasks": tasks, "task_episodes": {task: e - s for task, s, e in segments}, "first_episode": start}


def run(section: str, preset: str, overrides: str | list[str], width: int, source_uri: str = "") -> list[str]:
    """One override string per slice of the ``section`` stage cut ``width`` ways; a width below 1 or above
    the number of items is an error naming the ``<section>_slices`` parameter (for preprocess, whose
    episodes are not recorded yet, the slices check the upper bound). A ``source_uri`` (data imported
    instead of produced) is one slice."""
    base = split_overrides(overrides)
    if source_uri:
        if width != 1:
            raise SliceError(f"{section}_slices must be 1 when a source URI is imported ({source_uri}), got {width}")
        return ["\n".join(base)]
    cfg = config(section, preset, base)
    if section in ("tokenize", "preprocess"):  # episodes are counted when preprocess runs; corpus files now
        if section == "tokenize":
            plan_slices({"corpus files": (0, len(corpus_files(cfg.corpus)))}, width, "tokenize_slices")
        return ["\n".join(base + override_lines({"part": part})) for part in part_names(width, f"{section}_slices")]
    if section == "sim_eval":  # every slice evaluates a block of episodes of every task (balanced)
        slices = plan_blocks(cfg.tasks, *parse_range(cfg.episodes), width, "sim_eval_slices")
    else:
        slices = plan_slices(_ranges(section, cfg), width, f"{section}_slices")
    return ["\n".join(base + override_lines(_slice_values(section, s, cfg))) for s in slices]
