"""IMDS faults end to end (SPEC §2, §3), complementing test_imds.py (which covers retries, permanent refusals,
the request rate, proxies and the body cap with `show-imds`): here every fault goes through `apply`, and each
case asserts the exit code, the documented fallback and the time bound:
  - no state file yet: fallback_mode (disabled) → ssh.service and ssh.socket masked (`systemctl --root
    is-enabled`), the existing authorized_keys (foreign lines + an old managed block) byte-identical and not
    rewritten, the fallback recorded in state.json (source "fallback", the exit code);
  - after a successful LocalUser apply: the fallback re-asserts LocalUser, ssh.service stays enabled, the keys
    stay as that apply left them.
Faults: deeply nested JSON, wrong types in every field, duplicate JSON keys, huge key counts (10 000),
wrong Content-Type, always-truncated bodies, drip-fed bodies, bodies over 4 MiB, redirects to another host,
servers that accept and never answer. Every case runs with the normal build and (when AKS_SSH_ACCESS_ASAN_BIN
is set) the ASan+UBSan build.
"""
import base64
import json
import os
import socket
import struct
import subprocess

import pytest

from conftest import KEYS_BEGIN as BEGIN, KEYS_END as END, TAG, Emulator, imds_doc

DEADLINE = 1
SLACK = 2.0
OK, INVALID, UNAVAILABLE = 0, 65, 69
MAX_BODY = 4 * 1024 * 1024


def synthetic_ed25519(i):
    """A distinct, well-formed ed25519 public key line (ssh-keygen -l accepts it) without running ssh-keygen."""
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + i.to_bytes(8, "big") + bytes(24)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} syn{i}@example"


class Node:
    """A scratch root whose admin already has an authorized_keys: a foreign key and an old managed block."""

    def __init__(self, root, key_old, conf):
        self.r = root
        self.root = root.root
        self.ak = root.ak
        self.conf = conf
        os.makedirs(root.ssh_dir)
        os.chown(root.ssh_dir, 1000, 1000)
        os.chmod(root.ssh_dir, 0o700)
        self.text = (f"{synthetic_ed25519(999999)}\n# the admin's own key above\n"
                     f"{BEGIN}\n{key_old}\n{END}\n")
        with open(self.ak, "w") as f:
            f.write(self.text)
        os.chown(self.ak, 1000, 1000)
        os.chmod(self.ak, 0o600)
        self.ak_stat = os.stat(self.ak)

    def apply(self, agent, url, **kw):
        return agent(["apply", "--root", self.root, "--imds-url", url, "--config", self.conf], **kw)

    def state(self):
        with open(os.path.join(self.root, "var/lib/aks-ssh-access/state.json")) as f:
            return json.load(f)

    def keys_untouched(self):
        st = os.stat(self.ak)
        with open(self.ak) as f:
            assert f.read() == self.text, "keys were touched by a fallback"
        assert (st.st_ino, st.st_mtime_ns) == (self.ak_stat.st_ino, self.ak_stat.st_mtime_ns), "file rewritten"

    def assert_fallback(self, res, code, mode="Disabled", bound=DEADLINE + SLACK):
        assert res.rc == code, res
        assert res.elapsed <= bound, res
        assert "fallback" in res.err.strip().splitlines()[-1], res
        self.keys_untouched()
        if mode == "Disabled":
            assert self.r.is_enabled("ssh.service") == "masked"
            assert self.r.is_enabled("ssh.socket") == "masked"
        else:
            assert self.r.is_enabled("ssh.service") == "enabled"
            assert self.r.is_enabled("ssh.socket") != "masked"
        st = self.state()
        assert st["mode"] == mode
        assert st["last_apply"]["source"] == "fallback" and st["last_apply"]["exit"] == code, st


@pytest.fixture
def key(keygen):
    return keygen("ed25519")


@pytest.fixture
def node(scratch_root, config_file, keygen):
    return Node(scratch_root(), keygen("ed25519", name="old")[0], config_file(f"deadline_s = {DEADLINE}\n"))


@pytest.fixture
def doc(key):
    return imds_doc("LocalUser", [key[0]])


@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory):
    """One emulator for the content cases (starting one per case costs more than the case)."""
    e = Emulator(str(tmp_path_factory.mktemp("shared-emulator")))
    yield e
    e.stop()


@pytest.fixture
def serve(shared_emulator):
    """serve(doc, script=None) -> the shared emulator, now serving doc (dict, str or bytes)."""
    def set_(doc, script=None):
        shared_emulator.set_script(script)
        shared_emulator.set_doc(doc)
        open(shared_emulator.log_path, "w").close()
        return shared_emulator
    return set_


# ------------------------------------------------------------------------------------------------------------
# transport faults through apply: fallback without / with a previous state


