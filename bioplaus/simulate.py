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
    TypeError.
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
    fmt = _Format(output, out_dtype)
    if spec.kind == "lif":  # spiking network: v [T, B, N] (backends/*/lif*.py)
        return _simulate_lif(spec, inputs, params, backend, noise, seed, x0, device, dtype, fmt,
                             **backend_options)  # fmt: skip
    if backend == "torch":
        if backend_options:
            raise SpecError(f"{next(iter(backend_options))}: unknown option of the torch back-end")
        return fmt(_simulate_torch(spec, inputs, params, noise, seed, x0, device, dtype))
    if backend == "brian2":
        from .backends.brian2.rate import simulate_rate

        try:
            return fmt(simulate_rate(
                spec, inputs, params, noise=noise, seed=seed, x0=x0, **backend_options
            ))  # fmt: skip
        except (ValueError, TypeError) as exc:  # bad backend option: one line, key named
            raise SpecError(str(exc)) from None
    raise SpecError(f"backend: unknown backend {backend!r} (choose from {list(BACKENDS)})")


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


def _simulate_torch(spec, inputs, params, noise, seed, x0, device, dtype):
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
    return out.x


def _simulate_lif(spec, inputs, params, backend, noise, seed, x0, device, dtype, fmt,
                  spikes=False, spike_times=False, crossing=None, **options):  # fmt: skip
    T, B, _ = inputs.shape
    if crossing is not None:
        crossing = np.asarray(crossing, dtype=np.float64)
        if crossing.shape != (T, B, spec.n_rec):
            raise SpecError(f"crossing: expected shape {(T, B, spec.n_rec)}, got {crossing.shape}")
        if not (np.all(crossing >= 0) and np.all(crossing < 1)):
            raise SpecError("crossing: uniforms must lie in [0, 1)")
    needs_u = spec.spiking == "precise" and spec.sigma_v > 0
    if crossing is not None and not needs_u:
        raise SpecError("crossing: bridge-crossing uniforms are used only with spiking = "
                        "'precise' and sigma_v > 0")  # fmt: skip
    if needs_u and crossing is None and noise is not None:  # one realisation for both
        from .random import numpy_rng

        crossing = numpy_rng(seed, "simulate", "crossing").random((T, B, spec.n_rec))
    if backend == "torch":
        from .backends.torch.lif_train import simulate_lif_torch

        if options:
            raise SpecError(f"{next(iter(options))}: unknown option of the torch back-end")
        v, s, ts = simulate_lif_torch(spec, inputs, params, noise, seed, x0, device, dtype,
                                      spikes=spikes, spike_times=spike_times,
                                      crossing=crossing)  # fmt: skip
    elif backend == "brian2":
        from .backends.brian2.lif import simulate_lif

        try:
            res = simulate_lif(spec, inputs, params, noise=noise, seed=seed, v0=x0,
                               spikes=True, crossing=crossing, offsets=True,
                               **options)  # fmt: skip
        except (ValueError, TypeError) as exc:
            raise SpecError(str(exc)) from None
        v, s, d = res
        ts = None
        if spike_times:
            t_end = (np.arange(1, T + 1) * spec.dt)[:, None, None]
            ts = np.where(s > 0, t_end - d * spec.dt, np.nan)
    else:
        raise SpecError(f"backend: unknown backend {backend!r} (choose from {list(BACKENDS)})")
    out = (v,) + ((s,) if spikes else ()) + ((ts,) if spike_times else ())
    return fmt(out if len(out) > 1 else out[0])
