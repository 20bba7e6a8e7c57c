"""bioplaus: biologically plausible training of rate and LIF recurrent networks.

Public API (DESIGN §4)::

    spec   = bp.load_model("models/rate_rnn.toml")   # or bp.RateSpec(...)
    params = bp.init_params(spec, seed=0)
    x      = bp.simulate(spec, inputs, params=params, backend="torch")
    g      = bp.estimate("anp", spec, params, inputs, targets, seed=0)
    result = bp.run("protocols/copy_anp.toml", out="runs/copy_anp")
    bp.register_rule(name, options=..., build=..., mechanism="node")   # a user's rule
    bp.register_task(name, TaskClass)                                    # a user's task
    bp.register_network(kind, init_params=..., estimate=..., ...)        # a network type
    net    = bp.network_type("lif")                  # the entry points of one network type
    run    = bp.load_run("runs/copy_anp")            # config, metrics, final params, status
    table  = bp.load_sweep("runs/sweeps/NAME")       # a sweep's results, one row per point
"""

from . import analysis
from .estimate import estimate
from .export import to_xarray
from .params import init_params
from .registry import network_type, register_network, register_rule
from .results import load_run, load_sweep
from .rules import RuleSpec
from .runs import ensure_run, resume, run
from .simulate import simulate
from .spec import LIFSpec, MLPSpec, RateSpec, SpecError, load_model
from .tasks import register_task
from .version import __version__ as __version__  # the version, written once (version.py)

__all__ = [
    "LIFSpec",
    "MLPSpec",
    "RateSpec",
    "analysis",
    "RuleSpec",
    "SpecError",
    "estimate",
    "init_params",
    "load_model",
    "network_type",
    "register_network",
    "register_rule",
    "register_task",
    "load_run",
    "load_sweep",
    "ensure_run",
    "resume",
    "run",
    "simulate",
    "to_xarray",
]
