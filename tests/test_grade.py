"""`python -m tutorial_lib.grade`: a teacher checks a learner's exercise notebook."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tutorial_lib import grade

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "02_affine_quantization.ipynb"

# A learner's usual mistake in lesson 02: no rounding, and a cast that truncates.
WRONG_QUANTIZE = """def quantize(x, scale, zero_point, quant_min, quant_max):
    return np.clip(x / scale + zero_point, quant_min, quant_max).astype(np.int32)
"""


def _learner_copy(tmp_path: Path, replace: dict[str, str]) -> Path:
    """The exercise notebook with the cells that define ``name`` replaced by ``source``."""
    nb = nbformat.read(EXERCISE, as_version=4)
    for name, source in replace.items():
        cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(f"def {name}(")]
        assert len(cells) == 1, f"exercise 02 has no single cell defining {name}"
        cells[0].source = source
    path = tmp_path / EXERCISE.name
    nbformat.write(nb, path)
    return path


def test_an_untouched_exercise_notebook_reports_every_exercise_unfinished(capsys):
    assert grade.main([str(EXERCISE)]) == 1
    out = capsys.readouterr().out
    assert "0/5 exercises pass (0 wrong, 5 not implemented yet)" in out
    assert out.count("not implemented yet (replace") == 5


def test_a_wrong_answer_is_reported_with_its_case_and_hint_and_the_file_is_unchanged(tmp_path):
    path = _learner_copy(tmp_path, {
        "quantize": WRONG_QUANTIZE,
        "sqnr_db": "def sqnr_db(x, x_hat)\n    return 0.0\n",  # a syntax error
    })
    before = path.read_bytes()
    report = grade.grade(path)
    assert report.failed == ["quantize"] and report.passed == []
    assert report.unfinished == ["choose_qparams", "dequantize", "symmetric_scale"]
    text = "\n".join(report.lines)
    assert "✗ quantize:" in text and "first wrong case:" in text and "hint:" in text
    # the broken cell raises, and so does its check, which finds no sqnr_db
    assert [e.split(": ")[1] for e in report.errors] == ["SyntaxError", "NameError"]
    assert not report.ok
    assert path.read_bytes() == before


def test_the_solutions_pass(capsys):
    assert grade.main([str(ROOT / "solutions" / EXERCISE.name)]) == 0
    assert "5/5 exercises pass" in capsys.readouterr().out


@pytest.mark.parametrize("name, problem", [("missing.ipynb", "no such file"),
                                           ("notes.ipynb", "not a Jupyter notebook")])
def test_a_path_that_is_not_a_notebook_is_refused_clearly(tmp_path, capsys, name, problem):
    (tmp_path / "notes.ipynb").write_text("my notes")
    assert grade.main([str(tmp_path / name)]) == 2
    assert problem in capsys.readouterr().err


def test_a_notebook_named_on_the_command_line_runs_in_a_copy_with_a_time_limit(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("open('left-behind.txt', 'w').write('x')"),
                nbformat.v4.new_code_cell("while True:\n    pass")]
    path = tmp_path / "02_loop.ipynb"
    nbformat.write(nb, path)
    assert grade.main(["--time-limit", "3", str(path)]) == 1
    assert "timed out: cell 2 was still running at the time limit" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["02_loop.ipynb"]
