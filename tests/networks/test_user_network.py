"""A user's network type, defined in this module, runs end to end like a built-in one.

The type ``leaky`` is a leaky linear RNN with a spec class of its own::

    h_t = (1 − λ) h_{t−1} + λ (W_rec h_{t−1} + W_in u_t) + σ √λ ξ_t,   o_t = W_out h_t

(the rate network with φ(x) = x and α = λ, which the tests check it against). It brings its
spec class (``spec=LeakySpec``), its own ``init_params``, ``check_params``, ``simulate``
(a numpy loop), ``estimate`` (autograd through a torch loop, for the gradient rule
``leaky-grad`` registered here), a memory estimate and an option limit, and reuses the
rate type's trainer hooks (the rate equation with a linear φ). It is read from a dict or a
TOML file by ``bp.load_model`` / ``spec_from_dict``, named in a protocol's ``[model]``
table, and trained by ``bp.run``; a protocol that names it loads it with ``plugins``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field

import bioplaus as bp
from bioplaus.loss import mean_loss
from bioplaus.protocol import protocol_from_dict
from bioplaus.registry import NETWORK_TYPES, RULES, Memory
from bioplaus.spec import SpecError, spec_from_dict
from bioplaus.validate import check_shapes

KIND = "leaky"


class LeakySpec(BaseModel):
    """The leaky linear RNN's model table."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    kind: Literal["leaky"] = Field("leaky", description="Model family tag.")
    n_in: int = Field(gt=0, description="Number of input channels.")
    n_rec: int = Field(gt=0, description="Number of hidden units N.")
    n_out: int = Field(gt=0, description="Number of linear readout units.")
    leak: float = Field(0.5, gt=0, le=1, description="Leak λ per step (α of the rate RNN).")
    sigma: float = Field(0.0, ge=0, description="Noise amplitude σ on h per step (σ√λ ξ).")
    dt: float = Field(0.01, gt=0, description="Step dt, seconds (the time axis of exports).")

    # what the rate type's trainer hooks read of a spec (consts_of: α, σ, φ)
    @property
    def alpha(self) -> float:
        return self.leak

    @property
    def nonlinearity(self) -> str:
        return "linear"


def leaky_init(spec: LeakySpec, seed: int = 0) -> dict[str, np.ndarray]:
    """W_in [N, n_in] std 1/√n_in, W_rec [N, N] std 0.5/√N, W_out [n_out, N] std 1/√N."""
    rng = np.random.default_rng(seed)
    N = spec.n_rec
    return {
        "W_in": rng.standard_normal((N, spec.n_in)) / np.sqrt(spec.n_in),
        "W_rec": 0.5 * rng.standard_normal((N, N)) / np.sqrt(N),
        "W_out": rng.standard_normal((spec.n_out, N)) / np.sqrt(N),
    }


def leaky_check(spec: LeakySpec, params: dict) -> None:
    N = spec.n_rec
    shapes = {"W_in": (N, spec.n_in), "W_rec": (N, N), "W_out": (spec.n_out, N)}
    check_shapes(params, shapes, tuple(shapes))


def leaky_simulate(spec, inputs, params, backend, noise, seed, x0, device, dtype, **options):
    """h [T, B, N] by a float64 numpy loop (the torch back-end's place; no other back-end)."""
    if backend != "torch":
        raise SpecError(f"backend: the leaky type simulates on 'torch' only (got {backend!r})")
    T, B, _ = inputs.shape
    lam, N = spec.leak, spec.n_rec
    if noise is None:
        noise = np.random.default_rng(seed).standard_normal((T, B, N))
    h = np.zeros((B, N)) if x0 is None else np.asarray(x0, dtype=np.float64)
    out = np.empty((T, B, N))
    for t in range(T):
        drive = h @ params["W_rec"].T + inputs[t] @ params["W_in"].T
        h = (1 - lam) * h + lam * drive + spec.sigma * np.sqrt(lam) * noise[t]
        out[t] = h
    return out


