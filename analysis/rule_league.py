"""The rule league: every registered learning rule of the list below on the same small rate
and LIF networks and tasks, against full BPTT (docs/rule-league.md).

    python analysis/rule_league.py                     # default size (~31 CPU-minutes measured)
    python analysis/rule_league.py --small             # seconds: a smoke test
    python analysis/rule_league.py --jobs 2 --seeds 0 1 2 --out runs/league
    python analysis/rule_league.py --rules np bptt --tasks copy --small --out /tmp/league
    python analysis/rule_league.py --report-only --out runs/league   # tables, figures again

For every (rule, task) pair where the rule is registered and written for the task's network
type (its registry entry's ``networks``):

1. **learning-rate sweep** on the first seed over one grid shared by every rule
   (``LR_GRID``: absolute Adam rates — Adam's step is about ``lr`` per weight whatever the
   scale of the estimate, so one absolute grid is comparable across rules); the best rate is
   the one with the lowest final held-out loss (a diverged run counts as worst);
2. **seeds**: the remaining seeds at that rate (the sweep's run is the first seed's run).

Every run is a run directory made by the run machinery (``bp.run``: config.json with the
resolved protocol and seeds, metrics.csv, status.json) under ``OUT/runs/<task>/<rule>/``, so
re-running skips finished runs. Runs are executed in worker processes (``--jobs``), one torch
thread each. Per run the worker records:

- ``time_per_update_s``: the run machinery's own training wall time (``wall_time`` of the last
  metrics row: evaluations excluded) / updates; ``run_cpu_per_update_s``: the process CPU time
  of the whole ``bp.run`` call (evaluations, files and the run's plot included) / updates;
- ``cpu_per_update_s`` and ``update_mem_mb`` (seed phase only), from :func:`measure_updates`:
  after the run, the same protocol's trainer takes one warm-up update and then 3 updates,
  timed with ``time.process_time`` (one thread: CPU time, less sensitive than wall time to the
  other processes of a busy machine) while the kernel's peak resident set size, reset through
  ``/proc/self/clear_refs`` after ``malloc_trim``, gives the memory those updates added above
  the resident size before them;
- ``peak_rss_mb``: the worker's peak resident set size during the whole run (interpreter,
  torch and the run's files included; reset the same way before the run).

Outputs in OUT: ``league.csv`` (one row per run of the seed phase: rule, task, network,
seed, lr, final metric, normalised score, time per update, memory), ``lr_sweep.csv``,
``summary.csv`` / ``summary.md`` (mean ± sd per rule × task, and ratios to BPTT), the figures
``heat_score.png`` (rule × task, normalised to BPTT), ``heat_time.png`` (CPU time per update
relative to BPTT), ``curves.png`` (learning curves, mean ± sd over seeds), and ``skipped.csv``
(rules not registered, or not written for a network type).

Normalised score (1 = BPTT, 0 = no learning): per run, the fraction of BPTT's loss reduction
that the rule achieves, counted in orders of magnitude, ``s = log(L₀/L) / log(L₀/L_BPTT)``,
with L the final held-out loss of the run, L₀ its own held-out loss before training (step 0)
and L_BPTT the final held-out loss of BPTT's run with the same seed (same initial weights,
same held-out trials; the mean over BPTT's seeds when that run is missing or diverged). The
linear fraction ``(L₀ − L) / (L₀ − L_BPTT)`` is kept as ``score_linear``: it is close to 1 for
any rule that learns a little when BPTT reduces the loss by orders of magnitude. Computed from
the run files by :func:`normalised_scores`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import json
import math
import os
import re
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# -- what is compared ---------------------------------------------------------------------
@dataclass(frozen=True)
class RuleCase:
    """One row of the league: a label, the registered rule it names, its options, and
    per-network overrides of the model / rule table (as the shipped protocols set them)."""

    label: str
    rule: str
    options: dict[str, Any] = field(default_factory=dict)
    rule_by_network: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_by_network: dict[str, dict[str, Any]] = field(default_factory=dict)


#: the league's rules, in display order. ``three-factor``'s options are those of the shipped
#: protocols (protocols/cognitive/*_three_factor.toml, protocols/lif/*_three_factor.toml).
RULES: tuple[RuleCase, ...] = (
    RuleCase("NP", "np"),
    RuleCase("ANP", "anp"),
    RuleCase("DANP", "danp"),
    RuleCase("DANP trace", "danp", {"signal": "trace", "trace_decay": 0.9}),
    RuleCase(
        "three-factor",
        "three-factor",
        rule_by_network={
            "rate": {
                "noise": "kicks",
                "kick_rate": 3.0,
                "kick_amplitude": 1.0,
                "supralinear": 3.0,
                "tau_b": 0.005,
                "tau_r": 5.0,
                "reward": "trial",
            },
            "lif": {"noise": "gaussian", "reward": "trial", "tau_b": 0.02, "tau_r": 5.0},
        },
        model_by_network={"rate": {"sigma": 0.0}},
    ),
    RuleCase("e-prop sym", "e-prop", {"feedback": "symmetric"}),
    RuleCase("e-prop rand", "e-prop", {"feedback": "random"}),
    RuleCase("RFLO", "rflo"),
    RuleCase("TBPTT(1)", "tbptt", {"k": 1}),
    RuleCase("BPTT", "bptt"),
)
REFERENCE = "BPTT"

#: the one learning-rate grid (Adam), for every rule, per network type
LR_GRID: dict[str, tuple[float, ...]] = {
    "rate": (3e-4, 1e-3, 3e-3, 1e-2),
    "lif": (3e-3, 1e-2, 3e-2),
}


@dataclass(frozen=True)
class TaskCase:
    """A task with its network: the model table, the task table, and the training schedule."""

    name: str
    network: str
    label: str
    model: dict[str, Any]
    task: dict[str, Any]
    higher_is_better: bool


def _rate_model(n_in: int, n_out: int, n: int, tau: float, dt: float, **kw: Any) -> dict:
    return {
        "kind": "rate",
        "n_in": n_in,
        "n_rec": n,
        "n_out": n_out,
        "tau": tau,
        "dt": dt,
        "sigma": 1e-3,
        "nonlinearity": "tanh",
        **kw,
    }


def _lif_model(n: int) -> dict:
    # models/lif_pattern.toml's regime (docs/lif.md), decorrelation left to the rule's preset
    return {
        "kind": "lif",
        "n_in": 2,
        "n_rec": n,
        "n_out": 1,
        "tau_m": 0.02,
        "tau_s": 0.01,
        "tau_r": 0.05,
        "t_ref": 0.004,
        "sigma_v": 0.5,
        "sigma": 0.1,
        "bias_current": 0.7,
        "dt": 0.002,
        "weight_init": "normal",
        "rec_gain": 1.0,
        "in_gain": 2.0,
        "out_bias": True,
        "delta": "spike",
    }


def tasks_for(size: str) -> dict[str, TaskCase]:
    """The league's tasks at ``size`` ``"small"`` (smoke test) or ``"default"``."""
    n = 16 if size == "small" else 64
    n_lif = 20 if size == "small" else 50
    short = size == "small"
    cog = {"fixation": 0.04, "sample": 0.1, "delay": 0.1, "test": 0.1, "response": 0.1}
    lif_cog = {"fixation": 0.02, "sample": 0.05, "delay": 0.05, "test": 0.05, "response": 0.05}
    cases = [
        TaskCase(
            "copy",
            "rate",
            "copy",
            _rate_model(10, 10, n, 0.01, 0.01, weight_init="xavier_normal"),
            {"name": "copy", "length": 5 if short else 10, "delay": 3 if short else 5},
            False,
        ),
        TaskCase(
            "mackey_glass",
            "rate",
            "Mackey-Glass recall",
            _rate_model(1, 1, n, 0.01, 0.01, weight_init="xavier_normal"),
            {
                "name": "mackey_glass",
                "mode": "delayed_recall",
                "shift": 10,
                "length": 30 if short else 60,
                "washout": 10,
            },
            False,
        ),
        TaskCase(
            "delayed_match",
            "rate",
            "delayed match",
            _rate_model(2, 1, n, 0.05, 0.02, weight_init="normal", rec_gain=1.5),
            {"name": "delayed_match", "dt": 0.02, **cog},
            True,
        ),
        TaskCase(
            "pattern",
            "rate",
            "pattern",
            _rate_model(2, 1, n, 0.05, 0.02, weight_init="normal", rec_gain=1.5),
            {
                "name": "pattern",
                "dt": 0.02,
                "fixation": 0.04,
                "cue": 0.1,
                "pattern": 0.4 if short else 0.6,
                "n_patterns": 2,
            },
            True,
        ),
        TaskCase(
            "lif_delayed_match",
            "lif",
            "LIF delayed match",
            _lif_model(n_lif),
            {"name": "delayed_match", "dt": 0.002, **lif_cog},
            True,
        ),
        TaskCase(
            "lif_pattern",
            "lif",
            "LIF pattern",
            _lif_model(n_lif),
            {
                "name": "pattern",
                "dt": 0.002,
                "fixation": 0.02,
                "cue": 0.05,
                "pattern": 0.1 if short else 0.2,
                "n_patterns": 2,
            },
            True,
        ),
    ]
    return {c.name: c for c in cases}


