"""verify is the decision against the recorded state: what apply would do for the recorded mode, image record
and generator mask must be nothing (plus Disabled's listener probe). Plain and ASan builds (conftest `agent`)."""
import os

from conftest import sanitizer_report
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
