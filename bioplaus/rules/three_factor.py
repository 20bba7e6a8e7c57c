"""Online three-factor learning (DESIGN §2, last row): eligibility × neuromodulator.

Pure tensor math, no simulation: a back-end runs the network (with its exploratory noise)
and hands every step's post- and presynaptic signals to :meth:`ThreeFactor.step`; at the
end of a trial :meth:`ThreeFactor.end_trial` turns the traces and the reward into a weight
change. The same functions drive the torch back-end (``backends/torch/online.py``) and,
later, the brian2 one.

For a weight W acting as a ← W z (hidden layer: a = x, z = [û_t, r̂_{t−1}, 1]; readout:
a = o, z = [r̂_t, 1]), per network b of the batch, with the exact (zero-order-hold)
discretisation of each leaky integrator over a step dt:

running activity baseline, τ_b dā/dt = a − ā::

    ā_t = λ_b ā_{t−1} + (1 − λ_b) a_t ,   λ_b = exp(−dt/τ_b) ,   ā_{−1} = 0

fluctuation and Hebbian term (Miconi 2017 uses S(y) = y³ on the product)::

    δa_t = a_t − ā_{t−1}
    h_t  = S(δa_t z_tᵀ) = S(δa_t) S(z_t)ᵀ      S(y) = sign(y)|y|^p  (p = ``supralinear``;
                                                 identity when None; S is multiplicative)

eligibility trace, τ_e de/dt = −e + h::

    e_t = λ_e e_{t−1} + (1 − λ_e) h_t ,   λ_e = exp(−dt/τ_e) ,   e_{−1} = 0
    (τ_e = None: e_t = e_{t−1} + h_t, the whole-trial accumulator of Miconi 2017)

reward R and neuromodulator M = R − R̄ (R̄ read *before* it is updated with R):

    reward = "trial":  R_b = −L_b (the trial's masked mean loss), delivered at trial end;
                       R̄ per trial type k, a running mean over trials,
                       R̄_k ← λ_r R̄_k + (1 − λ_r) R_b  (λ_r = exp(−1/τ_r), τ_r in trials,
                       applied trial by trial in batch order; the first trial of a type
                       sets R̄_k = R_b)
                       ΔW = η (1/B) Σ_b M_b e_{b,T−1}
    reward = "step":   R_{t,b} = −ℓ_{t,b} on scored steps (m_{t,b} = 1), none elsewhere;
                       R̄_b a running mean over network b's scored steps,
                       R̄_b ← λ_r R̄_b + (1 − λ_r) R_{t,b}  (λ_r = exp(−dt/τ_r), τ_r in s)
                       ΔW = η (1/Σm) Σ_{t,b} m_{t,b} M_{t,b} e_{b,t}

modulator (``modulator``): "difference" M = R − R̄ as above (default), or "binary"
M = 1[R > R̄] (1 when the reward beats its running mean, else 0; Hoerzer, Legenstein &
Maass 2014's EH rule), with the same masking, first-entry and baseline bookkeeping.

plastic weights (``plastic``): "all" (default) returns both ΔW; "readout" returns ΔW_hid = 0,
so only the readout learns and the recurrent network (still explored by its noise, which
reaches o through W_out) stays a fixed reservoir, as in the EH readout set-ups of
Legenstein et al. 2010 and Hoerzer et al. 2014.

optional divisive normalisation (``normalise``): M ← c M / ν with c = N + n_out the number
of perturbed units and ν = ‖δx‖² + ‖δo‖² (per step for "step"; its mean over the trial's
steps for "trial"), so that, as in ANP, E[c δa δaᵀ/ν] ≈ I for isotropic fluctuations.

The weights of the B networks are shared and held fixed during a trial; the trial's
ΔW (O(η) per trial, as the continuous dW/dt = η M e integrated over it) is applied at its
end. :meth:`ThreeFactor.end_trial` returns ΔW/η; the torch trainer hands −ΔW/η to its
optimizer as the "gradient", so SGD with lr = η applies exactly ΔW (docs/plasticity.md).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, NamedTuple

import torch
from pydantic import Field

from ..registry import register_rule
from .online import StepSignals, TrialEnd, TrialInfo, Update
from .options import RuleSpec

Tensor = torch.Tensor
Reward = Literal["trial", "step"]
Noise = Literal["gaussian", "kicks"]
Modulator = Literal["difference", "binary"]
Plastic = Literal["all", "readout"]

_TINY = 1e-12


# -- pure building blocks ----------------------------------------------------------------
def decay(dt: float, tau: float | None) -> float:
    """λ = exp(−dt/τ): the per-step factor of a leaky integrator (1.0 when τ is None)."""
    return 1.0 if tau is None else math.exp(-dt / tau)


def leaky_update(avg: Tensor, value: Tensor, lam: float) -> Tensor:
    """ā ← λ ā + (1 − λ) a: exact solution of τ dā/dt = a − ā over one step with a held
    constant at ``value`` (zero-order hold)."""
    return torch.lerp(value, avg, lam) if lam != 1.0 else avg


def supralinear(y: Tensor, p: float | None) -> Tensor:
    """S(y) = sign(y)|y|^p (identity for p None; y³ for p = 3)."""
    if p is None or p == 1.0:
        return y
    if p == 3.0:
        return y * y * y
    return torch.sign(y) * y.abs().pow(p)


def eligibility_update(e: Tensor, post: Tensor, pre: Tensor, lam: float | None) -> Tensor:
    """In place: e ← λ e + (1 − λ) post ⊗ pre  (τ_e de/dt = −e + h), or e ← e + post ⊗ pre
    when ``lam`` is None (accumulate). e [B, n, m], post [B, n], pre [B, m]."""
    if lam is None:
        return e.baddbmm_(post[:, :, None], pre[:, None, :])
    return e.baddbmm_(post[:, :, None], pre[:, None, :], beta=lam, alpha=1.0 - lam)


# -- state ----------------------------------------------------------------------------------
class TrialState(NamedTuple):
    """Within-trial state of B networks; starts from zero at every trial (x_{−1} = 0)."""

    xbar: Tensor  # [B, N] running average of x
    obar: Tensor  # [B, n_out] running average of o
    e_hid: Tensor  # [B, N, M_h] eligibility of the hidden layer's weights
    e_out: Tensor  # [B, n_out, M_o] eligibility of the readout
    acc_hid: Tensor  # [N, M_h] Σ m M e (reward "step")
    acc_out: Tensor  # [n_out, M_o]
    nu: Tensor  # [B] Σ_t ‖δa_t‖² (normalise, reward "trial")
    n_steps: int


class Baseline(NamedTuple):
    """Reward baseline carried across trials: R̄ and whether each entry has been set.
    Shape [n_types] for reward "trial", [B] for reward "step"."""

    rbar: Tensor
    seen: Tensor  # bool


class Trial(NamedTuple):
    """A batch of trials under way (the online contract's trial object)."""

    ts: TrialState
    base: Baseline  # R̄ before the batch
    step_base: Baseline | None  # the running per-network R̄ (reward "step")


class ThreeFactor:
    """The online three-factor rule. Times are in seconds; ``tau_r`` is in trials for
    reward "trial" and in seconds for reward "step". ``noise``, ``kick_rate`` (Hz) and
    ``kick_amplitude`` describe the exploration a back-end must inject (kicks: each unit,
    each step, with probability kick_rate·dt, x += U(−A, A); Miconi 2017)."""

    name = "three-factor"
    #: the online contract (rules/online.py): the driver injects this rule's exploration
    explores = True
    needs: frozenset[str] = frozenset()

    def __init__(
        self,
        dt: float,
        *,
        tau_e: float | None = None,
        tau_b: float = 0.05,
        tau_r: float = 5.0,
        reward: Reward = "trial",
        noise: Noise = "gaussian",
        kick_rate: float = 3.0,
        kick_amplitude: float = 1.0,
        supralinear: float | None = None,
        normalise: bool = False,
        modulator: Modulator = "difference",
        plastic: Plastic = "all",
    ) -> None:
        if not dt > 0:
            raise ValueError(f"dt: must be > 0 (got {dt})")
        for key, v in (("tau_b", tau_b), ("tau_r", tau_r)):
            if not v > 0:
                raise ValueError(f"{key}: must be > 0 (got {v})")
        if tau_e is not None and not tau_e > 0:
            raise ValueError(f"tau_e: must be > 0 or None (got {tau_e})")
        if reward not in ("trial", "step"):
            raise ValueError(f"reward: must be 'trial' or 'step' (got {reward!r})")
        if noise not in ("gaussian", "kicks"):
            raise ValueError(f"noise: must be 'gaussian' or 'kicks' (got {noise!r})")
        if modulator not in ("difference", "binary"):
            raise ValueError(f"modulator: must be 'difference' or 'binary' (got {modulator!r})")
        if plastic not in ("all", "readout"):
            raise ValueError(f"plastic: must be 'all' or 'readout' (got {plastic!r})")
        if supralinear is not None and not supralinear > 0:
            raise ValueError(f"supralinear: must be > 0 (got {supralinear})")
        self.dt, self.tau_e, self.tau_b, self.tau_r = dt, tau_e, tau_b, tau_r
        self.reward, self.noise = reward, noise
        self.kick_rate, self.kick_amplitude = kick_rate, kick_amplitude
        self.p, self.normalise = supralinear, normalise
        self.modulator, self.plastic = modulator, plastic
        self.lam_e = None if tau_e is None else decay(dt, tau_e)
        self.lam_b = decay(dt, tau_b)
        self.lam_r = decay(1.0 if reward == "trial" else dt, tau_r)

    # -- the online contract (rules/online.py) -----------------------------------------------
    def explore(
        self,
        shape: tuple[int, ...],
        std: float,
        generator: torch.Generator,
        device: torch.device | str,
        dtype: torch.dtype,
    ) -> Tensor:
        """The exploratory term added to each hidden unit: std · ξ (noise "gaussian"), or
        κ ⊙ U(−A, A) with κ ~ Bernoulli(kick_rate · dt) (noise "kicks", Miconi 2017)."""
        if self.noise == "gaussian":
            return std * torch.randn(shape, generator=generator, device=device, dtype=dtype)
        p = self.kick_rate * self.dt
        hit = torch.rand(shape, generator=generator, device=device, dtype=dtype) < p
        amp = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        return hit.to(dtype) * ((2.0 * amp - 1.0) * self.kick_amplitude)

    def state_size(self, n_types: int, batch: int) -> int:
        """Entries of R̄: one per network (reward "step") or per trial type ("trial")."""
        return batch if self.reward == "step" else n_types

    def init_state(self, info: TrialInfo) -> Baseline:
        return self.init_baseline(self.state_size(info.n_types, info.B), info.like)

    def begin(self, state: Baseline, info: TrialInfo) -> Trial:
        n = int(state.rbar.shape[0])
        if info.types is not None and self.reward == "trial" and int(info.types.max()) >= n:
            raise ValueError(f"trial type {int(info.types.max())} >= n_trial_types={n}")
        ts = self.init_trial(info.B, info.N, info.M_h, info.n_out, info.M_o, info.like)
        return Trial(ts, state, state if self.reward == "step" else None)

    def observe(self, trial: Trial, sig: StepSignals) -> Trial:
        ts, sb = self.step(
            trial.ts, sig.a, sig.z_hid, sig.o, sig.z_out, trial.step_base, -sig.ell, sig.m
        )
        return Trial(ts, trial.base, sb)

    def finish(self, trial: Trial, end: TrialEnd) -> Update:
        """R_b = −(masked mean of ℓ_t), then :meth:`end_trial`; with σ = 0 the readout
        has no exploration of its own, so it stays fixed."""
        if self.reward == "step":
            d_hid, d_out, new_base, M = self.end_trial(trial.ts, trial.step_base, norm=end.norm)
        else:
            R = -end.loss_sum / end.n_scored.clamp_min(1.0)
            d_hid, d_out, new_base, M = self.end_trial(trial.ts, trial.base, R=R, types=end.types)
        if not end.sigma > 0:
            d_out = torch.zeros_like(d_out)
        return Update(d_hid, d_out, new_base, M)

    def state_dict(self, state: Baseline | None) -> dict[str, Tensor]:
        """R̄ and its "set" flags (traces and activity baselines restart every trial)."""
        if state is None:
            return {}
        return {"rbar": state.rbar.cpu().clone(), "seen": state.seen.cpu().clone()}

    def load_state(self, sd: dict[str, Tensor], like: Tensor) -> Baseline | None:
        if not sd:
            return None
        return Baseline(
            sd["rbar"].to(like.device, like.dtype), sd["seen"].to(like.device, torch.bool)
        )

    # -- baselines across trials ------------------------------------------------------------
    def init_baseline(self, n: int, like: Tensor) -> Baseline:
        """R̄ = 0, unset, for ``n`` trial types (reward "trial") or ``n`` networks ("step")."""
        return Baseline(like.new_zeros(n), torch.zeros(n, dtype=torch.bool, device=like.device))

    def reward_baseline_update(self, base: Baseline, idx: Tensor, R: Tensor) -> Baseline:
        """R̄_{idx_i} ← λ_r R̄_{idx_i} + (1 − λ_r) R_i for i in order (an unset entry takes
        R_i). Sequential, so a batch of trials equals the same trials one by one."""
        rbar, seen = base.rbar.clone(), base.seen.clone()
        for i, r in zip(idx.tolist(), R.unbind(0), strict=True):
            rbar[i] = torch.where(seen[i], torch.lerp(r, rbar[i], self.lam_r), r)
            seen[i] = True
        return Baseline(rbar, seen)

    # -- within a trial -----------------------------------------------------------------------
    def init_trial(
        self, B: int, N: int, M_h: int, n_out: int, M_o: int, like: Tensor
    ) -> TrialState:
        z = like.new_zeros
        return TrialState(
            z((B, N)), z((B, n_out)), z((B, N, M_h)), z((B, n_out, M_o)),
            z((N, M_h)), z((n_out, M_o)), z((B,)), 0,
        )  # fmt: skip

    def step(
        self,
        s: TrialState,
        x: Tensor,
        z_hid: Tensor,
        o: Tensor,
        z_out: Tensor,
        base: Baseline | None = None,
        R_t: Tensor | None = None,
        m_t: Tensor | None = None,
    ) -> tuple[TrialState, Baseline | None]:
        """One step: traces from the fluctuations δa = a − ā_{t−1}, then the baselines.

        For reward "step", ``R_t`` [B] is this step's reward, ``m_t`` [B] where it counts
        (None: everywhere), and ``base`` the per-network R̄, returned updated.
        """
        dx, do = x - s.xbar, o - s.obar
        xbar = leaky_update(s.xbar, x, self.lam_b)
        obar = leaky_update(s.obar, o, self.lam_b)
        p = self.p
        eligibility_update(s.e_hid, supralinear(dx, p), supralinear(z_hid, p), self.lam_e)
        eligibility_update(s.e_out, supralinear(do, p), supralinear(z_out, p), self.lam_e)
        nu = s.nu
        if self.normalise:
            nu_t = (dx * dx).sum(-1) + (do * do).sum(-1)
            nu = nu + nu_t
        if self.reward == "step":
            if base is None or R_t is None:
                raise ValueError("reward 'step' needs the baseline and this step's reward")
            m = torch.ones_like(R_t) if m_t is None else m_t
            seen = base.seen
            M = torch.where(seen, self.modulate(R_t - base.rbar), torch.zeros_like(R_t)) * m
            if self.normalise:
                M = M * ((dx.shape[-1] + do.shape[-1]) / nu_t.clamp_min(_TINY))
            s.acc_hid.add_(torch.einsum("b,bnm->nm", M, s.e_hid))
            s.acc_out.add_(torch.einsum("b,bnm->nm", M, s.e_out))
            on = m > 0
            rbar = torch.where(
                on, torch.where(seen, torch.lerp(R_t, base.rbar, self.lam_r), R_t), base.rbar
            )
            base = Baseline(rbar, seen | on)
        return s._replace(xbar=xbar, obar=obar, nu=nu, n_steps=s.n_steps + 1), base

    def end_trial(
        self,
        s: TrialState,
        base: Baseline,
        R: Tensor | None = None,
        types: Tensor | None = None,
        norm: float | None = None,
    ) -> tuple[Tensor, Tensor, Baseline, Tensor]:
        """ΔW/η for the hidden layer and the readout, the updated baseline, and M.

        reward "trial": ``R`` [B] the trials' rewards, ``types`` [B] their trial types
        (None: one type), M_b = R_b − R̄_{type_b}; ΔW/η = (1/B) Σ_b M_b e_b.
        reward "step": the sum accumulated by :meth:`step` divided by ``norm`` = Σm.
        """
        if self.reward == "step":
            n = 1.0 if norm is None else norm
            return self._hid(s.acc_hid / n), s.acc_out / n, base, s.acc_hid.new_zeros(0)
        if R is None:
            raise ValueError("reward 'trial' needs the trials' rewards R")
        B = R.shape[0]
        idx = torch.zeros(B, dtype=torch.long, device=R.device) if types is None else types
        # a type seen for the first time is centred on its first reward (M = 0 for it)
        first = self.reward_baseline_update(
            Baseline(base.rbar, base.seen), idx, R
        )  # R̄ after this batch
        rbar_before = torch.where(base.seen, base.rbar, _first_reward(idx, R, base.rbar))
        M = self.modulate(R - rbar_before[idx])
        if self.normalise:
            c = s.e_hid.shape[1] + s.e_out.shape[1]
            M = M * (c / (s.nu / max(s.n_steps, 1)).clamp_min(_TINY))
        d_hid = torch.einsum("b,bnm->nm", M, s.e_hid) / B
        d_out = torch.einsum("b,bnm->nm", M, s.e_out) / B
        return self._hid(d_hid), d_out, first, M

    def modulate(self, dR: Tensor) -> Tensor:
        """M from the reward's excess over its baseline, dR = R − R̄: dR ("difference") or
        1[dR > 0] ("binary")."""
        return dR if self.modulator == "difference" else (dR > 0).to(dR.dtype)

    def _hid(self, d_hid: Tensor) -> Tensor:
        """ΔW_hid/η, or zeros when only the readout is plastic."""
        return d_hid if self.plastic == "all" else torch.zeros_like(d_hid)


def _first_reward(idx: Tensor, R: Tensor, rbar: Tensor) -> Tensor:
    """For each type, the reward of its first trial in the batch (else the current R̄)."""
    out = rbar.clone()
    done = torch.zeros_like(rbar, dtype=torch.bool)
    for i, r in zip(idx.tolist(), R.unbind(0), strict=True):
        if not done[i]:
            out[i] = r
            done[i] = True
    return out


# -- options and registration ---------------------------------------------------------------
class ThreeFactorOptions(RuleSpec):
    """Options of the online three-factor rule."""

    #: no alignment log: the update is plasticity driven by a running reward baseline
    #: (per trial type), which a probe pass without the batch's types cannot reproduce
    alignment_probe: ClassVar[bool] = False

    name: Literal["three-factor"] = Field(
        description="three-factor: online, eligibility × reward (rules/three_factor.py)."
    )
    sigma: float | None = Field(
        None, gt=0, description="Exploration noise σ; default: the model's sigma."
    )
    tau_e: float | None = Field(
        None,
        gt=0,
        description="three-factor: eligibility time constant τ_e, s (None: "
        "accumulate over the trial, Miconi 2017).",
    )
    tau_b: float = Field(
        0.05, gt=0, description="three-factor: time constant τ_b of the running activity mean, s."
    )
    tau_r: float = Field(
        5.0,
        gt=0,
        description="three-factor: reward-baseline time constant τ_r (trials for "
        "reward 'trial', seconds for 'step').",
    )
    reward: Literal["trial", "step"] = Field(
        "trial", description="three-factor: reward −L at trial end, or −ℓ_t every scored step."
    )
    noise: Literal["gaussian", "kicks"] = Field(
        "gaussian",
        description="three-factor: exploration as intrinsic noise σ√α ξ or sparse random kicks.",
    )
    kick_rate: float = Field(3.0, gt=0, description="three-factor: kicks per unit per second, Hz.")
    kick_amplitude: float = Field(
        1.0, gt=0, description="three-factor: a kick adds U(−A, A) to x; this is A."
    )
    supralinear: float | None = Field(
        None,
        gt=0,
        description="three-factor: exponent p of S(y) = sign(y)|y|^p on the "
        "Hebbian term (3: Miconi's y³; None: linear).",
    )
    normalise: bool = Field(
        False, description="three-factor: divide M by ‖x − x̄‖² (times the number of units)."
    )
    modulator: Literal["difference", "binary"] = Field(
        "difference",
        description="three-factor: neuromodulator M = R − R̄, or binary M = 1[R > R̄] "
        "(Hoerzer et al. 2014).",
    )
    plastic: Literal["all", "readout"] = Field(
        "all",
        description="three-factor: weights the rule changes: all, or the readout only "
        "(W_in, W_rec fixed: a reservoir explored by its intrinsic noise).",
    )


#: :class:`ThreeFactor`'s keywords: the options less every rule's (name, alignment) and σ,
#: which the driver reads (noise_sigma)
_RULE_KEYS = tuple(
    k for k in ThreeFactorOptions.model_fields if k not in {*RuleSpec.model_fields, "sigma"}
)


def build_three_factor(opts: ThreeFactorOptions, network: str, dt: float | None = None):
    """The online rule for a model with step ``dt`` (seconds)."""
    if dt is None:
        raise ValueError("rule 'three-factor' needs the model's dt")
    return ThreeFactor(dt, **{k: getattr(opts, k) for k in _RULE_KEYS})


register_rule(
    "three-factor",
    options=ThreeFactorOptions,
    build=build_three_factor,
    mechanism="online",
    networks=("rate", "lif"),
    summary="online three-factor: eligibility × (R − R̄)",
)
