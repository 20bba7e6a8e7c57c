"""The run folder: what it holds, its lock, its state, and the errors about it.

A folder is absent, empty (only locks, temporaries or a sweep point's failed start), a run
(it holds config.json) or foreign (anything else, which a run refuses). One process at a
time trains a run: it holds an exclusive ``flock`` on ``.run.lock``, which holds its pid.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..spec import SpecError

try:
    import fcntl
except ImportError:  # not on a POSIX system: run folders are not locked
    fcntl = None  # type: ignore[assignment]

LOCK = ".run.lock"
#: files of a run folder; ``overwrite=True`` removes exactly these
RUN_FILES = (
    "config.json", "status.json", "metrics.csv", "checkpoint.pt", "params_final.npz",
    "loss.png", "error.txt",
)  # fmt: skip
#: hidden files a folder may hold and still count as empty (locks of a run or sweep point)
_LOCKS = {LOCK, ".lock"}
#: what a sweep worker leaves in a point whose run failed before it wrote config.json
_FAILED_START = {"status.json", "error.txt"}


class RunExistsError(SpecError):
    """``out`` already holds a run (``.out``: the folder)."""

    def __init__(self, message: str, out: Path):
        super().__init__(message)
        self.out = out


class RunBusyError(SpecError):
    """Another process holds the run folder's lock (``.pid``: its pid, or "?")."""

    def __init__(self, message: str, pid: str):
        super().__init__(message)
        self.pid = pid


class DamagedRunError(SpecError):
    """A run file cannot be read back; nothing was changed."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT / SIGTERM (or Ctrl-C). ``.out`` the folder, ``.step`` the step
    of its last checkpoint, ``.signal`` the signal's name; ``str()`` says how to continue."""

    def __init__(self, out: Path, step: int, signame: str, at: int | None = None):
        self.out, self.step, self.signal = out, step, signame
        at = step if at is None else at
        where = f"at step {at}" + ("" if at == step else f" (last checkpoint: step {step})")
        super().__init__(
            f"{out}: interrupted by {signame} {where}; continue with bp.resume({str(out)!r})"
        )


def _folder_state(out: Path) -> str:
    """absent | empty | run | foreign (a non-empty folder without config.json)."""
    if not out.exists():
        return "absent"
    if (out / "config.json").exists():
        return "run"
    names = [p.name for p in out.iterdir()]
    rest = [
        n
        for n in names
        if n not in _LOCKS
        and n not in _FAILED_START
        and not (n.startswith(".") and n.endswith(".tmp"))
    ]
    return "foreign" if rest else "empty"


def _read_pid(fd: int) -> str:
    for _ in range(50):  # the holder writes its pid right after it takes the lock
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text.split()[0]
        time.sleep(0.01)
    return "?"


@contextlib.contextmanager
def held_lock(path: Path, busy: Callable[[int], None]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created, with its folder; then
    holding ``PID HOST``) for the block. When another process holds it, ``busy(fd)`` is
    called: it raises to refuse, or returns to wait for the holder. The kernel releases the
    lock when the holder dies, so a killed process never blocks anyone. Without ``fcntl``
    (not POSIX) the pid is still written but nothing is locked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy(fd)
                fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``run_dir/.run.lock`` (which then holds ``PID HOST``);
    refuse at once (:class:`RunBusyError`, naming the holder's pid) when another process
    holds it. The kernel releases the lock when the holder dies, so a killed run never
    blocks its resume."""

    def refuse(fd: int) -> None:
        pid = _read_pid(fd)
        raise RunBusyError(
            f"{run_dir}: in use by another process (pid {pid}); nothing was changed", pid
        ) from None

    with held_lock(run_dir / LOCK, refuse):
        yield


def _remove_temporaries(run_dir: Path) -> int:
    n = 0
    for f in run_dir.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            f.unlink()
            n += 1
    return n
