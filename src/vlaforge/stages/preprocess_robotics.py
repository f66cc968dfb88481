"""The preprocess_robotics stage: raw robot episodes -> robotics training shards + stats.json (``run``, one
process), or, fanned out, one part of the episodes encoded (``run_part``; merge_slices writes the shards)."""

from __future__ import annotations

from vlaforge.artifacts import check_input, check_output
from vlaforge.robotics.config import load_config
from vlaforge.robotics.preprocess import encode_part, preprocess, split_uris


__all__ = ["run", "run_part", "split_uris"]


def _checked_inputs(episodes_uris: list[str]) -> list[str]:
    for uri in episodes_uris:
        check_input(uri, "episodes", "preprocess episodes")
    return episodes_uris


def run(preset: str, overrides: str | list[str] | None, episodes_uris: list[str], out_uri: str) -> dict:
    """The ``preprocess`` section of ``preset`` + overrides over the raw episode datasets ``episodes_uris``."""
    cfg = load_config(preset, overrides)
    check_output(out_uri, "preprocess_robotics")
    return preprocess(cfg, _checked_inputs(episodes_uris), out_uri)


def run_part(preset: str, overrides: str | list[str] | None, episodes_uris: list[str], out_uri: str) -> dict:
    """A fan-out slice: the episodes of the section's ``part`` encoded into ``out_uri`` (see encode_part)."""
    return encode_part(load_config(preset, overrides), _checked_inputs(episodes_uris), out_uri)
