"""Parameter initialisation: a dict of numpy arrays, shaped like torch.nn.Linear ([out, in])."""

from __future__ import annotations

import numpy as np

from .random import numpy_rng
from .registry import network_type
from .spec import ModelSpec
from .validate import check_shapes, check_spec_type

Params = dict[str, np.ndarray]


def _weight(
    rng: np.random.Generator, n_out: int, n_in: int, init: str, gain: float = 1.0
) -> np.ndarray:
    # xavier_normal: std √(2/(fan_in+fan_out)); normal: std 1/√fan_in (both times the gain)
    std = gain * (np.sqrt(2.0 / (n_in + n_out)) if init == "xavier_normal" else 1 / np.sqrt(n_in))
    return rng.standard_normal((n_out, n_in)) * std


def init_params(spec: ModelSpec, seed: int = 0) -> Params:
    """Initial parameters for ``spec``: W_in [N, n_in], W_rec [N, N], W_out [n_out, N],
    plus b [N], b_out [n_out] when the spec has biases (zeros), and D_in [n_in, n_in],
    D_rec [N, N] (identity) when it decorrelates. float64 arrays; backends cast.
    An :class:`~bioplaus.spec.MLPSpec` gets W{l}, b{l}, D{l} (see :mod:`bioplaus.mlp`).

    The network type's own initialiser (``bp.network_type(spec.kind).init_params``):
    :func:`init_rate_params`, :func:`init_lif_params`, :func:`bioplaus.mlp.init_mlp_params`."""
    check_spec_type(spec)  # TypeError for a dict or another object (bioplaus.validate)
    return network_type(spec.kind).init_params(spec, seed)


def init_rate_params(spec: ModelSpec, seed: int = 0) -> Params:
    """Initial rate-network parameters (float64 numpy): W_in, W_out with std 1/√fan_in
    (``normal``) or √(2/(fan_in+fan_out)) (``xavier_normal``), W_rec the same times
    ``rec_gain``; b, b_out zeros; D_in, D_rec identity when the spec decorrelates."""
    rng = numpy_rng(seed, "init_params")
    p: Params = {
        "W_in": _weight(rng, spec.n_rec, spec.n_in, spec.weight_init),
        "W_rec": _weight(rng, spec.n_rec, spec.n_rec, spec.weight_init, spec.rec_gain),
        "W_out": _weight(rng, spec.n_out, spec.n_rec, spec.weight_init),
    }
    if spec.bias:
        p["b"] = np.zeros(spec.n_rec)
    if spec.out_bias:
        p["b_out"] = np.zeros(spec.n_out)
    if spec.decorrelate_input:
        p["D_in"] = np.eye(spec.n_in)
    if spec.decorrelate_rec:
        p["D_rec"] = np.eye(spec.n_rec)
    return p


def init_lif_params(spec, seed: int = 0) -> Params:
    """Initial LIF parameters (float64 numpy): W_in std in_gain/√n_in, W_rec std rec_gain/√N
    with zero diagonal (no autapses), W_out std out_gain/√N (``normal``; ``xavier_normal``
    uses √(2/(fan_in+fan_out)) times the same gains); b, b_out zeros; D_in, D_rec identity
    when the spec decorrelates."""
    rng = numpy_rng(seed, "init_params", "lif")

    def w(n_out: int, n_in: int, gain: float) -> np.ndarray:
        xavier = spec.weight_init == "xavier_normal"
        std = np.sqrt(2.0 / (n_in + n_out)) if xavier else 1 / np.sqrt(n_in)
        return rng.standard_normal((n_out, n_in)) * std * gain

    N = spec.n_rec
    W_rec = w(N, N, spec.rec_gain)
    np.fill_diagonal(W_rec, 0.0)
    p = {
        "W_in": w(N, spec.n_in, spec.in_gain),
        "W_rec": W_rec,
        "W_out": w(spec.n_out, N, spec.out_gain),
    }
    if spec.bias:
        p["b"] = np.zeros(N)
    if spec.out_bias:
        p["b_out"] = np.zeros(spec.n_out)
    if spec.decorrelate_input:
        p["D_in"] = np.eye(spec.n_in)
    if spec.decorrelate_rec:
        p["D_rec"] = np.eye(N)
    return p


#: parameters a learning rule changes by gradient estimates (D is changed by decorrelation)
LEARNABLE = ("W_in", "W_rec", "W_out", "b", "b_out")
DECORRELATORS = ("D_in", "D_rec")


def check_params(spec: ModelSpec, params: Params) -> None:
    """Raise ValueError naming the key if a parameter is missing or has the wrong shape
    (the network type's own check, ``bp.network_type(spec.kind).check_params``)."""
    network_type(spec.kind).check_params(spec, params)


def check_rnn_params(spec: ModelSpec, params: Params) -> None:
    """The shapes of a recurrent network's parameters (rate and LIF): W_in [N, n_in],
    W_rec [N, N], W_out [n_out, N], b [N], b_out [n_out], D_in [n_in, n_in], D_rec [N, N]."""
    shapes = {
        "W_in": (spec.n_rec, spec.n_in),
        "W_rec": (spec.n_rec, spec.n_rec),
        "W_out": (spec.n_out, spec.n_rec),
        "b": (spec.n_rec,),
        "b_out": (spec.n_out,),
        "D_in": (spec.n_in, spec.n_in),
        "D_rec": (spec.n_rec, spec.n_rec),
    }
    check_shapes(params, shapes, ("W_in", "W_rec", "W_out"))
