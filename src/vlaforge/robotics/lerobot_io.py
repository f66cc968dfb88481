"""Reading pieces every LeRobot layout shares: ``meta/info.json``, feature selection, parquet columns,
images stored in the parquet, and frames decoded from mp4 (PyAV) matched to row timestamps.

Files are read through :mod:`vlaforge.storage`, so local paths and ``s3://`` URIs behave alike; a
video is decoded from a streaming file object (seeks become range reads), never downloaded whole first.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from vlaforge import storage

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


def read_json(uri: str) -> dict:
    try:
        return json.loads(storage.read_text(uri))
    except FileNotFoundError as err:
        raise LeRobotError(f"not a LeRobot dataset: missing {uri}") from err
    except ValueError as err:
        raise LeRobotError(f"{uri}: not JSON: {err}") from err


def read_info(src_uri: str, versions: tuple[str, ...], state_key: str, action_key: str) -> dict:
    """``meta/info.json``, checked: a supported ``codebase_version``, ``features``, the state and action keys."""
    info_uri = storage.join(src_uri, "meta", "info.json")
    info = read_json(info_uri)
    version = info.get("codebase_version")
    if version not in versions:
        raise LeRobotError(f"{info_uri}: codebase_version {version!r} is not supported "
                           f"(supported: {', '.join(versions)})")
    missing = [k for k in ("features", "data_path") if k not in info]
    if missing:
        raise LeRobotError(f"{info_uri}: missing {', '.join(missing)}")
    features = info["features"]
    for what, key in (("state_key", state_key), ("action_key", action_key)):
        if key not in features:
            raise LeRobotError(f"{info_uri}: no feature {key!r} ({what}); features: {', '.join(features)}")
    return info


def camera_names(features: dict, cameras: dict[str, str] | None, where: str) -> dict[str, str]:
    """Camera feature key -> camera name: ``cameras`` checked against the dataset, or every camera feature."""
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


def column(table, name: str, where: str) -> np.ndarray:
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


def decode_images(cells: list, src_uri: str, where: str) -> np.ndarray:
    """Frames of a parquet image column: structs of encoded ``bytes`` (or a ``path`` in the dataset)."""
    frames = []
    for i, cell in enumerate(cells):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if data is None and isinstance(cell, dict) and cell.get("path"):
            data = storage.read_bytes(storage.join(src_uri, cell["path"]))
        if data is None:
            raise LeRobotError(f"{where}: row {i} holds no image bytes or path")
        try:
            with Image.open(io.BytesIO(data)) as img:
                frames.append(np.asarray(img.convert("RGB")))
        except OSError as err:
            raise LeRobotError(f"{where}: row {i}: cannot decode image: {err}") from err
    return np.stack(frames)


class VideoReader:
    """Frames of one mp4 (local or remote, opened once) matched to row timestamps, decoded forward.

    Episodes stored one after another in the file (v3.0) are read in order without re-opening or
    seeking back; a request that starts before the decoded position seeks (to the keyframe before it).
    """

    def __init__(self, uri: str, fps: float):
        import av

        self.uri, self.fps, self.half = uri, fps, 0.5 / fps + 1e-4
        self._file = storage.open_read(uri)
        try:
            self._container = av.open(self._file)
        except av.FFmpegError as err:
            self._file.close()
            raise LeRobotError(f"{uri}: cannot decode video: {err}") from err
        if not self._container.streams.video:
            self.close()
            raise LeRobotError(f"{uri}: cannot decode video: no video stream")
        self._stream = self._container.streams.video[0]
        self._frames = None  # the running decoder
        self._pending = None  # a decoded (time, frame) past the last request
        self._position = None  # time of the last frame taken from the decoder (pending excluded)

    def close(self) -> None:
        self._container.close()
        self._file.close()

    def _restart(self, at_s: float) -> None:
        self._container.seek(max(0, int(at_s / self._stream.time_base)), stream=self._stream, backward=True)
        self._frames, self._pending, self._position = self._container.decode(self._stream), None, None

    def _next(self) -> tuple[float, np.ndarray] | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        frame = next(self._frames, None)
        if frame is None:
            return None
        t = float(frame.pts * self._stream.time_base) if frame.pts is not None else 0.0
        return t, frame.to_ndarray(format="rgb24")

    def frames(self, timestamps: np.ndarray, start_s: float = 0.0) -> np.ndarray:
        """The frame nearest each of ``timestamps`` (seconds from ``start_s``), within half a frame period."""
        import av

        wanted = start_s + np.asarray(timestamps, float)
        lo, hi = wanted.min() - self.half, wanted.max() + self.half
        if self._frames is None or (self._position is not None and self._position >= lo):
            self._restart(lo)
        times, frames = [], []
        try:
            while (item := self._next()) is not None:
                if item[0] > hi:
                    self._pending = item
                    break
                self._position = item[0]
                if item[0] >= lo:
                    times.append(item[0])
                    frames.append(item[1])
        except av.FFmpegError as err:
            raise LeRobotError(f"{self.uri}: cannot decode video: {err}") from err
        if not frames:
            raise LeRobotError(f"{self.uri}: no video frames between {wanted.min():.3f}s and {wanted.max():.3f}s")
        times = np.asarray(times)
        nearest = np.abs(times[None, :] - wanted[:, None]).argmin(1)
        off = np.abs(times[nearest] - wanted)
        if (off > self.half).any():
            bad = int(off.argmax())
            raise LeRobotError(f"{self.uri}: no frame near timestamp {wanted[bad]:.4f}s (nearest "
                               f"{times[nearest[bad]]:.4f}s; decoded {times[0]:.3f}-{times[-1]:.3f}s)")
        return np.stack([frames[i] for i in nearest])


def decode_video(uri: str, timestamps: np.ndarray, fps: float) -> np.ndarray:
    """The frame nearest each of ``timestamps`` in the mp4 at ``uri`` (one episode per file, v2.x)."""
    reader = VideoReader(uri, fps)
    try:
        return reader.frames(timestamps)
    finally:
        reader.close()
