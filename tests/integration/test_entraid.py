"""EntraId: `PubkeyAuthentication no` as a block at the very top of the image's sshd_config, proven with the
host's real `sshd -T` on the image's files (a private mount namespace with the scratch root's etc/ssh bound
over /etc/ssh, so that `Include /etc/ssh/sshd_config.d/*.conf` reads the image's drop-ins); the aadsshlogin
Match block stays in force; leaving EntraId gives the image's bytes back exactly; when the block cannot be
written, sshd_config stays as it was and the units fail closed as in Disabled (exit 78). Every test runs
with the plain and the ASan build (conftest `binary`)."""
import json
import os
import shutil
import stat
import subprocess

import pytest

import akstest
from conftest import ENTRA_BEGIN as BEGIN, ENTRA_END, DEBIAN_UNITS, closed_imds_url, sanitizer_report, ASAN_ENV

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_ERR = 78
UNAVAILABLE = 69
BLOCK = BEGIN + "\nPubkeyAuthentication no\n" + ENTRA_END + "\n"
LEGACY_DROPIN = "etc/ssh/sshd_config.d/50-aks-ssh-access.conf"
LEGACY_TEXT = ("# Written by aks-ssh-access for the EntraId SSH access mode; removed in other modes.\n"
               "# Public-key authentication is off outside Match blocks.\nPubkeyAuthentication no\n")

# Debian 12's stock /etc/ssh/sshd_config (openssh-server 1:9.2p1-2, /usr/share/openssh/sshd_config: ucf's copy).
DEBIAN_SSHD_CONFIG = "/usr/share/openssh/sshd_config"
# CBL-Mariner 2.0's, rebuilt from its public sources: see data/README.md.
MARINER_SSHD_CONFIG = os.path.join(HERE, "data", "sshd_config.cbl-mariner-2.0")
# What the AAD SSH login extension (aadsshlogin) appends to sshd_config, as AgentBaker's node scripts quote it.
AAD_MATCH = ("Match User *@*,????????-????-????-????-????????????\t# Added by aadsshlogin installer\n"
             "    AuthenticationMethods publickey\n"
             "    PubkeyAuthentication yes\n"
             "    AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n"
             "    AuthorizedKeysCommandUser root\n")
AAD_USER = "someone@contoso.com"

needs_root_ns = pytest.mark.skipif(
    os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0
    or not os.access("/usr/sbin/sshd", os.X_OK),
    reason="needs root, mount namespaces and /usr/sbin/sshd")
pytestmark = needs_root_ns


def read(path):
    with open(path, "rb") as f:
        return f.read()


def debian_stock():
    return read(DEBIAN_SSHD_CONFIG)


@pytest.fixture(scope="session")
def host_key(tmp_path_factory):
    """One ed25519 host key for every image: sshd -T refuses to run without one."""
    d = tmp_path_factory.mktemp("hostkey")
    path = str(d / "ssh_host_ed25519_key")
    akstest.ssh_keygen(path)
    return path


class Image:
    """A scratch root with Debian's ssh units (ssh.service enabled) and an /etc/ssh of our choosing."""

    def __init__(self, root):
        self.r = root
        self.root = root.root
        self.etc_ssh = os.path.join(self.root, "etc/ssh")
        self.config = os.path.join(self.etc_ssh, "sshd_config")
        self.dropin_dir = os.path.join(self.etc_ssh, "sshd_config.d")

    def is_enabled(self, unit):
        return self.r.is_enabled(unit)

    def state(self):
        with open(os.path.join(self.root, "var/lib/aks-ssh-access/state.json")) as f:
            return json.load(f)

    def snapshot(self):
        """Every file under etc/ssh: (bytes or link target or None, mode, uid, gid)."""
        return {p: (c[1] if c[0] in ("file", "link") else None, mode, uid, gid)
                for p, (mode, uid, gid, c) in akstest.snapshot(self.etc_ssh).items()}


@pytest.fixture
def image(scratch_root, host_key):
    def make(config=None, dropins=None, mode=0o644, aad=True, gid=0):
        """config: the sshd_config bytes (default Debian 12's stock), with the aadsshlogin block appended
        when aad; dropins: {name: text} in sshd_config.d."""
        img = Image(scratch_root())
        os.makedirs(img.dropin_dir)
        shutil.copy(host_key, os.path.join(img.etc_ssh, "ssh_host_ed25519_key"))
        data = debian_stock() if config is None else config
        if aad:
            data = data + (b"" if data.endswith(b"\n") or not data else b"\n") + AAD_MATCH.encode()
        with open(img.config, "wb") as f:
            f.write(data)
        os.chmod(img.config, mode)
        os.chown(img.config, 0, gid)
        for name, text in (dropins or {}).items():
            with open(os.path.join(img.dropin_dir, name), "w") as f:
                f.write(text)
        return img

    return make


