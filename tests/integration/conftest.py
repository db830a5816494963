"""Shared fixtures of the integration suite: the agent binary, the IMDS emulator on loopback, realistic IMDS
documents, SSH keys, scratch root trees and config files. Stdlib + pytest only; run with /usr/bin/python3.

Fixtures (names are a contract with the other test files):
    agent_bin        path of the binary under test (env AKS_SSH_ACCESS_BIN, default <repo>/build/aks-ssh-access)
    asan_bin         path of the ASan+UBSan build (env AKS_SSH_ACCESS_ASAN_BIN) or None
    binary           parametrized: agent_bin, then asan_bin (skipped when unset)
    agent            agent(args, **kw) or agent(*args, **kw) -> Result (.rc .out .err .elapsed; unpacks as
                     (rc, out, err)) with `binary`, sanitizer-checked
    run_agent        run_agent(args, env=None, timeout=60, input=None, bin=None) -> (rc, stdout, stderr);
                     rc is the string "timeout" if the agent had to be killed
    emulator         emulator(doc=dict, script=list|None, bind="127.0.0.1") -> Emulator (.url, .set_doc,
                     .set_script, .requests(), .port, .stop()); stopped at teardown
    imds_doc         akstest.imds_doc() (tests/lib/akstest.py: the helpers shared with tests/e2e, tests/bench)
    keygen           keygen(kind, bits=None, name=None) -> (public key line, "SHA256:..." fingerprint)
    scratch_root     scratch_root(user="azureuser", units=None, enable=("ssh.service",)) -> Root (.root, .home, .ak)
    config_file      config_file(text, name=None) -> path of a config file holding text
    doc_file         doc_file(doc) -> path of a new file holding doc (a dict, or text as it is), for --imds-file
    mode_doc         mode_doc(mode, keys=()) -> doc_file(imds_doc(mode, keys))
Functions: free_port(), closed_imds_url() (an IMDS URL on a loopback port nothing listens on), sanitizer_report().
"""
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
# The helpers shared with tests/e2e and tests/bench (re-exported: the test files import them from here).
from akstest import (DEBIAN_SSH_SERVICE, DEBIAN_SSH_SOCKET, DEBIAN_UNITS, IMDS_QUERY, KEYS_BEGIN,  # noqa: E402,F401
                     KEYS_END, ENTRA_BEGIN, ENTRA_END, TAG, fingerprint, fingerprints, imds_doc, is_enabled,
                     make_root, snapshot, ssh_keygen, stop_process, write_doc)

EMULATOR = os.path.join(REPO, "tests", "imds-emulator")
ASAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


@pytest.fixture(name="imds_doc")
def imds_doc_fixture():
    return imds_doc


# --------------------------------------------------------------------------------------------------------------
# The agent


@pytest.fixture(scope="session")
def agent_bin():
    path = os.environ.get("AKS_SSH_ACCESS_BIN") or os.path.join(REPO, "build", "aks-ssh-access")
    if not os.access(path, os.X_OK):
        pytest.fail(f"agent binary {path} missing: run `make` (or set AKS_SSH_ACCESS_BIN)")
    return path


@pytest.fixture(scope="session")
def asan_bin():
    path = os.environ.get("AKS_SSH_ACCESS_ASAN_BIN")
    if not path:
        return None
    if not os.access(path, os.X_OK):
        pytest.fail(f"AKS_SSH_ACCESS_ASAN_BIN={path} is not an executable")
    return path


def sanitizer_report(stderr):
    """The first line of an ASan/UBSan/LSan report in stderr, or None."""
    for line in stderr.splitlines():
        if ("ERROR: AddressSanitizer" in line or "ERROR: LeakSanitizer" in line or "runtime error:" in line
                or "ERROR: UndefinedBehaviorSanitizer" in line):
            return line
    return None


