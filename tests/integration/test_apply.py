"""apply/status/verify/show-imds against scratch roots (offline --root mode), with ssh-keygen and
`systemctl --root` as oracles. Every test runs with the normal build and, when AKS_SSH_ACCESS_ASAN_BIN is
set, with the ASan+UBSan build (a sanitizer report fails the test)."""
import fcntl
import json
import os
import stat
import subprocess

import pytest

import akstest
from conftest import KEYS_BEGIN as BEGIN, KEYS_END as END, fingerprints, imds_doc

AZURE_LINUX_UNITS = {
    "sshd.service": "[Unit]\nDescription=OpenSSH Daemon\n[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\n",
    "sshd.socket": "[Unit]\nDescription=OpenSSH Server Socket\n[Socket]\nListenStream=22\nAccept=yes\n[Install]\nWantedBy=sockets.target\n",
}


def strip_block(text):
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("# BEGIN aks-ssh-access"):
            inside = True
        elif inside and line.startswith("# END aks-ssh-access"):
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def snapshot(top):
    """Mode, owner and content of everything below top; regular files with their mtime and inode too (a rewrite
    with the same bytes shows)."""
    return akstest.snapshot(top, file_fields=("st_mtime_ns", "st_ino"))


def own_key_file(root, line, mode=0o600):
    os.makedirs(root.ssh_dir, exist_ok=True)
    os.chown(root.ssh_dir, 1000, 1000)
    os.chmod(root.ssh_dir, 0o700)
    with open(root.ak, "w") as f:
        f.write(line)
    os.chown(root.ak, 1000, 1000)
    os.chmod(root.ak, mode)


def state_of(root):
    with open(os.path.join(root.root, "var/lib/aks-ssh-access/state.json")) as f:
        return json.load(f)


def test_localuser_installs_exactly_the_imds_keys(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    (k1, f1), (k2, f2), (k3, f3) = keygen("ed25519"), keygen("ecdsa", 384), keygen("rsa", 2048)
    mine = keygen("ed25519", name="mine")
    own = f"# my own comment\n{mine[0]}\n"
    own_key_file(r, own)
    rc, out, err = agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1, k2 + "\r\n", k3])))
    assert rc == 0, err
    assert fingerprints(r.ak) == sorted([f1, f2, f3, mine[1]])
    text = open(r.ak).read()
    assert strip_block(text) == own, "bytes outside the block are preserved"
    assert text.startswith(own + BEGIN + "\n") and text.endswith(END + "\n"), "block appended at the end"
    st = os.stat(r.ak)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1000, 1000)
    st = os.stat(r.ssh_dir)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, 1000)
    assert r.is_enabled("ssh.service") == "enabled"
    assert r.is_enabled("ssh.socket") == "disabled"
    s = state_of(r)
    assert s["mode"] == "LocalUser" and s["user"] == "azureuser"
    assert sorted(k["fingerprint"] for k in s["keys"]) == sorted([f1, f2, f3])
    st = os.stat(os.path.join(r.root, "var/lib/aks-ssh-access/state.json"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0)


def test_new_ssh_dir_is_created_0700_owned_by_the_user(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    k1, f1 = keygen("ed25519")
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("localuser", [k1])))
    assert rc == 0, err
    st = os.stat(r.ssh_dir)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 1000, 1000)
    assert open(r.ak).read() == f"{BEGIN}\n{k1}\n{END}\n"
    assert fingerprints(r.ak) == [f1]


def test_users_own_ssh_dir_is_tightened_to_0700_a_root_owned_one_is_left(agent, scratch_root, keygen, doc_file):
    k1, f1 = keygen("ed25519")
    r = scratch_root()
    os.makedirs(r.ssh_dir)
    os.chown(r.ssh_dir, 1000, 1000)
    os.chmod(r.ssh_dir, 0o755)
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))[0] == 0
    assert stat.S_IMODE(os.stat(r.ssh_dir).st_mode) == 0o700
    r2 = scratch_root()
    os.makedirs(r2.ssh_dir)
    os.chmod(r2.ssh_dir, 0o755)  # root-owned: 0700 would lock the user out of it
    assert agent("apply", "--root", r2.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))[0] == 0
    assert stat.S_IMODE(os.stat(r2.ssh_dir).st_mode) == 0o755 and os.stat(r2.ssh_dir).st_uid == 0
    assert fingerprints(r2.ak) == [f1]
    assert (os.stat(r2.ak).st_uid, stat.S_IMODE(os.stat(r2.ak).st_mode)) == (1000, 0o600)


