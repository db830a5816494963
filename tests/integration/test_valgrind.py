"""The agent under valgrind memcheck (the normal -O2 build, as shipped): apply, status, verify and show-imds on the
success paths and on the error paths (fallback, rejected entries, unsafe home, unreachable IMDS, usage errors).
Each run asserts valgrind's own verdict (no memory error, no definite or indirect leak: exit 99 otherwise, and
"ERROR SUMMARY: 0 errors") and the agent's normal exit code for that case.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import closed_imds_url, imds_doc

VALGRIND = shutil.which("valgrind")
VG_ERROR = 99
VG_ARGS = ["--leak-check=full", "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
           f"--error-exitcode={VG_ERROR}", "--num-callers=30"]
# (add --track-origins=yes when chasing an uninitialised-value report: it doubles the run time)

pytestmark = pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed (TEST_DEBS)")


@pytest.fixture
def vg(agent_bin, tmp_path):
    counter = [0]

    def run(args, expect, input=None, timeout=120):
        counter[0] += 1
        log = tmp_path / f"vg-{counter[0]}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        r = subprocess.run([VALGRIND, f"--log-file={log}"] + VG_ARGS + [agent_bin] + list(args), capture_output=True,
                           text=True, timeout=timeout, env=env, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        assert log.exists(), (args, r.returncode, r.stderr[-2000:])
        report = log.read_text()
        assert r.returncode != VG_ERROR, f"valgrind found errors or leaks in {args}:\n{report[-6000:]}"
        assert "ERROR SUMMARY: 0 errors" in report, report[-6000:]
        assert "definitely lost: 0" in report or "All heap blocks were freed" in report or \
            "definitely lost" not in report, report[-3000:]
        assert r.returncode == expect, (args, r.returncode, r.stdout[-1000:], r.stderr[-2000:])
        return r

    return run


@pytest.fixture
def node(scratch_root):
    return scratch_root(units=None, enable=("ssh.service",))


@pytest.fixture
def docs(tmp_path, keygen):
    k = [keygen("ed25519")[0], keygen("rsa", 3072)[0], keygen("ecdsa", 521)[0]]
    out = {}
    for name, d in {
        "local": imds_doc("LocalUser", k),
        "disabled": imds_doc("Disabled", k),
        "entra": imds_doc("EntraId", []),
        "rejected": imds_doc("LocalUser", [k[0], "ssh-ed25519 AAAA broken", "command=\"x\" " + k[1]]),
    }.items():
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(d))
        out[name] = str(p)
    p = tmp_path / "invalid.json"
    p.write_text('{"compute": {"osProfile": {"adminUsername": 1}}}')
    out["invalid"] = str(p)
    return out


def test_apply_paths(vg, node, docs):
    root = ["--root", node.root]
    vg(["apply", *root, "--imds-file", docs["local"]], 0)
    assert os.path.exists(node.ak)
    vg(["apply", *root, "--imds-file", docs["local"]], 0)              # already in sync
    vg(["apply", "--dry-run", "--json", *root, "--imds-file", docs["disabled"]], 0)
    vg(["apply", *root, "--imds-file", docs["rejected"]], 65)          # rejected entries
    vg(["apply", *root, "--imds-file", "-"], 0, input=open(docs["disabled"]).read())
    assert node.is_enabled("ssh.service") == "masked"
    vg(["apply", *root, "--imds-file", docs["invalid"]], 65)           # fallback: last applied mode
    vg(["apply", *root, "--imds-file", docs["local"], "--json"], 0)
    assert node.is_enabled("ssh.service") == "enabled"
    vg(["apply", *root, "--imds-file", "/nonexistent/doc.json"], 66)


def test_status_verify_show_imds(vg, node, docs):
    root = ["--root", node.root]
    vg(["verify", *root], 2)                                           # nothing applied yet
    vg(["status", *root], 0)
    vg(["apply", *root, "--imds-file", docs["local"]], 0)
    vg(["status", *root], 0)
    r = vg(["status", "--json", *root], 0)
    assert len(json.loads(r.stdout)["keys"]) == 3
    r = vg(["verify", *root], 0)
    assert r.stdout.startswith("in sync")
    subprocess.run(["systemctl", f"--root={node.root}", "mask", "ssh.service"], check=True, capture_output=True)
    vg(["verify", "--json", *root], 1)                                 # drift
    vg(["show-imds", *root, "--imds-file", docs["local"]], 0)
    vg(["show-imds", "--json", *root, "--imds-file", docs["rejected"]], 65)
    vg(["show-imds", *root, "--imds-file", docs["invalid"]], 65)


def test_imds_over_http(vg, node, emulator, docs, config_file):
    emu = emulator(doc=json.load(open(docs["local"])))
    root = ["--root", node.root]
    vg(["apply", *root, "--imds-url", emu.url], 0)
    vg(["show-imds", "--json", *root, "--imds-url", emu.url], 0)
    emu.set_script([{"status": 500}, {"truncate": 30}, {"status": 302, "redirect": "http://127.0.0.2/"}])
    vg(["apply", *root, "--imds-url", emu.url], 69)                    # retried, then a redirect: refused
    conf = config_file("deadline_s = 1\n")
    url = closed_imds_url()
    vg(["apply", *root, "--imds-url", url, "--config", conf], 69)      # unreachable until the deadline
    emu.set_script([{"big": 5 * 1024 * 1024}])
    vg(["apply", *root, "--imds-url", emu.url], 65)                    # over the cap


def test_unsafe_home_and_missing_user(vg, node, docs, tmp_path):
    root = ["--root", node.root]
    os.symlink("/etc", node.ssh_dir)
    vg(["apply", *root, "--imds-file", docs["local"]], 77)
    vg(["status", *root], 0)
    p = tmp_path / "nouser.json"
    p.write_text(json.dumps(imds_doc("LocalUser", [], user="nobody-here")))
    vg(["apply", *root, "--imds-file", str(p)], 67)


def test_usage_errors(vg):
    vg(["--help"], 0)
    vg(["--version"], 0)
    vg([], 64)
    vg(["apply", "--bogus"], 64)
    vg(["status", "--imds-file", "x"], 64)
    vg(["apply", "--root", "/nonexistent-root-dir"], 64)