@pytest.fixture
def run_agent(agent_bin):
    def run(args, env=None, timeout=60, input=None, bin=None):
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.pop("JOURNAL_STREAM", None)
        for k, v in ASAN_ENV.items():
            e.setdefault(k, v)
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        try:
            r = subprocess.run([bin or agent_bin] + list(args), capture_output=True, text=True, timeout=timeout,
                               env=e, input=input, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as te:
            out = te.stdout.decode(errors="replace") if isinstance(te.stdout, bytes) else (te.stdout or "")
            err = te.stderr.decode(errors="replace") if isinstance(te.stderr, bytes) else (te.stderr or "")
            return "timeout", out, err
        return r.returncode, r.stdout, r.stderr

    return run


@pytest.fixture(params=["plain", "asan"])
def binary(request, agent_bin, asan_bin):
    """The agent build a test runs: the normal one and, when AKS_SSH_ACCESS_ASAN_BIN is set, the ASan+UBSan one."""
    if request.param == "asan":
        if not asan_bin:
            pytest.skip("AKS_SSH_ACCESS_ASAN_BIN not set")
        return asan_bin
    return agent_bin


class Result:
    """What `agent` returns: .rc .out .err .elapsed; it also unpacks and indexes as the tuple (rc, out, err)."""

    def __init__(self, rc, out, err, elapsed):
        self.rc, self.out, self.err, self.elapsed = rc, out, err, elapsed

    def __iter__(self):
        return iter((self.rc, self.out, self.err))

    def __getitem__(self, i):
        return (self.rc, self.out, self.err)[i]

    def __repr__(self):
        return f"rc={self.rc} elapsed={self.elapsed:.2f}s stdout={self.out[-400:]!r} stderr={self.err[-800:]!r}"


@pytest.fixture
def agent(binary, run_agent):
    """agent(args, **kw) or agent(*args, **kw) -> Result, with each build (see `binary`); fails the test on any
    sanitizer report and on a non-zero exit that says nothing on stderr (but verify's and status's 1 and 2)."""

    def run(*args, **kw):
        argv = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
        t0 = time.monotonic()
        rc, out, err = run_agent(argv, bin=binary, **kw)
        res = Result(rc, out, err, time.monotonic() - t0)
        assert sanitizer_report(err) is None, res
        # verify and status answer on stdout: their exit 1 (drift) and 2 (nothing applied yet) are that answer.
        if rc != 0 and argv[:1] in (["verify"], ["status"]) and rc in (1, 2):
            assert out.strip() or err.strip(), f"verify/status exit {rc} must say why: {res}"
        elif rc != 0:
            assert err.strip(), f"a non-zero exit must say why on stderr: {res}"
        return res

    return run


# --------------------------------------------------------------------------------------------------------------
# IMDS emulator


def _write_atomic(path, data):
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Emulator:
    """tests/imds-emulator running on loopback; see that script for the scripted answer kinds."""

    def __init__(self, workdir, doc=None, script=None, bind="127.0.0.1"):
        os.makedirs(workdir, exist_ok=True)
        self.doc_path = os.path.join(workdir, "doc.json")
        self.script_path = os.path.join(workdir, "script.json")
        self.log_path = os.path.join(workdir, "requests.jsonl")
        self.bind = bind
        self.set_doc(doc if doc is not None else imds_doc("LocalUser", []))
        self.set_script(script)
        open(self.log_path, "w").close()
        self.stderr = open(os.path.join(workdir, "emulator.stderr"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, EMULATOR, "--bind", bind, "--port", "0", "--doc", self.doc_path,
             "--script", self.script_path, "--log", self.log_path],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL, text=True)
        self.port = self._read_port(10)
        self.host = f"[{bind}]" if ":" in bind else bind
        self.base = f"http://{self.host}:{self.port}"
        self.url = self.base + IMDS_QUERY
        self._wait_listening(10)

    def _read_port(self, timeout):
        end = time.monotonic() + timeout
        line = ""
        while time.monotonic() < end and not line.endswith("\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                c = self.proc.stdout.readline()
                if not c:
                    break
                line += c
        if not line.strip().isdigit():
            self.stop()
            self.stderr.seek(0)
            raise RuntimeError(f"imds-emulator did not start: {line!r} {self.stderr.read()[-2000:]}")
        return int(line)

    def _wait_listening(self, timeout):
        # A bare TCP connect: no HTTP request, so it neither shows up in the log nor consumes a scripted answer.
        end = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.bind, self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise RuntimeError("imds-emulator does not accept connections")
                time.sleep(0.05)

    def set_doc(self, doc):
        """doc: a dict/list (serialized with json.dumps) or the exact bytes/str to serve."""
        _write_atomic(self.doc_path, doc if isinstance(doc, (str, bytes)) else json.dumps(doc))

    def set_script(self, script):
        """A new list of scripted answers; consumption restarts at its first entry. None or [] for none."""
        _write_atomic(self.script_path, json.dumps(list(script or [])))
        # The emulator notices a change by (inode, mtime, size); the atomic rename gives a new inode.

    def requests(self):
        out = []
        with open(self.log_path) as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
        return out

    def get(self, path=IMDS_QUERY, headers=None):
        """A request straight to the emulator (no proxy); returns (status, body bytes). It is logged."""
        c = http.client.HTTPConnection(self.bind, self.port, timeout=10)
        try:
            c.request("GET", path, headers=headers if headers is not None else {"Metadata": "true"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        stop_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
        if not self.stderr.closed:
            self.stderr.close()


@pytest.fixture
def emulator(tmp_path):
    started = []

    def start(doc=None, script=None, bind="127.0.0.1"):
        e = Emulator(str(tmp_path / f"emulator{len(started)}"), doc=doc, script=script, bind=bind)
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


def free_port(bind="127.0.0.1"):
    """A loopback TCP port nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((bind, 0))
        return s.getsockname()[1]


def closed_imds_url():
    """The IMDS query on a loopback port nothing listens on (connection refused until the deadline)."""
    return f"http://127.0.0.1:{free_port()}{IMDS_QUERY}"


# --------------------------------------------------------------------------------------------------------------
# Keys, roots, config


@pytest.fixture
def keygen(tmp_path):
    d = tmp_path / "keys"
    d.mkdir(exist_ok=True)
    counter = [0]

    def gen(kind, bits=None, name=None):
        counter[0] += 1
        name = name or f"k{counter[0]}_{kind}{bits or ''}"
        path = str(d / name)
        pub = ssh_keygen(path, kind, bits, comment=f"{name}@example")
        return pub, fingerprint(path + ".pub")

    return gen


class Root:
    def __init__(self, root, user):
        self.root = root
        self.user = user
        self.home = os.path.join(root, "home", user)
        self.ssh_dir = os.path.join(self.home, ".ssh")
        self.ak = os.path.join(self.ssh_dir, "authorized_keys")

    def is_enabled(self, unit):
        """What `systemctl --root=ROOT is-enabled UNIT` prints."""
        return is_enabled(self.root, unit)

    def __str__(self):
        return self.root


@pytest.fixture
def scratch_root(tmp_path):
    counter = [0]

    def make(user="azureuser", units=None, enable=("ssh.service",)):
        counter[0] += 1
        root = make_root(str(tmp_path / f"root{counter[0]}"), user, units=units, enable=enable)
        return Root(root, user)

    return make


# An IMDS document (a dict, or text as it is) written to a file of its own, for --imds-file.
@pytest.fixture
def doc_file(tmp_path):
    counter = [0]

    def write(doc):
        counter[0] += 1
        return write_doc(tmp_path / f"doc{counter[0]}.json", doc)

    return write


@pytest.fixture
def mode_doc(doc_file):
    def write(mode, keys=()):
        return doc_file(imds_doc(mode, list(keys)))

    return write


@pytest.fixture
def config_file(tmp_path):
    counter = [0]

    def write(text, name=None):
        counter[0] += 1
        p = tmp_path / (name or f"config{counter[0]}.conf")
        p.write_text(text)
        return str(p)

    return write