def test_second_apply_changes_nothing(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    k1, _ = keygen("ed25519")
    doc = doc_file(imds_doc("LocalUser", [k1]))
    assert agent("apply", "--root", r.root, "--imds-file", doc)[0] == 0
    before = snapshot(r.root)
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc)
    assert rc == 0, err
    after = snapshot(r.root)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    # Only the state file's last_apply record may change (it is rewritten atomically: new inode).
    assert all(p.startswith("var/lib/aks-ssh-access") or p == "run/aks-ssh-access.lock" for p in changed), changed
    assert before["home/azureuser/.ssh/authorized_keys"] == after["home/azureuser/.ssh/authorized_keys"]


def test_disabled_masks_every_ssh_unit_and_removes_only_managed_keys(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    k1, _ = keygen("ed25519")
    mine, fmine = keygen("ed25519", name="mine")
    own_key_file(r, mine + "\n")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))[0] == 0
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("DISABLED", [k1])))
    assert rc == 0, err
    for u in ("ssh.service", "sshd.service", "ssh.socket"):
        assert r.is_enabled(u) == "masked", u
    assert not os.path.exists(os.path.join(r.root, "etc/systemd/system/multi-user.target.wants/ssh.service"))
    assert open(r.ak).read() == mine + "\n"
    assert fingerprints(r.ak) == [fmine]
    assert agent("verify", "--root", r.root)[0] == 0
    s = state_of(r)
    assert s["mode"] == "Disabled" and s["keys"] == []
    assert s["image_ssh"] == {"service": "ssh.service", "socket": "ssh.socket", "service_enabled": True, "socket_enabled": False}


def test_disabled_then_localuser_restores_the_image_exactly(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    units_dir = os.path.join(r.root, "etc/systemd/system")
    image = snapshot(units_dir)
    k1, f1 = keygen("ed25519")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [])))[0] == 0
    assert r.is_enabled("ssh.service") == "masked"
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))
    assert rc == 0, err
    assert r.is_enabled("ssh.service") == "enabled"
    assert r.is_enabled("sshd.service") == "alias"
    assert r.is_enabled("ssh.socket") == "disabled"
    after = {p: v[3] for p, v in snapshot(units_dir).items()}
    assert after == {p: v[3] for p, v in image.items()}, "the same symlinks as the image had"
    assert fingerprints(r.ak) == [f1]


def test_socket_activated_image_gets_its_socket_back(agent, scratch_root, keygen, doc_file):
    r = scratch_root(enable=("ssh.socket",))
    assert r.is_enabled("ssh.service") == "disabled"
    k1, _ = keygen("ed25519")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [])))[0] == 0
    assert (r.is_enabled("ssh.service"), r.is_enabled("ssh.socket")) == ("masked", "masked")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))[0] == 0
    assert (r.is_enabled("ssh.service"), r.is_enabled("ssh.socket")) == ("disabled", "enabled"), \
        "socket activation restored, never service and socket both"


def test_no_record_and_everything_masked_means_the_service(agent, scratch_root, keygen, doc_file):
    r = scratch_root(enable=("ssh.socket",))
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [])))[0] == 0
    os.unlink(os.path.join(r.root, "var/lib/aks-ssh-access/state.json"))
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [])))[0] == 0
    assert (r.is_enabled("ssh.service"), r.is_enabled("ssh.socket")) == ("enabled", "disabled")


def test_azure_linux_unit_names(agent, scratch_root, keygen, doc_file):
    r = scratch_root(units=AZURE_LINUX_UNITS, enable=("sshd.service",))
    k1, f1 = keygen("ed25519")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [k1])))[0] == 0
    assert (r.is_enabled("sshd.service"), r.is_enabled("sshd.socket")) == ("masked", "masked")
    assert r.is_enabled("ssh.service") == "", "names that do not exist are left alone"
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))[0] == 0
    assert (r.is_enabled("sshd.service"), r.is_enabled("sshd.socket")) == ("enabled", "disabled")
    assert fingerprints(r.ak) == [f1]


