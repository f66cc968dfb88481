"""One robotics training sample per anchor timestep (docs/reference/formats.md), and the frame codec
that training and inference share.

For anchor ``t`` of an episode of length ``L`` the window covers steps ``t - past ... t + future``
(``T = past + 1 + future`` positions). Steps outside the episode are padded by repeating the edge
step. Members of a sample (tar member ``<key>.<name>``):

- ``<camera>_t<idx>.jpg``: the frame at ``clamp(t + idx, 0, L - 1)`` for each camera and image index;
- ``lowdim.npz``: ``proprio`` (T, P) and ``action`` (T, A) float32 over the window; ``past_mask``
  (past + 1,) bool for positions ``0..past`` (the anchor is the last one, always true) and
  ``future_mask`` (future,) bool for positions ``past+1..T-1``; padded steps are false;
- ``metadata.json``: ``episode_id``, ``sample_id``, ``anchor_timestep``, ``camera_names``,
  ``original_episode_length``, ``past_padding``, ``future_padding`` (padded steps at each end of the
  window), ``task``, ``image_indices``, ``source`` (the raw dataset URI);
- ``language_instructions.json``: ``{"original": [instruction]}``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
from PIL import Image

from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.episodes import Episode

LOWDIM = "lowdim.npz"
METADATA = "metadata.json"
LANGUAGE = "language_instructions.json"


def window(t: int, length: int, past: int, future: int):
    """Step indices (T,) of the window at anchor ``t`` (edge-padded), past/future masks and paddings."""
    raw = np.arange(t - past, t + future + 1)
    idx = np.clip(raw, 0, length - 1)
    valid = raw == idx
    return idx, valid[:past + 1], valid[past + 1:], int((raw < 0).sum()), int((raw >= length).sum())


def prepare_frame(frame: np.ndarray, image_size: int) -> np.ndarray:
    """An HxWx3 uint8 frame, resized to ``image_size`` square when that is non-zero."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"a camera frame must be HxWx3 uint8, got shape {frame.shape} dtype {frame.dtype}")
    if image_size and frame.shape[:2] != (image_size, image_size):
        frame = np.asarray(Image.fromarray(frame).resize((image_size, image_size), Image.BILINEAR))
    return frame


def encode_frame(frame: np.ndarray, cfg: PreprocessConfig) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(prepare_frame(frame, cfg.image_size)).save(buf, format="JPEG", quality=cfg.jpeg_quality,
                                                               subsampling=cfg.jpeg_subsampling)
    return buf.getvalue()


def decode_frame(data: bytes, where: str = "<frame>") -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as err:
        raise ValueError(f"{where}: not a decodable image: {err}") from err


def lowdim_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def episode_samples(episode: Episode, cfg: PreprocessConfig) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    """Each anchor's sample members, plus its window indices and validity (T,) for the statistics."""
    meta = episode.meta
    L = meta.length
    frames = {cam: [encode_frame(f, cfg) for f in episode.images[cam]] for cam in cfg.cameras}
    language = json.dumps({"original": [meta.instruction]})
    for t in range(L):
        idx, past_mask, future_mask, past_pad, future_pad = window(t, L, cfg.past_steps, cfg.future_steps)
        sample = {
            LOWDIM: lowdim_bytes({"proprio": episode.proprio[idx], "action": episode.action[idx],
                                  "past_mask": past_mask, "future_mask": future_mask}),
            METADATA: json.dumps({
                "episode_id": meta.episode_id, "sample_id": f"{meta.episode_id}_t{t:05d}",
                "anchor_timestep": t, "camera_names": list(cfg.cameras), "original_episode_length": L,
                "past_padding": past_pad, "future_padding": future_pad, "task": meta.task,
                "image_indices": list(cfg.image_indices), "source": meta.dataset_uri}),
            LANGUAGE: language,
        }
        for cam in cfg.cameras:
            for i in cfg.image_indices:
                sample[f"{cam}_t{i}.jpg"] = frames[cam][min(max(t + i, 0), L - 1)]
        yield sample, idx, np.concatenate([past_mask, future_mask])