TRANSPORT = {
    # name: (script, expected exit)
    "always-truncated": ([{"truncate": 50, "repeat": 1000}], UNAVAILABLE),
    "drip-fed": ([{"drip": True, "delay": 0.3, "repeat": 1000}], UNAVAILABLE),
    "hang": ([{"hang": True, "repeat": 1000}], UNAVAILABLE),
    "close-without-answer": ([{"close": True, "repeat": 1000}], UNAVAILABLE),
    "302": (None, UNAVAILABLE),  # filled in by the test: a redirect to a second emulator
    "301": (None, UNAVAILABLE),
    "1GiB-body": ([{"big": 1 << 30, "repeat": 1000}], INVALID),
    "500-forever": ([{"status": 500, "repeat": 1000}], UNAVAILABLE),
}


def transport_script(name, emulator, doc):
    script, code = TRANSPORT[name]
    other = None
    if script is None:
        other = emulator(doc=doc, bind="127.0.0.2")
        script = [{"redirect": other.url, "status": int(name), "repeat": 1000}]
    return script, code, other


@pytest.mark.parametrize("name", list(TRANSPORT))
def test_transport_fault_without_state_fails_closed(agent, emulator, node, doc, name):
    emu = emulator(doc=doc)
    script, code, other = transport_script(name, emulator, doc)
    emu.set_script(script)
    res = node.apply(agent, emu.url)
    node.assert_fallback(res, code)
    assert len(emu.requests()) >= 1
    if other:
        assert other.requests() == [], "a redirect was followed to another host"


@pytest.mark.parametrize("name", list(TRANSPORT))
def test_transport_fault_reasserts_last_mode(agent, emulator, node, doc, key, name):
    emu = emulator(doc=doc)
    res = node.apply(agent, emu.url)
    assert res.rc == OK, res
    with open(node.ak) as f:
        node.text = f.read()
    assert key[0] in node.text
    node.ak_stat = os.stat(node.ak)
    script, code, other = transport_script(name, emulator, doc)
    emu.set_script(script)
    res = node.apply(agent, emu.url)
    node.assert_fallback(res, code, mode="LocalUser")
    if other:
        assert other.requests() == []


def test_body_over_4_mib_falls_back(agent, serve, node, doc):
    d = dict(doc, pad="")
    d["pad"] = "a" * (MAX_BODY + 1 - len(json.dumps(d)))
    emu = serve(json.dumps(d))
    res = node.apply(agent, emu.url)
    node.assert_fallback(res, INVALID)
    assert len(emu.requests()) == 1, "an oversized body is not retried"


class SilentServer:
    """Listens and accepts TCP connections, reads whatever comes, never answers."""

    def __init__(self, accept):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.conns = []
        self.accept = accept
        self.url = f"http://127.0.0.1:{self.port}/metadata/instance?api-version=2021-08-01&extended=true"

    def pump(self):
        if self.accept:
            self.s.settimeout(0.05)
            try:
                c, _ = self.s.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        for c in self.conns:
            c.close()
        self.s.close()


@pytest.mark.parametrize("accept", [True, False], ids=["accepts", "backlog-only"])
def test_server_that_never_answers(agent, node, accept):
    srv = SilentServer(accept)
    try:
        proc_res = {}
        import threading

        def go():
            proc_res["r"] = node.apply(agent, srv.url)

        th = threading.Thread(target=go)
        th.start()
        while th.is_alive():
            srv.pump()
            th.join(0.01)
        res = proc_res["r"]
    finally:
        srv.close()
    node.assert_fallback(res, UNAVAILABLE)
    assert res.elapsed >= DEADLINE - 0.5, res


# ------------------------------------------------------------------------------------------------------------
# content faults


def nested(depth, leaf="0"):
    return '{"a":' * depth + leaf + "}" * depth


def raw_doc(doc, **compute_raw):
    """doc serialized, with compute members replaced by raw JSON text (for what json.dumps cannot express)."""
    d = json.loads(json.dumps(doc))
    for k in compute_raw:
        d["compute"][k] = f"@@{k}@@"
    text = json.dumps(d)
    for k, v in compute_raw.items():
        text = text.replace(json.dumps(f"@@{k}@@"), v)
    return text


@pytest.mark.parametrize("text_of", [
    lambda doc: "[" * 100000 + "]" * 100000,
    lambda doc: nested(100000),
    lambda doc: raw_doc(doc, extra=nested(5000)),
    lambda doc: raw_doc(doc, publicKeys="[" * 3000 + "]" * 3000),
    lambda doc: raw_doc(doc, extra="[" * 5000),  # unterminated too
], ids=["array-100000", "object-100000", "member-5000", "publicKeys-3000", "unterminated-5000"])
def test_deeply_nested_json_is_invalid(agent, serve, node, doc, text_of):
    emu = serve(text_of(doc))
    res = node.apply(agent, emu.url)
    node.assert_fallback(res, INVALID)


