"""The learner's environment: package versions and the course's ranges, the machine, PyTorch's
quantized engine for it, and a guard that forbids the network."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

__all__ = ["versions", "version_ranges", "check_versions", "machine", "int8_features",
           "INT8_FEATURES", "cpu_flags", "quantized_engine", "ENGINES", "ENGINE_VARIABLE",
           "offline", "NetworkBlockedError"]

PACKAGES = ("numpy", "matplotlib", "scikit-learn", "ml_dtypes", "torch", "torchao", "tensorflow",
            "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "jupyterlab", "nbval")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package (read from metadata: nothing is imported).

    >>> versions(("numpy",))["numpy"][:1].isdigit()
    True
    """
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def version_ranges() -> dict[str, str]:
    """The versions the course accepts: ``{"python": ..., package: specifier}``.

    Read from the course's ``pyproject.toml`` (``requires-python``, the dependencies and every
    extra) when the library runs from the course folder, else from the installed package's
    metadata, which pip wrote from the same file.

    >>> version_ranges()["numpy"].startswith(("<", ">", "=", "~", "!"))
    True
    """
    from packaging.requirements import Requirement  # a dependency of matplotlib, so installed

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    project = {}
    if pyproject.is_file():
        import tomllib

        with open(pyproject, "rb") as f:
            project = tomllib.load(f).get("project", {})
    if project.get("name") == "tutorial_lib":
        python = project.get("requires-python", "")
        lines = [*project.get("dependencies", []),
                 *(r for extra in project.get("optional-dependencies", {}).values() for r in extra)]
    else:
        python = metadata.metadata("tutorial_lib").get("Requires-Python", "")
        lines = metadata.requires("tutorial_lib") or []
    ranges = {"python": str(python)}
    for line in lines:
        requirement = Requirement(line)
        name = _normalize(requirement.name)
        if name != "tutorial-lib":  # the "all" extra names the course itself
            ranges[name] = str(requirement.specifier)
    return ranges


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def check_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python and each installed package against the course's ranges: ``{name: problem}``.

    Empty when everything is inside its range. Local version tags (``2.13.0+cpu``, the CPU
    wheel's name for 2.13.0) are ignored, as pip ignores them; a package that is not installed
    is not a wrong version and is skipped (the lessons that need it say so when they import it).

    >>> check_versions(("numpy",))
    {}
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    ranges = version_ranges()
    problems = {}
    for name, version in versions(packages).items():
        wanted = ranges.get(_normalize(name))
        if version == "not installed" or not wanted:
            continue
        if not SpecifierSet(wanted).contains(Version(version).public, prereleases=True):
            problems[name] = f"{version} installed, the course needs {wanted}"
    return problems


def machine() -> dict[str, str]:
    """Operating system, processor and core count of this machine."""
    cpu = platform.processor() or platform.machine()
    if platform.system() == "Darwin":
        names = [line.split(":", 1)[1].strip() for line in _sysctl_text().splitlines()
                 if line.startswith("machdep.cpu.brand_string")]
    else:
        names = [line.split(":", 1)[1].strip() for line in _cpuinfo_text().splitlines()
                 if line.startswith("model name")]
    cpu = names[0] if names else cpu
    return {"system": f"{platform.system()} {platform.release()}", "cpu": cpu,
            "cores": str(os.cpu_count())}


INT8_FEATURES = (
    ("avx2", "AVX2", "256-bit integer vectors; int8 products go through 16-bit sums "
     "(vpmaddubsw), the baseline of fbgemm, oneDNN and XNNPACK on x86"),
    ("avx512bw", "AVX-512", "512-bit integer vectors: twice AVX2's width"),
    ("avx512_vnni", "AVX-512 VNNI", "vpdpbusd: 64 u8 x s8 products summed into 16 int32 in one "
     "instruction, about 3x fewer instructions than AVX2 for an int8 dot product"),
    ("avx_vnni", "AVX-VNNI", "the same dot-product instruction on 256-bit vectors"),
    ("amx_int8", "AMX-INT8", "tile unit: a 16x64 by 64x16 int8 matrix product per instruction, "
     "used by oneDNN for large enough layers"),
    ("asimddp", "Arm dot product", "SDOT/UDOT: four int8 products summed into int32 per lane"),
    ("i8mm", "Arm int8 matrix multiply", "SMMLA: a 2x8 by 8x2 int8 matrix product per lane"),
    ("sve", "Arm SVE", "scalable vectors (128 to 2048 bits) with the same int8 dot products"),
    ("sme", "Arm SME", "matrix unit: int8 outer products summed into int32 tiles (SMOPA)"),
    ("bf16", "Arm BF16", "bfloat16 dot products and matrix multiply (BFDOT, BFMMLA): not int8, "
     "but the fast path Arm's float kernels can take instead"),
)
"""(cpuinfo flag, name, what it does for int8) for the instructions int8 kernels look for."""

_SYSCTL_FLAGS = {  # macOS: sysctl key -> the flag Linux prints for the same instructions
    "hw.optional.arm.FEAT_DotProd": "asimddp",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
    "hw.optional.arm.FEAT_SVE": "sve",
    "hw.optional.arm.FEAT_SME": "sme",
    "hw.optional.arm.FEAT_BF16": "bf16",
}


def _cpuinfo_text() -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return Path("/proc/cpuinfo").read_text()
    return ""


def _sysctl_text() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["sysctl", "hw.optional", "machdep.cpu.brand_string"],
                              capture_output=True, text=True, timeout=10).stdout
    return ""


