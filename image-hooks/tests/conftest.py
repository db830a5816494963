# SPDX-License-Identifier: MIT
"""Fixtures of the image-hooks boot test: the tests/e2e harness (cached Debian rootfs, namespaces, nspawn)."""
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness as h  # noqa: E402

RUNS = h.BUILD / "image-hooks-runs"
NS_PREFIX = "akshk"  # distinct from the e2e suite's, so both can run at once


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _sweep_leftovers():
    """Mounts and namespaces a killed earlier run of this test left behind (ours only, by path/prefix)."""
    h.sweep(RUNS, rf"{NS_PREFIX}\d+[nc]")
    shutil.rmtree(RUNS, ignore_errors=True)


def pytest_sessionstart(session):
    signal.signal(signal.SIGTERM, _sigterm)
    if os.geteuid() != 0:
        pytest.exit("the boot test needs root (namespaces, overlayfs, systemd-nspawn)", returncode=1)
    _sweep_leftovers()


def pytest_terminal_summary(terminalreporter):
    h.terminal_summary(terminalreporter, "image-boot")


@pytest.fixture(scope="session", params=h.selected_lanes(), ids=lambda lane: lane.name)
def lane(request):
    """Every test runs on every lane (Debian 12 and 13; AKS_E2E_LANES selects)."""
    return request.param


@pytest.fixture(scope="session")
def rootfs(lane):
    h.ensure_rootfs_all(h.selected_lanes())  # every lane's base image built at once, the first time only
    return lane.rootfs


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return h.Keys(tmp_path_factory.mktemp("keys"))


class Env(h.NodeEnv):
    """One node: an overlay on the cached debootstrapped rootfs, its namespaces, the IMDS emulator."""

    def __init__(self, name, keys, lane):
        super().__init__(name, keys, RUNS, NS_PREFIX, lane)


@pytest.fixture
def env(request, lane, rootfs, keys):
    e = Env(request.node.name, keys, lane)
    try:
        yield e
    finally:
        e.cleanup.run()