SCHEDULE: dict[str, dict[str, dict[str, int]]] = {
    # updates, batch, evaluations
    "small": {
        "rate": {"steps": 20, "batch_size": 8, "eval_every": 5, "eval_batch": 16},
        "lif": {"steps": 10, "batch_size": 4, "eval_every": 5, "eval_batch": 8},
    },
    "default": {
        "rate": {"steps": 250, "batch_size": 16, "eval_every": 25, "eval_batch": 32},
        "lif": {"steps": 100, "batch_size": 8, "eval_every": 20, "eval_batch": 16},
    },
}


# -- registry ----------------------------------------------------------------------------
def availability(rules: list[RuleCase], tasks: list[TaskCase]) -> tuple[list, list[dict]]:
    """The (rule, task) pairs that run, and a row per skipped pair saying why: the rule is
    not registered, or its registry entry's ``networks`` does not list the task's network."""
    from bioplaus.registry import RULES as REGISTRY

    pairs, skipped = [], []
    for r in rules:
        for t in tasks:
            if r.rule not in REGISTRY:
                skipped.append(
                    {"rule": r.label, "task": t.name, "network": t.network, "why": "not registered"}
                )
            elif t.network not in REGISTRY.get(r.rule).networks:
                skipped.append(
                    {
                        "rule": r.label,
                        "task": t.name,
                        "network": t.network,
                        "why": f"written for {list(REGISTRY.get(r.rule).networks)}",
                    }
                )
            else:
                pairs.append((r, t))
    return pairs, skipped


