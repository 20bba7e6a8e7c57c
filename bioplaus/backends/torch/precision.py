"""Matmul precision of a run's estimate: ``train.precision = "float32" | "tf32" | "bf16"``.

:func:`precision_scope` is a context manager entered around the part of an update that
computes the estimate (the differentiable forward and its backward), never around the
optimizer step, the decorrelation update or the evaluation, which stay in float32:

- ``float32``: nothing changes (IEEE float32 matmuls).
- ``tf32``: CUDA matmuls round their inputs to TF32 (10-bit mantissa, unit roundoff 2^-11
  ≈ 4.9e-4) and accumulate in float32 — ``torch.backends.cuda.matmul.allow_tf32`` set for
  the scope and restored after it, so nothing else in the process changes. CUDA only.
- ``bf16``: ``torch.autocast(device_type, dtype=torch.bfloat16)``: the matmuls of the
  forward (and, through autograd, of the backward) run in bfloat16 (8-bit mantissa, unit
  roundoff 2^-9 ≈ 2.0e-3) with float32 accumulation; element-wise work, the loss and the
  weights' gradients stay float32. On CPU and CUDA.

Only the gradient rules (``bp``, ``bptt``, ``tbptt``) accept tf32/bf16: a perturbation
estimate correlates δℓ with perturbations of size σ√α (~3e-4 in the shipped models), which
these formats round away (docs/design-decisions.md, "Precision"). The protocol refuses the
other combinations at validation (``bioplaus.protocol.check_precision``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

#: the values of ``train.precision``
PRECISIONS = ("float32", "tf32", "bf16")


@contextlib.contextmanager
def _tf32() -> Iterator[None]:
    m = torch.backends.cuda.matmul
    try:
        old = m.allow_tf32  # the legacy flag, as torch.set_float32_matmul_precision sets it
    except RuntimeError:  # the process uses torch's new fp32_precision API: stay with it
        old_new = m.fp32_precision
        m.fp32_precision = "tf32"
        try:
            yield
        finally:
            m.fp32_precision = old_new
        return
    m.allow_tf32 = True
    try:
        yield
    finally:
        m.allow_tf32 = old


def precision_scope(
    precision: str, device: torch.device | str
) -> contextlib.AbstractContextManager:
    """The context in which an estimate runs at ``precision`` on ``device`` (module
    docstring). ``ValueError`` for an unknown value, or tf32 off CUDA."""
    dev = torch.device(device)
    if precision == "float32":
        return contextlib.nullcontext()
    if precision == "tf32":
        if dev.type != "cuda":
            raise ValueError(f"precision 'tf32' is a CUDA matmul mode (device {str(dev)!r})")
        return _tf32()
    if precision == "bf16":
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    raise ValueError(f"precision: must be one of {list(PRECISIONS)} (got {precision!r})")


__all__ = ["PRECISIONS", "precision_scope"]
