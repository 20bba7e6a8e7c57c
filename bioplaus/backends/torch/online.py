"""The online driver: ONE loop (:func:`online_trials`) that runs every online rule
(three-factor, e-prop, RFLO, users' rules; :mod:`bioplaus.rules.online` is the contract) on
every network type, one pass with the weights fixed.

B networks with shared weights run B independent trials side by side (the rows of the
batch). What differs between network types is a network object's (:class:`OnlineNetwork`):
the state at the start, û_t (and the input drive, formed CHUNK steps at a time), the hidden
step with what it draws from the generator and in which order, the readout, the
presynaptic block of z_hid and the local signals of the step (a_t, ψ_t, decay, gain,
spikes): rate/online.py's :class:`~.rate.online.RateOnline`, the rate network, and
lif/online.py's :class:`~.lif.online.LIFOnline`, the LIF network. The loop owns the rest,
the same for both: the rule's begin / observe / finish, the readout exploration σ ξ^o_t,
losses, mask, z_hid = [û_t, pre(s_{t−1}), 1], z_out = [r̂_t, 1], ∂ℓ_t/∂o_t, outputs,
decorrelation sums::

    per step t:  û_t = D_in u_t ;  (s_t, a_t) = step(s_{t−1}, û_t) (+ the rule's n_t)
                 o_t = readout(s_t) + σ ξ^o_t ;  ℓ_t ;  rule.observe(StepSignals_t)

A rule that explores (``rule.explores``, the three-factor rule) has its exploration n_t
added by the network's step and the readout its own Gaussian noise; a rule that does not
(e-prop, RFLO) sees the network without them. The rule keeps its own traces: memory is
independent of T (no history is stored). The driver names no rule.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ...loss import normaliser, step_loss, step_loss_grad
from ...records import PassResult
from ...rules.online import StepSignals, TrialEnd, TrialInfo
from .pass_common import add_decor_, decor_sums, noise_sigma, split_grads

Tensor = torch.Tensor

#: steps of input drive formed at once (one matmul per chunk; the same values as one
#: matmul over all T, and memory independent of T; small, so that the buffer stays below
#: the allocator's mmap threshold and is reused rather than mapped anew)
CHUNK = 16


class OnlineResult(NamedTuple):
    result: PassResult  # grads = −ΔW/η (autograd sign convention), loss of the pass
    baseline: Any  # the rule's state after these trials (three-factor: the reward baseline)
    reward: float  # mean reward of the trials, −(masked mean loss)
    modulator: Tensor  # M_b per trial (three-factor reward "trial"; else empty)


#: the local signals of one step besides the loop's: (ψ_t or None, decay, gain, spikes)
Local = tuple[Tensor | None, float | Tensor, float | Tensor, Tensor | None]


class OnlineNetwork:
    """What the one online loop needs of a network type: the parameters ``p`` (W_in, W_rec,
    W_out, b, b_out, D_in, D_rec), constants ``c``, the rule, its σ (the rule's, or the
    model's; 0 for a rule that does not explore), the pass's generator and the inputs
    [T, B, n_in]. A subclass sets ``name`` (TrialInfo.network), ``readout_decay`` and the
    default ``dt`` and writes the methods below; its state carries ``r_hat`` (r̂_t)."""

    name: str = ""
    readout_decay: float = 0.0  # κ of TrialInfo
    dt: float = 1.0  # the model step (s) when the caller gives none

    def __init__(
        self,
        p: Any,
        c: Any,
        rule: Any,
        sigma: float | None,
        generator: torch.Generator,
        inputs: Tensor,
    ) -> None:
        self.p, self.c, self.rule, self.generator, self.inputs = p, c, rule, generator, inputs
        self.sigma = noise_sigma(sigma, c.sigma) if rule.explores else 0.0
        self.B, self.N = inputs.shape[1], p.W_rec.shape[0]
        self.dev, self.dtype = inputs.device, inputs.dtype
        self.needs = rule.needs

    def init_state(self) -> Any:
        """The state s_{−1} of the B rows (with ``r_hat``)."""
        raise NotImplementedError

    def u_hat(self, t: int) -> Tensor:
        """û_t = D_in u_t [B, n_in]; called first in step t (a chunk of input drive may be
        formed here)."""
        raise NotImplementedError

    def step(self, t: int, s: Any) -> tuple[Any, Tensor]:
        """Draw this step's noise (and the rule's exploration) and step: (s_t, a_t)."""
        raise NotImplementedError

    def readout(self, s: Any) -> Tensor:
        """o_t of the state, before the readout exploration."""
        raise NotImplementedError

    def pre(self, s_prev: Any) -> Tensor:
        """The recurrent block of z_hid: what W_rec multiplies in step t."""
        raise NotImplementedError

    def local(self, s_prev: Any, s: Any, a: Tensor) -> Local:
        """ψ_t (when the rule needs "psi"), decay, gain and spikes of the step."""
        raise NotImplementedError


def trial_info(
    net: OnlineNetwork,
    mask: Tensor | None,
    dt: float | None,
    types: Tensor | None,
    n_types: int,
) -> TrialInfo:
    """The :class:`~bioplaus.rules.online.TrialInfo` of a batch."""
    p, inputs = net.p, net.inputs
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    W_eff = p.W_out if p.D_rec is None else p.W_out @ p.D_rec
    return TrialInfo(
        net.name, B, N, p.W_in.shape[1], n_out,
        p.W_in.shape[1] + N + (p.b is not None), N + (p.b_out is not None),
        T, net.dt if dt is None else dt, normaliser(mask, T, B), net.readout_decay, W_eff,
        types, n_types, net.generator, p.W_rec,
    )  # fmt: skip


def online_trials(
    net: OnlineNetwork,
    state: Any,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    *,
    types: Tensor | None = None,
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    n_types: int = 1,
    dt: float | None = None,
) -> OnlineResult:
    """The loop itself, for any network object ``net`` (which holds the parameters, the
    rule, σ, the generator and the inputs): B trials → the rule's update as a gradient
    (−ΔW/η). ``state`` is the rule's state before these trials (None: ``rule.init_state``;
    for the three-factor rule the reward baseline, [n_types] for reward "trial", [B] for
    "step"); ``types`` [B] the trial types (None: all type 0); ``dt`` the model step (s;
    None: the network's)."""
    p, rule, g, sigma = net.p, net.rule, net.generator, net.sigma
    T, B, N, n_out = net.inputs.shape[0], net.B, net.N, p.W_out.shape[0]
    dev, dt_ = net.dev, net.dtype
    with torch.no_grad():
        info = trial_info(net, mask, dt, types, n_types)
        if state is None:
            state = rule.init_state(info)
        trial = rule.begin(state, info)
        ones_h = [torch.ones(B, 1, device=dev, dtype=dt_)] if p.b is not None else []
        ones_o = [torch.ones(B, 1, device=dev, dtype=dt_)] if p.b_out is not None else []
        s = net.init_state()
        loss_sum = torch.zeros(B, device=dev, dtype=dt_)
        outs = []
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        for t in range(T):
            u_hat = net.u_hat(t)
            s_prev = s
            s, a = net.step(t, s)
            o = net.readout(s)
            if sigma > 0:
                o = o + sigma * torch.randn(B, n_out, generator=g, device=dev, dtype=dt_)
            ell = step_loss(loss_kind, o, targets[t])
            m = None if mask is None else mask[t]
            loss_sum += ell if m is None else ell * m
            z_hid = torch.cat([u_hat, net.pre(s_prev), *ones_h], 1)
            z_out = torch.cat([s.r_hat, *ones_o], 1)
            psi, decay, gain, spikes = net.local(s_prev, s, a)
            sig = StepSignals(
                t, a, z_hid, o, z_out, targets[t], ell, m, decay, gain, psi=psi,
                dl_do=step_loss_grad(loss_kind, o, targets[t]) if "dl_do" in net.needs else None,
                spikes=spikes,
            )  # fmt: skip
            trial = rule.observe(trial, sig)
            if keep_outputs:
                outs.append(o)
            add_decor_(yy, u_hat, s.r_hat)
    return end_trials(rule, trial, loss_sum, mask, T, types, sigma, p, yy, outs)


def end_trials(
    rule: Any,
    trial: Any,
    loss_sum: Tensor,
    mask: Tensor | None,
    T: int,
    types: Tensor | None,
    sigma: float,
    p: NamedTuple,
    decor_sums: dict[str, Tensor],
    outputs: list[Tensor],
) -> OnlineResult:
    """End of B trials: the rule's update ΔW/η (``rule.finish``) returned as a gradient
    −ΔW/η, its new state, and the trials' mean reward R_b = −(masked mean over t of ℓ_t)."""
    B = loss_sum.shape[0]
    n_scored = loss_sum.new_full((B,), float(T)) if mask is None else mask.sum(0)
    R = -loss_sum / n_scored.clamp_min(1.0)
    norm = normaliser(mask, T, B)
    up = rule.finish(trial, TrialEnd(loss_sum, n_scored, norm, types, sigma))
    res = PassResult(
        grads=split_grads(p, -up.d_hid, -up.d_out),
        loss=float(loss_sum.sum()) / norm,
        loss_perturbed=float(loss_sum.sum()) / norm,
        outputs=torch.stack(outputs) if outputs else None,
        decor={k: (v, float(T * B)) for k, v in decor_sums.items()},
    )
    return OnlineResult(res, up.state, float(R.mean()), up.modulator)


class OnlineRuleHandle:
    """The trainer's handle on an online rule: the rule, its exploration σ, and the rule's
    state carried from one batch of trials to the next (checkpointed with the run; for the
    three-factor rule the reward baseline R̄, for random-feedback e-prop / RFLO the feedback
    matrix B). ``network`` is the network object's class the loop runs: each network type's
    handle sets its own (:class:`~.rate.online.OnlineHandle`: ``RateOnline``,
    :class:`~.lif.online.LIFOnlineHandle`: ``LIFOnline``)."""

    network: type[OnlineNetwork]

    def __init__(
        self, rule: Any, sigma: float | None, n_types: int, batch: int, dt: float | None = None
    ):
        self.rule, self.sigma = rule, sigma
        self.n_types, self.batch, self.dt = n_types, batch, dt
        self.base: Any = None

    @classmethod
    def of_protocol(cls, protocol: Any, task: Any) -> OnlineRuleHandle:
        """The trainer's handle on a protocol's online rule (three-factor, e-prop, RFLO, …:
        built from its registry entry for the protocol's network type), the task's trial
        types and the training batch."""
        from ...rules import make_online  # a back-end may import rules; rules import no back-end

        rs = protocol.rule
        return cls(
            make_online(rs, protocol.model.kind, protocol.model.dt),
            rs.option("sigma"),
            int(getattr(task, "n_trial_types", 1)),
            protocol.train.batch_size,
            protocol.model.dt,
        )

    @property
    def n(self) -> int:
        """Size of the rule's per-type state (three-factor: entries of R̄)."""
        size = getattr(self.rule, "state_size", None)
        return size(self.n_types, self.batch) if size is not None else self.n_types

    def estimate(
        self,
        p: Any,
        c: Any,
        inputs: Tensor,
        targets: Tensor,
        mask: Tensor | None,
        loss_kind: str,
        generator: torch.Generator,
        types: Tensor | None = None,
        decor: tuple[str, ...] = (),
    ) -> PassResult:
        net = self.network(p, c, self.rule, self.sigma, generator, inputs)
        out = online_trials(
            net, self.base, targets, mask, loss_kind, types=types, decor=decor,
            n_types=self.n_types, dt=self.dt,
        )  # fmt: skip
        self.base = out.baseline
        return out.result

    def probe(self) -> OnlineRuleHandle:
        """A handle of the same network and rule from this one's current state, whose
        passes leave this one unchanged (the trainer's alignment probe)."""
        h = type(self)(self.rule, self.sigma, self.n_types, self.batch, self.dt)
        h.base = self.base
        return h

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The rule's state between batches (``rule.state_dict``; traces restart every trial)."""
        return self.rule.state_dict(self.base)

    def load_state_dict(self, sd: dict[str, torch.Tensor], like: Tensor) -> None:
        self.base = self.rule.load_state(sd, like)
