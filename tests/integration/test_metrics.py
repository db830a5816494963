"""Metrics (SPEC §7): apply and verify write <metrics_dir>/aks-ssh-access.prom; Debian's real
prometheus-node-exporter reads it with its textfile collector and serves it over HTTP; `promtool check
metrics` (Debian's prometheus package) finds nothing to complain about."""
import json
import os
import subprocess
import time
import urllib.request

import pytest

from conftest import free_port, imds_doc, sanitizer_report

EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMTOOL = "/usr/bin/promtool"


def agent_run(binary, *args, config=None):
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    p = subprocess.run([binary] + list(args), capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert sanitizer_report(p.stderr) is None, p.stderr
    return p


@pytest.fixture
def exporter(tmp_path):
    """node-exporter on 127.0.0.1:<free port>, textfile collector only, on a directory the test names."""
    if not os.access(EXPORTER, os.X_OK):
        pytest.skip("prometheus-node-exporter missing (make test-deps)")
    procs = []

    def start(directory):
        port = free_port()
        log = open(tmp_path / f"exporter{port}.log", "w")
        p = subprocess.Popen([EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                              "--collector.textfile", f"--collector.textfile.directory={directory}"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        procs.append((p, log))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def scrape():
            end = time.monotonic() + 15
            while True:
                try:
                    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                        text = r.read().decode()
                    break
                except OSError:
                    assert time.monotonic() < end and p.poll() is None, "node-exporter does not answer"
                    time.sleep(0.1)
            assert "node_textfile_scrape_error 0" in text, text
            return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines()
                    if line.startswith("aks_ssh_access_")}

        return scrape

    yield start
    for p, log in procs:
        p.terminate()
        p.wait(10)
        log.close()


def promtool_clean(path):
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip("promtool missing (make test-deps)")
    with open(path) as f:
        p = subprocess.run([PROMTOOL, "check", "metrics"], stdin=f, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", (p.stdout, p.stderr)


def mode_lines(mode):
    return {f'aks_ssh_access_mode{{mode="{m}"}}': "1" if m == mode else "0" for m in ("Disabled", "EntraId", "LocalUser")}


def test_metrics_through_node_exporter(binary, exporter, scratch_root, keygen, tmp_path):
    r = scratch_root()
    mdir = os.path.join(r.root, "var/lib/prometheus/node-exporter")
    os.makedirs(mdir)
    prom = os.path.join(mdir, "aks-ssh-access.prom")
    scrape = exporter(mdir)
    (k1, _), (k2, _) = keygen("ed25519"), keygen("ed25519")
    doc = tmp_path / "doc.json"
    version = agent_run(binary, "--version").stdout.split()[1]

    # LocalUser, two keys: apply's metrics (verify's are not measured by apply).
    doc.write_text(json.dumps(imds_doc("LocalUser", [k1, k2])))
    t0 = int(time.time())
    assert agent_run(binary, "apply", "--root", r.root, "--imds-file", str(doc)).returncode == 0
    assert oct(os.stat(prom).st_mode & 0o777) == "0o644", "node-exporter reads it as its own user"
    promtool_clean(prom)
    m = scrape()
    ts = float(m.pop("aks_ssh_access_last_apply_timestamp_seconds"))  # node-exporter prints floats (1.79e+09)
    assert t0 - 1 <= ts <= time.time() + 1
    assert m == {f'aks_ssh_access_info{{version="{version}"}}': "1", **mode_lines("LocalUser"),
                 "aks_ssh_access_managed_keys": "2", "aks_ssh_access_fallback": "0",
                 "aks_ssh_access_last_apply_exit_code": "0", "aks_ssh_access_last_apply_success": "1",
                 'aks_ssh_access_last_apply_info{result="ok",source="file"}': "1"}

    # verify adds its outcome (an offline tree: no listener probe, so no listener metrics).
    assert agent_run(binary, "verify", "--root", r.root).returncode == 0
    promtool_clean(prom)
    m = scrape()
    m.pop("aks_ssh_access_last_apply_timestamp_seconds")
    assert {k: v for k, v in m.items() if "verify" in k or "in_sync" in k} == {
        "aks_ssh_access_in_sync": "1", 'aks_ssh_access_verify_result{result="drift"}': "0",
        'aks_ssh_access_verify_result{result="in_sync"}': "1", 'aks_ssh_access_verify_result{result="unknown"}': "0"}
    assert not any("sshd" in k for k in m)

    # Disabled, then drift by hand.
    doc.write_text(json.dumps(imds_doc("Disabled", [])))
    assert agent_run(binary, "apply", "--root", r.root, "--imds-file", str(doc)).returncode == 0
    subprocess.run(["systemctl", f"--root={r.root}", "unmask", "ssh.service"], capture_output=True, check=True)
    assert agent_run(binary, "verify", "--root", r.root).returncode == 1
    promtool_clean(prom)
    m = scrape()
    m.pop("aks_ssh_access_last_apply_timestamp_seconds")
    assert m == {f'aks_ssh_access_info{{version="{version}"}}': "1", **mode_lines("Disabled"),
                 "aks_ssh_access_managed_keys": "0", "aks_ssh_access_fallback": "0",
                 "aks_ssh_access_last_apply_exit_code": "0", "aks_ssh_access_last_apply_success": "1",
                 'aks_ssh_access_last_apply_info{result="ok",source="file"}': "1",
                 "aks_ssh_access_in_sync": "0", 'aks_ssh_access_verify_result{result="drift"}': "1",
                 'aks_ssh_access_verify_result{result="in_sync"}': "0", 'aks_ssh_access_verify_result{result="unknown"}': "0"}

    # IMDS unreachable: the fallback is in force, exit 69.
    conf = tmp_path / "deadline.conf"
    conf.write_text("deadline_s = 1\n")
    p = agent_run(binary, "apply", "--root", r.root, "--imds-url", f"http://127.0.0.1:{free_port()}/metadata/instance",
                  "--config", str(conf))
    assert p.returncode == 69, p.stderr
    promtool_clean(prom)
    m = scrape()
    assert (m["aks_ssh_access_fallback"], m["aks_ssh_access_last_apply_exit_code"], m["aks_ssh_access_last_apply_success"]) == ("1", "69", "0")
    assert m['aks_ssh_access_last_apply_info{result="imds-unavailable",source="fallback"}'] == "1"
    assert m['aks_ssh_access_mode{mode="Disabled"}'] == "1"


def test_metrics_dir_setting(binary, scratch_root, tmp_path, config_file):
    r = scratch_root()
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(imds_doc("Disabled", [])))
    # No node-exporter directory in the tree: nothing written, no complaint.
    p = agent_run(binary, "apply", "--root", r.root, "--imds-file", str(doc))
    assert p.returncode == 0 and "metrics" not in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(r.root, "var/lib/prometheus"))
    # metrics_dir = off: nothing even when the default directory exists.
    os.makedirs(os.path.join(r.root, "var/lib/prometheus/node-exporter"))
    os.makedirs(os.path.join(r.root, "etc/aks-ssh-access.conf.d"))
    with open(os.path.join(r.root, "etc/aks-ssh-access.conf.d/50-m.conf"), "w") as f:
        f.write("metrics_dir = off\n")
    assert agent_run(binary, "apply", "--root", r.root, "--imds-file", str(doc)).returncode == 0
    assert agent_run(binary, "verify", "--root", r.root).returncode == 0
    assert os.listdir(os.path.join(r.root, "var/lib/prometheus/node-exporter")) == []
    # Another directory, under the root.
    os.makedirs(os.path.join(r.root, "srv/metrics"))
    with open(os.path.join(r.root, "etc/aks-ssh-access.conf.d/50-m.conf"), "w") as f:
        f.write("metrics_dir = /srv/metrics\n")
    assert agent_run(binary, "verify", "--root", r.root).returncode == 0
    assert os.listdir(os.path.join(r.root, "srv/metrics")) == ["aks-ssh-access.prom"]
    assert "aks_ssh_access_in_sync 1\n" in open(os.path.join(r.root, "srv/metrics/aks-ssh-access.prom")).read()
    # A configured directory that does not exist: a warning, the exit code unchanged.
    with open(os.path.join(r.root, "etc/aks-ssh-access.conf.d/50-m.conf"), "w") as f:
        f.write("metrics_dir = /nonexistent\n")
    p = agent_run(binary, "verify", "--root", r.root)
    assert p.returncode == 0 and "Cannot write the metrics file /nonexistent/aks-ssh-access.prom" in p.stderr
    # A relative or empty value is refused like any invalid setting.
    with open(os.path.join(r.root, "etc/aks-ssh-access.conf.d/50-m.conf"), "w") as f:
        f.write("metrics_dir = relative/dir\ndrift = sometimes\n")
    p = agent_run(binary, "verify", "--root", r.root)
    assert "invalid value for metrics_dir" in p.stderr and "invalid value for drift" in p.stderr
