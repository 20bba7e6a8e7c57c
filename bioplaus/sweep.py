"""Parameter sweeps: a grid (and/or random samples) over dotted protocol keys, run on Dask
(a LocalCluster, an existing scheduler, or a dask-jobqueue SLURM/PBS/SGE/LSF cluster), each
point a normal run directory, one tidy results table.

A sweep file (TOML; paths relative to the file)::

    name = "mg_noise_small"
    protocol = "../mackey_glass_anp.toml"   # the base protocol every point starts from
    threads = 1                             # train.threads of every point (optional)
    table = "csv"                           # results table format: csv | parquet (needs pyarrow)
    retries = 2                             # re-runs of a point whose worker died (default 2)

    [fixed]                                 # overrides applied to every point
    "train.steps" = 300

    [grid]                                  # the Cartesian product of these
    "model.sigma" = { logspace = [-5, 0, 6] }   # 10^-5 … 10^0, 6 values (numpy.logspace)
    seed = [0, 1, 2]                        # plain lists; also { linspace = [a, b, n] }

    [variants.danp]                         # optional named sets of overrides, × the grid;
    "rule.name" = "anp"                     # a variant's value wins over the grid's for the
    "model.decorrelate_rec" = true          # same key (duplicate points collapse)
    "train.lr_decor" = 1e-3

    [random]                                # optional: ``samples`` random points (× grid)
    samples = 8
    seed = 0
    "train.lr" = { loguniform = [1e-4, 1e-2] }  # also uniform, randint = [lo, hi], choice = [...]

    [plot]                                  # the standard figure (optional)
    x = "model.sigma"                       # default: the first logspace grid key
    y = "metric"                            # a column of the results table

    [cluster]                               # optional: a dask-jobqueue cluster started here
    kind = "slurm"                          # slurm | pbs | sge | lsf | htcondor | moab | oar
    jobs = 8                                # one worker per job (or minimum_jobs/maximum_jobs)
    cores = 1                               # every other key goes to dask_jobqueue.SLURMCluster
    memory = "4GB"
    walltime = "02:00:00"

Every point is validated (protocol, overrides, task sizes) before anything runs or is
written. A point's run directory is ``OUT/points/NAME`` where NAME spells its overrides,
so re-running the same sweep finds it: a point whose ``status.json`` says ``completed`` or
``diverged`` is skipped; an interrupted one is resumed from its checkpoint; a failed one is
tried again. A point that raises is recorded as ``failed`` with its error, and the rest go on.

A worker that dies (killed by the OS or a user, a lost Dask worker) loses only the point it
was running: the point is run again, resuming from its last checkpoint, up to ``retries``
times, then recorded as ``failed`` with ``worker died (signal 9 SIGKILL) …``; every other
point goes on. (On a Dask cluster not started by bioplaus, the scheduler re-runs the point
itself, ``distributed.scheduler.allowed-failures`` times, instead.) While a point runs, its
process holds an exclusive lock on ``points/NAME/.lock`` (which holds its pid), so two
processes never train the same point at once; LocalCluster workers exit when the sweep
process dies.

The results table ``OUT/results.csv`` (or ``.parquet``) has one row per point: the point's
name, variant, swept values, status, error, and the final row of its metrics.csv
(``loss``, ``eval_loss``, ``metric``, …) plus ``best_metric`` and ``wall_time``. It is
rewritten atomically (temporary file, fsync, rename) after every point, so killing the sweep
at any moment leaves the previous complete table or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import io, tomlwrite
from .spec import SpecError, read_toml
from .sweep_workers import (
    FINISHED,
    RETRIES,
    dask_connect,
    default_threads,
    point_row,
    read_status,
    run_dask,
    run_point,
    thread_env,
)

TOP_KEYS = (
    "name",
    "protocol",
    "threads",
    "table",
    "retries",
    "fixed",
    "grid",
    "variants",
    "random",
    "plot",
    "cluster",
)


# -- sweep file ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One point of a sweep: a base protocol plus ``key=value`` overrides."""

    name: str
    variant: str | None
    values: dict[str, Any]  # swept/variant key → value (what distinguishes this point)
    overrides: tuple[str, ...]  # fixed + values, as ``key=TOML literal`` strings


@dataclass
class Sweep:
    """A parsed, validated sweep file."""

    path: Path
    name: str
    protocol: Path
    fixed: dict[str, Any]
    points: list[Point]
    swept: list[str]  # columns of the swept keys, in order
    threads: int | None = None
    table: str = "csv"
    retries: int | None = None
    plot_x: str | None = None
    plot_y: str = "metric"
    cluster: dict | None = None  # the [cluster] table (a dask-jobqueue cluster), if any
    data: dict = field(default_factory=dict)


