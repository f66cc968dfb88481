"""CLI subcommands of the text and training stages and the embedded pipeline."""

from __future__ import annotations

import argparse

from vlaforge import strict_json
from vlaforge.cli.options import existing_output_flags


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config entry of this stage, e.g. --set model.n_layers=4 (repeatable)")


def _tokenize(args) -> int:
    from vlaforge.stages.tokenize import run

    print(strict_json.dumps(run(args.preset, args.overrides, args.out), indent=2))
    return 0


def _llm(args) -> int:
    from vlaforge.stages.llm_pretrain import run
    from vlaforge.train.loop import Preempted

    try:
        summary = run(args.preset, args.overrides, args.data, args.out)
    except Preempted as err:
        print(err)
        return 143
    if summary:  # ranks other than 0 of a torchrun job return an empty summary
        print(strict_json.dumps(summary, indent=2))
    return 0


def _vlm(args) -> int:
    from vlaforge.stages.vlm_pretrain import run

    print(strict_json.dumps(run(args.preset, args.overrides, args.llm, args.captions, args.out), indent=2))
    return 0


def _vla(args) -> int:
    from vlaforge.stages.vla_finetune import run

    print(strict_json.dumps(run(args.preset, args.overrides, args.backbone, args.robotics, args.out), indent=2))
    return 0


def _run(args) -> int:
    from vlaforge.run import run_embedded

    run_embedded(args.preset, args.overrides, args.root, fresh=args.no_cache)
    return 0


def register(sub) -> None:
    p = sub.add_parser("tokenize", help="train a BPE tokenizer and write tokenized shards")
    _config_args(p)
    existing_output_flags(p)
    p.add_argument("--out", required=True, help="output folder or s3:// URI")
    p.set_defaults(func=_tokenize)

    p = sub.add_parser("llm-pretrain", help="pretrain the from-scratch LLM on tokenized shards")
    _config_args(p)
    existing_output_flags(p)
    p.add_argument("--data", required=True, help="the tokenize stage's output folder or URI")
    p.add_argument("--out", required=True, help="model output folder or URI")
    p.set_defaults(func=_llm)

    p = sub.add_parser("vlm-pretrain", help="train ViT + projector into the LLM on image captions")
    _config_args(p)
    existing_output_flags(p)
    p.add_argument("--llm", required=True, help="the llm_pretrain output folder or URI")
    p.add_argument("--captions", required=True, help="img2dataset-layout caption shards (folder or URI)")
    p.add_argument("--out", required=True, help="model output folder or URI")
    p.set_defaults(func=_vlm)

    p = sub.add_parser("vla-finetune", help="fine-tune a VLA policy (flow-matching action expert)")
    _config_args(p)
    existing_output_flags(p)
    p.add_argument("--backbone", required=True, help="vlm_pretrain or hf_vlm output (folder or URI)")
    p.add_argument("--robotics", required=True, help="preprocessed robotics shards (folder or URI)")
    p.add_argument("--out", required=True, help="policy bundle output folder or URI")
    p.set_defaults(func=_vla)

    p = sub.add_parser("run", help="run the end-to-end pipeline on this machine (kfp.local)")
    p.add_argument("--preset", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a stage's config entry, e.g. --set llm.model.n_layers=4 (repeatable)")
    p.add_argument("--root", default="runs", help="local pipeline root for artifacts and the cache (default: runs)")
    p.add_argument("--no-cache", action="store_true", help="run every stage again, ignoring cached results")
    p.set_defaults(func=_run)
