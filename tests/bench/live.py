#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Live rows of `make bench` (issue 6): the agent inside a booted Debian 12 node (systemd-nspawn, real systemd,
real sshd, the IMDS emulator at 169.254.169.254 inside the node's network namespace only), using the end-to-end
harness of tests/e2e (imported, not modified).

  1. boots: BENCH_BOOTS boots with IMDS answering at once (the first one applies LocalUser, the next ones find
     the node in sync), and as a reference BENCH_BOOTS boots of the same image with the agent's unit disabled.
     Per boot: the agent unit's activation time (InactiveExit -> ActiveEnter, incl. the sandbox set-up and
     ExecStartPre), its CPU (CPUUsageNSec), when ssh.service's start job began, and `systemd-analyze
     critical-chain ssh.service` of the last boot.
  2. apply inside the running node, through build/bench/run1 (copied in; static): agent LocalUser / Disabled,
     changes needed and in sync, and tests/bench/shell-apply on the live node (curl, jq copied in from the host).

Prints its table on stdout (bench.py appends it). Needs root, debootstrap's cached image (build/e2e/rootfs).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.dont_write_bytecode = True  # no __pycache__ in tests/e2e from us
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness as H  # noqa: E402

BB = Path(os.environ.get("BENCH_BUILD", REPO / "build" / "bench"))
RUNS = int(os.environ.get("BENCH_LIVE_RUNS", "7"))
BOOTS = int(os.environ.get("BENCH_BOOTS", "3"))
TAG = "akbench"
URL = "http://169.254.169.254/metadata/instance?api-version=2021-08-01&extended=true"
UNIT = "aks-ssh-access.service"


def out(line=""):
    print(line, flush=True)


def install_tools(root):
    """run1 (static) and the shell baseline with curl and jq (+ the libraries the image lacks)."""
    bindir = root / "usr/local/bin"
    libdir = root / "usr/local/lib/bench"
    bindir.mkdir(parents=True, exist_ok=True)
    libdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BB / "run1", bindir / "run1")
    shutil.copy2(REPO / "tests/bench/shell-apply", bindir / "shell-apply")
    for tool in ("curl", "jq"):
        src = shutil.which(tool)
        shutil.copy2(src, root / "usr/bin" / tool)  # the node's PATH; the overlay's upper dir, not the cached image
        for line in subprocess.run(["ldd", src], capture_output=True, text=True, check=True).stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                lib = Path(parts[2])
                if not (root / str(lib).lstrip("/")).exists() and not (root / "usr" / str(lib).lstrip("/")).exists():
                    shutil.copy2(lib, libdir / lib.name)
    (root / "etc/ld.so.conf.d/bench.conf").write_text("/usr/local/lib/bench\n")
    H.run(["chroot", root, "ldconfig"])


def props(node, unit, names):
    p = node.sh(f"systemctl show {unit} " + " ".join(f"-p {n}" for n in names))
    return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)


def boot_figures(node):
    a = props(node, UNIT, ["InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic",
                           "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic", "CPUUsageNSec",
                           "ExecMainStatus", "ActiveState"])
    s = props(node, "ssh.service", ["InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic"])
    # The container shares the host's CLOCK_MONOTONIC: times are made relative to the container's systemd start.
    t0 = int(node.sh("systemctl show -P UserspaceTimestampMonotonic").stdout.strip())
    f = {"ssh_start_job_ms": (int(s["InactiveExitTimestampMonotonic"]) - t0) / 1000,
         "ssh_active_ms": (int(s["ActiveEnterTimestampMonotonic"]) - t0) / 1000}
    if a.get("ActiveState") == "active" and int(a.get("ActiveEnterTimestampMonotonic", "0")) > 0:
        f["unit_ms"] = (int(a["ActiveEnterTimestampMonotonic"]) - int(a["InactiveExitTimestampMonotonic"])) / 1000
        f["exec_ms"] = (int(a["ExecMainExitTimestampMonotonic"]) - int(a["ExecMainStartTimestampMonotonic"])) / 1000
        f["gap_ms"] = (int(s["InactiveExitTimestampMonotonic"]) - int(a["ActiveEnterTimestampMonotonic"])) / 1000
        cpu = a.get("CPUUsageNSec", "")
        f["cpu_ms"] = int(cpu) / 1e6 if cpu.isdigit() and int(cpu) < 2**63 else None
        f["exit"] = a.get("ExecMainStatus")
    f["failed"] = node.sh("systemctl --failed --plain --no-legend", check=False).stdout.split()[:1]
    return f


def sandbox_properties(unit_file):
    """The [Service] settings of the unit that build its sandbox (not what it runs or how it logs)."""
    skip = ("Exec", "Type=", "RemainAfterExit=", "TimeoutStartSec=", "Standard", "SyslogIdentifier=")
    props, section = [], None
    for line in unit_file.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#") and "=" in line and not line.startswith(skip):
            props.append(line)
    return props


def med(values):
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else float("nan")


def spread(values):
    v = sorted(x for x in values if x is not None)
    return f"{v[0]:.1f}–{v[-1]:.1f}" if v else "?"


def run_in_node(node, argv):
    # /run/sshd: the agent's unit has RuntimeDirectory=sshd (sshd -t needs it); run by hand after sshd was stopped it
    # is gone, so it is created here, outside the measured command, as the unit would.
    p = node.sh("mkdir -p /run/sshd && /usr/local/bin/run1 /tmp/bench.out " + " ".join(argv) + "; echo; cat /tmp/bench.out >&2", check=False)
    fields = p.stdout.split()
    if len(fields) < 5:
        raise RuntimeError(f"run1 in the node said {p.stdout!r} {p.stderr[-500:]!r}")
    wall_ns, user_us, sys_us, rss, rc = (int(x) for x in fields[:5])
    if rc != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {rc} in the node: {p.stderr[-1500:]}")
    return wall_ns / 1e6, (user_us + sys_us) / 1e3, rss / 1024


def main():
    if os.geteuid() != 0:
        sys.exit("live bench: needs root")
    H.ensure_rootfs()
    work = REPO / "build" / "bench" / "live"
    subprocess.run(["umount", "-l", str(work / "merged")], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cleanup = H.Cleanup()
    try:
        net = H.Net(TAG, work)
        cleanup.push(net.teardown)
        net.setup()
        keys = H.Keys(work / "keys")
        key_lines = [keys.pub[n] for n in ("k1", "k2", "k3")]
        doc_lu, doc_dis = H.imds_doc("LocalUser", key_lines), H.imds_doc("Disabled", key_lines)
        net.write_doc(doc_lu)
        net.start_imds()
        node = H.Node(TAG, work, net)
        cleanup.push(node.teardown)
        node.mount()
        H.install_agent(node.root)
        install_tools(node.root)
        # CPU accounting, so that the agent unit's CPUUsageNSec is recorded (this node's overlay only).
        conf = node.root / "etc/systemd/system.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "bench-accounting.conf").write_text("[Manager]\nDefaultCPUAccounting=yes\n")

        # 1. boots with the agent, then the same image without it.
        with_agent, without = [], []
        chain = ""
        for i in range(BOOTS):
            node.boot()
            f = boot_figures(node)
            if i == BOOTS - 1:
                chain = node.sh("systemd-analyze critical-chain ssh.service --no-pager", check=False).stdout
            if "unit_ms" not in f:
                raise RuntimeError(f"{UNIT} did not become active on boot {i + 1}: {node.sh('systemctl status ' + UNIT, check=False).stdout}")
            with_agent.append(f)
            node.poweroff()
        H.run(["systemctl", f"--root={node.root}", "disable", UNIT])
        for i in range(BOOTS):
            node.boot()
            without.append(boot_figures(node))
            node.poweroff()
        H.run(["systemctl", f"--root={node.root}", "enable", UNIT])

        # The agent's own cost inside its unit at boot: ExecStart wrapped in run1 (its figures go to the journal;
        # the agent's stderr goes to /dev/null for these boots).
        dropin = node.root / "etc/systemd/system" / f"{UNIT}.d"
        dropin.mkdir(parents=True, exist_ok=True)
        (dropin / "bench-run1.conf").write_text("[Service]\nExecStart=\n"
                                                "ExecStart=/usr/local/bin/run1 /dev/null /usr/bin/aks-ssh-access apply\n")
        in_unit = []
        for i in range(BOOTS):
            node.boot()
            f = boot_figures(node)
            lines = [ln.split() for ln in node.sh(f"journalctl -b -u {UNIT} -o cat --no-pager", check=False).stdout.splitlines()]
            nums = [ln for ln in lines if len(ln) == 5 and all(x.isdigit() for x in ln)]
            if not nums or nums[-1][4] != "0":
                raise RuntimeError(f"no run1 figures from {UNIT} at boot: {lines[-5:]}")
            w, u, sy, rss, _ = (int(x) for x in nums[-1])
            in_unit.append({"wall_ms": w / 1e6, "cpu_ms": (u + sy) / 1e3, "rss_mib": rss / 1024, "unit_ms": f.get("unit_ms"),
                            "exec_ms": f.get("exec_ms")})
            node.poweroff()
        (dropin / "bench-run1.conf").unlink()

        # 2. apply inside the running node.
        node.boot()
        rows = {}
        order = [("agent LocalUser, changes needed", doc_lu, "agent"), ("agent LocalUser, already in sync", doc_lu, "agent"),
                 ("shell LocalUser (after Disabled)", doc_lu, "shell"), ("shell LocalUser (again: same work)", doc_lu, "shell"),
                 ("agent Disabled, changes needed", doc_dis, "agent"), ("agent Disabled, already in sync", doc_dis, "agent"),
                 ("shell Disabled (after LocalUser)", doc_dis, "shell"), ("shell Disabled (again: same work)", doc_dis, "shell")]
        for _ in range(RUNS):
            for name, doc, who in order:
                net.write_doc(doc)
                argv = ["/usr/bin/aks-ssh-access", "apply"] if who == "agent" else ["/usr/local/bin/shell-apply", "/", URL]
                rows.setdefault(name, []).append(run_in_node(node, argv))
        # What the unit's sandbox costs: a transient service running /bin/true with the [Service] sandbox settings
        # of aks-ssh-access.service, against the same without them (both through systemd-run --wait).
        sandbox = sandbox_properties(node.root / "usr/lib/systemd/system" / UNIT)
        for _ in range(RUNS):
            rows.setdefault("systemd-run /bin/true, plain", []).append(
                run_in_node(node, ["/usr/bin/systemd-run", "--wait", "--quiet", "/bin/true"]))
            rows.setdefault("systemd-run /bin/true, the unit's sandbox", []).append(
                run_in_node(node, ["/usr/bin/systemd-run", "--wait", "--quiet"] + [f"-p '{p}'" for p in sandbox] + ["/bin/true"]))
        # The end state the last runs left: Disabled, sshd masked and stopped.
        states = {u: node.file_state(u) for u in ("ssh.service", "ssh.socket")}
        if states["ssh.service"] != "masked" or node.sh("systemctl is-active ssh.service", check=False).stdout.strip() == "active":
            raise RuntimeError(f"live: after Disabled, ssh is {states}")
        node.poweroff()

        # The table.
        out(f"== live: inside the booted node (systemd-nspawn, Debian 12, systemd 252), IMDS answering at once  "
            f"(boots: {BOOTS} each, apply runs: N={RUNS})")
        w_unit = [f["unit_ms"] for f in with_agent]
        out(f"  agent unit activation at boot (InactiveExit→ActiveEnter, incl. sandbox set-up + ExecStartPre): "
            f"median {med(w_unit):.1f} ms ({spread(w_unit)}); ExecStart alone {med([f['exec_ms'] for f in with_agent]):.1f} ms; "
            f"first boot (applies LocalUser) {w_unit[0]:.1f} ms, "
            f"later boots (in sync) {med(w_unit[1:]) if len(w_unit) > 1 else float('nan'):.1f} ms")
        out(f"  ssh.service start job began {med([f['gap_ms'] for f in with_agent]):.1f} ms (median) after the agent unit "
            f"was active; ssh.service start job at {med([f['ssh_start_job_ms'] for f in with_agent]):.0f} ms after boot with "
            f"the agent vs {med([f['ssh_start_job_ms'] for f in without]):.0f} ms without it ({spread([f['ssh_start_job_ms'] for f in without])}); "
            f"sshd active at {med([f['ssh_active_ms'] for f in with_agent]):.0f} vs {med([f['ssh_active_ms'] for f in without]):.0f} ms")
        out(f"  the agent inside its unit at boot (ExecStart wrapped in run1): wall {med([x['wall_ms'] for x in in_unit]):.1f} ms "
            f"({spread([x['wall_ms'] for x in in_unit])}), CPU {med([x['cpu_ms'] for x in in_unit]):.1f} ms, peak RSS "
            f"{med([x['rss_mib'] for x in in_unit]):.2f} MiB; on those boots ExecStart→exit took {med([x['exec_ms'] for x in in_unit]):.1f} ms "
            f"and the unit {med([x['unit_ms'] for x in in_unit]):.1f} ms: the rest is ExecStartPre and the sandbox set-up "
            f"(see the systemd-run rows below)")
        failed = sorted({u for f in with_agent + without for u in f.get("failed", [])})
        out(f"  failed units seen on these boots: {', '.join(failed) or 'none'}")
        out("  systemd-analyze critical-chain ssh.service (last boot with the agent):")
        for line in chain.splitlines():
            if line.strip():
                out(f"    {line}")
        out()
        head = f"{'row (live node)':<44} {'wall ms median (p10–p90)':>26} {'CPU ms median':>14} {'peak RSS MiB':>13} {'÷shell wall/CPU':>18}"
        out(head)
        out("-" * len(head))
        pairs = {"agent LocalUser, changes needed": "shell LocalUser (after Disabled)",
                 "agent LocalUser, already in sync": "shell LocalUser (again: same work)",
                 "agent Disabled, changes needed": "shell Disabled (after LocalUser)",
                 "agent Disabled, already in sync": "shell Disabled (again: same work)"}
        for name in [o[0] for o in order] + ["systemd-run /bin/true, plain", "systemd-run /bin/true, the unit's sandbox"]:
            w = sorted(x[0] for x in rows[name])
            c = sorted(x[1] for x in rows[name])
            r = med([x[2] for x in rows[name]])
            ratio = ""
            if name in pairs:
                sw, sc = med([x[0] for x in rows[pairs[name]]]), med([x[1] for x in rows[pairs[name]]])
                ratio = f"{med(w) / sw:.2f}× / {med(c) / sc:.2f}×"
            lo, hi = w[int(0.1 * (len(w) - 1))], w[int(round(0.9 * (len(w) - 1)))]
            out(f"{name:<44} {f'{med(w):.1f} ({lo:.1f}–{hi:.1f})':>26} {med(c):>14.1f} {r:>13.2f} {ratio:>18}")
        out()
        json.dump({"with_agent": with_agent, "without": without, "in_unit": in_unit, "rows": rows}, open(work / "live.json", "w"), indent=1)
    finally:
        cleanup.run()


if __name__ == "__main__":
    main()
