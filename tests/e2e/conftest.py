# SPDX-License-Identifier: MIT
"""Fixtures of the end-to-end suite (see harness.py): a cached Debian image, a fresh node per test."""
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

# Per run (several engineers/CI jobs may run the suite at once): build/e2e/runs/<pid>/, namespaces akse2e<pid>x<n>[nc].
RUNS_ROOT = h.BUILD / "runs"
RUNS = RUNS_ROOT / str(os.getpid())
NS_PREFIX = f"akse2e{os.getpid()}x"


def _sigterm(signum, frame):
    # Turn SIGTERM (make/CI timeouts) into KeyboardInterrupt so every fixture's teardown still runs.
    raise KeyboardInterrupt(f"signal {signum}")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_leftovers():
    """What a killed earlier run of this suite left behind: only runs whose process is gone, by path/prefix."""
    if not RUNS_ROOT.is_dir():
        return
    dead = sorted((d for d in RUNS_ROOT.iterdir() if d.name.isdigit() and not _alive(int(d.name))),
                  key=lambda d: d.stat().st_mtime)
    for i, d in enumerate(dead):
        h.sweep(d, rf"akse2e{d.name}x\d+[nc]")
        if i < len(dead) - 1:  # the newest failed run stays for a post-mortem
            shutil.rmtree(d, ignore_errors=True)


def pytest_sessionstart(session):
    signal.signal(signal.SIGTERM, _sigterm)
    if os.geteuid() != 0:
        pytest.exit("the end-to-end tests need root (namespaces, overlayfs, systemd-nspawn)", returncode=1)
    _sweep_leftovers()


def pytest_sessionfinish(session, exitstatus):
    # Keep a failed run's journals and console logs (build/e2e/runs/<pid>/<test>/) until the next run.
    if exitstatus == 0:
        shutil.rmtree(RUNS, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    h.terminal_summary(terminalreporter, "e2e")


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
    """One node (container + its namespaces) of one test."""

    def __init__(self, name, keys, lane):
        super().__init__(name, keys, RUNS, NS_PREFIX, lane)

    def image(self, *variants, config=None, authorized_keys=None, agent=True):
        """Builds this node's image on the overlay: variants, the agent (as an image builder installs it)."""
        self.node.mount()
        root = self.node.root
        for v in variants:
            v(root)
        if agent:
            h.install_agent(root)
        if config:
            h.set_config(root, **config)
        if authorized_keys is not None:
            ssh = h.prepare_home(root) / ".ssh"
            ssh.mkdir(mode=0o700, exist_ok=True)
            (ssh / "authorized_keys").write_text(authorized_keys)
            os.chmod(ssh / "authorized_keys", 0o600)
            for p in (ssh, ssh / "authorized_keys"):
                os.chown(p, h.ADMIN_UID, h.ADMIN_UID)
        return root


@pytest.fixture
def env(request, lane, rootfs, keys):
    e = Env(request.node.name, keys, lane)
    try:
        yield e
    finally:
        e.cleanup.run()