def protocol(rule: RuleCase, task: TaskCase, size: str, seed: int, lr: float) -> dict:
    """The protocol dict of one run (what ``bp.run`` validates and records)."""
    model = {**task.model, **rule.model_by_network.get(task.network, {})}
    table = {"name": rule.rule, **rule.options, **rule.rule_by_network.get(task.network, {})}
    train = {
        **SCHEDULE[size][task.network],
        "optimizer": "adam",
        "lr": float(lr),
        "checkpoint_every": 10**6,
        "threads": 1,
    }
    return {
        "name": f"league_{task.name}_{slug(rule.label)}",
        "seed": int(seed),
        "model": copy.deepcopy(model),
        "task": copy.deepcopy(task.task),
        "rule": table,
        "train": train,
    }


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


# -- one run, in a worker -----------------------------------------------------------------
def _status_kb() -> dict[str, int]:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    return {
        k: int(m.group(1)) for k in ("VmRSS", "VmHWM") if (m := re.search(rf"{k}:\s+(\d+)", text))
    }


def _reset_peak() -> bool:
    """Release freed heap pages and reset the kernel's peak-RSS counter (Linux ≥ 4.0)."""
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_updates(proto: dict, n: int = 3) -> dict[str, float]:
    """CPU time and memory of ``n`` weight updates, alone: the protocol's trainer (built as
    ``bp.run`` builds it, from the same seeds) takes one warm-up update, then the kernel's
    peak-RSS counter is reset and ``n`` updates are timed with ``time.process_time`` (one
    thread: CPU time, less sensitive than wall time to other processes on the machine).
    ``update_mem_mb``: peak RSS during those updates minus RSS just before them."""
    from bioplaus.params import init_params
    from bioplaus.protocol import protocol_from_dict
    from bioplaus.random import child_seed
    from bioplaus.runs import build_task
    from bioplaus.train.trainer import Trainer

    spec = protocol_from_dict(copy.deepcopy(proto))
    task = build_task(spec)
    trainer = Trainer(
        spec, task, init_params(spec.model, seed=child_seed(spec.seed, "init_params"))
    )
    trainer.step()  # warm-up: optimiser state, lazy imports, first allocations
    reset = _reset_peak()
    before = _status_kb()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        trainer.step()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    after = _status_kb()
    mem = (after["VmHWM"] - before["VmRSS"]) / 1024 if reset and "VmHWM" in after else math.nan
    return {"cpu_per_update_s": cpu / n, "probe_wall_per_update_s": wall / n, "update_mem_mb": mem}


