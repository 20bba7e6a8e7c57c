"""benchmarks/run_all.py rewrites BENCHMARKS.md but keeps its "GPU check" section, whose
numbers come from benchmarks/gpu_check.py on a GPU machine."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_section_is_kept_as_it_is(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from run_all import gpu_section
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    f = tmp_path / "BENCHMARKS.md"
    assert gpu_section(f) == []
    f.write_text("# Benchmarks\n\n## A\nrow a\n\n## GPU check\n\nline 1\n| x |\n\n## B\nrow b\n")
    assert gpu_section(f) == ["## GPU check", "", "line 1", "| x |", "", ""]
    f.write_text("# Benchmarks\n## A\nrow a\n")
    assert gpu_section(f) == []
    real = gpu_section(ROOT / "BENCHMARKS.md")
    assert real and real[0] == "## GPU check"
    assert any("gpu_check.py --device cuda" in line for line in real)
