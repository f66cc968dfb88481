"""The ``vlaforge hf-vlm`` subcommand: a Hugging Face VLM as the pipeline's VLM model folder."""

from __future__ import annotations

from vlaforge import strict_json
from vlaforge.cli.options import existing_output_flags
from vlaforge.cli.train import _config_args


def _hf_vlm(args) -> int:
    from vlaforge.stages.hf_vlm import run
    from vlaforge.train.loop import Preempted

    try:
        summary = run(args.preset, args.overrides, args.out, args.captions)
    except Preempted as err:
        print(err)
        return 143
    print(strict_json.dumps(summary, indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("hf-vlm", help="load a Hugging Face VLM (hub name, folder, s3:// or tiny:<family>), "
                                      "optionally fine-tune it on captions, and write it as a VLM model folder")
    _config_args(p)
    existing_output_flags(p)
    p.add_argument("--out", required=True, help="model output folder or URI")
    p.add_argument("--captions", default="", help="image-caption shards to fine-tune on (default: none)")
    p.set_defaults(func=_hf_vlm)
