"""Import a LeRobot dataset (codebase v2.0/v2.1, local or ``s3://``) into the raw episode format.

LeRobot layout read here: ``meta/info.json`` (``features``, ``fps``, ``data_path``/``video_path``
templates, ``chunks_size``), ``meta/episodes.jsonl`` (``episode_index``, ``tasks``, ``length``),
``meta/tasks.jsonl`` (``task_index``, ``task``), one parquet file per episode with columns such as
``observation.state``, ``action``, ``episode_index``, ``frame_index``, ``timestamp``, ``task_index``,
and camera features either stored in the parquet (``dtype: image``: a struct of encoded ``bytes``
and a ``path``) or as one mp4 per episode and camera (``dtype: video``, decoded with PyAV; each row
takes the frame nearest its ``timestamp``, within half a frame period).

Mapping: ``observation.state`` -> ``proprio`` and ``action`` -> ``action`` (whole when the dimension
fits ``proprio_dim``/``action_dim``, else through ``state_slice``/``action_slice``); camera feature
``observation.images.<name>`` -> camera ``<name>`` (or ``cameras={feature: name}``); the episode's
first task text -> ``instruction``; per-step ``success`` from ``next.success`` when present, else all
false, and the episode counted successful (LeRobot datasets are curated demonstrations).
"""

from __future__ import annotations

import io
import json
import logging
import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from vlaforge import storage
from vlaforge.robotics.episodes import EpisodeWriter
from vlaforge.robotics.samples import prepare_frame

log = logging.getLogger(__name__)
SUPPORTED_VERSIONS = ("v2.0", "v2.1")
CAMERA_DTYPES = ("image", "video")


class LeRobotError(ValueError):
    """The LeRobot dataset is malformed or cannot be mapped; the message names file and feature."""


def parse_slice(text: str | None, dim: int, what: str) -> np.ndarray:
    """Indices from ``"a:b"`` (end exclusive) or ``"i,j,k"``; ``None`` keeps all ``dim`` dimensions."""
    if text is None or text == "":
        return np.arange(dim)
    try:
        if ":" in text:
            start, _, end = text.partition(":")
            idx = np.arange(dim)[slice(int(start) if start else None, int(end) if end else None)]
        else:
            idx = np.array([int(i) for i in text.split(",")])
    except ValueError as err:
        raise LeRobotError(f"{what} {text!r} must look like 'start:end' or 'i,j,k'") from err
    if not len(idx) or idx.min() < 0 or idx.max() >= dim:
        raise LeRobotError(f"{what} {text!r} selects no valid indices of a {dim}-dimensional feature")
    return idx


def _read_json(uri: str) -> dict:
    try:
        return json.loads(storage.read_text(uri))
    except FileNotFoundError as err:
        raise LeRobotError(f"not a LeRobot dataset: missing {uri}") from err
    except ValueError as err:
        raise LeRobotError(f"{uri}: not JSON: {err}") from err


def _read_jsonl(uri: str) -> list[dict]:
    try:
        return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]
    except FileNotFoundError as err:
        raise LeRobotError(f"not a LeRobot dataset: missing {uri}") from err
    except ValueError as err:
        raise LeRobotError(f"{uri}: not JSON lines: {err}") from err


def _camera_names(features: dict, cameras: dict[str, str] | None, where: str) -> dict[str, str]:
    available = {k: v for k, v in features.items() if v.get("dtype") in CAMERA_DTYPES}
    if cameras:
        unknown = [k for k in cameras if k not in available]
        if unknown:
            raise LeRobotError(f"{where}: no camera feature {', '.join(unknown)}; "
                               f"camera features: {', '.join(available) or 'none'}")
        return dict(cameras)
    if not available:
        raise LeRobotError(f"{where}: no image or video features; the raw episode format needs a camera")
    return {k: re.sub(r"[^A-Za-z0-9_-]", "_", k.removeprefix("observation.images.")) for k in available}


