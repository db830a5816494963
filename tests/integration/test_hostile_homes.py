"""Adversarial homes (SPEC §4): a root agent writing into a home the user controls.

Every case builds a scratch root whose admin home is booby-trapped (symlinks to /etc/shadow or another user's
file, dangling symlinks, a FIFO, a directory, a hard link to a root-owned file, group/world writable components,
foreign owners, a .ssh swapped for a symlink while apply runs), runs `apply` with a document that would make a
naive agent write (LocalUser with a key) or remove a block (Disabled; every bait file holds a managed block), and
asserts:
  - exit 77 and an error line on stderr that names the problem;
  - NOTHING in the whole root changed except what the unit part legitimately changes (etc/systemd/system, the
    state directory, the lock): every path's type, mode, owner, size, content, link target, mtime and ctime are
    compared before/after, the booby-trapped home included;
  - the unit part was applied anyway: Disabled → ssh.service masked; LocalUser → ssh.service still enabled.
Also ENOSPC (a tiny tmpfs as the home) and EROFS (read-only bind mount of the home / .ssh) in a private mount
namespace: a clear one-line error, exit 74 / 73, the old authorized_keys intact, no temp file left.
"""
import ctypes
import os
import stat
import subprocess
import threading
import time

import pytest

import akstest
from conftest import KEYS_BEGIN as BEGIN, KEYS_END as END, imds_doc, sanitizer_report

UNSAFE, IOERR, CANTCREAT = 77, 74, 73
BOB = 1001
# What the unit part and the record may change (relative to the root).
ALLOWED = ("etc/systemd/system", "var/lib/aks-ssh-access", "run/aks-ssh-access.lock")
SHADOW = "root:$y$j9T$fakehash:19000:0:99999:7:::\nazureuser:!:19000:0:99999:7:::\n"


def snapshot(root, skip=ALLOWED):
    """Everything about every path under root and root itself (without following any symlink): type, mode, owner,
    size, link count, mtime, ctime, link target or bytes; except the ALLOWED subtrees (their parents: type, mode
    and owner only)."""
    return akstest.snapshot(root, stat_fields=("st_mode", "st_uid", "st_gid", "st_size", "st_nlink", "st_mtime_ns",
                                               "st_ctime_ns"), skip=skip, with_top=True)


def diff(before, after):
    out = []
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            out.append(f"{k}: {before.get(k)} -> {after.get(k)}")
    return out


class Node:
    """A scratch root with the admin azureuser (1000), a second user bob (1001) with keys of his own, a root-only
    /etc/shadow, and a directory root/etc/ssh; every bait file holds a managed block."""

    def __init__(self, r):
        self.r = r
        self.root = r.root
        self.home = r.home
        self.ssh = r.ssh_dir
        self.ak = r.ak
        self.bob_home = os.path.join(self.root, "home", "bob")
        self.bob_ak = os.path.join(self.bob_home, ".ssh", "authorized_keys")
        self.shadow = os.path.join(self.root, "etc", "shadow")
        with open(os.path.join(self.root, "etc", "passwd"), "a") as f:
            f.write(f"bob:x:{BOB}:{BOB}::/home/bob:/bin/bash\n")
        os.makedirs(os.path.join(self.bob_home, ".ssh"))
        for p in (self.bob_home, os.path.join(self.bob_home, ".ssh")):
            os.chown(p, BOB, BOB)
            os.chmod(p, 0o700 if p.endswith(".ssh") else 0o755)
        bait = f"ssh-ed25519 AAAAbob bob@laptop\n{BEGIN}\nssh-ed25519 AAAAbaitkey bait\n{END}\n"
        write(self.bob_ak, bait, 0o600, BOB)
        write(self.shadow, SHADOW + BEGIN + "\nssh-ed25519 AAAAbaitkey bait\n" + END + "\n", 0o640, 0)
        os.makedirs(os.path.join(self.root, "etc", "ssh"), exist_ok=True)
        write(os.path.join(self.root, "etc", "ssh", "authorized_keys"), bait, 0o600, 0)

    def is_enabled(self, unit):
        return self.r.is_enabled(unit)