def leaky_estimate(rs, spec, params, inputs, targets, seed, mask, loss, device, dtype):
    """∂L/∂W of L = mean_loss(o, y, mask) by autograd through a torch loop (σ = 0)."""
    if not rs.is_gradient:
        raise SpecError(f"rule: the leaky type has only gradient rules (got {rs.name!r})")
    w = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
    u = torch.as_tensor(np.asarray(inputs), dtype=dtype)
    y = torch.as_tensor(np.asarray(targets), dtype=dtype)
    m = None if mask is None else torch.as_tensor(np.asarray(mask), dtype=dtype)
    h = torch.zeros(u.shape[1], spec.n_rec, dtype=dtype)
    outs = []
    for t in range(u.shape[0]):
        h = (1 - spec.leak) * h + spec.leak * (h @ w["W_rec"].T + u[t] @ w["W_in"].T)
        outs.append(h @ w["W_out"].T)
    mean_loss(loss or "mse", torch.stack(outs), y, m).backward()
    return {k: v.grad.double().numpy() for k, v in w.items()}


def leaky_memory(m, rs, *, batch, steps, rows, item, gradient) -> Memory:
    """Weights N² + N n_in + n_out N; states rows·N per step (all of them kept for autograd)."""
    N = m.n_rec
    states = rows * N * item * (max(steps, 1) if gradient else 1)
    return Memory(N * N + N * m.n_in + m.n_out * N, {"states": states}, "W_rec", "model.n_rec")


class LeakyGradOptions(bp.RuleSpec):
    """The exact gradient of the leaky type (its ``estimate``; the rate hooks' BPTT in a run)."""

    name: Literal["leaky-grad"] = Field("leaky-grad", description="leaky-grad: exact gradient.")
    window: int | None = Field(
        None, ge=1, description="Truncation window (the leaky type trains with None only)."
    )


@pytest.fixture(scope="module")
def leaky():
    """Register the type and its rule from this module (what a plug-in module does on import),
    and remove both after the module's tests."""
    from bioplaus.networks.rate import HOOKS

    nt = bp.register_network(
        KIND,
        spec=LeakySpec,
        init_params=leaky_init,
        check_params=leaky_check,
        estimate=leaky_estimate,
        simulate=leaky_simulate,
        hooks=HOOKS,  # the rate equation with φ(x) = x, α = λ
        state="h",
        reference="leaky-grad",
        memory=leaky_memory,
        option_limits=(("window", (None,), "the leaky type trains with full BPTT only"),),
        summary="leaky linear RNN (a test's type)",
    )
    bp.register_rule("leaky-grad", options=LeakyGradOptions, build=None, mechanism="gradient",
                     networks=(KIND,))  # fmt: skip
    yield nt
    RULES.remove("leaky-grad")
    NETWORK_TYPES.remove(KIND)


MODEL = {"kind": KIND, "n_in": 10, "n_rec": 12, "n_out": 10, "leak": 0.5}
PROTOCOL = {
    "name": "leaky_copy",
    "seed": 0,
    "plugins": [__name__],  # this module, by name (already imported: nothing runs twice)
    "model": MODEL,
    "task": {"name": "copy", "length": 3, "delay": 1},
    "rule": {"name": "leaky-grad", "alignment": True},
    "train": {"steps": 4, "batch_size": 4, "lr": 0.05, "eval_every": 2, "eval_batch": 4},
}


def _rate_twin(spec: LeakySpec) -> bp.RateSpec:
    """The rate RNN the leaky type is: φ(x) = x, α = dt/τ = λ, σ = 0."""
    return bp.RateSpec(n_in=spec.n_in, n_rec=spec.n_rec, n_out=spec.n_out, tau=0.02, dt=0.01,
                       sigma=0.0, nonlinearity="linear")  # fmt: skip


def test_register_network_checks_the_spec_class(leaky):
    assert bp.network_type(KIND).spec is LeakySpec
    with pytest.raises(TypeError, match="spec: must be a pydantic model class"):
        bp.register_network("x2", spec=dict, init_params=leaky_init, check_params=leaky_check,
                            estimate=leaky_estimate)  # fmt: skip
    with pytest.raises(TypeError, match=r"spec: LeakySpec.kind does not take 'x2'"):
        bp.register_network("x2", spec=LeakySpec, init_params=leaky_init,
                            check_params=leaky_check, estimate=leaky_estimate)  # fmt: skip
    assert "x2" not in NETWORK_TYPES


