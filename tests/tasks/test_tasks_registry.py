"""make_task: the registry and its error messages."""

from __future__ import annotations

import pytest

from bioplaus.tasks import TASKS, Batch, CopyTask, MackeyGlassTask, Task, make_task


def test_registry():
    assert {"copy": CopyTask, "mackey_glass": MackeyGlassTask}.items() <= dict(TASKS).items()
    for name, cls in TASKS.items():
        assert issubclass(cls, Task) and cls.name == name
    assert Batch._fields == ("inputs", "targets", "mask")


def test_make_task_passes_options():
    task = make_task("copy", length=5, delay=2)
    assert isinstance(task, CopyTask) and task.length == 5 and task.delay == 2
    mg = make_task("mackey_glass", length=50, mode="forecast", horizon=4)
    assert isinstance(mg, MackeyGlassTask) and mg.horizon == 4


def test_unknown_task():
    names = ", ".join(repr(n) for n in sorted(TASKS))
    msg = rf"^task: unknown task 'cpy' \(choose from \[{names}\]\)$"
    with pytest.raises(ValueError, match=msg):
        make_task("cpy")


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="unknown option 'lenght'"):
        make_task("copy", lenght=5)


@pytest.mark.parametrize(
    ("name", "kw", "option"),
    [
        ("copy", {"length": 0}, "length"),
        ("copy", {"delay": "x"}, "delay"),
        ("mackey_glass", {"mode": "predict"}, "mode"),
        ("mackey_glass", {"washout": 10, "length": 10}, "washout"),
        ("mackey_glass", {"mode": "forecast", "shift": 3}, "shift"),
    ],
)
def test_invalid_value_is_named(name, kw, option):
    with pytest.raises(ValueError, match=option):
        make_task(name, **kw)
