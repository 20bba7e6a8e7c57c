"""``bp.simulate``: states of a network on given inputs, on either back-end."""

from __future__ import annotations

import numpy as np
import torch

from .params import Params, check_params, init_params
from .registry import network_type
from .spec import ModelSpec, SpecError
from .validate import check_inputs, check_simulate

__all__ = ["BACKENDS", "check_inputs", "simulate"]

BACKENDS = ("torch", "brian2")


OUTPUTS = ("numpy", "torch")
DTYPES = ("float32", "float64")


def simulate(
    spec: ModelSpec,
    inputs: np.ndarray,
    params: Params | None = None,
    backend: str = "torch",
    noise: np.ndarray | None = None,
    seed: int = 0,
    x0: np.ndarray | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    *,
    output: str = "numpy",
    out_dtype: str | None = None,
    allow_nonfinite: bool = False,
    **backend_options,
):
    """States x_0 … x_{T−1} of ``spec`` driven by ``inputs`` [T, B, n_in] → [T, B, N].

    ``noise``: optional standard-normal ξ [T, B, N] so back-ends share one realisation;
    otherwise intrinsic noise (σ = spec.sigma) is drawn from a generator seeded by ``seed``.
    ``params`` default to ``init_params(spec, seed)``. ``dtype`` is the torch back-end's
    arithmetic. What comes back: ``output = "numpy"`` (default) or ``"torch"`` (tensors on
    ``device``, torch back-end only), in ``out_dtype`` ("float32" or "float64"; default
    float64 for numpy, ``dtype`` for torch). Only the returned states are kept.

    LIF models return v (and with ``spikes=True`` also the spikes s, with
    ``spike_times=True`` also the spike times [T, B, N] in seconds from the start, NaN where
    no spike: (t + 1) dt on the grid, within the step with ``spiking = "precise"``).
    ``crossing``: the bridge-crossing uniforms U [T, B, N] of precise spiking (σ_v > 0);
    with a shared ``noise`` they default to draws seeded by ``seed``, so both back-ends see
    one realisation.

    Spiking networks (``LIFSpec``): ``spikes=True`` (on both back-ends) returns ``(v, s)``,
    with s [T, B, N] the spikes as 0/1 floats (s[t, b, i] = 1 where neuron i of trial b fired
    at step t), e.g. ``v, s = bp.simulate(lif_spec, u, spikes=True)``; firing rates are
    ``s.mean() / spec.dt`` (Hz) and ``bioplaus.analysis.plots.raster(ax, s, dt=spec.dt)``
    draws a raster. Other ``backend_options`` go to the back-end (brian2: ``target``,
    ``recurrence``).

    Arguments are checked first (``bioplaus.validate.check_simulate``): NaN/Inf in
    params, noise or x0 is refused unless ``allow_nonfinite=True``; an unknown keyword is a
    TypeError. Then the network type's ``simulate`` runs (``bp.network_type(spec.kind)``,
    ``bioplaus/networks/<kind>.py``), on the back-end named.
    """
    check_simulate(spec, inputs, params, backend, noise, seed, x0, device, dtype, backend_options, allow_nonfinite)  # fmt: skip  # noqa: E501
    inputs = check_inputs(spec, inputs)
    T, B, _ = inputs.shape
    if output not in OUTPUTS:
        raise SpecError(f"output: must be one of {list(OUTPUTS)} (got {output!r})")
    if dtype not in DTYPES:
        raise SpecError(f"dtype: must be one of {list(DTYPES)} (got {dtype!r})")
    if out_dtype is None:
        out_dtype = dtype if output == "torch" else "float64"
    if out_dtype not in DTYPES:
        raise SpecError(f"out_dtype: must be one of {list(DTYPES)} (got {out_dtype!r})")
    if output == "torch" and backend != "torch":
        raise SpecError(f"output: 'torch' needs backend = 'torch' (got {backend!r})")
    if params is None:
        params = init_params(spec, seed)
    check_params(spec, params)
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float64)
        if noise.shape != (T, B, spec.n_rec):
            raise SpecError(f"noise: expected shape {(T, B, spec.n_rec)}, got {noise.shape}")
    simulate_network = network_type(spec.kind).simulate  # bioplaus/networks/<kind>.py
    if simulate_network is None:
        raise SpecError(f"spec: a {spec.kind} network has no dynamics to simulate")
    states = simulate_network(spec, inputs, params, backend, noise, seed, x0, device, dtype,
                              **backend_options)  # fmt: skip
    return _Format(output, out_dtype)(states)


class _Format:
    """Return arrays as asked: numpy or torch, float32 or float64 (one copy at most)."""

    def __init__(self, output: str, out_dtype: str) -> None:
        self.output, self.out_dtype = output, out_dtype

    def __call__(self, a):
        if isinstance(a, tuple):
            return tuple(self(x) for x in a)
        if self.output == "torch":
            return a.to(getattr(torch, self.out_dtype)) if isinstance(a, torch.Tensor) else a
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        return np.asarray(a, dtype=self.out_dtype)
