"""Validation of task options: a bad value is a ValueError naming the option (the run
machinery turns it into one line naming the protocol file and ``task.<name>``)."""

from __future__ import annotations

import numpy as np


def int_arg(name: str, value: object, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum``, else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer (got {value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum} (got {value})")
    return int(value)


def bool_arg(name: str, value: object) -> bool:
    """``value`` as a bool (Python's or numpy's), else a ValueError naming the argument."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be true or false (got {value!r})")
    return bool(value)


def float_arg(name: str, value: object, minimum: float = 0.0, strict: bool = False) -> float:
    """``value`` as a float ≥ ``minimum`` (> when ``strict``), else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number (got {value!r})")
    v = float(value)
    if not np.isfinite(v) or v < minimum or (strict and v == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum} (got {value})")
    return v
