"""backends/torch/tensors.py: what the network packages share about tensors — the recurrent
parameters from and to numpy, ẑ = D z, and the noise source's two ways of giving ξ_t."""

from __future__ import annotations

import numpy as np
import torch

from bioplaus.backends.torch import lif, rate
from bioplaus.backends.torch.tensors import (
    RecurrentParams,
    decorrelate,
    noise_source,
    to_numpy,
    to_torch,
)


def test_rate_and_lif_name_the_one_parameter_record():
    assert rate.RateParams is RecurrentParams and lif.LIFParams is RecurrentParams
    assert rate.to_torch is to_torch and lif.to_torch is to_torch


def test_numpy_round_trip_keeps_values_and_drops_absent_entries():
    rng = np.random.default_rng(0)
    params = {"W_in": rng.normal(size=(4, 2)), "W_rec": rng.normal(size=(4, 4)),
              "W_out": rng.normal(size=(1, 4)), "D_rec": np.eye(4)}  # fmt: skip
    p = to_torch(params, dtype=torch.float64)
    assert p.b is None and p.b_out is None and p.D_in is None
    assert p.W_rec.dtype == torch.float64
    back = to_numpy(p)
    assert set(back) == set(params)
    for k, v in params.items():
        np.testing.assert_array_equal(back[k], v)


def test_decorrelate_is_z_times_d_transposed_or_the_identity():
    z = torch.arange(6.0).view(2, 3)
    D = torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 2.0]])
    assert decorrelate(None, z) is z
    torch.testing.assert_close(decorrelate(D, z), z @ D.T)


def test_noise_source_fill_gives_the_stream_of_its_calls():
    by_call = noise_source((3, 5), generator=torch.Generator().manual_seed(4))
    by_fill = noise_source((3, 5), generator=torch.Generator().manual_seed(4))
    steps = torch.stack([by_call(t) for t in range(4)])
    buf = torch.empty(4, 3, 5)
    by_fill.fill(0, buf)
    assert torch.equal(steps, buf)
    given = noise_source((3, 5), noise=steps)
    assert torch.equal(given(2), steps[2]) and given.active
    silent = noise_source((3, 5))
    assert silent(0) is None and not silent.active
