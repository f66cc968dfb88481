"""Synthetic rollout results in the sim_eval layout, for tests, benchmarks and demos."""

from __future__ import annotations

import json

import numpy as np

from vlaforge import storage


def write_results(root: str, rates: dict[str, dict[str, float]], episodes: int, budget: int | None = None,
                  seed: int = 0, timestamp: str = "20260101-000000", start: int = 0) -> None:
    """Write ``<root>/<model>/<Task>/rollouts/<timestamp>/results.json`` with Bernoulli(rate) outcomes.

    ``rates`` maps model -> task -> success probability; scenario indices run from ``start``.
    """
    rng = np.random.default_rng(seed)
    for model, per_task in sorted(rates.items()):
        for task, rate in sorted(per_task.items()):
            wins = rng.random(episodes) < rate
            evaluations = [{"skill_type": task, "scenario_index": start + i, "is_success": bool(w),
                            "is_pending": False, "total_time": round(float(rng.uniform(5, 20)), 3),
                            "failure_message": None if w else "timeout"} for i, w in enumerate(wins)]
            doc = {"max_sample_size_per_model": budget or episodes, "evaluations": evaluations}
            storage.write_text(storage.join(root, model, task, "rollouts", timestamp, "results.json"),
                               json.dumps(doc))
