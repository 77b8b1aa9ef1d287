"""The environment report and the offline guard."""

import socket
import urllib.request

import pytest

from tutorial_lib import env


def test_versions_match_the_lock():
    pins = {}
    for line in open("requirements/lock.txt"):
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    found = env.versions()
    for name, version in found.items():
        if name != "python" and version != "not installed":
            assert pins[name.lower().replace("_", "-")] == version.split("+")[0], name


def test_offline_blocks_and_restores():
    with env.offline(), pytest.raises(env.NetworkBlockedError):
        urllib.request.urlopen("http://127.0.0.1:9", timeout=1)
    assert socket.getaddrinfo("localhost", 80)  # restored afterwards


def test_machine_report():
    assert set(env.machine()) == {"system", "cpu", "cores"}
