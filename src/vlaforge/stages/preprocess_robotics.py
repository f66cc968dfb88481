"""The preprocess_robotics stage: raw robot episodes -> robotics training shards + stats.json."""

from __future__ import annotations

from vlaforge.robotics.config import load_config
from vlaforge.robotics.preprocess import preprocess, split_uris


__all__ = ["run", "split_uris"]


def run(preset: str, overrides: str | list[str] | None, episodes_uris: list[str], out_uri: str) -> dict:
    """The ``preprocess`` section of ``preset`` + overrides over the raw episode datasets ``episodes_uris``."""
    return preprocess(load_config(preset, overrides), episodes_uris, out_uri)