def _wait_for(measured: Path, job: dict, timeout: float = 1800.0) -> dict:
    """The record another process is writing for this run (its worker holds the run's lock)."""
    t0 = time.perf_counter()
    while not measured.is_file():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{measured.parent}: busy for {timeout:.0f} s, no record")
        time.sleep(2.0)
    time.sleep(0.5)  # the writer's probe may still add its fields: read the settled file
    return run_one(job)


def run_one(job: dict) -> dict:
    """Train one protocol into ``job['out']`` with the run machinery and measure it (a run
    measured before is read back from its ``league.json``; ``job['probe']`` adds the update
    probe of :func:`measure_updates` when the record lacks it)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    import bioplaus as bp
    from bioplaus.runs import RunBusyError

    out = Path(job["out"])
    measured = out / "league.json"
    if measured.is_file():
        rec = json.loads(measured.read_text())
        if rec.get("protocol", job["protocol"]) != job["protocol"]:
            raise ValueError(
                f"{out} holds a league run of another protocol (sizes changed?): choose a new --out"
            )
    else:
        reset = _reset_peak()
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            res = bp.run(job["protocol"], out=out, progress=False, exist_ok=True)
        except RunBusyError:  # another league process trains this run: wait for its record
            return _wait_for(measured, job)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        after = _status_kb()
        if reset and "VmHWM" in after:
            peak_kb = after["VmHWM"]
        else:  # no resettable peak: the process's lifetime peak
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        steps = int(job["protocol"]["train"]["steps"])
        m = res.metrics
        rec = {
            **{k: job[k] for k in ("rule", "rule_name", "task", "network", "seed", "lr")},
            "status": res.status,
            "steps_done": int(m["step"].iloc[-1]) if len(m) else 0,
            "time_per_update_s": float(m["wall_time"].iloc[-1]) / steps if len(m) else math.nan,
            "run_cpu_per_update_s": cpu / steps,
            "run_wall_s": wall,
            "peak_rss_mb": peak_kb / 1024,
            "cpu_per_update_s": math.nan,
            "probe_wall_per_update_s": math.nan,
            "update_mem_mb": math.nan,
            "run_dir": str(out),
            "protocol": job["protocol"],
        }
    if job.get("probe") and math.isnan(rec["cpu_per_update_s"]):
        try:
            rec.update(measure_updates(job["protocol"]))
        except Exception as exc:  # a diverging setting: the probe is left out, said why
            rec["probe_error"] = f"{type(exc).__name__}: {exc}"[:200]
    rec["phase"] = job["phase"]
    measured.write_text(json.dumps(rec, indent=1))
    return rec


def _execute(jobs: list[dict], n_jobs: int, log=print) -> list[dict]:
    if not jobs:
        return []
    if n_jobs <= 1:
        out = []
        for j in jobs:
            out.append(run_one(j))
            log(_line(out[-1]))
        return out
    out = []
    with ProcessPoolExecutor(n_jobs, mp_context=get_context("spawn")) as ex:
        futures = [ex.submit(run_one, j) for j in jobs]
        for f in as_completed(futures):
            out.append(f.result())
            log(_line(out[-1]))
    return out


def _line(r: dict) -> str:
    return (
        f"  {r['task']:18s} {r['rule']:13s} seed {r['seed']} lr {r['lr']:.0e} {r['status']:9s} "
        f"{1e3 * r['time_per_update_s']:7.1f} ms/update  {r['run_wall_s']:5.1f} s"
    )


# -- reading the runs ---------------------------------------------------------------------
def read_curve(run_dir: str | Path):
    import pandas as pd

    return pd.read_csv(Path(run_dir) / "metrics.csv")


def final_values(rec: dict, metric: str) -> dict[str, float]:
    """Final held-out loss and metric, and the step-0 held-out loss, of a run (NaN: diverged
    before its first row)."""
    m = read_curve(rec["run_dir"])
    if not len(m):
        return {"eval_loss_0": math.nan, "eval_loss": math.nan, "metric": math.nan}
    diverged = rec["status"] != "completed"
    return {
        "eval_loss_0": float(m["eval_loss"].iloc[0]),
        "eval_loss": math.nan if diverged else float(m["eval_loss"].iloc[-1]),
        "metric": math.nan if diverged else float(m[f"eval_{metric}"].iloc[-1]),
    }


def normalised_scores(df, reference: str = REFERENCE):
    """Add ``score = log(L₀ / L) / log(L₀ / L_ref)`` (the fraction of the reference's loss
    reduction, counted in orders of magnitude) and ``score_linear = (L₀ − L) / (L₀ − L_ref)``
    to a table of runs (columns rule, task, seed, eval_loss_0, eval_loss): L the run's final
    held-out loss, L₀ its held-out loss before training, L_ref the final held-out loss of
    ``reference``'s run of the same task and seed (same initial weights and held-out trials),
    or — when that run is missing or diverged — the mean over ``reference``'s seeds. Tasks
    without a reference run get NaN; a diverged run (NaN loss) gets NaN."""
    import numpy as np

    df = df.copy()
    ref = df[df["rule"] == reference]
    by_seed = ref.set_index(["task", "seed"])["eval_loss"]
    mean = ref.groupby("task")["eval_loss"].mean()
    keys = list(zip(df["task"], df["seed"], strict=True))
    l_ref = [by_seed.get(k, math.nan) for k in keys]
    l_ref = [v if v == v else mean.get(k[0], math.nan) for v, k in zip(l_ref, keys, strict=True)]
    df["ref_eval_loss"] = l_ref
    l0, l1, lr = df["eval_loss_0"], df["eval_loss"], df["ref_eval_loss"]
    df["score"] = np.log(l0 / l1) / np.log(l0 / lr)
    df["score_linear"] = (l0 - l1) / (l0 - lr)
    return df


# -- the league ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--small", action="store_true", help="tiny networks and schedules (tests)")
    ap.add_argument("--out", default="runs/league", help="output folder (runs, tables, figures)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (1 torch thread each)")
    labels = [r.label for r in RULES]
    ap.add_argument(
        "--rules",
        nargs="+",
        default=None,
        help=f"rule labels or registry names (default: all of {labels})",
    )
    ap.add_argument("--tasks", nargs="+", default=None, help="task names (default: all)")
    ap.add_argument("--lrs", type=float, nargs="+", default=None, help="override the lr grid")
    ap.add_argument("--report-only", action="store_true", help="tables and figures only")
    a = ap.parse_args(argv)
    size = "small" if a.small else "default"
    all_tasks = tasks_for(size)
    if a.tasks is None:
        tasks = list(all_tasks.values())
    else:
        bad = [t for t in a.tasks if t not in all_tasks]
        if bad:
            ap.error(f"unknown task {bad[0]!r} (choose from {list(all_tasks)})")
        tasks = [all_tasks[t] for t in a.tasks]
    if a.rules is None:
        rules = list(RULES)
    else:
        rules = [r for r in RULES if r.label in a.rules or r.rule in a.rules]
        known = {r.label for r in RULES} | {r.rule for r in RULES}
        bad = [r for r in a.rules if r not in known]
        if bad:
            ap.error(f"unknown rule {bad[0]!r} (choose from {labels})")
    if len(set(a.seeds)) != len(a.seeds) or min(a.seeds) < 0:
        ap.error("--seeds: distinct non-negative integers")
    if a.jobs < 1:
        ap.error("--jobs: at least 1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs, skipped = availability(rules, tasks)
    for s in skipped:
        print(f"skip {s['rule']} on {s['task']}: {s['why']}")
    t_start = time.perf_counter()
    grid = {k: tuple(a.lrs) if a.lrs else v for k, v in LR_GRID.items()}
    seeds = list(a.seeds)

    def job(r: RuleCase, t: TaskCase, seed: int, lr: float, phase: str) -> dict:
        return {
            "protocol": protocol(r, t, size, seed, lr),
            "out": str(out / "runs" / t.name / slug(r.label) / f"lr{lr:g}_seed{seed}"),
            "rule": r.label,
            "rule_name": r.rule,
            "task": t.name,
            "network": t.network,
            "seed": seed,
            "lr": lr,
            "phase": phase,
            "probe": phase == "seeds",
        }

    # phase 1: the lr sweep on the first seed
    # the reference first (every score needs it), then the rules in order; seeds in turn, so
    # that a league stopped early has its seeds spread over every pair
    pairs = sorted(pairs, key=lambda p: p[0].label != REFERENCE)
    sweep_jobs = [job(r, t, seeds[0], lr, "sweep") for r, t in pairs for lr in grid[t.network]]
    if not a.report_only:
        print(f"lr sweep: {len(sweep_jobs)} runs on seed {seeds[0]}")
    sweep = _collect(sweep_jobs, a, all_tasks)
    best = best_lrs(sweep)
    seed_jobs = [
        job(r, t, s, best[(r.label, t.name)], "seeds")
        for s in seeds
        for r, t in pairs
        if (r.label, t.name) in best
    ]
    if not a.report_only:
        print(f"seeds: {len(seed_jobs)} runs ({len(seeds)} seeds at each pair's best lr)")
    league = _collect(seed_jobs, a, all_tasks)
    elapsed = time.perf_counter() - t_start
    report(out, sweep, league, skipped, all_tasks, rules, size, seeds, grid, elapsed, a.jobs)
    return 0


def _collect(jobs: list[dict], a, all_tasks: dict[str, TaskCase]):
    """Run (or, with --report-only, read) the jobs; one row per run with its final values."""
    import pandas as pd

    if a.report_only:
        recs = [
            json.loads((Path(j["out"]) / "league.json").read_text())
            for j in jobs
            if (Path(j["out"]) / "league.json").is_file()
        ]
    else:
        recs = _execute(jobs, a.jobs)
    rows = []
    for r in recs:
        metric = _task_metric(all_tasks[r["task"]])
        rows.append({**r, **final_values(r, metric), "metric_name": metric})
    cols = ["rule", "task", "network", "seed", "lr"]
    return pd.DataFrame(rows).sort_values(cols).reset_index(drop=True) if rows else pd.DataFrame()


def _task_metric(t: TaskCase) -> str:
    from bioplaus.tasks import TASKS

    return TASKS.get(t.task["name"]).metric


def best_lrs(sweep) -> dict[tuple[str, str], float]:
    """Per (rule, task): the grid rate with the lowest final held-out loss (diverged: worst;
    ties and all-diverged: the smallest rate)."""
    best = {}
    if not len(sweep):
        return best
    for (rule, task), g in sweep.groupby(["rule", "task"]):
        loss = g["eval_loss"].fillna(math.inf)
        best[(rule, task)] = (
            float(g.loc[loss.idxmin(), "lr"]) if loss.notna().any() else float(g["lr"].min())
        )
    return best


# -- tables and figures -------------------------------------------------------------------
def report(out, sweep, league, skipped, all_tasks, rules, size, seeds, grid, elapsed, jobs):
    import pandas as pd

    if not len(league):
        print("nothing ran")
        return
    league = normalised_scores(league)
    order_r = [r.label for r in rules if r.label in set(league["rule"])]
    order_t = [t for t in all_tasks if t in set(league["task"])]
    keep = [
        "rule", "rule_name", "task", "network", "seed", "lr", "status", "metric_name", "metric",
        "eval_loss_0", "eval_loss", "score", "score_linear", "time_per_update_s",
        "cpu_per_update_s",
        "run_cpu_per_update_s", "update_mem_mb", "peak_rss_mb", "steps_done", "run_dir",
    ]  # fmt: skip
    league[keep].to_csv(out / "league.csv", index=False)
    sweep_cols = [c for c in keep if c in sweep.columns]
    sweep[sweep_cols].to_csv(out / "lr_sweep.csv", index=False)
    pd.DataFrame(skipped, columns=["rule", "task", "network", "why"]).to_csv(
        out / "skipped.csv", index=False
    )
    summary = summarise(league, order_r, order_t)
    summary.to_csv(out / "summary.csv", index=False)
    md = summary_markdown(
        summary, sweep, skipped, size, seeds, grid, elapsed, jobs, order_r, order_t
    )
    (out / "summary.md").write_text(md)
    print(md)
    figures(out, league, summary, order_r, order_t, all_tasks)


def summarise(league, order_r: list[str], order_t: list[str]):
    """Mean ± sd over seeds per rule × task, and time / memory ratios to BPTT's mean."""
    import pandas as pd

    g = league.groupby(["rule", "task"])
    s = g.agg(
        network=("network", "first"),
        lr=("lr", "first"),
        n=("seed", "size"),
        n_ok=("status", lambda x: int((x == "completed").sum())),
        metric_name=("metric_name", "first"),
        metric_mean=("metric", "mean"),
        metric_sd=("metric", "std"),
        score_mean=("score", "mean"),
        score_sd=("score", "std"),
        ms_per_update=("time_per_update_s", lambda x: 1e3 * x.median()),
        cpu_ms_per_update=("cpu_per_update_s", lambda x: 1e3 * x.median()),
        peak_rss_mb=("peak_rss_mb", "max"),
        update_mem_mb=("update_mem_mb", "median"),
    ).reset_index()
    ref = s[s["rule"] == REFERENCE].set_index("task")
    for col, name in (
        ("ms_per_update", "time_vs_bptt"),
        ("cpu_ms_per_update", "cpu_vs_bptt"),
        ("update_mem_mb", "mem_vs_bptt"),
    ):
        s[name] = s[col] / s["task"].map(ref[col]) if len(ref) else math.nan
    s["rule"] = pd.Categorical(s["rule"], order_r, ordered=True)
    s["task"] = pd.Categorical(s["task"], order_t, ordered=True)
    return s.sort_values(["task", "rule"]).reset_index(drop=True)


