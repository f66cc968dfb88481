"""Raw episodes -> robotics WebDataset shards, ``stats.json`` and ``preprocessing_config.yaml``.

Output folder layout::

    <out>/train/{shard-000000.tar, ..., manifest.jsonl}
    <out>/val/{...}                  (only when some episodes are held out)
    <out>/stats.json                 (train split only, see vlaforge.robotics.stats)
    <out>/preprocessing_config.yaml  (see vlaforge.robotics.config)
    <out>/splits.json                ({"train": [episode ids], "val": [...]})

Episodes are split into train/val by episode (seeded). Worker processes encode groups of episodes
into a local scratch file and return partial statistics, which are merged. Only when every episode
has been read and checked are the samples written, in a seeded shuffle across episodes, so bad
input fails before anything is written to ``<out>``.

Two steps, which a fanned-out pipeline runs as separate tasks (docs/fanout.md) and :func:`preprocess`
runs in one process: :func:`encode_part` encodes the episodes of one ``part`` (a contiguous group; the
split is drawn over all episodes, so it does not depend on the parts) into an encoded part: the sample
files, their records, the partial statistics (:func:`vlaforge.robotics.stats.save_partial`) and
``part.json``; :func:`write_parts` merges the statistics and writes every part's samples in one seeded
shuffle, so any grouping of the episodes gives the same shards and, up to float64 rounding of the
means and standard deviations, the same ``stats.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from vlaforge import storage
from vlaforge.data.shards import ShardWriter
from vlaforge.fanout import part_range
from vlaforge.robotics.config import PreprocessConfig, write_preprocessing_config
from vlaforge.robotics.encode import encode_group, unpack
from vlaforge.robotics.episodes import EpisodeError, EpisodeMeta, read_index
from vlaforge.robotics.samples import decode_frame
from vlaforge.robotics.stats import load_partial, merge_all, save_partial, write_stats

log = logging.getLogger(__name__)
SPLITS_FILE = "splits.json"
PART_FILE = "part.json"  # an encoded part: its episodes' facts, sample files and seconds
RECORDS_FILE = "records.npy"  # (samples, 4): sample file index, episode index, byte offset, size
PARTIAL_STATS = "partial_stats.npz"


def _resolve_cameras(cfg: PreprocessConfig, metas: list[EpisodeMeta]) -> list[str]:
    cameras = list(cfg.cameras) or list(metas[0].cameras)
    if not cameras:
        raise EpisodeError(f"episode {metas[0].episode_id!r} ({metas[0].dataset_uri}) lists no cameras")
    for meta in metas:
        missing = [c for c in cameras if c not in meta.cameras]
        if missing:
            raise EpisodeError(f"episode {meta.episode_id!r} ({meta.dataset_uri}) has no camera "
                               f"{', '.join(missing)}; it has {', '.join(meta.cameras) or 'none'}")
    return cameras


def _read_indexes(episodes_uris: list[str]) -> list[EpisodeMeta]:
    if not episodes_uris:
        raise ValueError("preprocess: no episode datasets given")
    metas: list[EpisodeMeta] = []
    seen: dict[str, str] = {}
    for uri in episodes_uris:
        for meta in read_index(uri):
            if meta.episode_id in seen:
                raise EpisodeError(f"episode_id {meta.episode_id!r} appears in both {seen[meta.episode_id]} "
                                   f"and {uri}; episode ids must be unique across datasets")
            seen[meta.episode_id] = uri
            metas.append(meta)
    return metas


def split_episodes(n: int, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean (n,) marking validation episodes: a seeded choice of round(n * val_fraction), at least
    one when ``val_fraction > 0``, never all of them."""
    n_val = 0 if val_fraction == 0 or n < 2 else min(n - 1, max(1, round(n * val_fraction)))
    is_val = np.zeros(n, bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return is_val


def _encode_all(cfg: PreprocessConfig, metas: list[EpisodeMeta], is_val: np.ndarray, episodes: range,
                scratch_dir: str):
    """Encode the ``episodes`` (in worker processes when ``cfg.num_workers``) into ``group-NNNNN.bin`` files in
    ``scratch_dir``: returns the file names, the sample records ``(file index, episode index, offset, size)``,
    the merged train-split statistics and each episode's frame sizes per camera."""
    groups_of = max(1, math.ceil(len(episodes) / max(1, 4 * cfg.num_workers)))
    jobs = [[(i, metas[i], not is_val[i]) for i in range(s, min(s + groups_of, episodes.stop))]
            for s in range(episodes.start, episodes.stop, groups_of)]
    names = [f"group-{g:05d}.bin" for g in range(len(jobs))]
    paths = [os.path.join(scratch_dir, name) for name in names]
    results = {}
    with tqdm(total=len(episodes), desc="encode episodes", unit="episode") as bar:
        if cfg.num_workers == 0 or len(jobs) == 1:
            for g, job in enumerate(jobs):
                results[g] = encode_group(cfg, job, paths[g])
                bar.update(len(job))
        else:
            with ProcessPoolExecutor(min(cfg.num_workers, len(jobs)), mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(encode_group, cfg, job, paths[g]): g for g, job in enumerate(jobs)}
                for future in as_completed(futures):
                    if future.exception() is not None:  # stop queued work, then report the bad episode
                        pool.shutdown(cancel_futures=True)
                    results[futures[future]] = future.result()
                    bar.update(len(jobs[futures[future]]))
    records = [(g, *rec) for g in range(len(jobs)) for rec in results[g][0]]
    stats = merge_all([results[g][1] for g in range(len(jobs))])
    shapes = {i: {cam: list(shape) for cam, shape in s.items()} for g in results for i, s in results[g][2].items()}
    return names, records, stats, shapes


def _check_frame_sizes(episodes: list[dict], shapes: dict[int, dict]) -> None:
    """Without resizing, every camera of every episode must have one frame size, so views stack into a batch."""
    first_cam, first = next(iter(shapes[0].items()))
    for i, episode in enumerate(episodes):
        for cam, shape in shapes[i].items():
            if shape != first:
                raise EpisodeError(
                    f"episode {episode['id']!r} ({episode['dataset']}): camera {cam!r} frames are "
                    f"{shape[0]}x{shape[1]} but camera {first_cam!r} of episode {episodes[0]['id']!r} has "
                    f"{first[0]}x{first[1]}; set preprocess.image_size to resize them to one size")


def _write_split(out_uri: str, records: list, cfg: PreprocessConfig, rng: np.random.Generator) -> tuple[int, int]:
    order = rng.permutation(len(records))
    handles: dict[str, object] = {}
    try:
        with ShardWriter(out_uri, "shard", cfg.samples_per_shard) as writer:
            for n, i in enumerate(tqdm(order, desc=f"write {os.path.basename(out_uri)}", unit="sample")):
                path, _, offset, size = records[i]
                f = handles.get(path) or handles.setdefault(path, open(path, "rb"))
                f.seek(offset)
                writer.write({"__key__": f"{n:09d}", **unpack(f.read(size))})
        return len(order), len(writer.shards)
    finally:
        for f in handles.values():
            f.close()


def encode_part(cfg: PreprocessConfig, episodes_uris: list[str], out_uri: str) -> dict:
    """Encode the episodes ``cfg.part`` selects from the datasets ``episodes_uris`` into ``out_uri`` (an
    encoded part, see the module docstring); returns ``part.json``."""
    start = time.perf_counter()
    metas = _read_indexes(episodes_uris)
    cfg = dataclasses.replace(cfg, cameras=_resolve_cameras(cfg, metas))
    is_val = split_episodes(len(metas), cfg.val_fraction, cfg.seed)
    if is_val.all():
        raise ValueError("preprocess: every episode went to validation; lower val_fraction")
    mine = part_range(cfg.part, len(metas), "preprocess_slices", "episodes")
    local = not storage.is_remote(out_uri)
    with tempfile.TemporaryDirectory(prefix="vlaforge-robotics-") as tmp:
        scratch = out_uri if local else tmp
        os.makedirs(scratch, exist_ok=True)
        names, records, stats, shapes = _encode_all(cfg, metas, is_val, mine, scratch)
        if not local:
            for name in names:
                storage.upload_file(os.path.join(tmp, name), storage.join(out_uri, name))
    seconds = time.perf_counter() - start
    log.info("encoded %d samples from episodes %d:%d in %.1fs (%.0f samples/s)", len(records), mine.start,
             mine.stop, seconds, len(records) / max(seconds, 1e-9))
    buffer = io.BytesIO()
    np.save(buffer, np.array(records, np.int64).reshape(-1, 4))
    storage.write_bytes(storage.join(out_uri, RECORDS_FILE), buffer.getvalue())
    save_partial(storage.join(out_uri, PARTIAL_STATS), stats)
    part = {"sources": list(episodes_uris), "episodes": [mine.start, mine.stop], "cameras": cfg.cameras,
            "all_episodes": [{"id": m.episode_id, "dataset": m.dataset_uri, "task": m.task, "val": bool(v)}
                             for m, v in zip(metas, is_val)],
            "files": names, "shapes": {str(i): s for i, s in shapes.items()}, "samples": len(records),
            "seconds": round(seconds, 3)}
    storage.write_text(storage.join(out_uri, PART_FILE), json.dumps(part, indent=1))
    return part


def write_parts(cfg: PreprocessConfig, part_uris: list[str], out_uri: str) -> dict:
    """The encoded parts (in episode order) written as one preprocessed dataset into ``out_uri``: shards in
    one seeded shuffle, merged ``stats.json``, ``splits.json``, ``preprocessing_config.yaml``; returns
    counts and throughput (``seconds``: the parts' encoding seconds plus this step's)."""
    start = time.perf_counter()
    parts = [json.loads(storage.read_text(storage.join(uri, PART_FILE))) for uri in part_uris]
    episodes = parts[0]["all_episodes"]
    covered = [i for p in parts for i in range(*p["episodes"])]
    if covered != list(range(len(episodes))):
        raise ValueError(f"encoded parts {part_uris} do not cover the {len(episodes)} episodes in order: "
                         f"{[p['episodes'] for p in parts]}")
    cfg = dataclasses.replace(cfg, cameras=parts[0]["cameras"])
    is_val = np.array([e["val"] for e in episodes])
    if not cfg.image_size:
        _check_frame_sizes(episodes, {int(i): s for p in parts for i, s in p["shapes"].items()})
    stats = merge_all([load_partial(storage.join(uri, PARTIAL_STATS)) for uri in part_uris])
    with contextlib.ExitStack() as stack:
        folders = [stack.enter_context(storage.local_dir(uri)) for uri in part_uris]
        records = []
        for folder, part in zip(folders, parts):
            table = np.load(os.path.join(folder, RECORDS_FILE))
            records += [(os.path.join(folder, part["files"][g]), int(e), int(o), int(n)) for g, e, o, n in table]
        rng = np.random.default_rng(cfg.seed + 1)
        summary = {"episodes": len(episodes), "train_episodes": int((~is_val).sum()),
                   "val_episodes": int(is_val.sum())}
        for split, wanted in (("train", False), ("val", True)):
            chosen = [r for r in records if is_val[r[1]] == wanted]
            if chosen:
                summary[f"{split}_samples"], summary[f"{split}_shards"] = _write_split(
                    storage.join(out_uri, split), chosen, cfg, rng)
        frame_shape = _frame_shape(records[0], cfg)
    if not cfg.image_size and frame_shape[0] == frame_shape[1]:
        # Record the size the frames have, so a policy resizes live camera frames to what it was trained on.
        cfg = dataclasses.replace(cfg, image_size=frame_shape[0])
    write_stats(out_uri, stats)
    storage.write_text(storage.join(out_uri, SPLITS_FILE), json.dumps(
        {split: [e["id"] for e in episodes if e["val"] == wanted] for split, wanted in (("train", False), ("val", True))},
        indent=1))
    write_preprocessing_config(out_uri, cfg, {
        "sources": parts[0]["sources"], "image_shape": frame_shape, **summary,
        "tasks": sorted({e["task"] for e in episodes})})
    seconds = sum(p["seconds"] for p in parts) + time.perf_counter() - start
    summary.update(seconds=round(seconds, 3), samples_per_s=round(len(records) / max(seconds, 1e-9), 1))
    log.info("preprocessed %s into %s: %s", parts[0]["sources"], out_uri, summary)
    return summary


def preprocess(cfg: PreprocessConfig, episodes_uris: list[str], out_uri: str) -> dict:
    """Preprocess raw episode datasets into ``out_uri`` in this process; returns counts and throughput."""
    with tempfile.TemporaryDirectory(prefix="vlaforge-robotics-part-") as part:
        encode_part(dataclasses.replace(cfg, part=""), episodes_uris, part)
        return write_parts(cfg, [part], out_uri)


def _frame_shape(record: tuple, cfg: PreprocessConfig) -> list[int]:
    """(H, W, 3) of the stored frames, read back from one encoded sample."""
    path, _, offset, size = record
    with open(path, "rb") as f:
        f.seek(offset)
        sample = unpack(f.read(size))
    return list(decode_frame(sample[cfg.view_keys()[0] + ".jpg"]).shape)


def split_uris(text: str) -> list[str]:
    """URIs from a parameter string separated by newlines, commas, semicolons or spaces."""
    return [u for u in text.replace(",", " ").replace(";", " ").split() if u]