def test_symlinked_ssh_dir_is_refused_and_nothing_changes_but_sshd_is_masked(agent, scratch_root, keygen, doc_file, tmp_path):
    r = scratch_root()
    target = os.path.join(r.root, "etc", "elsewhere")
    os.makedirs(target)
    os.symlink(target, r.ssh_dir)
    k1, _ = keygen("ed25519")
    before = snapshot(r.home), snapshot(target)
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [k1])))
    assert rc == 77, err
    assert "symlink" in err
    assert (snapshot(r.home), snapshot(target)) == before
    assert r.is_enabled("ssh.service") == "masked", "the unit part is applied even when the key part is refused"


def test_symlinked_authorized_keys_is_refused(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    own_key_file(r, "")
    os.unlink(r.ak)
    shadow = os.path.join(r.root, "etc", "shadow")
    with open(shadow, "w") as f:
        f.write("root:*:1::::::\n")
    os.symlink("/etc/shadow", r.ak)
    k1, _ = keygen("ed25519")
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))
    assert rc == 77, err
    assert open(shadow).read() == "root:*:1::::::\n"
    assert os.path.islink(r.ak)
    assert r.is_enabled("ssh.service") == "enabled"


def test_path_outside_the_home_is_rejected_valid_entries_applied(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    (k1, f1), (k2, _), (k3, _) = keygen("ed25519"), keygen("ed25519"), keygen("ed25519")
    doc = imds_doc("LocalUser", [k1])
    doc["compute"]["publicKeys"] += [
        {"keyData": k2, "path": "/home/azureuser/.ssh/../../../etc/ssh/authorized_keys"},
        {"keyData": k3, "path": "/root/.ssh/authorized_keys"},
    ]
    rc, out, err = agent("apply", "--root", r.root, "--imds-file", doc_file(doc))
    assert rc == 65, err
    assert "publicKeys[1]" in err and "publicKeys[2]" in err
    assert k2.split()[1] not in err and k3.split()[1] not in err, "never key material in logs"
    assert fingerprints(r.ak) == [f1]
    assert not os.path.exists(os.path.join(r.root, "etc/ssh/authorized_keys"))
    assert not os.path.exists(os.path.join(r.root, "root/.ssh"))


def test_newline_injection_in_keydata_is_rejected(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    (k1, f1), (k2, _) = keygen("ed25519"), keygen("ed25519")
    doc = imds_doc("LocalUser", [k1, k1.split()[0] + " " + k1.split()[1] + "\n" + k2, 'command="/bin/sh" ' + k2])
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(doc))
    assert rc == 65
    assert "publicKeys[1]" in err and "publicKeys[2]" in err
    assert fingerprints(r.ak) == [f1]
    assert "command=" not in open(r.ak).read()


def test_duplicate_keys_are_written_once(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    k1, f1 = keygen("ed25519")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1, k1 + " copy", k1])))[0] == 0
    assert open(r.ak).read() == f"{BEGIN}\n{k1}\n{END}\n"


@pytest.mark.parametrize("bad", ["{not json", json.dumps({"compute": {"osProfile": {}}}),
                                 json.dumps(imds_doc("Sometimes", [])), json.dumps({"compute": {"osProfile": {"adminUsername": "azureuser"}, "publicKeys": {}}})])
def test_invalid_document_fails_closed_without_state(agent, scratch_root, keygen, doc_file, bad):
    r = scratch_root()
    mine, fmine = keygen("ed25519", name="mine")
    own_key_file(r, mine + "\n")
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(bad))
    assert rc == 65
    assert len(err.strip().splitlines()) >= 1 and "invalid document" in err.strip().splitlines()[-1]
    assert r.is_enabled("ssh.service") == "masked" and r.is_enabled("ssh.socket") == "masked"
    assert fingerprints(r.ak) == [fmine], "keys untouched"
    s = state_of(r)
    assert s["last_apply"]["source"] == "fallback" and s["mode"] == "Disabled"


def test_invalid_document_reasserts_the_last_applied_mode(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    k1, f1 = keygen("ed25519")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))[0] == 0
    # someone masks sshd by hand; the fallback re-asserts LocalUser, keys untouched
    subprocess.run(["systemctl", f"--root={r.root}", "disable", "ssh.service"], capture_output=True, check=True)
    subprocess.run(["systemctl", f"--root={r.root}", "mask", "ssh.service"], capture_output=True, check=True)
    rc, _, _ = agent("apply", "--root", r.root, "--imds-file", doc_file("[]"))
    assert rc == 65
    assert r.is_enabled("ssh.service") == "enabled"
    assert fingerprints(r.ak) == [f1]
    assert state_of(r)["last_apply"]["source"] == "fallback"


