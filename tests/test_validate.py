"""bioplaus.validate: every cross-field problem is one line, exit 2, nothing written (issue 17).

Each case of the issue's list runs through the CLI in-process (``cli.main``), so the test
covers the whole path: protocol → validation → run folder.
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

from bioplaus import cli, validate
from bioplaus.tomlwrite import dumps

BASE = {
    "name": "val",
    "seed": 0,
    "model": {"n_in": 10, "n_rec": 12, "n_out": 10, "tau": 1.0, "dt": 1.0, "sigma": 0.001},
    "task": {"name": "copy", "length": 3, "delay": 1},
    "rule": {"name": "anp"},
    "train": {"steps": 2, "batch_size": 2, "lr": 0.01, "eval_every": 1, "eval_batch": 2},
}
LIF = {"kind": "lif", "n_in": 10, "n_rec": 12, "n_out": 10}
MLP = {"kind": "mlp", "sizes": [64, 8, 10]}
DIGITS = {"name": "digits", "n_test": 50, "_replace": 1}
INF, NAN = float("inf"), float("nan")


def patched(**sections):
    d = copy.deepcopy(BASE)
    for sec, val in sections.items():
        val = copy.deepcopy(val)
        if sec in ("model", "task", "rule") and isinstance(val, dict) and val.pop("_replace", 0):
            d[sec] = val
        elif isinstance(val, dict):
            d[sec] = {**d.get(sec, {}), **val}
        else:
            d[sec] = val
    return d


# (id, protocol, needle in the one line)
CASES = [
    # checked too late before issue 17
    ("model sigma 0 with anp", patched(model={"sigma": 0.0}), "model.sigma"),
    ("model sigma 0 with np", patched(model={"sigma": 0.0}, rule={"name": "np"}), "sigma > 0"),
    ("wp sigma 0", patched(model={"sigma": 0.0}, rule={"name": "wp"}), "model.sigma"),
    (
        "three-factor gaussian sigma 0",
        patched(model={"sigma": 0.0}, rule={"name": "three-factor"}),
        "sigma",
    ),
    (
        "noise_access own on rate",
        patched(rule={"name": "np", "baseline": "noisy", "noise_access": "own"}),
        "rule.noise_access",
    ),
    (
        "three-factor on mlp",
        patched(model={**MLP, "_replace": 1}, task=DIGITS, rule={"name": "three-factor"}),
        "rule.name",
    ),
    (
        "tbptt on mlp",
        patched(model={**MLP, "_replace": 1}, task=DIGITS, rule={"name": "tbptt"}),
        "rule.name",
    ),
    (
        "mlp on a sequence task",
        patched(model={"kind": "mlp", "sizes": [10, 8, 10], "output": "linear_mse", "_replace": 1}),
        "sequence task",
    ),
    (
        "lif noisy baseline",
        patched(model={**LIF, "_replace": 1}, rule={"name": "anp", "baseline": "noisy"}),
        "rule.baseline",
    ),
    ("lif wp", patched(model={**LIF, "_replace": 1}, rule={"name": "wp"}), "rule.name"),
    ("lif inp", patched(model={**LIF, "_replace": 1}, rule={"name": "inp"}), "rule.name"),
    ("device foo", patched(train={"device": "foo"}), "train.device"),
    ("device meta", patched(train={"device": "meta"}), "train.device"),
    ("device empty", patched(train={"device": ""}), "train.device"),
    ("scale nan", patched(rule={"scale": NAN}), "rule.scale"),
    ("scale 0", patched(rule={"scale": 0.0}), "rule.scale"),
    ("scale negative", patched(rule={"scale": -2.0}), "rule.scale"),
    ("scale inf", patched(rule={"scale": INF}), "rule.scale"),
    ("rec_gain inf", patched(model={"rec_gain": INF}), "model.rec_gain"),
    ("tau_m inf", patched(model={**LIF, "tau_m": INF, "_replace": 1}), "model.tau_m"),
    ("lr 1e300", patched(train={"lr": 1e300}), "train.lr"),
    # sizes nobody can run (the machine is given 24 GiB)
    ("n_rec 200000", patched(model={"n_rec": 200000}), "needs ≈ 298 GiB for W_rec"),
    ("batch 1e9", patched(train={"batch_size": 10**9}), "needs ≈"),
    ("length 1e9", patched(task={"length": 10**9}), "needs ≈"),
    ("K 1e9", patched(rule={"K": 10**9}), "needs ≈"),
    ("threads 100000", patched(train={"threads": 100000}), "thread stacks"),
    # nonsense accepted before issue 17
    ("tau inf", patched(model={"tau": INF}), "model.tau"),
    ("tau nan", patched(model={"tau": NAN}), "model.tau"),
    ("lif v_rest nan", patched(model={**LIF, "v_rest": NAN, "_replace": 1}), "model.v_rest"),
    ("lif theta inf", patched(model={**LIF, "theta": INF, "_replace": 1}), "model.theta"),
    ("lif v_reset -inf", patched(model={**LIF, "v_reset": -INF, "_replace": 1}), "v_reset"),
    ("lif bias_current inf", patched(model={**LIF, "bias_current": INF, "_replace": 1}), "bias"),
    ("lif sigma_v inf", patched(model={**LIF, "sigma_v": INF, "_replace": 1}), "sigma_v"),
    ("lif v_reset >= theta", patched(model={**LIF, "v_reset": 1.0, "_replace": 1}), "v_reset"),
    ("lif dt > tau_s", patched(model={**LIF, "dt": 0.02, "_replace": 1}), "tau_s"),
    ("tau_e inf", patched(rule={"name": "three-factor", "tau_e": INF}), "rule.tau_e"),
    ("tau_b inf", patched(rule={"name": "three-factor", "tau_b": INF}), "rule.tau_b"),
    ("tau_r inf", patched(rule={"name": "three-factor", "tau_r": INF}), "rule.tau_r"),
    ("kick_rate inf", patched(rule={"name": "three-factor", "kick_rate": INF}), "kick_rate"),
    ("supralinear inf", patched(rule={"name": "three-factor", "supralinear": INF}), "supra"),
    ("lr inf", patched(train={"lr": INF}), "train.lr"),
    ("lr nan", patched(train={"lr": NAN}), "train.lr"),
    ("max_abs_weight nan", patched(train={"max_abs_weight": NAN}), "max_abs_weight"),
    ("grad_clip inf", patched(train={"grad_clip": INF}), "grad_clip"),
    ("momentum nan", patched(train={"momentum": NAN}), "momentum"),
    ("threads true", patched(train={"threads": True}), "train.threads"),
]


#: every test here sees a machine of 24 GiB (conftest.machine_of_24_gib)
pytestmark = pytest.mark.usefixtures("machine_of_24_gib")


@pytest.mark.parametrize("proto,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_protocol_one_line_exit_2_nothing_written(tmp_path, capsys, proto, needle):
    p = tmp_path / "p.toml"
    p.write_text(dumps(proto))
    out = tmp_path / "run"
    rc = cli.main(["run", str(p), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert str(p) in lines[0]
    assert not out.exists()


def test_memory_message_names_the_machine(monkeypatch):
    from bioplaus.protocol import protocol_from_dict

    spec = protocol_from_dict(patched(model={"n_rec": 200000}))
    with pytest.raises(validate.SpecError) as e:
        validate.check_memory(spec)
    assert str(e.value) == (
        "sizes: needs ≈ 298 GiB for W_rec, this machine has 24 GiB (reduce model.n_rec)"
    )
    monkeypatch.setenv("BIOPLAUS_MEMORY_GIB", "400")
    validate.check_memory(spec)  # fits a bigger machine


def test_machine_memory_reads_proc_meminfo(monkeypatch):
    monkeypatch.delenv("BIOPLAUS_MEMORY_GIB")
    have = validate.machine_memory()
    assert have is not None and have > 2**28


def test_valid_edge_cases_still_run(tmp_path):
    """What the checks must not refuse: three-factor with kicks and σ = 0, inf-free LIF at
    dt = tau, a numeric ANP scale, float64."""
    import bioplaus as bp

    ok = [
        patched(model={"sigma": 0.0}, rule={"name": "three-factor", "noise": "kicks"}),
        patched(model={"sigma": 0.0}, rule={"name": "anp", "sigma": 0.01}),
        patched(rule={"scale": 3.5}),
        patched(train={"dtype": "float64", "lr": 1e300}),
        patched(model={**LIF, "dt": 0.01, "tau_s": 0.01, "t_ref": 0.0, "_replace": 1}),
        patched(model={"sigma": 0.0}, rule={"name": "bptt"}),
    ]
    for i, proto in enumerate(ok):
        res = bp.run(proto, out=tmp_path / f"r{i}", progress=False)
        assert res.status in ("completed", "diverged"), i


def test_section_typo_names_the_closest_section(tmp_path, capsys):
    d = copy.deepcopy(BASE)
    d["trian"] = d.pop("train")
    p = tmp_path / "p.toml"
    p.write_text(dumps(d))
    assert cli.main(["run", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "[trian]: unknown section (did you mean [train]?)" in err and "\n" not in err


def test_missing_file_did_you_mean(tmp_path, capsys):
    (tmp_path / "copy_anp.toml").write_text(dumps(BASE))
    assert cli.main(["run", str(tmp_path / "copy_anpp.toml")]) == 2
    err = capsys.readouterr().err
    assert "file not found (did you mean" in err and "copy_anp.toml" in err
    d = copy.deepcopy(BASE)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "rate.toml").write_text(dumps({"model": BASE["model"]}))
    d["model"] = "models/rtae.toml"
    (tmp_path / "p.toml").write_text(dumps(d))
    assert cli.main(["run", str(tmp_path / "p.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "rtae.toml: file not found (did you mean" in err and "rate.toml" in err


@pytest.mark.parametrize("kind", ["file", "under a file", "unwritable"])
def test_out_that_cannot_be_created(tmp_path, capsys, kind):
    p = tmp_path / "p.toml"
    p.write_text(dumps(BASE))
    f = tmp_path / "f"
    f.write_text("x")
    if kind == "file":
        out = f
    elif kind == "under a file":
        out = f / "run"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "run"
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0], err
    assert f.read_text() == "x"


def test_run_into_a_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    p = tmp_path / "p.toml"
    p.write_text(dumps(BASE))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.csv").write_text("my,own\n1,2\n")
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 2
    assert "holds no run" in capsys.readouterr().err
    assert (out / "metrics.csv").read_text() == "my,own\n1,2\n"
    assert sorted(x.name for x in out.iterdir()) == ["metrics.csv"]


def test_cuda_without_cuda_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    p = tmp_path / "p.toml"
    p.write_text(dumps(patched(train={"device": "cuda"})))
    assert cli.main(["run", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    with pytest.raises(ValueError, match="device"):
        validate.check_device("cuda")
    validate.check_device("cpu")


# -- sweeps ------------------------------------------------------------------------------------
SWEEP_BAD = [
    ("threads = true\n", "threads"),
    ('[plot]\nx = "train.lr"\ncolour = "red"\n', "plot.colour"),
    ('name = "../../escaped"\n', "name"),
    ('name = "a/b"\n', "name"),
    ('name = ".."\n', "name"),
]


@pytest.mark.parametrize(
    "extra,needle", SWEEP_BAD, ids=[s[1] + str(i) for i, s in enumerate(SWEEP_BAD)]
)
def test_bad_sweep_file(tmp_path, capsys, monkeypatch, extra, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.toml").write_text(dumps(BASE))
    s = tmp_path / "s.toml"
    s.write_text(f'protocol = "p.toml"\n{extra}[grid]\n"train.lr" = [0.01, 0.02]\n')
    assert cli.main(["sweep", str(s), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "escaped").exists()


def test_sweep_point_with_truncated_config_is_one_line(tmp_path, capsys):
    (tmp_path / "p.toml").write_text(dumps(BASE))
    s = tmp_path / "s.toml"
    s.write_text('protocol = "p.toml"\n[grid]\n"train.lr" = [0.01]\n')
    out = tmp_path / "sw"
    pt = out / "points" / "train.lr=0.01"
    pt.mkdir(parents=True)
    (pt / "config.json").write_text('{"protocol": {"name"')
    assert cli.main(["sweep", str(s), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json is damaged" in err[0], err


# -- provenance ----------------------------------------------------------------------------------
def test_config_records_versions_git_and_threads(tmp_path):
    import bioplaus as bp

    res = bp.run(patched(train={"threads": 1}), out=tmp_path / "r", progress=False)
    cfg = json.loads((res.out / "config.json").read_text())
    v = cfg["versions"]
    assert v["pydantic"] and "brian2" in v
    assert cfg["torch_threads"] == 1
    if "git_commit" in v:  # run from a checkout (as the suite is)
        assert len(v["git_commit"]) == 40 and isinstance(v["git_dirty"], bool)


def test_estimate_memory_grows_with_sizes():
    from bioplaus.protocol import protocol_from_dict

    small = validate.estimate_memory(protocol_from_dict(BASE))[0]
    big = validate.estimate_memory(protocol_from_dict(patched(model={"n_rec": 1200})))[0]
    assert 0 < small < big
    assert big >= 1200**2 * 4 * 2  # at least W_rec and its estimate
    assert np.isfinite(small)


@pytest.mark.slow
def test_thread_count_changes_results_at_rounding_level(tmp_path):
    """docs/reliability.md, "Threads and determinism": 50 ANP updates of a 256-unit rate RNN
    with 1 and 2 torch threads differ at rounding level only (prints the differences)."""
    import bioplaus as bp

    proto = patched(
        model={"n_rec": 256},
        task={"length": 10, "delay": 5},
        train={"steps": 50, "batch_size": 32, "eval_every": 50, "eval_batch": 8},
    )
    for dtype, bound in (("float64", 1e-12), ("float32", 1e-4)):
        res = {}
        for t in (1, 2):
            p = {**proto, "train": {**proto["train"], "threads": t, "dtype": dtype}}
            res[t] = bp.run(p, out=tmp_path / f"{dtype}-{t}", progress=False).params
        diff = max(float(np.max(np.abs(res[1][k] - res[2][k]))) for k in res[1])
        print(f"{dtype}: max |W(threads=1) - W(threads=2)| = {diff:.2g}")
        assert diff < bound


def test_sweep_and_compare_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "p.toml").write_text(dumps(BASE))
    s = tmp_path / "s.toml"
    s.write_text('protocol = "p.toml"\n[grid]\n"train.lr" = [0.01]\n')
    f = tmp_path / "f"
    f.write_text("x")
    assert cli.main(["sweep", str(s), "--out", str(f), "--quiet"]) == 2
    assert f"--out: {f} is a file" in capsys.readouterr().err
    import bioplaus as bp

    bp.run(BASE, out=tmp_path / "a", progress=False)
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(f)]) == 2
    assert f"--out: {f} is a file" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path / "a"), "--out", str(f / "x.png")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert f.read_text() == "x"


def test_every_bundled_protocol_and_model_still_validates():
    """The checks refuse nothing the project ships (valid edge cases keep working)."""
    import tomllib
    from pathlib import Path

    from bioplaus.protocol import load_protocol
    from bioplaus.runs import build_task
    from bioplaus.spec import load_model

    root = Path(__file__).resolve().parent.parent
    n = 0
    for p in sorted((root / "protocols").rglob("*.toml")) + sorted(
        (root / "models").glob("*.toml")
    ):
        data = tomllib.loads(p.read_text())
        if "protocol" in data and "model" not in data:  # a sweep: its first and last points
            from bioplaus.sweep import load_sweep

            sw = load_sweep(p)
            for pt in (sw.points[0], sw.points[-1]):
                build_task(load_protocol(sw.protocol, list(pt.overrides)), str(p))
        elif "rule" in data:
            build_task(load_protocol(p), str(p))
        else:
            load_model(p)
        n += 1
    assert n > 50


@pytest.mark.parametrize(
    ("rule", "traced"),
    [
        ({"name": "anp"}, False),
        ({"name": "anp", "signal": "trace", "trace_decay": 0.9}, True),
        ({"name": "rtg-np"}, True),  # its default signal is reward-to-go
        ({"name": "wp"}, False),
        ({"name": "wp", "signal": "trial"}, True),
        ({"name": "bptt"}, False),
    ],
)
def test_memory_counts_per_sample_traces_where_the_rule_keeps_them(rule, traced):
    """The estimate asks the rule's options (``per_sample_traces``), not the rule's name:
    a trace E [B·K, N, n_in + N + 1] per perturbed sample is counted for every credit
    signal but the local one."""
    from bioplaus.protocol import protocol_from_dict
    from bioplaus.registry import network_type

    p = protocol_from_dict(patched(rule=rule))
    assert p.rule.per_sample_traces is traced
    m = p.model
    mem = network_type(m.kind).memory(
        m, p.rule, batch=8, steps=50, rows=16, item=8, gradient=p.rule.is_gradient
    )
    expected = 8 * 1 * m.n_rec * (m.n_in + m.n_rec + 1) * 8 if traced else 0
    assert mem.parts["traces"] == expected