def toml_literal(value: Any) -> str:
    """``value`` as a TOML literal for a ``key=value`` override (1e-05, true, "anp", [1, 2]):
    :func:`bioplaus.tomlwrite.value` on plain Python values (numpy scalars converted)."""

    def plain(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, bool | int | float | str):
            return v
        raise SpecError(f"cannot write {value!r} as a TOML value")

    return tomlwrite.value(plain(value))


def _round(v: float) -> float:
    """Round generated floats to 6 significant digits, so names and tables read 1e-05."""
    return float(f"{v:.6g}")


def _grid_values(where: str, spec: Any) -> list:
    if isinstance(spec, list):
        if not spec:
            raise SpecError(f"{where}: empty list")
        return spec
    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, args),) = spec.items()
        if kind in ("logspace", "linspace"):
            if (
                not isinstance(args, list)
                or len(args) != 3
                or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args)
                or not isinstance(args[2], int)
                or args[2] < 1
            ):
                raise SpecError(f"{where}: {kind} expects [start, stop, num] with integer num >= 1")
            fn = np.logspace if kind == "logspace" else np.linspace
            return [_round(v) for v in fn(args[0], args[1], args[2])]
        if kind == "values" and isinstance(args, list) and args:
            return args
    raise SpecError(
        f"{where}: expected a list, {{logspace = [start, stop, num]}} or "
        f"{{linspace = [start, stop, num]}}"
    )


def _random_values(where: str, spec: Any, n: int, rng: np.random.Generator) -> list:
    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, args),) = spec.items()
        num = isinstance(args, list) and all(
            isinstance(a, int | float) and not isinstance(a, bool) for a in args
        )
        if kind in ("uniform", "loguniform", "randint") and num and len(args) == 2:
            lo, hi = args
            if kind == "loguniform":
                if lo <= 0 or hi <= 0:
                    raise SpecError(f"{where}: loguniform bounds must be > 0")
                return [_round(v) for v in np.exp(rng.uniform(np.log(lo), np.log(hi), n))]
            if kind == "uniform":
                return [_round(v) for v in rng.uniform(lo, hi, n)]
            if isinstance(lo, int) and isinstance(hi, int) and hi >= lo:
                return [int(v) for v in rng.integers(lo, hi + 1, n)]
        if kind == "choice" and isinstance(args, list) and args:
            return [args[int(i)] for i in rng.integers(0, len(args), n)]
    raise SpecError(
        f"{where}: expected {{uniform|loguniform|randint = [low, high]}} or {{choice = [...]}}"
    )


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v).lower() if isinstance(v, bool) else str(v)


def point_name(variant: str | None, values: dict[str, Any]) -> str:
    """A readable, file-system-safe directory name: the variant's name, then the point's
    grid and random values (``values``)."""
    parts = ([variant] if variant else []) + [f"{k}={_fmt_value(v)}" for k, v in values.items()]
    name = re.sub(r"[^A-Za-z0-9._=+-]", "_", "_".join(parts) or "base")
    if len(name) > 120:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[:100]}-{digest}"
    return name


