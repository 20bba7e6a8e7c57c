"""Results anywhere: bioplaus's outputs as files and objects other tools read directly.

Tables (pandas; CSV always, Parquet with pyarrow — ``pip install 'bioplaus[export]'``)::

    metrics_long(run_dir)          a run's metrics.csv as a tidy long table:
                                   step, wall_time, split (train | eval | -), quantity, value
    export_run(run_dir)            writes RUN/metrics.parquet (the wide table, as metrics.csv)
                                   and RUN/metrics_long.csv / .parquet
    export_sweep(out)              writes OUT/results.csv and OUT/results.parquet (one row per
                                   point) and OUT/metrics_long.csv / .parquet: every point's
                                   curves in one long table, with the point's swept values

Arrays (xarray, ``pip install 'bioplaus[export]'``), dims ``time``, ``batch``, ``unit``
(and ``input``, ``output`` for inputs, targets and outputs), ``time`` in seconds::

    to_xarray(states, spec, dt=...)            states of ``bp.simulate`` [T, B, N]
    compare_dataset(run_a, run_b)              the arrays of ``bioplaus compare``'s report:
                                               the held-out trials, both networks' clean
                                               states and outputs, final and initial
    save_dataset(ds, path)                     netCDF (.nc), readable by xarray, netCDF4,
                                               MATLAB's ncread, R's ncdf4 …

Nothing here imports a backend at module level; xarray and pyarrow are imported when used,
with a one-line ImportError naming the extra when they are missing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import io

#: metrics.csv columns that are not measured quantities
ID_COLUMNS = ("step", "wall_time")


def _xarray():
    try:
        import xarray
    except ImportError:
        raise ImportError(
            "bioplaus.export: labelled arrays need xarray (pip install 'bioplaus[export]')"
        ) from None
    return xarray


def has_parquet() -> bool:
    """Whether Parquet can be written (pyarrow or fastparquet installed)."""
    for mod in ("pyarrow", "fastparquet"):
        try:
            __import__(mod)
            return True
        except ImportError:
            continue
    return False


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically as CSV or Parquet, by ``path``'s suffix."""
    path = Path(path)
    if path.suffix == ".parquet":
        if not has_parquet():
            raise ImportError(f"{path}: Parquet needs pyarrow (pip install 'bioplaus[export]')")
        io.atomic_write(path, lambda fh: df.to_parquet(fh, index=False))
    elif path.suffix == ".csv":
        io.write_text(path, df.to_csv(index=False))
    else:
        raise ValueError(f"{path}: expected a .csv or .parquet file")
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """A table written by bioplaus (CSV or Parquet, by suffix)."""
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


# -- tables ---------------------------------------------------------------------------------
def _split(col: str) -> tuple[str, str]:
    """``eval_accuracy`` → (eval, accuracy); ``train_loss`` → (train, loss); ``loss`` →
    (-, loss): the columns of metrics.csv as (split, quantity)."""
    m = re.match(r"^(train|eval)_(.+)$", col)
    return (m.group(1), m.group(2)) if m else ("-", col)


