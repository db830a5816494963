# SPDX-License-Identifier: MIT
"""Boot test of the image hooks (issue 4): bake the agent into a fresh debootstrapped Debian rootfs exactly as
an image build would (image-hooks/provision), leave behind what a build VM that ran the agent leaves, run
image-hooks/deprovision, then boot the result with systemd-nspawn and the IMDS emulator (tests/e2e harness)
and check that the first boot applies the mode from IMDS.

Run by image-hooks/tests/run-tests (IH_DEB = the .deb `make deb` built)."""
import json
import os
import subprocess
from pathlib import Path

import harness as h  # first: it puts tests/lib on sys.path
import test_e2e as e2e  # the e2e suite's checks: logins from outside, unit states, journal

import akstest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "image-hooks" / "provision"
DEPROVISION = REPO / "image-hooks" / "deprovision"
OWN_LINE = e2e.OWN_LINE
BEGIN = akstest.KEYS_BEGIN_PREFIX


def run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


is_enabled = akstest.is_enabled


def build_vm_leftovers(env, root, key="k3"):
    """What a build VM that booted with the agent leaves in the image: the admin user (the build VM's cloud-init
    made it), the admin's own key line, the managed block with the build VM's key, the state file, the lock, the
    EntraId drop-in, masked sshd units."""
    if subprocess.run(["chroot", root, "getent", "passwd", h.ADMIN], stdout=subprocess.DEVNULL).returncode != 0:
        run(["chroot", root, "useradd", "-m", "-u", h.ADMIN_UID, "-U", "-s", "/bin/bash", h.ADMIN])
    ssh = root / "home" / h.ADMIN / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(OWN_LINE)
    os.chmod(ssh / "authorized_keys", 0o600)
    for p in (ssh, ssh / "authorized_keys"):
        os.chown(p, h.ADMIN_UID, h.ADMIN_UID)
    doc = env.workdir / "build-vm-imds.json"
    doc.write_text(json.dumps(h.imds_doc("LocalUser", [env.keys.pub[key]])))
    run([h.AGENT_BIN, "apply", "--root", root, "--imds-file", doc])
    assert (ssh / "authorized_keys").read_text().startswith(OWN_LINE + BEGIN)
    assert env.keys.pub[key].split()[1] in (ssh / "authorized_keys").read_text()
    assert (root / "var/lib/aks-ssh-access/state.json").exists()
    (root / "run").mkdir(exist_ok=True)
    (root / "run/aks-ssh-access.lock").write_text("")
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/50-aks-ssh-access.conf").write_text("PubkeyAuthentication no\n")
    run(["systemctl", f"--root={root}", "mask", "ssh.service", "ssh.socket"])


def deprovision_and_check(root, in_chroot=False):
    if in_chroot:
        # The installed hook, run as on the live build VM (--root defaults to /).
        run(["chroot", root, "/usr/lib/aks-ssh-access/deprovision"])
    else:
        run([DEPROVISION, "--root", root])
    ak = root / "home" / h.ADMIN / ".ssh" / "authorized_keys"
    assert ak.read_bytes() == OWN_LINE.encode(), "deprovision did not give back the user's own bytes"
    assert not (root / "var/lib/aks-ssh-access/state.json").exists()
    assert not (root / "run/aks-ssh-access.lock").exists()
    assert not (root / "etc/ssh/sshd_config.d/50-aks-ssh-access.conf").exists()
    # Idempotent: a second run changes nothing and succeeds.
    before = snapshot(root)
    run([DEPROVISION, "--root", root, "--quiet"])
    assert snapshot(root) == before, "deprovision is not idempotent"
    # The image build's last step, `waagent -deprovision+user`: the build VM's admin user goes (its home is kept
    # here so that the first boot can show the user's own bytes survived); the node's cloud-init makes the user.
    run(["chroot", root, "userdel", h.ADMIN])


def snapshot(root):
    # Only the parts the hooks touch (the whole rootfs would be slow to hash).
    subs = ("etc/systemd/system", "etc/ssh", "etc/cloud", "var/lib/aks-ssh-access", f"home/{h.ADMIN}", "run")
    return {sub: akstest.snapshot(root / sub) for sub in subs if (root / sub).exists()}


