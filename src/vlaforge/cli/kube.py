"""``vlaforge compile``: every pipeline to IR YAML and Kubernetes manifests."""

from __future__ import annotations

import os


def _compile(args) -> int:
    if args.profile:
        os.environ["VLAFORGE_PROFILE"] = args.profile
    if args.registry:
        os.environ["VLAFORGE_REGISTRY"] = args.registry
    from vlaforge.kube.compile import compile_all

    for path in compile_all(args.out, args.pipeline or None):
        print(path)
    return 0


def register(sub) -> None:
    from vlaforge.kube.compile import PIPELINES

    p = sub.add_parser("compile", help="compile the pipelines to KFP IR YAML (+ Pipeline/PipelineVersion CRs)")
    p.add_argument("--out", default="pipelines/compiled", help="output folder (default: pipelines/compiled)")
    p.add_argument("--pipeline", action="append", choices=list(PIPELINES),
                   help="compile only this pipeline (repeatable; default: all)")
    p.add_argument("--profile", help="cluster profile name or YAML path (default: $VLAFORGE_PROFILE or 'default')")
    p.add_argument("--registry", help="image registry prefix (default: $VLAFORGE_REGISTRY or ghcr.io/vlaforge)")
    p.set_defaults(func=_compile)
