"""Run a training stage as wide as its cluster profile asks: in-process, torchrun in the pod, or a
Kubeflow Trainer TrainJob across nodes that hands its output back to the launching component.

``apply_profile`` puts the stage's launch spec in ``$VLAFORGE_LAUNCH`` when it asks for more than one
process; without it (``kfp.local``, one GPU) the stage runs in-process. A component body calls::

    summary = run_training(stage_cli_args("llm-pretrain", preset, overrides, data=dataset.uri, out=OUT),
                           model.path, model.uri, local=lambda: run(preset, overrides, dataset.path, model.path))

and gets the stage's summary either way: ``local()``'s return value, or the ``train_summary.json``
that the stage's rank 0 left in the output. Inputs must be named by URI (``artifact.uri``): TrainJob
nodes do not see the launcher pod's files.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from vlaforge import storage
from vlaforge.config import split_overrides
from vlaforge.kube import trainjob
from vlaforge.kube.profile import LAUNCH_ENV
from vlaforge.train.summary import read_summary

log = logging.getLogger(__name__)
OUT = "{out}"
T = TypeVar("T")


def launch_from_env() -> dict | None:
    raw = os.environ.get(LAUNCH_ENV)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"${LAUNCH_ENV} is not valid JSON: {err}") from err


def stage_cli_args(command: str, preset: str, overrides: str | list[str] | None, **options: str) -> list[str]:
    """``vlaforge`` arguments of a stage command: ``--preset``, one ``--set`` per override, ``--<option>``."""
    args = [command, "--preset", preset]
    for item in split_overrides(overrides):
        args += ["--set", item]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def _with_out(cli_args: list[str], out: str) -> list[str]:
    if OUT not in cli_args:
        raise ValueError(f"cli_args {cli_args} must contain the output placeholder {OUT!r}")
    return [out if a == OUT else str(a) for a in cli_args]


def torchrun_command(cli_args: list[str], nproc: int) -> list[str]:
    """One node, ``nproc`` processes: ``torchrun --standalone`` over the vlaforge CLI."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "vlaforge.cli", *cli_args]


def _run_forwarding_sigterm(cmd: list[str]) -> int:
    """Run ``cmd`` to its end; a SIGTERM to this process (the pod is being stopped) is passed on, so that
    torchrun stops its workers with SIGTERM and they write their final checkpoint as in-process runs do."""
    proc = subprocess.Popen(cmd)
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main thread only
        return proc.wait()
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def run_training(cli_args: list[str], output_dir: str, output_uri: str,
                 local: Callable[[], T], api=None) -> T | dict:
    """Run ``vlaforge <cli_args>`` (``{out}`` stands for the output location) as the launch spec asks.

    One process: returns ``local()``. Otherwise returns the stage's summary (its ``train_summary.json``)
    once ``output_dir`` holds the result: torchrun writes there directly; a TrainJob writes to the
    profile's staging URI, which is then copied into ``output_dir``. ``api`` is a Kubernetes
    ``CustomObjectsApi`` (default: in-cluster).
    """
    launch = launch_from_env()
    sp = launch["stage_profile"] if launch else {}
    nodes, nproc = int(sp.get("num_nodes", 1)), max(int(sp.get("accelerator_count") or 0), 1)
    if nodes == 1 and nproc == 1:
        return local()
    if nodes == 1:
        cmd = torchrun_command(_with_out(cli_args, output_dir), nproc)
        log.info("running %d processes: %s", nproc, " ".join(cmd))
        returncode = _run_forwarding_sigterm(cmd)
        if returncode != 0:
            raise RuntimeError(f"torchrun of 'vlaforge {' '.join(cli_args)}' exited with {returncode}")
        return read_summary(output_dir)
    staging_root = launch["storage"].get("staging_uri")
    if not staging_root:
        raise ValueError(f"stage {launch['stage']} asks for {nodes} nodes but the cluster profile's "
                         "storage.staging_uri is empty")
    name = trainjob.job_name(launch["stage"], output_uri)
    staging = storage.join(staging_root, name)
    body = trainjob.render_trainjob(name, trainjob.current_namespace(), launch, _with_out(cli_args, staging))
    trainjob.run_trainjob(body, api or trainjob.in_cluster_api(), timeout_s=sp.get("timeout_s"))
    storage.copy_dir(staging, output_dir)
    return read_summary(output_dir)
