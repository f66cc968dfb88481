"""A training stage's final summary (losses, rates, steps, ...), left in its output as ``train_summary.json``,
so that a launcher whose stage ran in other processes (torchrun, a TrainJob) hands on the same numbers
(see :mod:`vlaforge.kube.launch`)."""

from __future__ import annotations

import json

from vlaforge import storage, strict_json

SUMMARY = "train_summary.json"


def write_summary(out_uri: str, summary: dict) -> None:
    """Write a stage's final summary to ``<out_uri>/train_summary.json`` (replacing the loop's)."""
    storage.write_text(storage.join(out_uri, SUMMARY), strict_json.dumps(summary, indent=2))


def read_summary(out_uri: str) -> dict:
    """The summary a training stage left in its output ``out_uri``."""
    path = storage.join(out_uri, SUMMARY)
    if not storage.exists(path):
        raise RuntimeError(f"{out_uri} holds no {SUMMARY}: the training stage did not finish")
    return json.loads(storage.read_text(path))
