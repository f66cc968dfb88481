"""CLI subcommands of the simulator stages: ``record-demos``, ``caption-data`` and ``sim-eval``."""

from __future__ import annotations

import argparse

from vlaforge import strict_json
from vlaforge.cli.options import existing_output_flags


def _overrides(args, section: str) -> list[str]:
    """``--set`` entries of one section; a leading ``<section>.`` is optional."""
    return [o.removeprefix(f"{section}.") for o in args.overrides]


def _record_demos(args) -> int:
    from vlaforge.stages.record_demos import run

    report = run(args.preset, _overrides(args, "demos"), args.out)
    print(strict_json.dumps({k: v for k, v in report.items() if k != "config"}, indent=2))
    return 0


def _caption_data(args) -> int:
    from vlaforge.stages.caption_data import run

    print(strict_json.dumps(run(args.preset, _overrides(args, "captions"), args.out, args.source), indent=2))
    return 0


def _sim_eval(args) -> int:
    from vlaforge.stages.sim_eval import run

    report = run(args.policy, args.preset, _overrides(args, "sim_eval"), args.out, args.model_name,
                 args.episodes, args.videos_html)
    print(strict_json.dumps(report, indent=2))
    return 0


def _policy_eval(args) -> int:
    import tempfile

    from vlaforge.cli.policy_eval import evaluate_policies

    with tempfile.TemporaryDirectory(prefix="policy-eval-") as tmp:
        print(evaluate_policies(args.policy, args.preset, _overrides(args, "sim_eval"), args.out or tmp, args.episodes))
    return 0


def _stage_args(p: argparse.ArgumentParser, section: str, example: str) -> None:
    p.add_argument("--out", required=True, help="output folder or s3:// URI")
    p.add_argument("--preset", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override an entry of the {section} section, e.g. --set {example} (repeatable)")
    existing_output_flags(p)


def register(sub) -> None:
    p = sub.add_parser("record-demos", help="record scripted-expert demonstrations in the embedded simulator")
    _stage_args(p, "demos", "episodes_per_task=20")
    p.set_defaults(func=_record_demos)

    p = sub.add_parser("caption-data", help="render captioned scenes, or import img2dataset shards (--source)")
    _stage_args(p, "captions", "scenes_per_task=50")
    p.add_argument("--source", default="", metavar="URI",
                   help="existing img2dataset-layout shards to validate and copy instead of rendering")
    p.set_defaults(func=_caption_data)

    p = sub.add_parser("sim-eval", help="closed-loop evaluation of a policy in the embedded simulator")
    _stage_args(p, "sim_eval", "workers=2")
    p.add_argument("--policy", required=True,
                   help="baseline:expert | baseline:random | baseline:zero | a policy bundle folder or URI")
    p.add_argument("--episodes", default="", metavar="START:END",
                   help="episode indices to run (end exclusive); default: the preset's")
    p.add_argument("--model-name", default=None, help="model folder name in the results (default: the policy's name)")
    p.add_argument("--videos-html", default="", metavar="PATH", help="also write an HTML page of the episode videos")
    p.set_defaults(func=_sim_eval)

    p = sub.add_parser("policy-eval", help="re-evaluate saved policies: per-task success with 95%% Clopper-Pearson "
                                           "intervals (ablations of inference settings: 'BUNDLE?execute_steps=8')")
    p.add_argument("--policy", action="append", required=True, metavar="SPEC",
                   help="bundle URI[?execute_steps=N&flow_steps=N] or baseline:<name> (repeatable)")
    p.add_argument("--preset", default="metaworld4", help="preset whose sim_eval section is used (default: metaworld4)")
    p.add_argument("--episodes", default="", metavar="START:END", help="episode indices (default: the preset's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an entry of the sim_eval section, e.g. --set workers=2 (repeatable)")
    p.add_argument("--out", default="", help="results folder, kept and resumable (default: a temporary one)")
    p.set_defaults(func=_policy_eval)
