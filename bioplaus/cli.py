"""Command line: ``bioplaus run | resume | plot | compare``.

Bad input ends with one line naming the key and the problem, exit status 2, no
traceback, and nothing written. A diverged run exits with status 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"bioplaus: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="bioplaus", description="Biologically plausible training of recurrent networks."
    )
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
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("resume", help="continue a run from its last checkpoint")
    s.add_argument("run", help="run directory")
    s.add_argument("--quiet", action="store_true")
    p = sub.add_parser("plot", help="(re)draw a run's learning curves")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="PNG path (default RUN/loss.png)")
    c = sub.add_parser("compare", help="learning curves of several runs in one figure")
    c.add_argument("runs", nargs="+", help="run directories")
    c.add_argument("--out", required=True, help="PNG path")
    c.add_argument("--x", choices=["step", "wall_time"], default="step")
    return ap


def main(argv: list[str] | None = None) -> int:
    from .spec import SpecError

    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except SpecError as exc:
        print(f"bioplaus: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bioplaus: interrupted (resume with `bioplaus resume RUN`)", file=sys.stderr)
        return 130


def _dispatch(args) -> int:
    from . import runs
    from .analysis.plots import plot_comparison, plot_run
    from .spec import SpecError

    if args.cmd == "run":
        res = runs.run(
            args.protocol, out=args.out, overrides=args.overrides, progress=not args.quiet
        )
        return _report(res)
    if args.cmd == "resume":
        return _report(runs.resume(args.run, progress=not args.quiet))
    if args.cmd == "plot":
        if not (Path(args.run) / "metrics.csv").is_file():
            raise SpecError(f"{args.run}: not a run directory (no metrics.csv)")
        print(plot_run(args.run, args.out))
        return 0
    if args.cmd == "compare":
        for rd in args.runs:
            if not (Path(rd) / "metrics.csv").is_file():
                raise SpecError(f"{rd}: not a run directory (no metrics.csv)")
        print(plot_comparison(args.runs, args.out, x=args.x))
        return 0
    raise AssertionError(args.cmd)


def _report(res) -> int:
    last = res.metrics.iloc[-1]
    print(
        f"{res.status}: {res.out} — step {int(last['step'])}, "
        f"held-out loss {last['eval_loss']:.4g}, metric {last['metric']:.4g}"
    )
    if res.status == "diverged":
        print(f"reason: {res.reason}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
