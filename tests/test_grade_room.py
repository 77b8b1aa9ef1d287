"""Grading a room: hostile notebooks get a row that says what they did, and reach nothing.

Tiny notebooks written here, checked by the course's own checker (`tl.checks.check_quantize`):
a right and a wrong answer, an infinite loop, os._exit, a raise, cells writing next to the
installed tutorial_lib, into the course folder and into the home, a file that is not a notebook.
The sandboxed run needs bubblewrap and skips with one line without it; the fallback runs
everywhere.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path

import nbformat
import pytest

import tutorial_lib
from tutorial_lib import grade

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(tutorial_lib.__file__).resolve().parent
LIMIT = 6  # seconds of a notebook's cells: the loop is stopped after this

RIGHT = """def quantize(x, scale, zero_point, quant_min, quant_max):
    q = np.round(np.asarray(x) / scale) + zero_point
    return np.clip(q, quant_min, quant_max).astype(np.int32)
"""
WRONG = """def quantize(x, scale, zero_point, quant_min, quant_max):
    return np.clip(np.asarray(x) / scale + zero_point, quant_min, quant_max).astype(np.int32)
"""


def notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def exercise(path: Path, answer: str) -> Path:
    return notebook(path, "import numpy as np\nimport tutorial_lib as tl", answer,
                    "tl.checks.check_quantize(quantize)")


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if "__pycache__" not in p.parts}


def rows(csv_path: Path) -> list:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def result(table: list, learner: str) -> set:
    return {(r["exercise"], r["result"]) for r in table if r["learner"] == learner}


def reasons(table: list, learner: str) -> str:
    return " | ".join(r["reason"] for r in table if r["learner"] == learner)


@pytest.fixture(scope="module")
def hostile_room(tmp_path_factory):
    """A room's folder, the teacher's home, and the notebooks' paths of harm."""
    base = tmp_path_factory.mktemp("room")
    room, home = base / "submissions", base / "teacher-home"
    home.mkdir()
    (home / "notes.txt").write_text("the teacher's")
    exercise(room / "alice" / "02_affine_quantization.ipynb", RIGHT)
    exercise(room / "bob" / "02_affine_quantization.ipynb", WRONG)
    notebook(room / "carol" / "02_affine_quantization.ipynb", "while True:\n    pass")
    notebook(room / "dave" / "02_affine_quantization.ipynb", "import os\nos._exit(3)")
    notebook(room / "mallory" / "02_affine_quantization.ipynb",
             "import os, pathlib, tutorial_lib",
             "pathlib.Path(tutorial_lib.__file__).with_name('planted.py').write_text('x')",
             f"pathlib.Path({str(ROOT)!r}, 'planted.txt').write_text('x')",
             f"pathlib.Path({str(home)!r}, 'planted.txt').write_text('x')",
             "pathlib.Path(os.path.expanduser('~'), 'planted.txt').write_text('x')",
             f"print(os.listdir({str(ROOT / 'solutions')!r}))")
    (room / "frank").mkdir()
    (room / "frank" / "02_affine_quantization.py").write_text("print('not a notebook')")
    (room / "frank" / "03_granularity_and_calibration.ipynb").write_text("my notes")
    try:  # Windows allows symbolic links to administrators only; the sandboxed test is Linux's
        (room / "frank" / "04_integer_inference.ipynb").symlink_to(home / "notes.txt")
    except OSError:
        pass
    return room, home


def state(home: Path) -> dict:
    """The teacher's home to the byte and time; the package's and the course folder's file
    names (other people may be editing their contents while the tests run)."""
    return {"home": snapshot(home), "package": set(snapshot(PACKAGE)),
            "root": set(os.listdir(ROOT)), "solutions": set(os.listdir(ROOT / "solutions"))}


def grade_it(room: Path, home: Path, monkeypatch, sandbox: bool):
    monkeypatch.setenv("HOME", str(home))
    before = state(home)
    out = io.StringIO()
    csv_path = room.parent / f"grades-{sandbox}.csv"
    assert grade.grade_room(room, csv_path, limit=LIMIT, jobs=2, sandbox=sandbox, out=out) == 0
    return rows(csv_path), out.getvalue(), before, state(home)


