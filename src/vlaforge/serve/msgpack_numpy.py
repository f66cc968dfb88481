"""msgpack with NumPy arrays, byte-compatible with ``openpi_client.msgpack_numpy``.

An array travels as a map ``{b"__ndarray__": True, b"data": raw bytes, b"dtype": dtype.str,
b"shape": shape}``, a NumPy scalar as ``{b"__npgeneric__": True, b"data": item, b"dtype": dtype.str}``.
Object, void and complex arrays are refused (openpi would need pickle for them).
"""

from __future__ import annotations

import msgpack
import numpy as np


def _pack(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in ("V", "O", "c"):
        raise ValueError(f"unsupported dtype: {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": np.ascontiguousarray(obj).tobytes(), b"dtype": obj.dtype.str,
                b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _unpack(obj: dict):
    if b"__ndarray__" in obj:
        dtype = np.dtype(obj[b"dtype"])
        if dtype.kind in ("V", "O", "c"):
            raise ValueError(f"unsupported dtype: {dtype}")
        return np.ndarray(buffer=obj[b"data"], dtype=dtype, shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def packb(obj) -> bytes:
    return msgpack.packb(obj, default=_pack)


def unpackb(data: bytes):
    """The message in ``data``; malformed input raises ``ValueError`` (msgpack's errors are ValueErrors too)."""
    try:
        return msgpack.unpackb(data, object_hook=_unpack)
    except (TypeError, KeyError) as err:
        raise ValueError(f"not a msgpack-numpy message: {type(err).__name__}: {err}") from err
