"""The lerobot_import stage: a LeRobot dataset (v2.0, v2.1 or v3.0; local or ``s3://``) -> raw episodes.

The output is the raw episode format that ``record_demos`` writes (``episodes.jsonl`` +
``episodes/*.npz``), so ``preprocess_robotics`` and everything after it run unchanged on it. Which
features are proprio and action, which of their dimensions are kept and which camera features become
which views come from the preset's ``lerobot_import`` section (:class:`LeRobotImportConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlaforge.artifacts import check_output
from vlaforge.config import ConfigError, load
from vlaforge.robotics.config import check_camera_name
from vlaforge.robotics.lerobot import convert_lerobot


@dataclass
class LeRobotImportConfig:
    """How a LeRobot dataset's features map onto vlaforge's raw episodes (preset section ``lerobot_import``)."""

    cameras: dict[str, str] = field(default_factory=dict)  # camera feature -> view name; empty: every camera
    state_key: str = "observation.state"  # feature read as proprio
    state_slice: str = ""  # its dimensions kept as proprio: "a:b" or "i,j,k"; empty: all
    action_key: str = "action"
    action_slice: str = ""
    proprio_dim: int = 4  # expected proprio dimension after slicing; 0: whatever the data has
    action_dim: int = 4  # expected action dimension after slicing; 0: whatever the data has
    task: str = ""  # task name of every episode; empty: the dataset folder's name
    image_size: int = 0  # resize frames to this square size; 0 keeps them

    def __post_init__(self) -> None:
        if self.proprio_dim < 0 or self.action_dim < 0 or self.image_size < 0:
            raise ConfigError("lerobot_import: proprio_dim, action_dim and image_size must be >= 0")
        for name in self.cameras.values():
            check_camera_name(name, "lerobot_import.cameras")


def lerobot_import(cfg: LeRobotImportConfig, src_uri: str, out_uri: str) -> dict:
    """Import the LeRobot dataset at ``src_uri`` into raw episodes at ``out_uri``; returns counts and frames/s."""
    return convert_lerobot(src_uri, out_uri, cameras=cfg.cameras or None, state_key=cfg.state_key,
                           action_key=cfg.action_key, state_slice=cfg.state_slice or None,
                           action_slice=cfg.action_slice or None, proprio_dim=cfg.proprio_dim or None,
                           action_dim=cfg.action_dim or None, task=cfg.task or None, image_size=cfg.image_size)


def run(preset: str, overrides: str | list[str] | None, src_uri: str, out_uri: str) -> dict:
    """Stage entry point (CLI and component): the ``lerobot_import`` section of ``preset`` + overrides."""
    cfg = load(LeRobotImportConfig, preset, overrides, "lerobot_import")
    check_output(out_uri, "lerobot_import")
    return lerobot_import(cfg, src_uri, out_uri)