def test_a_sandboxed_room_reports_every_hostile_notebook_and_nothing_outside_changes(
        hostile_room, monkeypatch):
    if grade.bubblewrap() is None:
        pytest.skip("bubblewrap (Debian: bubblewrap) is absent or cannot make namespaces here")
    room, home = hostile_room
    table, out, before, after = grade_it(room, home, monkeypatch, sandbox=True)
    assert "under bubblewrap" in out and "Warning" not in out
    assert result(table, "alice") == {("quantize", "passed")}
    assert result(table, "bob") == {("quantize", "failed")}
    assert "cases right" in reasons(table, "bob") and "hint:" in reasons(table, "bob")
    assert result(table, "carol") == {("", "timed out")}
    assert result(table, "dave") == {("", "kernel died")}
    assert result(table, "frank") == {("", "not a notebook")}
    assert len([r for r in table if r["learner"] == "frank"]) == 3
    assert "symbolic link" in reasons(table, "frank") and "the teacher's" not in reasons(table, "frank")
    # mallory: the package is read-only, the course folder and the teacher's home are empty and
    # read-only (each of those cells raises), what she leaves in her own home is reported
    mallory = reasons(table, "mallory")
    for planted in (PACKAGE / "planted.py", ROOT / "planted.txt", home / "planted.txt"):
        assert f"Read-only file system: '{planted}'" in mallory
    assert result(table, "mallory") == {("", "cell raised"), ("", "wrote outside its folder")}
    assert "~/planted.txt" in mallory
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{ROOT / 'solutions'}'" in mallory
    assert not (PACKAGE / "planted.py").exists() and not (ROOT / "planted.txt").exists()
    assert after == before
    assert (home / "notes.txt").read_text() == "the teacher's"
    # the summary: one line per learner, one column per lesson
    summary = out[out.index("learner "):]
    assert "alice" in summary and "1/1" in summary and "timeout" in summary and "died" in summary
    assert "not nb" in summary


def test_without_a_sandbox_grading_warns_and_still_reports_and_contains_the_home(
        hostile_room, monkeypatch):
    room, home = hostile_room
    small = room.parent / "small"
    for learner in ("carol", "dave"):
        (small / learner).mkdir(parents=True, exist_ok=True)
        (small / learner / "02_affine_quantization.ipynb").write_bytes(
            (room / learner / "02_affine_quantization.ipynb").read_bytes())
    notebook(small / "mallory" / "02_affine_quantization.ipynb",
             "import os, pathlib",
             "pathlib.Path(os.path.expanduser('~'), 'planted.txt').write_text('x')",
             "assert 'JUPYTERHUB_API_TOKEN' not in os.environ, 'the token leaked'")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "secret")
    monkeypatch.setattr(grade, "_BWRAP", [None])  # as on a machine without bubblewrap
    monkeypatch.setattr(grade.shutil, "which", lambda name: None)
    table, out, before, after = grade_it(small, home, monkeypatch, sandbox=True)
    why = grade._no_bubblewrap()
    assert f"Warning: {why}. Learners' code runs WITHOUT a sandbox" in out
    assert "sudo apt install bubblewrap" in why or not sys.platform.startswith("linux")
    assert result(table, "carol") == {("", "timed out")}
    assert result(table, "dave") == {("", "kernel died")}
    assert result(table, "mallory") == {("", "wrote outside its folder")}
    assert after["home"] == before["home"]  # and no "cell raised": the token did not leak


def test_a_worker_that_never_stops_is_killed_at_the_hard_limit(tmp_path, monkeypatch):
    """The kernel stops its own grader (SIGSTOP): only the wall-clock kill of the group ends it."""
    if os.name != "posix":
        pytest.skip("SIGSTOP is POSIX")
    monkeypatch.setattr(grade, "GRACE", 2)
    path = notebook(tmp_path / "02_stop.ipynb", "import os, signal\n"
                    "os.kill(os.getppid(), signal.SIGSTOP)\nwhile True:\n    pass")
    report = grade.run_apart(path, limit=2, sandbox=grade.bubblewrap())
    assert report.problem == "timed out" and "still running after 2 s" in report.problem_reason
    assert "(at cell 1)" in report.problem_reason and report.seconds < 30


