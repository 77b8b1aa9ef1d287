"""The tolerance mechanism for notebook cells still catches real regressions."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.nbval_tolerance import Tolerance, parse_marker, snap, within

REPO = Path(__file__).resolve().parents[1]


def test_numbers_within_the_tolerance_pass_and_others_fail():
    tol = Tolerance(abs=1.5)
    assert within("PTQ 96.7%  QAT 98.9%", "PTQ 96.7%  QAT 98.1%", tol)
    assert within("  98.9%", " 100.0%", tol)  # a wider number shifts the column
    assert not within("QAT 98.9%", "QAT 90.0%", tol)  # an accuracy that collapses fails
    assert not within("QAT 98.9%", "QAT 98.9% 97.0%", tol)  # a number more
    assert not within("QAT beats PTQ: True", "QAT beats PTQ: False", tol)  # words are exact
    assert not within("conv1 scale 0.5", "conv2 scale 0.5", tol)  # names are words
    assert within("1,234 bytes", "1,235 bytes", Tolerance(rel=0.001))
    assert not within("1,234 bytes", "1,254 bytes", Tolerance(rel=0.001))


def test_markers():
    assert parse_marker("# NBVAL_TOLERANCE abs=0.5 rel=0.01\nx") == Tolerance(0.5, 0.01)
    assert parse_marker("# NBVAL_IGNORE_OUTPUT\nx") is None
    with pytest.raises(ValueError, match="needs abs= and/or rel="):
        parse_marker("# NBVAL_TOLERANCE half a point")


def test_snap_replaces_only_what_is_within():
    ref = [{"output_type": "stream", "name": "stdout", "text": "acc 98.9%\n"}]
    close = [{"output_type": "stream", "name": "stdout", "text": "acc 98.3%\n"}]
    far = [{"output_type": "stream", "name": "stdout", "text": "acc 90.0%\n"}]
    assert snap(close, ref, Tolerance(abs=1))[0]["text"] == "acc 98.9%\n"
    assert snap(far, ref, Tolerance(abs=1))[0]["text"] == "acc 90.0%\n"
    assert close[0]["text"] == "acc 98.3%\n"  # the outputs that ran are not modified


def _notebook(path: Path, printed: str, stored: str, marker: str) -> None:
    cell = nbformat.v4.new_code_cell(f"{marker}\nprint('accuracy {printed}%')")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"accuracy {stored}%\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.parametrize("printed, marker, passes", [
    ("98.6", "# NBVAL_TOLERANCE abs=1.5", True),
    ("90.0", "# NBVAL_TOLERANCE abs=1.5", False),   # 98.9 -> 90 is a regression
    ("98.6", "# strict", False),                    # without a marker, nbval stays strict
])
def test_nbval_with_the_plugin_fails_a_real_regression(tmp_path, printed, marker, passes):
    nb = tmp_path / "lesson.ipynb"
    _notebook(nb, printed, "98.9", marker)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval", "--nbval-current-env",
         "-p", "tests.nbval_tolerance", "-p", "no:cacheprovider", str(nb)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) == passes, result.stdout[-2000:]
