"""What the fleet reads from a node (issue 13, issue 9's listener part): verify/status see real sshd listeners,
verify's one line, exit codes.

The listener tests run everything in a network namespace of their own (`ip netns`): a real sshd on TCP, a
real sshd behind a UNIX socket (systemd-socket-activate --inetd, as the generator's sshd-unix-local@.service
runs `sshd -i`), and a non-SSH server (python's http.server), with only these sockets in that namespace's
/proc/net. The agent runs in that namespace against a scratch root whose proc/ is a bind mount of /proc, as
a chroot with /proc mounted would be: it then sees exactly the namespace's listeners.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

import akstest
from conftest import imds_doc, sanitizer_report

SSHD = "/usr/sbin/sshd"


def need_root_tools():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespace, bind mount)")
    for tool in ("ip", SSHD, "systemd-socket-activate"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} missing")


class Netns:
    def __init__(self, name):
        self.name = name
        self.procs = []

    def cmd(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def popen(self, argv, **kw):
        p = subprocess.Popen(self.cmd(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p.stderr:
            p.stderr.close()


@pytest.fixture
def netns():
    need_root_tools()
    name = f"aksfleet{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    ns = Netns(name)
    try:
        subprocess.run(ns.cmd(["ip", "link", "set", "lo", "up"]), check=True, capture_output=True)
        yield ns
    finally:
        for p in ns.procs:
            ns.stop(p)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


@pytest.fixture
def proc_root(scratch_root):
    """A scratch root with /proc bind-mounted at its proc/ (unmounted at teardown)."""
    need_root_tools()
    r = scratch_root()
    proc = os.path.join(r.root, "proc")
    os.makedirs(proc)
    subprocess.run(["mount", "--bind", "/proc", proc], check=True, capture_output=True)
    try:
        yield r
    finally:
        subprocess.run(["umount", "-l", proc], capture_output=True)


@pytest.fixture
def sshd_config(tmp_path):
    d = tmp_path / "sshd"
    d.mkdir()
    key = d / "host_ed25519"
    akstest.ssh_keygen(key)
    cfg = d / "sshd_config"
    cfg.write_text(f"HostKey {key}\nPidFile none\nUsePAM no\nStrictModes no\nLogLevel ERROR\n")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    return str(cfg)


def in_ns(ns, binary, *args, timeout=60):
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86")
    p = subprocess.run(ns.cmd([binary] + list(args)), capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    assert sanitizer_report(p.stderr) is None, p.stderr
    return p


def tcp_listening(pid, port):
    """Whether process pid's network namespace has a TCP listener on port (from its /proc/PID/net/tcp)."""
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return False
    return any(ln.split()[1].endswith(f":{port:04X}") and ln.split()[3] == "0A" for ln in lines)


def wait_for(cond, what, timeout=15):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def verify_until(ns, binary, root, rc_wanted, timeout=15):
    """verify, again until it exits rc_wanted (a freshly started sshd -i may need a moment on a busy machine)."""
    end = time.monotonic() + timeout
    while True:
        p = in_ns(ns, binary, "verify", "--root", root)
        if p.returncode == rc_wanted or time.monotonic() > end:
            return p
        time.sleep(0.2)


