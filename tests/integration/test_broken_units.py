"""Fail closed per unit (SPEC §4 "Every unit is tried"): one managed unit whose state cannot be read (a
dangling or looping link, a FIFO, a 5 MiB one-line file, a directory at its name) does not stop the others.
Disabled masks every other managed unit (and replaces a broken link at the name with the mask, as
`systemctl mask --force` does; a file, FIFO or directory is never replaced), LocalUser brings every other
unit to its state and leaves the broken one alone, and the exit is non-zero with a last stderr line naming
the broken unit. `systemctl --root` is the oracle for every end state; each case runs with the plain and the
ASan build (conftest `agent`)."""
import json
import os
import stat

import pytest

KINDS = ["dangling", "loop", "fifo", "big", "dir"]
LINK_KINDS = ("dangling", "loop")


def make_broken(root, kind, name="sshd.socket"):
    p = os.path.join(root.root, "etc/systemd/system", name)
    if kind == "dangling":
        os.symlink("/usr/lib/systemd/system/gone.socket", p)
    elif kind == "loop":
        os.symlink(f"/etc/systemd/system/{name}", p)
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "big":
        with open(p, "wb") as f:  # one 5 MiB line: longer than systemd's line limit
            f.write(b"x" * (5 << 20))
    elif kind == "dir":
        os.mkdir(p)
    return p


def describe(path):
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    return (stat.S_IFMT(st.st_mode), st.st_size if stat.S_ISREG(st.st_mode) else 0)


def state_of(root):
    with open(os.path.join(root.root, "var/lib/aks-ssh-access/state.json")) as f:
        return json.load(f)


def assert_names_broken(res, unit="sshd.socket"):
    assert res.rc == 70, res
    last = res.err.strip().splitlines()[-1]
    assert unit in last and "broken" in last, res


@pytest.mark.parametrize("kind", KINDS)
def test_disabled_masks_every_other_unit(agent, scratch_root, mode_doc, kind):
    r = scratch_root()
    p = make_broken(r, kind)
    before = describe(p)
    res = agent(["apply", "--root", r.root, "--imds-file", mode_doc("Disabled")])
    assert_names_broken(res)
    for u in ("ssh.service", "sshd.service", "ssh.socket"):
        assert r.is_enabled(u) == "masked", (u, res)
    assert not os.path.lexists(os.path.join(r.root, "etc/systemd/system/multi-user.target.wants/ssh.service"))
    if kind in LINK_KINDS:
        assert r.is_enabled("sshd.socket") == "masked", "a broken link at the name is replaced by the mask"
        assert os.readlink(p) == "/dev/null"
    else:
        assert describe(p) == before, "a file, FIFO or directory at the name is never replaced"
        if kind != "fifo":  # systemctl itself hangs reading a FIFO
            assert r.is_enabled("sshd.socket") == ""
    s = state_of(r)
    assert s["mode"] == "Disabled"
    assert s["image_ssh"] == {"service": "ssh.service", "socket": "ssh.socket", "service_enabled": True,
                              "socket_enabled": False}
    again = agent(["apply", "--root", r.root, "--imds-file", mode_doc("Disabled")])
    if kind in LINK_KINDS:
        assert again.rc == 0, again
    else:
        assert_names_broken(again)
        for u in ("ssh.service", "sshd.service", "ssh.socket"):
            assert r.is_enabled(u) == "masked", u


@pytest.mark.parametrize("kind", KINDS)
def test_localuser_enables_the_service_and_leaves_the_broken_unit(agent, scratch_root, keygen, mode_doc, kind):
    r = scratch_root(enable=())
    assert r.is_enabled("ssh.service") == "disabled"
    p = make_broken(r, kind)
    before = describe(p)
    k1, f1 = keygen("ed25519")
    res = agent(["apply", "--root", r.root, "--imds-file", mode_doc("LocalUser", [k1])])
    assert_names_broken(res)
    assert (r.is_enabled("ssh.service"), r.is_enabled("sshd.service"), r.is_enabled("ssh.socket")) == \
        ("enabled", "alias", "disabled"), res
    assert describe(p) == before, "LocalUser leaves the broken unit as it is"
    assert f1.split(":")[1] and os.path.exists(r.ak)


