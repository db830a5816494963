"""The IMDS client as the agent uses it (SPEC §2, §3): the real binary against tests/imds-emulator on loopback.

`show-imds` fetches and validates only (0 ok / 65 invalid / 69 unavailable); `apply` additionally applies the
fallback (no state file: Disabled, so ssh.service and ssh.socket end up masked) and exits 69/65.
Every case runs with the normal build and, when AKS_SSH_ACCESS_ASAN_BIN is set, with the ASan+UBSan build.
"""
import json

import pytest

from conftest import closed_imds_url, imds_doc

DEADLINE = 2  # deadline_s of most cases: short, so the whole file stays well under a minute
SLACK = 2.0   # how far past the deadline the agent may return (process start, teardown, a loaded CI box)
MAX_BODY = 4 * 1024 * 1024
OK, INVALID, UNAVAILABLE = 0, 65, 69


@pytest.fixture
def node(scratch_root):
    return scratch_root()


@pytest.fixture
def conf(config_file):
    return config_file(f"deadline_s = {DEADLINE}\n")


@pytest.fixture
def key(keygen):
    return keygen("ed25519")


@pytest.fixture
def doc(key):
    return imds_doc("LocalUser", [key[0]])


def show_imds(agent, node, url, conf, **kw):
    return agent(["show-imds", "--root", node.root, "--imds-url", url, "--config", conf], **kw)


def apply(agent, node, url, conf, **kw):
    return agent(["apply", "--root", node.root, "--imds-url", url, "--config", conf], **kw)


def assert_fallback_disabled(node):
    # No state file yet, so the fallback is fallback_mode = disabled: every ssh unit masked.
    assert node.is_enabled("ssh.service") == "masked"
    assert node.is_enabled("ssh.socket") == "masked"


def assert_well_formed(reqs):
    for q in reqs:
        assert q["method"] == "GET"
        assert q["path"] == "/metadata/instance"
        assert q["query"] == {"api-version": "2021-08-01", "extended": "true"}
        assert {k.lower(): v for k, v in q["headers"].items()}.get("metadata") == "true", q["headers"]
        assert not any(k.lower() == "x-forwarded-for" for k in q["headers"]), q["headers"]


# ------------------------------------------------------------------------------------------------------------
# retried failures


@pytest.mark.parametrize("script", [
    [{"status": 500}, {"status": 429}, {"status": 410}],
    [{"status": 404}, {"close": True}, {"status": 503, "body": "busy"}],
], ids=["500-429-410", "404-close-503"])
def test_transient_failures_are_retried_until_success(agent, emulator, node, conf, doc, script):
    emu = emulator(doc=doc, script=script)
    res = show_imds(agent, node, emu.url, conf)
    assert res.rc == OK, res
    assert "azureuser" in res.out, res
    reqs = emu.requests()
    assert len(reqs) == 4, [q["answer"] for q in reqs]
    assert_well_formed(reqs)


def test_truncated_body_is_retried(agent, emulator, node, conf, doc):
    emu = emulator(doc=doc, script=[{"truncate": 20}])
    res = show_imds(agent, node, emu.url, conf)
    assert res.rc == OK, res
    assert len(emu.requests()) == 2


def test_always_truncated_body_is_unavailable(agent, emulator, node, conf, doc):
    emu = emulator(doc=doc, script=[{"truncate": 20, "repeat": 1000}])
    res = apply(agent, node, emu.url, conf)
    assert res.rc == UNAVAILABLE, res
    assert res.elapsed <= DEADLINE + SLACK, res
    assert len(emu.requests()) >= 3, "a truncated answer must be retried"
    assert_fallback_disabled(node)


def test_retry_after_is_honoured(agent, emulator, node, conf, doc):
    emu = emulator(doc=doc, script=[{"status": 429, "headers": {"Retry-After": "1"}}])
    res = show_imds(agent, node, emu.url, conf)
    assert res.rc == OK, res
    t = [q["mono"] for q in emu.requests()]
    assert len(t) == 2
    assert t[1] - t[0] >= 0.95, "came back before Retry-After"


def test_request_rate_never_exceeds_5_per_second(agent, emulator, node, config_file, doc):
    deadline = 3
    emu = emulator(doc=doc, script=[{"status": 500, "repeat": 1000}])
    res = show_imds(agent, node, emu.url, config_file(f"deadline_s = {deadline}\n"))
    assert res.rc == UNAVAILABLE, res
    assert res.elapsed <= deadline + SLACK, res
    t = sorted(q["mono"] for q in emu.requests())
    rel = [round(x - t[0], 3) for x in t]
    assert len(t) >= 4, f"only {len(t)} requests in {deadline} s of HTTP 500: not retrying: {rel}"
    assert t[-1] - t[0] >= deadline / 2, f"gave up long before the deadline: {rel}"
    # The client keeps >= 200 ms between request starts. These are server-side arrival times, which a busy
    # machine delays by scheduling noise, hence the tolerances: 100 ms on a gap, 100 ms on the window.
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert min(gaps) >= 0.1, f"requests {min(gaps):.3f} s apart: {rel}"
    for i, start in enumerate(t):
        in_window = [x for x in t[i:] if x < start + 0.9]
        assert len(in_window) <= 5, f"{len(in_window)} requests within 0.9 s: {rel}"