def test_fallback_mode_setting(agent, scratch_root, doc_file, config_file):
    r = scratch_root()
    rc, _, _ = agent("apply", "--root", r.root, "--imds-file", doc_file("nope"),
                     "--config", config_file("fallback_mode = LocalUser\n"))
    assert rc == 65
    assert r.is_enabled("ssh.service") == "enabled"
    assert state_of(r)["mode"] == "LocalUser"


def test_missing_admin_user_still_masks(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    k1, _ = keygen("ed25519")
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [k1], user="nobody2")))
    assert rc == 67, err
    assert "nobody2" in err
    assert r.is_enabled("ssh.service") == "masked"


def test_dry_run_changes_nothing_and_takes_no_lock(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    os.rmdir(os.path.join(r.root, "run"))
    k1, f1 = keygen("ed25519")
    before = snapshot(r.root)
    rc, out, err = agent("apply", "--dry-run", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [k1])))
    assert rc == 0, err
    assert snapshot(r.root) == before
    assert "mask ssh.service" in out and "stop ssh.service" in out
    rc, out, _ = agent("apply", "--dry-run", "--json", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [k1])))
    plan = json.loads(out)
    assert plan["dry_run"] is True and {"action": "mask", "unit": "ssh.service"} in plan["actions"]
    assert snapshot(r.root) == before


def test_a_second_run_while_the_lock_is_held_exits_75(agent, scratch_root, doc_file):
    r = scratch_root()
    with open(os.path.join(r.root, "run/aks-ssh-access.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(r.root)
        rc, _, err = agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [])))
        assert rc == 75 and len(err.strip().splitlines()) == 1
        assert snapshot(r.root) == before
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [])))[0] == 0


def test_imds_file_unreadable_and_stdin(agent, scratch_root, keygen):
    r = scratch_root()
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", "/nonexistent/doc.json")
    assert rc == 66 and len(err.strip().splitlines()) == 1
    assert r.is_enabled("ssh.service") == "enabled", "a usage mistake applies nothing"
    k1, f1 = keygen("ed25519")
    rc, _, err = agent("apply", "--root", r.root, "--imds-file", "-", input=json.dumps(imds_doc("LocalUser", [k1])))
    assert rc == 0, err
    assert fingerprints(r.ak) == [f1]


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["apply", "--bogus"], ["apply", "--root"],
                                  ["status", "--dry-run"], ["apply", "--imds-url", "ftp://x"],
                                  ["apply", "--imds-url", "http://127.0.0.1:9/", "--imds-file", "-"]])
def test_usage_errors_exit_64_with_one_line(agent, args):
    rc, out, err = agent(*args)
    assert rc == 64
    assert len(err.strip().splitlines()) == 1, err


def test_help_and_version(agent):
    rc, out, _ = agent("--help")
    assert rc == 0 and "show-imds" in out and "77 unsafe path" in out
    rc, out, _ = agent("--version")
    assert rc == 0 and out.startswith("aks-ssh-access ")


def test_config_layering(agent, scratch_root, keygen, doc_file, config_file):
    r = scratch_root()
    k1, f1 = keygen("ed25519")
    doc = imds_doc(None, [k1], extra_tags=[{"name": "my-tag", "value": "Disabled"}, {"name": "other-tag", "value": "LocalUser"}])
    os.makedirs(os.path.join(r.root, "etc/aks-ssh-access.conf.d"))
    with open(os.path.join(r.root, "etc/aks-ssh-access.conf"), "w") as f:
        f.write("mode_tag = other-tag\n")
    with open(os.path.join(r.root, "etc/aks-ssh-access.conf.d/50-x.conf"), "w") as f:
        f.write("# conf.d wins over the main file\nmode_tag = my-tag\n")
    rc, out, _ = agent("show-imds", "--root", r.root, "--imds-file", doc_file(doc))
    assert rc == 0 and out.startswith("Mode:        Disabled")
    rc, out, _ = agent("show-imds", "--root", r.root, "--imds-file", doc_file(doc), "--config", config_file("mode_tag = other-tag\n"))
    assert rc == 0 and out.startswith("Mode:        LocalUser"), "--config wins over conf.d"
    rc, _, err = agent("show-imds", "--root", r.root, "--imds-file", doc_file(doc), "--config", "/nonexistent.conf")
    assert rc == 64


