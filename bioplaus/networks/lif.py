"""The spiking LIF network type: membrane potentials v, spikes s, a surrogate derivative for
gradients.

Registered as ``"lif"``. Parameters: :func:`bioplaus.params.init_lif_params` (W_rec with
zero diagonal, input and readout gains). On torch it is one package,
``backends/torch/lif/``: the pure step, readout and surrogate (``__init__.py``), the time
loops (``rollout.py``), surrogate BPTT (``bptt.py``), its paired-pass perturbation
(``perturb.py``) and online object (``online.py``) for the shared drivers, and the entry
points this module calls (``train.py``); brian2: ``backends/brian2/lif.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..backends.torch.lif import train as lif_train
from ..backends.torch.lif.online import LIFOnlineHandle
from ..params import check_rnn_params, init_lif_params
from ..random import numpy_rng
from ..registry import TrainerHooks, register_network
from ..spec import LIFSpec, SpecError
from ..validate import LIF_OPTION_LIMITS, rnn_memory
from .rate import (
    sequence_data,
    to_numpy,
    trainer_data,
    trainer_eval_loss,
    trainer_pack,
    trainer_tensors,
)


def estimate(
    rs: Any, spec: Any, params: dict, inputs: Any, targets: Any, seed: int, mask: Any,
    loss: str | None, device: str, dtype: torch.dtype,
) -> dict[str, np.ndarray]:  # fmt: skip
    """``bp.estimate`` on a LIF network
    (:func:`~bioplaus.backends.torch.lif.train.lif_estimate`): surrogate BPTT, a
    perturbation rule, or an online rule's one pass at fixed weights."""
    inputs, targets, mask, loss = sequence_data(spec, params, inputs, targets, mask, loss)
    u, y = (torch.as_tensor(a, device=device, dtype=dtype) for a in (inputs, targets))
    m = None if mask is None else torch.as_tensor(mask, device=device, dtype=dtype)
    return lif_train.lif_estimate(rs, spec, params, u, y, m, loss, seed, device)


def simulate(
    spec: Any, inputs: np.ndarray, params: dict, backend: str, noise: np.ndarray | None,
    seed: int, x0: np.ndarray | None, device: str, dtype: str,
    spikes: bool = False, spike_times: bool = False, crossing: np.ndarray | None = None,
    **options: Any,
) -> Any:  # fmt: skip
    """v [T, B, N] of ``bp.simulate`` (with ``spikes`` also s, with ``spike_times`` also the
    spike times in seconds, NaN where none). ``crossing``: the bridge-crossing uniforms U
    [T, B, N] of precise spiking (σ_v > 0); with a shared ``noise`` they default to draws
    seeded by ``seed``, so both back-ends see one realisation."""
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
        crossing = numpy_rng(seed, "simulate", "crossing").random((T, B, spec.n_rec))
    if backend == "torch":
        if options:
            raise SpecError(f"{next(iter(options))}: unknown option of the torch back-end")
        v, s, ts = lif_train.simulate_lif_torch(spec, inputs, params, noise, seed, x0, device,
                                                dtype, spikes=spikes, spike_times=spike_times,
                                                crossing=crossing)  # fmt: skip
    elif backend == "brian2":
        from ..backends.brian2.lif import simulate_lif

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
        raise SpecError(f"backend: unknown backend {backend!r} (choose from ['torch', 'brian2'])")
    out = (v,) + ((s,) if spikes else ()) + ((ts,) if spike_times else ())
    return out if len(out) > 1 else out[0]


HOOKS = TrainerHooks(
    consts=lif_train.consts_of,
    make_online=LIFOnlineHandle.of_protocol,
    estimate=lif_train.trainer_estimate,
    outputs=lif_train.trainer_outputs,
    # the parameters, data and evaluation loss of a recurrent network: the rate type's
    tensors=trainer_tensors,
    pack=trainer_pack,
    to_numpy=to_numpy,
    data=trainer_data,
    eval_loss=trainer_eval_loss,
)

NETWORK = register_network(  # the one Trainer, reference rule bptt
    "lif",
    init_params=init_lif_params,
    check_params=check_rnn_params,
    estimate=estimate,
    simulate=simulate,
    hooks=HOOKS,
    spec=LIFSpec,
    memory=rnn_memory(4),  # v, I, r, refractory per unit and pass
    option_limits=LIF_OPTION_LIMITS,
    simulate_options=("spikes", "spike_times", "crossing"),
    state="v",
    alignment=False,
    summary="spiking LIF network (surrogate gradients)",
)
