"""One JSON line on stdout: strict JSON, always.

Python's json writes NaN and Infinity, which JSON has no words for; a reader in any other
language then fails on the whole line. A value that is not finite (a drag on a broken model,
a level of silence) is written as null instead.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_json(value: Any) -> Any:
    """`value` with every float that is not finite replaced by None (dicts, lists and tuples walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def json_line(value: Any) -> str:
    return json.dumps(finite_json(value), allow_nan=False)
