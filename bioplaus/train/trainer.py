"""The one training loop: a rule's estimate → a torch optimizer, plus decorrelation.

Every network type (rate, LIF, MLP) trains on :class:`Trainer`; what differs between types
comes through the type's :class:`~bioplaus.registry.TrainerHooks`
(``bioplaus/networks/<kind>.py``).

One update (the order of the multi-layer seed paper's code):
  1. a batch of trials from the task;
  2. the rule's estimate of ∂L at the current weights (and D), and the clean pass's ⟨y yᵀ⟩;
  3. D ← D − η_D offdiag(⟨y yᵀ⟩) D for each decorrelating matrix;
  4. the optimizer steps the forward weights with the estimate as their gradient.

All random streams (task trials, noise) are generators owned by the trainer, so the whole
state — weights, optimizer, generators, step — fits in a checkpoint and a resumed run is
bit-identical on CPU.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from ..analysis.alignment import angles
from ..backends.torch.precision import precision_scope
from ..protocol import ProtocolSpec
from ..random import child_seed, numpy_rng, torch_generator
from ..registry import network_type
from ..rules import make_rule
from ..rules.decorrelation import decorrelation_update
from ..tasks.base import Batch, Task

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class DivergedError(RuntimeError):
    """Training produced NaN/Inf or exceeded the weight bound."""


class StepInfo(NamedTuple):
    step: int
    loss: float  # L of the clean (baseline) pass on the training batch
    loss_perturbed: float
    grad_norm: float


def apply_estimate(t, res) -> StepInfo:
    """The end of every update, shared by all trainers: check the estimate, clip its global
    norm, decorrelate (D ← D − η_D offdiag(⟨yyᵀ⟩) D), step the optimizer, guard the weights.

    ``t`` has ``weights``, ``decor``, ``opt``, ``protocol`` and ``step_count``."""
    tr = t.protocol.train
    grads = res.grads
    gnorm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
    if not math.isfinite(gnorm) or not math.isfinite(res.loss):
        raise DivergedError(f"non-finite loss or gradient estimate at step {t.step_count + 1}")
    scale = 1.0
    if tr.grad_clip is not None and gnorm > tr.grad_clip:
        scale = tr.grad_clip / gnorm
    for k, w in t.weights.items():
        w.grad = grads[k] * scale if scale != 1.0 else grads[k]
    with torch.no_grad():
        for k, (yy, count) in res.decor.items():
            t.decor[k] = decorrelation_update(t.decor[k], yy, count, tr.lr_decor)
    t.opt.step()
    t.opt.zero_grad(set_to_none=True)
    t.step_count += 1
    guard(t)
    return StepInfo(t.step_count, res.loss, res.loss_perturbed, gnorm)


def guard(t) -> None:
    """Divergence guard: NaN/Inf or a weight beyond ``train.max_abs_weight`` stops the run."""
    bound = t.protocol.train.max_abs_weight
    for k, v in [*t.weights.items(), *t.decor.items()]:
        a = v.detach()
        if not bool(torch.isfinite(a).all()):
            raise DivergedError(f"{k} became NaN/Inf at step {t.step_count}")
        mx = float(a.abs().max())
        if mx > bound:
            raise DivergedError(
                f"|{k}| reached {mx:.3g} > max_abs_weight={bound:g} at step {t.step_count}"
            )


def base_state(t) -> dict:
    """The checkpoint every trainer shares: step, weights, decorrelation matrices, optimizer,
    noise generator and task generator (all tensors: loadable with weights_only=True)."""
    return {
        "step": t.step_count,
        "weights": {k: v.detach().cpu().clone() for k, v in t.weights.items()},
        "decor": {k: v.cpu().clone() for k, v in t.decor.items()},
        "optimizer": t.opt.state_dict(),
        "gen_noise": t.gen_noise.get_state(),
        "rng_task": _np_state_tensor(t.rng_task),
    }


def load_base_state(t, sd: dict) -> None:
    """Restore what :func:`base_state` saved."""
    t.step_count = int(sd["step"])
    with torch.no_grad():
        for k, v in sd["weights"].items():
            t.weights[k].copy_(v.to(t.device, t.dtype))
    t.decor = {k: v.to(t.device, t.dtype) for k, v in sd["decor"].items()}
    t.opt.load_state_dict(sd["optimizer"])
    t.gen_noise.set_state(sd["gen_noise"])
    t.rng_task = _np_rng_from_tensor(sd["rng_task"])


def optimizer_and_streams(t, protocol: ProtocolSpec) -> None:
    """Set a trainer's optimizer over ``t.weights`` (SGD with momentum, or Adam, at
    ``train.lr``) and its random streams from the protocol's seed: ``rng_task`` (training
    batches), ``gen_noise`` (the rule's noise) and ``gen_align`` (alignment probes)."""
    tr = protocol.train
    if tr.optimizer == "sgd":
        t.opt = torch.optim.SGD(t.weights.values(), lr=tr.lr, momentum=tr.momentum)
    else:
        t.opt = torch.optim.Adam(t.weights.values(), lr=tr.lr)
    t.rng_task = numpy_rng(protocol.seed, "task", "train")
    t.gen_noise = torch_generator(protocol.seed, "noise", device=t.device)
    t.gen_align = torch_generator(protocol.seed, "alignment", device=t.device)


class Trainer:
    """Holds the weights, optimizer and random generators of one run, for every network type.

    What differs between types (rate, LIF, MLP) comes through the type's
    :class:`~bioplaus.registry.TrainerHooks` (``bioplaus/networks/<kind>.py``): how the
    parameters become named tensors and back, how a task batch becomes tensors, one
    update's estimate, the clean outputs, the evaluation loss and the alignment probe."""

    def __init__(self, protocol: ProtocolSpec, task: Task, params: dict[str, np.ndarray]):
        self.protocol = protocol
        self.task = task
        # what differs between network types (rate, LIF, MLP) and back-ends (torch, brian2):
        # bioplaus/networks/<kind>.py, and the hooks it names for another back-end
        self.hooks = network_type(protocol.model.kind).trainer_hooks(protocol.backend)
        if self.hooks.check is not None:
            self.hooks.check(protocol, task)
        tr = protocol.train
        if tr.threads is not None:
            torch.set_num_threads(tr.threads)
        self.device = torch.device(tr.device)
        self.dtype = DTYPES[tr.dtype]
        self.consts = self.hooks.consts(protocol.model)
        weights, decor = self.hooks.tensors(protocol.model, params, self.device, self.dtype)
        self.weights = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
        self.decor = {k: v.clone() for k, v in decor.items()}
        optimizer_and_streams(self, protocol)
        seed = protocol.seed
        rs = protocol.rule
        # an online rule (three-factor, e-prop, RFLO, …: the registry's mechanism "online")
        # runs in the one online driver (online.py, with the network's object); its update ΔW
        # reaches the optimizer as the gradient −ΔW/η (docs/plasticity.md)
        network = protocol.model.kind
        self.online = self.hooks.make_online(protocol, task) if rs.mechanism == "online" else None
        self.rule = make_rule(rs, network=network) if rs.mechanism in ("node", "weight") else None
        self.step_count = 0
        self.eval_batch = task.sample(tr.eval_batch, numpy_rng(seed, "task", "eval"), split="test")
        # a fixed batch of training trials, to report the training metric beside the held-out one
        self.train_eval_batch = task.sample(
            tr.eval_batch, numpy_rng(seed, "task", "train_eval"), split="train"
        )

    # -- parameters -------------------------------------------------------------------------
    def params(self) -> Any:
        """The current weights and D as the back-end's parameters (``RateParams``,
        ``MLPParams``: the type's ``pack``), detached."""
        return self.hooks.pack(self.protocol.model, self.weights, self.decor)

    def params_numpy(self) -> dict[str, np.ndarray]:
        return self.hooks.to_numpy(self.params())

    def _tensor(self, a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(a, device=self.device, dtype=self.dtype)

    # -- one update -------------------------------------------------------------------------
    def step(self) -> StepInfo:
        tr = self.protocol.train
        batch = self.task.sample(tr.batch_size, self.rng_task, split="train")
        u, y, m = self.hooks.data(self, batch)
        decor_keys = tuple(self.decor) if tr.lr_decor > 0 else ()
        # the estimate only (precision.py; an online rule runs at float32, a null scope)
        with precision_scope(tr.precision, self.device):
            res = self.hooks.estimate(self, batch, u, y, m, self.task.loss, decor_keys)
        return apply_estimate(self, res)

    def alignment(self) -> dict[str, float]:
        """Angles (degrees) between the rule's estimate and the exact gradient of the clean
        network on the fixed training batch, the keys the type logs (``align_key``): rate
        align_hidden, align_readout, align_all; MLP align_layer{l}, align_all."""
        if self.hooks.alignment is None:
            return {}
        pair = self.hooks.alignment(self)
        if pair is None:
            return {}
        e, g = pair
        a = angles(
            {k: v.cpu().double().numpy() for k, v in e.items()},
            {k: v.cpu().double().numpy() for k, v in g.items()},
        )
        return {f"align_{k}": v for k, v in a.items() if self.hooks.align_key(k)}

    def _guard(self) -> None:
        guard(self)

    # -- evaluation -------------------------------------------------------------------------
    def outputs(self, batch: Batch) -> np.ndarray:
        """Clean (σ = 0) outputs on ``batch`` → numpy, the task's layout [T, B, n_out]."""
        u = self.hooks.data(self, batch)[0]
        return self.hooks.outputs(self, u).cpu().double().numpy()

    def evaluate(self) -> dict[str, float]:
        """Loss and task metrics of the clean network on the held-out batch (``eval_*``)
        and on a fixed batch of training trials (``train_*``); the alignment when the rule
        asks (``rule.alignment``)."""
        metrics: dict[str, float] = {}
        for prefix, b in (("eval", self.eval_batch), ("train", self.train_eval_batch)):
            o = self.outputs(b)
            metrics[f"{prefix}_loss"] = float(self.hooks.eval_loss(self.task.loss, o, b))
            metrics.update({f"{prefix}_{k}": float(v) for k, v in self.task.metrics(o, b).items()})
        if not math.isfinite(metrics["eval_loss"]):
            raise DivergedError(f"non-finite evaluation loss at step {self.step_count}")
        if self.protocol.rule.alignment:
            metrics.update(self.alignment())
        return metrics

    # -- checkpoint -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        sd = {**base_state(self), "gen_align": self.gen_align.get_state()}
        if self.online is not None:
            sd["rule_state"] = self.online.state_dict()
        return sd

    def load_state_dict(self, sd: dict) -> None:
        load_base_state(self, sd)
        if "gen_align" in sd:
            self.gen_align.set_state(sd["gen_align"])
        if self.online is not None:
            self.online.load_state_dict(sd.get("rule_state", {}), self.weights["W_rec"])


def _np_state_tensor(rng: np.random.Generator) -> torch.Tensor:
    """PCG64 state as a tensor (checkpoints load with weights_only=True: no pickled objects)."""
    st = rng.bit_generator.state
    vals = [st["state"]["state"], st["state"]["inc"], st["has_uint32"], st["uinteger"]]
    return torch.tensor(
        [[(v >> (32 * i)) & 0xFFFFFFFF for i in range(4)] for v in vals], dtype=torch.int64
    )


def _np_rng_from_tensor(t: torch.Tensor) -> np.random.Generator:
    vals = [sum(int(x) << (32 * i) for i, x in enumerate(row)) for row in t.tolist()]
    rng = np.random.Generator(np.random.PCG64(child_seed(0, "placeholder")))
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": vals[0], "inc": vals[1]},
        "has_uint32": vals[2],
        "uinteger": vals[3],
    }
    return rng