def _decode_video(uri: str, timestamps: np.ndarray, fps: float) -> np.ndarray:
    import av

    with storage.open_read(uri) as f, av.open(f) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base) if frame.pts is not None else len(times) / fps)
    if not frames:
        raise LeRobotError(f"{uri}: no video frames")
    times = np.asarray(times)
    nearest = np.abs(times[None, :] - timestamps[:, None]).argmin(1)
    off = np.abs(times[nearest] - timestamps)
    if (off > 0.5 / fps + 1e-4).any():
        bad = int(off.argmax())
        raise LeRobotError(f"{uri}: no frame near timestamp {timestamps[bad]:.4f}s (nearest "
                           f"{times[nearest[bad]]:.4f}s; video spans {times[0]:.3f}-{times[-1]:.3f}s)")
    return np.stack([frames[i] for i in nearest])


def _decode_images(column: list, src_uri: str, where: str) -> np.ndarray:
    frames = []
    for i, cell in enumerate(column):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if data is None and isinstance(cell, dict) and cell.get("path"):
            data = storage.read_bytes(storage.join(src_uri, cell["path"]))
        if data is None:
            raise LeRobotError(f"{where}: row {i} holds no image bytes or path")
        with Image.open(io.BytesIO(data)) as img:
            frames.append(np.asarray(img.convert("RGB")))
    return np.stack(frames)


def _column(table, name: str, where: str) -> np.ndarray:
    """A column as numpy: (rows,) for scalars, (rows, dim) for list features."""
    if name not in table.column_names:
        raise LeRobotError(f"{where}: missing column {name!r} (has: {', '.join(table.column_names)})")
    col = table.column(name).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        return col.to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        raise LeRobotError(f"{where}: column {name!r} has rows of different lengths {sorted(set(lengths))}")
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)


def _read_info(src_uri: str) -> dict:
    info_uri = storage.join(src_uri, "meta", "info.json")
    info = _read_json(info_uri)
    version = info.get("codebase_version")
    if version not in SUPPORTED_VERSIONS:
        raise LeRobotError(f"{info_uri}: codebase_version {version!r} is not supported "
                           f"(supported: {', '.join(SUPPORTED_VERSIONS)})")
    missing = [k for k in ("features", "data_path") if k not in info]
    features = info.get("features", {})
    missing += [f"features.{k}" for k in ("observation.state", "action") if k not in features]
    if missing:
        raise LeRobotError(f"{info_uri}: missing {', '.join(missing)} (features: {', '.join(features)})")
    return info


