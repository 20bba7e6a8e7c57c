"""NeuroGym environments as bioplaus tasks: ``task.name = "neurogym:<EnvId>"``.

Any environment of NeuroGym (https://neurogym.github.io) is a task by name, its keyword
arguments in the protocol's ``[task]`` table (in NeuroGym's own units: ``dt`` and
``timing`` in milliseconds)::

    [task]
    name = "neurogym:PerceptualDecisionMaking-v0"
    dt = 20
    timing = { fixation = 100, stimulus = 500, delay = 0, decision = 100 }

Trials are NeuroGym's own: each comes from the env's ``new_trial()`` (its ``ob`` and
``gt``). A batch of B trials is time-major, trials left-aligned (every trial starts at
step 0, from rest) and padded at the end to the longest one (inputs and targets 0, mask 0
on the padding):

    inputs [T, B, n_in] = ob        targets [T, B, n_out]        mask [T, B]

With a discrete action space (every cognitive env) the targets are the one-hot ``gt``
(``n_out`` = the number of actions, action 0 usually "fixate"), the loss is the softmax
cross-entropy (``loss = "mse"`` for ½‖o − y‖²) and ``score`` says which steps count:
``"all"`` (default, NeuroGym's supervised convention: fixate until the go, then answer) or
``"decision"`` (only the response, as bioplaus's own ``decision`` and ``delayed_match``).
The response of a trial is its last run of steps with the same ``gt`` — the env's decision
period in PerceptualDecisionMaking, DelayMatchSample and their kin. ``accuracy`` is the
fraction of trials where the argmax of the mean response-period output is that ``gt``
(bioplaus's choice accuracy); ``trial_type`` is the correct action (``n_trial_types`` = the
number of actions), the per-condition baseline of the three-factor rule. A continuous
action space gives regression targets (``gt``), ``mse`` loss and metric.

Seeds: the training trials of a batch come from the generator the trainer passes in (one
draw of it seeds the env: ``env.seed`` reseeds its ``rng``, action space and timing
distributions), so they follow the run's child seed and a resumed run draws the same
trials; held-out ("test") trials come from a fixed stream of the task's ``seed`` (by
default derived from the run's root seed), the same at every evaluation.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import warnings
from typing import ClassVar

import numpy as np

from ..spec import SpecError
from .args import int_arg
from .base import Batch, Task, checked_outputs, scored_mean, split_rng, step_losses

PREFIX = "neurogym"
SCORES = ("all", "decision")
#: options the adapter itself takes (every other key goes to the env's constructor)
OWN_OPTIONS = ("seed", "score", "loss")


@contextlib.contextmanager
def _quiet():
    """gymnasium warns at every make that NeuroGym's metadata lacks ``render_modes``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render_modes.*")
        yield


def _neurogym():
    try:
        import neurogym
    except ImportError:
        raise SpecError(
            "task.name: NeuroGym tasks need the neurogym package (pip install 'bioplaus[neurogym]')"
        ) from None
    return neurogym


def _registry() -> dict[str, str]:
    """NeuroGym's env ids and their entry points (``module:Class``)."""
    from neurogym.envs import registration

    envs = getattr(registration, "ALL_ENVS", None)
    if not isinstance(envs, dict):  # an older or newer layout: ids only
        envs = {e: "" for e in registration.all_envs()}
    return dict(envs)


def env_ids() -> list[str]:
    """Every environment NeuroGym registers."""
    return sorted(_registry())


def _env_params(env_id: str) -> list[inspect.Parameter]:
    """The keyword arguments of the env's constructor (from its entry point)."""
    import importlib

    ep = _registry().get(env_id, "")
    if not ep:
        import gymnasium

        ep = gymnasium.spec(env_id).entry_point
    if isinstance(ep, str):
        mod, _, attr = ep.partition(":")
        ep = getattr(importlib.import_module(mod), attr)
    params = [
        p
        for p in inspect.signature(ep.__init__ if inspect.isclass(ep) else ep).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]