def test_nbgraders_layout_is_read_as_learners_and_assignments(tmp_path):
    course = tmp_path / "course"
    for learner in ("ana", "ben"):
        exercise(course / "submitted" / learner / "ps02" / "02_affine_quantization.ipynb", RIGHT)
        (course / "submitted" / learner / "ps02" / "timestamp.txt").write_text("2026-12-07")
    (course / "submitted" / "ben" / "ps02" / ".ipynb_checkpoints").mkdir()
    (course / "submitted" / "ben" / "ps02" / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    (course / "submitted" / "cy").mkdir()
    pairs = grade.room(course)
    assert [(learner, p and p.name) for learner, p in pairs] == [
        ("ana", "02_affine_quantization.ipynb"), ("ben", "02_affine_quantization.ipynb"),
        ("cy", None)]
    assert grade.lesson_of(pairs[0][1]) == "02"


@pytest.mark.parametrize("setup, problem", [
    (lambda f: None, "no such file"),
    (lambda f: f.mkdir(), "no learner folders"),
    (lambda f: (f.mkdir(), (f / "02_x.ipynb").write_text("{}")), "notebooks at its top"),
])
def test_a_folder_that_is_not_a_room_is_refused_with_what_to_do(tmp_path, capsys, setup, problem):
    folder = tmp_path / "room"
    setup(folder)
    assert grade.main([str(folder)]) == 2
    assert problem in capsys.readouterr().err


def test_the_sandbox_hides_the_home_and_course_and_binds_back_python_and_the_package(tmp_path):
    command = grade.sandbox_command("/usr/bin/bwrap", tmp_path / "work", tmp_path / "home",
                                    hide=[Path.home(), ROOT])
    text = " ".join(command)
    assert command[:3] == ["/usr/bin/bwrap", "--ro-bind", "/"] and command[-1] == "--"
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--tmpfs /tmp"):
        assert flag in text
    assert f"--tmpfs {ROOT}" in text and f"--tmpfs {Path.home().resolve()}" in text
    assert f"--ro-bind {PACKAGE} {PACKAGE}" in text and f"--ro-bind {sys.prefix}" in text
    # mounts apply in order: what is hidden first, then what comes back, then the copy
    assert text.index(f"--tmpfs {ROOT}") < text.index(f"--ro-bind {PACKAGE}") < text.index(
        f"--bind {tmp_path / 'work'}") < text.index(f"--remount-ro {ROOT}")


def test_the_learners_environment_keeps_no_token_and_no_path_of_the_teacher(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "secret")
    monkeypatch.setenv("TL_CACHE_DIR", "/teacher/cache")
    env = grade.learner_environment(tmp_path / "home")
    assert "JUPYTERHUB_API_TOKEN" not in env and env["HOME"] == str(tmp_path / "home")
    assert env["TL_CACHE_DIR"].startswith(str(tmp_path / "home"))


# --- a learner's progress ------------------------------------------------------------------------

def test_progress_tables_every_exercise_and_takes_unchanged_notebooks_from_the_cache(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TL_CACHE_DIR", str(tmp_path / "cache"))
    done = exercise(tmp_path / "02_affine_quantization.ipynb", RIGHT)
    todo = notebook(tmp_path / "03_granularity_and_calibration.ipynb",
                    "import numpy as np\nimport tutorial_lib as tl",
                    "def quantize(x, scale, zero_point, quant_min, quant_max):\n"
                    "    raise NotImplementedError('your code')",
                    "tl.checks.check_quantize(quantize)")
    assert grade.main(["--progress", str(done), str(todo)]) == 0
    out = capsys.readouterr().out
    assert "02      quantize  ✓ passed" in out and "03      quantize  … not started" in out
    assert "1/2 exercises passed, 0 failed, 1 not started" in out and "(2 run, 0 unchanged" in out
    before = done.read_bytes()
    assert grade.main(["--progress", str(done), str(todo)]) == 0
    out = capsys.readouterr().out
    assert "(0 run, 2 unchanged since their last run and taken from the cache" in out
    assert "ran in" not in out and done.read_bytes() == before
    assert "02_affine_quantization.ipynb: unchanged since its last run, taken from the cache" in out
    exercise(done, WRONG)  # a changed answer is run again; its neighbour still comes from the cache
    assert grade.main(["--progress", str(done), str(todo)]) == 0
    out = capsys.readouterr().out
    assert "02      quantize  ✗ failed: 6/8 cases right; first wrong case: .5 ties" in out
    assert "(1 run, 1 unchanged" in out


def test_the_cache_key_is_the_code_and_the_library_not_the_outputs(tmp_path):
    path = exercise(tmp_path / "02_x.ipynb", RIGHT)
    key = grade.code_hash(path, "lib-1")
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="✓ quantize: 8/8 exact\n")]
    nb.cells.append(nbformat.v4.new_markdown_cell("my notes"))
    nbformat.write(nb, path)
    assert grade.code_hash(path, "lib-1") == key != grade.code_hash(path, "lib-2")
    exercise(path, WRONG)
    assert grade.code_hash(path, "lib-1") != key
    assert grade.code_hash(tmp_path / "missing.ipynb", "lib-1") is None


def test_ctrl_c_stops_every_notebook_and_leaves_no_copy_behind(tmp_path):
    if os.name != "posix":
        pytest.skip("Ctrl+C is sent as SIGINT on POSIX")
    import signal
    import subprocess
    import time

    for learner in ("a", "b"):
        notebook(tmp_path / "room" / learner / "02_loop.ipynb", "while True:\n    pass")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.Popen(  # a shell's background job would ignore SIGINT: restore it
        [sys.executable, "-m", "tutorial_lib.grade", "--no-sandbox", str(tmp_path / "room")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, TMPDIR=str(scratch)),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while len(list(scratch.glob("course-grade-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Interrupted" in out
    time.sleep(1)
    assert list(scratch.glob("course-grade-*")) == []
