"""Completeness checks of the files inside artifacts, cheap enough to run before any work starts.

Each check reads headers and sizes only (never the whole payload) and raises
:class:`IncompleteFileError` naming the file: a truncated ``.safetensors`` (header, then tensor data
shorter than the header says), a truncated ``.npz``/zip (central directory, members past the end of
the file), a tar shard holding fewer samples than its ``manifest.jsonl`` line says.
"""

from __future__ import annotations

import json
import os
import struct
import tarfile
import zipfile

from vlaforge import storage


class IncompleteFileError(ValueError):
    """A file of an artifact is truncated or corrupt; the message names the file."""


def _size(uri: str) -> int:
    fs, path = storage.filesystem(uri)
    return int(fs.size(path))


def check_safetensors(uri: str) -> None:
    """The header parses and the file is exactly as long as the header's tensors need."""
    size = _size(uri)
    with storage.open_read(uri) as f:
        head = f.read(8)
        if len(head) < 8:
            raise IncompleteFileError(f"{uri}: truncated safetensors file ({size} bytes, no header)")
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            raise IncompleteFileError(f"{uri}: truncated safetensors file (header of {header_len} bytes, "
                                      f"file of {size})")
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, UnicodeDecodeError) as err:
            raise IncompleteFileError(f"{uri}: not a safetensors file (bad header: {err})") from err
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        raise IncompleteFileError(f"{uri}: truncated safetensors file ({size} bytes, its header needs {expected})")


def check_zip(uri: str) -> None:
    """An ``.npz``/zip whose central directory reads and whose members all lie inside the file."""
    size = _size(uri)
    try:
        with storage.open_read(uri) as f, zipfile.ZipFile(f) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise IncompleteFileError(f"{uri}: truncated or corrupt zip/npz file ({size} bytes): {err}") from err
    for info in members:
        if info.header_offset + len(info.filename) + 30 + info.compress_size > size:
            raise IncompleteFileError(f"{uri}: truncated zip/npz file: member {info.filename} runs past the end")


def count_tar_samples(uri: str) -> int:
    """Samples (file groups sharing a key) in a WebDataset tar shard; reads the member headers only."""
    keys = set()
    try:
        if storage.is_remote(uri):
            with storage.open_read(uri) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
                names = [m.name for m in tar if m.isfile()]
        else:
            with tarfile.open(uri, mode="r:") as tar:
                names = [m.name for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, EOFError, OSError) as err:
        raise IncompleteFileError(f"{uri}: truncated or corrupt tar shard: {err}") from err
    for name in names:
        keys.add(os.path.basename(name).partition(".")[0])
    return len(keys)


def check_shards(folder_uri: str) -> int:
    """Every shard of ``<folder_uri>/manifest.jsonl`` is present and holds the samples it lists; their total.

    Local shards are counted member by member; remote ones (reading them whole would cost as much as the
    training itself) are checked for presence and a whole number of 512-byte tar blocks.
    """
    from vlaforge.data.shards import ShardError, read_manifest

    try:
        shards = read_manifest(folder_uri)
    except ShardError as err:
        raise IncompleteFileError(str(err)) from err
    for shard in shards:
        if not storage.exists(shard.uri):
            raise IncompleteFileError(f"{shard.uri}: shard listed in the manifest is missing")
        if storage.is_remote(shard.uri):
            size = _size(shard.uri)
            if size == 0 or size % 512:
                raise IncompleteFileError(f"{shard.uri}: truncated tar shard ({size} bytes)")
            continue
        found = count_tar_samples(shard.uri)
        if found != shard.num_samples:
            raise IncompleteFileError(f"{shard.uri}: holds {found} samples, its manifest line says "
                                      f"{shard.num_samples} (truncated shard?)")
    return sum(s.num_samples for s in shards)
