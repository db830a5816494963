"""systemd's ssh generator (systemd >= 256, TEAM.md design): with usr/lib/systemd/system-generators/
systemd-ssh-generator in the tree, Disabled masks the generator (etc/systemd/system-generators/
systemd-ssh-generator -> /dev/null, recorded in the state as the agent's) and every generator socket name
(sshd-unix-local.socket, ...; `systemctl --root is-enabled` says masked); LocalUser gives back the exact
previous etc/systemd tree. Without the generator nothing of that is done; a generator mask the image builder
made is never removed. Plain and ASan builds (conftest `agent`)."""
import json
import os

import akstest
from conftest import imds_doc

GEN_SOCKETS = ("sshd-unix-local.socket", "sshd-vsock.socket", "sshd-unix-export.socket", "sshd-extra.socket")
MASK = "etc/systemd/system-generators/systemd-ssh-generator"


def tree(top):
    """Every path below top: link target, or type (and a regular file's bytes)."""
    return akstest.snapshot(top, stat_fields=())


def with_generator(root, extra=()):
    d = os.path.join(root.root, "usr/lib/systemd/system-generators")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "systemd-ssh-generator")
    open(p, "w").close()
    os.chmod(p, 0o755)
    # what `make install` (the agent's package in the image) creates; the agent leaves the directory alone
    os.makedirs(os.path.join(root.root, "etc/systemd/system-generators"), exist_ok=True)
    for n in extra:  # generator output of a booted node (an image tree has none)
        g = os.path.join(root.root, "run/systemd/generator")
        os.makedirs(g, exist_ok=True)
        with open(os.path.join(g, n), "w") as f:
            f.write("[Socket]\nListenStream=/run/ssh-extra\n")


def doc(tmp_path, mode):
    p = tmp_path / f"doc-{mode}.json"
    p.write_text(json.dumps(imds_doc(mode, [])))
    return str(p)


def state_of(root):
    with open(os.path.join(root.root, "var/lib/aks-ssh-access/state.json")) as f:
        return json.load(f)


def test_disabled_masks_the_generator_and_its_sockets_localuser_gives_the_tree_back(agent, scratch_root, tmp_path):
    r = scratch_root()
    with_generator(r, extra=("sshd-extra-2.socket",))
    etc = os.path.join(r.root, "etc/systemd")
    before = tree(etc)
    res = agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "Disabled")])
    assert res.rc == 0, res
    assert os.readlink(os.path.join(r.root, MASK)) == "/dev/null"
    for u in GEN_SOCKETS + ("sshd-extra-2.socket", "ssh.service", "ssh.socket"):
        assert r.is_enabled(u) == "masked", u
    assert state_of(r)["generator_masked"] is True
    assert agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "Disabled")]).rc == 0, "in sync"
    res = agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "LocalUser")])
    assert res.rc == 0, res
    assert tree(etc) == before, "the exact previous etc/systemd tree"
    assert r.is_enabled("ssh.service") == "enabled"
    assert "generator_masked" not in state_of(r)


def test_without_the_generator_no_mask_is_made(agent, scratch_root, tmp_path):
    r = scratch_root()
    res = agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "Disabled")])
    assert res.rc == 0, res
    assert not os.path.lexists(os.path.join(r.root, MASK))
    assert not os.path.lexists(os.path.join(r.root, "etc/systemd/system/sshd-unix-local.socket"))
    assert "generator_masked" not in state_of(r)


def test_a_generator_mask_the_image_builder_made_is_never_removed(agent, scratch_root, tmp_path):
    r = scratch_root()
    with_generator(r)
    os.symlink("/dev/null", os.path.join(r.root, MASK))
    assert agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "Disabled")]).rc == 0
    assert "generator_masked" not in state_of(r)
    res = agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "LocalUser")])
    assert res.rc == 0, res
    assert os.readlink(os.path.join(r.root, MASK)) == "/dev/null", "the image builder's own mask stays"
    assert r.is_enabled("ssh.service") == "enabled"


def test_an_empty_file_put_in_place_of_the_agents_mask_is_left_and_no_longer_ours(agent, scratch_root, tmp_path):
    """generator_unmask removes only a symlink to /dev/null: an empty file an admin put at the name (it masks the
    generator too) is not the agent's, so LocalUser leaves it without failing (it used to exit 70: readlinkat on
    a regular file, EINVAL) and the state no longer claims the mask."""
    r = scratch_root()
    with_generator(r)
    assert agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "Disabled")]).rc == 0
    assert state_of(r)["generator_masked"] is True
    os.unlink(os.path.join(r.root, MASK))
    open(os.path.join(r.root, MASK), "w").close()
    res = agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "LocalUser")])
    assert res.rc == 0, res
    assert os.path.isfile(os.path.join(r.root, MASK)) and os.path.getsize(os.path.join(r.root, MASK)) == 0
    assert "generator_masked" not in state_of(r)
    assert r.is_enabled("ssh.service") == "enabled"
