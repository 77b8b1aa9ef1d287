"""The learner's environment: package versions, the machine, and a guard that forbids the network."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from collections.abc import Iterator
from importlib import metadata

__all__ = ["versions", "machine", "offline", "NetworkBlockedError"]

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
