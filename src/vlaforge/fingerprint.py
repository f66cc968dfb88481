"""Content fingerprints of inputs given by URI, for cache keys that follow the data, not the name.

KFP keys its cache on a task's parameters: a corpus replaced at the same ``s3://`` URI would hit the
cache and reuse stale artifacts. A fingerprint is a SHA-256 over what is at the URI now: for object
storage the listing (every object's key, ETag, size and modification time: no download), for a local
path every file's relative name and the hash of its bytes. Handed to the reading task as a parameter,
it changes that task's cache key exactly when the data changes.
"""

from __future__ import annotations

import hashlib
import json
import os

from vlaforge import storage


def _local_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"fingerprint: nothing at {path}")
    return sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names)


def _file_hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _remote_listing(uri: str) -> list[list]:
    fs, root = storage.filesystem(uri)
    found = fs.find(root, detail=True)
    if not found:
        raise FileNotFoundError(f"fingerprint: nothing at {uri}")
    listing = []
    for key in sorted(found):
        info = found[key]
        modified = info.get("LastModified") or info.get("mtime") or ""
        listing.append([key, str(info.get("ETag", "")), info.get("size"), str(modified)])
    return listing


def fingerprint(uri: str) -> str:
    """SHA-256 hex digest of the content at ``uri`` (a file or folder, local or remote)."""
    if storage.is_remote(uri):
        listing = _remote_listing(uri)
    else:
        listing = [[os.path.relpath(p, uri) if p != uri else "", _file_hash(p)] for p in _local_files(uri)]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def is_location(value: object) -> bool:
    """Whether a config value names data by location (an ``s3://``-style URI or an existing path)."""
    return isinstance(value, str) and bool(value) and (storage.is_remote(value) or os.path.exists(value))


def fingerprints(uris: list[str]) -> str:
    """One line ``<uri> <digest>`` per location among ``uris`` (others, e.g. ``builtin`` or a hub name, skipped)."""
    return "\n".join(f"{uri} {fingerprint(uri)}" for uri in uris if is_location(uri))
