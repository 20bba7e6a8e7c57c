"""Surrogate-gradient BPTT on the LIF network: the baseline snnTorch / Norse users train with.

The forward pass is the model itself (Heaviside spikes, the same background-noise
realisation a perturbation pair would see); the backward pass replaces H'(v − θ) by the
fast-sigmoid surrogate 1/(1 + k|v − θ|)² (:func:`.surrogate_spike`), and by default
(``detach_reset``) sends no gradient through the reset, as snnTorch does. The result is
*not* the gradient of L (which is zero almost everywhere); it is the surrogate gradient.
"""

from __future__ import annotations

import torch

from ....records import PassResult
from ..autograd_pass import Forward, autograd_estimate
from . import LIFConsts, LIFParams, decorrelate
from .rollout import background, rollout, uniform_source

Tensor = torch.Tensor


def lif_bptt_estimate(
    p: LIFParams,
    c: LIFConsts,
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    *,
    k: int | None = None,
    generator: torch.Generator | None = None,
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    x0: Tensor | None = None,
    noise: Tensor | None = None,
    spike_fn: str = "surrogate",
    uniform: Tensor | None = None,
) -> PassResult:
    """Surrogate gradient of L by autograd (``k``: truncate every k steps).

    Background noise ξ: ``noise`` [T, B, N] if given, else drawn from ``generator`` (None:
    no background noise); with precise spiking the bridge-crossing uniforms likewise
    (``uniform`` [T, B, N] or ``generator``). Spike times are not differentiated (the
    surrogate acts on v at the step's end). ``spike_fn="smooth"`` differentiates the smooth
    surrogate model instead (tests)."""
    if k is not None and k < 1:
        raise ValueError(f"k: truncation must be >= 1 (got {k})")
    B = inputs.shape[1]
    xi = background(
        c, (B, p.W_rec.shape[0]), noise=noise, generator=generator,
        device=inputs.device, dtype=inputs.dtype,
    )  # fmt: skip
    un = uniform_source(
        c, (B, p.W_rec.shape[0]), uniform=uniform, generator=generator,
        device=inputs.device, dtype=inputs.dtype,
    )  # fmt: skip

    def forward(q: LIFParams) -> Forward:
        out = rollout(
            q, c, inputs, xi, v0=x0, keep_states=bool(decor), spike_fn=spike_fn, detach_every=k,
            uniform=un,
        )  # fmt: skip
        r_hat = None if out.r is None else decorrelate(p.D_rec, out.r)
        return Forward(out.o, r_hat)

    return autograd_estimate(
        p, forward, inputs, targets, mask, loss_kind, keep_outputs=keep_outputs, decor=decor
    )
