"""The record_demos stage: scripted-expert demonstrations recorded in the embedded simulator."""

from __future__ import annotations

from vlaforge.artifacts import check_output
from vlaforge.config import load
from vlaforge.sim.demos import DemoConfig, record_demos, report_metrics

__all__ = ["report_metrics", "run"]


def run(preset: str, overrides: str | list[str], out_uri: str) -> dict:
    """The ``demos`` section of ``preset`` + overrides, recorded into ``out_uri``."""
    cfg = load(DemoConfig, preset, overrides, "demos")
    check_output(out_uri, "record_demos")
    return record_demos(cfg, out_uri)
