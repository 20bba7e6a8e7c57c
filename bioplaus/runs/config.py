"""What a run records about itself: the resolved protocol, its task, the seeds, versions and
the command (config.json); and the comparison of a saved protocol with a new one."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import validate
from ..protocol import ProtocolSpec, load_protocol, protocol_from_dict
from ..random import child_seed
from ..tasks.base import Task


def build_task(protocol: ProtocolSpec, source: str | None = None) -> Task:
    """Instantiate the protocol's task and check its sizes against the model (and that the
    protocol's device exists). Errors are one line, ``source: task.<key>: problem``."""
    from ..tasks.build import task_for

    task = task_for(protocol.task, protocol.model, protocol.seed, source)
    validate.check_protocol(protocol, source, task)  # cross-field rules, device, memory
    return task


def _resolve(
    protocol: str | Path | ProtocolSpec | dict, overrides: list[str] | None
) -> ProtocolSpec:
    if isinstance(protocol, ProtocolSpec):
        if overrides:
            raise TypeError("overrides: apply them to a protocol file or dict, not a ProtocolSpec")
        return protocol
    if isinstance(protocol, dict):
        if overrides:
            from ..protocol import apply_overrides

            protocol = apply_overrides(protocol, list(overrides))
        return protocol_from_dict(protocol)
    if not isinstance(protocol, str | Path):
        raise TypeError(
            f"protocol: expected a TOML path, a dict or a ProtocolSpec (got "
            f"{type(protocol).__name__})"
        )
    return load_protocol(protocol, overrides)


def _git_info() -> dict[str, Any]:
    """The commit and dirty flag of the checkout bioplaus runs from (empty when not one)."""
    import subprocess

    here = Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        if top.returncode != 0:
            return {}
        root, commit = top.stdout.split()[:2]
        if not (Path(root) / "bioplaus" / "__init__.py").is_file():
            return {}
        st = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return {"git_commit": commit, "git_dirty": bool(st.stdout.strip())}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def _versions() -> dict[str, Any]:
    from importlib import metadata

    import torch

    from ..version import __version__

    out: dict[str, Any] = {
        "bioplaus": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    for dist in ("pydantic", "brian2"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out.update(_git_info())
    return out


def run_config(spec: ProtocolSpec) -> dict[str, Any]:
    """config.json of a new run: the resolved protocol, its seeds (root and the derived
    streams), versions (and git commit), torch threads, the command and the time."""
    import torch

    return {
        "protocol": spec.model_dump(mode="json"),
        "seeds": {
            "root": spec.seed,
            "init_params": child_seed(spec.seed, "init_params"),
            "task/train": child_seed(spec.seed, "task", "train"),
            "task/eval": child_seed(spec.seed, "task", "eval"),
            "noise": child_seed(spec.seed, "noise"),
        },
        "versions": _versions(),
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def _comparable(dump: dict) -> dict:
    d = json.loads(json.dumps(dump))
    d.get("train", {}).pop("threads", None)
    return d


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path}: saved {a!r}, now {b!r}"
