"""Re-run the closed-loop evaluation of saved policies and print per-task success with 95% Clopper-Pearson
intervals (the ablation command of the metaworld4 results).

Each ``--policy`` is a bundle folder/URI, optionally with inference settings as a query string, or a
baseline; every policy meets the same evaluation scenes. Results go to ``--out`` (resumable: a run
that was stopped picks up its pending episodes), one model folder per policy.

    .venv/bin/python bench/policy_eval.py --preset metaworld4 --episodes 0:50 \\
        --policy runs/.../vla-finetune/policy --policy 'runs/.../policy?execute_steps=8' --policy baseline:random
"""

from __future__ import annotations

import argparse
import logging
import re
import tempfile

from vlaforge.analysis.summary import clopper_pearson
from vlaforge.sim.evaluate import run


def model_name(spec: str, index: int) -> str:
    """A folder-safe model name: ``p<index>-<last path part>[-<settings>]``."""
    path, _, query = spec.partition("?")
    base = path.rstrip("/").rsplit("/", 1)[-1].replace("baseline:", "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"p{index}-{base}" + (f"-{query}" if query else ""))


def format_report(spec: str, report: dict) -> list[str]:
    lines = [f"{spec}"]
    hits = total = 0
    for task, summary in report["tasks"].items():
        n, k = summary["episodes"], summary["successes"]
        low, high = clopper_pearson(k, n) if n else (float("nan"), float("nan"))
        lines.append(f"  {task:28s} {k:3d}/{n:<3d} = {k / max(n, 1):6.1%}   95% CI [{low:5.1%}, {high:5.1%}]")
        hits, total = hits + k, total + n
    low, high = clopper_pearson(hits, total) if total else (float("nan"), float("nan"))
    lines.append(f"  {'mean over tasks':28s} {report['success_rate']:14.1%}   pooled 95% CI [{low:5.1%}, {high:5.1%}]")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", action="append", required=True, help="bundle URI[?execute_steps=N&flow_steps=N] "
                        "or baseline:<name> (repeatable)")
    parser.add_argument("--preset", default="metaworld4")
    parser.add_argument("--episodes", default="", help="start:end (default: the preset's sim_eval range)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an entry of the sim_eval section, e.g. --set workers=2")
    parser.add_argument("--out", default="", help="results folder (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="policy-eval-") as tmp:
        out = args.out or tmp
        lines = []
        for i, spec in enumerate(args.policy):
            report = run(spec, args.preset, args.overrides + ["videos_per_task=0"], out, model_name(spec, i),
                         args.episodes)
            lines += format_report(spec, report)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
