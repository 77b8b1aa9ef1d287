"""Every figure a notebook draws has a short text alternative for readers who cannot see it.

The convention (issue 24): directly after a code cell whose stored outputs hold a picture (an
`image/*` output, or an ipywidgets view, which may draw one) comes a markdown cell that begins
with `*Figure:` and says in one to three sentences what the figure shows.
"""

from fnmatch import fnmatch
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Notebooks whose captions are still being written. Remove an entry once its notebook passes.
PENDING = {"notebooks/10_*", "solutions/10_*"}

CAPTION = "*Figure:"
MIN_CAPTION_CHARS = 40
WIDGET = "application/vnd.jupyter.widget-view+json"


def is_figure(cell) -> bool:
    """A code cell whose stored outputs hold an image or a widget view."""
    return cell.cell_type == "code" and any(
        kind.startswith("image/") or kind == WIDGET
        for output in cell.get("outputs", [])
        for kind in output.get("data", {}))


def first_code_line(source: str) -> str:
    """The cell's first line of code (past comments such as NBVAL markers), to find it by."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith("#")), lines[0] if lines else "")


def missing_captions(nb, name: str) -> list[str]:
    """One sentence for each figure cell not followed by a `*Figure:` markdown cell."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if not is_figure(cell):
            continue
        after = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
        caption = after.source.strip() if after is not None and after.cell_type == "markdown" else ""
        if caption.startswith(CAPTION) and len(caption) >= MIN_CAPTION_CHARS:
            continue
        found = (f"a caption of only {len(caption)} characters" if caption.startswith(CAPTION)
                 else "no caption")
        problems.append(
            f"{name} cell {i} ({first_code_line(cell.source)!r}) draws a figure but has {found}: "
            f"add a markdown cell right after it that begins with {CAPTION!r} and says in one to "
            f"three sentences (at least {MIN_CAPTION_CHARS} characters) what the figure shows")
    return problems


def notebook_params() -> list:
    params = []
    paths = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
    for path in paths:
        name = path.relative_to(ROOT).as_posix()
        marks = [pytest.mark.xfail(strict=False, reason="captions for lessons 10 and 11 are being written")
                 ] if any(fnmatch(name, pattern) for pattern in PENDING) else []
        params.append(pytest.param(path, id=name, marks=marks))
    return params


@pytest.mark.parametrize("path", notebook_params())
def test_every_figure_has_a_text_alternative(path):
    name = path.relative_to(ROOT).as_posix()
    problems = missing_captions(nbformat.read(path, as_version=4), name)
    assert not problems, "\n".join(problems)


def test_the_detector_finds_the_figures_of_lesson_01():
    """Guards against a check that passes because it finds nothing to check."""
    nb = nbformat.read(ROOT / "notebooks" / "01_number_formats.ipynb", as_version=4)
    figures = [cell for cell in nb.cells if is_figure(cell)]
    kinds = [kind for cell in figures for output in cell.outputs for kind in output.get("data", {})]
    assert kinds.count("image/png") >= 4 and kinds.count(WIDGET) >= 1, kinds
    assert len(figures) >= 5


def test_the_detector_on_made_up_notebooks():
    code, md = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    svg = nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg/>", "text/plain": "x"})
    widget = nbformat.v4.new_output("display_data", data={WIDGET: {"model_id": "1"}, "text/plain": "w"})
    text = nbformat.v4.new_output("stream", text="no picture\n")
    long_caption = "*Figure:* one rising line, steep at first and then flat towards the right."
    good = nbformat.v4.new_notebook(cells=[
        code("print(1)", outputs=[text]), code("plot()", outputs=[svg]), md(long_caption),
        code("interact()", outputs=[widget]), md(long_caption)])
    assert missing_captions(good, "good") == []
    bad = nbformat.v4.new_notebook(cells=[
        code("# NBVAL_IGNORE_OUTPUT\nplot()", outputs=[svg]), code("x = 1"), md(long_caption),
        code("interact()", outputs=[widget]), md("*Figure:* a line."),
        code("plot()", outputs=[svg])])
    problems = missing_captions(bad, "bad.ipynb")
    assert [p.split(" (")[0] for p in problems] == ["bad.ipynb cell 0", "bad.ipynb cell 3",
                                                    "bad.ipynb cell 5"]
    assert "'plot()'" in problems[0] and "no caption" in problems[0]
    assert "only 17 characters" in problems[1]
