"""Helpers shared by several test files (importable as ``helpers``: pytest puts this folder,
the one of the root conftest.py, on sys.path)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np


def flat(g: dict) -> np.ndarray:
    """The arrays of a gradient dict, raveled and concatenated in key order."""
    return np.concatenate([g[k].ravel() for k in sorted(g)])


def cosine(a: dict, b: dict) -> float:
    """Cosine similarity of two gradient dicts (over all their entries)."""
    x, y = flat(a), flat(b)
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


@contextlib.contextmanager
def interrupted_at(step: int) -> Iterator[None]:
    """Inside the block, the trainer's ``step`` raises KeyboardInterrupt once the trainer
    has reached ``step`` (a kill in the middle of a run); the real ``step`` again after it."""
    from bioplaus.train import trainer as trainer_mod

    real = trainer_mod.Trainer.step

    def crashing_step(self):
        if self.step_count == step:
            raise KeyboardInterrupt
        return real(self)

    trainer_mod.Trainer.step = crashing_step
    try:
        yield
    finally:
        trainer_mod.Trainer.step = real