def sshd_T(img, user):
    """The host's real `sshd -T` on the image's files, as the node's sshd would read them."""
    spec = f"user={user},host=x,addr=127.0.0.1"
    script = ('set -e\nmkdir -p /run/sshd\nmount --bind "$1/etc/ssh" /etc/ssh\n'
              'exec /usr/sbin/sshd -T -C "$2" -f "$1/etc/ssh/sshd_config"')
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", img.root, spec],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"sshd -T failed: {r.stderr}"
    return akstest.sshd_settings(r.stdout)


def assert_entraid_effective(img):
    admin = sshd_T(img, "azureuser")
    assert admin["pubkeyauthentication"] == "no", admin["pubkeyauthentication"]
    assert admin["authorizedkeyscommand"] == "none"
    aad = sshd_T(img, AAD_USER)
    assert aad["authorizedkeyscommand"] == "/usr/sbin/aad_certhandler %u %k"
    assert aad["authorizedkeyscommanduser"] == "root"
    assert aad["pubkeyauthentication"] == "yes", "the Match block's value must still win for Entra ID users"
    assert aad["authenticationmethods"] == "publickey"


@pytest.fixture
def apply(agent, mode_doc):
    def run(img, mode, *extra):
        return agent(["apply", "--root", img.root, "--imds-file", mode_doc(mode), *extra])

    return run


@pytest.fixture
def verify(run_agent, binary):
    """(exit code, the one stdout line); drift (1) says so on stdout only."""
    def run(img):
        rc, out, err = run_agent(["verify", "--root", img.root], bin=binary)
        assert sanitizer_report(err) is None, err
        assert len(out.splitlines()) == 1 and len(out.strip()) <= 80, out
        return rc, out.strip()

    return run


def last_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --------------------------------------------------------------------------------------------------------------
# Effective on the sshd configurations images really have


IMAGES = {
    # Debian 12 as shipped: Include of sshd_config.d near the top, the aadsshlogin block at the end.
    "debian12-stock": dict(config=None),
    # Upstream / CBL-Mariner 2.0: no Include at all, a drop-in is never read (mode 0600 as Mariner ships it).
    "mariner2-no-include": dict(config=read(MARINER_SSHD_CONFIG), mode=0o600, gid=3),  # gid: the owner is kept
    # An image drop-in that sorts before the old agent's 50-aks-ssh-access.conf.
    "earlier-dropin": dict(config=None, dropins={"10-image.conf": "PubkeyAuthentication yes\n"}),
    # An explicit setting above the Include.
    "yes-above-include": dict(config=b"PubkeyAuthentication yes\n" + debian_stock()),
}


@pytest.mark.parametrize("case", sorted(IMAGES))
def test_entraid_is_effective_and_leaving_it_gives_the_image_back(image, apply, verify, case):
    img = image(**IMAGES[case])
    # The old agent's drop-in, as a node that ran it has it: it worked on Debian's stock file only.
    with open(os.path.join(img.root, LEGACY_DROPIN), "w") as f:
        f.write(LEGACY_TEXT)
    assert sshd_T(img, "azureuser")["pubkeyauthentication"] == ("no" if case == "debian12-stock" else "yes"), \
        "the case must show whether the old drop-in worked"
    os.unlink(os.path.join(img.root, LEGACY_DROPIN))
    original = img.snapshot()
    assert apply(img, "LocalUser").rc == 0
    assert img.snapshot() == original, "LocalUser on an image without a block changes nothing under /etc/ssh"

    with open(os.path.join(img.root, LEGACY_DROPIN), "w") as f:
        f.write(LEGACY_TEXT)
    r = apply(img, "EntraId")
    assert r.rc == 0, r
    assert read(img.config) == BLOCK.encode() + original["sshd_config"][0], "the block at byte 0, the image's bytes after it"
    st = os.stat(img.config)
    assert (st.st_mode, st.st_uid, st.st_gid) == original["sshd_config"][1:] and \
        stat.S_IMODE(st.st_mode) == IMAGES[case].get("mode", 0o644), "mode and owner kept"
    assert not os.path.lexists(os.path.join(img.root, LEGACY_DROPIN)), "the old drop-in is removed"
    assert [n for n in os.listdir(img.etc_ssh) if "aks-ssh-access-tmp" in n] == []
    assert_entraid_effective(img)
    assert img.is_enabled("ssh.service") == "enabled"
    rc, line = verify(img)
    assert rc == 0 and line.startswith("in sync: EntraId"), line

    # In sync: nothing rewritten (same inode, same mtime).
    before = os.stat(img.config)
    r = apply(img, "EntraId")
    assert r.rc == 0, r
    after = os.stat(img.config)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    # Leaving EntraId: the image's bytes exactly, sshd back to what the image says.
    assert apply(img, "LocalUser").rc == 0
    assert img.snapshot() == original
    assert sshd_T(img, "azureuser")["pubkeyauthentication"] == "yes"
    assert verify(img)[0] == 0
    assert apply(img, "EntraId").rc == 0
    assert apply(img, "Disabled").rc == 0
    assert img.snapshot() == original
    assert img.is_enabled("ssh.service") == "masked"