def test_disabled_verify_sees_sshd_on_tcp_and_unix_and_not_http(netns, proc_root, sshd_config, binary, doc_file, tmp_path):
    r = proc_root
    os.makedirs(os.path.join(r.root, "var/lib/prometheus/node-exporter"))
    p = in_ns(netns, binary, "apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [])))
    assert p.returncode == 0, p.stderr
    p = in_ns(netns, binary, "verify", "--root", r.root)
    assert (p.returncode, p.stdout) == (0, p.stdout) and p.stdout.startswith("in sync: Disabled"), p

    # A non-SSH listener on loopback is probed and not reported.
    http = netns.popen(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "8080"], cwd=str(tmp_path))
    wait_for(lambda: tcp_listening(http.pid, 8080), "http.server")
    p = in_ns(netns, binary, "verify", "--root", r.root)
    assert p.returncode == 0 and p.stdout.startswith("in sync: Disabled"), p
    st = json.loads(in_ns(netns, binary, "status", "--json", "--root", r.root).stdout)
    assert st["listeners"]["checked"] is True and st["listeners"]["listening"] == 1 and st["listeners"]["sshd"] == []
    assert st["listeners"]["sockets"] == [{"socket": "127.0.0.1:8080", "sshd": False, "checked": True, "banner": ""}], "silent: no banner"

    # A real sshd on TCP: drift, naming the socket.
    sshd = netns.popen([SSHD, "-D", "-e", "-f", sshd_config, "-o", "ListenAddress=127.0.0.1:2222"])
    wait_for(lambda: tcp_listening(sshd.pid, 2222), "sshd on 2222")
    p = verify_until(netns, binary, r.root, 1)
    assert (p.returncode, p.stdout) == (1, "drift: sshd answers on 127.0.0.1:2222\n"), p
    netns.stop(sshd)

    # A real sshd behind a UNIX socket under /run (inetd style, like sshd-unix-local@.service).
    rundir = f"/run/aks-ssh-access-test-{os.getpid()}"
    os.makedirs(rundir, exist_ok=True)
    sock = os.path.join(rundir, "socket")
    try:
        act = netns.popen(["systemd-socket-activate", "-l", sock, "--inetd", "-a", SSHD, "-i", "-e", "-f", sshd_config])
        wait_for(lambda: os.path.exists(sock), "the UNIX socket")
        p = verify_until(netns, binary, r.root, 1)
        assert (p.returncode, p.stdout) == (1, f"drift: sshd answers on {sock}\n"), p
        st = json.loads(in_ns(netns, binary, "status", "--json", "--root", r.root).stdout)
        assert [x["socket"] for x in st["listeners"]["sshd"]] == [sock]
        assert st["listeners"]["sshd"][0]["banner"].startswith("SSH-2.0-OpenSSH_")
        assert st["in_sync"] is False
        text = in_ns(netns, binary, "status", "--root", r.root).stdout
        assert f"In sync:          no, drift: sshd answers on {sock}\n" in text
        assert text.count("In sync:") == 1 and "in sync: in sync" not in text.lower()
        # The fleet's alert: the metrics say the same.
        prom = open(os.path.join(r.root, "var/lib/prometheus/node-exporter/aks-ssh-access.prom")).read()
        assert "\naks_ssh_access_sshd_answering_sockets 1\n" in prom
        assert "\naks_ssh_access_sshd_listening_in_disabled 1\n" in prom and "\naks_ssh_access_in_sync 0\n" in prom
        netns.stop(act)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)

    # Both gone: in sync again (the http server still listens).
    p = in_ns(netns, binary, "verify", "--root", r.root)
    assert p.returncode == 0 and p.stdout.startswith("in sync: Disabled"), p
    prom = open(os.path.join(r.root, "var/lib/prometheus/node-exporter/aks-ssh-access.prom")).read()
    assert "\naks_ssh_access_sshd_answering_sockets 0\n" in prom and "\naks_ssh_access_sshd_listening_in_disabled 0\n" in prom


def test_localuser_does_not_treat_sshd_as_drift(netns, proc_root, sshd_config, binary, doc_file, keygen):
    r = proc_root
    k1, _ = keygen("ed25519")
    assert in_ns(netns, binary, "apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1]))).returncode == 0
    sshd = netns.popen([SSHD, "-D", "-e", "-f", sshd_config, "-o", "ListenAddress=[::1]:2222"])
    wait_for(lambda: in_ns(netns, binary, "status", "--json", "--root", r.root).stdout.count("[::1]:2222") > 0,
             "status listing sshd on [::1]:2222")
    p = in_ns(netns, binary, "verify", "--root", r.root)
    assert p.returncode == 0 and p.stdout.startswith("in sync: LocalUser, 1 managed key, applied "), p
    text = in_ns(netns, binary, "status", "--root", r.root).stdout
    assert "Answering as sshd:\n  [::1]:2222 " in text and "In sync:          yes (LocalUser, 1 managed key" in text
    netns.stop(sshd)


def test_offline_tree_without_proc_is_not_probed(agent, scratch_root, doc_file):
    r = scratch_root()
    assert agent(["apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", []))]).rc == 0
    res = agent(["status", "--root", r.root])
    assert res.rc == 0 and f"Answering as sshd: not checkable (no {r.root}/proc: an offline tree)\n" in res.out, res
    st = json.loads(agent(["status", "--json", "--root", r.root]).out)
    assert st["listeners"] == {"checked": False, "vsock_checked": False, "listening": 0, "sockets": [], "sshd": []}


