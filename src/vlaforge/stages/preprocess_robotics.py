"""The preprocess_robotics stage: raw robot episodes -> robotics training shards + stats.json."""

from __future__ import annotations

from vlaforge.artifacts import check_input, check_output
from vlaforge.robotics.config import load_config
from vlaforge.robotics.preprocess import preprocess, split_uris


__all__ = ["run", "split_uris"]


def run(preset: str, overrides: str | list[str] | None, episodes_uris: list[str], out_uri: str) -> dict:
    """The ``preprocess`` section of ``preset`` + overrides over the raw episode datasets ``episodes_uris``."""
    cfg = load_config(preset, overrides)
    check_output(out_uri, "preprocess_robotics")
    for uri in episodes_uris:
        check_input(uri, "episodes", "preprocess episodes")
    return preprocess(cfg, episodes_uris, out_uri)
