"""Render the tutorial scripts (jupytext percent format) as Markdown pages.

A script is a sequence of cells, each opened by a ``# %%`` line; ``# %% [markdown]`` cells
hold Markdown as ``#``-comments. Markdown cells become text, code cells become ``python``
code blocks, and the page ends with a link to the script itself.

    python docs/gen_tutorials.py                         # list the tutorials
    python docs/gen_tutorials.py docs/tutorials/x.py     # print one page

The scripts also open as notebooks: ``jupytext --to notebook docs/tutorials/x.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parent / "tutorials"
_CELL = re.compile(r"^# %%(.*)$")


def tutorial_scripts(folder: Path = TUTORIALS) -> list[Path]:
    """The tutorial scripts, in order (their names start with a letter and an underscore)."""
    return sorted(p for p in folder.glob("*.py") if re.match(r"^[a-z]_", p.name))


def cells(text: str) -> list[tuple[str, str]]:
    """(kind, source) per cell; kind is "markdown" or "code". Lines before the first cell
    marker (a module docstring, the jupytext header) are skipped."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        m = _CELL.match(line)
        if m:
            out.append(("markdown" if "[markdown]" in m.group(1) else "code", []))
        elif out:
            out[-1][1].append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in out]


def _uncomment(src: str) -> str:
    lines = []
    for line in src.splitlines():
        if line.startswith("# "):
            lines.append(line[2:])
        elif line.strip() == "#":
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines)


def to_markdown(script: Path) -> str:
    parts = []
    for kind, src in cells(script.read_text(encoding="utf-8")):
        if not src.strip():
            continue
        parts.append(_uncomment(src) if kind == "markdown" else f"```python\n{src}\n```")
    parts.append(
        f"---\n\nThis page is generated from [`{script.name}`]({script.name}) "
        f"(`docs/tutorials/{script.name}` in the repository). Run it with "
        f"`python docs/tutorials/{script.name}` (add `--small` for a quick run); "
        "the test suite runs it at the small size."
    )
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.stdout.write(to_markdown(Path(sys.argv[1])))
    else:
        for p in tutorial_scripts():
            print(p)