def test_verify_line_fits_80_and_says_what(run_agent, binary, scratch_root, doc_file, config_file):
    """verify's stdout is one line of at most 80 characters (NPD cuts at max_output_length, 80 by default);
    verify is a reporter, its stdout line is its message (no stderr line for exit 1/2)."""
    long_user = "u" * 32
    r = scratch_root(user=long_user)

    def verify():
        rc, out, err = run_agent(["verify", "--root", r.root], bin=binary)
        assert sanitizer_report(err) is None, err
        assert out.endswith("\n") and out.count("\n") == 1 and len(out) - 1 <= 80, out
        return rc, out

    assert verify() == (2, "unknown: nothing applied yet (no /var/lib/aks-ssh-access/state.json)\n")
    rc, _, err = run_agent(["apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [], user=long_user))], bin=binary)
    assert rc == 0, err
    rc, out = verify()
    assert rc == 0 and out.startswith("in sync: Disabled, 0 managed keys, applied ") and out.endswith(" from file\n"), out
    subprocess.run(["systemctl", f"--root={r.root}", "unmask", "ssh.service"], capture_output=True, check=True)
    assert verify() == (1, "drift: ssh.service is disabled, expected masked for mode Disabled\n")
    # A managed unit with a long name: the line is cut at 80, what drifted still leads it.
    long_unit = "sshd-" + "x" * 70 + ".service"
    os.makedirs(os.path.join(r.root, "etc/aks-ssh-access.conf.d"))
    with open(os.path.join(r.root, "etc/aks-ssh-access.conf.d/50-units.conf"), "w") as f:
        f.write(f"units = ssh.service ssh.socket {long_unit}\n")
    with open(os.path.join(r.root, "usr/lib/systemd/system", long_unit), "w") as f:
        f.write("[Service]\nExecStart=/bin/true\n")
    rc, _, err = run_agent(["apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [], user=long_user))], bin=binary)
    assert rc == 0, err
    os.unlink(os.path.join(r.root, "etc/systemd/system", long_unit))
    rc, out = verify()
    assert rc == 1 and out == ("drift: " + long_unit + " is static, expected masked for mode Disabled")[:80] + "\n", out


def test_repair_of_units_and_keys_offline(run_agent, binary, scratch_root, keygen, doc_file, config_file):
    """verify --repair and drift = repair: the last applied state comes back without IMDS; report is the default."""
    r = scratch_root()
    (k1, f1), (k2, f2) = keygen("ed25519"), keygen("ecdsa", 256)

    def run(*args):
        rc, out, err = run_agent(list(args), bin=binary)
        assert sanitizer_report(err) is None, err
        return rc, out, err

    # LocalUser: a hand-edited block is rewritten from the state file's lines.
    rc, _, err = run("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1, k2])))
    assert rc == 0, err
    good = open(r.ak).read()
    state = json.load(open(os.path.join(r.root, "var/lib/aks-ssh-access/state.json")))
    assert sorted(k["line"] for k in state["keys"]) == sorted([k1, k2]), "the state file keeps the managed lines"
    with open(r.ak, "w") as f:
        f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1bZHSMfn1fDdkJQ9x7kEVZ1jDZ8KwYcN1kU7zTKmQe intruder\n"
                + good.replace(k2 + "\n", ""))
    before = open(r.ak).read()
    rc, out, _ = run("verify", "--root", r.root)
    assert (rc, out) == (1, "drift: managed keys of azureuser differ from the last apply\n")
    assert open(r.ak).read() == before, "report (the default) changes nothing"
    rc, out, err = run("verify", "--repair", "--root", r.root)
    assert (rc, out) == (0, "repaired: managed keys of azureuser differ from the last apply\n"), err
    text = open(r.ak).read()
    assert text == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1bZHSMfn1fDdkJQ9x7kEVZ1jDZ8KwYcN1kU7zTKmQe intruder\n" + good, \
        "the block is rewritten in place; the line outside it is the user's and stays"
    assert run("verify", "--root", r.root)[0] == 0
    st = json.load(open(os.path.join(r.root, "var/lib/aks-ssh-access/state.json")))
    assert st["last_apply"]["source"] == "file" and st["mode_applied_time"] == state["mode_applied_time"]

    # Disabled with drift = repair in the settings (what the timer's run obeys): units masked again.
    rc, _, err = run("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [])))
    assert rc == 0, err
    subprocess.run(["systemctl", f"--root={r.root}", "unmask", "ssh.service"], capture_output=True, check=True)
    assert r.is_enabled("ssh.service") == "disabled"
    os.makedirs(os.path.join(r.root, "etc/aks-ssh-access.conf.d"))
    with open(os.path.join(r.root, "etc/aks-ssh-access.conf.d/50-drift.conf"), "w") as f:
        f.write("drift = repair\n")
    rc, out, err = run("verify", "--root", r.root)
    assert (rc, out) == (0, "repaired: ssh.service is disabled, expected masked for mode Disabled\n"), err
    assert r.is_enabled("ssh.service") == "masked" and r.is_enabled("ssh.socket") == "masked"
    rc, out, _ = run("verify", "--root", r.root)
    assert rc == 0 and out.startswith("in sync: Disabled, 0 managed keys, applied "), out

    # A state file of an older version (fingerprints only): LocalUser keys cannot be rewritten → still drift.
    rc, _, err = run("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))
    assert rc == 0, err
    sp = os.path.join(r.root, "var/lib/aks-ssh-access/state.json")
    st = json.load(open(sp))
    for k in st["keys"]:
        del k["line"]
    with open(sp, "w") as f:
        json.dump(st, f)
    with open(r.ak, "w") as f:
        f.write("")
    rc, out, err = run("verify", "--root", r.root)
    assert (rc, out) == (1, "drift: managed keys of azureuser differ from the last apply (repair failed)\n"), err
    assert "cannot repair: the state file lacks what to re-assert" in err
    assert open(r.ak).read() == ""


def test_lock_without_the_tmpfiles_line(run_agent, binary, scratch_root, doc_file):
    """The unit no longer creates /run/aks-ssh-access.lock (tmpfiles.d does, at boot). Where it is missing and
    /run is read-only (the sandbox), apply still runs, locking in the state directory: refusing would leave
    sshd as the image had it in a Disabled boot."""
    if os.geteuid() != 0:
        pytest.skip("needs root (read-only tmpfs)")
    r = scratch_root()
    run_dir = os.path.join(r.root, "run")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", run_dir], check=True, capture_output=True)
    try:
        rc, _, err = run_agent(["apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", []))], bin=binary)
        assert rc == 0, err
        assert r.is_enabled("ssh.service") == "masked"
        assert os.path.isfile(os.path.join(r.root, "var/lib/aks-ssh-access/run.lock"))
        assert not os.path.exists(os.path.join(run_dir, "aks-ssh-access.lock"))
        # The fallback lock excludes a second run like the real one.
        import fcntl
        with open(os.path.join(r.root, "var/lib/aks-ssh-access/run.lock")) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            rc, _, err = run_agent(["apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", []))], bin=binary)
            assert rc == 75 and "another run holds" in err, err
    finally:
        subprocess.run(["umount", run_dir], capture_output=True)
    rc, _, err = run_agent(["apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", []))], bin=binary)
    assert rc == 0 and os.path.isfile(os.path.join(run_dir, "aks-ssh-access.lock")), err


