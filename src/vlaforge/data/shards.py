"""WebDataset shards with a ``manifest.jsonl``, written atomically and read with clear errors.

Layout (docs/reference/formats.md): tar shards in one folder plus ``manifest.jsonl`` with one line
``{"shard": "<name without .tar>", "num_sequences": N}`` per shard. A sample is the group of tar
members sharing a key (the name up to the first dot): ``000012.json.gz``, ``000012.jpg``, ...
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlaforge import storage

if TYPE_CHECKING:
    import webdataset as wds

MANIFEST = "manifest.jsonl"


class ShardError(RuntimeError):
    """A shard or manifest is missing, corrupt or inconsistent; the message names the file."""


@dataclass(frozen=True)
class ShardInfo:
    uri: str
    name: str
    num_samples: int


class ShardWriter:
    """Write samples into numbered tar shards under ``out_uri``; ``close`` writes the manifest.

    Each shard is finished in a local temporary file and then moved/uploaded in one step, so a
    reader never sees a partial shard; the manifest is written last.
    """

    def __init__(self, out_uri: str, prefix: str = "shard", samples_per_shard: int = 1000):
        self.out_uri = out_uri
        self.prefix = prefix
        self.samples_per_shard = samples_per_shard
        self.shards: list[dict] = []
        self._tmpdir = tempfile.TemporaryDirectory(prefix="vlaforge-shard-")
        self._writer: wds.TarWriter | None = None
        self._count = 0
        storage.makedirs(out_uri)

    def _open(self) -> None:
        import webdataset as wds  # here: it imports torch, which planning and merging tasks do without

        self._name = f"{self.prefix}-{len(self.shards):06d}"
        self._path = os.path.join(self._tmpdir.name, self._name + ".tar")
        self._writer = wds.TarWriter(self._path, encoder=False, mtime=0)  # same samples, same bytes
        self._count = 0

    def _finish(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        storage.upload_file(self._path, storage.join(self.out_uri, self._name + ".tar"))
        os.unlink(self._path)
        self.shards.append({"shard": self._name, "num_sequences": self._count})
        self._writer = None

    def write(self, sample: dict) -> None:
        """``sample`` maps ``__key__`` and extensions (``json.gz``, ``jpg``...) to bytes (str is UTF-8 encoded).

        Values are stored as given: no implicit encoding or compression by extension.
        """
        if self._writer is None:
            self._open()
        self._writer.write({k: v.encode("utf-8") if isinstance(v, str) and k != "__key__" else v
                            for k, v in sample.items()})
        self._count += 1
        if self._count >= self.samples_per_shard:
            self._finish()

    def close(self) -> list[dict]:
        self._finish()
        manifest = "".join(json.dumps(s) + "\n" for s in self.shards)
        storage.write_text(storage.join(self.out_uri, MANIFEST), manifest)
        self._tmpdir.cleanup()
        return self.shards

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
        else:
            self._tmpdir.cleanup()


def read_manifest(uri: str) -> list[ShardInfo]:
    """Shards listed in ``<uri>/manifest.jsonl``; every listed shard must exist."""
    path = storage.join(uri, MANIFEST)
    try:
        text = storage.read_text(path)
    except FileNotFoundError as err:
        raise ShardError(f"missing manifest: {path} (a shard folder needs {MANIFEST})") from err
    shards = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            shards.append(ShardInfo(storage.join(uri, entry["shard"] + ".tar"), entry["shard"],
                                    int(entry["num_sequences"])))
        except (ValueError, KeyError, TypeError) as err:
            raise ShardError(f"{path}:{lineno}: bad manifest line {line!r}: {err}") from err
    if not shards:
        raise ShardError(f"empty manifest: {path}")
    return shards


def iter_samples(shard_uri: str) -> Iterator[dict]:
    """Samples of one tar shard as ``{"__key__": key, ext: bytes, ...}``."""
    current: dict | None = None
    try:
        with storage.open_read(shard_uri) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = os.path.basename(member.name)
                key, _, ext = base.partition(".")
                data = tar.extractfile(member).read()
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key}
                current[ext] = data
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ShardError(f"corrupt shard {shard_uri}: {type(err).__name__}: {err}") from err
    if current is not None:
        yield current
