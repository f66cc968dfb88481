"""Normalisation of low-dimensional fields from ``stats.json``, for numpy arrays and torch tensors.

Modes (per dimension):

- ``std``: ``(x - mean) / std``;
- ``percentile_5_95`` / ``percentile_1_99``: the percentile range maps to [-1, 1];
- ``min_max``: [min, max] maps to [-1, 1].

A dimension whose scale is (near) zero, e.g. a constant gripper command, gets scale 1, so it is only
shifted. :meth:`Normalizer.to_dict` holds only what the mode needs and is JSON-serialisable, so the
normaliser is bundled with a policy checkpoint and rebuilt with :meth:`Normalizer.from_dict`.
"""

from __future__ import annotations

import numpy as np

from vlaforge.robotics.config import NORMALIZATION_MODES
from vlaforge.robotics.stats import read_stats

_RANGE_KEYS = {"percentile_5_95": ("percentile_5", "percentile_95"),
               "percentile_1_99": ("percentile_1", "percentile_99"),
               "min_max": ("min", "max")}
EPS = 1e-6


def _as_float(x):
    if type(x).__module__.startswith("torch"):
        return x if x.is_floating_point() else x.float()
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


class Normalizer:
    """``normalize(field, x)`` / ``denormalize(field, x)`` over the last axis of ``x``."""

    def __init__(self, mode: str, center: dict[str, list[float]], scale: dict[str, list[float]]):
        if mode not in NORMALIZATION_MODES:
            raise ValueError(f"unknown normalization mode {mode!r}; known: {', '.join(NORMALIZATION_MODES)}")
        self.mode = mode
        self.center = {k: np.asarray(v, np.float32) for k, v in center.items()}
        self.scale = {k: np.asarray(v, np.float32) for k, v in scale.items()}
        self.scale = {k: np.where(v > EPS, v, 1.0).astype(np.float32) for k, v in self.scale.items()}

    @classmethod
    def from_stats(cls, stats: dict | str, mode: str, fields: tuple[str, ...] = ("proprio", "action")) -> Normalizer:
        """From a ``stats.json`` mapping (or the URI of it / of its dataset folder)."""
        source = stats if isinstance(stats, str) else "stats"
        if isinstance(stats, str):
            stats = read_stats(stats)
        if mode not in NORMALIZATION_MODES:
            raise ValueError(f"unknown normalization mode {mode!r}; known: {', '.join(NORMALIZATION_MODES)}")
        center, scale = {}, {}
        for name in fields:
            if name not in stats:
                raise ValueError(f"{source}: no statistics for field {name!r}; it has {', '.join(sorted(stats))}")
            entry = stats[name]
            keys = ("mean", "std") if mode == "std" else _RANGE_KEYS[mode]
            missing = [k for k in keys if k not in entry]
            if missing:
                raise ValueError(f"{source}: field {name!r} lacks {', '.join(missing)} needed by mode {mode!r}")
            a, b = (np.asarray(entry[k], np.float64) for k in keys)
            if a.shape != b.shape or a.ndim != 1:
                raise ValueError(f"{source}: field {name!r}: {keys[0]} {a.shape} and {keys[1]} {b.shape} "
                                 "must be equal-length lists")
            center[name], scale[name] = (a, b) if mode == "std" else ((a + b) / 2, (b - a) / 2)
        return cls(mode, center, scale)

    def dim(self, field: str) -> int:
        self._check_field(field)
        return len(self.center[field])

    def _check_field(self, field: str) -> None:
        if field not in self.center:
            raise ValueError(f"normalizer has no field {field!r}; it has {', '.join(sorted(self.center))}")

    def _params(self, field: str, x):
        self._check_field(field)
        center, scale = self.center[field], self.scale[field]
        if x.shape[-1] != len(center):
            raise ValueError(f"field {field!r} has dimension {x.shape[-1]} (shape {tuple(x.shape)}) but its "
                             f"statistics have dimension {len(center)}")
        if isinstance(x, np.ndarray):
            return center.astype(x.dtype, copy=False), scale.astype(x.dtype, copy=False)
        import torch

        return (torch.as_tensor(center, dtype=x.dtype, device=x.device),
                torch.as_tensor(scale, dtype=x.dtype, device=x.device))

    def normalize(self, field: str, x):
        """``x`` (..., dim) as a numpy array (float32 unless already floating) or a float torch tensor."""
        x = _as_float(x)
        center, scale = self._params(field, x)
        return (x - center) / scale

    def denormalize(self, field: str, x):
        x = _as_float(x)
        center, scale = self._params(field, x)
        return x * scale + center

    def to_dict(self) -> dict:
        return {"mode": self.mode,
                "fields": {k: {"center": self.center[k].tolist(), "scale": self.scale[k].tolist()}
                           for k in self.center}}

    @classmethod
    def from_dict(cls, data: dict) -> Normalizer:
        try:
            fields = data["fields"]
            return cls(data["mode"], {k: v["center"] for k, v in fields.items()},
                       {k: v["scale"] for k, v in fields.items()})
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a normalizer mapping (needs mode and fields.<name>.center/scale): {err}") from err