def test_repair_of_entraid(run_agent, binary, scratch_root, keygen, doc_file):
    """EntraId: the sshd setting and the enabled sshd come back (wherever the agent keeps the setting)."""
    r = scratch_root()
    os.makedirs(os.path.join(r.root, "etc/ssh"), exist_ok=True)
    with open(os.path.join(r.root, "etc/ssh/sshd_config"), "w") as f:
        f.write("Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n")
    k1, _ = keygen("ed25519")

    def run(*args):
        rc, out, err = run_agent(list(args), bin=binary)
        assert sanitizer_report(err) is None, err
        return rc, out, err

    rc, _, err = run("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("EntraId", [k1])))
    assert rc == 0, err

    def setting_files():
        found = []
        for d, _, files in os.walk(os.path.join(r.root, "etc/ssh")):
            for n in files:
                p = os.path.join(d, n)
                if "PubkeyAuthentication no" in open(p).read():
                    found.append(p)
        return found

    files = setting_files()
    assert len(files) == 1, files
    good = open(files[0]).read()
    # Someone removes the setting and disables sshd by hand.
    with open(files[0], "w") as f:
        f.write(good.replace("PubkeyAuthentication no\n", ""))
    subprocess.run(["systemctl", f"--root={r.root}", "disable", "ssh.service"], capture_output=True, check=True)
    rc, out, _ = run("verify", "--root", r.root)
    assert rc == 1 and out.startswith("drift: "), out
    rc, out, err = run("verify", "--repair", "--root", r.root)
    assert rc == 0 and out.startswith("repaired: "), (out, err)
    assert r.is_enabled("ssh.service") == "enabled"
    assert setting_files() == files and open(files[0]).read() == good
    rc, out, _ = run("verify", "--root", r.root)
    assert rc == 0 and out.startswith("in sync: EntraId, 0 managed keys, applied "), out
