"""CLI subcommands: ``vlaforge preprocess`` and ``vlaforge import-lerobot``."""

from __future__ import annotations

import argparse
import json


def _preprocess(args) -> int:
    from vlaforge.stages.preprocess_robotics import run

    overrides = [o.removeprefix("preprocess.") for o in args.overrides]
    print(json.dumps(run(args.preset, overrides, args.episodes, args.out), indent=2))
    return 0


def _camera(text: str) -> tuple[str, str]:
    feature, sep, name = text.partition("=")
    if not sep or not feature or not name:
        raise argparse.ArgumentTypeError(f"--camera {text!r} must look like FEATURE=NAME")
    return feature, name


def _import_lerobot(args) -> int:
    from vlaforge.robotics.lerobot import convert_lerobot

    summary = convert_lerobot(
        args.src, args.out, cameras=dict(args.camera) or None, state_slice=args.state_slice,
        action_slice=args.action_slice, proprio_dim=None if args.keep_dims else args.proprio_dim,
        action_dim=None if args.keep_dims else args.action_dim, task=args.task, image_size=args.image_size)
    print(json.dumps(summary, indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("preprocess", help="raw robot episodes -> robotics training shards + stats.json")
    p.add_argument("--episodes", nargs="+", required=True, metavar="URI",
                   help="raw episode dataset folders or s3:// URIs (each with episodes.jsonl)")
    p.add_argument("--out", required=True, help="output folder or URI")
    p.add_argument("--preset", default="tiny", help="preset name or YAML file (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an entry of the preprocess section, e.g. --set future_steps=16 (repeatable)")
    p.set_defaults(func=_preprocess)

    p = sub.add_parser("import-lerobot", help="convert a LeRobot v2.x dataset into raw robot episodes")
    p.add_argument("src", help="LeRobot dataset folder or s3:// URI (with meta/info.json)")
    p.add_argument("out", help="output folder or URI for the raw episodes")
    p.add_argument("--camera", type=_camera, action="append", default=[], metavar="FEATURE=NAME",
                   help="import only these camera features under these names (repeatable; "
                        "default: every image/video feature, named after its last part)")
    p.add_argument("--state-slice", help="dimensions of observation.state used as proprio: 'a:b' or 'i,j,k'")
    p.add_argument("--action-slice", help="dimensions of action kept: 'a:b' or 'i,j,k'")
    p.add_argument("--proprio-dim", type=int, default=4, help="expected proprio dimension (default 4)")
    p.add_argument("--action-dim", type=int, default=4, help="expected action dimension (default 4)")
    p.add_argument("--keep-dims", action="store_true", help="keep whatever dimensions the data has")
    p.add_argument("--task", help="task name of every episode (default: the dataset folder's name)")
    p.add_argument("--image-size", type=int, default=0, help="resize frames to this square size (0: keep)")
    p.set_defaults(func=_import_lerobot)