def _episode_arrays(src_uri: str, info: dict, index: int, camera_map: dict[str, str], state_slice: str | None,
                    action_slice: str | None, image_size: int) -> dict:
    """State, action, success and camera frames of one episode, rows in ``frame_index`` order."""
    fmt = {"episode_chunk": index // int(info.get("chunks_size", 1000)), "episode_index": index}
    data_uri = storage.join(src_uri, *info["data_path"].format(**fmt).split("/"))
    with storage.open_read(data_uri) as f:
        table = pq.read_table(f)
    if table.num_rows == 0:
        raise LeRobotError(f"{data_uri}: episode {index} is empty")
    table = table.take(np.argsort(_column(table, "frame_index", data_uri), kind="stable"))
    if not (_column(table, "episode_index", data_uri) == index).all():
        raise LeRobotError(f"{data_uri}: rows of other episodes than {index}")
    state = _column(table, "observation.state", data_uri).astype(np.float32)
    action = _column(table, "action", data_uri).astype(np.float32)
    out = {"state": state[:, parse_slice(state_slice, state.shape[1], "state_slice")],
           "action": action[:, parse_slice(action_slice, action.shape[1], "action_slice")],
           "success": (_column(table, "next.success", data_uri).astype(bool)
                       if "next.success" in table.column_names else None),
           "task_index": (int(_column(table, "task_index", data_uri)[0])
                          if "task_index" in table.column_names else None),
           "where": data_uri, "images": {}}
    fps = float(info.get("fps") or 0)
    for key, cam in camera_map.items():
        where = f"{data_uri} feature {key!r}"
        if info["features"][key]["dtype"] == "video":
            if not fps or "video_path" not in info:
                raise LeRobotError(f"{src_uri}/meta/info.json: 'fps' and 'video_path' are needed to decode videos")
            video_uri = storage.join(src_uri, *info["video_path"].format(video_key=key, **fmt).split("/"))
            frames = _decode_video(video_uri, _column(table, "timestamp", data_uri).astype(float), fps)
        elif key in table.column_names:
            frames = _decode_images(table.column(key).to_pylist(), src_uri, where)
        else:
            raise LeRobotError(f"{where}: image feature has no column in the parquet")
        out["images"][cam] = np.stack([prepare_frame(f, image_size) for f in frames])
    return out


def convert_lerobot(src_uri: str, out_uri: str, *, cameras: dict[str, str] | None = None,
                    state_slice: str | None = None, action_slice: str | None = None,
                    proprio_dim: int | None = 4, action_dim: int | None = 4, task: str | None = None,
                    image_size: int = 0) -> dict:
    """Convert the LeRobot dataset at ``src_uri`` into a raw episode dataset at ``out_uri``.

    ``proprio_dim``/``action_dim`` (None: keep what the data has) are checked after slicing;
    ``task`` names the task of every episode (default: the dataset folder's name); ``image_size``
    resizes frames to a square (0 keeps them). ``episodes.jsonl`` is written last, so a failed
    import leaves no index behind.
    """
    start = time.perf_counter()
    src_uri = src_uri.rstrip("/")
    info = _read_info(src_uri)
    camera_map = _camera_names(info["features"], cameras, f"{src_uri}/meta/info.json")
    name = task or src_uri.rsplit("/", 1)[-1]
    task_text = {t["task_index"]: t["task"] for t in _read_jsonl(storage.join(src_uri, "meta", "tasks.jsonl"))}
    episodes = _read_jsonl(storage.join(src_uri, "meta", "episodes.jsonl"))
    if not episodes:
        raise LeRobotError(f"{src_uri}/meta/episodes.jsonl lists no episodes")
    writer = EpisodeWriter(out_uri)
    frames_total = 0
    for entry in tqdm(episodes, desc="import lerobot", unit="episode"):
        if "episode_index" not in entry:
            raise LeRobotError(f"{src_uri}/meta/episodes.jsonl: a line lacks episode_index: {entry}")
        index = int(entry["episode_index"])
        ep = _episode_arrays(src_uri, info, index, camera_map, state_slice, action_slice, image_size)
        for what, array, want, option in (("observation.state", ep["state"], proprio_dim, "state_slice"),
                                          ("action", ep["action"], action_dim, "action_slice")):
            if want is not None and array.shape[1] != want:
                raise LeRobotError(f"{ep['where']}: {what} has dimension {array.shape[1]} but {want} is "
                                   f"expected; pick dimensions with {option} (e.g. '0:{want}')")
        texts = entry.get("tasks") or [task_text.get(ep["task_index"], "")]
        success = ep["success"] if ep["success"] is not None else np.zeros(len(ep["state"]), bool)
        writer.write(f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)}-{index:06d}", name, str(texts[0]), ep["images"],
                     ep["state"], ep["action"], success,
                     episode_success=True if ep["success"] is None else bool(success.any()))
        frames_total += len(ep["state"])
    writer.close()
    seconds = time.perf_counter() - start
    summary = {"episodes": len(episodes), "frames": frames_total, "cameras": list(camera_map.values()),
               "seconds": round(seconds, 3), "frames_per_s": round(frames_total / max(seconds, 1e-9), 1)}
    log.info("imported %s into %s: %s", src_uri, out_uri, summary)
    return summary
