"""The learner's environment: package versions, the machine, and a guard that forbids the network."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from collections.abc import Iterator
from importlib import metadata

__all__ = ["versions", "machine", "int8_features", "INT8_FEATURES", "offline", "NetworkBlockedError"]

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


def machine() -> dict[str, str]:
    """Operating system, processor and core count of this machine."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
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
)
"""(cpuinfo flag, name, what it does for int8) for the instructions int8 kernels look for."""


def int8_features(flags: str | None = None) -> dict[str, bool]:
    """Which int8 instructions this CPU has, by the names of ``INT8_FEATURES``.

    Read from the ``flags`` (x86) or ``Features`` (Arm) line of ``/proc/cpuinfo`` on Linux;
    ``flags`` can be given instead. Elsewhere every entry is False: check your CPU's data sheet.
    The float kernels' own choice is another matter: ``torch.backends.cpu.get_cpu_capability()``.

    >>> int8_features("fpu avx2 avx512bw avx512_vnni")["AVX-512 VNNI"]
    True
    >>> int8_features("fpu avx2")["AMX-INT8"]
    False
    """
    if flags is None:
        flags = ""
        with contextlib.suppress(OSError):
            with open("/proc/cpuinfo") as f:
                lines = [line for line in f if line.startswith(("flags", "Features"))]
            flags = lines[0].split(":", 1)[1] if lines else ""
    present = set(flags.split())
    return {name: flag in present for flag, name, _ in INT8_FEATURES}


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
    tutorial_lib.env.NetworkBlockedError: network access attempted inside tl.env.offline(): ...
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