def write(path, text, mode, uid):
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, uid, uid)
    os.chmod(path, mode)


def mkdir(path, mode=0o700, uid=1000):
    os.mkdir(path)
    os.chown(path, uid, uid)
    os.chmod(path, mode)


def symlink(target, path, uid=1000):
    os.symlink(target, path)
    os.lchown(path, uid, uid)


@pytest.fixture
def node(scratch_root):
    return Node(scratch_root())


@pytest.fixture
def key(keygen):
    return keygen("ed25519")[0]


@pytest.fixture
def docfile(mode_doc, key):
    return lambda mode: mode_doc(mode, [key])


def apply(run_agent, node, doc, timeout=30, bin=None):
    rc, out, err = run_agent(["apply", "--root", node.root, "--imds-file", doc], timeout=timeout, bin=bin)
    assert sanitizer_report(err) is None, err
    return rc, out, err


def assert_unit_part(node, mode):
    if mode == "Disabled":
        assert node.is_enabled("ssh.service") == "masked"
        assert node.is_enabled("ssh.socket") == "masked"
    else:
        assert node.is_enabled("ssh.service") == "enabled"


# ------------------------------------------------------------------------------------------------------------
# booby-trapped homes: each builder returns the words the error line must contain


def symlink_case(name, what, target):
    """A builder: authorized_keys (in a real .ssh) or .ssh itself is a symlink to target (a function of the Node
    for a path only known then)."""
    def build(n):
        if what == "ak":
            mkdir(n.ssh)
        symlink(target(n) if callable(target) else target, n.ak if what == "ak" else n.ssh)
        return "symlink"

    build.__name__ = name
    return build


ak_symlink_to_shadow = symlink_case("ak_symlink_to_shadow", "ak", "../../../etc/shadow")
# absolute, pointing at the root's shadow through the host path (never the host's own /etc/shadow)
ak_absolute_symlink_to_shadow = symlink_case("ak_absolute_symlink_to_shadow", "ak", lambda n: n.shadow)
ak_symlink_to_other_user = symlink_case("ak_symlink_to_other_user", "ak", "../../bob/.ssh/authorized_keys")
ak_dangling_symlink = symlink_case("ak_dangling_symlink", "ak", "../../../etc/created-by-agent")
ssh_symlink_to_other_user = symlink_case("ssh_symlink_to_other_user", "ssh", "../bob/.ssh")
ssh_symlink_to_etc_ssh = symlink_case("ssh_symlink_to_etc_ssh", "ssh", "../../etc/ssh")
ssh_dangling_symlink = symlink_case("ssh_dangling_symlink", "ssh", "../../etc/nonexistent-dir")


def ak_fifo(n):
    mkdir(n.ssh)
    os.mkfifo(n.ak, 0o600)
    os.chown(n.ak, 1000, 1000)
    return "not a regular file"


def ak_directory(n):
    mkdir(n.ssh)
    mkdir(n.ak)
    return "not a regular file"


def ssh_is_a_file(n):
    write(n.ssh, "not a directory\n", 0o600, 1000)
    return "not a directory"


def ak_hardlink_to_shadow(n):
    mkdir(n.ssh)
    os.link(n.shadow, n.ak)
    return "hard link"


def ak_hardlink_to_own_file(n):
    # even a link to a file of the user's own: the agent's rename would silently split them
    mkdir(n.ssh)
    write(os.path.join(n.home, "keys.bak"), "ssh-ed25519 AAAAown own\n", 0o600, 1000)
    os.link(os.path.join(n.home, "keys.bak"), n.ak)
    return "hard link"


def ssh_group_writable(n):
    mkdir(n.ssh, 0o770)
    write(n.ak, "ssh-ed25519 AAAAmine me\n", 0o600, 1000)
    return "writable"


def ssh_world_writable(n):
    mkdir(n.ssh, 0o777)
    return "writable"


def ak_group_writable(n):
    mkdir(n.ssh)
    write(n.ak, "ssh-ed25519 AAAAmine me\n", 0o620, 1000)
    return "writable"


def home_group_writable(n):
    os.chmod(n.home, 0o775)
    return "writable"


def home_world_writable_sticky(n):
    os.chmod(n.home, 0o1777)
    return "writable"