def test_moderately_nested_unrelated_member_is_fine(agent, serve, node, doc, key):
    emu = serve(raw_doc(doc, extra=nested(200)))
    res = node.apply(agent, emu.url)
    assert res.rc == OK, res
    assert key[0] in open(node.ak).read()


# Wrong types in every field: (path in the document, replacement value, expected outcome)
#   invalid  → the whole document is invalid: 65 + fallback
#   rejected → only publicKeys[0] is rejected (named on stderr): 65, LocalUser applied with publicKeys[1]
#   ignored  → the member is not used: 0, LocalUser applied
WRONG = [1, True, None, "", "x", [], {}, [1]]


def type_cases():
    cases = []

    def add(path, expected, skip=()):
        for v in WRONG:
            if any(v is s or (type(v) is type(s) and v == s) for s in skip):
                continue
            cases.append((path, v, expected))

    add(("compute",), "invalid")
    add(("compute", "osProfile"), "invalid")
    add(("compute", "osProfile", "adminUsername"), "invalid", skip=["x"])
    add(("compute", "publicKeys"), "invalid", skip=[[], [1]])
    add(("compute", "publicKeys", 0), "rejected")
    add(("compute", "publicKeys", 0, "keyData"), "rejected")
    add(("compute", "publicKeys", 0, "path"), "rejected")
    add(("compute", "tagsList"), "invalid", skip=[[], [1]])
    add(("compute", "tagsList", -1), "ignored")  # the mode tag entry itself: gone → LocalUser by default
    add(("compute", "tagsList", -1, "name"), "ignored")
    add(("compute", "tagsList", -1, "value"), "invalid")
    add(("compute", "vmId"), "ignored")
    return cases + [((), v, "invalid") for v in (1, "x", None, [], True)]


TYPE_CASES = type_cases()


def mutate(doc, path, value):
    d = json.loads(json.dumps(doc))
    if not path:
        return value
    o = d
    for p in path[:-1]:
        o = o[p]
    o[path[-1]] = value
    return d


@pytest.mark.parametrize("path,value,expected", TYPE_CASES,
                         ids=[".".join(map(str, p)) + "=" + json.dumps(v) for p, v, _ in TYPE_CASES])
def test_wrong_type(agent, serve, node, path, value, expected):
    k0, k1 = [(synthetic_ed25519(i),) for i in (1, 2)]
    # the mode tag is LocalUser and sits last in tagsList; no state yet, so a fallback is Disabled
    doc = imds_doc("LocalUser", [k0[0], k1[0]])
    emu = serve(json.dumps(mutate(doc, path, value)))
    res = node.apply(agent, emu.url, timeout=30)
    if expected == "invalid":
        node.assert_fallback(res, INVALID)
        return
    text = open(node.ak).read()
    assert node.r.is_enabled("ssh.service") == "enabled", res
    assert k1[0] in text, res
    if expected == "rejected":
        assert res.rc == INVALID, res
        assert k0[0] not in text
        assert "publicKeys[0]" in res.err, res
        assert "publicKeys[1]" not in res.err, res
    else:
        assert res.rc == OK, res
        assert k0[0] in text
    assert node.state()["last_apply"]["source"] == "imds"


def test_duplicate_members_first_one_wins(agent, serve, node, doc):
    # RFC 8259 leaves duplicate names undefined; the agent (cJSON) takes the first one. A second "compute" that
    # says LocalUser does not reopen a node the first one closes, and vice versa.
    closed = json.dumps(imds_doc("Disabled", []))
    text = closed[:-1] + ', "compute": ' + json.dumps(doc["compute"]) + "}"
    emu = serve(text)
    res = node.apply(agent, emu.url)
    assert res.rc == OK, res
    assert node.r.is_enabled("ssh.service") == "masked"
    assert node.state()["mode"] == "Disabled"


def test_duplicate_admin_username_first_one_wins(agent, serve, node, key, doc):
    text = json.dumps(doc).replace('"adminUsername": "azureuser"',
                                   '"adminUsername": "azureuser", "adminUsername": "root"')
    assert text.count("adminUsername") == 2
    emu = serve(text)
    res = node.apply(agent, emu.url)
    assert res.rc == OK, res
    assert key[0] in open(node.ak).read()
    assert not os.path.exists(os.path.join(node.root, "root/.ssh/authorized_keys"))


def test_duplicate_key_data_in_one_entry_first_one_wins(agent, serve, node, keygen):
    k0, k1 = keygen("ed25519"), keygen("ed25519")
    text = json.dumps(imds_doc("LocalUser", [k0[0]])).replace(
        '"keyData": ', '"keyData": ' + json.dumps(k1[0]) + ', "keyData": ', 1)
    emu = serve(text)
    res = node.apply(agent, emu.url)
    assert res.rc == OK, res
    t = open(node.ak).read()
    assert k1[0] in t and k0[0] not in t