def test_status_json_and_verify_drift(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    rc, out, _ = agent("verify", "--root", r.root)
    assert rc == 2 and out.startswith("unknown:")
    (k1, f1), (k2, f2) = keygen("ed25519"), keygen("ecdsa", 256)
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1, k2])))[0] == 0
    rc, out, _ = agent("status", "--json", "--root", r.root)
    assert rc == 0
    s = json.loads(out)
    assert s["mode"] == "LocalUser" and s["user"] == "azureuser" and s["in_sync"] is True
    assert s["authorized_keys"] == "/home/azureuser/.ssh/authorized_keys"
    assert sorted(k["fingerprint"] for k in s["keys"]) == sorted([f1, f2])
    assert {k["type"] for k in s["keys"]} == {"ssh-ed25519", "ecdsa-sha2-nistp256"}
    assert s["units"]["ssh.service"]["file_state"] == "enabled"
    assert s["last_apply"]["source"] == "file" and s["last_apply"]["result"] == "ok"
    rc, out, _ = agent("status", "--root", r.root)
    assert rc == 0 and f1 in out and "ssh.service" in out

    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", [])))[0] == 0
    assert agent("verify", "--root", r.root)[0] == 0
    subprocess.run(["systemctl", f"--root={r.root}", "unmask", "ssh.service"], capture_output=True, check=True)
    rc, out, _ = agent("verify", "--root", r.root)
    assert rc == 1 and out.startswith("drift:") and "ssh.service" in out and len(out.splitlines()) == 1
    assert json.loads(agent("status", "--json", "--root", r.root)[1])["in_sync"] is False
    rc, out, _ = agent("verify", "--json", "--root", r.root)
    assert rc == 1 and json.loads(out)["result"] == "drift" and "ssh.service" in json.loads(out)["message"]


def test_verify_sees_a_hand_edited_block(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    (k1, _), (k2, _) = keygen("ed25519"), keygen("ed25519")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))[0] == 0
    text = open(r.ak).read().replace(k1, k2)
    with open(r.ak, "w") as f:
        f.write(text)
    rc, out, _ = agent("verify", "--root", r.root)
    assert rc == 1 and "keys" in out


def test_stale_temp_files_of_a_killed_run_are_removed(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    k1, _ = keygen("ed25519")
    own_key_file(r, "")
    stale = os.path.join(r.ssh_dir, ".authorized_keys.aks-ssh-access-tmp.0123456789ab")
    with open(stale, "w") as f:
        f.write("half")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1])))[0] == 0
    assert not os.path.exists(stale)


def test_no_keys_and_no_file_creates_nothing(agent, scratch_root, doc_file):
    r = scratch_root()
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [])))[0] == 0
    assert not os.path.exists(r.ssh_dir)


def test_existing_block_is_replaced_in_place(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    (k1, _), (k2, f2) = keygen("ed25519"), keygen("ed25519")
    own_key_file(r, f"# top\n{BEGIN}\n{k1}\n{END}\n# bottom\n")
    assert agent("apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k2])))[0] == 0
    assert open(r.ak).read() == f"# top\n{BEGIN}\n{k2}\n{END}\n# bottom\n"
    assert fingerprints(r.ak) == [f2]


def test_show_imds(agent, scratch_root, keygen, doc_file):
    r = scratch_root()
    k1, f1 = keygen("ed25519")
    rc, out, _ = agent("show-imds", "--json", "--root", r.root, "--imds-file", doc_file(imds_doc("entraid", [k1, "ssh-dss AAAA"])))
    assert rc == 65
    j = json.loads(out)
    assert j["mode"] == "EntraId" and j["user"] == "azureuser"
    assert [k["fingerprint"] for k in j["keys"]] == [f1]
    assert j["rejected"] == [{"index": 1, "reason": "unsupported key type or key options"}]
    assert not os.path.exists(os.path.join(r.root, "var/lib/aks-ssh-access")), "show-imds writes nothing"