def slash_home_world_writable(n):
    os.chmod(os.path.join(n.root, "home"), 0o1777)
    return "writable"


def slash_home_not_root_owned(n):
    os.chown(os.path.join(n.root, "home"), 1000, 1000)
    return "not owned by root"


def home_owned_by_other_user(n):
    os.chown(n.home, BOB, BOB)
    return "owned by uid 1001"


def home_symlink_into_other_home(n):
    # passwd says /home/azureuser; it resolves (like sshd's realpath) to bob's home, owned by bob
    os.rmdir(n.home)
    symlink("bob", n.home, uid=0)
    return "owned by uid 1001"


def ssh_owned_by_other_user(n):
    mkdir(n.ssh, 0o700, BOB)
    return "owned by uid 1001"


def ak_owned_by_other_user(n):
    mkdir(n.ssh)
    write(n.ak, "ssh-ed25519 AAAAbob bob\n", 0o600, BOB)
    return "owned by uid 1001"


CASES = [ak_symlink_to_shadow, ak_absolute_symlink_to_shadow, ak_symlink_to_other_user, ak_dangling_symlink,
         ssh_symlink_to_other_user, ssh_symlink_to_etc_ssh, ssh_dangling_symlink, ak_fifo, ak_directory,
         ssh_is_a_file, ak_hardlink_to_shadow, ak_hardlink_to_own_file, ssh_group_writable, ssh_world_writable,
         ak_group_writable, home_group_writable, home_world_writable_sticky, slash_home_world_writable,
         slash_home_not_root_owned, home_owned_by_other_user, home_symlink_into_other_home,
         ssh_owned_by_other_user, ak_owned_by_other_user]


@pytest.mark.parametrize("mode", ["LocalUser", "Disabled"])
@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_unsafe_home_is_refused_and_nothing_changes(run_agent, binary, node, docfile, case, mode):
    words = case(node)
    before = snapshot(node.root)
    t0 = time.monotonic()
    rc, out, err = apply(run_agent, node, docfile(mode), timeout=20, bin=binary)
    assert rc != "timeout", "apply hung (a FIFO must never be opened for blocking reads)"
    assert time.monotonic() - t0 < 10
    assert rc == UNSAFE, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("aks-ssh-access:"), err
    assert any(words in line for line in lines), f"no stderr line names the problem ({words!r}): {err}"
    changes = diff(before, snapshot(node.root))
    assert not changes, "apply changed files it must not touch:\n" + "\n".join(changes)
    assert_unit_part(node, mode)
    # the refusal is recorded, and the next run refuses again (nothing was "fixed" behind the admin's back)
    rc2, _, err2 = apply(run_agent, node, docfile(mode), bin=binary)
    assert rc2 == UNSAFE, err2
    assert not diff(before, snapshot(node.root))


@pytest.mark.parametrize("what", [".ssh", "authorized_keys"])
def test_absolute_symlink_out_of_the_root(run_agent, node, docfile, tmp_path, what):
    """An absolute symlink naming a file outside the root (a canary standing in for the host's /etc/shadow:
    a test must never put the real one at risk): neither the canary nor anything in the root changes."""
    canary_dir = tmp_path / "outside"
    canary_dir.mkdir()
    canary = canary_dir / "authorized_keys"
    canary.write_text(SHADOW + BEGIN + "\nssh-ed25519 AAAAbaitkey bait\n" + END + "\n")
    st = os.stat(canary)
    if what == ".ssh":
        symlink(str(canary_dir), node.ssh)
    else:
        mkdir(node.ssh)
        symlink(str(canary), node.ak)
    before = snapshot(node.root)
    for mode in ("LocalUser", "Disabled"):
        rc, _, err = apply(run_agent, node, docfile(mode))
        assert rc == UNSAFE, err
        assert "symlink" in err
        assert os.stat(canary).st_mtime_ns == st.st_mtime_ns and os.stat(canary).st_ino == st.st_ino
        assert sorted(os.listdir(canary_dir)) == ["authorized_keys"]
        assert not diff(before, snapshot(node.root))


