"""CLI subcommands: ``vlaforge preprocess`` and ``vlaforge lerobot-import`` (alias ``import-lerobot``)."""

from __future__ import annotations

import argparse
import json

from vlaforge import strict_json
from vlaforge.cli.options import existing_output_flags


def _preprocess(args) -> int:
    from vlaforge.stages.preprocess_robotics import run

    overrides = [o.removeprefix("preprocess.") for o in args.overrides]
    print(strict_json.dumps(run(args.preset, overrides, args.episodes, args.out), indent=2))
    return 0


def _camera(text: str) -> tuple[str, str]:
    feature, sep, name = text.partition("=")
    if not sep or not feature or not name:
        raise argparse.ArgumentTypeError(f"--camera {text!r} must look like FEATURE=NAME")
    return feature, name


def _import_lerobot(args) -> int:
    from vlaforge.stages.lerobot_import import run

    flags = {"state_slice": args.state_slice, "action_slice": args.action_slice, "task": args.task,
             "image_size": args.image_size, "proprio_dim": 0 if args.keep_dims else args.proprio_dim,
             "action_dim": 0 if args.keep_dims else args.action_dim}
    overrides = [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    if args.camera:
        overrides.append(f"cameras={json.dumps(dict(args.camera))}")
    overrides += [o.removeprefix("lerobot_import.") for o in args.overrides]
    print(strict_json.dumps(run(args.preset, overrides, args.src, args.out), indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("preprocess", help="raw robot episodes -> robotics training shards + stats.json")
    p.add_argument("--episodes", nargs="+", required=True, metavar="URI",
                   help="raw episode dataset folders or s3:// URIs (each with episodes.jsonl)")
    p.add_argument("--out", required=True, help="output folder or URI")
    p.add_argument("--preset", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an entry of the preprocess section, e.g. --set future_steps=16 (repeatable)")
    existing_output_flags(p)
    p.set_defaults(func=_preprocess)

    p = sub.add_parser("lerobot-import", aliases=["import-lerobot"],
                       help="import a LeRobot dataset (v2.0, v2.1, v3.0) as raw robot episodes")
    p.add_argument("src", help="LeRobot dataset folder or s3:// URI (with meta/info.json)")
    p.add_argument("out", help="output folder or URI for the raw episodes")
    p.add_argument("--preset", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an entry of the lerobot_import section, e.g. --set state_key=observation.joints")
    p.add_argument("--camera", type=_camera, action="append", default=[], metavar="FEATURE=NAME",
                   help="import only these camera features under these names (repeatable; "
                        "default: every image/video feature, named after its last part)")
    p.add_argument("--state-slice", help="dimensions of the state feature used as proprio: 'a:b' or 'i,j,k'")
    p.add_argument("--action-slice", help="dimensions of action kept: 'a:b' or 'i,j,k'")
    p.add_argument("--proprio-dim", type=int, help="expected proprio dimension (preset default 4)")
    p.add_argument("--action-dim", type=int, help="expected action dimension (preset default 4)")
    p.add_argument("--keep-dims", action="store_true", help="keep whatever dimensions the data has")
    p.add_argument("--task", help="task name of every episode (default: the dataset folder's name)")
    p.add_argument("--image-size", type=int, help="resize frames to this square size (0: keep)")
    existing_output_flags(p)
    p.set_defaults(func=_import_lerobot)
