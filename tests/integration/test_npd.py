"""The shipped node-problem-detector config (image-hooks/npd/aks-ssh-access-monitor.json), checked against
NPD's own rules and run the way NPD runs it.

The rules are those of kubernetes/node-problem-detector:
- pkg/custompluginmonitor/types/config.go: ApplyConfiguration() defaults (timeout 5s, invoke_interval 30s,
  max_output_length 80, concurrency 3, enable_message_change_based_condition_update false,
  skip_initial_status false, metricsReporting true), durations parsed with Go's time.ParseDuration (an error
  fails the config), and Validate(): plugin must be "custom"; a rule's timeout must not be greater than the
  global timeout; every rule path must exist (os.Stat); a "permanent" rule's condition must be one of the
  default conditions.
- pkg/custompluginmonitor/types/types.go: CustomRule {type, condition, reason, path, args, timeout,
  invoke_interval}; Status OK=0, NonOK=1, Unknown=2.
- pkg/types/types.go: Type "permanent" | "temporary"; Condition {type, status, transition, reason, message}.
- pkg/custompluginmonitor/plugin/plugin.go run(): the plugin runs with the rule's timeout when smaller than
  the global one, else the global one, and is killed past it; stdout is read up to 4 KiB
  (maxCustomPluginBufferBytes), strings.TrimSpace'd, cut at max_output_length bytes; exit 0 → OK,
  1 → NonOK, anything else → Unknown.
Go's encoding/json ignores unknown keys silently, so a misspelt key would just be a default: the test
accepts only the keys those structs declare.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import REPO, imds_doc, sanitizer_report

CONFIG = os.path.join(REPO, "image-hooks", "npd", "aks-ssh-access-monitor.json")
MAX_BUFFER = 4 * 1024  # plugin.go maxCustomPluginBufferBytes

TOP_KEYS = {"plugin", "pluginConfig", "source", "conditions", "rules", "metricsReporting"}
PLUGIN_CONFIG_KEYS = {"invoke_interval", "timeout", "max_output_length", "concurrency",
                      "enable_message_change_based_condition_update", "skip_initial_status"}
RULE_KEYS = {"type", "condition", "reason", "path", "args", "timeout", "invoke_interval"}
CONDITION_KEYS = {"type", "status", "transition", "reason", "message"}

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_parse_duration(s):
    """Go's time.ParseDuration, in seconds: [-+]? then one or more <decimal><unit>; "0" alone is allowed."""
    if s in ("0", "+0", "-0"):
        return 0.0
    m = re.fullmatch(r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)", s)
    if not m:
        raise ValueError(f"time: invalid duration {s!r}")
    total = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)", m.group(2)))
    return -total if m.group(1) == "-" else total


def test_go_duration_parser_matches_go():
    assert go_parse_duration("5s") == 5 and go_parse_duration("1m30s") == 90 and go_parse_duration("1.5h") == 5400
    assert go_parse_duration("300ms") == pytest.approx(0.3)
    for bad in ("5", "", "s", "5 s", "5sec", "1d"):
        with pytest.raises(ValueError):
            go_parse_duration(bad)


def load_config():
    with open(CONFIG) as f:
        return json.load(f)


def apply_configuration(cfg):
    """config.go ApplyConfiguration(): defaults, durations parsed (seconds)."""
    g = dict(cfg.get("pluginConfig", {}))
    eff = {
        "timeout": go_parse_duration(g.get("timeout", "5s")),
        "invoke_interval": go_parse_duration(g.get("invoke_interval", "30s")),
        "max_output_length": g.get("max_output_length", 80),
        "concurrency": g.get("concurrency", 3),
        "message_change": g.get("enable_message_change_based_condition_update", False),
        "skip_initial_status": g.get("skip_initial_status", False),
        "metrics": cfg.get("metricsReporting", True),
        "rules": [],
    }
    for r in cfg["rules"]:
        eff["rules"].append(dict(r, timeout_s=go_parse_duration(r["timeout"]) if r.get("timeout") is not None else None))
    return eff


