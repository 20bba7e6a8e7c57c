"""Progress reports for long loops: a tqdm bar on a terminal, periodic plain lines otherwise.

A bar redrawn into a log file (``bioplaus run ... > log 2>&1``, a batch job, a Dask
worker) leaves hundreds of carriage-return frames per run; there, :func:`progress`
prints one plain line every ``BIOPLAUS_PROGRESS_INTERVAL`` seconds (default 30) and one at
the end instead::

    demo_danp [anp]: 600/1500 step (40%), 24 s, loss=0.0123 NRMSE=0.41

``BIOPLAUS_PROGRESS=bar`` or ``lines`` forces one style, ``off`` silences both.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO, TypedDict, Unpack

INTERVAL_S = 30.0


def _style(stream: TextIO) -> str:
    forced = os.environ.get("BIOPLAUS_PROGRESS", "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # a closed or exotic stream
        return "lines"


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("BIOPLAUS_PROGRESS_INTERVAL", INTERVAL_S)))
    except ValueError:
        return INTERVAL_S


class LineProgress:
    """The tqdm methods bioplaus uses (update, set_postfix, write, close), as plain lines."""

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "",
        unit: str = "it",
        disable: bool = False,
        stream: TextIO | None = None,
        interval: float | None = None,
    ):
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.disable = disable
        self.stream = stream if stream is not None else sys.stderr
        self.interval = _interval() if interval is None else interval
        self.postfix: dict[str, Any] = {}
        self._t0 = self._last = time.monotonic()
        self._printed_n: int | None = None
        self._closed = False

    def _line(self) -> str:
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        head = f"{self.desc}: " if self.desc else ""
        el = time.monotonic() - self._t0
        return f"{head}{self.n}/{self.total} {self.unit}{pct}, {el:.0f} s" + (
            f", {extra}" if extra else ""
        )

    def _emit(self) -> None:
        if self.disable:
            return
        print(self._line(), file=self.stream, flush=True)
        self._printed_n = self.n
        self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._last >= self.interval:
            self._emit()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kw) -> None:
        self.postfix = dict(ordered_dict or {}, **kw)

    def write(self, msg: str) -> None:  # as tqdm.write: a message line on stdout
        print(msg, file=sys.stdout, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._printed_n != self.n:  # the final state, once
            self._emit()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ProgressOptions(TypedDict, total=False):
    """The options :func:`progress` hands on unchanged to the reporter it picks (tqdm and
    :class:`LineProgress` take them alike; defaults 0, "", "it", False)."""

    initial: int
    desc: str
    unit: str
    disable: bool


def progress(total: int, stream: TextIO | None = None, **options: Unpack[ProgressOptions]):
    """A progress reporter with tqdm's ``update`` / ``set_postfix`` / ``write`` /
    ``close``: a tqdm bar when ``stream`` (default stderr, where tqdm draws) is a terminal,
    a :class:`LineProgress` otherwise; ``BIOPLAUS_PROGRESS=off`` sets ``disable``."""
    stream = stream if stream is not None else sys.stderr
    style = _style(stream)
    if style == "off":
        options["disable"] = True
    if style == "bar":
        from tqdm.auto import tqdm

        return tqdm(total=total, dynamic_ncols=True, file=stream, **options)
    return LineProgress(total, stream=stream, **options)
