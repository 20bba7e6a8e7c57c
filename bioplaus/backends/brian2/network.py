"""The one builder of brian2 rate networks, shared by ``simulate`` (rate.py) and learning.

Building blocks (both users): checked arrays, the input drive W_in D_in u, TimedArrays of a
[T, M] sequence (row n read at step n), the white noise η = ξ/√dt of a given realisation,
the hidden units (the rate equation of :mod:`.equations`), dense block-diagonal
connections and a recorder of variables at the end of each step.

The learning network (:func:`build`; anp.py and three_factor.py add their plasticity) has
S rows of units — B networks for the three-factor rule, 2B = [clean B | noisy B] for paired
ANP — unit k of row s at index s·n + k::

    inp   NeuronGroup S·n_in  û = u (TimedArray) or, with D_in, û = Σ D_in u (lateral synapses
                              from ``raw``)
    hid   NeuronGroup S·N     dx/dt = (−x + I_rec + I_ff)/τ + σ ξ(t)/√τ   (Euler–Maruyama)
    rat   NeuronGroup S·N     r̂ = φ(x) or Σ D_rec φ(x) (lateral synapses); r̂_prev
    out   NeuronGroup S·n_out o = W_out r̂ + σ ξ^o, target y (TimedArray)
    mod   NeuronGroup B       per network: loss ℓ of its noisy and clean rows, ν, the sums
    ff    Synapses inp→hid    I_ff = Σ W_in û
    rec   Synapses rat→hid    I_rec = Σ W_rec r̂
    ro    Synapses rat→out    o_lin = Σ W_out r̂

A plasticity module describes what it adds (:class:`Plasticity`: extra variables of the
groups and synapses, its neuromodulator code, its constants); :func:`build` makes the
objects, the module then attaches its own operations and reads its traces back. The
schedule of one step (slot ``groups``; a summed variable runs at its target's order − 1)::

     3/5  u ← u(t_n); û ← D_in u                  (inp)
     9    I_ff, I_rec ← W_in û_n, W_rec r̂_{n−1}   (summed)
    10    x_{n−1} → x_n                            (hid: Euler–Maruyama, xi or given η)
    11    kicks: x += U(−A, A) with prob. p        (hid, when exploring by kicks)
    12    δx (the plasticity module)               (hid)
    18    r̂_prev ← r̂ (= r̂_{n−1})                  (rat)
    19/20 r̂ ← D_rec φ(x_n)                         (rat)
    21    C += y_j y_i on lateral synapses         (decorrelation statistics, ⟨y yᵀ⟩)
    29    o_lin ← W_out r̂_n                        (summed)
    31/32 o ← o_lin + σ ξ^o ; δo (the module)      (out)
    39    ℓ, ν ← Σ ½(o − y)², Σ δx², Σ δo²          (summed into mod, per network)
    40    m, the module's neuromodulator code, sums (mod)
    45    broadcast of the neuromodulator to the units
    50/51 the module's synapse updates
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ...params import Params, check_params
from ...rules.options import noise_sigma
from ...spec import RateSpec
from . import equations as eq
from .context import DEFAULT_TARGET, check_target


# -- building blocks -------------------------------------------------------------------------
def checked_array(name: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as float64 of ``shape`` with only finite entries, else ValueError naming it."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return arr


def input_drive(params: Params, inputs: np.ndarray) -> np.ndarray:
    """I_in = W_in D_in u for all steps and copies: [T, B, n_in] → [T, B, N] (as torch)."""
    u = inputs if params.get("D_in") is None else inputs @ np.asarray(params["D_in"]).T
    return u @ np.asarray(params["W_in"]).T


def effective_recurrence(params: Params) -> np.ndarray:
    """W_eff = W_rec D_rec (W_rec when there is no D_rec): I_rec = W_eff φ(x)."""
    W = np.asarray(params["W_rec"], dtype=np.float64)
    D = params.get("D_rec")
    return W if D is None else W @ np.asarray(D, dtype=np.float64)


def timed(values: np.ndarray, dt: float, name: str | None = None) -> Any:
    """A TimedArray of ``values`` [T, M]: row n is read at step n (t_n = n·dt)."""
    from brian2 import TimedArray, second

    return TimedArray(values, dt=dt * second, name=name)


def white_noise(xi: np.ndarray, dt: float, name: str | None = None) -> Any:
    """η = ξ_t/√dt held for one step (units s^-1/2) from a standard-normal ξ [T, M]: the Euler
    step then adds σ√α ξ_t, the torch back-end's increment from the same ξ_t."""
    from brian2 import second

    return timed(xi / np.sqrt(dt) * second**-0.5, dt, name)


