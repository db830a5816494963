"""verify is the decision against the recorded state: what apply would do for the recorded mode, image record
and generator mask must be nothing (plus Disabled's listener probe). Plain and ASan builds (conftest `agent`)."""
import os
import subprocess

from conftest import imds_doc, sanitizer_report
from test_ssh_generator import MASK, doc, with_generator


def test_a_removed_generator_mask_is_drift_in_disabled(agent, run_agent, binary, scratch_root, tmp_path):
    """The agent's generator mask (state.json generator_masked) removed by hand: systemd-ssh-generator makes
    its sockets again at the next daemon-reload. verify used to compare without the generator (in sync)."""
    r = scratch_root()
    with_generator(r)
    assert agent(["apply", "--root", r.root, "--imds-file", doc(tmp_path, "Disabled")]).rc == 0
    assert agent(["verify", "--root", r.root]).rc == 0
    os.unlink(os.path.join(r.root, MASK))
    rc, out, err = run_agent(["verify", "--root", r.root], bin=binary)  # drift says so on stdout only
    assert sanitizer_report(err) is None, err
    assert (rc, out) == (1, "drift: systemd-ssh-generator is not masked, expected masked for mode Disabled\n"), (rc, out, err)
    res = agent(["verify", "--repair", "--root", r.root])
    assert res.rc == 0 and res.out.startswith("repaired: systemd-ssh-generator is not masked"), res
    assert os.readlink(os.path.join(r.root, MASK)) == "/dev/null"
    assert agent(["verify", "--root", r.root]).rc == 0


def test_a_hand_edit_inside_the_managed_block_is_drift(agent, run_agent, binary, scratch_root, keygen, doc_file):
    """verify compares the block apply would write, byte for byte (it used to compare the set of fingerprints):
    a reordered block or a comment edited inside it is what the next apply or --repair rewrites, so it is drift."""
    r = scratch_root()
    (k1, _), (k2, _) = keygen("ed25519"), keygen("ecdsa", 256)
    assert agent(["apply", "--root", r.root, "--imds-file", doc_file(imds_doc("LocalUser", [k1, k2]))]).rc == 0
    good = open(r.ak).read()
    for edited in (good.replace(k1 + "\n", "").replace(k2 + "\n", k2 + "\n" + k1 + "\n"),  # reordered
                   good.replace(k1 + "\n", k1 + " edited\n")):                               # a comment edited
        assert edited != good
        with open(r.ak, "w") as f:
            f.write(edited)
        rc, out, err = run_agent(["verify", "--root", r.root], bin=binary)
        assert sanitizer_report(err) is None, err
        assert (rc, out) == (1, "drift: managed keys of azureuser differ from the last apply\n"), (rc, out, err)
        res = agent(["verify", "--repair", "--root", r.root])
        assert res.rc == 0 and res.out == "repaired: managed keys of azureuser differ from the last apply\n", res
        assert open(r.ak).read() == good
    assert agent(["verify", "--root", r.root]).rc == 0


def test_a_unit_drift_names_the_units_own_state(agent, run_agent, binary, scratch_root, doc_file):
    """ssh.service enabled again by hand in Disabled: the line names its own state, not that of its alias
    sshd.service ("ssh.service is alias")."""
    r = scratch_root()
    assert agent(["apply", "--root", r.root, "--imds-file", doc_file(imds_doc("Disabled", []))]).rc == 0
    for cmd in (["unmask", "ssh.service", "sshd.service"], ["enable", "ssh.service"]):
        subprocess.run(["systemctl", f"--root={r.root}"] + cmd, capture_output=True, check=True)
    rc, out, err = run_agent(["verify", "--root", r.root], bin=binary)
    assert sanitizer_report(err) is None, err
    assert (rc, out) == (1, "drift: ssh.service is enabled, expected disabled for mode Disabled\n"), (rc, out, err)
