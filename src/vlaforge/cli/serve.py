"""Serve a policy until stopped (``vlaforge serve POLICY``): LBM Eval's gRPC protocol (the default) or,
with ``--protocol openpi``, openpi's websocket protocol (:mod:`.openpi`).

SIGTERM stops it gracefully; throughput is logged every ``REPORT_EVERY_S`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import signal

from vlaforge.artifacts import check_policy
from vlaforge.cli.options import port
from vlaforge.serve.openpi import serve_openpi
from vlaforge.serve.server import DEFAULT_PORT, PROTOCOLS, load_serve_config, resolve_policy, serve_policy

log = logging.getLogger(__name__)
REPORT_EVERY_S = 30.0


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a policy (LBM Eval gRPC, or openpi websocket)",
                              description="Serve a policy until stopped, over gRPC with the LBM Eval protocol "
                                          "or over a websocket with openpi's protocol.")
    p.add_argument("policy", help="policy bundle URI (local or s3://) or baseline:<name>")
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)")
    p.add_argument("--host", default="[::]", help="address to listen on (default: all)")
    p.add_argument("--protocol", choices=PROTOCOLS, help="wire protocol (serve.protocol; default grpc)")
    p.add_argument("--max-batch", type=int, help="most clients in one forward pass (serve.max_batch)")
    p.add_argument("--batch-window-ms", type=float, help="how long a batch waits for more clients "
                   "(serve.batch_window_ms)")
    p.add_argument("--preset", default="tiny", help="preset name or YAML file with a 'serve' section")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a serve setting, e.g. --set mapping.action_scale=0.02 (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.max_batch is not None:
        overrides.append(f"max_batch={args.max_batch}")
    if args.batch_window_ms is not None:
        overrides.append(f"batch_window_ms={args.batch_window_ms}")
    if args.protocol is not None:
        overrides.append(f"protocol={args.protocol}")
    config = load_serve_config(args.preset, overrides)
    check_policy(args.policy)
    if config.protocol == "openpi":
        server = serve_openpi(*resolve_policy(args.policy), port=args.port, host=args.host, config=config)
    else:
        server = serve_policy(args.policy, args.port, args.host, config)
    print(f"serving {args.policy} on {args.host}:{server.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=5.0))
    service, steps = server.service, 0
    try:
        while server.wait_for_termination(timeout=REPORT_EVERY_S):  # True: timed out, still serving
            batcher = service.batcher
            log.info("%.1f steps/s, %d clients, %d predict calls, mean batch %.2f",
                     (service.steps - steps) / REPORT_EVERY_S, len(service.clients), batcher.calls,
                     batcher.items / max(1, batcher.calls))
            steps = service.steps
    except KeyboardInterrupt:
        server.stop(grace=1.0).wait()
    return 0