def hidden_units(
    spec: RateSpec, n: int, noise: eq.NoiseKind, ns: dict, *, drive: eq.Drive = "timed",
    gated: bool = False, extra: tuple[str, ...] = (), **group: Any,
) -> Any:  # fmt: skip
    """NeuronGroup of ``n`` rate units (:func:`.equations.rate_equations` with ``drive`` and
    ``gated``, plus the ``extra`` equation lines), Euler–Maruyama; ``group``: name, order."""
    from brian2 import NeuronGroup

    lines = [eq.rate_equations(spec, noise, drive, gated), *extra]
    return NeuronGroup(n, "\n".join(lines), method="euler", namespace=ns, **group)


def block_connect(syn: Any, n_pre: int, n_post: int, pre_rows, post_rows=None) -> None:
    """Dense blocks: every unit of row ``pre_rows[k]`` to every unit of row ``post_rows[k]``
    (default the same rows: block-diagonal), synapse order (block k, post i, pre j)."""
    pre_rows = np.asarray(pre_rows)
    post_rows = pre_rows if post_rows is None else np.asarray(post_rows)
    post, pre = np.indices((n_post, n_pre)).reshape(2, -1)
    i = (pre_rows[:, None] * n_pre + pre[None, :]).ravel()
    j = (post_rows[:, None] * n_post + post[None, :]).ravel()
    syn.connect(i=i, j=j)


def values(obj: Any, name: str) -> np.ndarray:
    """A copy of the brian2 variable ``name`` of ``obj`` as float64."""
    return np.asarray(obj.variables[name].get_value(), dtype=np.float64).copy()


class Recording:
    """Copies variables into preallocated [T, size] arrays at the end of every step."""

    def __init__(self, variables: Mapping[str, Any], T: int, name: str):
        from brian2 import network_operation

        self.T, self.steps = T, 0
        self._vars = dict(variables)
        self.arrays = {k: np.empty((T, v.size)) for k, v in self._vars.items()}

        @network_operation(when="end", name=name)
        def _record() -> None:
            for k, v in self._vars.items():
                self.arrays[k][self.steps] = v.get_value()
            self.steps += 1

        self.operation = _record

    def check(self) -> None:
        if self.steps != self.T:
            raise RuntimeError(f"brian2 ran {self.steps} steps, expected {self.T}")


# -- the learning network --------------------------------------------------------------------
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


@dataclass(frozen=True)
class Options:
    """How to run one learning batch on brian2 (the same for every plasticity module).

    sigma: exploration σ (hidden σ√α ξ and readout σ ξ^o; None: the model's). decor: the
    lateral layers ("D_in", "D_rec") whose statistics ⟨y yᵀ⟩ to return. noise: a given
    hidden realisation [T, B, N] (standard-normal ξ, or the kick increments when exploring
    by kicks) and noise_out ξ^o [T, B, n_out], e.g. shared with torch; otherwise brian2's
    ``xi``/``rand``/``randn`` seeded from ``seed``. target: numpy or cython.
    record_states: also return x [T, S, N].
    """

    sigma: float | None = None
    decor: tuple[str, ...] = ()
    noise: np.ndarray | None = None
    noise_out: np.ndarray | None = None
    seed: int = 0
    target: str = DEFAULT_TARGET
    record_states: bool = False


DEFAULT_OPTIONS = Options()