# ------------------------------------------------------------------------------------------------------------
# permanent refusals: no retry


@pytest.mark.parametrize("status", [403, 400, 401, 405])
def test_permanent_refusal_is_not_retried(agent, emulator, node, conf, doc, status):
    emu = emulator(doc=doc, script=[{"status": status, "body": "{\"error\": \"no\"}", "repeat": 50}])
    res = apply(agent, node, emu.url, conf)
    assert res.rc == UNAVAILABLE, res
    assert len(emu.requests()) == 1, [q["answer"] for q in emu.requests()]
    assert res.elapsed < DEADLINE, res
    assert_fallback_disabled(node)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_not_followed(agent, emulator, node, conf, doc, status):
    # The redirect points at a second emulator (another host) that would serve a valid document.
    other = emulator(doc=doc, bind="127.0.0.2")
    emu = emulator(doc=doc, script=[{"redirect": other.url, "status": status, "repeat": 50}])
    res = show_imds(agent, node, emu.url, conf)
    assert res.rc == UNAVAILABLE, res
    assert len(emu.requests()) == 1
    assert other.requests() == [], "the redirect was followed"


def test_requests_without_metadata_header_are_refused_by_the_emulator(emulator, doc):
    # The emulator's own guard, so that a client forgetting the header cannot pass the tests above.
    emu = emulator(doc=doc)
    assert emu.get(headers={})[0] == 400
    assert b"Metadata" in emu.get(headers={})[1]
    assert emu.get(headers={"Metadata": "true", "X-Forwarded-For": "10.0.0.1"})[0] == 400
    assert emu.get()[0] == 200


# ------------------------------------------------------------------------------------------------------------
# slow, silent or absent servers: bounded by the deadline


def test_hanging_server_gives_up_at_the_deadline(agent, emulator, node, conf, doc):
    emu = emulator(doc=doc, script=[{"hang": True, "repeat": 100}])
    res = apply(agent, node, emu.url, conf)
    assert res.rc == UNAVAILABLE, res
    assert DEADLINE - 0.3 <= res.elapsed <= DEADLINE + SLACK, res
    assert len(emu.requests()) >= 1
    assert_fallback_disabled(node)


def test_drip_fed_body_gives_up_at_the_deadline(agent, emulator, node, conf, doc):
    emu = emulator(doc=doc, script=[{"drip": True, "delay": 0.5, "repeat": 100}])
    res = show_imds(agent, node, emu.url, conf)
    assert res.rc == UNAVAILABLE, res
    assert DEADLINE - 0.3 <= res.elapsed <= DEADLINE + SLACK, res


def test_connection_refused_gives_up_at_the_deadline(agent, node, conf):
    url = closed_imds_url()
    res = apply(agent, node, url, conf)
    assert res.rc == UNAVAILABLE, res
    assert DEADLINE - 1.0 <= res.elapsed <= DEADLINE + SLACK, res
    assert_fallback_disabled(node)


# ------------------------------------------------------------------------------------------------------------
# proxies and body size


PROXY_VARS = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"]


def test_proxy_environment_has_no_effect(agent, emulator, node, conf, doc):
    emu = emulator(doc=doc)
    env = {v: "http://127.0.0.1:9" for v in PROXY_VARS}
    env.update(no_proxy=None, NO_PROXY=None)
    res = show_imds(agent, node, emu.url, conf, env=env)
    assert res.rc == OK, res
    reqs = emu.requests()
    assert len(reqs) == 1
    assert_well_formed(reqs)


def padded(doc, size):
    """doc serialized with a padding member so that the text is exactly size bytes: still a valid document."""
    d = dict(doc, pad="")
    d["pad"] = "a" * (size - len(json.dumps(d)))
    text = json.dumps(d)
    assert len(text) == size
    return text


def test_body_of_exactly_4_mib_is_accepted(agent, emulator, node, conf, doc):
    emu = emulator(doc=padded(doc, MAX_BODY))
    res = show_imds(agent, node, emu.url, conf)
    assert res.rc == OK, res


def test_valid_document_one_byte_over_4_mib_is_invalid(agent, emulator, node, conf, doc):
    emu = emulator(doc=padded(doc, MAX_BODY + 1))
    res = show_imds(agent, node, emu.url, conf)
    assert res.rc == INVALID, res
    assert len(emu.requests()) == 1, "an oversized body is not retried"


def test_huge_body_is_invalid_and_not_read_to_the_end(agent, emulator, node, conf, doc):
    emu = emulator(doc=doc, script=[{"big": 256 * MAX_BODY, "repeat": 50}])  # 1 GiB
    res = show_imds(agent, node, emu.url, conf)
    assert res.rc == INVALID, res
    assert res.elapsed < DEADLINE, res
    assert len(emu.requests()) == 1
