"""Generate the model and protocol file reference from the pydantic specs.

Every key of a model file (each model kind registered in ``bioplaus.spec``) and of a
protocol file (``ProtocolSpec`` with its ``[rule]`` and ``[train]`` tables, and each task's
options) is listed with its type, unit, default and range, read from the specs themselves,
so the reference cannot drift from the code.

    python docs/gen_reference.py            # print the Markdown
    python docs/gen_reference.py OUT.md     # write it

The mkdocs hook (docs/gen_pages.py) calls :func:`reference_markdown` at every build.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def model_spec_classes() -> list[type[BaseModel]]:
    """The model spec classes of ``bioplaus.spec``: the members of ``ModelSpec`` (the kinds
    ``spec_from_dict`` builds) plus any other spec class there with a ``kind`` field."""
    import bioplaus.spec as spec

    classes = list(typing.get_args(spec.ModelSpec))
    for obj in vars(spec).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, BaseModel)
            and "kind" in getattr(obj, "model_fields", {})
            and obj not in classes
        ):
            classes.append(obj)
    return classes


def protocol_spec_classes() -> list[type[BaseModel]]:
    """The protocol file's spec classes: ProtocolSpec, RuleSpec and every registered rule's
    own options model (the ``[rule]`` table is validated by the rule it names), TrainSpec."""
    from bioplaus.protocol import ProtocolSpec, TrainSpec
    from bioplaus.rules import RuleSpec
    from bioplaus.rules.options import rule_field_docs

    return [ProtocolSpec, RuleSpec, *rule_field_docs(), TrainSpec]


def all_spec_classes() -> list[type[BaseModel]]:
    """Every spec class whose fields users write in a file (the docs test checks each field
    has a description)."""
    return [*model_spec_classes(), *protocol_spec_classes()]


def fmt_type(ann: object) -> str:
    """A short, readable type: ``"tanh" | "relu"``, ``float | None``, ``list[int]``."""
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' if isinstance(a, str) else f"`{a}`" for a in ann.__args__)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(fmt_type(a) for a in typing.get_args(ann))
    if origin is not None:
        args = ", ".join(fmt_type(a).strip("`") for a in typing.get_args(ann))
        return f"`{getattr(origin, '__name__', str(origin))}[{args}]`"
    if ann is type(None):
        return "`None`"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return f"[{ann.__name__}](#{ann.__name__.lower()})"
    return f"`{getattr(ann, '__name__', str(ann))}`"


_UNITS = [
    (re.compile(r"\bseconds\b|,\s*s\b|\bs\)|\bs \("), "s"),
    (re.compile(r"\bHz\b"), "Hz"),
    (re.compile(r"\btrials\b.*\bseconds\b|\btrials\b.*\bs\b"), "trials or s"),
]


def unit_of(description: str | None) -> str:
    """The unit a field's description names (``"…, seconds."`` → ``s``), else ``—``."""
    d = description or ""
    if _UNITS[2][0].search(d):
        return "trials or s"
    for rx, unit in _UNITS[:2]:
        if rx.search(d):
            return unit
    return "—"


def range_of(field) -> str:
    """Constraints from the field's metadata: ``> 0``, ``≥ 1``, ``[0, 1)``, ``≥ 2 items``."""
    parts = []
    for m in field.metadata:
        for attr, sym in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{sym} {v:g}" if isinstance(v, float) else f"{sym} {v}")
        if getattr(m, "min_length", None) is not None:
            parts.append(f"≥ {m.min_length} items")
        if getattr(m, "max_length", None) is not None:
            parts.append(f"≤ {m.max_length} items")
    return ", ".join(parts) or "—"


