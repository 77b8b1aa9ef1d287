"""The maps of the course (README and lesson 00) list exactly the lessons that exist."""

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def lessons_on_disk() -> set[str]:
    return {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}


def test_readme_links_every_lesson():
    linked = set(re.findall(r"\]\(notebooks/(\d\d_\w+\.ipynb)\)", (ROOT / "README.md").read_text()))
    assert linked == lessons_on_disk()


def test_start_here_links_every_lesson():
    nb = nbformat.read(ROOT / "notebooks" / "00_start_here.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    linked = set(re.findall(r"\]\((\d\d_\w+\.ipynb)\)", text))
    assert linked == lessons_on_disk()
