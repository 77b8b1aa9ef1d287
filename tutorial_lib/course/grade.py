"""Check exercise notebooks from the command line: one learner's, a whole room's, your own progress.

    python -m tutorial_lib.grade exercises/02_affine_quantization.ipynb [more.ipynb ...]
    python -m tutorial_lib.grade SUBMISSIONS/         a room: one folder per learner, or nbgrader's
                                                      submitted/<learner>/<assignment>/ layout
    python -m tutorial_lib.grade --progress [exercises/*.ipynb]

Each notebook is run from top to bottom in a fresh kernel, as "Run All" would (a cell that raises
does not stop the rest), and the report collects what the ``tl.checks.check_<name>`` cells
printed: ``✓`` for a finished exercise, ``✗`` with the first wrong case and its hint, ``…`` for
one not implemented yet; then any other cell that raised. The notebook file itself is not
changed.

Learners' code is untrusted: a notebook named on the command line, or found in a room's folder,
runs in a temporary copy, with a time limit, under bubblewrap where it is installed (the system
read-only, a private /tmp and an empty home, no network, the teacher's home, the course folder
with its solutions and the other learners' folders out of sight). Without bubblewrap (Windows,
macOS, a Linux without it) it runs with a warning and the strongest isolation there is: an empty
temporary home and working folder, a clean environment, resource limits on POSIX and a hard kill
of its whole process group at the time limit. ``--progress`` runs a learner's own notebooks in
place, two at a time, and keeps each result keyed by a hash of the notebook's code cells, so an
unchanged notebook is not run again.

Exit status: 0 when every check passes (a room and --progress: when the report was made), 1 when
one does not (or a cell raised), 2 when a file cannot be read as a notebook or an argument is
wrong. Standard library, nbformat and nbclient only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

_VERDICT = re.compile(r"^([✓✗…]) (\w+):\s*(.*)$")
_CHECK_CALL = re.compile(r"tl\.checks\.check_(\w+)\s*\(")
_STATUS = {"✓": "passed", "✗": "failed", "…": "not started"}
_RESULT = "@@tutorial_lib.grade result@@ "  # the worker's last stdout line: its report as JSON
_CELL = "@@tutorial_lib.grade cell "  # the worker's stderr: the cell it starts
_KERNEL = "@@tutorial_lib.grade kernel "  # and its kernel's process id
GRACE = 30  # seconds past the limit before a worker that does not stop itself is killed
STARTUP = 180  # seconds a worker may take to start its kernel (a loaded shared machine is slow)
LIMIT = 300  # seconds per notebook; the slowest exercise notebook takes under a minute
# files and folders a learner's folder may hold that are not submissions
_IGNORED = {"timestamp.txt", ".ipynb_checkpoints", "__pycache__", "feedback", "autograded"}
# what the tools a kernel starts write into an empty home: not the learner's doing
_HOME_NOISE = (".ipython", ".local", ".cache", ".config", ".jupyter", ".keras", ".matplotlib",
               ".nv", ".triton", "tmp")


@dataclass
class Exercise:
    """One exercise's result: passed, failed, not started (``…``) or not run (its check did not
    print, e.g. its cell raised), with the checker's one-line reason."""

    name: str
    result: str
    reason: str = ""


@dataclass
class Report:
    """What one notebook's checks said."""

    path: Path
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # every check's printed lines, in order
    errors: list[str] = field(default_factory=list)  # cells that raised: "cell N: Name: message"
    exercises: list[Exercise] = field(default_factory=list)  # in the notebook's order
    problem: str = ""  # the notebook as a whole: "timed out", "kernel died", "not a notebook", ...
    problem_reason: str = ""
    stray: list[str] = field(default_factory=list)  # errors of cells that are no check's
    seconds: float = 0.0
    cached: bool = False

    @property
    def checks(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.unfinished)

    @property
    def ok(self) -> bool:
        return (self.checks > 0 and self.checks == len(self.passed) and not self.errors
                and not self.problem)

    def summary(self) -> str:
        problem = f"; {self.problem}: {self.problem_reason}" if self.problem else ""
        return (f"{self.path}: {len(self.passed)}/{self.checks} exercises pass"
                f" ({len(self.failed)} wrong, {len(self.unfinished)} not implemented yet"
                f"{f', {len(self.errors)} cells raised' if self.errors else ''}){problem}")

    def to_json(self) -> dict:
        data = {k: v for k, v in vars(self).items() if k not in ("path", "exercises")}
        return dict(data, path=str(self.path), exercises=[vars(e) for e in self.exercises])

    @classmethod
    def from_json(cls, data: dict, path=None) -> Report:
        data = dict(data, path=Path(path or data["path"]))
        data["exercises"] = [Exercise(**e) for e in data.get("exercises", [])]
        return cls(**data)


