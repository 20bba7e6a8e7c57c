"""Seed handling: one root seed → named child seeds (numpy SeedSequence), recorded in every run.

No function in bioplaus reads global random state: each random stream is a
``numpy.random.Generator`` or ``torch.Generator`` built from a seed derived here.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def _key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def child_seed(root: int, *names: str) -> int:
    """A 63-bit seed derived from ``root`` and a path of stream names (stable across runs)."""
    if isinstance(root, bool) or not isinstance(root, int | np.integer):  # 1.5 is not 1
        raise TypeError(f"seed: expected a non-negative integer (got {root!r})")
    if int(root) < 0:
        raise ValueError(f"seed must be >= 0 (got {root})")
    ss = np.random.SeedSequence(entropy=int(root), spawn_key=tuple(_key(n) for n in names))
    return int(
        ss.generate_state(2, dtype=np.uint32).astype(np.uint64)
        @ np.array([1 << 31, 1], dtype=np.uint64)
    ) & ((1 << 63) - 1)


def numpy_rng(root: int, *names: str) -> np.random.Generator:
    """A numpy Generator for the named stream."""
    return np.random.default_rng(child_seed(root, *names))


def torch_generator(root: int, *names: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch Generator on ``device`` for the named stream."""
    g = torch.Generator(device=device)
    g.manual_seed(child_seed(root, *names))
    return g