def load_sweep(path: str | Path) -> Sweep:
    """Read and expand a sweep file into its points (SpecError, one line, on bad input).

    Points = variants × grid × random samples; ``fixed`` overrides come first, so a
    point's own values win.
    """
    p = Path(path)
    data = read_toml(p)
    src = str(p)
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise SpecError(f"{src}: {unknown[0]}: unknown key (choose from {list(TOP_KEYS)})")
    if not isinstance(data.get("protocol"), str):
        raise SpecError(f"{src}: protocol: missing key (the base protocol file)")
    proto = Path(data["protocol"])
    if not proto.is_absolute():
        proto = (p.parent / proto).resolve()
    if not proto.is_file():
        raise SpecError(f"{src}: protocol: file not found: {proto}")
    name = data.get("name", p.stem)
    if not isinstance(name, str) or not name:
        raise SpecError(f"{src}: name: expected a non-empty string")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\0" in name:
        raise SpecError(
            f"{src}: name: {name!r} must be a plain folder name (no '/', '\\', '..' or leading '.')"
        )
    threads = data.get("threads")
    if threads is not None and (
        not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
    ):
        raise SpecError(f"{src}: threads: expected an integer >= 1 (got {threads!r})")
    retries = data.get("retries")
    if retries is not None and (
        not isinstance(retries, int) or isinstance(retries, bool) or retries < 0
    ):
        raise SpecError(f"{src}: retries: expected an integer >= 0")
    table = data.get("table", "csv")
    if table not in ("csv", "parquet"):
        raise SpecError(f"{src}: table: expected 'csv' or 'parquet' (got {table!r})")
    if table == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SpecError(
                f"{src}: table: 'parquet' needs pyarrow (pip install pyarrow)"
            ) from None
    for key in ("fixed", "grid", "variants", "random", "plot", "cluster"):
        if key in data and not isinstance(data[key], dict):
            raise SpecError(f"{src}: {key}: expected a table")
    if "cluster" in data:
        from .sweep_workers import check_cluster

        check_cluster(data["cluster"], f"{src}: cluster")
    fixed = dict(data.get("fixed", {}))
    grid = {k: _grid_values(f"{src}: grid.{k}", v) for k, v in data.get("grid", {}).items()}
    variants: dict[str | None, dict] = {}
    for vname, vt in data.get("variants", {}).items():
        if not isinstance(vt, dict):
            raise SpecError(f"{src}: variants.{vname}: expected a table of key = value")
        variants[vname] = dict(vt)
    if not variants:
        variants = {None: {}}
    samples: list[dict[str, Any]] = [{}]
    if "random" in data:
        rt = dict(data["random"])
        n = rt.pop("samples", None)
        rseed = rt.pop("seed", 0)
        if not isinstance(n, int) or n < 1:
            raise SpecError(f"{src}: random.samples: expected an integer >= 1")
        if not isinstance(rseed, int) or rseed < 0:
            raise SpecError(f"{src}: random.seed: expected an integer >= 0")
        if not rt:
            raise SpecError(f"{src}: random: no keys to sample")
        rng = np.random.default_rng(rseed)
        cols = {k: _random_values(f"{src}: random.{k}", v, n, rng) for k, v in rt.items()}
        samples = [{k: cols[k][i] for k in cols} for i in range(n)]
    for k, v in fixed.items():
        if isinstance(v, dict):
            raise SpecError(f"{src}: fixed.{k}: expected a value, not a table (quote dotted keys)")
    swept: list[str] = []
    for keys in (grid, *samples[:1], *variants.values()):
        for k in keys:
            if k not in swept:
                swept.append(k)
    points: list[Point] = []
    seen: set[str] = set()
    for vname, vt in variants.items():
        for combo in itertools.product(*grid.values()) if grid else [()]:
            for sample in samples:
                values = {**dict(zip(grid, combo, strict=True)), **sample, **vt}
                ordered = {k: values[k] for k in swept if k in values}
                named = {k: v for k, v in ordered.items() if k in grid or k in sample}
                pname = point_name(vname, named)
                if pname in seen:
                    continue
                seen.add(pname)
                ov = tuple(f"{k}={toml_literal(v)}" for k, v in {**fixed, **ordered}.items())
                points.append(Point(pname, vname, ordered, ov))
    plot = dict(data.get("plot", {}))
    for k, v in plot.items():
        if k not in ("x", "y"):
            raise SpecError(f"{src}: plot.{k}: unknown key (choose from ['x', 'y'])")
        if not isinstance(v, str):
            raise SpecError(f"{src}: plot.{k}: expected a column name (got {v!r})")
    px = plot.get("x")
    if px is None:
        logs = [
            k for k, v in data.get("grid", {}).items() if isinstance(v, dict) and "logspace" in v
        ]
        px = logs[0] if logs else (swept[0] if swept else None)
    return Sweep(
        path=p,
        name=name,
        protocol=proto,
        fixed=fixed,
        points=points,
        swept=swept,
        threads=threads,
        table=table,
        retries=retries,
        plot_x=px,
        plot_y=str(plot.get("y", "metric")),
        cluster=dict(data["cluster"]) if "cluster" in data else None,
        data=data,
    )


