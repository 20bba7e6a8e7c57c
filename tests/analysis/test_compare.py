"""`bioplaus compare RUN_A RUN_B --out DIR`: the full report on two tiny runs, bad input."""

from __future__ import annotations

import json
import shutil

import pytest

import bioplaus as bp
from bioplaus.cli import main

PROTOCOL = """
name = "cmp_tiny"
seed = {seed}
[model]
n_in = 10
n_rec = {n_rec}
n_out = 10
tau = 1.0
dt = 1.0
sigma = 1e-2
decorrelate_rec = {decor}
[task]
name = "copy"
length = {length}
delay = 1
[rule]
name = "{rule}"
[train]
steps = 4
eval_every = 2
batch_size = 4
eval_batch = 4
lr = 1e-2
lr_decor = {lr_decor}
"""


def make_run(tmp_path, name, rule="anp", decor=False, n_rec=12, length=3, seed=0):
    f = tmp_path / f"{name}.toml"
    f.write_text(
        PROTOCOL.format(
            rule=rule,
            decor=str(decor).lower(),
            lr_decor=1e-3 if decor else 0.0,
            n_rec=n_rec,
            length=length,
            seed=seed,
        )
    )
    return bp.run(f, out=tmp_path / name, progress=False).out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    a = make_run(tmp, "danp", rule="anp", decor=True)
    b = make_run(tmp, "bptt", rule="bptt", n_rec=16, seed=1)  # sizes may differ
    return tmp, a, b


def test_compare_report(two_runs, capsys):
    tmp, a, b = two_runs
    out = tmp / "report"
    rc = main(
        [
            "compare",
            str(a),
            str(b),
            "--out",
            str(out),
            "--alignment",
            "--trials",
            "4",
            "--fixed-points",
            "8",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    for f in (
        "learning_curves.png",
        "outputs.png",
        "pca.png",
        "fixed_points.png",
        "spectra.png",
        "alignment.png",
        "report.md",
        "compare.json",
    ):
        assert (out / f).is_file(), f
    res = json.loads((out / "compare.json").read_text())
    s = res["similarity"]
    assert 0.0 <= s["cka_final"] <= 1.0 + 1e-9
    assert 0.0 <= s["procrustes_final"] <= 1.5708
    assert 1.0 <= res["dimensionality"]["pr_A"] <= 12
    assert set(res["alignment"]) == {"A"}  # BPTT is not compared with itself
    assert -1 <= res["alignment"]["A"]["final"]["cos_of_mean"] <= 1
    md = (out / "report.md").read_text()
    assert "CKA" in md and "Procrustes" in md and "![PCA](pca.png)" in md
    # a network against itself: identical dynamics
    out2 = tmp / "self"
    assert (
        main(
            ["compare", str(a), str(a), "--out", str(out2), "--trials", "4", "--fixed-points", "4"]
        )
        == 0
    )
    s2 = json.loads((out2 / "compare.json").read_text())["similarity"]
    assert s2["cka_final"] == pytest.approx(1.0, abs=1e-9)
    assert s2["procrustes_final"] == pytest.approx(0.0, abs=1e-5)


def test_compare_bad_input_one_line_nothing_written(two_runs, capsys):
    tmp, a, b = two_runs
    other = make_run(tmp, "other_task", length=4)
    cases = [
        ([str(a), str(other)], "task.length"),
        ([str(a), str(tmp / "nope")], "not a run directory"),
        ([str(a), str(b), str(a)], "two runs"),
    ]
    broken = tmp / "broken"
    shutil.copytree(a, broken)
    (broken / "params_final.npz").unlink()
    cases.append(([str(a), str(broken)], "params_final.npz"))
    for runs, needle in cases:
        out = tmp / "bad_out"
        assert main(["compare", *runs, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
        assert not out.exists()
