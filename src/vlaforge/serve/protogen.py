"""Generate the Python gRPC stubs of the LBM Eval protocol from ``protos/*.proto``.

The generated ``*_pb2.py`` / ``*_pb2_grpc.py`` files are committed beside the ``.proto`` (the runtime
needs no grpcio-tools); ``make protos`` regenerates them, and a test checks they are current. The
include root is ``src/`` so that the generated modules import each other as ``vlaforge.serve.protos``.

Usage: ``python -m vlaforge.serve.protogen [OUT_ROOT]`` (default: the ``src/`` folder holding vlaforge).
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).parent / "protos"
SRC_ROOT = PROTO_DIR.parents[2]


def generate(out_root: str | Path = SRC_ROOT) -> list[Path]:
    """Run protoc on every ``.proto``; return the generated files (under ``out_root``)."""
    from grpc_tools import protoc
    import grpc_tools

    out_root = Path(out_root)
    protos = sorted(p.relative_to(SRC_ROOT).as_posix() for p in PROTO_DIR.glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{SRC_ROOT}", f"-I{well_known}", f"--python_out={out_root}",
            f"--grpc_python_out={out_root}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(protos)}")
    rel = PROTO_DIR.relative_to(SRC_ROOT)
    return sorted(p for proto in protos for p in (out_root / rel).glob(f"{Path(proto).stem}_pb2*.py"))


if __name__ == "__main__":
    for path in generate(*sys.argv[1:]):
        print(path)