def cluster_table(
    sweep: Sweep, kind: str | None = None, jobs: int | None = None, sets: list[str] | None = None
) -> dict | None:
    """The sweep's ``[cluster]`` table with the command line's ``--cluster KIND``, ``--jobs
    N`` and ``--cluster-set KEY=VALUE`` (TOML values) applied; None when there is none."""
    from .protocol import parse_override

    if kind is None and jobs is None and not sets:
        return sweep.cluster
    table = dict(sweep.cluster or {})
    if kind is not None:
        table["kind"] = kind
    if jobs is not None:
        table["jobs"] = jobs
    for item in sets or []:
        try:
            keys, value = parse_override(item)
        except SpecError as exc:
            raise SpecError(f"--cluster-set: {exc}") from None
        if len(keys) != 1:
            raise SpecError(f"--cluster-set: {item!r}: expected KEY=VALUE (one key)")
        table[keys[0]] = value
    if "kind" not in table:
        raise SpecError("--cluster: which cluster (slurm, pbs, sge, lsf, …)? no [cluster] kind")
    from .sweep_workers import check_cluster

    check_cluster(table, "--cluster")
    return table


def _comparable(protocol_dump: dict) -> dict:
    d = json.loads(json.dumps(protocol_dump))
    d.get("train", {}).pop("threads", None)
    return d


def validate(sweep: Sweep, out: Path) -> dict[str, str]:
    """Validate every point before anything runs: the protocol with the point's overrides
    resolves and its task builds. Returns ``{point name: rule name}``. A point directory
    that already holds a run of a *different* protocol is an error (the sweep file changed)."""
    from .protocol import load_protocol, protocol_from_dict
    from .runs import build_task

    rules: dict[str, str] = {}
    for pt in sweep.points:
        try:
            spec = load_protocol(sweep.protocol, list(pt.overrides))
            build_task(spec)
        except SpecError as exc:
            raise SpecError(f"{sweep.path}: point {pt.name}: {exc}") from None
        rules[pt.name] = spec.rule.name
        cfg = out / "points" / pt.name / "config.json"
        if cfg.is_file():
            from .runs import read_config

            try:
                old = json.loads(cfg.read_text())["protocol"]
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
                read_config(cfg.parent)  # raises the one-line "config.json is damaged (…)"
                raise
            # re-resolve, so fields added to bioplaus since then take their defaults
            with contextlib.suppress(SpecError):
                old = protocol_from_dict(old).model_dump(mode="json")
            if _comparable(old) != _comparable(spec.model_dump(mode="json")):
                raise SpecError(
                    f"{sweep.path}: point {pt.name}: {cfg.parent} holds a run of a different "
                    "protocol (the sweep changed); use a new --out"
                )
    return rules


# -- the sweep ---------------------------------------------------------------------------------
def table_path(sweep: Sweep, out: Path) -> Path:
    return out / f"results.{sweep.table}"


def _write_table(rows: list[dict], order: list[str], path: Path, fmt: str) -> pd.DataFrame:
    by = {r["point"]: r for r in rows}
    df = pd.DataFrame([by[n] for n in order if n in by])
    if fmt == "parquet":
        io.atomic_write(path, lambda fh: df.to_parquet(fh, index=False))
    else:
        io.write_text(path, df.to_csv(index=False))
    return df


