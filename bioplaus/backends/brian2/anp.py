"""Paired ANP on brian2 (DESIGN §2 ANP row, time-local), on the network of network.py.

A clean copy (no noise) and a noisy copy of each network side by side in one NeuronGroup:
rows [clean B | noisy B]. δx = x_noisy − x_clean via a linked variable (hid, order 12),
δo likewise (out, order 32); the per-network unit forms δℓ_t = ℓ_t,noisy − ℓ_t,clean and
ν_t = ‖δx_t‖² + ‖δo_t‖² and broadcasts g_t = m_t δℓ_t c/ν_t (order 40, 45). Separate
learning synapses from the *clean* presynaptic unit to the noisy postsynaptic unit
accumulate (order 51)::

    G += g_t α δx_t z_t        (ff: z = û_t; rec: z = r̂_{t−1})
    G += g_t δo_t r̂_t          (readout: no α)

so Σ_b G is the torch estimate Σ_t δℓ_t c δx_t z_tᵀ/ν_t (before normalisation by Σ m). The
decorrelation statistics use the clean rows.
"""

from __future__ import annotations

import math

import numpy as np

from ...params import Params
from ...spec import RateSpec
from . import network as nw
from .context import brian2_scope

_TINY = 1e-30

#: learning synapses: name → (pre group, post group, presynaptic z, postsynaptic gain)
_ACCUMULATORS = {
    "ff": ("inp", "hid", "uhat", "alpha*dx_f_post"),
    "rec": ("rat", "hid", "rprev", "alpha*dx_f_post"),
    "ro": ("rat", "out", "rhat", "do_f_post"),
}


def check_scale(scale: float | None, spec: RateSpec) -> float:
    """The ANP constant c (default N + n_out, the number of perturbed units); finite, > 0."""
    c = float(spec.n_rec + spec.n_out) if scale is None else float(scale)
    if not (math.isfinite(c) and c > 0):
        raise ValueError("scale: must be finite and > 0")
    return c


def plasticity(scale: float, spec: RateSpec) -> nw.Plasticity:
    """What paired ANP adds to the network: the clean partners x_c, o_c and g = m δℓ c/ν."""
    return nw.Plasticity(
        hid=("x_c : 1 (linked)", "g : 1 (linked)", "g_l : 1"),
        out=("o_c : 1 (linked)", "g : 1 (linked)", "g_l : 1"),
        mod=("g : 1",),
        mod_code="g = m*(ell - ell_c)*c_scale/clip((nux + nuo), tiny, inf)\n",
        normalise=True,
        namespace={"c_scale": scale, "alpha": float(spec.dt) / float(spec.tau), "tiny": _TINY},
    )


def _partner(net: nw.RateNetwork, n: int) -> np.ndarray:
    """Index of each unit's clean partner (row s → s mod B), n units a row."""
    return (net.rows.network[:, None] * n + np.arange(n)).ravel()


def _attach(net: nw.RateNetwork) -> None:
    """δx, δo against the clean partner; the broadcast of g; the accumulating synapses."""
    from brian2 import Synapses, linked_var

    hid, out, N, n_out = net["hid"], net["out"], net.spec.n_rec, net.spec.n_out
    hid.x_c = linked_var(hid, "x", index=_partner(net, N))
    hid.run_regularly("dx_f = x - x_c", when="groups", order=12, name="bp_hid_delta")
    out.o_c = linked_var(out, "o", index=_partner(net, n_out))
    out.run_regularly("do_f = o - o_c", when="groups", order=32, name="bp_out_delta")
    net.broadcast("g")
    B, S = net.rows.B, net.rows.S
    for name, (src, dst, z, gain) in _ACCUMULATORS.items():
        syn = Synapses(net[src], net[dst], "G : 1", namespace=net.ns, name=f"bp_anpG_{name}")
        # clean row b → noisy row B + b
        nw.block_connect(syn, net[src].N // S, net[dst].N // S, np.arange(B), np.arange(B, S))
        syn.run_regularly(f"G += g_l_post*{gain}*{z}_pre", when="groups", order=51,
                          name=f"bp_anpG_{name}_acc")  # fmt: skip
        net.add(f"anpG_{name}", syn)


def _read(net: nw.RateNetwork) -> nw.TrialOutput:
    acc_hid, acc_out = net.summed("G", ("anpG_ff", "anpG_rec", "anpG_ro"))
    mv = net.modulator()
    return net.trial_output(mv, acc_hid=acc_hid, acc_out=acc_out, loss_sum=mv["Lsum_c"],
                            loss_sum_noisy=mv["Lsum"])  # fmt: skip


def run_anp(
    spec: RateSpec, params: Params, trials: nw.Trials, options: nw.Options = nw.DEFAULT_OPTIONS,
    scale: float | None = None,
) -> nw.TrialOutput:  # fmt: skip
    """B paired trials (clean and noisy copies) on brian2: the accumulated ANP estimate
    Σ_t δℓ_t c δx_t z_tᵀ/ν_t (``acc_hid``, ``acc_out``; divide by Σ m), the clean and noisy
    losses and ⟨y yᵀ⟩ of the clean pass. scale: c (default N + n_out)."""
    setup = nw.Setup.of(spec, params, trials, options, paired=True)
    if not setup.sigma > 0:
        raise ValueError("sigma: ANP needs sigma > 0")
    c = check_scale(scale, spec)
    with brian2_scope(float(spec.dt), target=options.target, seed=options.seed) as scope:
        net = nw.build(scope, setup, plasticity(c, spec))
        _attach(net)
        net.run()
        return _read(net)
