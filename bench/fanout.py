"""Fan-out across pods under kfp.local: sim_eval, record_demos, caption_data, tokenize and preprocess_robotics
throughput with 1 and 2 slices.

Runs the pipelines' own fan-out (plan_slices -> ParallelFor of the stage component -> merge_slices, the
wiring of pipelines/stages.py) uncached, once per width, and prints items per minute over the whole
fan-out (planning, every slice's process start, the merge) and over the slices alone (items / the
slowest slice's wall time), each with the ratio to 1 slice measured in the same run. sim_eval evaluates
the scripted expert (``baseline:expert``, deterministic) with the cameras rendered every step as for a
vision policy; record_demos records the expert with its preset noise; caption_data renders captioned
scenes; tokenize tokenizes a corpus of ``--corpus-files`` files, each a copy of the built-in prose
(items: documents; end to end includes training the tokenizer once, which does not fan out);
preprocess_robotics encodes ``--demos`` recorded episodes per task (recorded once beforehand, untimed;
items: episodes). A fan-out has fixed costs, the same for any width: planning, merging, and in each slice
its process start and environment set-up; sim_eval's default, 30 episodes per task, is what the tiny
preset evaluates, enough for them to stop dominating (with 12 they took about a quarter of a one-slice run).
Each slice runs its work in its own process (``workers=0``, ``num_workers=0``) with ``--threads``
threads for torch, BLAS and Mesa's llvmpipe renderer (default 1): one pod of that many cores per slice, as on
a cluster, so one slice does not already spread over the cores that two slices would share. The load
average is printed beside each figure; on a shared machine the figures move with it.

    .venv/bin/python bench/fanout.py [--tasks reach-v3 push-v3] [--episodes 30] [--demos 8] [--scenes 16]
                                     [--corpus-files 4] [--stages sim_eval tokenize ...] [--slices 1 2]
                                     [--threads 1]
"""

import argparse
import builtins
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from kfp import dsl, local
from kfp.dsl import Dataset, Model

from components.caption_data.component import caption_data
from components.record_demos.component import record_demos
from components.sim_eval.component import sim_eval
from pipelines.stages import fanned_out, preprocessed, tokenized
from vlaforge.data.corpus import builtin_documents

STAGES = ["sim_eval", "record_demos", "caption_data", "tokenize", "preprocess_robotics"]


@dsl.pipeline(name="bench-fanout-sim-eval")
def evaluate(overrides: str, slices: int):
    policy = dsl.importer(artifact_uri="baseline:expert", artifact_class=Model, reimport=False)
    fanned_out("sim_eval", "sim_eval", slices, "tiny", overrides,
               lambda item: sim_eval(policy=policy.output, preset="tiny", overrides=item, model_name="expert"),
               "results")


@dsl.pipeline(name="bench-fanout-record-demos")
def record(overrides: str, slices: int):
    fanned_out("demos", "record_demos", slices, "tiny", overrides,
               lambda item: record_demos(preset="tiny", overrides=item), "demos")


@dsl.pipeline(name="bench-fanout-caption-data")
def render(overrides: str, slices: int):
    fanned_out("captions", "caption_data", slices, "tiny", overrides,
               lambda item: caption_data(preset="tiny", overrides=item), "captions")


@dsl.pipeline(name="bench-fanout-tokenize")
def tokenize(overrides: str, slices: int):
    tokenized("tiny", overrides, slices)


@dsl.pipeline(name="bench-fanout-preprocess-robotics")
def preprocess(overrides: str, slices: int, demos_uri: str):
    demos = dsl.importer(artifact_uri=demos_uri, artifact_class=Dataset, reimport=False)
    preprocessed("tiny", overrides, demos.output, slices)


def write_corpus(folder: Path, files: int) -> int:
    """``files`` text corpus files, each the built-in prose as JSON lines; returns the number of documents."""
    folder.mkdir(parents=True)
    lines = "".join(json.dumps({"text": doc}) + "\n" for doc in builtin_documents() if doc.strip())
    for i in range(files):
        (folder / f"part-{i:03d}.jsonl").write_text(lines)
    return files * lines.count("\n")


def record_demos_once(folder: Path, tasks: str, per_task: int) -> None:
    """The episodes preprocess_robotics encodes, recorded once and not timed."""
    from vlaforge.stages.record_demos import run

    with silenced():
        run("tiny", [tasks, f"episodes_per_task={per_task}", "workers=0", "image_size=64",
                     "cameras=[corner, behindGripper]"], str(folder))


