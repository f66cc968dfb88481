"""``vlaforge analyze RESULTS_DIR... --out DIR``: the step_analysis stage from the command line."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("analyze", help="compare policies from rollout results (STEP, intervals, letters, report)")
    p.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                   help="results roots holding [<eval_set>/]<model>/<Task>/rollouts/<ts>/results.json (local or s3://)")
    p.add_argument("--out", required=True, help="output folder (local or s3://)")
    p.add_argument("--rename", default=None, help="YAML/JSON file {models: {old: new}, tasks: {old: new}}")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise significance level (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the aggregate shuffle and STEP randomisation")
    p.add_argument("--title", default="Policy comparison", help="report title")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from vlaforge.analysis.run import run_analysis

    metrics = run_analysis(args.results, args.out, rename_uri=args.rename, alpha=args.alpha, seed=args.seed,
                           title=args.title)
    print(json.dumps(metrics, indent=2))
    return 0
