"""Write requirements/lock.txt, the exact versions the course installs, from pyproject.toml's ranges.

One lock serves every supported system and Python: uv's universal resolver solves the ranges
once for all the environments listed under ``[tool.uv] environments`` in pyproject.toml (Linux
x86-64 and aarch64, macOS on Apple silicon, Windows x64; Python 3.11 to 3.13) and writes an
environment marker on each pin that only some of them need (``colorama ; sys_platform ==
'win32'``, an older ``soupsieve`` before Python 3.11.5). pip reads those markers when it installs
with ``-c requirements/lock.txt``.

The pins already in the lock are kept as preferences, so a rerun changes only what new ranges
force; ``--upgrade`` takes the newest versions the ranges allow. Packages the course installs
with ``--no-deps`` (``[tool.tutorial_lib] no-deps`` in pyproject.toml) are pinned at the end.
``--check`` resolves again into a temporary file and fails when the lock differs (a test runs it;
it needs the package index). uv comes from the course environment (``.[test]``) or the PATH.

    python tools/lock.py [--check] [--upgrade]
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "lock.txt"
INDEX = "https://pypi.org/simple"
COMMAND = "python tools/lock.py"
NO_DEPS_HEADER = "# Installed with --no-deps (its declared dependencies are not needed):"


def uv_command(previous: str) -> list[str]:
    """How to run uv: the course environment's, at the version the lock pins (uv's output, its
    markers' wording included, may change from one release to the next)."""
    try:
        import uv  # noqa: PLC0415
    except ImportError:
        raise SystemExit("tools/lock.py needs uv, which the course environment has: run it with "
                         "that Python (.venv/bin/python tools/lock.py; Windows: "
                         ".venv\\Scripts\\python tools/lock.py).") from None
    binary = uv.find_uv_bin()
    found = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()
    pinned = re.search(r"^uv==(\S+)", previous, re.M)
    if pinned and found[1:2] != [pinned[1]]:
        raise SystemExit(f"The lock was written by uv {pinned[1]}, this is {' '.join(found)}: run "
                         "tools/lock.py with the course environment's Python after `python "
                         "course.py env`.")
    return [binary]


def ranges(project: dict) -> tuple[list[str], list[str], str]:
    """(requirements beside the project's own, --no-deps requirements, lowest Python).

    Beside the project's dependencies and extras, the lock pins the build backend of `pip install
    -e .` (needed offline too) and the tools of ``[tool.tutorial_lib] tools`` (pip, whose resolver
    the course's tests drive).
    """
    course = project.get("tool", {}).get("tutorial_lib", {})
    beside = project["build-system"]["requires"] + course.get("tools", [])
    lowest = re.search(r">=\s*(\d+\.\d+)", project["project"]["requires-python"])[1]
    return beside, course.get("no-deps", []), lowest


def _pins(text: str) -> list[str]:
    """The pin lines of a lock, without comments."""
    return [line for line in text.splitlines() if line and not line.startswith(("#", " "))]


def compile_lock(previous: str, upgrade: bool = False) -> str:
    """The lock's new text, resolved by uv with the previous pins as preferences."""
    project = tomllib.loads(PYPROJECT.read_text())
    beside, no_deps, lowest = ranges(project)
    uv = uv_command(previous)
    env = {**os.environ, "UV_CUSTOM_COMPILE_COMMAND": COMMAND}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copy(PYPROJECT, tmp / "pyproject.toml")
        (tmp / "beside.in").write_text("\n".join(beside) + "\n")
        (tmp / "no-deps.in").write_text("\n".join(no_deps) + "\n")
        main, rest = previous.split(NO_DEPS_HEADER)[0], ""
        if NO_DEPS_HEADER in previous:
            rest = previous.split(NO_DEPS_HEADER)[1]
        (tmp / "lock.txt").write_text(main)
        (tmp / "no-deps.txt").write_text(rest)
        common = ["pip", "compile", "--quiet", "--universal", "--python-version", lowest,
                  "--index-url", INDEX] + (["--upgrade"] if upgrade else [])
        # --universal takes the supported systems from [tool.uv] environments of the project file.
        subprocess.run([*uv, *common, "--all-extras", "pyproject.toml", "beside.in", "-o",
                        "lock.txt"], cwd=tmp, env=env, check=True)
        text = (tmp / "lock.txt").read_text()
        if no_deps:
            subprocess.run([*uv, *common, "--no-deps", "--no-header", "--no-annotate",
                            "no-deps.in", "-o", "no-deps.txt"], cwd=tmp, env=env, check=True)
            text += "\n" + NO_DEPS_HEADER + "\n" + "\n".join(
                _pins((tmp / "no-deps.txt").read_text())) + "\n"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the lock is stale")
    parser.add_argument("--upgrade", action="store_true", help="take the newest allowed versions")
    args = parser.parse_args(argv)
    previous = LOCK.read_text() if LOCK.exists() else ""
    text = compile_lock(previous, upgrade=args.upgrade)
    if args.check:
        if text != previous:
            sys.stdout.writelines(difflib.unified_diff(
                previous.splitlines(True), text.splitlines(True), "lock.txt", "resolved now"))
            print("requirements/lock.txt is stale: run `python tools/lock.py` and commit it.")
            return 1
        print(f"requirements/lock.txt is up to date ({len(_pins(text))} pins).")
        return 0
    LOCK.write_text(text)
    print(f"Wrote {LOCK.relative_to(ROOT)}: {len(_pins(text))} pins.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