def test_shipped_config_passes_npd_validation():
    cfg = load_config()
    assert set(cfg) <= TOP_KEYS and set(cfg.get("pluginConfig", {})) <= PLUGIN_CONFIG_KEYS
    for r in cfg["rules"]:
        assert set(r) <= RULE_KEYS, r
    for c in cfg["conditions"]:
        assert set(c) <= CONDITION_KEYS, c
    eff = apply_configuration(cfg)

    # Validate(): plugin "custom".
    assert cfg["plugin"] == "custom"
    # Validate(): no rule timeout above the global one; our own bound: verify is given what it needs.
    for r in eff["rules"]:
        assert r["timeout_s"] is not None and 0 < r["timeout_s"] <= eff["timeout"]
    # Validate(): permanent rules name a default condition.
    cond_types = [c["type"] for c in cfg["conditions"]]
    for r in cfg["rules"]:
        assert r["type"] in ("permanent", "temporary")
        if r["type"] == "permanent":
            assert r["condition"] in cond_types
    # Validate(): the rule path exists on the node: it is where `make install` (PREFIX=/usr) and the units put
    # the agent.
    unit = open(os.path.join(REPO, "units", "aks-ssh-access-verify.service")).read()
    assert "ExecStart=/usr/bin/aks-ssh-access verify\n" in unit
    assert [(r["path"], r["args"]) for r in cfg["rules"]] == [("/usr/bin/aks-ssh-access", ["verify"])]

    # What this config means, exactly.
    assert cfg["source"] == "aks-ssh-access-monitor"
    assert cond_types == ["SSHAccessDrift"]
    assert [c["reason"] for c in cfg["conditions"]] == ["SSHAccessInSync"]
    assert [(r["type"], r["condition"], r["reason"]) for r in cfg["rules"]] == [("permanent", "SSHAccessDrift", "SSHAccessDrifted")]
    assert eff["max_output_length"] == 80, "verify's line is made for NPD's default of 80"
    assert eff["invoke_interval"] == 300 and eff["timeout"] == 15 and eff["rules"][0]["timeout_s"] == 10
    assert eff["concurrency"] == 1 and eff["message_change"] is True and eff["metrics"] is True
    # Go's json into *int / *bool / string: the types must be those.
    assert isinstance(eff["max_output_length"], int) and isinstance(eff["concurrency"], int)
    assert all(isinstance(a, str) for r in cfg["rules"] for a in r["args"])


def run_as_npd(binary, extra_args, cfg):
    """plugin.go run(): the rule's command, killed past its timeout, stdout ≤ 4 KiB, TrimSpace, cut at
    max_output_length bytes, exit status → OK / NonOK / Unknown."""
    eff = apply_configuration(cfg)
    rule = eff["rules"][0]
    timeout = rule["timeout_s"] if rule["timeout_s"] is not None and rule["timeout_s"] < eff["timeout"] else eff["timeout"]
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    p = subprocess.Popen([binary] + rule["args"] + extra_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("NPD would have killed the plugin (timeout)")
    assert sanitizer_report(err.decode(errors="replace")) is None, err
    output = out[:MAX_BUFFER].decode(errors="replace").strip()
    output = output.encode()[:eff["max_output_length"]].decode(errors="replace")
    status = {0: "OK", 1: "NonOK"}.get(p.returncode, "Unknown")
    return status, output, out.decode(errors="replace")


def test_npd_runs_verify_in_the_three_states(binary, scratch_root, tmp_path):
    cfg = load_config()
    r = scratch_root()
    args = ["--root", r.root]

    # unknown: nothing applied yet
    status, msg, raw = run_as_npd(binary, args, cfg)
    assert (status, msg) == ("Unknown", "unknown: nothing applied yet (no /var/lib/aks-ssh-access/state.json)")
    assert raw == msg + "\n", "the whole stdout is the one line NPD shows"

    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(imds_doc("Disabled", [])))
    p = subprocess.run([binary, "apply", "--root", r.root, "--imds-file", str(doc)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr

    # in sync
    status, msg, raw = run_as_npd(binary, args, cfg)
    assert status == "OK" and msg.startswith("in sync: Disabled, 0 managed keys, applied ") and msg.endswith(" from file")
    assert raw == msg + "\n"

    # drift: someone unmasked sshd by hand
    subprocess.run(["systemctl", f"--root={r.root}", "unmask", "ssh.service"], capture_output=True, check=True)
    status, msg, raw = run_as_npd(binary, args, cfg)
    assert (status, msg) == ("NonOK", "drift: ssh.service is disabled, expected masked for mode Disabled")
    assert raw == msg + "\n"
