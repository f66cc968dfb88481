"""Evaluation by an external simulator (LBM Eval on a cluster) against the policy served by vlaforge.

The sim_eval stage in this mode does not simulate: it serves the policy with the LBM Eval gRPC
protocol (:func:`vlaforge.serve.server.serve_policy`), announces the server's address in
``<results_uri>/policy_server.json``, and waits until the external simulator has written a finished
entry for every configured task and episode index to
``<results_uri>/<model>/<Task>/rollouts/<timestamp>/results.json`` (the rollout layout that LBM Eval
and the embedded evaluator share). Then it stops serving, copies those results into the stage's
output and reports success rates like the embedded evaluation.
"""

from __future__ import annotations

import json
import logging
import posixpath
import socket
import time

from vlaforge import storage
from vlaforge.sim.rollouts import RESULTS, load_task_results, parse_range, task_dir, task_dirname

log = logging.getLogger(__name__)

SERVER_FILE = "policy_server.json"


def _host_address() -> str:
    """This machine's address as other pods see it (the pod IP on Kubernetes)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return socket.gethostname()


def missing_episodes(results_uri: str, model: str, tasks: list[str], start: int, end: int) -> dict[str, list[int]]:
    """Per task, the indices of ``start:end`` that have no finished (non-pending) entry yet."""
    missing = {}
    for task in tasks:
        done = {i for f in load_task_results(results_uri, model, task)
                for i, r in f.records.items() if not r.get("is_pending")}
        todo = [i for i in range(start, end) if i not in done]
        if todo:
            missing[task] = todo
    return missing


def serve_and_collect(policy_spec: str, tasks: list[str], episodes: str, results_uri: str, out_uri: str,
                      model: str, port: int, serve_config=None, timeout_s: float = 24 * 3600.0,
                      poll_s: float = 2.0) -> None:
    """Serve ``policy_spec`` until the external simulator has finished ``episodes`` of every task in
    ``results_uri``, then copy the results of ``model`` to ``out_uri``. Task names are the external
    simulator's (e.g. LBM Eval skills), not Meta-World's. Raises ``TimeoutError`` naming what is
    missing after ``timeout_s``."""
    from vlaforge.serve.server import serve_policy

    if not tasks:
        raise ValueError("no task to wait for: sim_eval.tasks is empty")
    start, end = parse_range(episodes)
    server = serve_policy(policy_spec, port, config=serve_config)
    address = f"{_host_address()}:{server.port}"
    try:
        storage.write_text(storage.join(results_uri, SERVER_FILE), json.dumps(
            {"address": address, "port": server.port, "model": model, "tasks": [task_dirname(t) for t in tasks],
             "episodes": episodes}, indent=2) + "\n")
        log.info("serving %s at %s for an external simulator; waiting for %s/<Task>/rollouts in %s",
                 policy_spec, address, model, results_uri)
        deadline = time.monotonic() + timeout_s
        while missing := missing_episodes(results_uri, model, tasks, start, end):
            if time.monotonic() > deadline:
                what = "; ".join(f"{task_dirname(t)} {len(ix)} episodes (first {ix[0]})" for t, ix in missing.items())
                raise TimeoutError(f"external simulator did not finish in {timeout_s:.0f} s; missing in "
                                   f"{results_uri}: {what}")
            time.sleep(poll_s)
    finally:
        server.stop(grace=5.0)
    for task in tasks:
        for f in load_task_results(results_uri, model, task):
            stamp = posixpath.basename(f.folder)
            storage.write_bytes(storage.join(task_dir(out_uri, model, task), stamp, RESULTS),
                                storage.read_bytes(f.uri))
    log.info("collected the external results of %s for %s", model, ", ".join(tasks))
