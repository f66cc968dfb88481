"""The caption_data stage: captioned scenes rendered in the simulator, or existing img2dataset shards."""

from __future__ import annotations

from vlaforge.artifacts import check_output
from vlaforge.config import load
from vlaforge.sim.scene_captions import CaptionConfig, import_caption_shards, make_caption_data


def run(preset: str, overrides: str | list[str], out_uri: str, source_uri: str = "") -> dict:
    """Import ``source_uri`` when given, else render (the ``captions`` section of ``preset`` + overrides)."""
    cfg = load(CaptionConfig, preset, overrides, "captions")
    check_output(out_uri, "caption_data")
    if source_uri:
        return import_caption_shards(source_uri, out_uri)
    return make_caption_data(cfg, out_uri)
