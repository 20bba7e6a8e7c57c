"""Shared test set-up: GPU tests skip without CUDA; brian2 state never leaks between tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    import torch

    # known third-party noise: brian2 uses pyparsing's deprecated camelCase API (thousands
    # of warnings per run); the library filters it too (bioplaus/backends/brian2/__init__)
    try:
        from pyparsing.warnings import PyparsingDeprecationWarning  # noqa: F401
    except ImportError:
        pass
    else:
        config.addinivalue_line(
            "filterwarnings", "ignore::pyparsing.warnings.PyparsingDeprecationWarning"
        )
    # dask.distributed when another process on the machine holds its dashboard port
    config.addinivalue_line("filterwarnings", "ignore:Port \\d+ is already in use:UserWarning")

    # the test networks are small: one thread is fastest, and CI has only 2 cores
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not item.keywords: a folder named gpu
            item.add_marker(skip)


@pytest.fixture
def machine_of_24_gib(monkeypatch):
    """The memory check sees a machine of 24 GiB (``BIOPLAUS_MEMORY_GIB``), whatever this
    one has."""
    monkeypatch.setenv("BIOPLAUS_MEMORY_GIB", "24")
