"""Run simulation jobs in worker processes, one failure never stopping the others.

Workers are started with the ``spawn`` method (no forked OpenGL or torch state), each keeps its
own simulators and renderers for its lifetime, and runs torch on one thread. An exception in a job
comes back as that job's failure message; a worker that dies outright (segfault, OOM kill) fails
only the jobs it was running, and the remaining jobs go on in a fresh pool.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)


def init_worker(setup: Callable[..., None] | None, args: tuple) -> None:
    """Worker start: one thread for numeric libraries, then the caller's ``setup(*args)``."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if setup is not None:
        setup(*args)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def failure_message(err: BaseException) -> str:
    """``Type: message (file:line)`` of where ``err`` was raised."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


def _call(fn: Callable[[Any], Any], job: Any) -> tuple[Any, str | None]:
    try:
        return fn(job), None
    except Exception as err:  # one job's failure is data, not the end of the run
        log.debug("job %r failed", job, exc_info=True)
        return None, failure_message(err)


def run_jobs(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int,
             setup: Callable[..., None] | None = None, setup_args: tuple = ()) -> Iterator[tuple[Any, Any, str | None]]:
    """Yield ``(job, result, error)`` for every job as it finishes (``error`` None on success).

    ``fn`` and ``setup`` must be importable module-level functions. ``workers=0`` runs everything
    in this process (after ``setup``, leaving its thread settings alone), which is handy for debugging.
    """
    jobs = list(jobs)
    if workers <= 0:
        if setup is not None:
            setup(*setup_args)
        for job in jobs:
            yield (job, *_call(fn, job))
        return
    pending = list(reversed(jobs))
    while pending:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                                 initargs=(setup, setup_args)) as pool:
            running = {}
            broken = False
            while (pending and not broken) or running:
                while pending and len(running) < workers and not broken:
                    job = pending.pop()
                    try:
                        running[pool.submit(_call, fn, job)] = job
                    except BrokenProcessPool:
                        pending.append(job)
                        broken = True
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    try:
                        yield (job, *future.result())
                    except BrokenProcessPool as err:
                        broken = True
                        yield job, None, f"worker process died while running this job: {err}"
            if broken:
                log.warning("a worker process died; %d jobs left go on in a fresh pool", len(pending))