def _pm(m: float, sd: float, fmt: str = ".3g") -> str:
    if m != m:
        return "n/a"
    return f"{m:{fmt}} ± {sd:{fmt}}" if sd == sd else f"{m:{fmt}}"


def _cell(r, mean: str, sd: str, fmt: str) -> str:
    """mean ± sd over the completed seeds; says when some or all seeds diverged."""
    if r["n_ok"] == 0:
        return "diverged"
    text = _pm(r[mean], r[sd], fmt)
    return text if r["n_ok"] == r["n"] else f"{text} ({r['n'] - r['n_ok']}/{r['n']} diverged)"


def _grid_table(summary, order_r, order_t, cell) -> list[str]:
    """A rule × task markdown table whose cells are ``cell(row)`` (— where nothing ran)."""
    at = {(r["rule"], r["task"]): r for _, r in summary.iterrows()}
    lines = ["| rule | " + " | ".join(order_t) + " |", "|---" * (len(order_t) + 1) + "|"]
    for rule in order_r:
        cells = [cell(at[(rule, t)]) if (rule, t) in at else "—" for t in order_t]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return lines


def summary_markdown(
    summary, sweep, skipped, size, seeds, grid, elapsed, jobs, order_r, order_t
) -> str:
    """The league's markdown: score and time tables rule × task, the full table, the sweep."""
    lines = [
        f"Rule league, size `{size}`, seeds {seeds}, lr grid {dict(grid)}, "
        f"{jobs} worker(s), {elapsed / 60:.1f} min.",
        "",
        "Normalised score s = log(L₀/L) / log(L₀/L_BPTT) (1 = BPTT, 0 = no learning), mean ± sd "
        "over seeds; time and memory as ratios to BPTT on the same task.",
        "",
        "Score (fraction of BPTT's loss reduction, log scale), mean ± sd over seeds:",
        "",
        *_grid_table(
            summary, order_r, order_t, lambda r: _cell(r, "score_mean", "score_sd", ".2f")
        ),
        "",
        "CPU time per update relative to BPTT's (median over seeds):",
        "",
        *_grid_table(summary, order_r, order_t, lambda r: f"{r['cpu_vs_bptt']:.2f}"),
        "",
        "All measurements:",
        "",
        "| task | rule | lr | ok | final metric | score | ms / update (wall) | CPU ms / update "
        "| CPU × BPTT | update memory MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"| {r['task']} | {r['rule']} | {r['lr']:g} | {r['n_ok']}/{r['n']} "
            f"| {r['metric_name']} {_cell(r, 'metric_mean', 'metric_sd', '.3g')} "
            f"| {_cell(r, 'score_mean', 'score_sd', '.2f')} | {r['ms_per_update']:.1f} "
            f"| {r['cpu_ms_per_update']:.1f} | {r['cpu_vs_bptt']:.2f} | {r['update_mem_mb']:.2f} "
            f"| {r['peak_rss_mb']:.0f} |"
        )
    lines += ["", "Learning-rate sweep (seed " + str(seeds[0]) + "): final held-out loss", ""]
    if len(sweep):
        piv = sweep.pivot_table(
            index=["task", "rule"], columns="lr", values="eval_loss", dropna=False
        )
        piv.columns = [f"lr {c:g}" for c in piv.columns]
        piv = piv.reindex([(t, r) for t in order_t for r in order_r if (t, r) in piv.index]).dropna(
            how="all"
        )
        lines.append(piv.reset_index().to_markdown(index=False, floatfmt=".4g"))
    if skipped:
        lines += ["", "Not run:", ""]
        why: dict[str, set] = {}
        for s in skipped:
            why.setdefault(f"{s['rule']}: {s['why']}", set()).add(s["network"])
        lines += [f"- {k} ({', '.join(sorted(v))})" for k, v in why.items()]
    return "\n".join(lines) + "\n"


