"""A minimal TOML writer for the flat protocol/sweep shapes bioplaus writes (tables of
scalars and lists of scalars). Used to write resolved protocols and by tests."""

from __future__ import annotations

import json
import math
from typing import Any


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # TOML basic strings share JSON's escapes
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(data: dict[str, Any]) -> str:
    """Top-level scalars first, then one ``[table]`` per dict value (nested dicts inline).
    ``None`` values are left out (TOML has no null: absent means the default)."""
    lines = [
        f"{json.dumps(k)} = {value(v)}"
        for k, v in data.items()
        if not isinstance(v, dict) and v is not None
    ]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"\n[{json.dumps(k)}]")
            lines += [f"{json.dumps(kk)} = {value(vv)}" for kk, vv in v.items() if vv is not None]
    return "\n".join(lines) + "\n"
