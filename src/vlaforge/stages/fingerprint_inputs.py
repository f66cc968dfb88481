"""The fingerprint_inputs stage: content fingerprints of the data a stage reads by URI (see
:mod:`vlaforge.fingerprint`), handed to that stage's task so its cache key follows the data."""

from __future__ import annotations

import re

from vlaforge.config import ConfigError, apply_overrides, load_preset_dict, split_overrides
from vlaforge.fingerprint import fingerprints


def _value(section: dict, key: str, where: str):
    node = section
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{where}: no key '{key}' to fingerprint")
        node = node[part]
    return node


def run(preset: str, section: str, overrides: str | list[str], fields: str, uris: str = "") -> str:
    """``<uri> <sha256>`` lines for the locations in the ``fields`` (comma-separated dotted keys) of the preset's
    ``section`` with overrides, and in ``uris`` (separated by newlines, commas or spaces)."""
    data, source = load_preset_dict(preset)
    values = apply_overrides(data.get(section) or {}, split_overrides(overrides))
    found = [_value(values, key.strip(), f"{source} [{section}]") for key in fields.split(",") if key.strip()]
    found += [uri for uri in re.split(r"[\s,]+", uris) if uri]
    return fingerprints([str(v) for v in found])
