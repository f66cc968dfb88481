"""The headline of a policy comparison, read back from a step_analysis output folder.

Per task: each model's successes with the 90% interval (``per_task.csv``), and the sequential test's
verdict of the policy against every other model (``pairwise.csv``): ``better``, ``worse`` or ``no
difference shown``.
"""

from __future__ import annotations

import csv
import io

from vlaforge import storage
from vlaforge.analysis.report import Table

DEFAULT_POLICY = "vlaforge_policy"  # the pipelines' default model_name


def _rows(details_uri: str, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(storage.read_text(storage.join(details_uri, name)))))


def _success(row: dict[str, str]) -> str:
    """``30/30 100% [90.5-100]``: successes out of n, the rate and its 90% interval."""
    return (f"{row['successes']}/{row['n']} {float(row['success_pct']):.0f}% "
            f"[{float(row['ci90_low_pct']):.1f}-{float(row['ci90_high_pct']):.1f}]")


def verdict(pair: dict[str, str], policy: str) -> str:
    """The decision of one pairwise row seen from ``policy``: better, worse or no difference shown."""
    if pair["significant"] != "yes":
        return "no difference shown"
    policy_first = pair["policy0"] == policy
    higher_first = pair["decision"] == "p0 > p1"
    return "better" if policy_first == higher_first else "worse"


def headline_table(details_uri: str, policy: str = DEFAULT_POLICY) -> Table:
    """Columns: task, the policy and every other model's success, then the policy's verdict against each."""
    per_task = _rows(details_uri, "per_task.csv")
    models = sorted({r["model"] for r in per_task})
    if policy not in models:
        raise ValueError(f"{details_uri}: no model '{policy}' in per_task.csv; models: {', '.join(models)}")
    others = [m for m in models if m != policy]
    cells = {(r["task"], r["model"]): _success(r) for r in per_task}
    verdicts = {(p["scope"], p["policy0"] if p["policy1"] == policy else p["policy1"]): verdict(p, policy)
                for p in _rows(details_uri, "pairwise.csv") if policy in (p["policy0"], p["policy1"])}
    head = ["task", policy, *others, *(f"{policy} vs {m}" for m in others)]
    rows = [[task, *(cells.get((task, m), "") for m in [policy, *others]),
             *(verdicts.get((task, m), "") for m in others)]
            for task in sorted({r["task"] for r in per_task})]
    return head, rows


def to_text(table: Table) -> str:
    """Aligned plain-text columns for the console."""
    head, rows = table
    widths = [max(len(str(v)) for v in column) for column in zip(head, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    return "\n".join(lines)
