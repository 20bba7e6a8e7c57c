"""``bp.simulate``: states of a network on given inputs, on either back-end."""

from __future__ import annotations

import numpy as np
import torch

from .params import Params, check_params, init_params
from .random import torch_generator
from .spec import ModelSpec, SpecError
from .validate import check_simulate

BACKENDS = ("torch", "brian2")


def check_inputs(spec: ModelSpec, inputs: np.ndarray, name: str = "inputs") -> np.ndarray:
    """Validate [T, B, n_in] inputs; return them as float64."""
    arr = np.asarray(inputs, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != spec.n_in:
        raise SpecError(f"{name}: expected shape [T, B, n_in={spec.n_in}], got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SpecError(f"{name}: empty sequence or batch (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise SpecError(f"{name}: contains NaN or Inf")
    return arr


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
    allow_nonfinite: bool = False,
    **backend_options,
) -> np.ndarray:
    """States x_0 … x_{T−1} of ``spec`` driven by ``inputs`` [T, B, n_in] → numpy [T, B, N].

    ``noise``: optional standard-normal ξ [T, B, N] so back-ends share one realisation;
    otherwise intrinsic noise (σ = spec.sigma) is drawn from a generator seeded by ``seed``.
    ``params`` default to ``init_params(spec, seed)``. Arguments are checked first
    (``bioplaus.validate.check_simulate``): NaN/Inf in params, noise or x0 is refused unless
    ``allow_nonfinite=True``; an unknown keyword is a TypeError.
    """
    check_simulate(spec, inputs, params, backend, noise, seed, x0, device, dtype, backend_options, allow_nonfinite)  # fmt: skip  # noqa: E501
    inputs = check_inputs(spec, inputs)
    T, B, _ = inputs.shape
    if params is None:
        params = init_params(spec, seed)
    check_params(spec, params)
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float64)
        if noise.shape != (T, B, spec.n_rec):
            raise SpecError(f"noise: expected shape {(T, B, spec.n_rec)}, got {noise.shape}")
    if spec.kind == "lif":  # spiking network: v [T, B, N] (backends/*/lif*.py)
        return _simulate_lif(spec, inputs, params, backend, noise, seed, x0, device, dtype,
                             **backend_options)  # fmt: skip
    if backend == "torch":
        return _simulate_torch(spec, inputs, params, noise, seed, x0, device, dtype)
    if backend == "brian2":
        from .backends.brian2.rate import simulate_rate

        try:
            return simulate_rate(
                spec, inputs, params, noise=noise, seed=seed, x0=x0, **backend_options
            )
        except (ValueError, TypeError) as exc:  # bad backend option: one line, key named
            raise SpecError(str(exc)) from None
    raise SpecError(f"backend: unknown backend {backend!r} (choose from {list(BACKENDS)})")


def _simulate_torch(spec, inputs, params, noise, seed, x0, device, dtype) -> np.ndarray:
    from .backends.torch.rate import consts_of, to_torch
    from .backends.torch.rollout import noise_source, rollout

    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    p = to_torch(params, device, tdtype)
    u = torch.as_tensor(inputs, device=device, dtype=tdtype)
    T, B, _ = inputs.shape
    xi = noise_source(
        (B, spec.n_rec),
        noise=None if noise is None else torch.as_tensor(noise, device=device, dtype=tdtype),
        generator=torch_generator(seed, "simulate", device=device) if spec.sigma > 0 else None,
        device=device,
        dtype=tdtype,
    )
    x0_t = None if x0 is None else torch.as_tensor(x0, device=device, dtype=tdtype)
    with torch.no_grad():
        out = rollout(p, consts_of(spec), u, xi, x0=x0_t, keep_outputs=False)
    return out.x.cpu().double().numpy()


def _simulate_lif(spec, inputs, params, backend, noise, seed, x0, device, dtype, **options):
    if backend == "torch":
        from .backends.torch.lif_train import simulate_lif_torch

        return simulate_lif_torch(spec, inputs, params, noise, seed, x0, device, dtype, **options)
    if backend == "brian2":
        from .backends.brian2.lif import simulate_lif

        try:
            return simulate_lif(spec, inputs, params, noise=noise, seed=seed, v0=x0, **options)
        except (ValueError, TypeError) as exc:
            raise SpecError(str(exc)) from None
    raise SpecError(f"backend: unknown backend {backend!r} (choose from {list(BACKENDS)})")