def test_deb_provision_deprovision_first_boot_local_user(env):
    """The Ubuntu/Debian way: the .deb baked in with `provision --package`, first boot in LocalUser."""
    deb = os.environ.get("IH_DEB")
    assert deb and Path(deb).exists(), "IH_DEB (the .deb built by `make deb`) is not set / missing"
    env.node.mount()
    root = env.node.root
    run([PROVISION, "--root", root, "--package", deb, "--default-ssh", "service"])
    first = snapshot(root)
    run([PROVISION, "--root", root, "--package", deb, "--default-ssh", "service", "--quiet"])
    assert snapshot(root) == first, "provision twice (package) changed the tree"
    assert is_enabled(root, "aks-ssh-access.service") == "enabled"
    assert is_enabled(root, "aks-ssh-access-verify.timer") == "enabled"
    dpkg = run(["dpkg-query", f"--root={root}", "-W", "-f=${Status}", "aks-ssh-access"]).stdout
    assert dpkg == "install ok installed", dpkg

    # Also as on the live build VM: the hooks the package installed, run inside the image.
    run(["chroot", root, "/usr/lib/aks-ssh-access/provision", "--installed", "--default-ssh", "service"])
    assert snapshot(root) == first, "provision (installed copy, in the image) changed the tree"

    build_vm_leftovers(env, root)
    deprovision_and_check(root, in_chroot=True)
    assert is_enabled(root, "ssh.service") == "enabled"
    assert is_enabled(root, "ssh.socket") == "disabled"

    env.imds("LocalUser", ["k1", "k2"])
    e2e.boot(env)
    e2e.check_local_user(env, keys=("k1", "k2"), refused=("k3",), own_line=OWN_LINE)
    st = e2e.status_json(env.node)
    assert st["last_apply"]["source"] == "imds", st
    assert env.net.imds_requests(), "the first boot did not ask IMDS"
    # The catalog the package installed is in the node's catalog database.
    cat = env.node.sh("journalctl --list-catalog", check=False).stdout
    assert "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e10 aks-ssh-access:" in cat
    assert env.node.sh("man -w aks-ssh-access 2>/dev/null || test -f /usr/share/man/man8/aks-ssh-access.8.gz",
                       check=False).returncode == 0


def test_tree_provision_deprovision_first_boot_disabled(env):
    """From a source tree (`make install` into the image), first boot in Disabled: sshd never listens."""
    env.node.mount()
    root = env.node.root
    run([PROVISION, "--root", root, "--from-tree", REPO, "--default-ssh", "service"])
    first = snapshot(root)
    run([PROVISION, "--root", root, "--from-tree", REPO, "--default-ssh", "service", "--quiet"])
    assert snapshot(root) == first, "provision twice (tree) changed the tree"
    assert is_enabled(root, "aks-ssh-access.service") == "enabled"
    if h.AGENT_BIN.exists():
        # The binary under test (e.g. an ASan build given in AKS_SSH_ACCESS_BIN) wins.
        run(["install", "-m", "0755", h.AGENT_BIN, root / "usr/bin/aks-ssh-access"])

    build_vm_leftovers(env, root)
    deprovision_and_check(root)

    env.imds("Disabled", ["k1"])
    probe = env.net.start_port_probe()
    e2e.boot(env)
    e2e.check_disabled(env, probe, own_line=OWN_LINE)
    e2e.assert_agent_ok(env.node)
    st = e2e.status_json(env.node)
    assert st["last_apply"]["source"] == "imds", st


def test_deprovisioned_image_fails_closed_without_imds(env):
    """Why deprovision matters: the build VM applied LocalUser (its key k3). Without deprovision, a first boot
    that cannot reach IMDS would re-assert that from the state file (sshd on, the build VM's key in). After
    deprovision there is no state: the fallback is fallback_mode = disabled, sshd never listens."""
    env.node.mount()
    root = env.node.root
    run([PROVISION, "--root", root, "--from-tree", REPO, "--quiet"])
    build_vm_leftovers(env, root)
    deprovision_and_check(root)
    (root / "etc/aks-ssh-access.conf.d/50-boot-test.conf").write_text("deadline_s = 5\n")

    # No IMDS emulator: 169.254.169.254 refuses connections inside the node's namespace.
    probe = env.net.start_port_probe()
    e2e.boot(env, expect=None)
    e2e.check_disabled(env, probe, own_line=OWN_LINE)
    st = e2e.status_json(env.node)
    assert st["last_apply"]["source"] == "fallback", st
    assert env.node.prop("aks-ssh-access.service", "ExecMainStatus") == "69"
    assert e2e.assert_login is not None and env.net.ssh(env.keys.priv["k3"]).returncode != 0