@contextlib.contextmanager
def silenced():
    """The tasks' logs, Python's and what their processes write to file descriptors 1 and 2, go nowhere.

    kfp.local swaps ``builtins.print`` (indented) and the root logger's handlers while a task runs; slices
    running at once in threads can leave the swapped ones in place, so both are put back afterwards."""
    for stream in (sys.__stdout__, sys.__stderr__):  # the table so far goes out first
        stream.flush()
    globals_before = builtins.print, logging.root.handlers[:]
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.__stdout__, sys.__stderr__):  # what they buffered goes to /dev/null too
                stream.flush()
            for fd, copy in ((1, saved[0]), (2, saved[1])):
                os.dup2(copy, fd)
                os.close(copy)
            builtins.print, logging.root.handlers[:] = globals_before


def measure(pipeline, overrides: list[str], slices: int, **inputs) -> tuple[float, float]:
    """Wall seconds of the whole fan-out and of its slowest slice."""
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as root:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, enable_caching=False)
        start = time.perf_counter()
        with silenced():
            pipeline(overrides="\n".join(overrides), slices=slices, **inputs)
        elapsed = time.perf_counter() - start
        (merge,) = [p for p in Path(root).rglob("merge-slices") if p.is_dir()]
        slowest = json.loads((merge / "metrics").read_text())["slowest_slice_seconds"]
    return elapsed, slowest


def run_stages(args, scratch: Path) -> None:
    """Measure every stage of ``args.stages`` with each width of ``args.slices``; inputs are written under ``scratch``."""
    tasks = f"tasks=[{', '.join(args.tasks)}]"
    documents = write_corpus(scratch / "corpus", args.corpus_files) if "tokenize" in args.stages else 0
    if "preprocess_robotics" in args.stages:
        record_demos_once(scratch / "demos", tasks, args.demos)
    stages = {
        "sim_eval": (evaluate, [tasks, f'episodes="0:{args.episodes}"', "workers=0", "always_render=true",
                                "cameras=[corner, behindGripper]", "image_size=64"], args.episodes * len(args.tasks)),
        "record_demos": (record, [tasks, f"episodes_per_task={args.demos}", "workers=0", "image_size=64",
                                  "cameras=[corner, behindGripper]"], args.demos * len(args.tasks)),
        "caption_data": (render, [tasks, f"scenes_per_task={args.scenes}", "image_size=64",
                                  "cameras=[corner, topview]"], args.scenes * len(args.tasks)),
        "tokenize": (tokenize, [f"corpus={scratch / 'corpus'}", "robot_fraction=0"], documents),
        "preprocess_robotics": (preprocess, ["num_workers=0"], args.demos * len(args.tasks)),
    }
    inputs = {"preprocess_robotics": {"demos_uri": str(scratch / "demos")}}
    print(f"fan-out under kfp.local: {', '.join(args.tasks)}, {os.cpu_count()} CPUs, one process "
          f"of {os.environ['OMP_NUM_THREADS']} thread(s) per slice")
    print(f"{'stage':<19} {'items':>5} {'slices':>6} {'items/min (all)':>16} {'vs 1':>6} "
          f"{'items/min (slices)':>19} {'vs 1':>6} {'load avg':>9}")
    for stage in args.stages:
        pipeline, overrides, items = stages[stage]
        base = None
        for slices in args.slices:
            elapsed, slowest = measure(pipeline, overrides, slices, **inputs.get(stage, {}))
            rates = (60 * items / elapsed, 60 * items / slowest)
            base = base or rates
            print(f"{stage:<19} {items:>5} {slices:>6} {rates[0]:>16.1f} {rates[0] / base[0]:>5.2f}x "
                  f"{rates[1]:>19.1f} {rates[1] / base[1]:>5.2f}x {os.getloadavg()[0]:>9.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["reach-v3", "push-v3"])
    parser.add_argument("--episodes", type=int, default=30,
                        help="sim_eval episodes per task (rendered; 30: what the tiny preset evaluates)")
    parser.add_argument("--demos", type=int, default=8, help="record_demos episodes per task")
    parser.add_argument("--scenes", type=int, default=16, help="caption_data scenes per task")
    parser.add_argument("--corpus-files", type=int, default=4, help="tokenize corpus files (each the built-in prose)")
    parser.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    parser.add_argument("--slices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="threads per slice process (the cores of its pod)")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LP_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # inherited by the kfp.local task processes
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="bench-fanout-inputs-") as folder:
        run_stages(args, Path(folder))


if __name__ == "__main__":
    main()
