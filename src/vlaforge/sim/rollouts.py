"""Rollout results in the layout of docs/reference/formats.md, resumable and budget-checked.

``<out>/<model>/<Task>/rollouts/<timestamp>/results.json`` holds ``max_sample_size_per_model`` and one
entry per requested episode. A run writes all its entries as pending first and rewrites the file
atomically after every episode, so a killed run leaves an exact record: finished episodes, and
pending ones. Requesting the same range again resumes that file and runs only its pending episodes;
a range that overlaps other existing episodes, or would exceed the budget, is refused.
"""

from __future__ import annotations

import datetime
import json
import re

from vlaforge import storage

RESULTS = "results.json"


class RolloutError(ValueError):
    """Existing results conflict with a request, or a results file is malformed (names the file)."""


def task_dirname(task: str) -> str:
    """PascalCase task folder and skill_type: ``reach-v3`` -> ``ReachV3``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", task) if part)


def parse_range(text: str) -> tuple[int, int]:
    """``start:end`` (end exclusive) -> (start, end)."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    if not match or int(match[1]) >= int(match[2]):
        raise ValueError(f"episode range '{text}' must be 'start:end' with 0 <= start < end")
    return int(match[1]), int(match[2])


def pending_record(skill_type: str, index: int) -> dict:
    return {"skill_type": skill_type, "scenario_index": index, "is_success": None,
            "is_pending": True, "total_time": 0.0, "failure_message": None}


class RolloutFile:
    """One ``results.json``: its entries by scenario index, saved atomically on every update."""

    def __init__(self, uri: str, budget: int, records: dict[int, dict]):
        self.uri = uri
        self.budget = budget
        self.records = records

    @classmethod
    def load(cls, uri: str) -> RolloutFile:
        try:
            data = json.loads(storage.read_text(uri))
            budget = int(data["max_sample_size_per_model"])
            records = {int(r["scenario_index"]): r for r in data["evaluations"]}
        except (ValueError, KeyError, TypeError) as err:
            raise RolloutError(f"{uri}: not a valid results.json: {type(err).__name__}: {err}") from err
        if len(records) != len(data["evaluations"]):
            raise RolloutError(f"{uri}: the same scenario_index appears twice")
        return cls(uri, budget, records)

    @property
    def folder(self) -> str:
        """The timestamp folder holding this file (and the run's videos)."""
        return self.uri[: -len(RESULTS) - 1]

    def pending(self) -> list[int]:
        return sorted(i for i, r in self.records.items() if r.get("is_pending"))

    def update(self, record: dict) -> None:
        self.records[int(record["scenario_index"])] = record
        self.save()

    def save(self) -> None:
        data = {"max_sample_size_per_model": self.budget,
                "evaluations": [self.records[i] for i in sorted(self.records)]}
        storage.write_text(self.uri, json.dumps(data, indent=1) + "\n")


def task_dir(out_uri: str, model: str, task: str) -> str:
    return storage.join(out_uri, model, task_dirname(task), "rollouts")


def load_task_results(out_uri: str, model: str, task: str) -> list[RolloutFile]:
    """Every results file of (model, task) under ``out_uri``, oldest first."""
    root = task_dir(out_uri, model, task)
    if not storage.exists(root):
        return []
    files = []
    for name in storage.listdir(root):
        uri = storage.join(root, name, RESULTS)
        if storage.exists(uri):
            files.append(RolloutFile.load(uri))
    return files


def plan_task(out_uri: str, model: str, task: str, start: int, end: int, budget: int) -> RolloutFile:
    """The results file that will hold episodes ``start:end`` of (model, task).

    An earlier file holding exactly these indices is resumed; otherwise a new file (saved by the
    caller) lists every episode as pending. Indices at or beyond the budget and overlap with other
    existing episodes are errors naming the conflict; together they keep (model, task) in budget.
    """
    name = f"{model}/{task_dirname(task)}"
    if end > budget:
        raise RolloutError(f"{name}: episode range {start}:{end} exceeds max_sample_size_per_model="
                           f"{budget} (indices must be below {budget})")
    wanted = set(range(start, end))
    existing = load_task_results(out_uri, model, task)
    for f in existing:
        if f.budget != budget:
            raise RolloutError(f"{f.uri}: max_sample_size_per_model is {f.budget}, this evaluation "
                               f"uses {budget}; one value must hold across all files")
        if set(f.records) == wanted:
            return f
    for f in existing:
        overlap = wanted & set(f.records)
        if overlap:
            raise RolloutError(
                f"{name}: episodes {_span(overlap)} already exist in {f.uri}; request a range that "
                f"does not overlap, or repeat that file's exact range to resume it")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H-%M-%S-%fZ")
    run = RolloutFile(storage.join(task_dir(out_uri, model, task), stamp, RESULTS), budget,
                      {i: pending_record(task_dirname(task), i) for i in sorted(wanted)})
    return run


def _span(indices: set[int]) -> str:
    low, high = min(indices), max(indices)
    return f"{low}:{high + 1}" if len(indices) == high - low + 1 else ", ".join(map(str, sorted(indices)))


def summarize(files: list[RolloutFile]) -> dict:
    """Counts over every episode of one (model, task): success rate over finished episodes."""
    records = [r for f in files for r in f.records.values()]
    finished = [r for r in records if r["is_success"] is not None]
    successes = sum(bool(r["is_success"]) for r in finished)
    return {
        "episodes": len(finished),
        "successes": successes,
        "success_rate": successes / len(finished) if finished else float("nan"),
        "crashed": sum(r["is_success"] is None and not r.get("is_pending") for r in records),
        "pending": sum(bool(r.get("is_pending")) for r in records),
    }