def _read(path: Path):
    import nbformat

    if not path.is_file():
        raise ValueError(f"{path}: no such file; give the path of an exercise notebook (.ipynb)")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:
        raise ValueError(f"{path}: not a Jupyter notebook ({type(err).__name__}: {err}); "
                         "give the path of an exercise notebook (.ipynb)") from None


def grade(path: str | Path, timeout: int = 600, limit: float | None = None,
          announce: bool = False) -> Report:
    """Run the notebook at ``path`` in a fresh kernel, in its own folder, and collect what its
    checks printed. ``timeout`` bounds each cell and ``limit`` the seconds from the first cell to
    the last (the kernel's start is not the learner's); a cell past either, or a kernel that
    dies, ends the run with ``problem`` set and the cells before it reported. ``announce`` writes
    the kernel's process id and each cell's number to stderr, for a caller that may have to kill
    the run."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = _read(path)
    started = time.monotonic()
    running = [0]

    def on_cell_start(cell, cell_index):
        if not running[0]:
            if limit is not None:  # the learner's code has `limit` seconds from its first cell
                deadline[0] = time.monotonic() + limit
            if announce:  # the kernel, for a caller that must kill it
                pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
                print(f"{_KERNEL}{pid}", file=sys.stderr, flush=True)
        running[0] = cell_index + 1
        if announce:
            print(f"{_CELL}{cell_index + 1}", file=sys.stderr, flush=True)

    deadline = [None]

    def cell_timeout(cell):
        if deadline[0] is None:
            return timeout
        return max(1, min(timeout, int(deadline[0] - time.monotonic()) + 1))

    client = NotebookClient(nb, timeout=timeout, timeout_func=cell_timeout, allow_errors=True,
                            kernel_name="python3", on_cell_start=on_cell_start,
                            shell_timeout_interval=1,  # finds a dead kernel within a second
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    problem = reason = ""
    try:
        client.execute()
    except CellTimeoutError:
        problem, reason = "timed out", f"cell {running[0]} was still running at the time limit"
    except DeadKernelError:
        problem = "kernel died"
        reason = (f"the kernel exited during cell {running[0]} (os._exit, sys.exit in a thread, "
                  "a crash or out of memory); the cells after it did not run")
    report = Report(path, problem=problem, problem_reason=reason)
    seen = set()
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        checking = "tl.checks.check_" in cell.source
        raised = ""
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                raised = f"cell {number}: {out.ename}: {out.evalue}"
                report.errors.append(raised)
            elif checking and out.output_type == "stream" and out.name == "stdout":
                _collect(report, out.text, seen)
        called = [n for n in _CHECK_CALL.findall(cell.source) if n not in seen]
        for name in called:  # a check that printed nothing: its cell raised, or did not run
            seen.add(name)
            report.exercises.append(Exercise(name, "not run", raised or (
                "its check cell did not run" if problem else "its check printed no result")))
        if raised and not checking and not (problem and number == running[0]):
            report.stray.append(raised)  # (the cell stopped at the time limit is the problem)
    report.seconds = time.monotonic() - started
    return report


def _collect(report: Report, text: str, seen: set | None = None) -> None:
    seen = set() if seen is None else seen
    for line in text.splitlines():
        m = _VERDICT.match(line)
        if m:
            {"✓": report.passed, "✗": report.failed, "…": report.unfinished}[m[1]].append(m[2])
            if m[2] not in seen:
                seen.add(m[2])
                reason = "" if m[1] == "✓" else m[3]
                if m[1] == "…":
                    reason = "not implemented yet"
                report.exercises.append(Exercise(m[2], _STATUS[m[1]], reason))
        elif line.startswith("  ") and report.lines and report.exercises:
            last = report.exercises[-1]
            detail = line.strip()
            # the one-line reason: the summary, the first wrong case and the hint
            if last.result == "failed" and detail.startswith(("first wrong case:", "hint:")):
                last.reason += "; " + detail
        if m or (line.startswith("  ") and report.lines):
            report.lines.append(line)


# --- running a notebook apart from the teacher ---------------------------------------------------

def _course_root() -> Path | None:
    """The course folder when this module runs from a checkout (pyproject.toml beside it)."""
    here = Path(__file__).resolve().parent
    for folder in (here.parent, here.parent.parent):
        if (folder / "pyproject.toml").is_file() and (folder / "tutorial_lib").is_dir():
            return folder
    return None


def _package_dir() -> Path:
    """The folder of the package ``tutorial_lib`` (this module's, wherever it is moved)."""
    here = Path(__file__).resolve().parent
    return here if here.name == "tutorial_lib" else here.parent


_BWRAP: list = []  # [] unknown, [None] absent or unusable, [path]


def bubblewrap() -> str | None:
    """The path of a working bwrap, or None (absent, or this system forbids its namespaces)."""
    if not _BWRAP:
        found = shutil.which("bwrap") if sys.platform.startswith("linux") else None
        if found:
            probe = [found, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                     "--unshare-all", "--die-with-parent", "true"]
            try:
                works = subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                works = False
            found = found if works else None
        _BWRAP.append(found)
    return _BWRAP[0]


def sandbox_command(bwrap: str, work: Path, home: Path, hide=()) -> list:
    """bwrap's arguments: the system read-only, a private /dev, /proc and /tmp, no network, no
    other process in sight; ``hide`` (the teacher's home, the course folder, the room's folder)
    covered by empty read-only folders; this Python and the package back, read-only; ``work``
    (the notebook's copy) and ``home`` (its empty home) writable."""
    command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    hidden = sorted({str(Path(h).resolve()) for h in hide if Path(h).exists()})
    for folder in hidden:
        command += ["--tmpfs", folder]
    exposed = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
               str(Path(sys.executable).resolve().parent.parent), str(_package_dir())}
    for folder in sorted(f for f in exposed if Path(f).exists() and Path(f) != Path("/")):
        command += ["--ro-bind", folder, folder]
    command += ["--bind", str(work), str(work), "--bind", str(home), str(home)]
    for folder in hidden:  # empty and read-only: a write there fails, and the report says so
        command += ["--remount-ro", folder]
    return command + ["--chdir", str(work), "--unshare-all", "--die-with-parent",
                      "--new-session", "--"]


