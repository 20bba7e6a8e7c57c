"""How figures and summaries name things: metrics ("NRMSE") and rules as trained
("anp + decorrelation"). No plotting imports, so summaries stay cheap."""

from __future__ import annotations

#: how figures and summaries spell the tasks' metric names
METRIC_LABELS = {
    "nrmse": "NRMSE",
    "mse": "MSE",
    "r2": "R²",
    "error_bits": "error bits",
    "accuracy": "accuracy",
}


def metric_label(name: str) -> str:
    """``"nrmse"`` → ``"NRMSE"``: the name a figure or summary line prints."""
    return METRIC_LABELS.get(name, name.replace("_", " "))


def rule_label(protocol: dict) -> str:
    """The rule of a resolved protocol (config.json's ``protocol``) as trained: its name,
    with ``+ decorrelation`` when the run learned decorrelating matrices (train.lr_decor > 0),
    e.g. ``"anp + decorrelation"`` for DANP."""
    name = protocol["rule"]["name"]
    lr_decor = protocol.get("train", {}).get("lr_decor", 0) or 0
    decor = lr_decor > 0 and name not in ("danp", "dnp", "dinp")
    return f"{name}{' + decorrelation' if decor else ''}"
