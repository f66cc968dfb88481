"""Object storage through fsspec: local paths and ``s3://`` URIs behave alike.

S3 endpoint and credentials come from the usual AWS variables (``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``).
Every write is atomic: a local file is written beside its target and renamed into place; an object
store receives one complete PUT of a finished local file, so a reader never sees half an artifact.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import fsspec


class StorageError(RuntimeError):
    """A storage operation failed; the message names the URI and the cause."""


def is_remote(uri: str) -> bool:
    return "://" in str(uri) and not str(uri).startswith("file://")


def _s3_options() -> dict:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    client_kwargs: dict = {}
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if os.environ.get("AWS_DEFAULT_REGION"):
        client_kwargs["region_name"] = os.environ["AWS_DEFAULT_REGION"]
    options = {
        "client_kwargs": client_kwargs,
        # Fail fast with a clear message instead of retrying an unreachable endpoint for minutes.
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}},
        # Other processes write here too (ranks, restarted pods): never answer from a stale listing.
        "use_listings_cache": False,
    }
    # fsspec reuses one client per distinct set of options (making a client costs ~0.4 s); the
    # credentials are part of the options, so changed variables get a new client.
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        options.update(key=os.environ["AWS_ACCESS_KEY_ID"], secret=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                       token=os.environ.get("AWS_SESSION_TOKEN"))
    return options


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``uri`` and the path inside it."""
    uri = str(uri)
    protocol = uri.split("://", 1)[0] if "://" in uri else "file"
    options = _s3_options() if protocol in ("s3", "s3a") else {}
    fs, path = fsspec.core.url_to_fs(uri, **options)
    return fs, path


def join(uri: str, *parts: str) -> str:
    uri = str(uri)
    if is_remote(uri):
        return posixpath.join(uri, *parts)
    return os.path.join(uri, *parts)


def _describe(uri: str, err: BaseException) -> StorageError:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    where = f" (endpoint {endpoint})" if endpoint and is_remote(uri) else ""
    return StorageError(f"storage error on {uri}{where}: {type(err).__name__}: {err}")


@contextlib.contextmanager
def _wrap(uri: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError as err:
        raise FileNotFoundError(f"not found: {uri}") from err
    except Exception as err:  # botocore/aiohttp errors carry no common base class
        raise _describe(uri, err) from err


def exists(uri: str) -> bool:
    with _wrap(uri):
        fs, path = filesystem(uri)
        return fs.exists(path)


def read_bytes(uri: str) -> bytes:
    with _wrap(uri):
        fs, path = filesystem(uri)
        return fs.cat_file(path)


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def listdir(uri: str) -> list[str]:
    """Names (not paths) of the entries directly under ``uri``, sorted."""
    with _wrap(uri):
        fs, path = filesystem(uri)
        if not fs.isdir(path):
            raise FileNotFoundError(f"not a directory: {uri}")
        return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))


def makedirs(uri: str) -> None:
    if not is_remote(uri):
        os.makedirs(uri, exist_ok=True)


@contextlib.contextmanager
def atomic_open(uri: str, mode: str = "wb") -> Iterator:
    """Open ``uri`` for writing; the file appears at ``uri`` only if the block finishes."""
    assert mode in ("wb", "w"), mode
    uri = str(uri)
    if is_remote(uri):
        fd, tmp = tempfile.mkstemp(prefix="vlaforge-upload-")
    else:
        os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(uri)}.", suffix=".tmp",
                                   dir=os.path.dirname(os.path.abspath(uri)))
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if is_remote(uri):
            with _wrap(uri):
                fs, path = filesystem(uri)
                fs.put_file(tmp, path)
        else:
            os.replace(tmp, uri)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(uri: str, data: bytes) -> None:
    with atomic_open(uri, "wb") as f:
        f.write(data)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def upload_file(local_path: str | Path, uri: str) -> None:
    """Copy a finished local file to ``uri`` atomically."""
    with open(local_path, "rb") as src, atomic_open(uri, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 22)


def open_read(uri: str):
    """A binary file object for reading ``uri`` (local or remote)."""
    with _wrap(uri):
        fs, path = filesystem(uri)
        return fs.open(path, "rb")


@contextlib.contextmanager
def local_dir(uri: str) -> Iterator[str]:
    """A local folder holding the contents of ``uri`` (downloaded when remote)."""
    if not is_remote(uri):
        if not os.path.isdir(uri):
            raise FileNotFoundError(f"not a directory: {uri}")
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="vlaforge-dl-") as tmp:
        with _wrap(uri):
            fs, path = filesystem(uri)
            if not fs.isdir(path):
                raise FileNotFoundError(f"not found: {uri}")
            fs.get(path.rstrip("/") + "/", tmp + "/", recursive=True)
        yield tmp


def upload_dir(local: str | Path, uri: str) -> None:
    """Copy every file under ``local`` to ``uri``, each file atomically."""
    for root, _, files in os.walk(local):
        for name in sorted(files):
            src = os.path.join(root, name)
            rel = os.path.relpath(src, local).replace(os.sep, "/")
            upload_file(src, join(uri, *rel.split("/")))


def copy_dir(src: str, dst: str) -> None:
    """Copy the folder ``src`` to ``dst`` (either may be remote), each file atomically."""
    with local_dir(src) as local:
        upload_dir(local, dst)
