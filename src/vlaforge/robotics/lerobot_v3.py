"""LeRobot codebase v3.0: many episodes per file, located through ``meta/episodes``.

Layout read here (as ``lerobot-dataset``'s ``LeRobotDataset`` writes it):

- ``meta/info.json``: ``codebase_version`` ``v3.0``, ``fps``, ``features``, the ``data_path`` and
  ``video_path`` templates (``{chunk_index}``, ``{file_index}``, ``{video_key}``).
- ``meta/episodes/chunk-XXX/file-XXX.parquet``: one row per episode: ``episode_index``, ``tasks``,
  ``length``, ``data/chunk_index``, ``data/file_index`` (the data file holding its rows) and, per video
  camera, ``videos/<key>/chunk_index``, ``file_index``, ``from_timestamp``, ``to_timestamp`` (where the
  episode lies in an mp4 that holds several episodes one after another). ``stats/*`` columns are not read.
- ``meta/tasks.parquet``: the task text (the pandas index column) and its ``task_index``.
- ``data/chunk-XXX/file-XXX.parquet``: rows of many episodes (``episode_index``, ``frame_index``,
  ``timestamp`` from the episode's start, ``task_index``, state/action features, image features as
  structs of encoded ``bytes``).

Each data file is opened once, when its first episode comes up, and each episode's frames are
decoded from its videos by seeking to ``from_timestamp``: the dataset streams from ``s3://`` file by
file, with no full download before work starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlaforge import storage
from vlaforge.robotics.lerobot_io import LeRobotError, VideoReader, column, decode_images

EPISODES_DIR = ("meta", "episodes")
TASKS_FILE = ("meta", "tasks.parquet")


def _parquet_files(uri: str) -> list[str]:
    """``chunk-*/file-*.parquet`` under ``uri``, in order."""
    return [storage.join(uri, chunk, name) for chunk in storage.listdir(uri) if chunk.startswith("chunk-")
            for name in storage.listdir(storage.join(uri, chunk)) if name.endswith(".parquet")]


def _read_parquet(uri: str, skip_prefix: str | None = None):
    try:
        with storage.open_read(uri) as f:
            pf = pq.ParquetFile(f)
            names = [n for n in pf.schema_arrow.names if not (skip_prefix and n.startswith(skip_prefix))]
            return pf.read(columns=names)
    except FileNotFoundError as err:
        raise LeRobotError(f"missing {uri}") from err
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise LeRobotError(f"{uri}: not a parquet file: {err}") from err


def read_episodes(src_uri: str, total: int | None = None) -> list[dict]:
    """The rows of ``meta/episodes`` (without ``stats/*``), sorted by ``episode_index``; ``total``
    (``info.json``'s ``total_episodes``) must match, so a lost episodes file is noticed."""
    where = storage.join(src_uri, *EPISODES_DIR)
    try:
        files = _parquet_files(where)
    except FileNotFoundError as err:
        raise LeRobotError(f"{where}: missing; a v3.0 dataset lists its episodes in "
                           "meta/episodes/chunk-XXX/file-XXX.parquet") from err
    if not files:
        raise LeRobotError(f"{where}: no chunk-XXX/file-XXX.parquet episode files")
    rows = []
    for uri in files:
        table = _read_parquet(uri, skip_prefix="stats/")
        for need in ("episode_index", "data/chunk_index", "data/file_index"):
            if need not in table.column_names:
                raise LeRobotError(f"{uri}: missing column {need!r} (has: {', '.join(table.column_names)})")
        rows += [{**row, "_where": uri} for row in table.to_pylist()]
    if not rows:
        raise LeRobotError(f"{where} lists no episodes")
    if total is not None and len(rows) != total:
        raise LeRobotError(f"{where}: {len(rows)} episodes in {len(files)} file(s), but meta/info.json says "
                           f"total_episodes {total}; is an episodes file missing?")
    return sorted(rows, key=lambda r: r["episode_index"])


def read_tasks(src_uri: str) -> dict[int, str]:
    """``task_index`` -> task text from ``meta/tasks.parquet``."""
    uri = storage.join(src_uri, *TASKS_FILE)
    table = _read_parquet(uri)
    text = [n for n in table.column_names if n != "task_index"]
    if "task_index" not in table.column_names or not text:
        raise LeRobotError(f"{uri}: expected columns task_index and the task text (has: "
                           f"{', '.join(table.column_names)})")
    name = "task" if "task" in text else text[0]
    return dict(zip(column(table, "task_index", uri).tolist(), table.column(name).to_pylist()))


def _path(info: dict, key: str, src_uri: str, **fields) -> str:
    try:
        rel = info[key].format(**fields)
    except (KeyError, AttributeError) as err:
        raise LeRobotError(f"{src_uri}/meta/info.json: cannot fill {key} {info.get(key)!r}: {err}") from err
    return storage.join(src_uri, *rel.split("/"))


class _Reader:
    """Episodes in ``episode_index`` order, each data file and each mp4 opened once and read forward."""

    def __init__(self, src_uri: str, info: dict, camera_map: dict[str, str], state_key: str, action_key: str):
        self.src_uri, self.info, self.camera_map = src_uri, info, camera_map
        self.state_key, self.action_key = state_key, action_key
        self.episodes = read_episodes(src_uri, info.get("total_episodes"))
        self.tasks = read_tasks(src_uri)
        self.fps = float(info.get("fps") or 0)
        self.video_keys = [k for k in camera_map if info["features"][k]["dtype"] == "video"]
        if self.video_keys and (not self.fps or not info.get("video_path")):
            raise LeRobotError(f"{src_uri}/meta/info.json: 'fps' and 'video_path' are needed to decode videos")
        self.columns = [state_key, action_key, "episode_index", "frame_index", "timestamp", "task_index",
                        "next.success", *(k for k in camera_map if k not in self.video_keys)]
        self.data_uri, self.table = None, None
        self.videos: dict[str, VideoReader] = {}  # camera key -> the reader of its current mp4

    def close(self) -> None:
        for reader in self.videos.values():
            reader.close()

    def _rows(self, ep: dict, index: int):
        uri = _path(self.info, "data_path", self.src_uri, chunk_index=ep["data/chunk_index"],
                    file_index=ep["data/file_index"])
        if uri != self.data_uri:
            table = _read_parquet(uri)
            self.table, self.data_uri = table.select([c for c in self.columns if c in table.column_names]), uri
        table = self.table
        rows = table.filter(pc.equal(table.column("episode_index"), index)) \
            if "episode_index" in table.column_names else table.slice(0, 0)
        if rows.num_rows == 0:
            raise LeRobotError(f"{uri}: no rows of episode {index} (listed in {ep['_where']})")
        return uri, rows.take(np.argsort(column(rows, "frame_index", uri), kind="stable"))

    def _video(self, ep: dict, index: int, key: str, timestamps: np.ndarray) -> np.ndarray:
        fields = [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp")]
        missing = [c for c in fields if ep.get(c) is None]
        if missing:
            raise LeRobotError(f"{ep['_where']}: episode {index} lacks {', '.join(missing)}")
        uri = _path(self.info, "video_path", self.src_uri, video_key=key, chunk_index=ep[fields[0]],
                    file_index=ep[fields[1]])
        if key not in self.videos or self.videos[key].uri != uri:
            if key in self.videos:
                self.videos.pop(key).close()
            self.videos[key] = VideoReader(uri, self.fps)
        return self.videos[key].frames(timestamps, start_s=float(ep[fields[2]]))

    def episode(self, ep: dict) -> dict:
        index = int(ep["episode_index"])
        uri, rows = self._rows(ep, index)
        task_index = int(column(rows, "task_index", uri)[0]) if "task_index" in rows.column_names else None
        instruction = self.tasks.get(task_index) or next(iter(ep.get("tasks") or []), "")
        out = {"index": index, "where": uri, "instruction": str(instruction),
               "state": column(rows, self.state_key, uri).astype(np.float32),
               "action": column(rows, self.action_key, uri).astype(np.float32),
               "success": (column(rows, "next.success", uri).astype(bool)
                           if "next.success" in rows.column_names else None), "images": {}}
        for key, cam in self.camera_map.items():
            if key in self.video_keys:
                out["images"][cam] = self._video(ep, index, key, column(rows, "timestamp", uri).astype(float))
            elif key in rows.column_names:
                out["images"][cam] = decode_images(rows.column(key).to_pylist(), self.src_uri,
                                                   f"{uri} feature {key!r}")
            else:
                raise LeRobotError(f"{uri} feature {key!r}: image feature has no column in the parquet")
        return out


def iter_episodes(src_uri: str, info: dict, camera_map: dict[str, str], state_key: str,
                  action_key: str) -> Iterator[dict]:
    """One dict per episode: ``index``, ``state``, ``action``, ``success`` (or None), ``instruction``,
    ``where`` (its data file), ``images`` {camera name: frames}; rows in ``frame_index`` order."""
    reader = _Reader(src_uri, info, camera_map, state_key, action_key)
    try:
        for ep in reader.episodes:
            yield reader.episode(ep)
    finally:
        reader.close()
