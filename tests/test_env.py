"""The environment report, the course's version ranges, the quantized engine, the offline guard,
and a scan of the notebooks for stored outputs that would pin the machine that saved them."""

import json
import re
import socket
import urllib.request
from pathlib import Path

import pytest

from tutorial_lib import env


def test_versions_match_the_lock():
    pins = {}  # a name may be pinned twice, under different markers
    for line in open("requirements/lock.txt"):
        if "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins.setdefault(name.lower().replace("_", "-"), set()).add(version)
    found = env.versions()
    for name, version in found.items():
        if name != "python" and version != "not installed":
            assert version.split("+")[0] in pins[name.lower().replace("_", "-")], name


def test_offline_blocks_and_restores():
    with env.offline(), pytest.raises(env.NetworkBlockedError):
        urllib.request.urlopen("http://127.0.0.1:9", timeout=1)
    assert socket.getaddrinfo("localhost", 80)  # restored afterwards


def test_machine_report():
    assert set(env.machine()) == {"system", "cpu", "cores"}


# ---- the course's version ranges

def test_version_ranges_read_the_course_pyproject():
    ranges = env.version_ranges()
    assert ranges["python"].startswith((">", "<", "~", "="))
    assert {"numpy", "torch", "torchao", "tensorflow", "nbval"} <= set(ranges)
    assert "tutorial-lib" not in ranges  # the "all" extra names the course itself


def test_check_versions_ignores_local_tags_and_names_what_is_out_of_range(monkeypatch):
    monkeypatch.setattr(env, "version_ranges", lambda: {
        "python": ">=3.11,<3.14", "torch": "==2.13.0", "numpy": ">=2.1,<2.5"})
    monkeypatch.setattr(env, "versions", lambda packages: {
        "python": "3.13.1", "torch": "2.13.0+cpu", "numpy": "2.5.0", "tensorflow": "not installed"})
    assert env.check_versions() == {"numpy": "2.5.0 installed, the course needs >=2.1,<2.5"}
    monkeypatch.setattr(env, "versions", lambda packages: {"python": "3.14.0", "torch": "2.13.0"})
    assert list(env.check_versions()) == ["python"]


def test_installed_versions_are_inside_the_course_ranges():
    assert env.check_versions() == {}


# ---- the quantized engine

def test_quantized_engine_follows_the_machine_and_the_variable(monkeypatch):
    monkeypatch.delenv(env.ENGINE_VARIABLE, raising=False)
    for machine in ("x86_64", "AMD64", "i686"):
        assert env.quantized_engine(machine=machine) == "x86"
    for machine in ("aarch64", "arm64", "ARM64", "armv7l"):
        assert env.quantized_engine(machine=machine) == "qnnpack"
    monkeypatch.setenv(env.ENGINE_VARIABLE, "qnnpack")
    assert env.quantized_engine(["qnnpack", "x86", "fbgemm"], machine="x86_64") == "qnnpack"
    assert env.quantized_engine(machine="x86_64", override="") == "x86"


def test_unsupported_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(env.ENGINE_VARIABLE, "fpga")
    with pytest.raises(ValueError, match=r"TL_QUANTIZED_ENGINE='fpga'.*\['qnnpack', 'x86'\]"):
        env.quantized_engine(["qnnpack", "none", "x86"], machine="x86_64")
    monkeypatch.delenv(env.ENGINE_VARIABLE)
    with pytest.raises(ValueError, match=r"this machine \(aarch64\).*'qnnpack'.*\['x86'\]"):
        env.quantized_engine(["x86"], machine="aarch64")


# ---- int8 instructions: /proc/cpuinfo on Linux, sysctl on macOS