def default_of(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default if field.default_factory is None else field.default_factory()
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def spec_table(cls: type[BaseModel]) -> str:
    """One Markdown table: key, type, unit, default, range, description."""
    rows = [
        "| key | type | unit | default | range | description |",
        "|---|---|---|---|---|---|",
    ]
    for name, field in cls.model_fields.items():
        desc = _cell(field.description or "**(no description)**")
        rows.append(
            f"| `{name}` | {fmt_type(field.annotation)} | {unit_of(field.description)} | "
            f"{default_of(field)} | {range_of(field)} | {desc} |"
        )
    return "\n".join(rows)


def _doc(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    return first[:-2].rstrip() + "." if first.endswith("::") else first


def task_tables() -> str:
    """Each registered task's options (constructor arguments) with their defaults."""
    from bioplaus.tasks import TASKS

    out = []
    for name, cls in sorted(TASKS.items()):
        params = [p for p in inspect.signature(cls).parameters.values() if p.name != "self"]
        out.append(f"### `{name}`\n\n{_cell(_doc(cls))} (`{cls.__module__}.{cls.__name__}`)\n")
        if not params:
            out.append("No options.\n")
            continue
        out.append("| option | default |\n|---|---|")
        for p in params:
            d = "**required**" if p.default is inspect.Parameter.empty else f"`{p.default!r}`"
            out.append(f"| `{p.name}` | {d} |")
        out.append("")
    return "\n".join(out)


def reference_markdown() -> str:
    """The whole reference page."""
    from bioplaus.spec import spec_from_dict  # noqa: F401  (the classes it builds)

    parts = [
        "# Model and protocol file reference",
        "",
        "*Generated from the pydantic specs by `docs/gen_reference.py` at every docs build: "
        "do not edit by hand.* Units are parsed from each field's description; ranges are "
        "the field's constraints (a value outside one is refused with a one-line error naming "
        "the key). Unset means the key may be left out (`None`).",
        "",
        "## Model files",
        "",
        "A model file (`models/*.toml`) holds one model spec, as top-level keys or in a "
        "`[model]` table; `kind` picks the class. In a protocol the same keys go under "
        '`[model]` (or `model = "path.toml"`, or `model = {base = "path.toml", key = '
        "value}`), and `--set model.KEY=VALUE` overrides one.",
        "",
    ]
    for cls in model_spec_classes():
        kind = cls.model_fields["kind"].default
        parts += [
            f"### {cls.__name__}",
            "",
            f'`kind = "{kind}"`. {_cell(_doc(cls))}',
            "",
            spec_table(cls),
            "",
        ]
    parts += [
        "## Protocol files",
        "",
        "A protocol (`protocols/*.toml`) is a model, a task, a rule and a training "
        "schedule. Top-level keys are those of `ProtocolSpec`; `[rule]`, `[train]` and "
        "`[task]` are tables. Options of a rule that do not apply to it are refused unless "
        "they hold their default.",
        "",
    ]
    for cls in protocol_spec_classes():
        parts += [f"### {cls.__name__}", "", _cell(_doc(cls)), "", spec_table(cls), ""]
    parts += [
        "## Task options (`[task]`)",
        "",
        "`name` picks the task; the other keys are the task class's constructor "
        "arguments. A task's `seed` (where it has one) defaults to a seed derived from the "
        "protocol's root seed.",
        "",
        task_tables(),
    ]
    return "\n".join(parts).rstrip() + "\n"


def cli_markdown() -> str:
    """The command-line reference: ``bioplaus --help`` and each sub-command's help."""
    import argparse
    import os

    from bioplaus.cli import _parser

    os.environ["COLUMNS"] = "90"  # argparse wraps to the terminal: fix it for the docs

    ap = _parser()
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    parts = [
        "# Command line",
        "",
        "*Generated from the argument parser (`bioplaus.cli`) at every docs build.* A bad "
        "model, protocol or option ends with one line naming the key and the problem, exit "
        "status 2, no traceback, and nothing written; a diverged run exits with status 3.",
        "",
        "```text",
        ap.format_help().replace("usage: ", "usage: ", 1).rstrip(),
        "```",
        "",
    ]
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        parts += [f"## `bioplaus {name}`", "", "```text", p.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    text = reference_markdown()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
