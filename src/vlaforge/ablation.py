"""``vlaforge ablation``: does the pretrained VLM earn its place in the policy?

With the same budget (the preset's ``vla.train``: optimizer steps and minutes), every repeat ``r``
(training seed ``vla.train.seed + r``) trains

- ``pretrained``: the preset's policy on the pretrained VLM, and
- ``random-init``: the same architecture with random LLM and VLM weights (``vla.random_backbone``:
  no pretraining stage reaches it; the tokenizer stays),

and evaluates them, the pretrained policy with each task's instruction replaced by the next task's
(``pretrained-swapped-instructions``, ``sim_eval.swap_instructions``) and the expert and random
baselines on the same scenes of ``sim_eval.split``; one step_analysis report compares all of them.
Repeat ``r`` evaluates scenes ``[start + r n, start + (r + 1) n)`` of the split (``n``: the size of
``sim_eval.episodes``), so the repeats of one variant pool into one model of ``n * repeats``
distinct scenes per task, whose intervals the report gives; ``ablation.json`` records the budget,
every run's steps, minutes and loss, and each repeat's success rates.

The pretraining and data stages run into ``<out>/upstream`` (skipped where their output is
complete), unless ``vlm_uri`` and ``robotics_uri`` name existing artifacts (e.g. a ``vlaforge run``'s).
A stopped ablation resumes: finished trainings and evaluated episodes are kept.
"""

from __future__ import annotations

import json
import logging
import time

from vlaforge import storage
from vlaforge.analysis import results_doc
from vlaforge.analysis.summary import clopper_pearson
from vlaforge.config import load, split_overrides
from vlaforge.run import resolve
from vlaforge.sim.evaluate import EvalConfig
from vlaforge.sim.rollouts import load_task_results, parse_range
from vlaforge.stages import (caption_data, llm_pretrain, preprocess_robotics, record_demos, sim_eval,
                             sim_eval_baselines, step_analysis, tokenize, vla_finetune, vlm_pretrain)
from vlaforge.train.summary import SUMMARY, read_summary

log = logging.getLogger(__name__)

TRAINED = {"pretrained": [], "random-init": ["random_backbone=true"]}  # variant -> its vla overrides
SWAPPED = "pretrained-swapped-instructions"
BASELINES = "expert,random"
DONE = ".ablation-done"  # marks an upstream stage's output as complete


def _once(out_uri: str, build) -> str:
    """Run ``build(out_uri)`` unless an earlier ablation finished it; returns ``out_uri``."""
    if not storage.exists(storage.join(out_uri, DONE)):
        build(out_uri)
        storage.write_text(storage.join(out_uri, DONE), "")
    return out_uri


def prepare_upstream(preset: str, sections: dict[str, str], out: str) -> tuple[str, str]:
    """The pretrained VLM and the robotics shards of ``preset``: tokenize -> LLM -> captions -> VLM, demos -> shards."""
    up = storage.join(out, "upstream")
    tok = _once(storage.join(up, "tokenize"), lambda o: tokenize.run(preset, sections["tokenize"], o))
    llm = _once(storage.join(up, "llm"), lambda o: llm_pretrain.run(preset, sections["llm"], tok, o))
    caps = _once(storage.join(up, "captions"), lambda o: caption_data.run(preset, sections["captions"], o))
    vlm = _once(storage.join(up, "vlm"), lambda o: vlm_pretrain.run(preset, sections["vlm"], llm, caps, o))
    demos = _once(storage.join(up, "demos"), lambda o: record_demos.run(preset, sections["demos"], o))
    robo = _once(storage.join(up, "robotics"),
                 lambda o: preprocess_robotics.run(preset, sections["preprocess"], [demos], o))
    return vlm, robo


def _train(preset: str, overrides: list[str], vlm: str, robo: str, out_uri: str) -> dict:
    """Train one policy (kept when an earlier ablation finished it); returns its training summary."""
    if not storage.exists(storage.join(out_uri, SUMMARY)):
        vla_finetune.run(preset, overrides, vlm, robo, out_uri)
    summary = read_summary(out_uri)
    return {k: summary.get(k) for k in ("steps", "train_seconds", "final_val_loss", "stop_reason")}


def repeat_success(rollouts: str, model: str, tasks: list[str], start: int, end: int) -> dict:
    """Successes / finished episodes of ``model`` per task on scenes ``start:end``, and the mean rate."""
    per_task = {}
    for task in tasks:
        records = [r for f in load_task_results(rollouts, model, task) for i, r in f.records.items()
                   if start <= i < end and r["is_success"] is not None]
        per_task[task] = {"successes": sum(bool(r["is_success"]) for r in records), "episodes": len(records)}
    rates = [t["successes"] / t["episodes"] for t in per_task.values() if t["episodes"]]
    return {"episodes": f"{start}:{end}", "tasks": per_task,
            "success_rate": sum(rates) / len(rates) if rates else float("nan")}


