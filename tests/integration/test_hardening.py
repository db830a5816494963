"""Hardening against a hostile review (issue 11): each test reproduces one attack on an offline --root and
asserts it is held, with the plain and the ASan build (`agent` / `binary` fixtures).

  1  .ssh creation race: a uid-1000 process flips a root-owned directory in and out of `.ssh` while apply
     creates `.ssh`; the root-owned directory is never chowned or chmodded.
  2  conf.d entries are resolved inside --root (a symlink to a host path is not read from the host).
  3  C1 / DEL in key comments, non-UTF-8 or control characters in adminUsername, escaping of what is printed.
  4  uid-0 admins (67, unit part still applied), admin change (the previous admin's block goes), the mode tag's
     name matched case-insensitively.
  5  homes that are system directories (/, /etc, /root, ...) → 77, nothing created there.
  6  damaged managed blocks (orphan BEGIN, stray END) reported and left byte for byte; a user line starting
     with the BEGIN marker kept; a file without a final newline gets its bytes back exactly.
  7  ECDSA / sk-ECDSA points off their curve rejected, with ssh-keygen as the oracle.
  8  FIFO / device as config or etc/passwd, capped logging of rejected entries, deadline_s clamped below the
     unit's TimeoutStartSec, a 2 MiB response header handled as a bad response.
"""
import base64
import json
import os
import re
import stat
import struct
import subprocess
import time

import pytest

from conftest import KEYS_BEGIN as BEGIN, KEYS_END as END, REPO, imds_doc

USER_UID = 1000


def apply(agent, root, doc, *extra, **kw):
    return agent(["apply", "--root", root.root, "--imds-file", doc, *extra], **kw)


# --------------------------------------------------------------------------------------------------------------
# 1. .ssh creation race


