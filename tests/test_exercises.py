"""exercises/ is generated from solutions/ and must not be stale."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import make_exercises  # noqa: E402


def test_exercises_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_lesson_has_solutions_and_exercises():
    solutions = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    assert solutions and solutions == sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    lessons = {p.name[:2] for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert {n[:2] for n in solutions} <= lessons


def test_strip_solutions_keeps_indentation_and_rest():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\ncheck(f)"
    assert make_exercises.strip_solutions(src, "t") == (
        f"def f(x):\n    {make_exercises.TODO}\n\ncheck(f)")


@pytest.mark.parametrize("src", ["### BEGIN SOLUTION\nx", "### END SOLUTION",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION"])
def test_unbalanced_markers_are_errors(src):
    with pytest.raises(ValueError):
        make_exercises.strip_solutions(src, "t")


def test_exercises_hold_no_answers_and_no_outputs():
    for path in (ROOT / "exercises").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert "generated" in nb.cells[0].source.lower()
        for cell in nb.cells:
            assert "BEGIN SOLUTION" not in cell.source
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
        assert sum(make_exercises.TODO in c.source for c in nb.cells) >= 4, path.name