@dataclass(frozen=True)
class Trials:
    """A batch of trials: inputs [T, B, n_in], targets [T, B, n_out], mask [T, B] (checked)."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray

    @classmethod
    def of(cls, spec: RateSpec, inputs, targets, mask=None) -> Trials:
        eq.check_spec(spec)
        inputs = np.asarray(inputs, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        T, B, n_in = inputs.shape
        if n_in != spec.n_in or targets.shape != (T, B, spec.n_out):
            raise ValueError(
                f"inputs/targets: expected [T, B, {spec.n_in}] and [T, B, {spec.n_out}]"
            )
        if not (np.isfinite(inputs).all() and np.isfinite(targets).all()):
            raise ValueError("inputs/targets: contain NaN or Inf")
        m = np.ones((T, B)) if mask is None else np.asarray(mask, dtype=np.float64)
        if m.shape != (T, B):
            raise ValueError(f"mask: expected shape {(T, B)}, got {m.shape}")
        return cls(inputs, targets, m)


class Rows(NamedTuple):
    """The S rows of a learning network: B networks, doubled to [clean | noisy] when paired."""

    B: int
    S: int
    network: np.ndarray  # [S] the network each row belongs to
    noisy: np.ndarray  # [S] 1 on the perturbed rows
    counted: np.ndarray  # [S] 1 on the rows the statistics use (the clean ones when paired)

    @classmethod
    def of(cls, B: int, paired: bool) -> Rows:
        if not paired:
            return cls(B, B, np.arange(B), np.ones(B), np.ones(B))
        r = np.arange(2 * B)
        return cls(B, 2 * B, r % B, (r >= B).astype(float), (r < B).astype(float))


@dataclass(frozen=True)
class Plasticity:
    """What a plasticity module adds to the network :func:`build` makes."""

    hid: tuple[str, ...] = ()  # equation lines of the hidden units
    out: tuple[str, ...] = ()  # of the readout units
    mod: tuple[str, ...] = ()  # of the per-network unit
    synapses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ff, rec, ro
    mod_code: str = ""  # the per-network unit's code between the mask and the sums
    normalise: bool = True  # sum ν = ‖δx‖² + ‖δo‖² into the per-network unit
    namespace: Mapping[str, object] = field(default_factory=dict)
    kicks: tuple[float, float] | None = None  # explore by kicks: (probability/step, amplitude)


@dataclass(frozen=True)
class Setup:
    """Everything one learning network is built from (checked by :meth:`of`)."""

    spec: RateSpec
    params: Params
    trials: Trials
    rows: Rows
    sigma: float  # exploration σ
    options: Options

    @classmethod
    def of(cls, spec: RateSpec, params: Params, trials: Trials, options: Options,
           paired: bool) -> Setup:  # fmt: skip
        sigma = check_learning(spec, params, options)
        return cls(spec, params, trials, Rows.of(trials.mask.shape[1], paired), sigma, options)

    @property
    def T(self) -> int:
        return self.trials.mask.shape[0]


def check_learning(spec: RateSpec, params: Params, options: Options) -> float:
    """Validate what every learning mode needs; return the exploration σ."""
    eq.check_spec(spec)
    check_target(options.target)
    if options.target == "cpp_standalone":
        raise ValueError("target: learning runs on the runtime targets (numpy, cython)")
    if spec.bias or spec.out_bias:
        raise ValueError("bias: brian2 learning supports models without biases (bias = false)")
    check_params(spec, params)
    sigma = float(noise_sigma(options.sigma, spec.sigma))
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma: must be finite and >= 0 (got {sigma})")
    return sigma


class RateNetwork:
    """The built learning network: its groups and synapses (by name), recording, read-back."""

    def __init__(self, scope, setup: Setup):
        self.scope, self.setup = scope, setup
        self.spec, self.params, self.rows, self.T = setup.spec, setup.params, setup.rows, setup.T
        self.objects: dict[str, Any] = {}
        self.ns: dict[str, object] = {}
        self.recording: Recording | None = None

    def __getitem__(self, name: str) -> Any:
        return self.objects[name]

    def add(self, key: str, obj: Any) -> Any:
        self.objects[key] = obj
        self.scope.network.add(obj)
        return obj

    def broadcast(self, name: str) -> None:
        """The per-network unit's ``name`` to every hidden and readout unit of that network, as
        ``{name}_l`` (a linked variable copied into a local one that synapses read as _post)."""
        from brian2 import linked_var

        for key, n in (("hid", self.spec.n_rec), ("out", self.spec.n_out)):
            grp = self[key]
            setattr(grp, name, linked_var(self["mod"], name, index=np.repeat(self.rows.network, n)))
            grp.run_regularly(f"{name}_l = {name}", when="groups", order=45,
                              name=f"{grp.name}_{name}_broadcast")  # fmt: skip

    def run(self) -> None:
        self.scope.run(self.T, float(self.spec.dt))
        self.recording.check()

    def per_network(self, syn: str, var: str) -> np.ndarray:
        """A variable of synapses with B blocks as [B, n_post, n_pre]."""
        s = self[syn]
        n_post, n_pre = s.target.N // self.rows.S, s.source.N // self.rows.S
        return values(s, var).reshape(self.rows.B, n_post, n_pre)

    def summed(self, var: str, names=("ff", "rec", "ro")) -> tuple[np.ndarray, np.ndarray]:
        """Σ over networks of a synapse variable: [N, n_in + N] (ff | rec) and [n_out, N] (ro)."""
        ff, rec, ro = (self.per_network(n, var).sum(0) for n in names)
        return np.concatenate([ff, rec], 1), ro

    def modulator(self) -> dict[str, np.ndarray]:
        """The per-network unit's trial sums and state."""
        keys = ("Lsum", "Lsum_c", "msum", "nusum") + tuple(
            k for k in ("Rbar", "seen") if k in self["mod"].variables)  # fmt: skip
        return {k: values(self["mod"], k) for k in keys}

    def decorrelation(self, decor: tuple[str, ...]) -> dict[str, tuple[np.ndarray, float]]:
        """(Σ_{t, counted rows} y yᵀ, T·B) of the lateral layers named in ``decor``."""
        out, count, spec = {}, float(self.T * self.rows.B), self.spec
        for key, syn, n in (("D_in", "lat_in", spec.n_in), ("D_rec", "lat_rec", spec.n_rec)):
            if key in decor and syn in self.objects:
                out[key] = (values(self[syn], "C").reshape(self.rows.S, n, n).sum(0), count)
        return out

    def trial_output(self, mv: dict[str, np.ndarray], **traces: Any) -> TrialOutput:
        """The TrialOutput of the run: the module's ``traces`` (e_*, acc_*, loss sums, rbar,
        seen; absent ones None), the trial sums ``mv``, ⟨y yᵀ⟩, outputs and states.

        outputs: the readout of the first B rows (the networks, or ANP's clean copies)."""
        T, S = self.T, self.rows.S
        o = self.recording.arrays["o"].reshape(T, S, self.spec.n_out)
        x = self.recording.arrays.get("x")
        x = None if x is None else x.reshape(T, S, self.spec.n_rec)
        fields = dict.fromkeys(("e_hid", "e_out", "acc_hid", "acc_out", "rbar", "seen"))
        return TrialOutput(**{**fields, **traces}, n_scored=mv["msum"], nu=mv["nusum"],
                           decor=self.decorrelation(self.setup.options.decor),
                           outputs=o[:, : self.rows.B], states=x)  # fmt: skip


