"""The raw episode format: demonstrations as the recorder writes them and the LeRobot import produces.

Layout of a raw episode dataset folder (local or ``s3://``):

- ``episodes.jsonl``: one JSON line per episode: ``episode_id``, ``task``, ``instruction``,
  ``success``, ``length`` (T), ``seed``, ``file`` (relative path of the ``.npz``), ``cameras``,
  ``image_size``;
- ``episodes/<episode_id>.npz``: ``images_<camera>`` (T, H, W, 3) uint8 right side up,
  ``proprio`` (T, P) float32, ``action`` (T, A) float32 (``action[t]`` is applied after observing
  step t), ``success`` (T,) bool.

:func:`load_episode` checks every array against the metadata and the expected dimensions and
raises :class:`EpisodeError` naming the file and the field.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from vlaforge import storage
from vlaforge.robotics.config import check_camera_name

EPISODES_INDEX = "episodes.jsonl"
_REQUIRED_KEYS = ("episode_id", "task", "instruction", "length", "file", "cameras")


class EpisodeError(ValueError):
    """A raw episode is missing, malformed or inconsistent; the message names file and field."""


@dataclass
class EpisodeMeta:
    """One line of ``episodes.jsonl`` plus the dataset it came from."""

    dataset_uri: str
    episode_id: str
    task: str
    instruction: str
    length: int
    file: str
    cameras: list[str]
    success: bool | None = None
    seed: int | None = None

    @property
    def uri(self) -> str:
        return storage.join(self.dataset_uri, *self.file.split("/"))


@dataclass
class Episode:
    meta: EpisodeMeta
    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3) uint8
    proprio: np.ndarray  # (T, P) float32
    action: np.ndarray  # (T, A) float32
    success: np.ndarray  # (T,) bool


def read_index(dataset_uri: str) -> list[EpisodeMeta]:
    """The episodes listed in ``<dataset_uri>/episodes.jsonl``, checked for required keys."""
    path = storage.join(dataset_uri, EPISODES_INDEX)
    try:
        text = storage.read_text(path)
    except FileNotFoundError as err:
        raise EpisodeError(f"missing episode index: {path}") from err
    episodes = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            entry = json.loads(line)
        except ValueError as err:
            raise EpisodeError(f"{where}: not JSON: {err}") from err
        missing = [k for k in _REQUIRED_KEYS if k not in entry]
        if missing:
            raise EpisodeError(f"{where}: missing key(s) {', '.join(missing)}")
        if not isinstance(entry["length"], int) or entry["length"] < 1:
            raise EpisodeError(f"{where}: episode {entry['episode_id']!r} is empty "
                               f"(length {entry['length']!r}); an episode needs at least one step")
        cameras = list(entry["cameras"])
        for cam in cameras:
            check_camera_name(cam, where)
        episodes.append(EpisodeMeta(dataset_uri, str(entry["episode_id"]), str(entry["task"]),
                                    str(entry["instruction"]), entry["length"], str(entry["file"]),
                                    cameras, entry.get("success"), entry.get("seed")))
    if not episodes:
        raise EpisodeError(f"no episodes in {path}")
    ids = [e.episode_id for e in episodes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise EpisodeError(f"{path}: duplicate episode_id(s) {', '.join(duplicates)}")
    return episodes


def _field(arrays, name: str, where: str) -> np.ndarray:
    if name not in arrays:
        raise EpisodeError(f"{where}: missing array '{name}' (has: {', '.join(sorted(arrays.files))})")
    return arrays[name]


def load_episode(meta: EpisodeMeta, cameras: list[str], proprio_dim: int, action_dim: int) -> Episode:
    """Load and check one episode's arrays; ``cameras`` are the ones the caller needs."""
    where = meta.uri
    try:
        raw = storage.read_bytes(where)
    except FileNotFoundError as err:
        raise EpisodeError(f"episode {meta.episode_id!r}: missing file {where}") from err
    try:
        arrays = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise EpisodeError(f"{where}: not a readable .npz: {err}") from err
    T = meta.length
    proprio = np.asarray(_field(arrays, "proprio", where), dtype=np.float32)
    action = np.asarray(_field(arrays, "action", where), dtype=np.float32)
    success = np.asarray(_field(arrays, "success", where)).astype(bool)
    for name, array, dim in (("proprio", proprio, proprio_dim), ("action", action, action_dim)):
        if array.shape != (T, dim):
            raise EpisodeError(f"{where}: '{name}' has shape {array.shape}, expected ({T}, {dim}) "
                               f"(episode length {T} from {EPISODES_INDEX}, {name}_dim {dim})")
        if not np.isfinite(array).all():
            raise EpisodeError(f"{where}: '{name}' holds NaN or infinite values")
    if success.shape != (T,):
        raise EpisodeError(f"{where}: 'success' has shape {success.shape}, expected ({T},)")
    images = {}
    for cam in cameras:
        if cam not in meta.cameras:
            raise EpisodeError(f"episode {meta.episode_id!r} ({meta.dataset_uri}) has no camera {cam!r}; "
                               f"it has {', '.join(meta.cameras) or 'none'}")
        frames = _field(arrays, f"images_{cam}", where)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != T or frames.shape[3] != 3:
            raise EpisodeError(f"{where}: 'images_{cam}' has shape {frames.shape} dtype {frames.dtype}, "
                               f"expected ({T}, H, W, 3) uint8")
        images[cam] = frames
    return Episode(meta, images, proprio, action, success)


class EpisodeWriter:
    """Write a raw episode dataset: each ``.npz`` atomically, ``episodes.jsonl`` last on ``close``."""

    def __init__(self, out_uri: str):
        self.out_uri = out_uri
        self.lines: list[dict] = []
        storage.makedirs(out_uri)

    def write(self, episode_id: str, task: str, instruction: str, images: dict[str, np.ndarray],
              proprio: np.ndarray, action: np.ndarray, success: np.ndarray | None = None,
              seed: int | None = None, episode_success: bool | None = None) -> dict:
        T = len(proprio)
        if T == 0:
            raise EpisodeError(f"episode {episode_id!r} is empty")
        for cam in images:
            check_camera_name(cam, f"episode {episode_id!r}")
        success = np.zeros(T, bool) if success is None else np.asarray(success, bool)
        rel = f"episodes/{episode_id}.npz"
        buf = io.BytesIO()
        np.savez(buf, proprio=np.asarray(proprio, np.float32), action=np.asarray(action, np.float32),
                 success=success, **{f"images_{cam}": np.asarray(f, np.uint8) for cam, f in images.items()})
        storage.write_bytes(storage.join(self.out_uri, *rel.split("/")), buf.getvalue())
        shapes = {f.shape[1:3] for f in images.values()}
        size = next(iter(shapes), (0, 0))
        line = {"episode_id": episode_id, "task": task, "instruction": instruction,
                "success": bool(success.any()) if episode_success is None else bool(episode_success),
                "length": T, "seed": seed, "file": rel, "cameras": list(images),
                "image_size": int(size[0]) if size[0] == size[1] else [int(size[0]), int(size[1])]}
        self.lines.append(line)
        return line

    def close(self) -> list[dict]:
        storage.write_text(storage.join(self.out_uri, EPISODES_INDEX),
                           "".join(json.dumps(line) + "\n" for line in self.lines))
        return self.lines