def metrics_long(run_dir: str | Path) -> pd.DataFrame:
    """A run's ``metrics.csv`` as a tidy long table: one row per (step, split, quantity),
    columns ``step``, ``wall_time``, ``split`` (``train``, ``eval``, or ``-`` for the
    headline columns ``loss``, ``eval_loss``, ``metric``, ``grad_norm``), ``quantity``,
    ``value``. Rows whose value is missing (a metric not evaluated at that step) are
    dropped."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no metrics.csv)")
    wide = pd.read_csv(path)
    ids = [c for c in ID_COLUMNS if c in wide.columns]
    long = wide.melt(id_vars=ids, var_name="column", value_name="value")
    sq = long["column"].map(_split)
    long["split"] = [s for s, _ in sq]
    long["quantity"] = [q for _, q in sq]
    long = long.dropna(subset=["value"])
    cols = [*ids, "split", "quantity", "value"]
    return (
        long[cols]
        .sort_values([*ids[:1], "split", "quantity"], kind="stable")
        .reset_index(drop=True)
    )


def export_run(run_dir: str | Path, parquet: bool | None = None) -> list[Path]:
    """Write a run's metrics as ``metrics_long.csv`` and, with pyarrow (``parquet`` None:
    when installed), ``metrics.parquet`` (the wide table) and ``metrics_long.parquet``.
    Returns the files written."""
    d = Path(run_dir)
    long = metrics_long(d)
    written = [write_table(long, d / "metrics_long.csv")]
    if parquet is None:
        parquet = has_parquet()
    if parquet:
        written.append(write_table(pd.read_csv(d / "metrics.csv"), d / "metrics.parquet"))
        written.append(write_table(long, d / "metrics_long.parquet"))
    return written


def sweep_metrics_long(out: str | Path, results: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every point's curves in one tidy table: :func:`metrics_long` of each point with the
    point's ``point``, ``variant``, ``rule``, swept values and ``status`` in front."""
    out = Path(out)
    if results is None:
        results = _sweep_results(out)
    keys = [
        c for c in results.columns if c in ("point", "variant", "rule") or "." in c or c == "seed"
    ]
    frames = []
    for _, r in results.iterrows():
        d = out / str(r.get("run_dir", Path("points") / r["point"]))
        if not (d / "metrics.csv").is_file():
            continue
        long = metrics_long(d)
        for k in reversed([*keys, "status"]):
            long.insert(0, k, r[k])
        frames.append(long)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _sweep_results(out: Path) -> pd.DataFrame:
    for suffix in (".csv", ".parquet"):
        if (out / f"results{suffix}").is_file():
            return read_table(out / f"results{suffix}")
    raise FileNotFoundError(f"{out}: not a sweep folder (no results.csv or results.parquet)")


def export_sweep(
    out: str | Path, results: pd.DataFrame | None = None, parquet: bool | None = None
) -> list[Path]:
    """Write a sweep's table (``results``, default: the one on disk) as ``results.csv`` and,
    with pyarrow (``parquet`` None: when installed), ``results.parquet``, and all its
    curves as ``metrics_long.csv`` (/ ``.parquet``). Returns the files written."""
    out = Path(out)
    if results is None:
        results = _sweep_results(out)
    if parquet is None:
        parquet = has_parquet()
    written = [write_table(results, out / "results.csv")]
    long = sweep_metrics_long(out, results)
    written.append(write_table(long, out / "metrics_long.csv"))
    if parquet:
        written.append(write_table(results, out / "results.parquet"))
        written.append(write_table(long, out / "metrics_long.parquet"))
    return written


# -- arrays ---------------------------------------------------------------------------------
def _attrs(spec: Any) -> dict[str, Any]:
    """netCDF-safe attributes (numbers and strings) from a model spec."""
    if spec is None:
        return {}
    dump = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)
    out: dict[str, Any] = {}
    for k, v in dump.items():
        if isinstance(v, bool):
            out[k] = int(v)
        elif isinstance(v, int | float | str):
            out[k] = v
    return out


def _state_name(spec: Any) -> str:
    """The name of the state ``bp.simulate`` returns for ``spec``'s network type (x, v)."""
    from .registry import network_type

    return network_type(getattr(spec, "kind", "rate")).state