def read_table(path: str | Path) -> pd.DataFrame:
    """The results table of a sweep (CSV or Parquet)."""
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def run_sweep(
    sweep: str | Path | Sweep,
    out: str | Path | None = None,
    workers: int = 1,
    scheduler: Any = None,
    threads: int | None = None,
    progress: bool = True,
    plot: bool = True,
    retries: int | None = None,
    cluster: dict | None = None,
) -> pd.DataFrame:
    """Run every point of ``sweep`` not yet finished; write ``OUT/results.csv`` and the
    standard figure ``OUT/sweep.png``; return the results table (one row per point).

    Executor: Dask, always. ``workers``: the number of worker processes of a
    ``LocalCluster`` on this machine (1, and no ``scheduler`` or ``cluster``: the points run
    in this process, one after another, no cluster at all). ``scheduler``: a Dask scheduler
    address (``tcp://host:8786``), a ``dask.distributed.Client``, or ``"local"`` (a
    LocalCluster of ``workers``, even for 1). ``cluster``: a ``[cluster]`` table (default:
    the sweep file's) — a dask-jobqueue cluster (``kind = "slurm"`` | pbs | sge | lsf …)
    started here with ``jobs`` jobs (default ``workers``), one worker per job.
    ``threads``: train.threads per point (default: the sweep file's, else the base
    protocol's train.threads capped at each worker's share of the cores — locally
    cores // workers, on another machine 1 — else that share). ``retries``: how many times a
    point whose worker died is run again before it is recorded as failed (default: the
    sweep file's, else 2; on a Dask cluster not started here, its scheduler's
    ``allowed-failures`` decides).

    The table is rewritten atomically after every point; a point already finished is
    skipped, so running the same sweep again only does what is missing.
    """
    from .progress import progress as progress_bar

    sw = sweep if isinstance(sweep, Sweep) else load_sweep(sweep)
    if workers < 1:
        raise SpecError(f"--workers: expected an integer >= 1 (got {workers})")
    if retries is None:
        retries = sw.retries if sw.retries is not None else RETRIES
    if retries < 0:
        raise SpecError(f"--retries: expected an integer >= 0 (got {retries})")
    out = Path(out) if out is not None else Path("runs") / "sweeps" / sw.name
    from .validate import check_out

    check_out(out, key="out")
    rules = validate(sw, out)  # nothing is written before every point validates
    from .protocol import load_protocol
    from .runs import build_task

    first = load_protocol(sw.protocol, list(sw.points[0].overrides))
    lower = build_task(first).lower_is_better
    if threads is None:
        threads = sw.threads
    if cluster is None:
        cluster = sw.cluster  # (checked by load_sweep; one given here by cluster_table)
    elif not isinstance(cluster, dict):
        raise SpecError(f"cluster: expected a table like [cluster] (got {cluster!r})")
    else:
        from .sweep_workers import check_cluster

        check_cluster(cluster, "cluster")
    remote = cluster is not None or (scheduler is not None and scheduler != "local")
    if threads is None:
        # the protocol's own train.threads (the bundled ones say 1: small networks run
        # fastest single-threaded), never more than each worker's share of the cores
        share = 1 if remote else default_threads(workers)
        threads = min(first.train.threads or share, share)
    tasks = [
        {
            "sweep": sw.name,
            "protocol": str(sw.protocol),
            "overrides": list(p.overrides),
            "out": str((out / "points" / p.name).resolve()),
            "name": p.name,
            "variant": p.variant,
            "rule": rules[p.name],
            "values": p.values,
            "threads": threads,
            "lower_is_better": lower,
        }
        for p in sw.points
    ]
    order = [t["name"] for t in tasks]
    rows: list[dict] = []
    todo: list[dict] = []
    for t in tasks:
        st = read_status(Path(t["out"]))
        if st is not None and st.get("status") in FINISHED:
            rows.append(point_row(t))
        else:
            todo.append(t)
    tpath = table_path(sw, out)
    with thread_env(threads), contextlib.ExitStack() as stack:
        client = started = None
        serial = workers == 1 and scheduler is None and cluster is None
        if todo and not serial:  # connect before anything is written
            client, started, own = dask_connect(scheduler, workers, cluster)
            if started is not None:  # closed after the client (the stack is LIFO)
                stack.callback(started.close)
            if own:
                stack.callback(client.close)
        out.mkdir(parents=True, exist_ok=True)
        io.write_json(
            out / "sweep.json",
            {
                "name": sw.name,
                "sweep_file": str(sw.path.resolve()),
                "protocol": str(sw.protocol),
                "sweep": sw.data,
                "points": [{"name": p.name, "overrides": list(p.overrides)} for p in sw.points],
                "threads": threads,  # train.threads of every point (results change at ~1e-8)
            },
        )
        bar = progress_bar(
            total=len(tasks),
            initial=len(rows),
            disable=not progress,
            desc=f"sweep {sw.name}",
            unit="run",
        )
        n_bad = sum(r["status"] != "completed" for r in rows)
        bar.set_postfix(skipped=len(rows), not_completed=n_bad)
        it = (
            # a cluster started here leaves re-runs to us; another one's scheduler re-runs
            # a lost worker's point itself (its allowed-failures) before we would
            run_dask(todo, client, retries if started is not None else 0, log=bar.write)
            if client is not None
            else (run_point(t) for t in todo)
        )
        for row in it:
            rows.append(row)
            n_bad += row["status"] != "completed"
            _write_table(rows, order, tpath, sw.table)
            bar.update(1)
            bar.set_postfix(skipped=len(tasks) - len(todo), not_completed=n_bad)
    bar.close()
    df = _write_table(rows, order, tpath, sw.table)
    # the table in the other format too (CSV and, with pyarrow, Parquet) and every point's
    # curves in one tidy long table (bioplaus.export)
    from .export import export_sweep

    export_sweep(out, df)
    # no figure when no point produced the plotted column (e.g. every point failed)
    if plot and sw.plot_x is not None and sw.plot_x in df.columns and sw.plot_y in df.columns:
        from .analysis.sweep_plots import plot_sweep

        plot_sweep(df, out / "sweep.png", x=sw.plot_x, y=sw.plot_y, title=sw.name)
    return df
