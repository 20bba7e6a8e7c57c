"""NeuroGym environments as tasks (bioplaus/tasks/neurogym.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioplaus.cli import main
from bioplaus.spec import SpecError
from bioplaus.tasks import TASKS, make_task

ngym = pytest.importorskip(
    "neurogym", reason="neurogym not installed (pip install 'bioplaus[neurogym]')"
)

pytestmark = pytest.mark.filterwarnings("ignore:.*render_modes")

PDM = "neurogym:PerceptualDecisionMaking-v0"
DMS = "neurogym:DelayMatchSample-v0"
TIMING = {"fixation": 100, "stimulus": 200, "delay": 0, "decision": 100}
ROOT = Path(__file__).resolve().parents[2]


def test_batch_is_neurogyms_own_trials_time_major():
    task = make_task(PDM, dt=20, timing=TIMING, seed=3)
    assert (task.n_in, task.n_out, task.loss, task.metric) == (3, 3, "ce", "accuracy")
    b = task.sample(5, np.random.default_rng(0))
    T = 20  # (100 + 200 + 0 + 100) / 20
    assert b.inputs.shape == (T, 5, 3) and b.targets.shape == (T, 5, 3) and b.mask.shape == (T, 5)
    # the same trials straight from the env, seeded as the adapter seeds it
    seed = int(np.random.default_rng(0).integers(0, 2**31 - 1))
    env = ngym.make("PerceptualDecisionMaking-v0", dt=20, timing=TIMING).unwrapped
    env.seed(seed)
    for i in range(5):
        env.new_trial()
        np.testing.assert_array_equal(b.inputs[:, i], env.ob)
        np.testing.assert_array_equal(b.targets[:, i].argmax(-1), env.gt)
    assert (b.targets.sum(-1) == 1).all() and (b.mask == 1).all()  # score = "all"
    # decision period: the last 5 steps; trial type = the correct action (1 or 2)
    r = task.response_mask(b)
    assert (r[-5:] == 1).all() and (r[:-5] == 0).all()
    assert set(task.trial_type(b)) <= {1, 2}
    np.testing.assert_array_equal(task.trial_type(b), b.targets[-1].argmax(-1))


def test_seeded_from_the_generator_and_test_split_fixed():
    task = make_task(PDM, dt=20, timing=TIMING, seed=1)
    a = task.sample(8, np.random.default_rng(5))
    b = task.sample(8, np.random.default_rng(5))
    c = task.sample(8, np.random.default_rng(6))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)
    t1 = task.sample(8, np.random.default_rng(0), split="test")
    t2 = task.sample(8, np.random.default_rng(99), split="test")
    np.testing.assert_array_equal(t1.inputs, t2.inputs)
    other = make_task(PDM, dt=20, timing=TIMING, seed=2).sample(8, None, split="test")
    assert not np.array_equal(t1.inputs, other.inputs)


def test_accuracy_and_decision_scoring():
    task = make_task(DMS, dt=20, score="decision", loss="mse", seed=0)
    b = task.sample(16, np.random.default_rng(0))
    assert task.loss == "mse"
    # only the decision period is scored
    np.testing.assert_array_equal(b.mask, task.response_mask(b))
    assert 0 < b.mask.sum(0).min() < b.inputs.shape[0]
    perfect = task.metrics(b.targets, b)
    assert perfect["accuracy"] == 1.0 and perfect["mse"] == 0.0
    wrong = b.targets[..., [0, 2, 1]]  # match <-> non-match swapped
    assert task.metrics(wrong, b)["accuracy"] == 0.0


def test_variable_trial_lengths_pad_with_mask_zero():
    task = make_task("neurogym:ContextDecisionMaking-v0", seed=0)  # a random delay
    b = task.sample(16, np.random.default_rng(0))
    lengths = b.mask.sum(0)
    assert lengths.min() < lengths.max() == b.inputs.shape[0]
    pad = b.mask == 0
    assert (b.inputs[pad] == 0).all() and (b.targets[pad] == 0).all()
    out = task.metrics(b.targets * 10, b)
    assert out["accuracy"] == 1.0


def test_errors_are_one_line():
    with pytest.raises(SpecError, match=r"did you mean 'neurogym:PerceptualDecisionMaking-v0'"):
        TASKS["neurogym:PerceptualDecisionMakin-v0"]
    with pytest.raises(ValueError, match=r"unknown option 'dtt'.*'dt'"):
        make_task(PDM, dtt=20)
    with pytest.raises(ValueError, match="score must be one of"):
        make_task(PDM, score="some")
    assert PDM in TASKS and "neurogym:Nope-v0" in TASKS and TASKS.get("neurogym:Nope-v0") is None


def test_bad_env_name_in_protocol_exit_2(tmp_path, capsys):
    text = (ROOT / "protocols/neurogym/ng_pdm_bptt.toml").read_text()
    p = tmp_path / "bad.toml"
    p.write_text(text.replace("PerceptualDecisionMaking-v0", "PerceptualDecisionMakng-v0"))
    assert main(["run", str(p), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("protocol", ["ng_pdm_danp", "ng_dms_three_factor"])
def test_bioplaus_run_neurogym_protocol(tmp_path, protocol):
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            str(ROOT / "protocols" / "neurogym" / f"{protocol}.toml"),
            "--out",
            str(out),
            "--quiet",
            "--set",
            "train.steps=4",
            "--set",
            "train.eval_every=2",
            "--set",
            "train.eval_batch=8",
            "--set",
            "model.n_rec=16",
        ]
    )
    assert rc == 0
    m = pd.read_csv(out / "metrics.csv")
    assert list(m["step"]) == [0, 2, 4] and m["eval_accuracy"].between(0, 1).all()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["protocol"]["task"]["name"].startswith("neurogym:")
    # reproducible: the same protocol gives the same curve
    again = tmp_path / "again"
    main(
        [
            "run",
            str(ROOT / "protocols" / "neurogym" / f"{protocol}.toml"),
            "--out",
            str(again),
            "--quiet",
            "--set",
            "train.steps=4",
            "--set",
            "train.eval_every=2",
            "--set",
            "train.eval_batch=8",
            "--set",
            "model.n_rec=16",
        ]
    )
    pd.testing.assert_frame_equal(
        m.drop(columns="wall_time"), pd.read_csv(again / "metrics.csv").drop(columns="wall_time")
    )