def pooled(runs: list[dict], tasks: list[str]) -> dict:
    """Per task and over all tasks: successes, episodes, rate and 95% Clopper-Pearson interval of the
    pooled repeats; plus the mean and spread of the repeats' own mean rates."""
    out = {}
    for key in tasks + ["all"]:
        k = sum(r["tasks"][t]["successes"] for r in runs for t in (tasks if key == "all" else [key]))
        n = sum(r["tasks"][t]["episodes"] for r in runs for t in (tasks if key == "all" else [key]))
        low, high = clopper_pearson(k, n, 0.95) if n else (float("nan"), float("nan"))
        out[key] = {"successes": k, "episodes": n, "rate": k / n if n else float("nan"), "ci95": [low, high]}
    rates = [r["success_rate"] for r in runs]
    mean = sum(rates) / len(rates)
    spread = (sum((x - mean) ** 2 for x in rates) / (len(rates) - 1)) ** 0.5 if len(rates) > 1 else 0.0
    return {"tasks": out, "repeat_mean": mean, "repeat_sd": spread, "repeat_rates": rates}


def run_ablation(preset: str, overrides: list[str], out: str, repeats: int = 1, vlm_uri: str = "",
                 robotics_uri: str = "") -> dict:
    """Train, evaluate and compare the ablation's variants (module docstring); writes ``<out>/ablation.json``,
    ``<out>/report.html`` and ``<out>/tables.md`` and returns the ablation record."""
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}")
    if bool(vlm_uri) != bool(robotics_uri):
        raise ValueError("give both --vlm and --robotics (existing artifacts), or neither (the stages run here)")
    sections = resolve(preset, overrides)
    vla = split_overrides(sections["vla"])
    train_cfg = load(vla_finetune.VLAStageConfig, preset, vla, "vla").train
    sim = split_overrides(sections["sim_eval"]) + ["videos_per_task=0"]
    eval_cfg = load(EvalConfig, preset, sim, "sim_eval")
    first, end = parse_range(eval_cfg.episodes)
    n = end - first
    if first + repeats * n > eval_cfg.max_sample_size_per_model:
        raise ValueError(f"{repeats} repeats of sim_eval.episodes={eval_cfg.episodes} need scenes up to "
                         f"{first + repeats * n}, above sim_eval.max_sample_size_per_model="
                         f"{eval_cfg.max_sample_size_per_model}: fewer repeats or episodes")
    started = time.perf_counter()
    vlm, robo = (vlm_uri, robotics_uri) if vlm_uri else prepare_upstream(preset, sections, out)
    rollouts = storage.join(out, "rollouts")
    variants: dict[str, dict] = {name: {"runs": []} for name in [*TRAINED, SWAPPED]}
    for r in range(repeats):
        scenes = (first + r * n, first + (r + 1) * n)
        episodes = f"{scenes[0]}:{scenes[1]}"
        for name, extra in TRAINED.items():
            seed = train_cfg.seed + r
            policy = storage.join(out, "policies", f"{name}-{r}")
            log.info("ablation repeat %d/%d: training %s (seed %d)", r + 1, repeats, name, seed)
            trained = _train(preset, vla + extra + [f"train.seed={seed}"], vlm, robo, policy)
            sim_eval.run(policy, preset, sim, rollouts, name, episodes)
            variants[name]["runs"].append({"repeat": r, "seed": seed, "policy": policy, **trained,
                                           **repeat_success(rollouts, name, eval_cfg.tasks, *scenes)})
            if name == "pretrained":
                sim_eval.run(policy, preset, sim + ["swap_instructions=true"], rollouts, SWAPPED, episodes)
                variants[SWAPPED]["runs"].append({"repeat": r, "policy": policy,
                                                  **repeat_success(rollouts, SWAPPED, eval_cfg.tasks, *scenes)})
    all_scenes = f"{first}:{first + repeats * n}"
    sim_eval_baselines.run(BASELINES, preset, sim, rollouts, all_scenes)
    for name in BASELINES.split(","):
        variants[name] = {"runs": [repeat_success(rollouts, name, eval_cfg.tasks, first, first + repeats * n)]}
    for record in variants.values():
        record["pooled"] = pooled(record["runs"], eval_cfg.tasks)
    metrics = step_analysis.run([rollouts], "", storage.join(out, "analysis"), storage.join(out, "report.html"),
                                storage.join(out, "tables.md"), preset, sections["step_analysis"])
    record = {"preset": preset, "overrides": list(overrides), "split": eval_cfg.split, "tasks": eval_cfg.tasks,
              "scenes": all_scenes, "episodes_per_repeat": n, "repeats": repeats,
              "budget": {"max_steps": train_cfg.max_steps, "max_minutes": train_cfg.max_minutes,
                         "global_batch_size": train_cfg.global_batch_size},
              "upstream": {"vlm": vlm, "robotics": robo}, "variants": variants, "analysis": metrics,
              "wall_seconds": round(time.perf_counter() - started, 1)}
    storage.write_text(storage.join(out, "ablation.json"), json.dumps(record, indent=1) + "\n")
    return record


