"""Every field a user writes in a model or protocol file has a description (the generated
file reference shows it), and the reference lists every field."""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gen():
    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "docs" / "gen_reference.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEN = _gen()
FIELDS = [(cls, name) for cls in GEN.all_spec_classes() for name in cls.model_fields]

# Known gaps, reported to the owners of bioplaus/protocol.py; xfail (not strict) so the
# suite stays green until they are described, and any *new* undescribed field fails.


def test_the_reference_covers_every_spec_class():
    import bioplaus.spec as spec
    from bioplaus.protocol import ProtocolSpec, TrainSpec
    from bioplaus.rules import RuleSpec

    classes = GEN.all_spec_classes()
    for cls in (*typing.get_args(spec.ModelSpec), RuleSpec, TrainSpec, ProtocolSpec):
        assert cls in classes, cls.__name__
    from bioplaus.registry import RULES

    for name, entry in RULES.items():  # every rule's own options model is documented
        assert entry.options in classes, name
    assert spec.RateSpec in classes


@pytest.mark.parametrize("cls,name", FIELDS, ids=[f"{c.__name__}.{n}" for c, n in FIELDS])
def test_field_has_description(cls, name):
    desc = cls.model_fields[name].description
    assert desc and desc.strip(), f"{cls.__name__}.{name} has no description"


def test_reference_lists_every_field_with_its_unit():
    text = GEN.reference_markdown()
    for cls, name in FIELDS:
        assert f"| `{name}` |" in text, f"{cls.__name__}.{name} missing from the reference"
    from bioplaus.spec import RateSpec

    assert GEN.unit_of(RateSpec.model_fields["tau"].description) == "s"
    assert GEN.range_of(RateSpec.model_fields["tau"]) == "> 0"