def figures(out: Path, league, summary, order_r, order_t, all_tasks) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tl = [all_tasks[t].label for t in order_t]

    def heat(col: str, fname: str, title: str, fmt: str, cmap: str, vmin, vmax, log=False):
        mat = np.full((len(order_r), len(order_t)), np.nan)
        for _, r in summary.iterrows():
            mat[order_r.index(r["rule"]), order_t.index(r["task"])] = r[col]
        fig, ax = plt.subplots(figsize=(1.5 + 1.25 * len(order_t), 0.9 + 0.45 * len(order_r)))
        shown = np.log10(mat) if log else mat
        im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(len(order_r)):
            for j in range(len(order_t)):
                v = mat[i, j]
                txt = "—" if v != v else format(v, fmt)
                ax.text(j, i, txt, ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(order_t)), tl, rotation=25, ha="right", fontsize=8)
        ax.set_yticks(range(len(order_r)), order_r, fontsize=8)
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=130)
        plt.close(fig)

    heat(
        "score_mean",
        "heat_score.png",
        "log(L₀/L) / log(L₀/L_BPTT): 1 = BPTT, 0 = no learning (mean of seeds)",
        ".2f",
        "RdYlGn",
        0.0,
        1.0,
    )
    heat(
        "cpu_vs_bptt",
        "heat_time.png",
        "CPU time per update / BPTT's (same run; log colour)",
        ".2g",
        "coolwarm",
        -1.0,
        1.0,
        log=True,
    )
    # learning curves, mean ± sd over seeds
    nc = min(3, len(order_t))
    nr = math.ceil(len(order_t) / nc)
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 3.1 * nr), squeeze=False)
    colors = {r: f"C{i % 10}" for i, r in enumerate(order_r)}
    colors[REFERENCE] = "black"
    for k, task in enumerate(order_t):
        ax = axes[k // nc][k % nc]
        tc = all_tasks[task]
        sub = league[league["task"] == task]
        mname = sub["metric_name"].iloc[0]
        for rule in order_r:
            runs = sub[(sub["rule"] == rule) & (sub["status"] == "completed")]
            if not len(runs):
                continue
            curves = [read_curve(d) for d in runs["run_dir"]]
            steps = curves[0]["step"].to_numpy()
            ys = np.array([c[f"eval_{mname}"].to_numpy()[: len(steps)] for c in curves])
            mu, sd = ys.mean(0), ys.std(0)
            ax.plot(steps, mu, color=colors[rule], lw=1.3, label=rule)
            ax.fill_between(steps, mu - sd, mu + sd, color=colors[rule], alpha=0.18, lw=0)
        ax.set_title(tc.label, fontsize=9)
        ax.set_xlabel("update", fontsize=8)
        ax.set_ylabel(f"held-out {mname}" + ("" if tc.higher_is_better else " (lower better)"),
                      fontsize=8)  # fmt: skip
        ax.tick_params(labelsize=7)
    for k in range(len(order_t), nr * nc):
        axes[k // nc][k % nc].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for row in axes:
        for ax in row:
            h, lab = ax.get_legend_handles_labels()
            if len(h) > len(handles):
                handles, labels = h, lab
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
