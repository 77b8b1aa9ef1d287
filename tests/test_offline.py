"""The offline install: `make wheelhouse` once with internet, then `make env OFFLINE=1` without.

A real wheelhouse is 1.2 GB, too much for every test run. Instead, pip resolves the course's
requirements with `--no-index` from a folder holding a metadata-only wheel for each file that
`make wheelhouse` would download (the lock's pins and the extra wheels it names, with the
metadata of the packages installed here): the resolution fails, as the real offline install
would, when a package the course needs is missing from that list.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"


def _make_n(*args: str) -> list[list[str]]:
    """The commands `make -n` would run, each split into words."""
    out = subprocess.run(["make", "-s", "-n", *args], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return [shlex.split(line) for line in out.replace("\\\n", " ").splitlines() if line.strip()]


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name] = version
    return pins


def test_offline_mode_sends_every_pip_install_to_the_wheelhouse_only(tmp_path):
    installs = [c for c in _make_n("-W", "pyproject.toml", "env", "OFFLINE=1", "WHEELHOUSE=wh")
                if c[1:4] == ["-m", "pip", "install"]]
    assert len(installs) >= 1
    for command in installs:
        assert "--no-index" in command and command[command.index("--find-links") + 1] == "wh", (
            f"this install would reach the network in OFFLINE mode: {shlex.join(command)}")


def test_offline_mode_without_a_wheelhouse_says_what_to_do(tmp_path):
    done = subprocess.run(["make", "-s", "-W", "pyproject.toml", "env", "OFFLINE=1",
                           f"WHEELHOUSE={tmp_path / 'absent'}"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode != 0 and "run 'make wheelhouse'" in done.stdout


def _wheelhouse_requirements() -> list[Requirement]:
    """What `make wheelhouse` downloads: the lock, plus the extra requirements it names."""
    downloads = [c for c in _make_n("wheelhouse", "WHEELHOUSE=wh") if "download" in c]
    assert len(downloads) == 1
    command = downloads[0]
    assert "--no-deps" in command and command[command.index("-r") + 1] == "requirements/lock.txt"
    extras = command[command.index("-r") + 2:]
    return [Requirement(f"{n}=={v}") for n, v in _locked().items()] + [Requirement(e) for e in extras]


def _stub_wheel(folder: Path, req: Requirement) -> None:
    """A wheel holding only the installed package's real metadata, at the required version."""
    try:
        dist = importlib.metadata.distribution(req.name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{req.name} is not installed here; run `make env` first")
    if dist.version not in req.specifier:
        pytest.fail(f"{req.name} {dist.version} is installed, the wheelhouse would hold {req}; "
                    "the environment differs from the lock: run `make env`")
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