def _cell(stats: dict) -> str:
    low, high = stats["ci95"]
    return f"{100 * stats['rate']:.0f} [{100 * low:.0f}, {100 * high:.0f}]" if stats["episodes"] else "-"


def results_markdown(record: dict) -> str:
    """The ablation's table and caption (Markdown), generated from an ``ablation.json`` record."""
    tasks, budget = record["tasks"], record["budget"]
    lines = ["| policy | optimizer steps reached | training minutes | "
             + " | ".join(tasks) + " | all tasks (pooled) | mean of repeats +- sd |",
             "|---" * (len(tasks) + 5) + "|"]
    for name, variant in record["variants"].items():
        runs, pool = variant["runs"], variant["pooled"]
        steps = ", ".join(str(r["steps"]) for r in runs if r.get("steps") is not None) or "-"
        minutes = ", ".join(f"{r['train_seconds'] / 60:.1f}" for r in runs if r.get("train_seconds")) or "-"
        spread = f"{100 * pool['repeat_mean']:.1f} +- {100 * pool['repeat_sd']:.1f}" if len(runs) > 1 else "-"
        lines.append(f"| {name} | {steps} | {minutes} | " + " | ".join(_cell(pool["tasks"][t]) for t in tasks)
                     + f" | {_cell(pool['tasks']['all'])} | {spread} |")
    caption = (f"Success rate (%) on scenes {record['scenes']} of the {record['split']} split per task "
               f"({record['episodes_per_repeat']} scenes per training repeat, {record['repeats']} repeat(s) with "
               f"training seeds {', '.join(str(r['seed']) for r in record['variants']['pretrained']['runs'])}), "
               f"preset {record['preset']}{' with ' + ' '.join(record['overrides']) if record['overrides'] else ''}. "
               f"Every trained policy had the same budget: at most {budget['max_steps']} optimizer steps of "
               f"{budget['global_batch_size']} samples and {budget['max_minutes'] or 'no'} minutes; the steps and "
               "minutes each run reached are listed per repeat. Brackets: 95% Clopper-Pearson interval of the "
               "pooled episodes. random-init: the same architecture with random LLM and VLM weights; "
               f"{SWAPPED}: the pretrained policies with every task's instruction replaced by the next task's. "
               "STEP comparisons (Bonferroni): the step_analysis tables (tables.md, and below on a results page).")
    return "\n".join(["*" + caption + "*", "", *lines, "", *repeats_markdown(record)]) + "\n"


def repeats_markdown(record: dict) -> list[str]:
    """Every run counted: one row per (variant, repeat) with its seed, scenes, steps, minutes, final
    validation loss, successes per task and mean rate (baselines: one row over all scenes)."""
    tasks = record["tasks"]
    lines = ["*Every run, per repeat: successes out of the episodes evaluated per task.*", "",
             "| policy | repeat | training seed | scenes | optimizer steps | training minutes | final val loss | "
             + " | ".join(tasks) + " | mean |", "|---" * (len(tasks) + 8) + "|"]
    for name, variant in record["variants"].items():
        for run in variant["runs"]:
            cells = [name, str(run.get("repeat", "all")), str(run.get("seed", "-")), run["episodes"],
                     str(run.get("steps") or "-"),
                     f"{run['train_seconds'] / 60:.1f}" if run.get("train_seconds") else "-",
                     f"{run['final_val_loss']:.4f}" if run.get("final_val_loss") is not None else "-"]
            cells += [f"{run['tasks'][t]['successes']}/{run['tasks'][t]['episodes']}" for t in tasks]
            lines.append("| " + " | ".join(cells + [f"{100 * run['success_rate']:.1f}%"]) + " |")
    return lines


def write_results_doc(out: str, doc_dir: str) -> None:
    """``docs/results/<name>/``: the results page of :mod:`vlaforge.analysis.results_doc` (headline, STEP
    tables, plots; ``README.md``) plus the ablation's table and caption (``ablation.md``) and
    ``ablation.json``, all generated from the ablation's results in ``out``."""
    record = json.loads(storage.read_text(storage.join(out, "ablation.json")))
    table = results_markdown(record)
    storage.write_text(storage.join(doc_dir, "ablation.md"), table)
    storage.write_bytes(storage.join(doc_dir, "ablation.json"), storage.read_bytes(storage.join(out, "ablation.json")))
    results_doc.write_results_doc(storage.join(out, "analysis"), [storage.join(out, "rollouts")], doc_dir,
                                  f"Ablation: {record['preset']}", note=table, policy="pretrained")
