"""Fan-out of a stage across pods: slicing plans, and merging the slices' outputs into one artifact.

A stage's work is a set of per-task index ranges (sim_eval: episode indices, record_demos and
caption_data: seed indices). :func:`plan_slices` cuts it into exactly ``width`` slices: whole tasks grouped together when
there are at least as many tasks as slices, else each task's range split into contiguous pieces, the
slices shared among tasks in proportion to their sizes. sim_eval's tasks share one episode range, which
:func:`plan_blocks` cuts into blocks that every slice runs for all tasks (balanced load). tokenize and
preprocess_robotics work on inputs counted only when they run (corpus files, recorded episodes): their slices are parts ``"k/n"``, which
:func:`part_range` turns into the same contiguous cut once the count is known. The pipeline runs one pod
per slice (``dsl.ParallelFor``) and a merge step (``dsl.Collected``) writes the layout a one-slice run
writes: one ``results.json`` per (model, task) for sim_eval; one ``episodes.jsonl`` and one
``recording_report.json`` for record_demos; the same shards and ``manifest.jsonl`` for caption_data
(tokenize and preprocess_robotics merge in their own modules: vlaforge.data.tokenize,
vlaforge.robotics.preprocess).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from vlaforge import storage
from vlaforge.data.shards import ShardWriter, iter_samples, read_manifest
from vlaforge.robotics.episodes import EPISODES_INDEX
from vlaforge.sim.rollouts import RESULTS, RolloutError, RolloutFile

log = logging.getLogger(__name__)

Segment = tuple[str, int, int]  # task, start, end (end exclusive)


@dataclass
class FanoutConfig:
    """Slices (pods) per fanned-out stage: the `fanout` preset section, `<section>_slices` pipeline parameters."""

    sim_eval: int = 1  # (task, episode range) slices of sim_eval
    demos: int = 1  # (task, seed range) slices of record_demos
    captions: int = 1  # (task, scene range) slices of caption_data (rendered; an imported source is one slice)
    tokenize: int = 1  # groups of the corpus's input files tokenized apart (a single-file corpus is one slice)
    preprocess: int = 1  # groups of episodes preprocess_robotics encodes apart


class SliceError(ValueError):
    """A fan-out width that cannot be planned; the message names the parameter."""


def _apportion(sizes: list[int], width: int) -> list[int]:
    """Slices per task: at least one each, at most its size, the rest to the task with most items per slice."""
    shares = [1] * len(sizes)
    for _ in range(width - len(sizes)):
        open_ = [i for i, n in enumerate(sizes) if shares[i] < n]
        best = max(open_, key=lambda i: sizes[i] / shares[i])
        shares[best] += 1
    return shares


def check_width(width: int, param: str) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise SliceError(f"{param} must be an integer >= 1, got {width!r}")


def plan_slices(ranges: dict[str, tuple[int, int]], width: int, param: str) -> list[list[Segment]]:
    """``ranges`` (task -> (start, end)) cut into ``width`` slices of segments, in task then index order."""
    total = sum(end - start for start, end in ranges.values())
    check_width(width, param)
    if width > total:
        raise SliceError(f"{param}={width} asks for more slices than there are items to split "
                         f"({total}: {', '.join(f'{t} {s}:{e}' for t, (s, e) in ranges.items())})")
    tasks = list(ranges)
    if width <= len(tasks):
        bounds = [len(tasks) * i // width for i in range(width + 1)]
        return [[(t, *ranges[t]) for t in tasks[lo:hi]] for lo, hi in zip(bounds, bounds[1:])]
    slices = []
    for task, share in zip(tasks, _apportion([e - s for s, e in ranges.values()], width)):
        start, end = ranges[task]
        cuts = [start + (end - start) * i // share for i in range(share + 1)]
        slices += [[(task, lo, hi)] for lo, hi in zip(cuts, cuts[1:])]
    return slices


def plan_blocks(tasks: list[str], start: int, end: int, width: int, param: str) -> list[list[Segment]]:
    """Every task's range ``start:end`` cut into ``width`` contiguous blocks; slice k runs block k of every
    task, so tasks whose items take unequal time (short reach episodes, long push ones) load every slice
    alike (sim_eval). With fewer items per task than slices, as :func:`plan_slices` cuts them."""
    check_width(width, param)
    if width > end - start:
        return plan_slices(dict.fromkeys(tasks, (start, end)), width, param)
    cuts = [start + (end - start) * i // width for i in range(width + 1)]
    return [[(task, lo, hi) for task in tasks] for lo, hi in zip(cuts, cuts[1:])]


def part_names(width: int, param: str) -> list[str]:
    """The parts ``"1/n" ... "n/n"`` of a stage whose items are counted when it runs (see :func:`part_range`)."""
    check_width(width, param)
    return [f"{k}/{width}" for k in range(1, width + 1)]


def part_range(part: str, total: int, param: str, what: str) -> range:
    """The indices of ``total`` items that part ``"k/n"`` takes: the k-th of n contiguous pieces cut as
    :func:`plan_slices` cuts them; ``""`` takes all. More parts than items fails naming ``param``."""
    if not part:
        return range(total)
    try:
        k, n = (int(x) for x in part.split("/"))
    except ValueError:
        raise SliceError(f"part must be 'k/n' (the k-th of n slices), got {part!r}") from None
    if not 1 <= k <= n:
        raise SliceError(f"part {part!r}: k must be between 1 and n")
    ((_, start, end),) = plan_slices({what: (0, total)}, n, param)[k - 1]
    return range(start, end)


def override_lines(values: dict) -> list[str]:
    """``{"tasks": ["a"]}`` -> ``['tasks=["a"]']`` (JSON values, which the override parser reads as YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def log_slice_times(stage: str, seconds: list[float]) -> dict:
    """Log each slice's wall time; returns the figures the merged artifact carries."""
    for i, s in enumerate(seconds):
        log.info("%s slice %d/%d: %.1f s", stage, i + 1, len(seconds), s)
    slowest = max(seconds) if seconds else 0.0
    log.info("%s: %d slice(s), %.1f s of pod time, slowest %.1f s", stage, len(seconds), sum(seconds), slowest)
    return {"slices": len(seconds), "slice_seconds": [round(s, 2) for s in seconds],
            "slowest_slice_seconds": round(slowest, 2)}


def merge_rollouts(slice_uris: list[str], out_uri: str) -> list[str]:
    """Every slice's ``<model>/<Task>/rollouts/<stamp>/results.json`` merged into one file per (model, task)
    under ``out_uri`` (in the first slice's stamp folder), videos copied beside it; returns the models."""
    merged: dict[tuple[str, str], list[RolloutFile]] = {}
    for uri in slice_uris:
        for model in storage.listdir(uri):
            for task in storage.listdir(storage.join(uri, model)):
                rollouts = storage.join(uri, model, task, "rollouts")
                for stamp in storage.listdir(rollouts):
                    merged.setdefault((model, task), []).append(
                        RolloutFile.load(storage.join(rollouts, stamp, RESULTS)))
    for (model, task), files in merged.items():
        budgets = {f.budget for f in files}
        if len(budgets) != 1:
            raise RolloutError(f"{model}/{task}: slices disagree on max_sample_size_per_model ({sorted(budgets)})")
        records: dict[int, dict] = {}
        for f in files:
            overlap = records.keys() & f.records.keys()
            if overlap:
                raise RolloutError(f"{f.uri}: episodes {sorted(overlap)} also come from another slice")
            records.update(f.records)
        stamp = files[0].folder.rsplit("/", 1)[-1]
        target = RolloutFile(storage.join(out_uri, model, task, "rollouts", stamp, RESULTS), budgets.pop(), records)
        target.save()
        for f in files:
            videos = storage.join(f.folder, "videos")
            if storage.exists(videos):
                storage.copy_dir(videos, storage.join(target.folder, "videos"))
    return sorted({model for model, _ in merged})


def merge_episodes(slice_uris: list[str], out_uri: str) -> int:
    """Raw episode datasets concatenated: their ``episodes/`` files and ``episodes.jsonl`` lines in slice
    order; returns the number of episodes."""
    lines = []
    for uri in slice_uris:
        lines += [line for line in storage.read_text(storage.join(uri, EPISODES_INDEX)).splitlines() if line.strip()]
        if storage.exists(storage.join(uri, "episodes")):
            storage.copy_dir(storage.join(uri, "episodes"), storage.join(out_uri, "episodes"))
    storage.write_text(storage.join(out_uri, EPISODES_INDEX), "".join(line + "\n" for line in lines))
    return len(lines)


def merge_shards(slice_uris: list[str], out_uri: str, prefix: str, samples_per_shard: int) -> dict:
    """The slices' WebDataset samples, in slice order, rewritten as one set of ``prefix`` shards of
    ``samples_per_shard`` (byte for byte the shards one run writes); one slice (e.g. imported shards) is
    copied as it is. Returns counts."""
    if len(slice_uris) == 1:
        storage.copy_dir(slice_uris[0], out_uri)
        shards = read_manifest(out_uri)
        return {"num_samples": sum(s.num_samples for s in shards), "num_shards": len(shards)}
    with ShardWriter(out_uri, prefix, samples_per_shard) as writer:
        for uri in slice_uris:
            for shard in read_manifest(uri):
                for sample in iter_samples(shard.uri):
                    writer.write(sample)
    return {"num_samples": sum(s["num_sequences"] for s in writer.shards), "num_shards": len(writer.shards)}
