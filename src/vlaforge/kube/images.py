"""Container image references for the stage families.

Components name their image as ``<registry>/vlaforge-<family>:<project version>``: never ``latest``,
so KFP's cache (keyed on the tag string) never serves a result made by a different image.
``VLAFORGE_REGISTRY`` (read when pipelines are compiled) sets the registry prefix.
"""

from __future__ import annotations

import os

from vlaforge import __version__

FAMILIES = ("train", "sim", "analysis")
DEFAULT_REGISTRY = "ghcr.io/vlaforge"


def image(family: str, registry: str | None = None) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown image family '{family}'; known: {', '.join(FAMILIES)}")
    registry = (registry or os.environ.get("VLAFORGE_REGISTRY") or DEFAULT_REGISTRY).rstrip("/")
    return f"{registry}/vlaforge-{family}:{__version__}"