X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512bw avx512_vnni
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 2000.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp sve i8mm bf16
CPU implementer\t: 0x41
"""
MAC_SYSCTL = """hw.optional.arm.FEAT_BF16: 1
hw.optional.arm.FEAT_DotProd: 1
hw.optional.arm.FEAT_I8MM: 0
hw.optional.arm.FEAT_SME: 0
hw.optional.floatingpoint: 1
machdep.cpu.brand_string: Apple M2
"""


def test_int8_features_on_x86_linux_are_unchanged(monkeypatch):
    monkeypatch.setattr(env.platform, "system", lambda: "Linux")
    monkeypatch.setattr(env, "_cpuinfo_text", lambda: X86_CPUINFO)
    found = env.int8_features()
    assert {name for name, present in found.items() if present} == {
        "AVX2", "AVX-512", "AVX-512 VNNI"}
    assert env.machine()["cpu"] == "AMD EPYC 9R14"


def test_int8_features_on_arm_linux_read_the_features_line(monkeypatch):
    monkeypatch.setattr(env.platform, "system", lambda: "Linux")
    monkeypatch.setattr(env, "_cpuinfo_text", lambda: ARM_CPUINFO)
    found = env.int8_features()
    assert {name for name, present in found.items() if present} == {
        "Arm dot product", "Arm int8 matrix multiply", "Arm SVE", "Arm BF16"}


def test_int8_features_on_macos_read_sysctl(monkeypatch):
    monkeypatch.setattr(env.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(env, "_cpuinfo_text", lambda: pytest.fail("no /proc on macOS"))
    monkeypatch.setattr(env, "_sysctl_text", lambda: MAC_SYSCTL)
    assert env.cpu_flags() == "bf16 asimddp"
    found = env.int8_features()
    assert {name for name, present in found.items() if present} == {"Arm dot product", "Arm BF16"}
    assert env.machine()["cpu"] == "Apple M2"


def test_int8_features_without_cpuinfo_or_sysctl_are_all_false(monkeypatch):
    monkeypatch.setattr(env.platform, "system", lambda: "Windows")
    monkeypatch.setattr(env, "_cpuinfo_text", lambda: "")
    assert not any(env.int8_features().values())


# ---- stored outputs must not pin the machine

NOTEBOOK_FOLDERS = ("notebooks", "solutions", "exercises")
MACHINE_PINS = {
    "a Python patch version": re.compile(r"(?<![\d.])3\.1\d\.\d+(?![\d.])"),
    "a local version tag": re.compile(r"\d\+(?:cpu|cu\d+|rocm[\d.]*|xpu)\b"),
    "a library version": re.compile(
        r"\b(?:python|numpy|torch|torchao|tensorflow|tfmot|keras|tf-keras|ai-edge-litert|"
        r"litert|scikit-learn|matplotlib|transformers)\s*(?:version\s*)?[:=]?\s*\d+\.\d+\.\d+",
        re.IGNORECASE),
    "an engine name as a result": re.compile(
        r"['\"](?:x86|qnnpack|fbgemm|onednn)['\"]|\bengine\b\W{0,3}(?:is\s+)?(?:x86|qnnpack|fbgemm|onednn)\b",
        re.IGNORECASE),
}


def _compared_outputs(path: Path):
    """(cell index, text) of every stored output nbval compares in this notebook."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        markers = {line.strip().lstrip("#").strip() for line in source.splitlines()
                   if line.strip().startswith("#")}
        tags = set(cell.get("metadata", {}).get("tags", []))
        if markers & {"NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP"} or tags & {
                "nbval-ignore-output", "nbval-skip"}:
            continue
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            yield index, "".join(text)


def machine_pins(path: Path) -> list[str]:
    """What a notebook's compared outputs say about the machine that saved them."""
    found = []
    for index, text in _compared_outputs(path):
        for what, pattern in MACHINE_PINS.items():
            match = pattern.search(text)
            if match:
                found.append(f"{path.as_posix()} cell {index}: {what}, {match.group(0)!r}")
    return found


def test_the_scan_finds_what_pins_the_machine(tmp_path):
    cells = [
        {"cell_type": "code", "source": "print(versions)", "metadata": {},
         "outputs": [{"output_type": "stream", "name": "stdout",
                      "text": "python 3.11.7\ntorch 2.13.0+cpu\n"}]},
        {"cell_type": "code", "source": "print(engine)", "metadata": {},
         "outputs": [{"output_type": "execute_result", "data": {"text/plain": "'qnnpack'"}}]},
        {"cell_type": "code", "source": "# NBVAL_IGNORE_OUTPUT\nprint(versions)", "metadata": {},
         "outputs": [{"output_type": "stream", "name": "stdout", "text": "python 3.12.4\n"}]},
        {"cell_type": "code", "source": "print(table)", "metadata": {},
         "outputs": [{"output_type": "stream", "name": "stdout",
                      "text": "x86      weights: PerChannelMinMaxObserver\nscale 3.1\n"}]},
    ]
    path = tmp_path / "lesson.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    found = machine_pins(path)
    assert [line.split(": ", 1)[1].split(",")[0] for line in found] == [
        "a Python patch version", "a local version tag", "a library version",
        "an engine name as a result"]
    assert all(" cell 0: " in line for line in found[:3]) and " cell 1: " in found[3]


@pytest.mark.parametrize("folder", NOTEBOOK_FOLDERS)
def test_no_compared_output_pins_the_machine(folder):
    """Versions, local tags and the engine belong in cells marked NBVAL_IGNORE_OUTPUT."""
    found = [pin for path in sorted(Path(folder).glob("*.ipynb")) for pin in machine_pins(path)]
    assert not found, "\n".join(found)
