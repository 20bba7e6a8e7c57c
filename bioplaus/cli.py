"""Command line: ``bioplaus run | resume | plot | compare | sweep``.

Bad input ends with one line naming the key and the problem, exit status 2, no
traceback, and nothing written. A diverged run exits with status 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"bioplaus: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="bioplaus", description="Biologically plausible training of recurrent networks."
    )
    ap.add_argument("--version", action="version", version=f"bioplaus {_version()}")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="train a protocol into a run directory")
    r.add_argument("protocol", help="protocol TOML file")
    r.add_argument("--out", help="run directory (default runs/NAME-TIMESTAMP)")
    r.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a protocol key, e.g. --set train.lr=1e-2 (repeatable)",
    )
    r.add_argument("--seed", type=int, help="the run's root seed (overrides the protocol's seed)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("resume", help="continue a run from its last checkpoint")
    s.add_argument("run", help="run directory")
    s.add_argument("--quiet", action="store_true")
    p = sub.add_parser("plot", help="(re)draw a run's learning curves")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="PNG path (default RUN/loss.png)")
    c = sub.add_parser(
        "compare",
        help="compare two trained networks (report: figures + report.md), or draw the "
        "learning curves of several runs (--out FILE.png)",
    )
    c.add_argument("runs", nargs="+", help="run directories (two for the full report)")
    c.add_argument(
        "--out", required=True, help="output folder for the report (or a .png: curves only)"
    )
    c.add_argument("--x", choices=["step", "wall_time"], default="step")
    c.add_argument(
        "--alignment",
        action="store_true",
        help="also the cosine of each rule's estimate with BPTT at first and final weights",
    )
    c.add_argument("--trials", type=int, default=32, help="held-out trials simulated (32)")
    c.add_argument("--seed", type=int, default=0, help="seed of the analysis (0)")
    c.add_argument(
        "--fixed-points", type=int, default=64, help="initial states for the fixed-point search"
    )
    w = sub.add_parser("sweep", help="run a grid/random sweep of a protocol")
    w.add_argument("sweep", help="sweep TOML file")
    g = w.add_mutually_exclusive_group()
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes of a Dask LocalCluster (default 1: in this process)",
    )
    g.add_argument(
        "--scheduler",
        help="Dask scheduler address (tcp://host:8786), or 'local' for a LocalCluster",
    )
    g.add_argument(
        "--cluster",
        metavar="KIND",
        help="start a dask-jobqueue cluster: slurm | pbs | sge | lsf | … (else the sweep "
        "file's [cluster] table)",
    )
    w.add_argument("--dask-workers", type=int, default=2, help="workers of --scheduler local")
    w.add_argument("--jobs", type=int, help="jobs of the dask-jobqueue cluster ([cluster] jobs)")
    w.add_argument(
        "--cluster-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [cluster] option (TOML value), e.g. memory='\"8GB\"' (repeatable)",
    )
    w.add_argument("--out", help="sweep folder (default runs/sweeps/NAME)")
    w.add_argument("--threads", type=int, help="train.threads per point (default: share)")
    w.add_argument("--dry-run", action="store_true", help="validate and list the points only")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _version() -> str:
    """The installed distribution's version (package metadata), else the source's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bioplaus")
    except PackageNotFoundError:
        from .version import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    from .runs import RunExistsError, RunInterrupted
    from .spec import SpecError

    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except RunExistsError as exc:
        print(
            f"bioplaus: error: --out: {exc.out} already holds a run (continue it with "
            f"`bioplaus resume {exc.out}`, or choose another --out)",
            file=sys.stderr,
        )
        return 2
    except SpecError as exc:
        print(f"bioplaus: error: {exc}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        print(
            f"bioplaus: interrupted by {exc.signal}; checkpoint at step {exc.step} in "
            f"{exc.out}; continue with: bioplaus resume {exc.out}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("bioplaus: interrupted", file=sys.stderr)
        return 130


def _dispatch(args) -> int:
    from . import runs, validate
    from .analysis.plots import plot_comparison, plot_run
    from .spec import SpecError

    if args.cmd == "run":
        if args.seed is not None and args.seed < 0:
            raise SpecError(f"--seed: expected an integer >= 0 (got {args.seed})")
        seed = [] if args.seed is None else [f"seed={args.seed}"]
        if args.out is not None:
            validate.check_out(args.out, key="--out")
        res = runs.run(
            args.protocol, out=args.out, overrides=args.overrides + seed, progress=not args.quiet
        )
        return _report(res)
    if args.cmd == "resume":
        return _report(runs.resume(args.run, progress=not args.quiet, log=print))
    if args.cmd == "plot":
        runs.check_run_files(args.run)
        if args.out is not None:
            validate.check_out(Path(args.out).parent, key="--out")
            if Path(args.out).is_dir():
                raise SpecError(f"--out: {args.out} is a folder (give a .png path)")
        print(plot_run(args.run, args.out))
        return 0
    if args.cmd == "compare":
        for rd in args.runs:
            runs.check_run_files(rd, params=not args.out.endswith(".png"))
        if args.out.endswith(".png"):
            validate.check_out(Path(args.out).parent, key="--out")
        else:
            validate.check_out(args.out, key="--out")
        if args.out.endswith(".png"):
            print(plot_comparison(args.runs, args.out, x=args.x))
            return 0
        if len(args.runs) != 2:
            raise SpecError(
                f"compare: the report compares two runs (got {len(args.runs)}); "
                "give --out FILE.png to draw learning curves of several"
            )
        for key, low in (("trials", 1), ("fixed_points", 1), ("seed", 0)):
            if getattr(args, key) < low:
                raise SpecError(f"--{key.replace('_', '-')}: expected an integer >= {low}")
        from .analysis.compare import compare_runs

        res = compare_runs(
            args.runs[0],
            args.runs[1],
            args.out,
            alignment=args.alignment,
            n_trials=args.trials,
            seed=args.seed,
            n_fixed_init=args.fixed_points,
            x=args.x,
        )
        print(f"report: {res['report']}")
        return 0
    if args.cmd == "sweep":
        return _sweep(args)
    raise AssertionError(args.cmd)


def _sweep(args) -> int:
    from . import sweep as sw
    from . import validate
    from .spec import SpecError

    if args.workers < 1:
        raise SpecError(f"--workers: expected an integer >= 1 (got {args.workers})")
    if args.threads is not None and args.threads < 1:
        raise SpecError(f"--threads: expected an integer >= 1 (got {args.threads})")
    spec = sw.load_sweep(args.sweep)
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / spec.name
    cluster = sw.cluster_table(spec, args.cluster, args.jobs, args.cluster_set)
    validate.check_out(out, key="--out")
    if args.dry_run:
        sw.validate(spec, out)
        for p in spec.points:
            print(f"{p.name}: {' '.join(p.overrides)}")
        print(f"{len(spec.points)} points valid; results would go to {out}")
        return 0
    workers = args.dask_workers if args.scheduler == "local" else args.workers
    started = time.time() - 1.0  # the figure counts when this sweep (re)drew it
    df = sw.run_sweep(
        spec,
        out,
        workers=workers,
        scheduler=args.scheduler,
        threads=args.threads,
        progress=not args.quiet,
        cluster=cluster,
    )
    counts = df["status"].value_counts().to_dict()
    fig = out / "sweep.png"
    print(
        f"sweep {spec.name}: {len(df)} points — "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + f"; table {sw.table_path(spec, out)}"
        + (f"; figure {fig}" if fig.is_file() and fig.stat().st_mtime >= started else "")
    )
    failed = df[df["status"] == "failed"]
    for _, r in failed.iterrows():
        print(f"failed: {r['point']}: {r['error']}", file=sys.stderr)
    return 3 if len(failed) else 0


def _report(res) -> int:
    if not len(res.metrics):
        print(f"{res.status}: {res.out} — at step 0, nothing logged")
    else:
        from .results import load_run, metric_label, summary_line

        metric = metric_label(load_run(res.out).metric)  # "NRMSE", not "metric"
        print(summary_line(res.status, res.out, res.metrics.iloc[-1], metric))
    if res.status == "diverged":
        print(f"reason: {res.reason}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