def cpu_flags(system: str | None = None) -> str:
    """The CPU's instruction-set flags, space-separated, with Linux's names.

    Linux: the ``flags`` (x86) or ``Features`` (Arm) line of ``/proc/cpuinfo``. macOS, where
    there is no ``/proc``: the ``hw.optional.arm.FEAT_*`` keys of ``sysctl`` that are 1, named
    as Linux names them (``FEAT_DotProd`` is ``asimddp``, ``FEAT_I8MM`` is ``i8mm``). Elsewhere
    (Windows): empty.
    """
    system = platform.system() if system is None else system
    if system == "Darwin":
        found = []
        for line in _sysctl_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in _SYSCTL_FLAGS and value.strip() == "1":
                found.append(_SYSCTL_FLAGS[key.strip()])
        return " ".join(found)
    lines = [line for line in _cpuinfo_text().splitlines()
             if line.startswith(("flags", "Features"))]
    return lines[0].split(":", 1)[1].strip() if lines else ""


def int8_features(flags: str | None = None) -> dict[str, bool]:
    """Which int8 instructions this CPU has, by the names of ``INT8_FEATURES``.

    ``flags`` defaults to ``cpu_flags()``: ``/proc/cpuinfo`` on Linux (x86 and Arm), ``sysctl``
    on macOS. On Windows every entry is False: check your CPU's data sheet.
    The float kernels' own choice is another matter: ``torch.backends.cpu.get_cpu_capability()``.

    >>> int8_features("fpu avx2 avx512bw avx512_vnni")["AVX-512 VNNI"]
    True
    >>> int8_features("fpu avx2")["AMX-INT8"]
    False
    >>> int8_features("fp asimd asimddp i8mm bf16")["Arm int8 matrix multiply"]
    True
    """
    present = set((cpu_flags() if flags is None else flags).split())
    return {name: flag in present for flag, name, _ in INT8_FEATURES}


# ---- PyTorch's quantized engine

ENGINES = {"x86": "x86-64: fbgemm and oneDNN kernels",
           "qnnpack": "ARM (aarch64, Apple silicon): QNNPACK kernels, as on phones"}
"""The quantized engines the course's lessons run on, and where each is the default."""

ENGINE_VARIABLE = "TL_QUANTIZED_ENGINE"
"""Set it to force an engine, e.g. ``qnnpack`` on an x86 machine to run the ARM path."""

_ARM_MACHINES = ("arm64", "aarch64", "armv8", "armv7")


def quantized_engine(supported: Sequence[str] | None = None, machine: str | None = None,
                     override: str | None = None) -> str:
    """The PyTorch quantized engine for this machine: "x86" on x86-64, "qnnpack" on ARM.

    ``override`` (default: the ``TL_QUANTIZED_ENGINE`` environment variable) replaces the
    machine's choice, e.g. ``qnnpack`` on x86 as a stand-in for an ARM CPU. ``supported``, the
    engines of the installed PyTorch (``torch.backends.quantized.supported_engines``), turns a
    choice it cannot run into a ``ValueError`` that lists them. The torch bridge calls this when
    it loads and sets ``torch.backends.quantized.engine``; nothing else picks an engine.

    >>> quantized_engine(machine="x86_64", override="")
    'x86'
    >>> quantized_engine(machine="arm64", override="")
    'qnnpack'
    >>> quantized_engine(["qnnpack", "none"], machine="aarch64", override="x86")
    Traceback (most recent call last):
    ...
    ValueError: TL_QUANTIZED_ENGINE='x86', but this PyTorch supports the quantized engines ['qnnpack']; set TL_QUANTIZED_ENGINE to one of them, or unset it.
    """
    if override is None:
        override = os.environ.get(ENGINE_VARIABLE, "")
    override = override.strip()
    machine = (platform.machine() if machine is None else machine).lower()
    engine = override or ("qnnpack" if machine.startswith(_ARM_MACHINES) else "x86")
    if supported is not None:
        usable = [e for e in supported if e != "none"]
        if engine not in usable:
            if override:
                raise ValueError(f"{ENGINE_VARIABLE}={override!r}, but this PyTorch supports the "
                                 f"quantized engines {usable}; set {ENGINE_VARIABLE} to one of "
                                 f"them, or unset it.")
            raise ValueError(f"this machine ({machine}) would use the quantized engine "
                             f"{engine!r}, but this PyTorch supports {usable}; set "
                             f"{ENGINE_VARIABLE} to one of them.")
    return engine


class NetworkBlockedError(RuntimeError):
    """Raised when code inside ``offline()`` tries to open a network connection."""


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Inside this block any attempt to connect or resolve a host name raises NetworkBlockedError.

    The course uses it to show that a lesson needs nothing from the network.

    >>> with offline():
    ...     socket.create_connection(("example.org", 80))
    Traceback (most recent call last):
    ...
    tutorial_lib.course.env.NetworkBlockedError: network access attempted inside tl.env.offline(): ...
    """
    def refuse(*args, **kwargs):
        raise NetworkBlockedError(
            f"network access attempted inside tl.env.offline(): {args[:2]!r}")

    saved = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo,
             socket.create_connection)
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.getaddrinfo = refuse
    socket.create_connection = refuse
    try:
        yield
    finally:
        (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo,
         socket.create_connection) = saved