def test_safe_home_is_written(run_agent, node, docfile, key):
    """The control case: the same node without a trap gets its keys (so the cases above can fail)."""
    rc, _, err = apply(run_agent, node, docfile("LocalUser"))
    assert rc == 0, err
    with open(node.ak) as f:
        assert key in f.read()
    st = os.lstat(node.ak)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 1000)


# ------------------------------------------------------------------------------------------------------------
# the race: .ssh swapped for a symlink (atomically, RENAME_EXCHANGE) while apply runs, in a loop

RACE_RUNS = int(os.environ.get("AKS_RACE_RUNS", "100"))
_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def exchange(a, b):
    if _libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)


@pytest.mark.parametrize("which,target", [
    (".ssh", "../bob/.ssh"),
    (".ssh", "../../etc/ssh"),
    ("authorized_keys", "../../bob/.ssh/authorized_keys"),
], ids=["ssh-to-bob", "ssh-to-etc-ssh", "ak-to-bob"])
def test_swapped_for_symlink_during_apply(run_agent, node, mode_doc, keygen, which, target):
    keys = [keygen("ed25519")[0] for _ in range(2)]
    foreign = keygen("ed25519")[0] + "\n# the user's own key above\n"
    docs = [mode_doc(mode, [keys[i % 2]]) for i, mode in enumerate(["LocalUser", "LocalUser", "Disabled"])]
    mkdir(node.ssh)
    if which == ".ssh":
        victim, evil = node.ssh, os.path.join(node.home, ".ssh-evil")
    else:
        write(node.ak, foreign, 0o600, 1000)
        victim, evil = node.ak, os.path.join(node.ssh, "authorized_keys-evil")
    symlink(target, evil)
    protected = [node.bob_home, os.path.join(node.root, "etc", "ssh"), os.path.join(node.root, "etc", "shadow")]

    def snap_protected():
        s = {}
        for p in protected:
            s.update(snapshot(p, skip=()) if os.path.isdir(p) else {p: open(p, "rb").read()})
        return s

    before = snap_protected()
    stop = threading.Event()
    swaps = [0]

    def swapper():
        while not stop.is_set():
            exchange(victim, evil)
            swaps[0] += 1
            if which != ".ssh" and not os.path.islink(victim) and not os.path.islink(evil):
                # the agent's rename replaced the symlink (without following it): plant a new one
                os.symlink(target, evil + ".new")
                os.lchown(evil + ".new", 1000, 1000)
                os.rename(evil + ".new", evil)
            time.sleep(0.0002 * (swaps[0] % 7))

    th = threading.Thread(target=swapper, daemon=True)
    th.start()
    codes = {}
    try:
        for i in range(RACE_RUNS):
            rc, _, err = apply(run_agent, node, docs[i % 3])
            codes[rc] = codes.get(rc, 0) + 1
            assert rc in (0, UNSAFE), (rc, err)
            if rc == UNSAFE:
                assert "symlink" in err or "not a directory" in err or "changed" in err, err
    finally:
        stop.set()
        th.join()
    # whichever name the real directory / file has now, the symlink's target never changed
    assert snap_protected() == before, "a write went through the swapped-in symlink"
    if which == ".ssh":
        assert os.readlink(evil if os.path.islink(evil) else victim) == target
    # (authorized_keys: the agent's rename may have replaced the symlink itself, which is fine: never followed)
    real = node.ssh if not os.path.islink(node.ssh) else os.path.join(node.home, ".ssh-evil")
    assert os.path.isdir(real) and not os.path.islink(real)
    for name in os.listdir(real):
        p = os.path.join(real, name)
        st = os.lstat(p)
        assert ".aks-ssh-access-tmp." not in name, f"temp file left behind: {name}"
        if stat.S_ISLNK(st.st_mode):
            continue
        assert stat.S_ISREG(st.st_mode) and st.st_uid == 1000 and stat.S_IMODE(st.st_mode) == 0o600, (name, st)
        with open(p) as f:
            text = f.read()
        if text.strip():
            r = subprocess.run(["ssh-keygen", "-lf", p], capture_output=True, text=True)
            assert r.returncode == 0, (name, text, r.stderr)
            if which == "authorized_keys":
                assert text.startswith(foreign), (name, text)
    assert codes.get(UNSAFE, 0) > 0, f"the race never hit ({codes}, {swaps[0]} swaps): the test proves nothing"
    print(f"race {which} -> {target}: {RACE_RUNS} applies, {swaps[0]} swaps, exit codes {codes}")