@pytest.mark.parametrize("kind", KINDS)
def test_localuser_after_disabled_gives_the_service_back(agent, scratch_root, mode_doc, kind):
    r = scratch_root()
    p = make_broken(r, kind)
    agent(["apply", "--root", r.root, "--imds-file", mode_doc("Disabled")])
    res = agent(["apply", "--root", r.root, "--imds-file", mode_doc("LocalUser")])
    assert (r.is_enabled("ssh.service"), r.is_enabled("sshd.service"), r.is_enabled("ssh.socket")) == \
        ("enabled", "alias", "disabled"), res
    if kind in LINK_KINDS:
        assert res.rc == 0, res
        assert not os.path.lexists(p), "the mask that replaced the broken link is removed"
    else:
        assert_names_broken(res)


def test_socket_activated_image_with_a_dangling_link_records_the_socket(agent, scratch_root, mode_doc):
    """Issue 10: ssh.socket enabled, ssh.service disabled, a dangling sshd.socket link. The first apply took an
    empty image record (and LocalUser then enabled the service); the record must say socket activation."""
    r = scratch_root(enable=("ssh.socket",))
    make_broken(r, "dangling")
    res = agent(["apply", "--root", r.root, "--imds-file", mode_doc("Disabled")])
    assert_names_broken(res)
    assert state_of(r)["image_ssh"] == {"service": "ssh.service", "socket": "ssh.socket", "service_enabled": False,
                                        "socket_enabled": True}
    for u in ("ssh.service", "ssh.socket", "sshd.socket"):
        assert r.is_enabled(u) == "masked", u
    res = agent(["apply", "--root", r.root, "--imds-file", mode_doc("LocalUser")])
    assert res.rc == 0, res
    assert (r.is_enabled("ssh.service"), r.is_enabled("ssh.socket")) == ("disabled", "enabled")


def test_broken_unit_shows_in_verify_and_status(agent, run_agent, binary, scratch_root, mode_doc):
    r = scratch_root()
    make_broken(r, "dir")
    agent(["apply", "--root", r.root, "--imds-file", mode_doc("Disabled")])
    rc, out, _ = run_agent(["verify", "--root", r.root], bin=binary)  # verify says it on stdout
    assert rc == 1 and out.startswith("drift: sshd.socket"), out
    rc, out, _ = run_agent(["status", "--json", "--root", r.root], bin=binary)
    st = json.loads(out)
    assert st["units"]["sshd.socket"]["file_state"] == "bad"
    assert st["units"]["ssh.service"]["file_state"] == "masked"


def test_also_socket_in_the_service_never_leaves_both_enabled(agent, scratch_root, mode_doc):
    """Issue 11 item 5: `Also=ssh.socket` in ssh.service's [Install] makes `enable ssh.service` enable the
    socket too; LocalUser (service mode) must end with the service enabled and the socket not."""
    from conftest import DEBIAN_SSH_SERVICE, DEBIAN_SSH_SOCKET
    units = {"ssh.service": DEBIAN_SSH_SERVICE + "Also=ssh.socket\n", "ssh.socket": DEBIAN_SSH_SOCKET}
    r = scratch_root(units=units, enable=())
    assert agent(["apply", "--root", r.root, "--imds-file", mode_doc("Disabled")]).rc == 0
    res = agent(["apply", "--root", r.root, "--imds-file", mode_doc("LocalUser")])
    assert res.rc == 0, res
    assert (r.is_enabled("ssh.service"), r.is_enabled("ssh.socket")) == ("enabled", "disabled"), res
    again = agent(["apply", "--root", r.root, "--imds-file", mode_doc("LocalUser")])
    assert again.rc == 0 and (r.is_enabled("ssh.service"), r.is_enabled("ssh.socket")) == ("enabled", "disabled")