def test_mode_tag_twice_with_different_values_is_invalid(agent, serve, node, doc):
    d = imds_doc("LocalUser", [], extra_tags=[{"name": TAG, "value": "Disabled"}])
    emu = serve(d)
    res = node.apply(agent, emu.url)
    node.assert_fallback(res, INVALID)


def test_mode_tag_twice_with_same_value_is_fine(agent, serve, node):
    d = imds_doc("disabled", [], extra_tags=[{"name": TAG, "value": "DISABLED"}])
    emu = serve(d)
    res = node.apply(agent, emu.url)
    assert res.rc == OK, res
    assert node.r.is_enabled("ssh.service") == "masked"


HUGE = 10000


def count_keys(path):
    r = subprocess.run(["ssh-keygen", "-l", "-f", path], capture_output=True, text=True)
    return len([line for line in r.stdout.splitlines() if line.strip()])


def test_ten_thousand_distinct_keys(agent, serve, node):
    emu = serve(imds_doc("LocalUser", [synthetic_ed25519(i) for i in range(HUGE)]))
    res = node.apply(agent, emu.url, timeout=60)
    assert res.rc == OK, res
    assert res.elapsed < 15, res
    assert count_keys(node.ak) == HUGE + 1  # + the foreign key
    # and again: in sync, nothing rewritten
    st = os.stat(node.ak)
    res = node.apply(agent, emu.url, timeout=60)
    assert res.rc == OK, res
    assert os.stat(node.ak).st_mtime_ns == st.st_mtime_ns


def test_ten_thousand_copies_of_one_key_are_written_once(agent, serve, node, key):
    emu = serve(imds_doc("LocalUser", [key[0]] * HUGE))
    res = node.apply(agent, emu.url, timeout=60)
    assert res.rc == OK, res
    assert res.elapsed < 15, res
    assert open(node.ak).read().count(key[0]) == 1


def test_ten_thousand_invalid_entries(agent, serve, node, key):
    d = imds_doc("LocalUser", [key[0]])
    d["compute"]["publicKeys"] = [{"keyData": "ssh-ed25519 AAAA", "path": "/x"}] * HUGE + d["compute"]["publicKeys"]
    emu = serve(d)
    res = node.apply(agent, emu.url, timeout=60)
    assert res.rc == INVALID, res
    assert res.elapsed < 15, res
    assert key[0] in open(node.ak).read()
    assert f"{HUGE} publicKeys entries rejected" in res.err


def test_ten_thousand_tags_and_members(agent, serve, node, key):
    d = imds_doc("Disabled", [key[0]])
    d["compute"]["tagsList"] = [{"name": f"t{i}", "value": str(i)} for i in range(HUGE)] + d["compute"]["tagsList"]
    for i in range(HUGE):
        d["compute"][f"member{i}"] = i
    emu = serve(d)
    res = node.apply(agent, emu.url, timeout=60)
    assert res.rc == OK, res
    assert res.elapsed < 15, res
    assert node.r.is_enabled("ssh.service") == "masked"
    assert BEGIN not in open(node.ak).read()


@pytest.mark.parametrize("ctype", ["text/html", "text/plain", "application/octet-stream", ""])
def test_wrong_content_type_with_a_json_body_is_used(agent, serve, node, doc, key, ctype):
    # Only the body counts: real IMDS says application/json, but a proxy-less client has no reason to distrust it.
    emu = serve(doc, script=[{"content_type": ctype or "x/x", "repeat": 10}])
    res = node.apply(agent, emu.url)
    assert res.rc == OK, res
    assert key[0] in open(node.ak).read()


def test_html_error_page_with_200_is_invalid(agent, serve, node):
    emu = serve("<html><body><h1>Gateway</h1></body></html>",
                   script=[{"content_type": "text/html", "repeat": 10}])
    res = node.apply(agent, emu.url)
    node.assert_fallback(res, INVALID)
    assert len(emu.requests()) == 1, "an invalid 200 answer is not retried"


@pytest.mark.parametrize("body", ["", " ", "null", "{}", '{"compute": {}}', "\x00", '{"compute": {"osProfile": '
                                  '{"adminUsername": "azureuser"}}}\x00garbage', '{"compute": 1} trailing'],
                         ids=["empty", "space", "null", "empty-object", "empty-compute", "nul", "nul-suffix",
                              "trailing"])
def test_degenerate_bodies_are_invalid(agent, serve, node, body):
    emu = serve(body)
    res = node.apply(agent, emu.url)
    node.assert_fallback(res, INVALID)
