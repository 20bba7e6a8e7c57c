"""The built-in network types, one module each, found by name through the registry.

Each module gathers, for one model kind, what ``bp.init_params``, ``bp.simulate``,
``bp.estimate``, the trainer, the run loop, exports and analysis need, and registers it with
:func:`bioplaus.registry.register_network`:

    rate   :mod:`.rate`  rate RNN, τ dx/dt = −x + W_rec φ(x) + W_in u + b (torch, brian2)
    lif    :mod:`.lif`   spiking LIF network (torch: ``backends/torch/lif/``; brian2)
    mlp    :mod:`.mlp`   feed-forward network on static samples (torch)

The implementations stay in the back-ends (``backends/torch/rate/``, ``backends/torch/lif/``,
``backends/torch/mlp.py``, ``backends/brian2/``); these modules only wire them, with the spec
class (``spec=RateSpec``, …) and what validation reads of the type (``memory``,
``option_limits``, ``simulate_options``, ``preset_keys``). A user's network type is
registered the same way, from a plug-in module, with a spec class of its own. The registry
imports this package on its first lookup (:func:`bioplaus.registry.network_type`).
"""

from __future__ import annotations

from . import lif, mlp, rate

__all__ = ["lif", "mlp", "rate"]