# The attacker, in C so that it is fast enough to hit the window between mkdirat and openat: as uid 1000, move
# the root-owned bait directory to .ssh and back in a loop. rename(bait, .ssh) also replaces an empty .ssh the
# agent just made; the bait itself is never replaced (it is not empty).
FLIPPER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
        /* The home's fd is taken as root: the test's tmp directories above it are root-only. */
        int home = argc == 2 ? open(argv[1], O_PATH | O_DIRECTORY) : -1;
        if (home < 0 || setgid(1000) < 0 || setuid(1000) < 0)
                return 2;
        if (renameat(home, "rootdir", home, "rootdir") < 0) {
                perror("flipper: cannot rename as uid 1000");
                return 3;
        }
        for (;;) {
                (void) renameat(home, "rootdir", home, ".ssh");
                (void) renameat(home, ".ssh", home, "rootdir");
        }
}
"""


@pytest.fixture(scope="module")
def flipper(tmp_path_factory):
    d = tmp_path_factory.mktemp("flipper")
    src = d / "flipper.c"
    src.write_text(FLIPPER_C)
    subprocess.run(["cc", "-O2", "-o", str(d / "flipper"), str(src)], check=True)
    os.chmod(d, 0o755)
    return str(d / "flipper")


def test_ssh_dir_race_never_chowns_a_root_owned_directory(agent, scratch_root, keygen, doc_file, flipper):
    r = scratch_root()
    pub, _ = keygen("ed25519")
    doc = doc_file(imds_doc("LocalUser", [pub]))
    bait = os.path.join(r.home, "rootdir")
    os.mkdir(bait, 0o700)
    with open(os.path.join(bait, "keep"), "w") as f:
        f.write("root's\n")
    ino = os.lstat(bait).st_ino
    budget = float(os.environ.get("AKS_RACE_BUDGET_S", "12"))
    proc = subprocess.Popen([flipper, r.home])
    time.sleep(0.1)
    assert proc.poll() is None, "the attacker could not start"
    runs, outcomes = 0, {}
    try:
        end = time.monotonic() + budget
        while time.monotonic() < end or runs < 20:
            res = apply(agent, r, doc)
            runs += 1
            outcomes[res.rc] = outcomes.get(res.rc, 0) + 1
            assert res.rc in (0, 73, 77), res  # 73/77: the race was seen and refused
            # Wherever the bait is right now, it is root's, untouched.
            for p in (bait, r.ssh_dir):
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                if st.st_ino == ino:
                    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o700), (runs, res)
            # The agent's own .ssh (if it won) goes, so that the next run creates it again. Taken out of the
            # flipper's reach first (one rename), so that what is removed is what was checked: the bait
            # itself can be at .ssh at any instant, and goes back to its name if it was the one moved.
            aside = os.path.join(r.home, f"aside-{runs}")
            try:
                os.rename(r.ssh_dir, aside)
            except FileNotFoundError:
                continue
            if os.lstat(aside).st_ino == ino:
                os.rename(aside, bait)
            else:
                subprocess.run(["rm", "-rf", aside], check=True)
    finally:
        proc.kill()
        proc.wait()
    # The bait ended where it was and as it was.
    st = os.lstat(bait if os.path.lexists(bait) else r.ssh_dir)
    assert st.st_ino == ino and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
    print(f"{runs} applies raced: exit codes {outcomes}")


def test_ssh_dir_left_by_a_killed_run_is_finished(agent, scratch_root, keygen, doc_file):
    # What a run killed between mkdirat and fchown leaves: a root-owned empty .ssh of mode 0000.
    r = scratch_root()
    pub, _ = keygen("ed25519")
    os.mkdir(r.ssh_dir)
    os.chmod(r.ssh_dir, 0)
    res = apply(agent, r, doc_file(imds_doc("LocalUser", [pub])))
    assert res.rc == 0, res
    st = os.lstat(r.ssh_dir)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (USER_UID, 0o700)
    assert os.lstat(r.ak).st_uid == USER_UID


# --------------------------------------------------------------------------------------------------------------
# 4. the admin's identity


def add_user(r, name, uid, home=None, mkhome=True):
    home = home or f"/home/{name}"
    with open(os.path.join(r.root, "etc/passwd"), "a") as f:
        f.write(f"{name}:x:{uid}:{uid}::{home}:/bin/bash\n")
    path = os.path.join(r.root, home.lstrip("/"))
    if mkhome and not os.path.isdir(path):
        os.makedirs(path)
        os.chown(path, uid, uid)
        os.chmod(path, 0o755)
    return path


@pytest.mark.parametrize("admin", ["root", "toor"])
@pytest.mark.parametrize("mode", ["LocalUser", "Disabled"])
def test_uid0_admin_refused_unit_part_applied(agent, scratch_root, keygen, doc_file, admin, mode):
    r = scratch_root()
    add_user(r, "toor", 0, home="/root", mkhome=False)
    pub, _ = keygen("ed25519")
    doc = imds_doc(mode, [pub], user=admin, path="/root/.ssh/authorized_keys")
    res = apply(agent, r, doc_file(doc))
    assert res.rc == 67, res
    assert "uid 0" in res.err, res
    assert not os.path.lexists(os.path.join(r.root, "root/.ssh")), "nothing written into root's home"
    assert r.is_enabled("ssh.service") == ("masked" if mode == "Disabled" else "enabled")
    st = json.load(open(os.path.join(r.root, "var/lib/aks-ssh-access/state.json")))
    assert st["mode"] == mode and st["keys"] == [] and "user" not in st, st


def test_uid0_admin_after_a_real_admin(agent, run_agent, binary, scratch_root, keygen, doc_file):
    # azureuser was the admin; now the document names root: azureuser's keys go, root's home is not touched,
    # and verify does not go looking into root's home afterwards.
    r = scratch_root()
    pub, _ = keygen("ed25519")
    assert apply(agent, r, doc_file(imds_doc("LocalUser", [pub]))).rc == 0
    res = apply(agent, r, doc_file(imds_doc("LocalUser", [pub], user="root", path="/root/.ssh/authorized_keys")))
    assert res.rc == 67, res
    assert open(r.ak).read() == ""
    assert not os.path.lexists(os.path.join(r.root, "root/.ssh"))
    rc, out, err = run_agent(["verify", "--root", r.root], bin=binary)
    assert rc == 0 and out.startswith("in sync"), (rc, out, err)


def test_admin_change_removes_previous_admins_block(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    bob_home = add_user(r, "bob", 1001)
    pub1, fp1 = keygen("ed25519")
    pub2, fp2 = keygen("ed25519")
    os.makedirs(r.ssh_dir)
    own = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn azure@own\n"
    with open(r.ak, "w") as f:
        f.write(own)
    for p in (r.ssh_dir, r.ak):
        os.chown(p, USER_UID, USER_UID)
    os.chmod(r.ssh_dir, 0o700)
    os.chmod(r.ak, 0o600)
    assert apply(agent, r, doc_file(imds_doc("LocalUser", [pub1]))).rc == 0
    assert pub1 in open(r.ak).read()
    res = apply(agent, r, doc_file(imds_doc("LocalUser", [pub2], user="bob")))
    assert res.rc == 0, res
    assert open(r.ak).read() == own, "the previous admin's block goes, their own line stays byte for byte"
    bob_ak = open(os.path.join(bob_home, ".ssh/authorized_keys")).read()
    assert pub2 in bob_ak and pub1 not in bob_ak
    v = agent(["verify", "--root", r.root])
    assert v.rc == 0, v
    st = json.load(open(os.path.join(r.root, "var/lib/aks-ssh-access/state.json")))
    assert st["user"] == "bob" and [k["fingerprint"] for k in st["keys"]] == [fp2]


def test_admin_change_to_refused_admin_still_removes_previous_block(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    pub1, _ = keygen("ed25519")
    assert apply(agent, r, doc_file(imds_doc("LocalUser", [pub1]))).rc == 0
    res = apply(agent, r, doc_file(imds_doc("LocalUser", [pub1], user="nosuchuser")))
    assert res.rc == 67, res
    assert open(r.ak).read() == "", "azureuser is no longer the admin: its managed keys are gone"
    st = json.load(open(os.path.join(r.root, "var/lib/aks-ssh-access/state.json")))
    assert st["user"] == "nosuchuser" and st["keys"] == []


@pytest.mark.parametrize("name", ["AKS-MANAGED-SSH-ACCESS", "Aks-Managed-Ssh-Access"])
def test_mode_tag_name_case_insensitive(agent, scratch_root, doc_file, name):
    r = scratch_root()
    res = apply(agent, r, doc_file(imds_doc("Disabled", [], tag=name)))
    assert res.rc == 0, res
    assert r.is_enabled("ssh.service") == "masked"
    assert r.is_enabled("ssh.socket") == "masked"


# --------------------------------------------------------------------------------------------------------------
# 2. conf.d inside --root;  8. config / passwd only as regular files


def test_confd_symlink_resolved_inside_root(agent, scratch_root, tmp_path, doc_file):
    r = scratch_root()
    # A file on the "build host" (outside the root) and one at the same path inside the root.
    host = tmp_path / "host-only.conf"
    host.write_text("host_secret_setting = 1\nfallback_mode = localuser\n")
    inside = os.path.join(r.root, str(host).lstrip("/"))
    os.makedirs(os.path.dirname(inside))
    with open(inside, "w") as f:
        f.write("fallback_mode = disabled\n")
    confd = os.path.join(r.root, "etc/aks-ssh-access.conf.d")
    os.makedirs(confd)
    os.symlink(str(host), os.path.join(confd, "50-link.conf"))
    os.symlink("/etc/nonexistent.conf", os.path.join(confd, "60-dangling.conf"))
    res = apply(agent, r, doc_file("{not json"))
    assert "host_secret_setting" not in res.err, "a host file was read through a symlink in the image"
    assert res.rc == 65, res
    assert r.is_enabled("ssh.service") == "masked", "the root's own file (fallback_mode = disabled) was used"


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
@pytest.mark.parametrize("where", ["etc/aks-ssh-access.conf", "etc/aks-ssh-access.conf.d/10-x.conf", "--config"])
def test_config_not_a_regular_file(agent, scratch_root, tmp_path, kind, where, doc_file):
    r = scratch_root()
    path = str(tmp_path / "cfg") if where == "--config" else os.path.join(r.root, where)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero
    else:
        os.mkdir(path)
    extra = ["--config", path] if where == "--config" else []
    res = apply(agent, r, doc_file(imds_doc("Disabled", [])), *extra, timeout=20)
    assert res.rc != "timeout", f"a {kind} as configuration hung the agent"
    assert "not a regular file" in res.err, res
    if where == "--config":
        assert res.rc == 64, res  # an explicit --config must be readable
    else:
        assert res.rc == 0 and r.is_enabled("ssh.service") == "masked", res


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_passwd_not_a_regular_file(agent, scratch_root, keygen, doc_file, kind):
    r = scratch_root()
    pub, _ = keygen("ed25519")
    p = os.path.join(r.root, "etc/passwd")
    os.unlink(p)
    if kind == "fifo":
        os.mkfifo(p)
    else:
        os.mknod(p, 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    res = apply(agent, r, doc_file(imds_doc("LocalUser", [pub])), timeout=20)
    assert res.rc == 67, res
    assert "not a regular file" in res.err, res
    assert r.is_enabled("ssh.service") == "enabled"


# --------------------------------------------------------------------------------------------------------------
# 5. homes that are system directories


@pytest.mark.parametrize("home", ["/", "/etc", "/root", "/usr/lib", "/var/lib", "/home", "/etc/ssh"])
@pytest.mark.parametrize("mode", ["LocalUser", "Disabled"])
def test_system_directory_home_refused(agent, scratch_root, keygen, doc_file, home, mode):
    r = scratch_root()
    os.makedirs(os.path.join(r.root, home.lstrip("/")), exist_ok=True)
    with open(os.path.join(r.root, "etc/passwd"), "w") as f:
        f.write(f"root:x:0:0:root:/root:/bin/bash\nazureuser:x:1000:1000::{home}:/bin/bash\n")
    pub, _ = keygen("ed25519")
    ak = os.path.join(home, ".ssh/authorized_keys")
    res = apply(agent, r, doc_file(imds_doc(mode, [pub], path=ak)))
    assert res.rc == 77, res
    assert "system directory" in res.err, res
    assert not os.path.lexists(os.path.join(r.root, home.lstrip("/"), ".ssh")), "nothing created there"
    assert r.is_enabled("ssh.service") == ("masked" if mode == "Disabled" else "enabled")


# --------------------------------------------------------------------------------------------------------------
# 6. authorized_keys edge cases


def user_file(r, data):
    os.makedirs(r.ssh_dir, exist_ok=True)
    with open(r.ak, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    for p in (r.ssh_dir, r.ak):
        os.chown(p, USER_UID, USER_UID)
    os.chmod(r.ssh_dir, 0o700)
    os.chmod(r.ak, 0o600)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("own", [b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn own@laptop",
                                 b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn own@laptop\r",
                                 b"# only a comment, no newline", b"x"])
def test_no_final_newline_bytes_back_exactly(agent, scratch_root, keygen, doc_file, own):
    r = scratch_root()
    user_file(r, own)
    pub, _ = keygen("ed25519")
    assert apply(agent, r, doc_file(imds_doc("LocalUser", [pub]))).rc == 0
    text = read_bytes(r.ak)
    assert text.startswith(own + b"\n" + BEGIN.encode() + b"\n") and pub.encode() in text
    assert subprocess.run(["ssh-keygen", "-lf", r.ak], capture_output=True).returncode == 0
    assert apply(agent, r, doc_file(imds_doc("Disabled", []))).rc == 0
    assert read_bytes(r.ak) == own, "LocalUser → Disabled gives the file's bytes back exactly"


def test_line_starting_with_begin_marker_is_kept(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    own = f"{BEGIN} -- my note, not the agent's\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn own@laptop\n"
    user_file(r, own)
    pub, _ = keygen("ed25519")
    assert apply(agent, r, doc_file(imds_doc("LocalUser", [pub]))).rc == 0
    assert apply(agent, r, doc_file(imds_doc("Disabled", []))).rc == 0
    assert open(r.ak).read() == own


DAMAGED = {
    "orphan-begin": (lambda stale: f"ssh-ed25519 AAAAown own\n{BEGIN}\n{stale}\n", 2, "BEGIN marker without END"),
    "stray-end": (lambda stale: f"# BEGIN aks-ssh-access (hand-edited)\n{stale}\n{END}\nmine\n", 3,
                  "END marker without BEGIN"),
    "nested": (lambda stale: f"{BEGIN}\n{stale}\n{BEGIN}\n{stale}\n{END}\n", 1, "BEGIN marker without END"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
@pytest.mark.parametrize("mode", ["Disabled", "LocalUser"])
def test_damaged_block_left_and_reported(agent, run_agent, binary, scratch_root, keygen, doc_file, case, mode):
    r = scratch_root()
    stale, _ = keygen("ed25519")
    pub, _ = keygen("ed25519")
    make, line, what = DAMAGED[case]
    # First a clean apply (so the state names the user), then the damage, then the apply under test.
    assert apply(agent, r, doc_file(imds_doc("LocalUser", [stale]))).rc == 0
    text = make(stale)
    user_file(r, text)
    res = apply(agent, r, doc_file(imds_doc(mode, [pub])))
    assert res.rc == 65, res
    assert "damaged" in res.err and f"line {line}" in res.err and what in res.err, res
    assert open(r.ak).read() == text, "nothing in the damaged file changed"
    assert r.is_enabled("ssh.service") == ("masked" if mode == "Disabled" else "enabled"), "unit part applied"
    rc, out, err = run_agent(["verify", "--root", r.root], bin=binary)  # verify's drift says it on stdout
    assert rc == 1 and "damaged" in out and f"line {line}" in out, (rc, out, err)
    assert len(out.splitlines()[0]) <= 80, out
    s = agent(["status", "--root", r.root])
    assert "damaged block" in s.out and what in s.out, s


# --------------------------------------------------------------------------------------------------------------
# 3. clean text


def control_bytes(b):
    """C0 (except LF and tab), DEL and C1 (UTF-8 encoded or raw) bytes found in output bytes."""
    text = b.decode("utf-8", errors="surrogateescape")
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f or 0xdc80 <= ord(c) <= 0xdcff]


@pytest.mark.parametrize("bad", ["\u0085", "\u009b2J", "\u007f", "\u0080"])
def test_c1_or_del_in_key_comment_rejects_entry(agent, scratch_root, keygen, doc_file, bad):
    r = scratch_root()
    good, fp = keygen("ed25519")
    evil = keygen("ed25519")[0] + " evil" + bad
    doc = doc_file(imds_doc("LocalUser", [good, evil]))
    dry = agent(["apply", "--dry-run", "--root", r.root, "--imds-file", doc])
    show = agent(["show-imds", "--root", r.root, "--imds-file", doc])
    res = apply(agent, r, doc)
    assert res.rc == 65 and "publicKeys[1]" in res.err and "control character" in res.err, res
    assert bad not in open(r.ak, encoding="utf-8").read() and good in open(r.ak).read()
    for out in (dry.out, show.out, res.out):
        assert bad not in out
    st = agent(["status", "--root", r.root])
    assert not control_bytes(st.out.encode()), st


@pytest.mark.parametrize("name", [b"azure\xffuser", b"azure\xc2\x9buser", b"azure\\u009buser", b"azure\\u007fuser",
                                  b"azure\\u001buser"])
def test_bad_admin_username_rejects_document(agent, scratch_root, tmp_path, name):
    r = scratch_root()
    doc = json.dumps(imds_doc("LocalUser", [], user="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", name)
    p = tmp_path / "doc.json"
    p.write_bytes(doc)
    res = apply(agent, r, str(p))
    assert res.rc == 65 and "adminUsername" in res.err, res
    assert r.is_enabled("ssh.service") == "masked", "invalid document → fallback Disabled"
    raw = read_bytes(os.path.join(r.root, "var/lib/aks-ssh-access/state.json"))
    raw.decode("utf-8")  # valid UTF-8
    assert b"azure" not in raw


def test_status_escapes_text_from_disk(agent, run_agent, binary, scratch_root, keygen, doc_file):
    r = scratch_root()
    pub, _ = keygen("ed25519")
    assert apply(agent, r, doc_file(imds_doc("LocalUser", [pub]))).rc == 0
    sp = os.path.join(r.root, "var/lib/aks-ssh-access/state.json")
    st = json.load(open(sp))
    st["last_result"] = "ok\u001b]0;pwned\u0007\u009b2J"
    st["last_source"] = "imds\u0085"
    st["keys"][0]["comment"] = "c\u009b"
    with open(sp, "w") as f:
        json.dump(st, f)
    # a hand-edited managed block: a key line with a C1 comment
    text = open(r.ak).read().replace(pub, pub + " \u009b31mred")
    with open(r.ak, "w") as f:
        f.write(text)
    for args in (["status"], ["status", "--json"], ["verify"]):
        rc, out, err = run_agent(args + ["--root", r.root], bin=binary)
        raw = out.encode("utf-8", errors="surrogateescape")
        assert not control_bytes(raw), (args, out)
        if "--json" in args:
            json.loads(raw.decode("utf-8"))


# --------------------------------------------------------------------------------------------------------------
# 8. resources and time


def test_million_rejected_entries_log_a_count(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    good, _ = keygen("ed25519")
    n = 120_000  # what fits in the 4 MiB body cap
    doc = imds_doc("LocalUser", [good])
    doc["compute"]["publicKeys"] += [{"keyData": "x", "path": "/"}] * n
    res = apply(agent, r, doc_file(doc), timeout=120)
    assert res.rc == 65, res
    lines = res.err.splitlines()
    assert sum("Rejected publicKeys[" in l for l in lines) == 10, res
    assert f"Rejected {n - 10} more publicKeys entries" in res.err, res
    assert len(lines) < 20, f"{len(lines)} stderr lines"
    assert good in open(r.ak).read()


def test_deadline_clamped_below_the_units_start_timeout(agent, scratch_root, doc_file, config_file):
    unit = open(os.path.join(REPO, "units/aks-ssh-access.service")).read()
    timeout = int(re.search(r"^TimeoutStartSec=(\d+)\s*$", unit, re.M).group(1))
    r = scratch_root()
    res = apply(agent, r, doc_file(imds_doc("Disabled", [])), "--config", config_file("deadline_s = 3600\n"))
    assert res.rc == 0, res
    m = re.search(r"deadline_s = 3600 is more than (\d+) s .*using (\d+) s", res.err)
    assert m, res
    clamp = int(m.group(2))
    assert clamp + 30 <= timeout, f"deadline {clamp} s leaves less than 30 s of TimeoutStartSec={timeout} for the fallback"
    assert f"TimeoutStartSec={timeout} " in res.err, "the agent's idea of the unit's timeout matches the unit file"


def test_deadline_is_honoured_as_clamped(agent, scratch_root, tmp_path, config_file, emulator):
    # A real run against an IMDS that always fails: with deadline_s = 2 the fallback comes within ~2 s.
    r = scratch_root()
    e = emulator(script=[{"status": 500, "body": "", "repeat": 1000}])
    res = agent(["apply", "--root", r.root, "--imds-url", e.url, "--config", config_file("deadline_s = 2\n")], timeout=60)
    assert res.rc == 69 and res.elapsed < 10, res
    assert r.is_enabled("ssh.service") == "masked"


def test_huge_response_header_is_a_bad_response_and_retried(agent, scratch_root, tmp_path, emulator, keygen):
    r = scratch_root()
    pub, _ = keygen("ed25519")
    doc = imds_doc("LocalUser", [pub])
    e = emulator(doc=doc, script=[{"status": 200, "body": doc, "headers": {"X-Big": "a" * (2 << 20)}}])
    res = agent(["apply", "--root", r.root, "--imds-url", e.url], timeout=60)
    assert "out of memory" not in res.err, res
    assert res.rc == 0, res
    assert len(e.requests()) == 2, "the bad answer was retried once, then the document came"
    assert pub in open(r.ak).read()


# --------------------------------------------------------------------------------------------------------------
# 7. ECDSA points on their curve, ssh-keygen as the oracle


def ssh_string(b):
    return struct.pack(">I", len(b)) + b


def parse_strings(blob):
    out, i = [], 0
    while i < len(blob):
        n = struct.unpack(">I", blob[i:i + 4])[0]
        out.append(blob[i + 4:i + 4 + n])
        i += 4 + n
    return out


def ecdsa_variants(keygen, bits):
    """(name, key line, should be valid) for a real key of that size and points derived from it."""
    pub, _ = keygen("ecdsa", bits)
    kind, b64 = pub.split()[:2]
    _, curve, point = parse_strings(base64.b64decode(b64))
    plen = (len(point) - 1) // 2
    x, y = point[1:1 + plen], point[1 + plen:]

    def line(t, pt, extra=b""):
        blob = ssh_string(t.encode()) + ssh_string(curve) + ssh_string(pt) + extra
        return f"{t} {base64.b64encode(blob).decode()} test"

    y_off = y[:-1] + bytes([y[-1] ^ 1])
    p = {"nistp256": 2**256 - 2**224 + 2**192 + 2**96 - 1, "nistp384": 2**384 - 2**128 - 2**96 + 2**32 - 1,
         "nistp521": 2**521 - 1}[curve.decode()]
    y_neg = (p - int.from_bytes(y, "big")).to_bytes(plen, "big")  # (x, -y) is on the curve too
    out = [
        ("valid", pub, True),
        ("y off by one bit", line(kind, b"\x04" + x + y_off), False),
        ("x zero", line(kind, b"\x04" + bytes(plen) + y), False),
        ("all zero", line(kind, b"\x04" + bytes(2 * plen)), False),
        ("y = p + y", line(kind, b"\x04" + x + (p + int.from_bytes(y, "big")).to_bytes(plen + 1, "big")[1:]), None),
        ("negated y", line(kind, b"\x04" + x + y_neg), True),
    ]
    if curve == b"nistp256":
        sk = "sk-ecdsa-sha2-nistp256@openssh.com"
        out += [("sk valid", line(sk, point, ssh_string(b"ssh:")), True),
                ("sk y off", line(sk, b"\x04" + x + y_off, ssh_string(b"ssh:")), False)]
    return out


def keygen_accepts(tmp_path, line):
    p = tmp_path / "oracle.pub"
    p.write_text(line + "\n")
    return subprocess.run(["ssh-keygen", "-l", "-f", str(p)], capture_output=True).returncode == 0


@pytest.mark.parametrize("bits", [256, 384, 521])
def test_ecdsa_point_on_curve_agrees_with_ssh_keygen(agent, scratch_root, keygen, tmp_path, bits, doc_file):
    r = scratch_root()
    cases = [c for c in ecdsa_variants(keygen, bits)]
    for name, line, expect in cases:
        oracle = keygen_accepts(tmp_path, line)
        if expect is not None:
            assert oracle == expect, f"the oracle itself: {name}"
        res = agent(["show-imds", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [line]))])
        accepted = res.rc == 0
        assert accepted == oracle, f"{name}: agent {'accepts' if accepted else 'rejects'}, ssh-keygen {'accepts' if oracle else 'refuses'}: {res}"
        if not accepted:
            assert "rejected [0]" in res.out, res


def test_off_curve_key_never_written(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    (_, bad, _) = ecdsa_variants(keygen, 256)[1]
    res = apply(agent, r, doc_file(imds_doc("LocalUser", [bad])))
    assert res.rc == 65 and "not a valid point" in res.err, res
    assert not os.path.exists(r.ak) or bad.split()[1] not in open(r.ak).read()
