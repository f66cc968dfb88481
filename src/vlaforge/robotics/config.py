"""The ``preprocess`` config section and the ``preprocessing_config.yaml`` written beside the shards.

``preprocessing_config.yaml`` holds two mappings: ``preprocess`` (every :class:`PreprocessConfig`
field, with ``cameras`` resolved to the cameras actually used) and ``dataset`` (facts about the
data: sources, episode/sample counts, image shape, field dimensions). Training and inference read
it back with :func:`read_preprocessing_config` so both preprocess observations the same way.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import yaml

from vlaforge import config, storage
from vlaforge.config import ConfigError

PREPROCESSING_CONFIG = "preprocessing_config.yaml"
NORMALIZATION_MODES = ("std", "percentile_5_95", "percentile_1_99", "min_max")
_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def check_camera_name(name: str, source: str) -> None:
    """Camera names become tar member names (``<camera>_t<idx>.jpg``): no dots, slashes or spaces."""
    if not _CAMERA_NAME.match(name):
        raise ValueError(f"{source}: camera name {name!r} must match [A-Za-z0-9_-]+")


JPEG_SUBSAMPLING = ("4:4:4", "4:2:2", "4:2:0")


@dataclass
class PreprocessConfig:
    """How raw episodes become robotics training samples (one sample per anchor timestep)."""

    image_indices: list[int] = field(default_factory=lambda: [-1, 0])  # frames relative to the anchor
    past_steps: int = 1  # proprio/action steps before the anchor in lowdim.npz
    future_steps: int = 8  # steps after the anchor (= action chunk length)
    cameras: list[str] = field(default_factory=list)  # empty: every camera the data has
    image_size: int = 0  # resize frames to image_size x image_size; 0 keeps them as recorded
    proprio_dim: int = 4
    action_dim: int = 4
    val_fraction: float = 0.1  # share of episodes held out for validation
    samples_per_shard: int = 256
    normalization: str = "std"  # one of NORMALIZATION_MODES
    seed: int = 0  # episode split and sample shuffle
    num_workers: int = 2  # processes encoding episodes; 0 = in this process
    jpeg_quality: int = 90
    # Chroma resolution of the stored frames. PIL's default 4:2:0 halves it: at 64x64 that averages a
    # one-to-two-pixel coloured marker (Meta-World's goal sites) into its background; 4:4:4 keeps it.
    # Quote it in YAML: unquoted, 4:4:4 reads as a base-60 integer.
    jpeg_subsampling: str = "4:2:0"
    part: str = ""  # "k/n": encode the k-th of n groups of the episodes (a fan-out slice); "": all

    def __post_init__(self) -> None:
        checks = [
            (self.past_steps >= 0, "past_steps must be >= 0"),
            (self.future_steps >= 1, "future_steps must be >= 1"),
            (len(self.image_indices) >= 1, "image_indices must name at least one frame"),
            (len(set(self.image_indices)) == len(self.image_indices), "image_indices must be distinct"),
            (self.image_size >= 0, "image_size must be >= 0"),
            (self.proprio_dim >= 1 and self.action_dim >= 1, "proprio_dim and action_dim must be >= 1"),
            (0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)"),
            (self.samples_per_shard >= 1, "samples_per_shard must be >= 1"),
            (self.normalization in NORMALIZATION_MODES,
             f"normalization must be one of {', '.join(NORMALIZATION_MODES)}"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (1 <= self.jpeg_quality <= 95, "jpeg_quality must be in [1, 95]"),
            (self.jpeg_subsampling in JPEG_SUBSAMPLING, f"jpeg_subsampling must be one of {', '.join(JPEG_SUBSAMPLING)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"preprocess: {message} (config: {self})")
        for name in self.cameras:
            check_camera_name(name, "preprocess.cameras")

    @property
    def window(self) -> int:
        """Leading length of the lowdim arrays: past + anchor + future."""
        return self.past_steps + 1 + self.future_steps

    def view_keys(self) -> list[str]:
        """Image member names without extension, camera-major then image index (the model's view order)."""
        return [f"{cam}_t{idx}" for cam in self.cameras for idx in self.image_indices]

    def history_length(self) -> int:
        """Observations an inference-time history needs to cover the proprio window and every image index."""
        return max(self.past_steps + 1, 1 - min(self.image_indices))


def load_config(preset: str, overrides: str | list[str] | None = None) -> PreprocessConfig:
    return config.load(PreprocessConfig, preset, overrides, section="preprocess")


def write_preprocessing_config(out_uri: str, cfg: PreprocessConfig, dataset: dict) -> None:
    text = yaml.safe_dump({"preprocess": dataclasses.asdict(cfg), "dataset": dataset}, sort_keys=False)
    storage.write_text(storage.join(out_uri, PREPROCESSING_CONFIG), text)


def read_preprocessing_config(source: str | dict | PreprocessConfig) -> PreprocessConfig:
    """The preprocessing parameters from a dataset folder URI, a parsed YAML mapping, or a config."""
    if isinstance(source, PreprocessConfig):
        return source
    origin = "<mapping>"
    if isinstance(source, str):
        origin = source if source.endswith(".yaml") else storage.join(source, PREPROCESSING_CONFIG)
        source = yaml.safe_load(storage.read_text(origin))
    if not isinstance(source, dict) or not isinstance(source.get("preprocess"), dict):
        raise ConfigError(f"{origin}: expected a mapping with a 'preprocess' section")
    return config.from_dict(PreprocessConfig, source["preprocess"], origin, prefix="preprocess.")