@pytest.mark.parametrize("data", [b"", b"UsePAM yes", b"\n", b"UsePAM yes\r\nX11Forwarding no\r\n"],
                         ids=["empty", "no-final-newline", "one-newline", "crlf"])
def test_byte_exact_round_trip(image, apply, data):
    img = image(config=data, aad=False)
    assert apply(img, "EntraId").rc == 0
    assert read(img.config) == BLOCK.encode() + data
    assert sshd_T(img, "azureuser")["pubkeyauthentication"] == "no"
    assert apply(img, "LocalUser").rc == 0
    assert read(img.config) == data


def test_sshd_config_d_not_a_directory_is_no_obstacle(image, apply, verify):
    """The setting no longer lives in sshd_config.d: a regular file there (sshd's Include glob then matches
    nothing) does not stop EntraId, and sshd -T proves it effective."""
    img = image()
    os.rmdir(img.dropin_dir)
    with open(img.dropin_dir, "w") as f:
        f.write("not a directory\n")
    r = apply(img, "EntraId")
    assert r.rc == 0, r
    assert_entraid_effective(img)
    assert read(img.dropin_dir) == b"not a directory\n"
    assert verify(img)[0] == 0


# --------------------------------------------------------------------------------------------------------------
# Drift


def test_hand_edited_or_moved_block_is_drift_and_repaired(image, apply, verify):
    img = image()
    stock = read(img.config)
    assert apply(img, "EntraId").rc == 0
    for damaged in (BLOCK.replace("no\n", "yes\n").encode() + stock,             # value flipped by hand
                    stock + BLOCK.encode(),                                        # moved below the Include
                    BLOCK.encode() + BLOCK.encode() + stock,                       # doubled
                    BLOCK.replace(BEGIN, "# BEGIN aks-ssh-access").encode() + stock):  # marker edited
        with open(img.config, "wb") as f:
            f.write(damaged)
        rc, line = verify(img)
        assert rc == 1 and line == "drift: the EntraId block in sshd_config is changed for mode EntraId", line
        assert apply(img, "EntraId").rc == 0
        assert read(img.config) == BLOCK.encode() + stock
        assert verify(img)[0] == 0
    os.unlink(img.config)
    with open(img.config, "wb") as f:
        f.write(stock)
    assert verify(img) == (1, "drift: sshd_config has no EntraId block for mode EntraId")


def test_leftover_block_or_dropin_outside_entraid_is_drift(image, apply, verify):
    img = image()
    stock = read(img.config)
    assert apply(img, "LocalUser").rc == 0
    with open(img.config, "wb") as f:
        f.write(BLOCK.encode() + stock)
    assert verify(img) == (1, "drift: sshd_config still has the EntraId block for mode LocalUser")
    assert apply(img, "LocalUser").rc == 0
    assert read(img.config) == stock
    with open(os.path.join(img.root, LEGACY_DROPIN), "w") as f:
        f.write("PubkeyAuthentication no\n")  # changed by hand: still at our name, still ours
    assert verify(img) == (1, "drift: the old EntraId drop-in is present for mode LocalUser")
    assert apply(img, "LocalUser").rc == 0
    assert not os.path.lexists(os.path.join(img.root, LEGACY_DROPIN))
    assert verify(img)[0] == 0