def build(scope, setup: Setup, plastic: Plasticity) -> RateNetwork:
    """Build the learning network of :mod:`this module <.network>` in ``scope``.

    The plasticity module's variables and constants go into the groups; its operations are
    attached by the module afterwards.
    """
    net = RateNetwork(scope, setup)
    _namespace(net, plastic)
    _inputs(net)
    _hidden(net, plastic)
    _rates(net)
    _readout(net, plastic)
    _modulator(net, plastic)
    for name, (src, dst, W) in {"ff": ("inp", "hid", "W_in"), "rec": ("rat", "hid", "W_rec"),
                                "ro": ("rat", "out", "W_out")}.items():  # fmt: skip
        model = "\n".join((*eq.forward_synapses_model(name), *plastic.synapses.get(name, ())))
        _dense(net, name, (src, dst), (model, "w"), setup.params[W], method="exact", order=50)
    recorded = {"o": net["out"].variables["o"]}
    if setup.options.record_states:
        recorded["x"] = net["hid"].variables["x"]
    net.recording = Recording(recorded, net.T, "bp_record")
    scope.network.add(net.recording.operation)
    return net


def _tile_rows(a: np.ndarray, rows: Rows, noisy_only: bool = False) -> np.ndarray:
    """[T, B, n] → [T, S·n]: every row's network (or zeros outside the noisy rows)."""
    T, B, n = a.shape
    if not noisy_only:
        return np.tile(a, (1, rows.S // B, 1)).reshape(T, rows.S * n)
    full = np.zeros((T, rows.S, n))
    full[:, rows.S - B :] = a  # the noisy rows (all rows unless paired)
    return full.reshape(T, rows.S * n)


def _namespace(net: RateNetwork, plastic: Plasticity) -> None:
    from brian2 import second

    spec, rows, dt = net.spec, net.rows, float(net.spec.dt)
    sigma, options, trials = net.setup.sigma, net.setup.options, net.setup.trials
    T, B = trials.mask.shape
    ns = net.ns
    ns.update({"tau": float(spec.tau) * second, "sigma": sigma, "sigma_o": sigma})
    ns.update(plastic.namespace)
    if plastic.kicks is not None:
        ns["p_kick"], ns["kick_amp"] = plastic.kicks
    ns["u_in"] = timed(_tile_rows(trials.inputs, rows), dt)
    ns["y_in"] = timed(_tile_rows(trials.targets, rows), dt)
    ns["mask_in"] = timed(trials.mask, dt)
    if options.noise is not None:
        xi = np.asarray(options.noise, dtype=np.float64)
        if xi.shape != (T, B, spec.n_rec) or not np.isfinite(xi).all():
            raise ValueError(f"noise: expected finite array of shape {(T, B, spec.n_rec)}")
        full = _tile_rows(xi, rows, noisy_only=True)
        if plastic.kicks is not None:
            ns["kick_ext"] = timed(full, dt)
        else:
            ns["eta"] = white_noise(full, dt)
    if options.noise_out is not None:
        xo = np.asarray(options.noise_out, dtype=np.float64)
        if xo.shape != (T, B, spec.n_out) or not np.isfinite(xo).all():
            raise ValueError(f"noise_out: expected finite array of shape {(T, B, spec.n_out)}")
        ns["xio"] = timed(_tile_rows(xo, rows, noisy_only=True), dt)


def _dense(net: RateNetwork, key: str, ends: tuple[str, str], model: tuple[str, str], W,
           **kw) -> Any:  # fmt: skip
    """Block-diagonal synapses ``bp_{key}`` between the groups ``ends``; model: (equations,
    weight variable), the weight variable set to W in every block."""
    from brian2 import Synapses

    src, dst = net[ends[0]], net[ends[1]]
    syn = Synapses(src, dst, model[0], namespace=net.ns, name=f"bp_{key}", **kw)
    block_connect(syn, src.N // net.rows.S, dst.N // net.rows.S, np.arange(net.rows.S))
    setattr(syn, model[1], np.tile(np.asarray(W, dtype=np.float64).ravel(), net.rows.S))
    return net.add(key, syn)


def _inputs(net: RateNetwork) -> None:
    from brian2 import NeuronGroup, linked_var

    S, n_in, D_in = net.rows.S, net.spec.n_in, net.params.get("D_in")
    inp = net.add("inp", NeuronGroup(S * n_in, eq.INPUT_UNITS, order=5, namespace=net.ns,
                                     name="bp_inp"))  # fmt: skip
    if D_in is None:
        inp.run_regularly(eq.INPUT_CODE, when="groups", order=5, name="bp_inp_u")
        return
    raw = net.add("raw", NeuronGroup(S * n_in, eq.RAW_INPUT_UNITS, order=3, namespace=net.ns,
                                     name="bp_raw"))  # fmt: skip
    raw.cl = np.repeat(net.rows.counted, n_in)
    raw.yl = linked_var(inp, "uhat")
    raw.run_regularly(eq.RAW_INPUT_CODE, when="groups", order=3, name="bp_raw_u")
    model, stats = eq.lateral_synapses(net.spec, "input")
    lat = _dense(net, "lat_in", ("raw", "inp"), (model, "d"), D_in, order=6)
    lat.run_regularly(stats, when="groups", order=6, name="bp_lat_in_stats")


def _hidden(net: RateNetwork, plastic: Plasticity) -> None:
    spec, rows, options = net.spec, net.rows, net.setup.options
    gaussian = net.setup.sigma > 0 and plastic.kicks is None
    kind = "none" if not gaussian else ("external" if options.noise is not None else "intrinsic")
    extra = (*eq.HIDDEN_VARIABLES,
             *(("yl : 1 (linked)",) if net.params.get("D_rec") is not None else ()),
             *plastic.hid)  # fmt: skip
    hid = hidden_units(spec, rows.S * spec.n_rec, kind, net.ns, drive="summed", gated=True,
                       extra=extra, order=10, name="bp_hid")  # fmt: skip
    net.add("hid", hid)
    hid.noisy = np.repeat(rows.noisy, spec.n_rec)
    hid.cl = np.repeat(rows.counted, spec.n_rec)
    if plastic.kicks is not None:
        code = ("x += kick_ext(t, i)" if options.noise is not None else
                "x += kick_amp*(2*rand() - 1)*int(rand() < p_kick)")  # fmt: skip
        hid.run_regularly(code, when="groups", order=11, name="bp_kicks")


def _rates(net: RateNetwork) -> None:
    from brian2 import NeuronGroup, linked_var

    spec, S, N, D_rec = net.spec, net.rows.S, net.spec.n_rec, net.params.get("D_rec")
    units = eq.RATE_UNITS + ("" if D_rec is not None else "\nx_h : 1 (linked)")
    rat = net.add("rat", NeuronGroup(S * N, units, order=20, namespace=net.ns, name="bp_rat"))
    r0 = eq.PHI_NUMPY[spec.nonlinearity](np.zeros(N))  # r̂_{−1} = D_rec φ(0)
    rat.rhat = np.tile(r0 if D_rec is None else np.asarray(D_rec, dtype=np.float64) @ r0, S)
    rat.run_regularly(eq.RATE_PREVIOUS_CODE, when="groups", order=18, name="bp_rat_prev")
    if D_rec is None:
        rat.x_h = linked_var(net["hid"], "x")
        rat.run_regularly(eq.rate_code(spec), when="groups", order=20, name="bp_rat_phi")
        return
    net["hid"].yl = linked_var(rat, "rhat")
    model, stats = eq.lateral_synapses(spec, "rec")
    lat = _dense(net, "lat_rec", ("hid", "rat"), (model, "d"), D_rec, order=21)
    lat.run_regularly(stats, when="groups", order=21, name="bp_lat_rec_stats")


def _readout(net: RateNetwork, plastic: Plasticity) -> None:
    from brian2 import NeuronGroup

    S, n_out, given = net.rows.S, net.spec.n_out, net.setup.options.noise_out is not None
    kind = "none" if not net.setup.sigma > 0 else ("external" if given else "intrinsic")
    out = net.add("out", NeuronGroup(S * n_out, "\n".join((*eq.READOUT_VARIABLES, *plastic.out)),
                                     order=30, namespace=net.ns, name="bp_out"))  # fmt: skip
    out.noisy = np.repeat(net.rows.noisy, n_out)
    out.cl = np.repeat(net.rows.counted, n_out)
    out.run_regularly(eq.readout_code(kind), when="groups", order=31, name="bp_out_o")


def _modulator(net: RateNetwork, plastic: Plasticity) -> None:
    from brian2 import NeuronGroup, Synapses

    rows, ns = net.rows, net.ns
    mod = net.add("mod", NeuronGroup(rows.B, "\n".join((*eq.MODULATOR_VARIABLES, *plastic.mod)),
                                     order=40, namespace=ns, name="bp_mod"))  # fmt: skip
    model = eq.LOSS_MODEL + (eq.NU_OUT_MODEL if plastic.normalise else "")
    loss = net.add("loss", Synapses(net["out"], mod, model, namespace=ns, name="bp_loss"))
    loss.connect(i=np.arange(rows.S * net.spec.n_out), j=np.repeat(rows.network, net.spec.n_out))
    if plastic.normalise:
        nu = net.add("nu", Synapses(net["hid"], mod, eq.NU_HID_MODEL, namespace=ns, name="bp_nu"))
        nu.connect(i=np.arange(rows.S * net.spec.n_rec), j=np.repeat(rows.network, net.spec.n_rec))
    code = eq.modulator_code(plastic.mod_code, plastic.normalise)
    mod.run_regularly(code, when="groups", order=40, name="bp_mod_code")
