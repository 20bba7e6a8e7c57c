"""The command line: runs, and bad input as one line with exit status 2 and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
name = "cli_tiny"
seed = 1
[model]
n_in = 10
n_rec = 16
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
steps = 6
eval_every = 3
batch_size = 4
eval_batch = 4
"""


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bioplaus", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_run_resume_plot_compare(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(GOOD)
    r = cli("run", str(proto), "--out", str(tmp_path / "a"), "--quiet", "--set", "train.lr=0.01")
    assert r.returncode == 0, r.stderr
    assert "completed" in r.stdout
    assert (tmp_path / "a" / "loss.png").is_file()
    import json

    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["protocol"]["train"]["lr"] == 0.01
    r = cli("resume", str(tmp_path / "a"), "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("plot", str(tmp_path / "a"), "--out", str(tmp_path / "x.png"))
    assert r.returncode == 0 and (tmp_path / "x.png").is_file()


BAD = [
    ("tau", "[model]\nn_in = 10\nn_rec = 16\nn_out = 10\ntau = -1.0\n", "model.tau"),
    ("unknown key", "[train]\nsteps = 6\nlrr = 1.0\n", "lrr"),
    ("bad rule", '[rule]\nname = "backprop"\n', "rule.name"),
    ("dt > tau", "[model]\nn_in = 10\nn_rec = 16\nn_out = 10\ntau = 1.0\ndt = 2.0\n", "dt"),
    ("task size", "[model]\nn_in = 3\nn_rec = 16\nn_out = 10\ntau = 1.0\ndt = 1.0\n", "n_in"),
    ("task option", '[task]\nname = "copy"\nlenght = 3\n', "lenght"),
    ("negative steps", "[train]\nsteps = -5\n", "train.steps"),
    ("malformed", "[train\nsteps = 6\n", "malformed TOML"),
]


def replace_tables(base: str, patch: str) -> str:
    """Replace the tables named in ``patch`` within ``base``."""
    out, skip = [], False
    patched = {line.strip() for line in patch.splitlines() if line.startswith("[")}
    for line in base.splitlines():
        if line.startswith("["):
            skip = line.strip() in patched
        if not skip:
            out.append(line)
    return "\n".join(out) + "\n" + patch


@pytest.mark.parametrize("label,patch,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_protocol_is_one_line_exit_2_nothing_written(tmp_path, label, patch, needle):
    proto = tmp_path / "p.toml"
    proto.write_text(replace_tables(GOOD, patch) if "malformed" not in label else patch)
    out = tmp_path / "run"
    r = cli("run", str(proto), "--out", str(out), "--quiet")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert needle in lines[0]
    assert str(proto) in lines[0] or label == "task option" or label == "task size"
    assert not out.exists()


def test_missing_file_and_bad_option(tmp_path):
    r = cli("run", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "file not found" in r.stderr
    proto = tmp_path / "p.toml"
    proto.write_text(GOOD)
    r = cli("run", str(proto), "--set", "rule.K=0", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "rule.K" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    r = cli("run", str(proto), "--frobnicate")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = cli("resume", str(tmp_path))
    assert r.returncode == 2 and "not a run directory" in r.stderr
