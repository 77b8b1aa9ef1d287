"""Check a learner's exercise notebooks from the command line.

    python -m tutorial_lib.grade exercises/02_affine_quantization.ipynb [more.ipynb ...]

Each notebook is run from top to bottom in a fresh kernel, in its own folder, as "Run All"
would (a cell that raises does not stop the rest), and the report collects what the
``tl.checks.check_<name>`` cells printed: ``✓`` for a finished exercise, ``✗`` with the first
wrong case and its hint, ``…`` for one not implemented yet; then any other cell that raised.
The notebook file itself is not changed. Exit status: 0 when every check passes, 1 when one
does not (or a cell raised), 2 when a file cannot be read as a notebook.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

_VERDICT = re.compile(r"^([✓✗…]) (\w+):")


@dataclass
class Report:
    """What one notebook's checks said."""

    path: Path
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # every check's printed lines, in order
    errors: list[str] = field(default_factory=list)  # cells that raised: "cell N: Name: message"

    @property
    def checks(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.unfinished)

    @property
    def ok(self) -> bool:
        return self.checks > 0 and self.checks == len(self.passed) and not self.errors

    def summary(self) -> str:
        return (f"{self.path}: {len(self.passed)}/{self.checks} exercises pass"
                f" ({len(self.failed)} wrong, {len(self.unfinished)} not implemented yet"
                f"{f', {len(self.errors)} cells raised' if self.errors else ''})")


def _read(path: Path):
    import nbformat

    if not path.is_file():
        raise ValueError(f"{path}: no such file; give the path of an exercise notebook (.ipynb)")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:
        raise ValueError(f"{path}: not a Jupyter notebook ({type(err).__name__}: {err}); "
                         "give the path of an exercise notebook (.ipynb)") from None


def grade(path: str | Path, timeout: int = 600) -> Report:
    """Run the notebook at ``path`` in a fresh kernel and collect what its checks printed."""
    from nbclient import NotebookClient

    path = Path(path)
    nb = _read(path)
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    client.execute()
    report = Report(path)
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        checking = "tl.checks.check_" in cell.source
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                report.errors.append(f"cell {number}: {out.ename}: {out.evalue}")
            elif checking and out.output_type == "stream" and out.name == "stdout":
                _collect(report, out.text)
    return report


def _collect(report: Report, text: str) -> None:
    for line in text.splitlines():
        m = _VERDICT.match(line)
        if m:
            {"✓": report.passed, "✗": report.failed, "…": report.unfinished}[m[1]].append(m[2])
        if m or (line.startswith("  ") and report.lines):
            report.lines.append(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib.grade",
        description="Run exercise notebooks and report what their checks say.")
    parser.add_argument("notebooks", nargs="+", type=Path, help="exercise notebooks (.ipynb)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (600)")
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        try:
            report = grade(path, args.timeout)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 2
            continue
        print(report.summary())
        for line in report.lines + [f"  ✗ {e}" for e in report.errors]:
            print(f"  {line}")
        if report.checks == 0:
            print("  (no tl.checks.check_ cell ran: is this an exercise notebook?)")
        if not report.ok:
            status = max(status, 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