# ------------------------------------------------------------------------------------------------------------
# ENOSPC / EROFS, in a private mount namespace (nothing stays mounted, whatever happens)

FOREIGN = "ssh-ed25519 AAAAforeign user@laptop\n# keep me\n"


def can_unshare():
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


def run_in_mountns(run_agent, agent_bin, node, setup, doc):
    """Runs `setup` (shell) then the agent in a private mount namespace; the home is copied out afterwards to
    node.home + '.after' so that its state can be checked once the mounts are gone."""
    after = node.home + ".after"
    script = (
        "set -eu\n"
        f"{setup}\n"
        'set +e\n"$@"\nrc=$?\nset -e\n'
        f"mkdir -p '{after}'\ncp -a '{node.home}/.' '{after}/'\n"
        f"df -k '{node.home}' | tail -n1 >&2\n"
        "exit $rc\n")
    rc, out, err = run_agent(["-m", "--propagation", "private", "sh", "-c", script, "sh", agent_bin, "apply",
                              "--root", node.root, "--imds-file", doc], bin="unshare", timeout=30)
    assert sanitizer_report(err) is None, err
    return rc, out, err, after


def agent_error_lines(err):
    return [line for line in err.splitlines() if line.startswith("aks-ssh-access:")]


def old_file(node):
    mkdir(node.ssh)
    text = FOREIGN + BEGIN + "\nssh-ed25519 AAAAold old\n" + END + "\n"
    write(node.ak, text, 0o600, 1000)
    return text


@pytest.mark.skipif(os.geteuid() != 0 or not can_unshare(), reason="needs root and mount namespaces")
@pytest.mark.parametrize("what", ["home", ".ssh"])
def test_enospc(run_agent, agent_bin, node, tmp_path, mode_doc, keygen, what):
    import json
    doc = mode_doc("LocalUser", [keygen("ed25519")[0] for _ in range(3)])
    old_file(node)
    target = node.home if what == "home" else node.ssh
    tpl = str(tmp_path / "template")
    subprocess.run(["cp", "-a", target, tpl], check=True)
    # a 64 KiB tmpfs as the home (or .ssh), filled to the last block
    setup = (f"mount -t tmpfs -o size=64k,mode={'0755' if what == 'home' else '0700'},uid=1000,gid=1000 tmpfs "
             f"'{target}'\n"
             f"cp -a '{tpl}/.' '{target}/'\n"
             f"dd if=/dev/zero of='{target}/filler' bs=1k 2>/dev/null || true\n"
             f"dd if=/dev/zero of='{target}/filler2' bs=1 2>/dev/null || true")
    rc, _, err, after = run_in_mountns(run_agent, agent_bin, node, setup, doc)
    assert rc == IOERR, (rc, err)
    lines = agent_error_lines(err)
    assert any("No space left on device" in line for line in lines), err
    assert "authorized_keys" in "".join(lines), err
    with open(os.path.join(after, ".ssh", "authorized_keys")) as f:
        assert f.read() == open(node.ak).read(), "old file not intact"
    leftovers = [n for n in os.listdir(os.path.join(after, ".ssh")) if n not in ("authorized_keys", "filler", "filler2")]
    assert leftovers == [], f"temp files left behind: {leftovers}"
    # the unit part was applied anyway (LocalUser: enabled), and the failure is recorded
    assert node.is_enabled("ssh.service") == "enabled"
    with open(os.path.join(node.root, "var/lib/aks-ssh-access/state.json")) as f:
        state = json.load(f)
    assert state["last_apply"]["exit"] == IOERR


