"""mkdocs hook: pages generated at every build, so they cannot drift from the code.

- ``reference/config.md``: the model and protocol file reference, from the pydantic specs
  (docs/gen_reference.py);
- ``changelog.md``, ``contributing.md``: the repository's CHANGELOG.md and CONTRIBUTING.md;
- ``reference/cli.md``: every sub-command's ``--help``;
- ``tutorials/<name>.md``: each tutorial script ``docs/tutorials/<name>.py`` (jupytext
  percent format) rendered as a page: Markdown cells as text, code cells as code blocks.

Nothing is written to disk: the pages are added to the build in memory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mkdocs.structure.files import File, Files

HERE = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def on_files(files: Files, config) -> Files:
    ref = _load("gen_reference")
    files.append(File.generated(config, "reference/config.md", content=ref.reference_markdown()))
    files.append(File.generated(config, "reference/cli.md", content=ref.cli_markdown()))
    tut = _load("gen_tutorials")
    for script in tut.tutorial_scripts():
        files.append(
            File.generated(config, f"tutorials/{script.stem}.md", content=tut.to_markdown(script))
        )
    # the repository's CHANGELOG.md and CONTRIBUTING.md, as site pages
    for name in ("CHANGELOG", "CONTRIBUTING"):
        text = (HERE.parent / f"{name}.md").read_text(encoding="utf-8")
        files.append(File.generated(config, f"{name.lower()}.md", content=text))
    return files
