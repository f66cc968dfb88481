"""Aggregating outcomes across tasks: balanced (equal share per task) and unweighted."""

from __future__ import annotations

import numpy as np


def common_tasks(completed: dict[str, dict[str, int]]) -> tuple[list[str], list[str]]:
    """(common, excluded) tasks given episode counts ``{model: {task: n}}``.

    A task is common when every model has at least one episode counted on it.
    """
    tasks = sorted({t for per_model in completed.values() for t in per_model})
    common = [t for t in tasks if all(per_model.get(t, 0) > 0 for per_model in completed.values())]
    return common, [t for t in tasks if t not in common]


def balanced_outcomes(outcomes: dict[str, dict[str, list[bool]]], tasks: list[str],
                      seed: int = 0) -> dict[str, list[bool]]:
    """Per model: the first ``n_m`` outcomes of each task in ``tasks`` (``n_m`` = the model's minimum
    completed count over them), concatenated in task order and shuffled with a fixed seed."""
    out = {}
    for model, per_task in outcomes.items():
        n_m = min(len(per_task.get(t, [])) for t in tasks) if tasks else 0
        seq = np.array([o for t in sorted(tasks) for o in per_task[t][:n_m]], dtype=bool)
        out[model] = np.random.default_rng(seed).permutation(seq).tolist()
    return out
