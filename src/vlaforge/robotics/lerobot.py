"""Import a LeRobot dataset (codebase v2.0, v2.1 or v3.0; local or ``s3://``) into the raw episode format.

v2.x layout read here: ``meta/info.json`` (``features``, ``fps``, ``data_path``/``video_path``
templates, ``chunks_size``), ``meta/episodes.jsonl`` (``episode_index``, ``tasks``, ``length``),
``meta/tasks.jsonl`` (``task_index``, ``task``), one parquet file per episode with columns such as
``observation.state``, ``action``, ``episode_index``, ``frame_index``, ``timestamp``, ``task_index``,
and camera features either stored in the parquet (``dtype: image``: a struct of encoded ``bytes``
and a ``path``) or as one mp4 per episode and camera (``dtype: video``, decoded with PyAV; each row
takes the frame nearest its ``timestamp``, within half a frame period). v3.0 (many episodes per
data file and per mp4, ``meta/episodes`` and ``meta/tasks`` as parquet) is read by
:mod:`vlaforge.robotics.lerobot_v3`.

Mapping: the ``state_key`` feature (``observation.state``) -> ``proprio`` and ``action_key``
(``action``) -> ``action`` (whole when the dimension fits ``proprio_dim``/``action_dim``, else through
``state_slice``/``action_slice``); camera feature ``observation.images.<name>`` -> camera ``<name>``
(or ``cameras={feature: name}``); the episode's task text -> ``instruction``; per-step ``success``
from ``next.success`` when present, else all false, and the episode counted successful (LeRobot
datasets are curated demonstrations). A failed import removes the episode files it wrote and writes
no ``episodes.jsonl``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from vlaforge import storage
from vlaforge.robotics import lerobot_v3
from vlaforge.robotics.episodes import EpisodeWriter
from vlaforge.robotics.lerobot_io import (LeRobotError, camera_names, column, decode_images, decode_video,
                                          parse_slice, read_info)
from vlaforge.robotics.samples import prepare_frame

log = logging.getLogger(__name__)
V2_VERSIONS = ("v2.0", "v2.1")
SUPPORTED_VERSIONS = (*V2_VERSIONS, "v3.0")
__all__ = ["LeRobotError", "SUPPORTED_VERSIONS", "convert_lerobot", "parse_slice"]


def _read_jsonl(uri: str) -> list[dict]:
    try:
        return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]
    except FileNotFoundError as err:
        raise LeRobotError(f"not a LeRobot dataset: missing {uri}") from err
    except ValueError as err:
        raise LeRobotError(f"{uri}: not JSON lines: {err}") from err


def _iter_episodes_v2(src_uri: str, info: dict, camera_map: dict[str, str], state_key: str,
                      action_key: str) -> Iterator[dict]:
    """v2.x: one parquet file (and one mp4 per video camera) per episode; same dicts as v3.0's reader."""
    task_text = {t["task_index"]: t["task"] for t in _read_jsonl(storage.join(src_uri, "meta", "tasks.jsonl"))}
    episodes = _read_jsonl(storage.join(src_uri, "meta", "episodes.jsonl"))
    if not episodes:
        raise LeRobotError(f"{src_uri}/meta/episodes.jsonl lists no episodes")
    fps = float(info.get("fps") or 0)
    for entry in episodes:
        if "episode_index" not in entry:
            raise LeRobotError(f"{src_uri}/meta/episodes.jsonl: a line lacks episode_index: {entry}")
        index = int(entry["episode_index"])
        fmt = {"episode_chunk": index // int(info.get("chunks_size", 1000)), "episode_index": index}
        data_uri = storage.join(src_uri, *info["data_path"].format(**fmt).split("/"))
        with storage.open_read(data_uri) as f:
            table = pq.read_table(f)
        if table.num_rows == 0:
            raise LeRobotError(f"{data_uri}: episode {index} is empty")
        table = table.take(np.argsort(column(table, "frame_index", data_uri), kind="stable"))
        if not (column(table, "episode_index", data_uri) == index).all():
            raise LeRobotError(f"{data_uri}: rows of other episodes than {index}")
        task_index = int(column(table, "task_index", data_uri)[0]) if "task_index" in table.column_names else None
        out = {"index": index, "where": data_uri,
               "instruction": str((entry.get("tasks") or [task_text.get(task_index, "")])[0]),
               "state": column(table, state_key, data_uri).astype(np.float32),
               "action": column(table, action_key, data_uri).astype(np.float32),
               "success": (column(table, "next.success", data_uri).astype(bool)
                           if "next.success" in table.column_names else None), "images": {}}
        for key, cam in camera_map.items():
            where = f"{data_uri} feature {key!r}"
            if info["features"][key]["dtype"] == "video":
                if not fps or "video_path" not in info:
                    raise LeRobotError(f"{src_uri}/meta/info.json: 'fps' and 'video_path' are needed to decode videos")
                video_uri = storage.join(src_uri, *info["video_path"].format(video_key=key, **fmt).split("/"))
                out["images"][cam] = decode_video(video_uri, column(table, "timestamp", data_uri).astype(float), fps)
            elif key in table.column_names:
                out["images"][cam] = decode_images(table.column(key).to_pylist(), src_uri, where)
            else:
                raise LeRobotError(f"{where}: image feature has no column in the parquet")
        yield out


def _discard(writer: EpisodeWriter) -> None:
    """Remove the episode files a failed import wrote (its ``episodes.jsonl`` was never written)."""
    fs, _ = storage.filesystem(writer.out_uri)
    for line in writer.lines:
        _, path = storage.filesystem(storage.join(writer.out_uri, *line["file"].split("/")))
        if fs.exists(path):
            fs.rm(path)


def convert_lerobot(src_uri: str, out_uri: str, *, cameras: dict[str, str] | None = None,
                    state_key: str = "observation.state", action_key: str = "action",
                    state_slice: str | None = None, action_slice: str | None = None,
                    proprio_dim: int | None = 4, action_dim: int | None = 4, task: str | None = None,
                    image_size: int = 0) -> dict:
    """Convert the LeRobot dataset at ``src_uri`` into a raw episode dataset at ``out_uri``.

    ``state_key``/``action_key`` name the features read as proprio and action; ``proprio_dim``/
    ``action_dim`` (None: keep what the data has) are checked after slicing; ``task`` names the task
    of every episode (default: the dataset folder's name); ``image_size`` resizes frames to a square
    (0 keeps them). ``episodes.jsonl`` is written last, so a failed import leaves no index behind,
    and the episode files it wrote are removed.
    """
    start = time.perf_counter()
    src_uri = src_uri.rstrip("/")
    info = read_info(src_uri, SUPPORTED_VERSIONS, state_key, action_key)
    camera_map = camera_names(info["features"], cameras, f"{src_uri}/meta/info.json")
    name = task or src_uri.rsplit("/", 1)[-1]
    reader = _iter_episodes_v2 if info["codebase_version"] in V2_VERSIONS else lerobot_v3.iter_episodes
    writer = EpisodeWriter(out_uri)
    frames_total = 0
    try:
        for ep in tqdm(reader(src_uri, info, camera_map, state_key, action_key), desc="import lerobot",
                       unit="episode", total=info.get("total_episodes")):
            state = ep["state"][:, parse_slice(state_slice, ep["state"].shape[1], "state_slice")]
            action = ep["action"][:, parse_slice(action_slice, ep["action"].shape[1], "action_slice")]
            for what, array, want, option in ((state_key, state, proprio_dim, "state_slice"),
                                              (action_key, action, action_dim, "action_slice")):
                if want is not None and array.shape[1] != want:
                    raise LeRobotError(f"{ep['where']}: {what} has dimension {array.shape[1]} but {want} is "
                                       f"expected; pick dimensions with {option} (e.g. '0:{want}')")
            images = {cam: np.stack([prepare_frame(f, image_size) for f in frames])
                      for cam, frames in ep["images"].items()}
            success = ep["success"] if ep["success"] is not None else np.zeros(len(state), bool)
            writer.write(f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)}-{ep['index']:06d}", name, ep["instruction"],
                         images, state, action, success,
                         episode_success=True if ep["success"] is None else bool(success.any()))
            frames_total += len(state)
        writer.close()
    except BaseException:
        _discard(writer)
        raise
    seconds = time.perf_counter() - start
    summary = {"episodes": len(writer.lines), "frames": frames_total, "cameras": list(camera_map.values()),
               "codebase_version": info["codebase_version"], "seconds": round(seconds, 3),
               "frames_per_s": round(frames_total / max(seconds, 1e-9), 1)}
    log.info("imported %s into %s: %s", src_uri, out_uri, summary)
    return summary
