"""The online three-factor rule on brian2, in continuous time, on the network of network.py.

Every quantity of the rule is a brian2 variable updated by code generated here from the
validated :class:`~bioplaus.rules.three_factor.ThreeFactor` options; only names from fixed
tables and numbers passed through namespaces reach code generation. The same rule object
that drives the torch back-end (``backends/torch/online.py``) turns the traces brian2
leaves into the update (:meth:`ThreeFactor.end_trial`): one definition, two back-ends.

Continuous-time rule → brian2 (for W acting as a ← W z)::

    τ_b dā/dt = a − ā                 ā ← ā + (1 − λ_b)(a − ā), λ_b = e^{−dt/τ_b}: the exact
                                      step with a held at its new value (zero-order hold)
    δa = a − ā                        read before ā is updated (δa_t = a_t − ā_{t−1})
    τ_e de/dt = −e + S(δa_post) S(z_pre)
                                      a clock-driven synapse ODE, ``method='exact'``: brian2
                                      gives e ← λ_e e + (1 − λ_e) h, λ_e = e^{−dt/τ_e}
                                      (τ_e unset: e += h, the whole-trial accumulator)
    M = m (R − R̄) [· c/ν]             in ``mod``, broadcast to every synapse as M_post
                                      (modulator "binary": M = m 1[R > R̄] [· c/ν])
    dW/dt = η M e                     reward "step": acc += M e every step, ΔW = η Σ acc / Σm;
                                      reward "trial": M at trial end, ΔW = η (1/B) Σ_b M_b e_b

which is the discrete rule of rules/three_factor.py term for term. Schedule (network.py's,
plus): 12 δx, x̄ (hid); 32 δo, ō (out); 40 R, M, R̄ (mod); 50 eligibility (ff, rec, ro)
with z = û_n, r̂_{n−1}, r̂_n; 51 acc += M e (reward "step"). The weights are fixed within a
trial (as on torch): a trial's ΔW is O(η) and is applied at its end.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...params import Params
from ...rules.three_factor import ThreeFactor
from ...spec import RateSpec
from . import equations as eq
from . import network as nw
from .context import brian2_scope

_TINY = 1e-12

#: S(y) = sign(y)|y|^p as brian2 code of one fixed variable name (p from the namespace)
_SUPRA = {
    None: "({v})",
    3.0: "({v})**3",
    "general": "(sign({v})*abs({v})**p_supra)",
}
#: the only variable names S may be applied to
_SUPRA_VARIABLES = ("dx_f_post", "do_f_post", "uhat_pre", "rprev_pre", "rhat_pre")

#: the neuromodulator's reward term as brian2 code (ThreeFactor.modulate)
_MODULATOR = {"difference": "(R - Rbar)", "binary": "int(R > Rbar)"}

#: per forward synapse: (postsynaptic δa, presynaptic z of the eligibility)
_ELIGIBILITY = {
    "ff": ("dx_f_post", "uhat_pre"),
    "rec": ("dx_f_post", "rprev_pre"),
    "ro": ("do_f_post", "rhat_pre"),
}


class RewardBaseline(NamedTuple):
    """Reward-"step" baseline per network at the start of the trials."""

    rbar: np.ndarray  # [B] R̄
    seen: np.ndarray  # [B] 1 where R̄ has been set


def supralinear_expression(p: float | None, variable: str) -> str:
    """S(variable) as brian2 code: identity (None or 1), cube (3) or sign·|·|^p_supra."""
    if variable not in _SUPRA_VARIABLES:
        raise ValueError(f"supralinear variable must be one of {_SUPRA_VARIABLES}")
    key = None if p is None or p == 1.0 else (3.0 if p == 3.0 else "general")
    return _SUPRA[key].format(v=variable)


def eligibility_equations(rule: ThreeFactor, post: str, pre: str) -> tuple[str, str | None]:
    """The eligibility of one plastic synapse: (model line, per-step code or None).

    τ_e set:   ``del/dt = (S(post) S(pre) − el)/tau_e : 1 (clock-driven)`` (brian2 ODE,
               integrated exactly: el ← λ_e el + (1 − λ_e) h);
    τ_e unset: ``el : 1`` and ``el += S(post) S(pre)`` every step (Miconi's accumulator).
    """
    h = f"{supralinear_expression(rule.p, post)}*{supralinear_expression(rule.p, pre)}"
    if rule.tau_e is None:
        return "el : 1", f"el += {h}"
    return f"del/dt = ({h} - el)/tau_e : 1 (clock-driven)", None


def check_rule(rule: ThreeFactor) -> None:
    """Every number of the rule that reaches brian2 is finite; names from fixed sets."""
    for key in ("dt", "tau_b", "tau_r", "kick_rate", "kick_amplitude"):
        if not math.isfinite(float(getattr(rule, key))):
            raise ValueError(f"{key}: must be finite for brian2")
    if rule.tau_e is not None and not math.isfinite(rule.tau_e):
        raise ValueError("tau_e: must be finite for brian2")
    if rule.p is not None and not math.isfinite(rule.p):
        raise ValueError("supralinear: must be finite for brian2")
    if rule.noise not in ("gaussian", "kicks") or rule.reward not in ("trial", "step"):
        raise ValueError("three-factor: unknown noise or reward kind")
    if rule.modulator not in _MODULATOR or rule.plastic not in ("all", "readout"):
        raise ValueError("three-factor: unknown modulator or plastic kind")


def _modulator_code(rule: ThreeFactor) -> str:
    """R, M = m(R − R̄)[c/ν] (or m 1[R > R̄][c/ν]) and the R̄ update (reward "step");
    nothing for reward "trial"."""
    if rule.reward != "step":
        return ""
    nu = eq.nu_expression(rule.normalise)
    scale_M = f"*c_units/clip({nu}, tiny, inf)" if rule.normalise else ""
    return (
        "R = -ell\n"
        f"M = seen*{_MODULATOR[rule.modulator]}*m{scale_M}\n"
        "Rbar = Rbar + int(m > 0)*(seen*(1 - lam_r) + (1 - seen))*(R - Rbar)\n"
        "seen = clip(seen + int(m > 0), 0, 1)\n"
    )


def plasticity(rule: ThreeFactor, spec: RateSpec) -> nw.Plasticity:
    """What the three-factor rule adds to the network: baselines ā, traces e (and acc), M."""
    ns: dict[str, object] = {"lam_b": float(rule.lam_b), "lam_r": float(rule.lam_r),
                             "c_units": float(spec.n_rec + spec.n_out), "tiny": _TINY}  # fmt: skip
    if rule.tau_e is not None:
        from brian2 import second

        ns["tau_e"] = float(rule.tau_e) * second
    if rule.p is not None:
        ns["p_supra"] = float(rule.p)
    kicks = rule.noise == "kicks"
    return nw.Plasticity(
        hid=("xbar : 1", "M : 1 (linked)", "M_l : 1"),
        out=("obar : 1", "M : 1 (linked)", "M_l : 1"),
        mod=("R : 1", "M : 1", "Rbar : 1", "seen : 1"),
        synapses={
            k: (eligibility_equations(rule, *zs)[0], "acc : 1") for k, zs in _ELIGIBILITY.items()
        },  # fmt: skip
        mod_code=_modulator_code(rule),
        normalise=rule.normalise,
        namespace=ns,
        kicks=(float(rule.kick_rate * rule.dt), float(rule.kick_amplitude)) if kicks else None,
    )


def _attach(net: nw.RateNetwork, rule: ThreeFactor, baseline: RewardBaseline | None) -> None:
    """Baselines, eligibility and (reward "step") the accumulator, as brian2 operations."""
    net["hid"].run_regularly("dx_f = x - xbar\nxbar = xbar + (1 - lam_b)*dx_f",
                             when="groups", order=12, name="bp_hid_baseline")  # fmt: skip
    net["out"].run_regularly("do_f = o - obar\nobar = obar + (1 - lam_b)*do_f",
                             when="groups", order=32, name="bp_out_baseline")  # fmt: skip
    if baseline is not None:
        net["mod"].Rbar = np.asarray(baseline.rbar, dtype=np.float64)
        net["mod"].seen = np.asarray(baseline.seen, dtype=np.float64)
    net.broadcast("M")
    for name, zs in _ELIGIBILITY.items():
        code = eligibility_equations(rule, *zs)[1]
        if code is not None:
            net[name].run_regularly(code, when="groups", order=50, name=f"bp_{name}_elig")
        if rule.reward == "step":
            net[name].run_regularly("acc += M_l_post*el", when="groups", order=51,
                                    name=f"bp_{name}_acc")  # fmt: skip


def _read(net: nw.RateNetwork, rule: ThreeFactor) -> nw.TrialOutput:
    mv = net.modulator()
    traces = dict(
        e_hid=np.concatenate([net.per_network("ff", "el"), net.per_network("rec", "el")], 2),
        e_out=net.per_network("ro", "el"), loss_sum=mv["Lsum"], loss_sum_noisy=mv["Lsum"],
    )  # fmt: skip
    if rule.reward == "step":
        traces["acc_hid"], traces["acc_out"] = net.summed("acc")
        traces["rbar"], traces["seen"] = mv["Rbar"], mv["seen"] > 0
    return net.trial_output(mv, **traces)


def run_three_factor(
    spec: RateSpec, params: Params, trials: nw.Trials, rule: ThreeFactor,
    options: nw.Options = nw.DEFAULT_OPTIONS, baseline: RewardBaseline | None = None,
) -> nw.TrialOutput:  # fmt: skip
    """B trials (one noisy pass each) on brian2 with the online three-factor ``rule``; the
    traces it leaves (eligibility, reward-"step" accumulator and R̄, losses, ν, ⟨y yᵀ⟩).

    baseline: the reward-"step" R̄ per network at the start (default: unset)."""
    setup = nw.Setup.of(spec, params, trials, options, paired=False)
    if not isinstance(rule, ThreeFactor):
        raise TypeError("mode 'three-factor' needs a ThreeFactor rule")
    check_rule(rule)
    if not math.isclose(rule.dt, spec.dt):
        raise ValueError(f"rule dt {rule.dt} differs from the model's dt {spec.dt}")
    with brian2_scope(float(spec.dt), target=options.target, seed=options.seed) as scope:
        net = nw.build(scope, setup, plasticity(rule, spec))
        _attach(net, rule, baseline)
        net.run()
        return _read(net, rule)