def test_dry_run_names_the_change_and_changes_nothing(image, agent, mode_doc):
    img = image()
    before = img.snapshot()
    r = agent(["apply", "--dry-run", "--root", img.root, "--imds-file", mode_doc("EntraId")])
    assert r.rc == 0, r
    assert f"  {img.root}/etc/ssh/sshd_config: write the EntraId block at the top" in r.out.splitlines()
    assert img.snapshot() == before


# --------------------------------------------------------------------------------------------------------------
# Fallback: exactly what EntraId does


def apply_fallback_entraid(agent, img, config_file, config=""):
    """apply with IMDS unreachable (1 s deadline) on an image whose sshd_config is stock again: exit 69 and the
    block at the top, effective; returns the Result."""
    stock = read(img.config)
    conf = config_file("deadline_s = 1\n" + config)
    r = agent(["apply", "--root", img.root, "--imds-url", closed_imds_url(), "--config", conf])
    assert r.rc == UNAVAILABLE, r
    assert read(img.config) == BLOCK.encode() + stock
    assert_entraid_effective(img)
    return r


def test_fallback_to_last_mode_entraid_writes_the_block(image, apply, agent, config_file):
    img = image()
    stock = read(img.config)
    assert apply(img, "EntraId").rc == 0
    with open(img.config, "wb") as f:
        f.write(stock)  # lost since, e.g. a package upgrade installed the maintainer's version
    apply_fallback_entraid(agent, img, config_file)
    assert img.is_enabled("ssh.service") == "enabled"
    assert img.state()["mode"].lower() == "entraid" and img.state()["last_apply"]["source"] == "fallback"


def test_fallback_mode_entraid_without_state(image, agent, config_file):
    apply_fallback_entraid(agent, image(), config_file, "fallback_mode = entraid\n")


# --------------------------------------------------------------------------------------------------------------
# Fail closed: the block cannot be written