# What the learner's process may see of the teacher's environment: no tokens, no paths of theirs.
_KEPT = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "SYSTEMDRIVE",
         "WINDIR", "COMSPEC", "PATHEXT", "NUMBER_OF_PROCESSORS", "PROCESSOR_ARCHITECTURE",
         "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TL_QUANTIZED_ENGINE",
         "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
         "TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL", "PYTHONHASHSEED")


def learner_environment(home: Path) -> dict:
    env = {name: os.environ[name] for name in _KEPT if name in os.environ}
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), USERPROFILE=str(home), APPDATA=str(home / "AppData"),
               LOCALAPPDATA=str(home / "AppData" / "Local"), TMPDIR=str(tmp), TEMP=str(tmp),
               TMP=str(tmp), TL_CACHE_DIR=str(home / ".cache" / "tutorial_lib"),
               PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    return env


def _apply_limits(seconds: int) -> None:
    """In the worker, before its kernel starts (the kernel inherits them): CPU time, file size,
    no core files. Memory is left alone: TensorFlow reserves far more address space than it uses."""
    try:
        import resource
    except ImportError:  # Windows
        return
    cpu = seconds * (os.cpu_count() or 1) + 60
    for name, value in (("RLIMIT_CPU", cpu), ("RLIMIT_FSIZE", 2 << 30), ("RLIMIT_CORE", 0)):
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        soft, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(limit, (value, hard))
        except (ValueError, OSError):
            pass


def _kill_tree(proc: subprocess.Popen) -> None:
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.kill()
    except OSError:
        pass


_STOP = threading.Event()  # Ctrl+C: every worker is killed, not left to run to its limit
_RUNNING: dict = {}  # the workers running now, and their temporary folders


def _map(function, items: list, jobs: int) -> list:
    """``function`` over ``items``, ``jobs`` at a time; on Ctrl+C the workers are killed (a
    notebook run in this process is abandoned: its kernel exits with this process)."""
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        return list(pool.map(function, items))
    except KeyboardInterrupt:
        _STOP.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc, temporary in list(_RUNNING.items()):
            _kill_tree(proc)
            shutil.rmtree(str(temporary), ignore_errors=True)
        print("\nInterrupted: the notebooks still running were stopped.", file=sys.stderr,
              flush=True)
        os._exit(130)  # the threads running a kernel in this process cannot be joined
    finally:
        pool.shutdown(wait=False)