def test_the_spec_is_read_by_kind_from_a_dict_or_a_toml_file(leaky, tmp_path):
    spec = spec_from_dict(MODEL)
    assert isinstance(spec, LeakySpec) and spec.n_rec == 12 and spec.leak == 0.5
    path = tmp_path / "leaky.toml"
    path.write_text('[model]\nkind = "leaky"\nn_in = 2\nn_rec = 5\nn_out = 1\nleak = 0.25\n')
    assert bp.load_model(path) == LeakySpec(n_in=2, n_rec=5, n_out=1, leak=0.25)
    # the spec's own validation, one line naming file and key
    path.write_text('kind = "leaky"\nn_in = 2\nn_rec = 5\nn_out = 1\nleak = 2.0\n')
    with pytest.raises(SpecError, match=rf"^{path}: leak: Input should be less than or equal"):
        bp.load_model(path)


def test_an_unknown_kind_names_the_known_ones(leaky, tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('kind = "leakyy"\nn_in = 2\n')
    with pytest.raises(SpecError) as err:
        bp.load_model(path)
    assert str(err.value) == (
        f"{path}: kind: unknown network type 'leakyy' (known: rate, lif, mlp, leaky; did you "
        "mean 'leaky'?)"
    )
    with pytest.raises(SpecError) as err:
        protocol_from_dict({**PROTOCOL, "model": {**MODEL, "kind": "rnn"}}, source="p.toml")
    assert str(err.value) == (
        "p.toml: model.kind: unknown network type 'rnn' (known: rate, lif, mlp, leaky)"
    )
    with pytest.raises(SpecError, match=r"^model\.kind: unknown network type \['x'\] \(known"):
        spec_from_dict({"kind": ["x"]}, prefix="model.")


def test_init_params_simulate_and_estimate_are_the_types(leaky):
    spec = spec_from_dict(MODEL)
    params = bp.init_params(spec, seed=3)
    want = leaky_init(spec, 3)
    assert params.keys() == want.keys() and all(np.array_equal(params[k], want[k]) for k in want)
    rng = np.random.default_rng(0)
    u = rng.standard_normal((6, 3, 10))
    y = rng.standard_normal((6, 3, 10))
    h = bp.simulate(spec, u, params=params)
    assert h.shape == (6, 3, 12) and h.dtype == np.float64
    # the same network as the rate RNN with φ(x) = x and α = λ, on the rate type's back-end
    twin = _rate_twin(spec)
    x = bp.simulate(twin, u, params=params, dtype="float64")
    np.testing.assert_allclose(h, x, rtol=1e-12, atol=1e-12)
    h0 = rng.standard_normal((3, 12))
    np.testing.assert_allclose(bp.simulate(spec, u, params=params, x0=h0),
                               bp.simulate(twin, u, params=params, x0=h0, dtype="float64"),
                               rtol=1e-12, atol=1e-12)  # fmt: skip
    g = bp.estimate("leaky-grad", spec, params, u, y, dtype="float64")
    ref = bp.estimate("bptt", twin, params, u, y, dtype="float64")
    assert g.keys() == ref.keys() == {"W_in", "W_rec", "W_out"}
    for k in g:
        np.testing.assert_allclose(g[k], ref[k], rtol=1e-10, atol=1e-12)


def test_the_api_checks_a_user_type_by_what_it_declares(leaky):
    spec = spec_from_dict(MODEL)
    u = np.zeros((4, 2, 10))
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'spikes' "
                       r"\(backend 'torch' takes no backend options\)"):  # fmt: skip
        bp.simulate(spec, u, spikes=True)
    with pytest.raises(SpecError, match=r"^x0 \(h0 of a LEAKY network\): expected shape"):
        bp.simulate(spec, u, x0=np.zeros((3, 12)))
    with pytest.raises(ValueError, match="params: W_rec has shape"):
        bp.simulate(spec, u, params={**leaky_init(spec), "W_rec": np.zeros((2, 2))})
    with pytest.raises(SpecError, match="rule 'bptt' does not run on a leaky model "
                       r"\(rules for leaky: leaky-grad\)"):  # fmt: skip
        bp.estimate("bptt", spec, leaky_init(spec), u, np.zeros((4, 2, 10)))
    with pytest.raises(SpecError, match=r"rule\.window: 3 on a leaky model: the leaky type"):
        bp.estimate("leaky-grad", spec, leaky_init(spec), u, np.zeros((4, 2, 10)), window=3)
    # a rate spec with kind "leaky" is not the leaky type's spec
    with pytest.raises(TypeError, match="spec: expected a model spec, got RateSpec"):
        bp.init_params(bp.RateSpec.model_construct(kind="leaky", n_in=1, n_rec=1, n_out=1))