def run_in_mountns(binary, setup, args):
    """`setup` (shell) then the agent, in a private mount namespace (nothing stays mounted)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    for k, v in ASAN_ENV.items():
        env.setdefault(k, v)
    script = "set -eu\n" + setup + '\nexec "$@"'
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", binary, *args],
                       capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert sanitizer_report(r.stderr) is None, r.stderr
    return r


def assert_failed_closed(img, r, why, before):
    assert r.returncode == CONFIG_ERR, (r.returncode, r.stderr)
    line = last_line(r.stderr)
    assert line.startswith("aks-ssh-access: EntraId") and " cannot be made effective: " in line and why in line and \
        line.endswith("; sshd left masked (fail closed)"), r.stderr
    for unit in DEBIAN_UNITS:
        assert img.is_enabled(unit) == "masked", unit
    assert img.snapshot() == before, "sshd_config (and all of /etc/ssh) byte for byte as it was"
    st = img.state()
    assert st["mode"].lower() == "entraid" and st["last_apply"]["exit"] == CONFIG_ERR


@pytest.mark.parametrize("how", ["ro-bind-dir", "ro-bind-file", "immutable"])
def test_write_refused_fails_closed(image, binary, mode_doc, apply, verify, how):
    img = image()
    assert apply(img, "LocalUser").rc == 0
    assert img.is_enabled("ssh.service") == "enabled"
    before = img.snapshot()
    args = ["apply", "--root", img.root, "--imds-file", mode_doc("EntraId")]
    if how == "immutable":
        if subprocess.run(["chattr", "+i", img.config], capture_output=True).returncode != 0:
            pytest.skip("this file system has no immutable attribute")
        try:
            r = run_in_mountns(binary, "true", args)
        finally:
            subprocess.run(["chattr", "-i", img.config], check=True)
        why = "Operation not permitted"
    else:
        target = img.etc_ssh if how == "ro-bind-dir" else img.config
        r = run_in_mountns(binary, f"mount --bind '{target}' '{target}'\nmount -o remount,bind,ro '{target}'", args)
        why = "Read-only file system" if how == "ro-bind-dir" else "Device or resource busy"
    assert f"cannot write {img.root}/etc/ssh/sshd_config" in last_line(r.stderr), r.stderr
    assert_failed_closed(img, r, why, before)
    assert [n for n in os.listdir(img.etc_ssh) if "aks-ssh-access-tmp" in n] == []
    assert verify(img)[0] == 1


@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "fifo", "directory", "missing"])
def test_unusable_sshd_config_fails_closed(image, binary, mode_doc, apply, kind):
    img = image()
    assert apply(img, "LocalUser").rc == 0
    stock = read(img.config)
    os.unlink(img.config)
    if kind == "symlink":
        os.makedirs(os.path.join(img.root, "usr/share/openssh"))
        with open(os.path.join(img.root, "usr/share/openssh/sshd_config"), "wb") as f:
            f.write(stock)
        os.symlink("../../usr/share/openssh/sshd_config", img.config)
        why = "is a symlink"
    elif kind == "dangling-symlink":
        os.symlink("/nonexistent", img.config)
        why = "is a symlink"
    elif kind == "fifo":
        os.mkfifo(img.config)
        why = "is not a regular file"
    elif kind == "directory":
        os.mkdir(img.config)
        why = "is not a regular file"
    else:
        why = "is missing"
    before = img.snapshot()
    r = run_in_mountns(binary, "true", ["apply", "--root", img.root, "--imds-file", mode_doc("EntraId")])
    assert_failed_closed(img, r, f"{img.root}/etc/ssh/sshd_config {why}", before)
    if kind == "symlink":
        assert read(os.path.join(img.root, "usr/share/openssh/sshd_config")) == stock, "the link's target untouched"
    # Back to LocalUser: nothing of ours is in it, so nothing to do there, and sshd comes back.
    assert apply(img, "LocalUser").rc == 0
    assert img.snapshot() == before
    assert img.is_enabled("ssh.service") == "enabled"


def test_fallback_to_entraid_fails_closed_too(image, binary, apply, config_file):
    img = image()
    assert apply(img, "EntraId").rc == 0
    stock = read(img.config)[len(BLOCK):]
    with open(img.config, "wb") as f:
        f.write(stock)
    before = img.snapshot()
    conf = config_file("deadline_s = 1\n")
    r = run_in_mountns(binary, f"mount --bind '{img.etc_ssh}' '{img.etc_ssh}'\nmount -o remount,bind,ro '{img.etc_ssh}'",
                       ["apply", "--root", img.root, "--imds-url", closed_imds_url(), "--config", conf])
    assert last_line(r.stderr).startswith("aks-ssh-access: EntraId (fallback) cannot be made effective: "), r.stderr
    assert_failed_closed(img, r, "Read-only file system", before)


def test_dry_run_shows_the_fail_closed_plan(image, agent, mode_doc, apply):
    img = image()
    assert apply(img, "LocalUser").rc == 0
    os.unlink(img.config)
    os.symlink("/nonexistent", img.config)
    before = img.snapshot()
    r = agent(["apply", "--dry-run", "--root", img.root, "--imds-file", mode_doc("EntraId")])
    lines = r.out.splitlines()
    assert f"  {img.root}/etc/ssh/sshd_config: unusable (a symlink): sshd fails closed" in lines, r.out
    assert "  mask ssh.service" in lines and "  unmask ssh.service" not in lines, r.out
    assert img.snapshot() == before and img.is_enabled("ssh.service") == "enabled"


def test_oversized_sshd_config(image, apply, verify, binary, mode_doc):
    """Over 1 MiB the agent does not read it: EntraId fails closed; elsewhere a block could hide in it, so the
    apply says so (74) and verify cannot tell (2), while the unit part is still done."""
    img = image(config=b"#" * (1024 * 1024) + b"\n", aad=False)
    before = img.snapshot()
    r = apply(img, "LocalUser")
    assert r.rc == 74 and "Cannot read" in r.err and "sshd_config" in r.err, r
    assert img.is_enabled("ssh.service") == "enabled"
    assert verify(img) == (2, "unknown: sshd_config cannot be read for mode LocalUser")
    r = run_in_mountns(binary, "true", ["apply", "--root", img.root, "--imds-file", mode_doc("EntraId")])
    assert_failed_closed(img, r, "sshd_config is larger than 1 MiB", before)


def test_oversized_sshd_config_outside_entraid_says_why(image, apply):
    """The one line names the reason (SSHD_E_TOO_LARGE), not an errno text."""
    img = image(config=b"#" * (1024 * 1024) + b"\n", aad=False)
    r = apply(img, "LocalUser")
    assert r.rc == 74 and "sshd_config to remove the EntraId block: larger than 1 MiB" in r.err, r