@pytest.mark.skipif(os.geteuid() != 0 or not can_unshare(), reason="needs root and mount namespaces")
@pytest.mark.parametrize("what", ["home", ".ssh"])
@pytest.mark.parametrize("mode", ["LocalUser", "Disabled"])
def test_read_only_home(run_agent, agent_bin, node, mode_doc, keygen, what, mode):
    doc = mode_doc(mode, [keygen("ed25519")[0]])
    text = old_file(node)
    target = node.home if what == "home" else node.ssh
    setup = f"mount --bind '{target}' '{target}'\nmount -o remount,bind,ro '{target}'"
    rc, _, err, after = run_in_mountns(run_agent, agent_bin, node, setup, doc)
    assert rc == CANTCREAT, (rc, err)
    lines = agent_error_lines(err)
    assert any("Read-only file system" in line for line in lines), err
    with open(os.path.join(after, ".ssh", "authorized_keys")) as f:
        assert f.read() == text
    assert sorted(os.listdir(os.path.join(after, ".ssh"))) == ["authorized_keys"]
    assert_unit_part(node, mode)


def test_planted_temp_names_are_swept_without_following(run_agent, node, docfile, key):
    """Names that look like the agent's temp files, planted by the user: a symlink to the root's shadow, a FIFO,
    a directory. The sweep of stale temp files unlinks what it can (the link itself, never its target) and the
    apply succeeds."""
    mkdir(node.ssh)
    base = os.path.join(node.ssh, ".authorized_keys.aks-ssh-access-tmp.")
    symlink("../../../etc/shadow", base + "000000000001")
    os.mkfifo(base + "000000000002")
    mkdir(base + "000000000003")
    shadow = open(node.shadow).read()
    rc, _, err = apply(run_agent, node, docfile("LocalUser"))
    assert rc == 0, err
    assert open(node.shadow).read() == shadow
    assert key in open(node.ak).read()
    left = sorted(n for n in os.listdir(node.ssh) if n != "authorized_keys")
    assert left == [".authorized_keys.aks-ssh-access-tmp.000000000003"], left  # a directory is not unlinked


def apply_immutable(run_agent, node, doc, target):
    """apply while target is immutable (chattr +i: EPERM even for root); the test is skipped where the file system
    has no such attribute."""
    if subprocess.run(["chattr", "+i", target], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable attribute (chattr +i failed)")
    try:
        return apply(run_agent, node, doc)
    finally:
        subprocess.run(["chattr", "-i", target], check=True)


@pytest.mark.parametrize("what", ["authorized_keys", ".ssh"])
@pytest.mark.parametrize("mode", ["LocalUser", "Disabled"])
def test_immutable_file_or_dir(run_agent, node, docfile, what, mode):
    """chattr +i (EPERM even for root): "cannot create" (73), not "unsafe path" (77); old file intact."""
    text = old_file(node)
    target = node.ak if what == "authorized_keys" else node.ssh
    rc, _, err = apply_immutable(run_agent, node, docfile(mode), target)
    assert rc == CANTCREAT, (rc, err)
    assert "Operation not permitted" in err, err
    assert open(node.ak).read() == text
    assert sorted(os.listdir(node.ssh)) == ["authorized_keys"]
    assert_unit_part(node, mode)


@pytest.mark.parametrize("what", ["authorized_keys", ".ssh"])
@pytest.mark.parametrize("mode", ["LocalUser", "Disabled"])
def test_immutable_file_or_dir_of_previous_admin(run_agent, node, doc_file, docfile, key, what, mode):
    """The admin changed in the document (bob before, azureuser now) and bob's authorized_keys (or .ssh) is
    immutable: removing his managed block fails with EPERM, "cannot create" (73) as for the admin's own file,
    not "unsafe path" (77); his file byte for byte as it was."""
    rc, _, err = apply(run_agent, node, doc_file(imds_doc("LocalUser", [key], user="bob")))
    assert rc == 0, err
    with open(node.bob_ak, "rb") as f:
        text = f.read()
    assert key.encode() in text
    target = node.bob_ak if what == "authorized_keys" else os.path.dirname(node.bob_ak)
    rc, _, err = apply_immutable(run_agent, node, docfile(mode), target)
    assert rc == CANTCREAT, (rc, err)
    assert "Operation not permitted" in err, err
    with open(node.bob_ak, "rb") as f:
        assert f.read() == text
    assert_unit_part(node, mode)
