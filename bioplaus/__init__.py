"""bioplaus: biologically plausible training of rate and LIF recurrent networks.

Public API (DESIGN §4)::

    spec   = bp.load_model("models/rate_rnn.toml")   # or bp.RateSpec(...)
    params = bp.init_params(spec, seed=0)
    x      = bp.simulate(spec, inputs, params=params, backend="torch")
    g      = bp.estimate("anp", spec, params, inputs, targets, seed=0)
    result = bp.run("protocols/copy_anp.toml", out="runs/copy_anp")
    run    = bp.load_run("runs/copy_anp")            # config, metrics, final params, status
    table  = bp.load_sweep("runs/sweeps/NAME")       # a sweep's results, one row per point
"""

from . import analysis
from .estimate import estimate
from .params import init_params
from .results import load_run, load_sweep
from .rules import RuleSpec
from .runs import ensure_run, resume, run
from .simulate import simulate
from .spec import LIFSpec, MLPSpec, RateSpec, SpecError, load_model

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
    "load_run",
    "load_sweep",
    "ensure_run",
    "resume",
    "run",
    "simulate",
]
__version__ = "0.1.0"
