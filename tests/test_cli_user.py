"""What a new user sees: ``--version``, ``run --seed``, summaries that name the metric, the
sweep's figure path, and progress as plain lines when the output is not a terminal."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest

import bioplaus as bp
from bioplaus import progress as prog

TINY = """
name = "cli_user"
seed = 1
[model]
n_in = 10
n_rec = 12
n_out = 10
tau = 1.0
dt = 1.0
[task]
name = "copy"
length = 3
delay = 1
[rule]
name = "anp"
[train]
steps = 4
eval_every = 2
batch_size = 4
eval_batch = 4
"""

SWEEP = """
name = "cli_user_sweep"
protocol = "p.toml"
[grid]
"model.sigma" = [1e-3, 1e-2]
[plot]
x = "model.sigma"
"""


def cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "bioplaus", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=env,
    )


def test_version_from_package_metadata():
    from importlib.metadata import version

    r = cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"bioplaus {version('bioplaus')}"
    import bioplaus

    # the one written version (bioplaus/version.py) is the one pyproject installs, and the
    # one a run records in config.json
    assert bioplaus.__version__ == version("bioplaus")
    from bioplaus.runs.config import _versions

    assert _versions()["bioplaus"] == bioplaus.__version__


def test_run_seed_summary_names_the_metric_and_sweep_names_its_figure(
    tmp_path, monkeypatch, capsys
):
    # in-process (bioplaus.cli.main): the same code as the `bioplaus` command, without
    # paying the interpreter's start-up three times; test_version covers the entry point
    from bioplaus.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.toml").write_text(TINY)
    assert main(["run", "p.toml", "--out", "a", "--seed", "7", "--quiet"]) == 0
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["protocol"]["seed"] == 7 and cfg["seeds"]["root"] == 7
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"completed: a — step 4, held-out loss \S+, error bits \S+", line), line
    assert "metric" not in line
    # a negative seed: one line, exit 2, nothing written
    assert main(["run", "p.toml", "--out", "b", "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed" in err
    assert not (tmp_path / "b").exists()
    # the sweep prints where its figure is
    (tmp_path / "s.toml").write_text(SWEEP)
    assert main(["sweep", "s.toml", "--out", "sw", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "; figure sw/sweep.png" in out and (tmp_path / "sw" / "sweep.png").is_file()


def test_summary_metric_labels():
    from bioplaus.results import metric_label

    assert metric_label("nrmse") == "NRMSE"
    assert metric_label("error_bits") == "error bits"
    assert metric_label("my_score") == "my score"


def test_progress_off_a_terminal_is_a_few_plain_lines(monkeypatch):
    monkeypatch.delenv("BIOPLAUS_PROGRESS", raising=False)
    buf = io.StringIO()  # not a terminal
    bar = prog.progress(total=1000, desc="job", unit="step", stream=buf)
    assert isinstance(bar, prog.LineProgress)
    bar.interval = 3600.0  # no periodic line during this test: only the final one
    for _ in range(1000):
        bar.update(1)
    bar.set_postfix(loss="0.1")
    bar.close()
    bar.close()  # once
    out = buf.getvalue()
    assert "\r" not in out
    assert out.splitlines() == [out.splitlines()[0]]
    assert re.match(r"job: 1000/1000 step \(100%\), \d+ s, loss=0\.1$", out.splitlines()[0])


def test_progress_lines_are_periodic(monkeypatch):
    buf = io.StringIO()
    bar = prog.LineProgress(total=10, desc="job", unit="step", stream=buf, interval=0.0)
    for _ in range(10):
        bar.update(1)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("job: 10/10 step (100%)")


def test_progress_style_can_be_forced(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.setenv("BIOPLAUS_PROGRESS", "bar")
    bar = prog.progress(total=3, stream=io.StringIO())
    assert isinstance(bar, tqdm)
    bar.close()
    monkeypatch.setenv("BIOPLAUS_PROGRESS", "off")
    buf = io.StringIO()
    bar = prog.progress(total=3, stream=buf)
    bar.update(3)
    bar.close()
    assert buf.getvalue() == ""


@pytest.mark.parametrize("interval", ["0", "3600"])
def test_a_run_logged_to_a_file_has_no_bar_redraws(tmp_path, capsys, monkeypatch, interval):
    from bioplaus.spec import read_toml

    monkeypatch.delenv("BIOPLAUS_PROGRESS", raising=False)
    monkeypatch.setenv("BIOPLAUS_PROGRESS_INTERVAL", interval)
    (tmp_path / "p.toml").write_text(TINY)
    proto = read_toml(tmp_path / "p.toml")
    bp.run(proto, out=tmp_path / "r", progress=True)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err
    n = len([x for x in lines if x.startswith("cli_user [anp]:")])
    assert n == (4 if interval == "0" else 1), err  # every update, or the final line only
    assert lines[-1].startswith("cli_user [anp]: 4/4 step (100%)")