def to_xarray(
    states: np.ndarray,
    spec: Any = None,
    dt: float | None = None,
    inputs: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    outputs: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    name: str | None = None,
    t0: float = 0.0,
) -> Any:
    """States of :func:`bioplaus.simulate` [T, B, N] as an ``xarray.Dataset``.

    Dims ``time`` (seconds: ``t0 + dt · step``; ``dt`` defaults to ``spec.dt``, else steps),
    ``batch``, ``unit``; the state variable is ``x`` for a rate network, ``v`` for LIF
    (``name`` to choose), with the optional ``inputs`` [T, B, n_in] (dim ``input``),
    ``targets`` and ``outputs`` [T, B, n_out] (dim ``output``) and ``mask`` [T, B]. The
    model spec's scalar fields become attributes (``tau``, ``sigma``, …).
    """
    xr = _xarray()
    x = np.asarray(states)
    if x.ndim != 3:
        raise ValueError(f"states must be [T, B, N] (got shape {x.shape})")
    T, B, N = x.shape
    if dt is None:
        dt = getattr(spec, "dt", None)
    time = t0 + np.arange(T) * (float(dt) if dt is not None else 1.0)
    coords = {"time": time, "batch": np.arange(B), "unit": np.arange(N)}
    var = name or _state_name(spec)
    data: dict[str, Any] = {var: (("time", "batch", "unit"), x)}
    for key, arr, dim in (
        ("inputs", inputs, "input"),
        ("targets", targets, "output"),
        ("outputs", outputs, "output"),
    ):
        if arr is None:
            continue
        a = np.asarray(arr)
        if a.ndim != 3 or a.shape[:2] != (T, B):
            raise ValueError(f"{key} must be [T={T}, B={B}, n] (got shape {a.shape})")
        data[key] = (("time", "batch", dim), a)
        coords.setdefault(dim, np.arange(a.shape[2]))
    if mask is not None:
        m = np.asarray(mask, dtype=np.float64)
        if m.shape != (T, B):
            raise ValueError(f"mask must be [T={T}, B={B}] (got shape {m.shape})")
        data["mask"] = (("time", "batch"), m)
    ds = xr.Dataset(data, coords=coords, attrs=_attrs(spec))
    ds["time"].attrs["units"] = "s" if dt is not None else "step"
    ds[var].attrs["long_name"] = "membrane potential" if var == "v" else "hidden state"
    return ds


def compare_dataset(run_a: str | Path, run_b: str | Path, n_trials: int = 32, seed: int = 0) -> Any:
    """The arrays of ``bioplaus compare A B`` (same ``--trials`` and ``--seed``: the same
    held-out trials of A's task) as one ``xarray.Dataset``: ``inputs``, ``targets``,
    ``mask`` (1 where scored; all ones when the task scores every step), and per network
    ``x_A``, ``x_B`` (clean states after training), ``x_A_init``,
    ``x_B_init`` (before), ``outputs_A``, ``outputs_B``; attributes name the runs."""
    from .analysis.compare import _check_same_task, clean_states, load_run, readout
    from .random import numpy_rng

    a, b = load_run(run_a), load_run(run_b)
    _check_same_task(a, b)
    batch = a.task.sample(n_trials, numpy_rng(seed, "compare", "trials"), split="test")
    xa, xb = clean_states(a, batch.inputs), clean_states(b, batch.inputs)
    ds = to_xarray(
        xa,
        a.protocol.model,
        inputs=batch.inputs,
        targets=batch.targets,
        outputs=readout(a, xa),
        mask=batch.mask if batch.mask is not None else np.ones(batch.inputs.shape[:2]),
        name="x_A",
    ).rename({"outputs": "outputs_A"})
    xr = _xarray()
    if xb.shape[2] != xa.shape[2]:  # networks of different sizes: B's units are its own dim
        ds = ds.assign_coords(unit_B=np.arange(xb.shape[2]))
        dims = ("time", "batch", "unit_B")
    else:
        dims = ("time", "batch", "unit")
    ds["x_B"] = xr.Variable(dims, xb)
    ds["outputs_B"] = xr.Variable(("time", "batch", "output"), readout(b, xb))
    ds["x_A_init"] = xr.Variable(("time", "batch", "unit"), clean_states(a, batch.inputs, a.init))
    ds["x_B_init"] = xr.Variable(dims, clean_states(b, batch.inputs, b.init))
    ds.attrs = {
        "run_A": str(a.path),
        "run_B": str(b.path),
        "label_A": a.label,
        "label_B": b.label,
        "task": str(a.protocol.task.get("name")),
        "n_trials": int(n_trials),
        "seed": int(seed),
        "dt": float(a.protocol.model.dt),
    }
    return ds


def save_dataset(ds: Any, path: str | Path) -> Path:
    """Write an xarray Dataset as netCDF (atomically: a temporary file, then rename)."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    ds.to_netcdf(tmp)
    os.replace(tmp, path)
    return path
