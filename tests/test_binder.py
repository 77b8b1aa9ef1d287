"""The repo2docker configuration (binder/) installs what course.py installs, on a supported
Python; where jupyter-repo2docker is installed, it reads the folder without building."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import course

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def test_runtime_is_a_python_the_course_supports():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert match, f"binder/runtime.txt should read python-X.Y, not {runtime!r}"
    assert (int(match[1]), int(match[2])) in course.SUPPORTED


def test_post_build_runs_course_pys_installs_with_the_cpu_build_of_torch():
    script = BINDER / "postBuild"
    assert script.read_text().startswith("#!/bin/bash\n")
    assert os.access(script, os.X_OK), "binder/postBuild must be executable"
    lines = [shlex.split(line) for line in script.read_text().splitlines()
             if line.startswith("pip install")]
    expected = course.pip_install_commands("python", torch="cpu")
    assert len(lines) == len(expected)
    for line, command in zip(lines, expected, strict=True):
        wanted = [a for a in command[3:] if a not in ("--quiet", "--disable-pip-version-check")]
        got = [a for a in line[1:] if a != "--no-cache-dir"]
        assert got == wanted, f"binder/postBuild: {shlex.join(line)}"


def test_repo2docker_reads_the_folder(tmp_path):
    r2d = shutil.which("jupyter-repo2docker")
    if r2d is None:
        pytest.skip("jupyter-repo2docker is not installed (pip install jupyter-repo2docker)")
    done = subprocess.run([r2d, "--no-build", "--no-run", "--debug", str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    dockerfile = done.stdout + done.stderr
    assert "RUN ./binder/postBuild" in dockerfile
    runtime = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    assert f"environment for python={runtime}" in dockerfile
