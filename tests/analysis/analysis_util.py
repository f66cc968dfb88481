"""Helpers of the analysis tests: results files and outcome strings."""

import json
import os


def episode(task: str, index: int, status: str, total_time: float = 10.0) -> dict:
    """One evaluation entry with status success, failure, pending or crashed."""
    return {"skill_type": task, "scenario_index": index,
            "is_success": {"success": True, "failure": False}.get(status),
            "is_pending": status == "pending", "total_time": total_time,
            "failure_message": None if status == "success" else status}


def write_results(root, rel: str, evaluations: list[dict], budget=200, **extra) -> str:
    """Write ``root/rel`` (a results.json path) and return its path."""
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    doc = {"evaluations": evaluations, **extra}
    if budget is not None:
        doc["max_sample_size_per_model"] = budget
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def outcomes(text: str) -> list[bool]:
    """``"TFT"`` or ``"F*10"`` as booleans."""
    if "*" in text:
        char, count = text.split("*")
        return [char == "T"] * int(count)
    return [c == "T" for c in text]
