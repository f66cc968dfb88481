"""``vlaforge analyze RESULTS_DIR... --out DIR``: the step_analysis stage from the command line."""

from __future__ import annotations

from vlaforge import strict_json
from vlaforge.analysis.config import CRASH_POLICIES
from vlaforge.analysis.guarantee import GUARANTEES
from vlaforge.cli.options import existing_output_flags


def register(sub) -> None:
    p = sub.add_parser("analyze", help="compare policies from rollout results (STEP, intervals, letters, report)")
    p.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                   help="results roots holding [<eval_set>/]<model>/<Task>/rollouts/<ts>/results.json (local or s3://)")
    p.add_argument("--out", required=True, help="output folder (local or s3://)")
    p.add_argument("--rename", default=None, help="YAML/JSON file {models: {old: new}, tasks: {old: new}}")
    p.add_argument("--preset", default="tiny", help="preset whose step_analysis section is used (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a step_analysis setting (alpha, guarantee, crashed, seed); repeatable")
    p.add_argument("--alpha", type=float, default=None, help="family-wise significance level (preset: 0.05)")
    p.add_argument("--guarantee", choices=GUARANTEES, default=None,
                   help="two-sided: equal policies are separated with probability <= alpha (preset default); "
                        "per-direction: alpha for each direction, as VLA Foundry reports")
    p.add_argument("--crashed", choices=CRASH_POLICIES, default=None,
                   help="crashed episodes count as failures (preset default) or make the analysis refuse them")
    p.add_argument("--seed", type=int, default=None, help="seed of the aggregate shuffle and STEP randomisation")
    p.add_argument("--title", default="Policy comparison", help="report title")
    existing_output_flags(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("results-doc", help="write a docs/results page (tables, plots, captioned episode strips) "
                                           "from a step_analysis output folder and its rollout results")
    p.add_argument("details", metavar="DETAILS_DIR", help="step_analysis output folder (its `details` artifact, "
                                                          "or `vlaforge analyze --out`)")
    p.add_argument("--results", action="append", required=True, metavar="RESULTS_DIR",
                   help="a results root the analysis read (repeatable): the episode captions come from it")
    p.add_argument("--out", required=True, help="the page's folder, e.g. docs/results/tiny")
    p.add_argument("--title", required=True, help="page title")
    p.add_argument("--note", default="", help="a paragraph under the title: what was run")
    p.add_argument("--policy", default="vlaforge_policy", help="the model the headline compares with the others")
    p.set_defaults(func=_results_doc)


def _results_doc(args) -> int:
    from vlaforge.analysis.results_doc import write_results_doc

    print(write_results_doc(args.details, args.results, args.out, args.title, args.note, args.policy))
    return 0


def _run(args) -> int:
    from vlaforge.analysis.run import load_config, run_analysis
    from vlaforge.artifacts import check_input, check_output

    flags = {k: getattr(args, k) for k in ("alpha", "guarantee", "crashed", "seed")}
    cfg = load_config(args.preset, args.overrides + [f"{k}={v}" for k, v in flags.items() if v is not None])
    check_output(args.out, "step_analysis")
    for uri in args.results:
        check_input(uri, "rollouts", "analyze results")
    metrics = run_analysis(args.results, args.out, rename_uri=args.rename, alpha=cfg.alpha, seed=cfg.seed,
                           title=args.title, guarantee=cfg.guarantee, crashed=cfg.crashed)
    print(strict_json.dumps(metrics, indent=2))
    return 0