def test_protocol_validation_uses_the_types_declarations(leaky, machine_of_24_gib):
    from bioplaus.runs.config import build_task

    p = protocol_from_dict(PROTOCOL, source="p.toml")
    assert isinstance(p.model, LeakySpec) and p.plugins == [__name__]
    dumped = p.model_dump(mode="json")["model"]
    assert dumped == {**MODEL, "sigma": 0.0, "dt": 0.01}
    assert protocol_from_dict(p.model_dump(mode="json")) == p  # what config.json holds
    big = {**PROTOCOL, "model": {**MODEL, "n_rec": 200_000}}
    with pytest.raises(SpecError) as err:
        build_task(protocol_from_dict(big, source="p.toml"), "p.toml")
    assert str(err.value) == (
        "p.toml: sizes: needs ≈ 298 GiB for W_rec, this machine has 24 GiB (reduce model.n_rec)"
    )
    with pytest.raises(SpecError, match=r"^p\.toml: rule\.window: 2 on a leaky model"):
        build_task(protocol_from_dict({**PROTOCOL, "rule": {"name": "leaky-grad", "window": 2}},
                                      source="p.toml"), "p.toml")  # fmt: skip


def test_bp_run_trains_it_from_a_protocol_dict(leaky, tmp_path):
    from bioplaus.random import child_seed, numpy_rng

    res = bp.run(PROTOCOL, out=tmp_path / "run", progress=False)
    assert res.status == "completed"
    assert set(res.params) == {"W_in", "W_rec", "W_out"}
    assert list(res.metrics["step"]) == [0, 2, 4]
    assert np.all(np.isfinite(res.metrics["eval_loss"]))
    assert {"align_hidden", "align_readout", "align_all"} <= set(res.metrics.columns)
    run = bp.load_run(tmp_path / "run")
    assert isinstance(run.protocol.model, LeakySpec) and run.status == "completed"
    # the run starts from the type's init_params, and its first evaluation is the loss of
    # the type's own equation (leaky_simulate) on the held-out batch
    spec = run.protocol.model
    p0 = leaky_init(spec, child_seed(0, "init_params"))
    batch = run.task.sample(4, numpy_rng(0, "task", "eval"), split="test")
    h = leaky_simulate(spec, batch.inputs, p0, "torch", None, 0, None, "cpu", "float64")
    mask = None if batch.mask is None else torch.as_tensor(batch.mask)
    want = mean_loss(run.task.loss, torch.as_tensor(h @ p0["W_out"].T),
                     torch.as_tensor(batch.targets), mask)  # fmt: skip
    assert res.metrics["eval_loss"].iloc[0] == pytest.approx(float(want), rel=1e-5)
    assert not np.allclose(res.params["W_rec"], p0["W_rec"])  # it trained


def test_a_protocol_file_loads_the_type_with_plugins(leaky, tmp_path):
    """``plugins`` are imported before ``[model]`` is read: a file that registers the type
    makes ``kind = "leaky"`` known (here the plug-in registers this module's entry again)."""
    plugin = tmp_path / "leaky_plugin.py"
    plugin.write_text(
        f"import bioplaus as bp\nimport {__name__} as t\nfrom bioplaus.networks.rate import HOOKS\n"
        "bp.register_network('leaky', spec=t.LeakySpec, init_params=t.leaky_init,\n"
        "    check_params=t.leaky_check, estimate=t.leaky_estimate, simulate=t.leaky_simulate,\n"
        "    hooks=HOOKS, state='h', memory=t.leaky_memory, replace=True)\n"
    )
    (tmp_path / "model.toml").write_text(
        '[model]\nkind = "leaky"\nn_in = 10\nn_rec = 8\nn_out = 10\n'
    )
    (tmp_path / "p.toml").write_text(
        'name = "leaky_file"\nplugins = ["leaky_plugin.py"]\nmodel = "model.toml"\n'
        '[task]\nname = "copy"\nlength = 3\ndelay = 1\n[rule]\nname = "leaky-grad"\n'
        "[train]\nsteps = 2\nbatch_size = 2\neval_every = 1\neval_batch = 2\n"
    )
    entry = NETWORK_TYPES.get(KIND)
    NETWORK_TYPES.remove(KIND)  # unknown until the plug-in registers it
    try:
        res = bp.run(tmp_path / "p.toml", out=tmp_path / "run", progress=False)
    finally:
        NETWORK_TYPES.add(KIND, entry, replace=True)
    assert res.status == "completed" and res.params["W_rec"].shape == (8, 8)
