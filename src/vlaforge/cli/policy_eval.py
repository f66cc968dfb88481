"""``vlaforge policy-eval``: re-run the closed-loop evaluation of saved policies and print each task's
success with its 95% Clopper-Pearson interval (the ablation command of the metaworld4 results).

Each policy spec is a bundle folder/URI, optionally with inference settings as a query string, or a
baseline; every policy meets the same evaluation scenes. Results go to ``out`` (resumable: a run
that was stopped picks up its pending episodes), one model folder per policy::

    vlaforge policy-eval --preset metaworld4 --episodes 0:50 \\
        --policy runs/.../vla-finetune/policy --policy 'runs/.../policy?execute_steps=8' --policy baseline:random
"""

from __future__ import annotations

import re

from vlaforge.analysis.summary import clopper_pearson
from vlaforge.stages.sim_eval import run

CONFIDENCE = 0.95


def model_name(spec: str, index: int) -> str:
    """A folder-safe model name: ``p<index>-<last path part>[-<settings>]``."""
    path, _, query = spec.partition("?")
    base = path.rstrip("/").rsplit("/", 1)[-1].replace("baseline:", "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"p{index}-{base}" + (f"-{query}" if query else ""))


def format_report(spec: str, report: dict) -> list[str]:
    """Lines of one policy's table: per task successes/episodes, rate and interval; then the mean."""
    lines = [spec]
    hits = total = 0
    for task, summary in report["tasks"].items():
        n, k = summary["episodes"], summary["successes"]
        low, high = clopper_pearson(k, n, CONFIDENCE) if n else (float("nan"), float("nan"))
        lines.append(f"  {task:28s} {k:3d}/{n:<3d} = {k / max(n, 1):6.1%}   "
                     f"{CONFIDENCE:.0%} CI [{low:5.1%}, {high:5.1%}]")
        hits, total = hits + k, total + n
    low, high = clopper_pearson(hits, total, CONFIDENCE) if total else (float("nan"), float("nan"))
    lines.append(f"  {'mean over tasks':28s} {report['success_rate']:14.1%}   "
                 f"pooled {CONFIDENCE:.0%} CI [{low:5.1%}, {high:5.1%}]")
    return lines


def evaluate_policies(specs: list[str], preset: str, overrides: list[str], out: str, episodes: str = "") -> str:
    """Evaluate every spec into ``out``; returns the printed table."""
    lines = []
    for i, spec in enumerate(specs):
        report = run(spec, preset, list(overrides) + ["videos_per_task=0"], out, model_name(spec, i), episodes)
        lines += format_report(spec, report)
    return "\n".join(lines)
