"""analysis/rule_league.py: the league's tables and figures, and its normalisation to BPTT."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def league():
    spec = importlib.util.spec_from_file_location(
        "rule_league", ROOT / "analysis" / "rule_league.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rule_league"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_normalised_scores_pairs_seeds_and_falls_back_to_the_mean(league):
    df = pd.DataFrame(
        {
            "rule": ["BPTT", "BPTT", "NP", "NP", "NP"],
            "task": ["t"] * 5,
            "seed": [0, 1, 0, 1, 2],
            "eval_loss_0": [1.0, 2.0, 1.0, 2.0, 3.0],
            "eval_loss": [0.2, 1.0, 0.6, 1.5, math.nan],
        }
    )
    out = league.normalised_scores(df)
    s = dict(zip(zip(out["rule"], out["seed"], strict=True), out["score"], strict=True))
    lin = dict(zip(zip(out["rule"], out["seed"], strict=True), out["score_linear"], strict=True))
    assert s[("BPTT", 0)] == pytest.approx(1.0) and s[("BPTT", 1)] == pytest.approx(1.0)
    assert s[("NP", 0)] == pytest.approx(math.log(1.0 / 0.6) / math.log(1.0 / 0.2))
    assert s[("NP", 1)] == pytest.approx(math.log(2.0 / 1.5) / math.log(2.0 / 1.0))
    assert lin[("NP", 0)] == pytest.approx((1.0 - 0.6) / (1.0 - 0.2))
    assert math.isnan(s[("NP", 2)])  # diverged
    # seed 2 has no BPTT run: the reference is BPTT's mean final loss (0.6)
    df.loc[4, "eval_loss"] = 1.8
    out = league.normalised_scores(df)
    assert out.loc[4, "score"] == pytest.approx(math.log(3.0 / 1.8) / math.log(3.0 / 0.6))


def test_best_lr_is_the_lowest_final_loss_and_diverged_counts_worst(league):
    sweep = pd.DataFrame(
        {
            "rule": ["A"] * 3 + ["B"] * 2,
            "task": ["t"] * 5,
            "lr": [1e-3, 1e-2, 1e-1, 1e-3, 1e-2],
            "eval_loss": [0.5, 0.3, math.nan, math.nan, math.nan],
        }
    )
    best = league.best_lrs(sweep)
    assert best[("A", "t")] == 1e-2
    assert best[("B", "t")] == 1e-3  # all diverged: the smallest rate


def test_availability_says_not_registered_and_wrong_network(league):
    tasks = league.tasks_for("small")
    rules = [
        league.RuleCase("BPTT", "bptt"),
        league.RuleCase("ghost", "no-such-rule-xyz"),
        league.RuleCase("WP", "wp"),  # registered for rate and mlp only
    ]
    pairs, skipped = league.availability(rules, [tasks["copy"], tasks["lif_pattern"]])
    assert {(r.label, t.name) for r, t in pairs} == {
        ("BPTT", "copy"),
        ("BPTT", "lif_pattern"),
        ("WP", "copy"),
    }
    why = {(s["rule"], s["task"]): s["why"] for s in skipped}
    assert why[("ghost", "copy")] == "not registered"
    assert why[("WP", "lif_pattern")].startswith("written for")


def test_small_league_writes_tables_and_figures_from_its_runs(league, tmp_path):
    out = tmp_path / "league"
    argv = ["--small", "--out", str(out), "--seeds", "0", "1", "--rules", "np", "bptt"]
    argv += ["--tasks", "copy", "--lrs", "3e-3", "1e-2"]
    assert league.main(argv) == 0
    for name in ("league.csv", "lr_sweep.csv", "summary.csv", "summary.md", "skipped.csv"):
        assert (out / name).is_file(), name
    for name in ("heat_score.png", "heat_time.png", "curves.png"):
        assert (out / name).stat().st_size > 1000, name
    table = pd.read_csv(out / "league.csv")
    assert set(table["rule"]) == {"NP", "BPTT"} and set(table["seed"]) == {0, 1}
    assert len(pd.read_csv(out / "lr_sweep.csv")) == 4  # 2 rules × 2 rates on seed 0
    # every run is a run directory of the run machinery, with its seed and config
    for _, r in table.iterrows():
        cfg = pd.read_json(Path(r["run_dir"]) / "config.json", typ="series")
        assert cfg["protocol"]["seed"] == r["seed"] and cfg["protocol"]["train"]["lr"] == r["lr"]
    # the score is recomputed here from the runs' own metrics files
    curves = {
        (r["rule"], r["seed"]): pd.read_csv(Path(r["run_dir"]) / "metrics.csv")
        for _, r in table.iterrows()
    }
    for _, r in table.iterrows():
        m, ref = curves[(r["rule"], r["seed"])], curves[("BPTT", r["seed"])]
        l0, l1 = m["eval_loss"].iloc[0], m["eval_loss"].iloc[-1]
        expect = math.log(l0 / l1) / math.log(l0 / ref["eval_loss"].iloc[-1])
        assert r["score"] == pytest.approx(expect, rel=1e-9)
        assert r["time_per_update_s"] > 0 and r["cpu_per_update_s"] > 0
    assert (table.loc[table["rule"] == "BPTT", "score"] == 1.0).all()
    md = (out / "summary.md").read_text()
    assert "| copy | NP |" in md and "| copy | BPTT |" in md


def test_bad_arguments_are_one_line_errors(league, tmp_path, capsys):
    with pytest.raises(SystemExit):
        league.main(["--small", "--out", str(tmp_path / "x"), "--tasks", "nope"])
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
