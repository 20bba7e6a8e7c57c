"""Learning on brian2, in continuous time: online three-factor rule, paired ANP, decorrelation.

One trial batch = one brian2 run inside :func:`~.context.brian2_scope`. Every quantity of the
rule is a brian2 variable updated by brian2 code generated here from the validated rule
options (:class:`~bioplaus.rules.three_factor.ThreeFactor` for the three-factor rule, the
ANP scale for paired ANP); only names from fixed tables and numbers passed through
namespaces reach code generation. The same rule object that drives the torch back-end
(``backends/torch/online.py``) turns the traces brian2 leaves into the update
(:meth:`ThreeFactor.end_trial`): one definition, two back-ends.

Objects (S rows = B networks for the three-factor rule, 2B = [clean B | noisy B] for ANP;
unit of row s, index k: s·n + k)::

    inp   NeuronGroup S·n_in  û = u (TimedArray) or, with D_in, û = Σ D_in u (lateral synapses)
    hid   NeuronGroup S·N     dx/dt = (−x + I_rec + I_ff)/τ + σ ξ(t)/√τ   (Euler–Maruyama)
    rat   NeuronGroup S·N     r̂ = φ(x) or Σ D_rec φ(x) (lateral synapses); r̂_prev
    out   NeuronGroup S·n_out o = W_out r̂ + σ ξ^o, target y (TimedArray)
    mod   NeuronGroup B       neuromodulator: loss ℓ = ½‖o − y‖² of the network (summed over
                              its readout units), reward R = −ℓ, baseline R̄, M = R − R̄
    ff    Synapses inp→hid    I_ff = Σ W_in û       + eligibility of W_in
    rec   Synapses rat→hid    I_rec = Σ W_rec r̂     + eligibility of W_rec
    ro    Synapses rat→out    o_lin = Σ W_out r̂     + eligibility of W_out

The weights are fixed within a trial (as on torch): a trial's ΔW is O(η) and is applied at
its end.

Continuous-time rule → brian2 (three-factor, for W acting as a ← W z)::

    τ_b dā/dt = a − ā                 ā ← ā + (1 − λ_b)(a − ā), λ_b = e^{−dt/τ_b}: the exact
                                      step with a held at its new value (zero-order hold)
    δa = a − ā                        read before ā is updated (δa_t = a_t − ā_{t−1})
    τ_e de/dt = −e + S(δa_post) S(z_pre)
                                      a clock-driven synapse ODE, ``method='exact'``: brian2
                                      gives e ← λ_e e + (1 − λ_e) h, λ_e = e^{−dt/τ_e}
                                      (τ_e unset: e += h, the whole-trial accumulator)
    M = m (R − R̄) [· c/ν]             in ``mod``, broadcast to every synapse as M_post
    dW/dt = η M e                     reward "step": acc += M e every step, ΔW = η Σ acc / Σm;
                                      reward "trial": M at trial end, ΔW = η (1/B) Σ_b M_b e_b

which is the discrete rule of rules/three_factor.py term for term. The brian2 schedule of
one step n (slot ``groups``; the summed variable of a target runs at its order − 1)::

     3/5  u ← u(t_n); û ← D_in u                  (inp)
     9    I_ff, I_rec ← W_in û_n, W_rec r̂_{n−1}   (summed)
    10    x_{n−1} → x_n                            (hid: Euler–Maruyama, xi or given η)
    11    kicks: x += U(−A, A) with prob. rate·dt  (hid)
    12    δx = x − x̄ ; x̄ ← x̄ + (1−λ_b) δx         (hid; ANP: δx = x − x_clean)
    18    r̂_prev ← r̂ (= r̂_{n−1})                  (rat)
    19/20 r̂ ← D_rec φ(x_n)                         (rat)
    21    C += y_j y_i on lateral synapses         (decorrelation statistics, ⟨y yᵀ⟩)
    29    o_lin ← W_out r̂_n                        (summed)
    31    o ← o_lin + σ ξ^o ; δo = o − ō ; ō ← …   (out)
    39    ℓ, ν ← Σ ½(o − y)², Σ δx², Σ δo²          (summed into mod, per network)
    40    R, M, R̄ (mod)
    50    eligibility ODEs (ff, rec, ro)           z = û_n, r̂_{n−1}, r̂_n
    51    acc += M e (reward "step"); ANP: G += δℓ c α δx zᵀ/ν

Paired ANP (DESIGN §2 ANP row, time-local): a clean copy (no noise) and a noisy copy of the
network side by side in one NeuronGroup; δx = x_noisy − x_clean via a linked variable,
δℓ_t and ν_t = ‖δx‖² + ‖δo‖² per network in ``mod``, and separate learning synapses from
the *clean* presynaptic unit to the noisy postsynaptic unit accumulate
G += δℓ_t (c α δx_t/ν_t) z_tᵀ (readout: c δo_t/ν_t, no α).

Decorrelation (DESIGN §2, lateral inhibition): y = D z is a summed variable over lateral
synapses k → i carrying D_ik; each lateral synapse accumulates the co-activity
C_ik = Σ_t y_i y_k of its two ends (clean rows only for ANP). The update
ΔD = −η_D offdiag(C/count) D (rules/decorrelation.py) is applied between trials.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ...params import Params, check_params
from ...rules.three_factor import ThreeFactor
from ...spec import RateSpec
from .context import DEFAULT_TARGET, brian2_scope, check_target
from .equations import PHI_EXPRESSIONS, check_spec, phi_expression

LEARNING_MODES = ("three-factor", "anp")
_TINY = 1e-12
_ANP_TINY = 1e-30

#: S(y) = sign(y)|y|^p as brian2 code of one fixed variable name (p from the namespace)
_SUPRA = {
    None: "({v})",
    3.0: "({v})**3",
    "general": "(sign({v})*abs({v})**p_supra)",
}
#: the only variable names S may be applied to
_SUPRA_VARIABLES = ("dx_f_post", "do_f_post", "uhat_pre", "rprev_pre", "rhat_pre")


class TrialOutput(NamedTuple):
    """What one brian2 trial batch leaves behind (numpy, float64)."""

    e_hid: np.ndarray | None  # [B, N, n_in + N] eligibility at trial end (three-factor)
    e_out: np.ndarray | None  # [B, n_out, N]
    acc_hid: np.ndarray | None  # [N, n_in + N] Σ_{t,b} M e (reward "step"), or ANP Σ δℓ e zᵀ
    acc_out: np.ndarray | None  # [n_out, N]
    loss_sum: np.ndarray  # [B] Σ_t m ℓ of the (noisy, three-factor; clean, ANP) pass
    loss_sum_noisy: np.ndarray  # [B] the noisy pass (ANP; = loss_sum for three-factor)
    n_scored: np.ndarray  # [B] Σ_t m
    nu: np.ndarray  # [B] Σ_t ν_t (three-factor normalise)
    rbar: np.ndarray | None  # [B] reward baseline after the trial (reward "step")
    seen: np.ndarray | None  # [B] bool
    decor: dict[str, tuple[np.ndarray, float]]  # "D_in"/"D_rec": (Σ y yᵀ, count)
    outputs: np.ndarray  # [T, B, n_out] readout of the counted rows (noisy / clean)
    states: np.ndarray | None  # [T, S, N] x (when ``record_states``)


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


def _block_connect(syn, S: int, n_pre: int, n_post: int, pre_row=None) -> None:
    """Dense block-diagonal connection, synapse order (row s, post i, pre j); the pre unit of
    row s is in row ``pre_row[s]`` (default s)."""
    rows = np.arange(S) if pre_row is None else np.asarray(pre_row)
    post, pre = np.indices((n_post, n_pre)).reshape(2, -1)
    i = (rows[:, None] * n_pre + pre[None, :]).ravel()
    j = ((np.arange(S)[:, None]) * n_post + post[None, :]).ravel()
    syn.connect(i=i, j=j)


def _get(syn, name: str) -> np.ndarray:
    return np.asarray(syn.variables[name].get_value(), dtype=np.float64).copy()


def run_trials(
    spec: RateSpec,
    params: Params,
    inputs: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    mode: str = "three-factor",
    rule: ThreeFactor | None = None,
    sigma: float | None = None,
    scale: float | None = None,
    rbar: np.ndarray | None = None,
    seen: np.ndarray | None = None,
    decor: tuple[str, ...] = (),
    noise: np.ndarray | None = None,
    noise_out: np.ndarray | None = None,
    seed: int = 0,
    target: str = DEFAULT_TARGET,
    record_states: bool = False,
) -> TrialOutput:
    """Run B trials (``inputs`` [T, B, n_in], ``targets`` [T, B, n_out], ``mask`` [T, B])
    on brian2 with learning ``mode`` (``three-factor`` or ``anp``) and return the traces.

    sigma: exploration σ (hidden σ√α ξ and readout σ ξ^o; default the model's).
    scale: ANP c (default N + n_out). rbar/seen: reward-"step" baseline per network.
    noise: a given realisation — standard-normal ξ [T, B, N] for Gaussian exploration, or the
    kick increments [T, B, N] for ``kicks`` — and noise_out ξ^o [T, B, n_out] (for tests
    sharing one realisation with torch); otherwise brian2's ``xi``/``rand``/``randn``
    seeded from ``seed``.
    """
    from brian2 import NeuronGroup, Synapses, TimedArray, linked_var, network_operation, second

    check_spec(spec)
    check_target(target)
    if target == "cpp_standalone":
        raise ValueError("target: learning runs on the runtime targets (numpy, cython)")
    if mode not in LEARNING_MODES:
        raise ValueError(f"mode: unknown {mode!r} (choose from {list(LEARNING_MODES)})")
    if spec.bias or spec.out_bias:
        raise ValueError("bias: brian2 learning supports models without biases (bias = false)")
    check_params(spec, params)
    tf = mode == "three-factor"
    if tf:
        if not isinstance(rule, ThreeFactor):
            raise TypeError("mode 'three-factor' needs a ThreeFactor rule")
        check_rule(rule)
        if not math.isclose(rule.dt, spec.dt):
            raise ValueError(f"rule dt {rule.dt} differs from the model's dt {spec.dt}")
    sigma = float(spec.sigma if sigma is None else sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma: must be finite and >= 0 (got {sigma})")
    if not tf and not sigma > 0:
        raise ValueError("sigma: ANP needs sigma > 0")
    inputs = np.asarray(inputs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    T, B, n_in = inputs.shape
    N, n_out = spec.n_rec, spec.n_out
    if n_in != spec.n_in or targets.shape != (T, B, n_out):
        raise ValueError(f"inputs/targets: expected [T, B, {spec.n_in}] and [T, B, {n_out}]")
    if not (np.isfinite(inputs).all() and np.isfinite(targets).all()):
        raise ValueError("inputs/targets: contain NaN or Inf")
    m_arr = np.ones((T, B)) if mask is None else np.asarray(mask, dtype=np.float64)
    if m_arr.shape != (T, B):
        raise ValueError(f"mask: expected shape {(T, B)}, got {m_arr.shape}")
    dt = float(spec.dt)
    alpha = dt / float(spec.tau)
    S = B if tf else 2 * B  # rows
    rows = np.arange(S)
    net_of_row = rows % B
    noisy_row = np.ones(S) if tf else (rows >= B).astype(float)
    counted_row = np.ones(S) if tf else (rows < B).astype(float)  # rows the statistics use
    pair_row = rows if tf else rows % B  # the clean partner of each row (ANP)
    kicks = tf and rule.noise == "kicks"
    c_scale = float(N + n_out) if scale is None else float(scale)
    if not (math.isfinite(c_scale) and c_scale > 0):
        raise ValueError("scale: must be finite and > 0")

    W_in = np.asarray(params["W_in"], dtype=np.float64)
    W_rec = np.asarray(params["W_rec"], dtype=np.float64)
    W_out = np.asarray(params["W_out"], dtype=np.float64)
    D_in = params.get("D_in")
    D_rec = params.get("D_rec")

    ns: dict[str, object] = {
        "tau": float(spec.tau) * second,
        "sigma": sigma,
        "sigma_o": sigma,
        "lam_b": 0.0 if not tf else float(rule.lam_b),
        "lam_r": 0.0 if not tf else float(rule.lam_r),
        "c_units": float(N + n_out),
        "c_scale": c_scale,
        "alpha": alpha,
        "tiny": _TINY if tf else _ANP_TINY,
    }
    if tf:
        if rule.tau_e is not None:
            ns["tau_e"] = float(rule.tau_e) * second
        if rule.p is not None:
            ns["p_supra"] = float(rule.p)
        ns["p_kick"] = float(rule.kick_rate * rule.dt)
        ns["kick_amp"] = float(rule.kick_amplitude)
    ns["u_in"] = TimedArray(np.tile(inputs, (1, S // B, 1)).reshape(T, S * n_in), dt=dt * second)
    ns["y_in"] = TimedArray(np.tile(targets, (1, S // B, 1)).reshape(T, S * n_out), dt=dt * second)
    ns["mask_in"] = TimedArray(m_arr, dt=dt * second)

    # exploration terms -------------------------------------------------------------------
    gaussian_hidden = sigma > 0 and not kicks
    if noise is not None:
        xi = np.asarray(noise, dtype=np.float64)
        if xi.shape != (T, B, N) or not np.isfinite(xi).all():
            raise ValueError(f"noise: expected finite array of shape {(T, B, N)}")
        full = np.zeros((T, S, N))
        full[:, S - B :] = xi  # the noisy rows (all rows for three-factor)
        if kicks:
            ns["kick_ext"] = TimedArray(full.reshape(T, S * N), dt=dt * second)
        else:
            ns["eta"] = TimedArray(full.reshape(T, S * N) / np.sqrt(dt) * second**-0.5,
                                   dt=dt * second)  # fmt: skip
    if noise_out is not None:
        xo = np.asarray(noise_out, dtype=np.float64)
        if xo.shape != (T, B, n_out) or not np.isfinite(xo).all():
            raise ValueError(f"noise_out: expected finite array of shape {(T, B, n_out)}")
        full = np.zeros((T, S, n_out))
        full[:, S - B :] = xo
        ns["xio"] = TimedArray(full.reshape(T, S * n_out), dt=dt * second)

    if not gaussian_hidden:
        noise_term = ""
    elif noise is not None:
        noise_term = " + sigma*eta(t, i)/sqrt(tau)"
    else:
        noise_term = " + noisy*sigma*xi/sqrt(tau)"

    with brian2_scope(dt, target=target, seed=seed) as scope:
        net = scope.network
        # -- input layer ---------------------------------------------------------------------
        inp = NeuronGroup(S * n_in, "uhat : 1", order=5, namespace=ns, name="bp_inp")
        net.add(inp)
        if D_in is None:
            inp.run_regularly("uhat = u_in(t, i)", when="groups", order=5, name="bp_inp_u")
        else:
            raw = NeuronGroup(S * n_in, "u : 1\ncl : 1 (constant)\nyl : 1 (linked)", order=3,
                              namespace=ns, name="bp_raw")  # fmt: skip
            raw.cl = np.repeat(counted_row, n_in)
            raw.yl = linked_var(inp, "uhat")
            raw.run_regularly("u = u_in(t, i)", when="groups", order=3, name="bp_raw_u")
            lat_in = Synapses(raw, inp, "d : 1 (constant)\nuhat_post = d*u_pre : 1 (summed)\n"
                              "C : 1", namespace=ns, order=6, name="bp_lat_in")  # fmt: skip
            _block_connect(lat_in, S, n_in, n_in)
            lat_in.d = np.tile(np.asarray(D_in, dtype=np.float64).ravel(), S)
            lat_in.run_regularly("C += cl_pre*yl_pre*uhat_post", when="groups", order=6,
                                 name="bp_lat_in_stats")  # fmt: skip
            net.add(raw, lat_in)

        # -- hidden units ----------------------------------------------------------------------
        hid_eqs = [
            f"dx/dt = (-x + I_rec + I_ff)/tau{noise_term} : 1",
            "I_rec : 1", "I_ff : 1", "dx_f : 1", "xbar : 1",
            "noisy : 1 (constant)", "cl : 1 (constant)",
        ]  # fmt: skip
        if D_rec is not None:
            hid_eqs.append("yl : 1 (linked)")
        if tf:
            hid_eqs += ["M : 1 (linked)", "M_l : 1"]
        else:
            hid_eqs += ["x_c : 1 (linked)", "g : 1 (linked)", "g_l : 1"]
        hid = NeuronGroup(S * N, "\n".join(hid_eqs), method="euler", order=10, namespace=ns,
                          name="bp_hid")  # fmt: skip
        hid.noisy = np.repeat(noisy_row, N)
        hid.cl = np.repeat(counted_row, N)
        if kicks:
            code = ("x += kick_ext(t, i)" if noise is not None else
                    "x += kick_amp*(2*rand() - 1)*int(rand() < p_kick)")  # fmt: skip
            hid.run_regularly(code, when="groups", order=11, name="bp_kicks")
        if tf:
            hid.run_regularly("dx_f = x - xbar\nxbar = xbar + (1 - lam_b)*dx_f",
                              when="groups", order=12, name="bp_hid_baseline")  # fmt: skip
        else:
            hid.x_c = linked_var(hid, "x", index=(pair_row[:, None] * N + np.arange(N)).ravel())
            hid.run_regularly("dx_f = x - x_c", when="groups", order=12, name="bp_hid_delta")

        # -- rates r̂ = D_rec φ(x) -------------------------------------------------------------
        rat_eqs = "rhat : 1\nrprev : 1" + ("" if D_rec is not None else "\nx_h : 1 (linked)")
        rat = NeuronGroup(S * N, rat_eqs, order=20, namespace=ns, name="bp_rat")
        r0 = np.tanh(np.zeros(N)) if spec.nonlinearity == "tanh" else None
        if r0 is None:  # r̂_{−1} = D_rec φ(0)
            from .rate import PHI_NUMPY

            r0 = PHI_NUMPY[spec.nonlinearity](np.zeros(N))
        if D_rec is not None:
            r0 = np.asarray(D_rec, dtype=np.float64) @ r0
        rat.rhat = np.tile(r0, S)
        rat.run_regularly("rprev = rhat", when="groups", order=18, name="bp_rat_prev")
        net.add(hid, rat)
        if D_rec is None:
            rat.x_h = linked_var(hid, "x")
            phi_h = PHI_EXPRESSIONS[spec.nonlinearity].format(v="x_h")
            rat.run_regularly(f"rhat = {phi_h}", when="groups", order=20, name="bp_rat_phi")
        else:
            hid.yl = linked_var(rat, "rhat")
            lat = Synapses(hid, rat, "d : 1 (constant)\n"
                           f"rhat_post = d*{phi_expression(spec.nonlinearity, 'x_pre')} : 1 "
                           "(summed)\nC : 1", namespace=ns, order=21,
                           name="bp_lat_rec")  # fmt: skip
            _block_connect(lat, S, N, N)
            lat.d = np.tile(np.asarray(D_rec, dtype=np.float64).ravel(), S)
            lat.run_regularly("C += cl_pre*yl_pre*rhat_post", when="groups", order=21,
                              name="bp_lat_rec_stats")  # fmt: skip
            net.add(lat)

        # -- readout -------------------------------------------------------------------------
        out_eqs = ["o_lin : 1", "o : 1", "ytar : 1", "do_f : 1", "obar : 1",
                   "noisy : 1 (constant)", "cl : 1 (constant)"]  # fmt: skip
        out_eqs += (
            ["M : 1 (linked)", "M_l : 1"]
            if tf
            else ["o_c : 1 (linked)", "g : 1 (linked)", "g_l : 1"]
        )
        out = NeuronGroup(S * n_out, "\n".join(out_eqs), order=30, namespace=ns, name="bp_out")
        out.noisy = np.repeat(noisy_row, n_out)
        out.cl = np.repeat(counted_row, n_out)
        if sigma > 0:
            o_noise = " + noisy*sigma_o*xio(t, i)" if noise_out is not None else \
                " + noisy*sigma_o*randn()"  # fmt: skip
        else:
            o_noise = ""
        out_code = f"o = o_lin{o_noise}\nytar = y_in(t, i)"
        if tf:
            out_code += "\ndo_f = o - obar\nobar = obar + (1 - lam_b)*do_f"
        else:
            out.o_c = linked_var(out, "o", index=(pair_row[:, None] * n_out
                                                  + np.arange(n_out)).ravel())  # fmt: skip
        out.run_regularly(out_code, when="groups", order=31, name="bp_out_o")
        if not tf:
            out.run_regularly("do_f = o - o_c", when="groups", order=32, name="bp_out_delta")
        net.add(out)

        # -- neuromodulator: one unit per network ----------------------------------------------
        normalise = (not tf) or rule.normalise
        mod_eqs = ["ell : 1", "ell_c : 1", "nux : 1", "nuo : 1", "m : 1", "R : 1", "M : 1",
                   "Rbar : 1", "seen : 1", "Lsum : 1", "Lsum_c : 1", "msum : 1", "nusum : 1",
                   "g : 1"]  # fmt: skip
        mod = NeuronGroup(B, "\n".join(mod_eqs), order=40, namespace=ns, name="bp_mod")
        if rbar is not None:
            mod.Rbar = np.asarray(rbar, dtype=np.float64)
            mod.seen = np.asarray(seen, dtype=np.float64)
        # ℓ of the noisy row (ell) and of the clean row (ell_c, ANP) of each network
        loss_model = (
            "ell_post = noisy_pre*0.5*(o_pre - ytar_pre)**2 : 1 (summed)\n"
            "ell_c_post = (1 - noisy_pre)*0.5*(o_pre - ytar_pre)**2 : 1 (summed)"
        )
        if normalise:
            loss_model += "\nnuo_post = noisy_pre*do_f_pre**2 : 1 (summed)"
        lossyn = Synapses(out, mod, loss_model, namespace=ns, name="bp_loss")
        lossyn.connect(i=np.arange(S * n_out), j=np.repeat(net_of_row, n_out))
        net.add(mod, lossyn)
        if normalise:
            nusyn = Synapses(hid, mod, "nux_post = noisy_pre*dx_f_pre**2 : 1 (summed)",
                             namespace=ns, name="bp_nu")  # fmt: skip
            nusyn.connect(i=np.arange(S * N), j=np.repeat(net_of_row, N))
            net.add(nusyn)
        nu_expr = "(nux + nuo)" if normalise else "0"
        if tf and rule.reward == "step":
            scale_M = f"*c_units/clip({nu_expr}, tiny, inf)" if rule.normalise else ""
            mod_code = (
                "m = mask_in(t, i)\nR = -ell\n"
                f"M = seen*(R - Rbar)*m{scale_M}\n"
                "Rbar = Rbar + int(m > 0)*(seen*(1 - lam_r) + (1 - seen))*(R - Rbar)\n"
                "seen = clip(seen + int(m > 0), 0, 1)\n"
            )
        elif tf:
            mod_code = "m = mask_in(t, i)\n"
        else:  # ANP: δℓ_t c / ν_t, time-local
            mod_code = (
                f"m = mask_in(t, i)\ng = m*(ell - ell_c)*c_scale/clip({nu_expr}, tiny, inf)\n"
            )
        mod_code += f"Lsum += m*ell\nLsum_c += m*ell_c\nmsum += m\nnusum += {nu_expr}"
        mod.run_regularly(mod_code, when="groups", order=40, name="bp_mod_code")
        copy_hid = np.repeat(net_of_row, N)
        copy_out = np.repeat(net_of_row, n_out)
        # broadcast of the network's neuromodulator to its units (a linked variable with an
        # index), copied into a local variable that synapses can read as ``*_post``
        lname = "M" if tf else "g"
        for grp, idx in ((hid, copy_hid), (out, copy_out)):
            setattr(grp, lname, linked_var(mod, lname, index=idx))
            grp.run_regularly(f"{lname}_l = {lname}", when="groups", order=45,
                              name=f"{grp.name}_{lname}_broadcast")  # fmt: skip

        # -- forward synapses (+ eligibility, three-factor) ------------------------------------
        def forward(name, src, dst, n_pre, n_post, W, summed, z_now):
            model = ["w : 1 (constant)", f"{summed}_post = w*{z_now}_pre : 1 (summed)"]
            code = None
            if tf:
                post = "do_f_post" if dst is out else "dx_f_post"
                z_elig = "rprev_pre" if name == "rec" else f"{z_now}_pre"
                line, code = eligibility_equations(rule, post, z_elig)
                model += [line, "acc : 1"]
            syn = Synapses(src, dst, "\n".join(model), method="exact", namespace=ns, order=50,
                           name=f"bp_{name}")  # fmt: skip
            _block_connect(syn, S, n_pre, n_post)
            syn.w = np.tile(W.ravel(), S)
            if tf and code is not None:
                syn.run_regularly(code, when="groups", order=50, name=f"bp_{name}_elig")
            if tf and rule.reward == "step":
                syn.run_regularly("acc += M_l_post*el", when="groups", order=51,
                                  name=f"bp_{name}_acc")  # fmt: skip
            net.add(syn)
            return syn

        ff = forward("ff", inp, hid, n_in, N, W_in, "I_ff", "uhat")
        rec = forward("rec", rat, hid, N, N, W_rec, "I_rec", "rhat")
        ro = forward("ro", rat, out, N, n_out, W_out, "o_lin", "rhat")

        # -- paired ANP: clean presynaptic unit → noisy postsynaptic unit ------------------
        anp_syn = {}
        if not tf:
            for name, src, dst, n_pre, n_post, z, gain in (
                ("ff", inp, hid, n_in, N, "uhat", "alpha*dx_f_post"),
                ("rec", rat, hid, N, N, "rprev", "alpha*dx_f_post"),
                ("ro", rat, out, N, n_out, "rhat", "do_f_post"),
            ):
                syn = Synapses(src, dst, "G : 1", namespace=ns, name=f"bp_anpG_{name}")
                post, pre = np.indices((n_post, n_pre)).reshape(2, -1)
                bb = np.arange(B)[:, None]
                syn.connect(i=(bb * n_pre + pre).ravel(), j=((bb + B) * n_post + post).ravel())
                syn.run_regularly(f"G += g_l_post*{gain}*{z}_pre", when="groups", order=51,
                                  name=f"bp_anpG_{name}_acc")  # fmt: skip
                anp_syn[name] = syn
                net.add(syn)

        # -- recording ---------------------------------------------------------------------
        o_rec = np.empty((T, S * n_out))
        x_rec = np.empty((T, S * N)) if record_states else None
        o_var = out.variables["o"]
        x_var = hid.variables["x"]
        step = [0]

        @network_operation(when="end", name="bp_record")
        def _record() -> None:
            o_rec[step[0]] = o_var.get_value()
            if x_rec is not None:
                x_rec[step[0]] = x_var.get_value()
            step[0] += 1

        net.add(_record)
        scope.run(T, dt)
        if step[0] != T:
            raise RuntimeError(f"brian2 ran {step[0]} steps, expected {T}")

        # -- read back ---------------------------------------------------------------------
        def per_net(syn, var, n_post, n_pre, rows_=B):
            return _get(syn, var).reshape(rows_, n_post, n_pre)

        e_hid = e_out = acc_hid = acc_out = None
        if tf:
            e_hid = np.concatenate([per_net(ff, "el", N, n_in), per_net(rec, "el", N, N)], 2)
            e_out = per_net(ro, "el", n_out, N)
            if rule.reward == "step":
                acc_hid = np.concatenate(
                    [per_net(ff, "acc", N, n_in).sum(0), per_net(rec, "acc", N, N).sum(0)], 1
                )
                acc_out = per_net(ro, "acc", n_out, N).sum(0)
        else:
            acc_hid = np.concatenate(
                [per_net(anp_syn["ff"], "G", N, n_in).sum(0),
                 per_net(anp_syn["rec"], "G", N, N).sum(0)], 1,
            )  # fmt: skip
            acc_out = per_net(anp_syn["ro"], "G", n_out, N).sum(0)
        decor_out: dict[str, tuple[np.ndarray, float]] = {}
        count = float(T * B)
        if "D_in" in decor and D_in is not None:
            decor_out["D_in"] = (_get(lat_in, "C").reshape(S, n_in, n_in).sum(0), count)
        if "D_rec" in decor and D_rec is not None:
            decor_out["D_rec"] = (_get(lat, "C").reshape(S, N, N).sum(0), count)
        mv = {k: np.asarray(mod.variables[k].get_value(), dtype=np.float64).copy()
              for k in ("Lsum", "Lsum_c", "msum", "nusum", "Rbar", "seen")}  # fmt: skip
    o_all = o_rec.reshape(T, S, n_out)
    keep = slice(0, B) if not tf else slice(0, S)
    return TrialOutput(
        e_hid=e_hid,
        e_out=e_out,
        acc_hid=acc_hid,
        acc_out=acc_out,
        loss_sum=mv["Lsum"] if tf else mv["Lsum_c"],
        loss_sum_noisy=mv["Lsum"],
        n_scored=mv["msum"],
        nu=mv["nusum"],
        rbar=mv["Rbar"] if tf and rule.reward == "step" else None,
        seen=(mv["seen"] > 0) if tf and rule.reward == "step" else None,
        decor=decor_out,
        outputs=o_all[:, keep],
        states=None if x_rec is None else x_rec.reshape(T, S, N),
    )
