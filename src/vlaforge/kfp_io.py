"""Helpers for component bodies: metrics that KFP shows and caches."""

from __future__ import annotations

import json
import math
import os


def write_metrics(artifact, metrics: dict[str, float]) -> None:
    """Log ``metrics`` on a KFP ``Metrics`` artifact and also write them to its file.

    KFP's local cache ignores an output that has no file, so the JSON file keeps the task cacheable.
    """
    clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    for key, value in clean.items():
        artifact.log_metric(key, value)
    os.makedirs(os.path.dirname(artifact.path) or ".", exist_ok=True)
    with open(artifact.path, "w") as f:
        json.dump(clean, f, indent=2)