def neurogym_task(env_id: str) -> type[Task]:
    """The :class:`NeuroGymTask` subclass for NeuroGym env ``env_id`` (SpecError, one line,
    a ValueError, when neurogym is missing or the env is unknown, with the closest names)."""
    _neurogym()
    ids = env_ids()
    if env_id not in ids:
        close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.5)
        hint = (
            f" (did you mean {' or '.join(repr(f'{PREFIX}:{c}') for c in close)}?)"
            if close
            else f" (choose from {ids})"
        )
        raise SpecError(f"task.name: unknown NeuroGym environment {env_id!r}{hint}")
    own = [
        inspect.Parameter("seed", inspect.Parameter.KEYWORD_ONLY, default=0),
        inspect.Parameter("score", inspect.Parameter.KEYWORD_ONLY, default="all"),
        inspect.Parameter("loss", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]
    env_params = [p for p in _env_params(env_id) if p.name not in OWN_OPTIONS]
    with _quiet():
        discrete = hasattr(_neurogym().make(env_id).unwrapped.action_space, "n")
    attrs = {
        "name": f"{PREFIX}:{env_id}",
        "env_id": env_id,
        "__module__": __name__,
        "loss": "ce" if discrete else "mse",
        "metric": "accuracy" if discrete else "mse",
        "lower_is_better": not discrete,
    }
    cls = type(f"NeuroGym_{env_id.replace('-', '_')}", (NeuroGymTask,), attrs)
    cls.__signature__ = inspect.Signature(own + env_params)  # the options make_task checks
    return cls


class NeuroGymTask(Task):
    """A NeuroGym env as a bioplaus task (made by :func:`neurogym_task`; see the module)."""

    name: ClassVar[str] = PREFIX
    env_id: ClassVar[str] = ""

    def __init__(
        self, seed: int = 0, score: str = "all", loss: str | None = None, **env_kwargs: object
    ) -> None:
        ngym = _neurogym()
        self.seed = int_arg("seed", seed, 0)
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES} (got {score!r})")
        self.score = score
        self.env_kwargs = dict(env_kwargs)
        try:
            with _quiet():
                env = ngym.make(self.env_id, **self.env_kwargs)
        except TypeError as exc:
            raise ValueError(f"invalid option for {self.env_id} ({exc})") from None
        self.env = env.unwrapped
        space = self.env.action_space
        self.discrete = hasattr(space, "n")
        self.n_in = int(np.prod(self.env.observation_space.shape))
        self.n_out = int(space.n) if self.discrete else int(np.prod(space.shape))
        default = "ce" if self.discrete else "mse"
        if loss is None:
            loss = default
        if loss not in ("ce", "mse") or (loss == "ce" and not self.discrete):
            allowed = ("ce", "mse") if self.discrete else ("mse",)
            raise ValueError(f"loss must be one of {allowed} (got {loss!r})")
        self.loss = loss  # type: ignore[misc]
        self.n_trial_types = self.n_out if self.discrete else 1
        self.dt = float(self.env.dt)  # milliseconds (NeuroGym's unit)

    def __repr__(self) -> str:
        opts = {"seed": self.seed, "score": self.score, "loss": self.loss, **self.env_kwargs}
        return (
            f"NeuroGymTask({self.env_id!r}, "
            + ", ".join(f"{k}={v!r}" for k, v in opts.items())
            + ")"
        )

    # -- trials ---------------------------------------------------------------------------
    def trials(self, n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
        """``n`` trials of the env seeded with ``seed``: obs [T_i, n_in], gt, trial dicts."""
        env = self.env
        env.seed(int(seed))
        obs, gts, infos = [], [], []
        for _ in range(n):
            info = env.new_trial()
            obs.append(np.asarray(env.ob, dtype=np.float64).reshape(len(env.ob), -1))
            gts.append(np.asarray(env.gt).copy())
            infos.append(dict(info) if isinstance(info, dict) else {})
        return obs, gts, infos

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        """B NeuroGym trials: inputs [T, B, n_in], targets [T, B, n_out], mask [T, B]."""
        B = int_arg("batch_size", batch_size, 1)
        rng = split_rng(self, split, rng)
        obs, gts, _ = self.trials(B, int(rng.integers(0, 2**31 - 1)))
        return self.batch(obs, gts)

    def batch(self, obs: list[np.ndarray], gts: list[np.ndarray]) -> Batch:
        """Stack trials (left-aligned, zero-padded at the end) into a time-major Batch."""
        B = len(obs)
        T = max(len(o) for o in obs)
        u = np.zeros((T, B, self.n_in))
        y = np.zeros((T, B, self.n_out))
        valid = np.zeros((T, B))
        for b, (o, g) in enumerate(zip(obs, gts, strict=True)):
            n = len(o)
            u[:n, b] = o
            valid[:n, b] = 1.0
            if self.discrete:
                y[np.arange(n), b, np.asarray(g, dtype=np.int64).reshape(n)] = 1.0
            else:
                y[:n, b] = np.asarray(g, dtype=np.float64).reshape(n, -1)
        mask = valid
        if self.discrete and self.score == "decision":
            mask = self.response_mask(Batch(u, y, valid))
        return Batch(u, y, mask)

    # -- scoring --------------------------------------------------------------------------
    @staticmethod
    def _valid(batch: Batch) -> np.ndarray:
        """[T, B] 1 on a trial's own steps (targets of a discrete env are one-hot there)."""
        return (np.abs(np.asarray(batch.targets)).sum(-1) > 0).astype(np.float64)

    def response_mask(self, batch: Batch) -> np.ndarray:
        """[T, B] 1 on each trial's response: its last run of steps with the same ``gt``."""
        y = np.asarray(batch.targets)
        valid = self._valid(batch)
        T, B = valid.shape
        cls = y.argmax(-1)
        m = np.zeros((T, B))
        for b in range(B):
            steps = np.flatnonzero(valid[:, b])
            if not len(steps):
                continue
            end = steps[-1]
            start = end
            while start > 0 and valid[start - 1, b] and cls[start - 1, b] == cls[end, b]:
                start -= 1
            m[start : end + 1, b] = 1.0
        return m

    def trial_type(self, batch: Batch) -> np.ndarray:
        """The correct action at the end of each trial [B] (0 … n_out − 1)."""
        y = np.asarray(batch.targets)
        valid = self._valid(batch)
        last = valid.shape[0] - 1 - np.argmax(valid[::-1], axis=0)  # last valid step
        return y[last, np.arange(y.shape[1])].argmax(-1).astype(np.int64)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """accuracy (argmax of the mean response output = the correct action), the loss on
        the scored steps (``ce`` or ``mse``); for a continuous env, the masked mse."""
        o, y = checked_outputs(outputs, batch)
        m = self._valid(batch) if batch.mask is None else np.asarray(batch.mask, np.float64)
        out: dict[str, float] = {}
        out[self.loss] = scored_mean(step_losses(self.loss, o, y), m)
        if self.discrete:
            r = self.response_mask(batch)
            mean = (o * r[..., None]).sum(0) / np.maximum(r.sum(0), 1.0)[:, None]
            correct = self.trial_type(batch)
            out["accuracy"] = float((mean.argmax(-1) == correct).mean())
        return out
