"""The offline install: `python course.py wheelhouse` once with internet, then `python course.py
env --offline` without.

A real wheelhouse is 1.2 GB, too much for every test run. Instead, pip resolves the course's
requirements with `--no-index` from a folder holding a metadata-only wheel for each file that
`course.py wheelhouse` would download on this system (the lock's pins that apply here, with the
metadata of the packages installed here): the resolution fails, as the real offline install
would, when a package the course needs is missing from that list. Other systems' wheelhouses are
tested in test_locks.py, from the package index's metadata. The command lines of the offline
set-up are tested in test_course_py.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"


_spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
course = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(course)


def _wheelhouse_requirements() -> list[Requirement]:
    """What `course.py wheelhouse` downloads on this system: the lock's pins that apply here
    (markers evaluated for this system and Python), and the build backend if the lock lacks it."""
    system = course.current_system()
    if system is None:
        pytest.skip("this system is none of the course's supported systems")
    python = platform.python_version()  # the lock pins by patch release (python_full_version)
    listed = course.lock_for(system, python, python=sys.executable)
    listed += course.build_extras(listed)
    # PyPI's Linux torch needs nvidia-* and triton; the CPU build installed here does not.
    return [Requirement(r) for r in listed if not course.cuda_only(r)]


def _stub_wheel(folder: Path, req: Requirement) -> None:
    """A wheel holding only the installed package's real metadata, at the required version."""
    try:
        dist = importlib.metadata.distribution(req.name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{req.name} is not installed here; run `python course.py env` first")
    if dist.version not in req.specifier:
        pytest.fail(f"{req.name} {dist.version} is installed, the wheelhouse would hold {req}; "
                    "the environment differs from the lock: run `python course.py env`")
    name = re.sub(r"[-_.]+", "_", req.name).lower()
    info = f"{name}-{dist.version}.dist-info"
    with zipfile.ZipFile(folder / f"{name}-{dist.version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", dist.read_text("METADATA"))
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                      "Tag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")


def test_the_wheelhouse_holds_everything_the_course_installs(tmp_path):
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    for req in _wheelhouse_requirements():
        _stub_wheel(folder, req)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    optional = project["project"]["optional-dependencies"]
    groups = re.search(r"\[(.*)\]", optional["all"][0])[1].split(",")
    wanted = project["project"]["dependencies"] + [r for g in groups for r in optional[g]] + build
    (tmp_path / "wanted.txt").write_text("\n".join(wanted))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index",
         "--find-links", str(folder), "--disable-pip-version-check", "-c", str(LOCK),
         "-r", str(tmp_path / "wanted.txt")],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"})
    assert done.returncode == 0, f"offline resolution failed:\n{done.stderr[-3000:]}"
    would = done.stdout.split("Would install", 1)[1].split()
    assert any(w.startswith("torch-2.13.0") for w in would), would
