# SPDX-License-Identifier: MIT
"""Fixtures of the image-hooks boot test: the tests/e2e harness (cached Debian rootfs, namespaces, nspawn)."""
import os
import re
import shutil
import signal
import subprocess
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
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f]
    for m in reversed(mounts):
        if m.startswith(str(RUNS) + "/"):
            subprocess.run(["umount", "-l", m], check=False)
    if Path("/run/netns").is_dir():
        for ns in os.listdir("/run/netns"):
            if re.fullmatch(rf"{NS_PREFIX}\d+[nc]", ns):
                subprocess.run(["ip", "netns", "del", ns], check=False)
    shutil.rmtree(RUNS, ignore_errors=True)


def pytest_sessionstart(session):
    signal.signal(signal.SIGTERM, _sigterm)
    if os.geteuid() != 0:
        pytest.exit("the boot test needs root (namespaces, overlayfs, systemd-nspawn)", returncode=1)
    _sweep_leftovers()


def pytest_terminal_summary(terminalreporter):
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    terminalreporter.write_line(f"image-boot: {passed} passed, {failed} failed")


@pytest.fixture(scope="session")
def rootfs():
    return h.ensure_rootfs()


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return h.Keys(tmp_path_factory.mktemp("keys"))


class Env:
    """One node: an overlay on the cached debootstrapped rootfs, its namespaces, the IMDS emulator."""

    counter = 0

    def __init__(self, name, keys):
        Env.counter += 1
        self.tag = f"{NS_PREFIX}{Env.counter}"
        self.workdir = RUNS / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        self.keys = keys
        self.cleanup = h.Cleanup()
        self.net = h.Net(self.tag, self.workdir)
        self.cleanup.push(self.net.teardown)
        self.net.setup()
        self.node = h.Node(self.tag, self.workdir, self.net)
        self.cleanup.push(self.node.teardown)

    def imds(self, mode, key_names=()):
        self.net.write_doc(h.imds_doc(mode, [self.keys.pub[k] for k in key_names]))
        self.net.start_imds()


@pytest.fixture
def env(request, rootfs, keys):
    e = Env(request.node.name, keys)
    try:
        yield e
    finally:
        e.cleanup.run()