def _watch(proc: subprocess.Popen, err: Path, limit: int) -> bool:
    """Wait for the worker; kill its process group when its cells run past ``limit`` + GRACE
    seconds (the worker stops itself at ``limit``: this is for one that does not), or when its
    kernel has not started a cell within STARTUP seconds. True when it had to be killed."""
    spawned, first_cell = time.monotonic(), None
    while proc.poll() is None:
        now = time.monotonic()
        if first_cell is None:
            try:
                with open(err, "rb") as f:
                    if _CELL.encode() in f.read(1 << 16):
                        first_cell = now
            except OSError:
                pass
        late = (now - spawned > STARTUP) if first_cell is None else (
            now - first_cell > limit + GRACE)
        if late or _STOP.is_set():
            _kill_tree(proc)
            try:
                proc.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                pass
            return True
        time.sleep(0.2)
    return False


def _worker_command() -> list:
    module = __spec__.name if __spec__ is not None else "tutorial_lib.grade"
    return [sys.executable, "-m", module]


def run_apart(path: Path, limit: int = LIMIT, sandbox: str | None = None, hide=(),
              in_place: bool = False) -> Report:
    """Run one notebook in a worker process with a hard wall-clock limit. Unless ``in_place``,
    the worker runs a copy of the notebook in a new temporary folder, with an empty home and a
    clean environment, under bubblewrap when ``sandbox`` is its path; the temporary folder is
    removed afterwards. The report says when the notebook timed out, killed its kernel, is not a
    notebook, or wrote into its home."""
    path = Path(path)
    started = time.monotonic()
    if path.is_symlink():  # a link to one of the teacher's files would be copied for the learner
        return Report(path, problem="not a notebook",
                      problem_reason="a symbolic link, not a file; links are not followed")
    try:
        _read(path)
    except ValueError as err:
        problem = "missing" if not path.is_file() else "not a notebook"
        return Report(path, problem=problem, problem_reason=str(err).split(": ", 1)[-1])
    temporary = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        work, home = temporary / "work", temporary / "home"
        work.mkdir()
        home.mkdir()
        if in_place:
            target, env, prefix, cwd = path.resolve(), None, [], path.resolve().parent
        else:
            target = work / path.name
            shutil.copyfile(path, target)
            env, cwd = learner_environment(home), work
            prefix = sandbox_command(sandbox, work, home, hide) if sandbox else []
        command = prefix + _worker_command() + ["--worker", "--time-limit", str(limit),
                                               str(target)]
        with open(temporary / "out", "wb") as out, open(temporary / "err", "wb") as err:
            kwargs = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
                      else {"start_new_session": True})
            proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=str(cwd), env=env, **kwargs)
            _RUNNING[proc] = temporary
            try:
                killed = _watch(proc, temporary / "err", limit)
            finally:
                _RUNNING.pop(proc, None)
        stdout = (temporary / "out").read_text(encoding="utf-8", errors="replace")
        stderr = (temporary / "err").read_text(encoding="utf-8", errors="replace")
        kernel = re.findall("^" + re.escape(_KERNEL) + r"(\d+)$", stderr, re.M)
        if killed and kernel and not sandbox and os.name != "nt":
            # jupyter_client starts the kernel in a session of its own, out of the worker's
            # group; under bubblewrap its PID namespace ends with the worker instead
            try:
                os.killpg(int(kernel[0]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        found = [line[len(_RESULT):] for line in stdout.splitlines() if line.startswith(_RESULT)]
        if found and not killed:
            report = Report.from_json(json.loads(found[-1]), path)
        else:
            cells = re.findall("^" + re.escape(_CELL) + r"(\d+)$", stderr, re.M)
            at = f" (at cell {cells[-1]})" if cells else ""
            if killed:
                what = f"still running after {limit} s{at}" if cells else (
                    f"its kernel did not start within {STARTUP} s")
                report = Report(path, problem="timed out", problem_reason=f"{what}; stopped")
            else:
                tail = " ".join(stderr.strip().splitlines()[-2:])[-300:]
                report = Report(path, problem="grader failed",
                                problem_reason=f"the worker exited {proc.returncode}{at}: {tail}")
        if not in_place:
            wrote = sorted(p.name for p in home.iterdir() if p.name not in _HOME_NOISE)
            if wrote and not report.problem:
                report.problem = "wrote outside its folder"
                report.problem_reason = ("into its home (" + ", ".join(f"~/{n}" for n in wrote)
                                         + "); discarded")
        report.seconds = time.monotonic() - started
        return report
    finally:
        shutil.rmtree(str(temporary), ignore_errors=True)


def _worker(path: Path, limit: int) -> int:
    """One notebook, in this process: its report as the last line of stdout."""
    _apply_limits(limit)
    try:
        report = grade(path, timeout=limit, limit=limit, announce=True)
    except ValueError as err:
        report = Report(path, problem="not a notebook", problem_reason=str(err).split(": ", 1)[-1])
    sys.stdout.flush()
    print(_RESULT + json.dumps(report.to_json(), ensure_ascii=True), flush=True)
    return 0


# --- a room: one folder per learner --------------------------------------------------------------

def lesson_of(path: Path) -> str:
    """'02' for 02_affine_quantization.ipynb; the file's name without suffix otherwise."""
    m = re.match(r"(\d\d)_", path.name)
    return m[1] if m else path.stem


def room(folder: Path) -> list:
    """(learner, file) pairs of a room's folder: FOLDER/<learner>/**/*.ipynb, or nbgrader's
    FOLDER/submitted/<learner>/<assignment>/*.ipynb (FOLDER may be `submitted` itself). Files
    named like a lesson (NN_*) that are not .ipynb come too, to be reported as not notebooks; a
    learner with nothing to grade comes as (learner, None)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder; give the folder that holds one folder per "
                         "learner (or nbgrader's course folder, which holds submitted/)")
    if (folder / "submitted").is_dir():
        folder = folder / "submitted"
    loose = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.suffix == ".ipynb")
    learners = sorted(p for p in folder.iterdir()
                      if p.is_dir() and p.name not in _IGNORED and not p.name.startswith("."))
    if loose:
        raise ValueError(f"{folder} holds notebooks at its top ({', '.join(loose[:3])}): a room's "
                         "folder holds one folder per learner, named after them. Move each "
                         "learner's notebooks into their folder, or grade loose files as files: "
                         f"python course.py grade {folder / '*.ipynb'}")
    if not learners:
        raise ValueError(f"{folder} has no learner folders: give the folder that holds one folder "
                         "per learner (or nbgrader's course folder, which holds submitted/)")
    pairs = []
    for learner in learners:
        files = []
        for dirpath, dirs, names in os.walk(learner):  # symbolic links to folders not followed
            dirs[:] = [d for d in dirs if d not in _IGNORED and not d.startswith(".")]
            files += [Path(dirpath, n) for n in names if n not in _IGNORED
                      and not n.startswith(".") and (n.endswith(".ipynb") or re.match(r"\d\d_", n))]
        pairs += [(learner.name, f) for f in sorted(files)] or [(learner.name, None)]
    return pairs


def rows_of(learner: str, report: Report) -> list:
    """The CSV rows of one notebook: its problem first, then each exercise, then stray errors."""
    lesson = lesson_of(report.path)
    rows = []
    if report.problem:
        rows.append([learner, lesson, "", report.problem, report.problem_reason])
    rows += [[learner, lesson, e.name, e.result, e.reason] for e in report.exercises]
    rows += [[learner, lesson, "", "cell raised", error] for error in report.stray]
    if not rows:
        rows.append([learner, lesson, "", "no checks", "no tl.checks.check_ cell ran: is this an "
                     "exercise notebook?"])
    return rows


def _cell(reports: list) -> str:
    """One learner's lesson in the summary: passed/total, or what stopped it."""
    short = {"timed out": "timeout", "kernel died": "died", "not a notebook": "not nb",
             "grader failed": "failed", "wrote outside its folder": "wrote!", "missing": "-"}
    text = []
    for report in reports:
        total = len(report.exercises)
        count = f"{sum(e.result == 'passed' for e in report.exercises)}/{total}" if total else ""
        mark = short.get(report.problem, "")
        text.append(" ".join(t for t in (count, mark) if t) or "0/0")
    return ",".join(text)


def _no_bubblewrap() -> str:
    if not sys.platform.startswith("linux"):
        return "bubblewrap exists on Linux only"
    if shutil.which("bwrap"):
        return "bubblewrap cannot make its namespaces here (a container that forbids them?)"
    return "bubblewrap is not installed (Debian/Ubuntu: sudo apt install bubblewrap)"


def grade_room(folder: Path, csv_path: Path, limit: int = LIMIT, jobs: int = 2,
               sandbox: bool = True, out=None) -> int:
    out = out or sys.stdout
    pairs = room(folder)
    folder = Path(folder).resolve()
    bwrap = bubblewrap() if sandbox else None
    home = Path.home()
    course = _course_root()
    hide = [home, folder] + ([course] if course else []) + [
        p for p in (Path("/home"), Path("/root")) if p.exists()]
    if bwrap:
        how = ("under bubblewrap: system read-only, private /tmp and home, no network; your "
               "home, the course folder and the room's folder hidden")
    else:
        why = "--no-sandbox" if not sandbox else _no_bubblewrap()
        how = "WITHOUT a sandbox"
        print(f"Warning: {why}. Learners' code runs {how}, as your user, with an empty "
              "temporary home and folder, a clean environment, resource limits and a hard "
              "time limit, but it could still read or change your files and reach the network. "
              "Grade in a container or as a user with nothing private.", file=out, flush=True)
    todo = [(learner, f) for learner, f in pairs if f is not None]
    learners = len({p[0] for p in pairs})
    print(f"Grading {len(todo)} notebooks of {learners} learner{'s' * (learners != 1)} in {folder}, "
          f"{jobs} at a time, at most {limit} s each, {how}.", file=out, flush=True)
    started = time.monotonic()

    def one(pair):
        learner, path = pair
        report = run_apart(path, limit, bwrap, hide)
        state = report.problem or f"{len(report.passed)}/{len(report.exercises)} pass"
        print(f"  {learner}/{path.relative_to(folder / learner).as_posix()}: {state} "
              f"({report.seconds:.1f} s)", file=out, flush=True)
        return learner, report

    # the longest first, so that the last two end together; reported in the room's order
    order = sorted(todo, key=lambda pair: -_expected_seconds(pair[1], {}))
    graded = sorted(_map(one, order, jobs), key=lambda done: (done[0], str(done[1].path)))
    rows = [["learner", "lesson", "exercise", "result", "reason"]]
    table: dict = {}
    for learner, path in pairs:
        if path is None:
            rows.append([learner, "", "", "nothing to grade", "no .ipynb file in the folder"])
            table.setdefault(learner, {})
    for learner, report in graded:
        rows += rows_of(learner, report)
        table.setdefault(learner, {}).setdefault(lesson_of(report.path), []).append(report)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    lessons = sorted({lesson for cells in table.values() for lesson in cells})
    shown = {(learner, lesson): _cell(table[learner].get(lesson, [])) or "-"
             for learner in table for lesson in lessons}
    widths = {lesson: max([len(lesson), 3] + [len(shown[learner, lesson]) for learner in table])
              for lesson in lessons}
    width = max([7] + [len(name) for name in table])
    print("\n" + "learner".ljust(width) + "".join(f"  {lesson:>{widths[lesson]}}"
                                                  for lesson in lessons), file=out)
    for learner in sorted(table):
        print(learner.ljust(width) + "".join(f"  {shown[learner, lesson]:>{widths[lesson]}}"
                                             for lesson in lessons), file=out)
    took = time.monotonic() - started
    each = sum(r.seconds for _, r in graded) / max(1, len(graded))
    print(f"\nCells are exercises passed/total; timeout, died (the kernel exited), not nb, wrote! "
          f"(wrote outside its folder) and - (nothing) say what stopped a notebook.\n"
          f"Wrote {csv_path} ({len(rows) - 1} rows). Graded {len(graded)} notebooks in "
          f"{took:.0f} s ({each:.1f} s each on average).", file=out, flush=True)
    return 0


# --- a learner's progress ------------------------------------------------------------------------

def _cache_folder() -> Path:
    """As tutorial_lib.paths.cache_dir("progress"): TL_CACHE_DIR, else the system's per-user
    cache folder (standard library only here)."""
    if os.environ.get("TL_CACHE_DIR"):
        root = Path(os.environ["TL_CACHE_DIR"]).expanduser()
    elif sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        root = root / "tutorial_lib" / "Cache"
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches" / "tutorial_lib"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        root = (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "tutorial_lib"
    return root / "progress"


def _library_hash() -> str:
    """A hash of the package's Python files: a new checker makes every cached result stale."""
    digest = hashlib.sha256(sys.version.encode())
    package = _package_dir()
    for file in sorted(package.rglob("*.py")):
        digest.update(file.relative_to(package).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def code_hash(path: Path, library: str) -> str | None:
    """The cache key of a notebook: its code cells (not outputs, not markdown) and the library."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
        digest = hashlib.sha256(library.encode())
        for cell in cells:
            if cell.get("cell_type") == "code":
                source = cell.get("source", "")
                digest.update(b"\0" + ("".join(source) if isinstance(source, list)
                                       else str(source)).encode())
        return digest.hexdigest()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _expected_seconds(path: Path, times: dict) -> float:
    """How long a notebook ran last time, else a guess from how much TensorFlow and PyTorch its
    code uses: the longest run first, so that two at a time end together."""
    if path.name in times:
        return float(times[path.name])
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
        text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    return 3.0 + 5.0 * sum(text.count(w) for w in ("torch", "tensorflow", "tflite", "tfmot",
                                                    "keras"))


def progress(paths: list, jobs: int = 2, limit: int = LIMIT, use_cache: bool = True,
             out=None, in_process: bool = True) -> int:
    out = out or sys.stdout
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"no such notebook: {', '.join(missing)}; give exercise notebooks "
                         "(.ipynb), or nothing for exercises/*.ipynb")
    started = time.monotonic()
    cache = _cache_folder()
    library = _library_hash() if use_cache else ""
    print(f"Running the checks of {len(paths)} exercise notebooks, {jobs} at a time; unchanged "
          "notebooks come from the cache.", file=out, flush=True)

    def one(path):
        key = code_hash(path, library) if use_cache else None
        stored = cache / f"{key}.json" if key else None
        if stored is not None and stored.is_file():
            try:
                report = Report.from_json(json.loads(stored.read_text(encoding="utf-8")), path)
                report.cached = True
                print(f"  {path.name}: unchanged since its last run, taken from the cache",
                      file=out, flush=True)
                return report
            except (OSError, ValueError, TypeError, KeyError):
                pass
        if in_process:  # one process, two kernels: no second import of nbclient per notebook
            try:
                report = grade(path, timeout=limit, limit=limit)
            except ValueError as err:
                report = Report(path, problem="not a notebook",
                                problem_reason=str(err).split(": ", 1)[-1])
        else:
            report = run_apart(path, limit, in_place=True)
        print(f"  {path.name}: ran in {report.seconds:.1f} s", file=out, flush=True)
        if stored is not None and report.problem in ("", "not a notebook"):
            try:
                cache.mkdir(parents=True, exist_ok=True)
                partial = stored.with_suffix(f".{os.getpid()}.partial")
                partial.write_text(json.dumps(report.to_json()), encoding="utf-8")
                partial.replace(stored)
            except OSError:
                pass  # a cache that cannot be written only means running again next time
        return report

    try:
        times = json.loads((cache / "seconds.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        times = {}
    order = sorted(range(len(paths)), key=lambda i: -_expected_seconds(paths[i], times))
    done = dict(zip(order, _map(one, [paths[i] for i in order], jobs)))  # noqa: B905
    reports = [done[i] for i in range(len(paths))]
    times.update({r.path.name: round(r.seconds, 1) for r in reports if not r.cached})
    if use_cache:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            (cache / "seconds.json").write_text(json.dumps(times), encoding="utf-8")
        except OSError:
            pass
    rows = []
    for report in reports:
        lesson = lesson_of(report.path)
        if report.problem:
            rows.append((lesson, "(notebook)", f"✗ {report.problem}: {report.problem_reason}"))
        for e in report.exercises:
            mark = {"passed": "✓ passed", "failed": "✗ failed", "not started": "… not started",
                    "not run": "✗ not run"}[e.result]
            reason = f": {e.reason}" if e.result in ("failed", "not run") and e.reason else ""
            rows.append((lesson, e.name, mark + reason))
        rows += [(lesson, "(cell)", f"✗ raised: {error}") for error in report.stray]
    width = max([8] + [len(r[1]) for r in rows])
    print(f"\n{'lesson':<6}  {'exercise':<{width}}  result", file=out)
    last = None
    for lesson, name, result in rows:
        shown = lesson if lesson != last else ""
        last = lesson
        line = f"{shown:<6}  {name:<{width}}  {result}"
        print(line if len(line) <= 160 else line[:157] + "...", file=out)
    exercises = [e for r in reports for e in r.exercises]
    count = {k: sum(e.result == k for e in exercises) for k in ("passed", "failed",
                                                                  "not started", "not run")}
    cached = sum(r.cached for r in reports)
    ran = len(reports) - cached
    not_run = f", {count['not run']} not run" if count["not run"] else ""
    print(f"\nProgress: {count['passed']}/{len(exercises)} exercises passed, {count['failed']} "
          f"failed, {count['not started']} not started{not_run}, in {len(reports)} notebooks ({ran} run, {cached} unchanged since their last run and "
          f"taken from the cache; {time.monotonic() - started:.1f} s).", file=out, flush=True)
    return 0


# --- the command line ----------------------------------------------------------------------------

def _print_report(report: Report) -> None:
    print(report.summary())
    for line in report.lines + [f"  ✗ {e}" for e in report.errors]:
        print(f"  {line}")
    if report.checks == 0 and not report.problem:
        print("  (no tl.checks.check_ cell ran: is this an exercise notebook?)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib.grade",
        description="Run exercise notebooks and report what their checks say: notebooks one by "
                    "one, a room's folder (one folder per learner) into a CSV, or a learner's "
                    "progress.")
    parser.add_argument("paths", nargs="*", type=Path,
                        help="exercise notebooks (.ipynb), or one folder of learners' folders")
    parser.add_argument("--progress", action="store_true",
                        help="a table of every exercise of these notebooks (default: "
                             "exercises/*.ipynb), run in place, unchanged ones from the cache")
    parser.add_argument("--time-limit", type=int, default=LIMIT, metavar="S",
                        help=f"seconds per notebook ({LIMIT})")
    parser.add_argument("--timeout", type=int, help=argparse.SUPPRESS)  # the old per-cell name
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at once (2)")
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="a room's results (default: FOLDER-grades.csv beside the folder)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run learners' notebooks without bubblewrap even where it is")
    parser.add_argument("--no-cache", action="store_true", help="--progress: run every notebook")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    limit = args.timeout or args.time_limit
    if limit < 1 or args.jobs < 1:
        parser.error("--time-limit and --jobs must be at least 1")
    if args.worker:
        return _worker(args.paths[0], limit)
    try:
        if args.progress:
            paths = args.paths or sorted(Path("exercises").glob("[0-9][0-9]_*.ipynb"))
            if not paths:
                raise ValueError("no exercise notebooks here: run this in the course folder, or "
                                 "name the notebooks: --progress path/to/NN_*.ipynb")
            return progress(paths, args.jobs, limit, use_cache=not args.no_cache)
        if not args.paths:
            parser.error("name exercise notebooks, or a folder with one folder per learner")
        folders = [p for p in args.paths if p.is_dir()]
        if folders:
            if len(args.paths) != 1:
                raise ValueError("give one room's folder alone, or notebooks without a folder")
            folder = folders[0].resolve()
            target = args.csv or folder.parent / f"{folder.name}-grades.csv"
            return grade_room(folder, target.resolve(), limit, args.jobs, not args.no_sandbox)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bwrap = None if args.no_sandbox else bubblewrap()
    if bwrap is None and not args.no_sandbox:
        print(f"Note: {_no_bubblewrap()}; the notebooks run without a sandbox, in a temporary "
              "copy with an empty home and a time limit.", file=sys.stderr, flush=True)
    course = _course_root()
    hide = [Path.home()] + ([course] if course else [])
    reports = _map(lambda path: run_apart(path, limit, bwrap, hide + [path.resolve().parent]),
                   args.paths, args.jobs)
    status = 0
    for path, report in zip(args.paths, reports):  # noqa: B905
        if report.problem in ("missing", "not a notebook"):
            print(f"error: {path}: {report.problem_reason}", file=sys.stderr)
            status = 2
            continue
        _print_report(report)
        if not report.ok:
            status = max(status, 1)
    return status


if __name__ == "__main__":
    # jsonschema (under nbformat) imports this optional URI checker if it is installed, which
    # builds a grammar for 2 s of CPU; notebooks are never validated against it. In this
    # process only: it is one worker per notebook, or the progress run.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    sys.exit(main())
