"""JSON that every reader accepts: NaN and infinities (not JSON) are written as ``null``.

``json.dumps`` writes a bare ``NaN`` for a float NaN, which strict parsers (``jq``, JavaScript,
Go) reject; summaries and metrics go through :func:`dumps` instead.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (at any depth of dicts, lists and tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``obj`` with non-finite numbers as ``null``; never writes a NaN literal."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
