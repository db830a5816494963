#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`make bench`: what `aks-ssh-access apply` costs on the boot path, side by side with the shell approach nodes
use today, the floor (one GET + one file write + rename), key-count scaling and the libraries' RSS floor.
Stdlib only; run with Debian's /usr/bin/python3 as root (scratch roots have files owned by uid 1000).

Every row is measured in the same run, interleaved round-robin (one run of every row per round), N rounds
(BENCH_RUNS, default 21; scaling rows BENCH_SCALE_RUNS, default 11). Each run goes through build/bench/run1
(a static launcher: wall time around vfork..wait4, CPU = user+sys and peak RSS = ru_maxrss from wait4, the
command and every descendant it waited for). Median and spread (p10..p90) are printed.

Environment: AKS_SSH_ACCESS_BIN (agent), BENCH_BUILD (dir with run1, floor*, agent-lazy, ...), BENCH_RUNS,
BENCH_SCALE_RUNS, BENCH_CALLGRIND=0 to skip the callgrind section, BENCH_LIVE=0 to skip the live rows,
BENCH_OUT=FILE to also write the table there.
"""
import base64
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
import akstest  # noqa: E402  (the helpers shared with tests/integration and tests/e2e)

AGENT = os.environ.get("AKS_SSH_ACCESS_BIN", os.path.join(REPO, "build", "aks-ssh-access"))
BB = os.environ.get("BENCH_BUILD", os.path.join(REPO, "build", "bench"))
RUN1 = os.path.join(BB, "run1")
EMULATOR = os.path.join(REPO, "tests", "imds-emulator")
SHELL = os.path.join(REPO, "tests", "bench", "shell-apply")
RUNS = int(os.environ.get("BENCH_RUNS", "21"))
SCALE_RUNS = int(os.environ.get("BENCH_SCALE_RUNS", "11"))
USER, UID = "azureuser", 1000
QUERY = akstest.IMDS_QUERY
UNITS = ("ssh.service", "sshd.service", "ssh.socket", "sshd.socket")

OUT_LINES = []


def out(line=""):
    print(line, flush=True)
    OUT_LINES.append(line)


def die(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# ------------------------------------------------------------------------------------------------------------
# Fixtures: keys, documents, scratch roots, the emulator


def synth_keys(n, salt):
    """n distinct, well-formed ssh-ed25519 public key lines (random 32-byte points: the agent checks the wire
    format and hashes the blob; it does no curve arithmetic)."""
    head = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32)
    rnd = random.Random(salt)  # deterministic: two roots built alike hold the same bytes
    return [f"ssh-ed25519 {base64.b64encode(head + rnd.randbytes(32)).decode()} bench-{salt}-{i}" for i in range(n)]


def imds_doc(mode, keys):
    return json.dumps(akstest.imds_doc(mode, keys, user=USER)).encode()


def make_root(path, foreign_lines):
    """A Debian-like image tree: passwd with the admin user, Debian's ssh.service (enabled) and ssh.socket, and an
    authorized_keys with `foreign_lines` lines the agent does not own."""
    akstest.make_root(path, USER, UID)
    home = os.path.join(path, "home", USER)
    os.makedirs(os.path.join(home, ".ssh"))
    ak = os.path.join(home, ".ssh", "authorized_keys")
    with open(ak, "w") as f:
        for line in synth_keys(foreign_lines, "foreign"):
            f.write(line + "\n")
    for p in (os.path.dirname(ak), ak):
        os.chown(p, UID, UID)
    os.chmod(os.path.dirname(ak), 0o700)
    os.chmod(ak, 0o600)
    return path


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class Emulator:
    def __init__(self, workdir):
        self.doc = os.path.join(workdir, "doc.json")
        self.current = None
        write_atomic(self.doc, b"{}")
        self.proc = subprocess.Popen([EMULATOR, "--bind", "127.0.0.1", "--port", "0", "--doc", self.doc],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            die(f"IMDS emulator did not print its port (got {line!r})")
        self.url = f"http://127.0.0.1:{int(line)}{QUERY}"

    def set_doc(self, data):
        if data is not self.current:
            write_atomic(self.doc, data)
            self.current = data

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------------------------
# Measuring


class Sample:
    __slots__ = ("wall", "cpu", "rss")

    def __init__(self, wall, cpu, rss):
        self.wall, self.cpu, self.rss = wall, cpu, rss


def run1(argv, logfile, ok=(0,)):
    p = subprocess.run([RUN1, logfile] + list(argv), capture_output=True, text=True, check=True)
    wall_ns, user_us, sys_us, rss_kib, rc = (int(x) for x in p.stdout.split())
    if rc not in ok:
        with open(logfile, errors="replace") as f:
            die(f"{' '.join(argv)} exited {rc}:\n{f.read()[-2000:]}")
    return Sample(wall_ns / 1e6, (user_us + sys_us) / 1e3, rss_kib / 1024)


class Row:
    """One table row: a name, a setup (not measured) and a list of commands measured as one run (their wall and
    CPU add up, the peak RSS is the largest)."""

    def __init__(self, section, name, step, runs=RUNS):
        self.section, self.name, self.step, self.runs = section, name, step, runs
        self.samples = []
        self.ref = {}  # label -> Row, for ratio columns

    def run_once(self):
        self.samples.append(self.step())

    def stat(self, attr):
        v = sorted(getattr(s, attr) for s in self.samples)
        return statistics.median(v), quantile(v, 0.1), quantile(v, 0.9)


def quantile(sorted_v, q):
    if len(sorted_v) == 1:
        return sorted_v[0]
    pos = q * (len(sorted_v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (sorted_v[hi] - sorted_v[lo]) * (pos - lo)


def combine(samples):
    return Sample(sum(s.wall for s in samples), sum(s.cpu for s in samples), max(s.rss for s in samples))


# ------------------------------------------------------------------------------------------------------------
# End-state checks: the shell baseline must reach what the agent reaches, and both what the mode asks


def end_state(root):
    ak = os.path.join(root, "home", USER, ".ssh", "authorized_keys")
    st = os.stat(ak) if os.path.exists(ak) else None
    data = open(ak, "rb").read() if st else None
    units = {}
    for u in UNITS:
        units[u] = akstest.is_enabled(root, u)
    return {"ak": data, "ak_owner": (st.st_uid, st.st_gid, st.st_mode & 0o7777) if st else None, "units": units}


def check_same(what, agent_root, shell_root, mode, keys):
    a, s = end_state(agent_root), end_state(shell_root)
    if a != s:
        die(f"{what}: the shell baseline and the agent disagree on the end state:\n agent {a['units']} "
            f"{a['ak_owner']}\n shell {s['units']} {s['ak_owner']}\n ak equal: {a['ak'] == s['ak']}")
    want_masked = mode == "Disabled"
    for u in ("ssh.service", "sshd.service", "ssh.socket"):
        if (a["units"][u] == "masked") != want_masked:
            die(f"{what}: {u} is {a['units'][u]} after {mode}")
    text = a["ak"].decode()
    for k in keys:
        if (k in text) != (mode == "LocalUser"):
            die(f"{what}: managed key {'missing' if mode == 'LocalUser' else 'still present'} after {mode}")


# ------------------------------------------------------------------------------------------------------------
# The table


def fmt_stat(m, lo, hi, digits=1):
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def print_rows(rows, ratio_labels=()):
    """Ratio columns: agent ÷ reference on the wall-time medians / on the CPU-time medians."""
    head = f"{'row':<50} {'wall ms median (p10–p90)':>26} {'CPU ms median (p10–p90)':>25} {'peak RSS MiB':>13}"
    for lab in ratio_labels:
        head += f" {('÷' + lab + ' wall/CPU')[:24]:>24}"
    out(head)
    out("-" * len(head))
    for r in rows:
        wm, wl, wh = r.stat("wall")
        cm, cl, ch = r.stat("cpu")
        rm, _, _ = r.stat("rss")
        line = f"{r.name:<50} {fmt_stat(wm, wl, wh):>26} {fmt_stat(cm, cl, ch):>25} {rm:>13.2f}"
        for lab in ratio_labels:
            ref = r.ref.get(lab)
            cell = f"{wm / ref.stat('wall')[0]:.2f}× / {cm / ref.stat('cpu')[0]:.2f}×" if ref else ""
            line += f" {cell:>24}"
        out(line)


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    osr = "?"
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osr = line.split("=", 1)[1].strip().strip('"')
    fs = subprocess.run(["stat", "-f", "-c", "%T", tempfile.gettempdir()], capture_output=True, text=True).stdout.strip()
    return (f"nproc {os.cpu_count()}, CPU {model}, {mem} RAM, kernel {platform.release()}, {osr}, "
            f"scratch roots on {fs} ({tempfile.gettempdir()}), load average {loadavg()}")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------------------------------------------------


def main():
    global AGENT
    if os.geteuid() != 0:
        die("needs root (scratch roots hold files owned by uid 1000)")
    for p in (AGENT, RUN1, SHELL, EMULATOR):
        if not os.access(p, os.X_OK):
            die(f"{p} missing (run through `make bench`)")
    for tool in ("curl", "jq", "systemctl", "mv"):
        if not shutil.which(tool):
            die(f"{tool} not installed")
    curl, mv = shutil.which("curl"), shutil.which("mv")

    work = tempfile.mkdtemp(prefix="aks-bench.")
    emu = None
    live_failed = callgrind_failed = False
    try:
        # Snapshot: the binary under test must not change under the bench (the tree is shared and rebuilt).
        snap = os.path.join(work, "aks-ssh-access")
        shutil.copy2(AGENT, snap)
        agent_src, AGENT = AGENT, snap
        emu = Emulator(work)
        logf = os.path.join(work, "last.log")
        out(f"aks-ssh-access bench — {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        out(f"machine: {machine()}")
        out(f"agent:   {agent_src} ({subprocess.run([AGENT, '--version'], capture_output=True, text=True).stdout.strip()}, "
            f"sha256 {hashlib.sha256(open(AGENT, 'rb').read()).hexdigest()[:16]}, built {time.strftime('%H:%M:%S', time.gmtime(os.stat(agent_src).st_mtime))} UTC)")
        out(f"command: make bench  (BENCH_RUNS={RUNS} BENCH_SCALE_RUNS={SCALE_RUNS}); launcher build/bench/run1 "
            f"(static, VmHWM {int(subprocess.run([RUN1, '--self'], capture_output=True, text=True).stdout) / 1024:.2f} MiB)")
        out()

        keys = synth_keys(3, "main")
        doc_lu, doc_dis = imds_doc("LocalUser", keys), imds_doc("Disabled", keys)
        agent_root = make_root(os.path.join(work, "agent-root"), 1)
        shell_root = make_root(os.path.join(work, "shell-root"), 1)
        floor_dir = os.path.join(work, "floor")
        os.makedirs(floor_dir)
        floor_dst = os.path.join(floor_dir, "authorized_keys")

        def agent(root, doc, binary=AGENT):
            def step():
                emu.set_doc(doc)
                return run1([binary, "apply", "--root", root, "--imds-url", emu.url], logf)
            return step

        def shell(root, doc):
            def step():
                emu.set_doc(doc)
                return run1([SHELL, root, emu.url], logf)
            return step

        def curl_floor():
            emu.set_doc(doc_lu)
            tmp = floor_dst + ".tmp"
            return combine([run1([curl, "-sS", "--fail", "--noproxy", "*", "-H", "Metadata: true", "-o", tmp, emu.url], logf),
                            run1([mv, "-f", tmp, floor_dst], logf)])

        def c_floor(binary, *extra):
            def step():
                emu.set_doc(doc_lu)
                return run1([os.path.join(BB, binary), emu.url, floor_dst] + list(extra), logf)
            return step

        def load_only(binary, *args):
            return lambda: run1([binary] + list(args), logf)

        S1 = "apply offline (--root) vs the shell approach vs the floor"
        a_lu_c = Row(S1, "agent LocalUser, changes needed", agent(agent_root, doc_lu))
        a_lu_s = Row(S1, "agent LocalUser, already in sync", agent(agent_root, doc_lu))
        a_di_c = Row(S1, "agent Disabled, changes needed", agent(agent_root, doc_dis))
        a_di_s = Row(S1, "agent Disabled, already in sync", agent(agent_root, doc_dis))
        s_lu_c = Row(S1, "shell LocalUser (after Disabled)", shell(shell_root, doc_lu))
        s_lu_s = Row(S1, "shell LocalUser (again: same work)", shell(shell_root, doc_lu))
        s_di_c = Row(S1, "shell Disabled (after LocalUser)", shell(shell_root, doc_dis))
        s_di_s = Row(S1, "shell Disabled (again: same work)", shell(shell_root, doc_dis))
        fl_cli = Row(S1, "floor: curl GET -o tmp + mv (2 execs)", curl_floor)
        fl_c = Row(S1, "floor: C, 4 libs, GET+write+fsync+rename", c_floor("floor"))
        for a, s in ((a_lu_c, s_lu_c), (a_lu_s, s_lu_s), (a_di_c, s_di_c), (a_di_s, s_di_s)):
            a.ref = {"shell": s, "floor(curl)": fl_cli, "floor(C)": fl_c}
        main_rows = [a_lu_c, a_lu_s, a_di_c, a_di_s, s_lu_c, s_lu_s, s_di_c, s_di_s, fl_cli, fl_c]

        S2 = "peak RSS: the libraries' floor and what can be shaved"
        rss_rows = [
            Row(S2, "/bin/true (process floor)", load_only("/bin/true")),
            Row(S2, "floor --load-only (4 libs loaded, nothing done)", load_only(os.path.join(BB, "floor"), "--load-only")),
            Row(S2, "floor, 4 libs, -z now (agent's link flags)", c_floor("floor")),
            Row(S2, "floor, 4 libs, lazy binding", c_floor("floor-lazy")),
            Row(S2, "floor, 4 libs, CURL_GLOBAL_ALL", c_floor("floor", "all")),
            Row(S2, "floor, 4 libs, CURL_GLOBAL_NOTHING", c_floor("floor", "nothing")),
            Row(S2, "floor, libcurl only (no libsystemd/cJSON/sodium)", c_floor("floor-curl")),
            Row(S2, "floor --load-only, libcurl only", load_only(os.path.join(BB, "floor-curl"), "--load-only")),
            Row(S2, "floor --load-only, 3 libs without libcurl", load_only(os.path.join(BB, "floor-socket"), "--load-only")),
            Row(S2, "floor, 3 libs without libcurl, socket GET+write", c_floor("floor-socket")),
            Row(S2, "agent --version (4 libs loaded)", load_only(AGENT, "--version")),
        ]
        variant_roots = {}
        for v, label in (("agent-lazy", "agent LocalUser in sync, lazy binding (no -z now)"),
                         ("agent-curl-nothing", "agent LocalUser in sync, CURL_GLOBAL_NOTHING")):
            if os.access(os.path.join(BB, v), os.X_OK):
                variant_roots[v] = make_root(os.path.join(work, v), 1)
                rss_rows.append(Row(S2, label, agent(variant_roots[v], doc_lu, os.path.join(BB, v))))
        rss_rows.insert(2, a_lu_s)  # the reference, measured above

        # Scaling: N keys (two alternating key sets of N, so every other run really rewrites the block).
        S3 = "scaling: keys in the document / foreign lines in authorized_keys"
        scale_rows, scale = [], {}
        for n, foreign in ((1, 0), (100, 0), (1000, 0), (10000, 0), (1, 100000), (100, 100000), (10000, 100000)):
            root = make_root(os.path.join(work, f"scale-{n}-{foreign}"), foreign)
            docs = (imds_doc("LocalUser", synth_keys(n, f"a{n}")), imds_doc("LocalUser", synth_keys(n, f"b{n}")))
            state = {"i": 0}

            def change(root=root, docs=docs, state=state):
                state["i"] += 1
                return agent(root, docs[state["i"] % 2])()

            def sync(root=root, docs=docs, state=state):
                return agent(root, docs[state["i"] % 2])()

            fl = f", {foreign // 1000}k foreign lines" if foreign else ""
            rc = Row(S3, f"agent {n} key{'s' if n > 1 else ''}{fl}, changes", change, SCALE_RUNS)
            rs = Row(S3, f"agent {n} key{'s' if n > 1 else ''}{fl}, in sync", sync, SCALE_RUNS)
            scale[(n, foreign)] = (rc, rs)
            scale_rows += [rc, rs]

        status_root = os.path.join(work, "scale-10000-0")
        st_row = Row(S3, "status, 10 000 keys", lambda: run1([AGENT, "status", "--root", status_root], logf), SCALE_RUNS)
        scale_rows.append(st_row)

        # Round-robin: one run of every row per round; the end state is checked on the first and last round.
        run_order = [a_lu_c, a_lu_s, s_lu_c, s_lu_s, a_di_c, a_di_s, s_di_c, s_di_s, fl_cli, fl_c]
        all_rows = run_order + [r for r in rss_rows if r is not a_lu_s] + scale_rows
        rounds = max(RUNS, SCALE_RUNS)
        t_start = time.monotonic()
        for i in range(rounds):
            for r in all_rows:
                if i < r.runs:
                    r.run_once()
                if r is s_lu_s and i in (0, rounds - 1):
                    check_same("LocalUser", agent_root, shell_root, "LocalUser", keys)
                if r is s_di_s and i in (0, rounds - 1):
                    check_same("Disabled", agent_root, shell_root, "Disabled", keys)
            print(f"bench: round {i + 1}/{rounds} done ({time.monotonic() - t_start:.0f} s)", file=sys.stderr, flush=True)
        for (n, foreign), (rc, rs) in scale.items():
            ak = open(os.path.join(work, f"scale-{n}-{foreign}", "home", USER, ".ssh", "authorized_keys")).read()
            got = ak.count("\nssh-ed25519 ") + ak.startswith("ssh-ed25519 ")
            if got != n + foreign:
                die(f"scaling {n}/{foreign}: authorized_keys holds {got} key lines, expected {n + foreign}")

        out(f"load average after the runs: {loadavg()} (wall times include waiting for the CPU when other work runs "
            f"on the machine; CPU times do not)")
        out()
        out(f"== {S1}  (N={RUNS} each; ratios agent ÷ reference, on the medians)")
        print_rows(main_rows, ("shell", "floor(curl)", "floor(C)"))
        out()
        out(f"== {S2}  (N={RUNS} each)")
        print_rows(rss_rows)
        out()
        out(f"== {S3}  (N={SCALE_RUNS} each)")
        print_rows(scale_rows)
        out()
        for attr in ("wall", "cpu"):
            c = {n: scale[(n, 0)][0].stat(attr)[0] for n in (1, 100, 1000, 10000)}
            y = {n: scale[(n, 0)][1].stat(attr)[0] for n in (1, 100, 1000, 10000)}
            out(f"  {attr:>4}: changes: {c[10000] / 10000 * 1000:.1f} µs per key at 10 000 keys (total ÷ keys); "
                f"10 000 ÷ 100 keys ×{c[10000] / c[100]:.1f}; marginal per key 100→1000 {(c[1000] - c[100]) / 900 * 1000:.1f} µs, "
                f"1000→10 000 {(c[10000] - c[1000]) / 9000 * 1000:.1f} µs | in sync: ×{y[10000] / y[100]:.1f}, marginal "
                f"{(y[1000] - y[100]) / 900 * 1000:.1f} / {(y[10000] - y[1000]) / 9000 * 1000:.1f} µs per key")
        f0, f1 = scale[(1, 0)][0], scale[(1, 100000)][0]
        out(f"  100 000 foreign lines (1 key, changes): +{f1.stat('wall')[0] - f0.stat('wall')[0]:.1f} ms wall, "
            f"+{f1.stat('cpu')[0] - f0.stat('cpu')[0]:.1f} ms CPU, +{f1.stat('rss')[0] - f0.stat('rss')[0]:.1f} MiB "
            f"(authorized_keys {os.path.getsize(os.path.join(work, 'scale-1-100000', 'home', USER, '.ssh', 'authorized_keys')) / 1e6:.1f} MB)")
        out()
        report_targets(a_lu_c, a_lu_s, a_di_c, a_di_s, fl_cli, fl_c, rss_rows, scale)

        if os.environ.get("BENCH_LIVE", "1") != "0":
            emu.stop()
            emu = None
            p = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests", "bench", "live.py")], stdout=subprocess.PIPE,
                               stderr=None, text=True, env=dict(os.environ, BENCH_BUILD=BB, AKS_SSH_ACCESS_BIN=AGENT))
            for line in p.stdout.splitlines():
                out(line)
            if p.returncode != 0:
                out(f"== live rows: FAILED (tests/bench/live.py exited {p.returncode}; see stderr above)")
                out()
                live_failed = True
            emu = Emulator(work)
        if os.environ.get("BENCH_CALLGRIND", "1") != "0":
            callgrind_failed = not callgrind_section(work, emu, doc_lu)
    finally:
        if emu:
            emu.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        if os.environ.get("BENCH_OUT"):
            with open(os.environ["BENCH_OUT"], "w") as f:
                f.write("\n".join(OUT_LINES) + "\n")
    if live_failed or callgrind_failed:
        sys.exit(1)


def report_targets(a_lu_c, a_lu_s, a_di_c, a_di_s, fl_cli, fl_c, rss_rows, scale):
    out("== targets (issue 6), judged on the medians: wall time / CPU time")
    agents = (a_lu_c, a_lu_s, a_di_c, a_di_s)

    def med(r, attr="wall"):
        return r.stat(attr)[0]

    def worst(ref_of, attr):
        return max(med(a, attr) / med(ref_of(a), attr) for a in agents)

    sh_w, sh_c = worst(lambda a: a.ref["shell"], "wall"), worst(lambda a: a.ref["shell"], "cpu")
    fl_w, fl_cpu = worst(lambda a: fl_cli, "wall"), worst(lambda a: fl_cli, "cpu")
    fc_w, fc_c = worst(lambda a: fl_c, "wall"), worst(lambda a: fl_c, "cpu")
    floor_rss = med(fl_c, "rss")
    agent_rss = max(med(a, "rss") for a in agents)
    k10, k10f = scale[(10000, 0)][0], scale[(10000, 100000)][0]
    k1, k100 = scale[(1, 0)][0], scale[(100, 0)][0]

    def verdict(ok):
        return "MET   " if ok else "MISSED"

    out(f"  {verdict(sh_w <= 0.2 and sh_c <= 0.2)} apply ≤ 0.2× shell: worst row {sh_w:.3f}× wall, {sh_c:.3f}× CPU")
    out(f"  {verdict(fl_w <= 3 and fl_cpu <= 3)} apply ≤ 3× floor (curl CLI GET + mv): worst row {fl_w:.2f}× wall, "
        f"{fl_cpu:.2f}× CPU (vs the in-process C floor with the same 4 libraries: {fc_w:.2f}× wall, {fc_c:.2f}× CPU)")
    out(f"  {verdict(agent_rss - floor_rss <= 1.0)} peak RSS within 1 MiB of the 4-library floor: agent {agent_rss:.2f} MiB, "
        f"floor {floor_rss:.2f} MiB, +{agent_rss - floor_rss:.2f} MiB")
    out(f"  {verdict(med(k10) <= 50)} 10 000 keys ≤ 50 ms: {med(k10):.1f} ms wall, {med(k10, 'cpu'):.1f} ms CPU; above the "
        f"1-key run: +{med(k10) - med(k1):.1f} ms wall, +{med(k10, 'cpu') - med(k1, 'cpu'):.1f} ms CPU "
        f"(with 100k foreign lines: {med(k10f):.1f} ms wall, {med(k10f, 'cpu'):.1f} ms CPU)")
    k1000 = scale[(1000, 0)][0]
    m_lo = (med(k1000, "cpu") - med(k100, "cpu")) / 900
    m_hi = (med(k10, "cpu") - med(k1000, "cpu")) / 9000
    out(f"  {verdict(med(k10) / med(k100) <= 100 and m_hi <= 2 * max(m_lo, 1e-9))} linear scaling: 10 000 ÷ 100 keys "
        f"×{med(k10) / med(k100):.1f} wall, ×{med(k10, 'cpu') / med(k100, 'cpu'):.1f} CPU (≤ ×100: not worse than linear); "
        f"CPU per extra key {m_lo * 1000:.1f} µs from 100 to 1000 keys, {m_hi * 1000:.1f} µs from 1000 to 10 000 "
        f"(constant = linear; it would grow ×10 if quadratic)")
    out()


def callgrind_section(work, emu, doc_lu):
    if not shutil.which("valgrind"):
        out("== instructions (callgrind): valgrind not installed, skipped")
        return True
    out("== instructions (valgrind --tool=callgrind; Ir = instructions executed, incl. the dynamic loader; inclusive per function)")
    # valgrind 3.19 (Debian 12) does not know openat2(2), which `apply --root` needs: apply runs under it with
    # build/bench/openat2-shim.so preloaded (openat2 -> openat; same files in these scratch roots).
    doc10k = os.path.join(work, "cg-10k.json")
    write_atomic(doc10k, imds_doc("LocalUser", synth_keys(10000, "cg")))
    shim = os.path.join(BB, "openat2-shim.so")
    cg_root = make_root(os.path.join(work, "cg-root"), 1)
    cg_root10k = make_root(os.path.join(work, "cg-root-10k"), 0)
    cases = [
        ("floor --load-only (4 libs)", [os.path.join(BB, "floor"), "--load-only"], None, None),
        ("floor --load-only (3 libs, no libcurl)", [os.path.join(BB, "floor-socket"), "--load-only"], None, None),
        ("floor, 4 libs, one GET + write", [os.path.join(BB, "floor"), emu.url, os.path.join(work, "floor", "cg")], doc_lu, None),
        ("agent --version", [AGENT, "--version"], None, None),
        ("agent apply LocalUser, changes", [AGENT, "apply", "--root", cg_root, "--imds-url", emu.url], doc_lu, shim),
        ("agent apply LocalUser, in sync", [AGENT, "apply", "--root", cg_root, "--imds-url", emu.url], doc_lu, shim),
        ("agent apply 10 000 keys, first apply", [AGENT, "apply", "--root", cg_root10k, "--imds-file", doc10k], None, shim),
        ("agent apply 10 000 keys, in sync", [AGENT, "apply", "--root", cg_root10k, "--imds-file", doc10k], None, shim),
        ("agent show-imds, 10 000 keys (no --root)", [AGENT, "show-imds", "--imds-file", doc10k], None, None),
    ]
    want = ("cmd-apply.c:cmd_apply [", "policy.c:policy_parse [", "sshkey.c:sshkey_parse [", "sshkey.c:sshkey_fingerprint [",
            "sodium_base642bin [", "json-util.c:json_parse_whole [", "crypto_hash_sha256 [", "sodium_bin2base64 [",
            "state.c:state_load [", "state.c:state_save [", "state.c:state_format [", "cJSON_Print [",
            "sshkey.c:sshkey_format [", "authorized-keys.c:authorized_keys_merge [", "policy.c:policy_check_paths [",
            "observe.c:node_observe [", "observe.c:node_query_units [", "decide.c:decide [", "execute.c:node_execute [",
            "observe.c:node_fetch [", "rtld.c:_dl_start [", "dl-init.c:_dl_init [", "imds.c:imds_fetch [")
    ok = True
    for name, argv, doc, preload in cases:
        if doc is not None:
            emu.set_doc(doc)
        cg = os.path.join(work, "callgrind.out")
        env = dict(os.environ, LD_PRELOAD=preload) if preload else None
        p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}"] + argv,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        if p.returncode not in (0, 67):  # 67: show-imds without --root finds no admin user on this host
            out(f"  {name}: valgrind run failed ({p.returncode}): {p.stderr[-300:]}")
            ok = False
            continue
        inc = subprocess.run(["callgrind_annotate", "--inclusive=yes", cg], capture_output=True, text=True).stdout
        total = next((ln.split()[0] for ln in inc.splitlines() if "PROGRAM TOTALS" in ln), "?")
        out(f"  {name:<44} {total:>14} Ir")
        if "10 000" in name or "in sync" in name:
            for fl in inc.splitlines():
                m = re.match(r"^\s*([\d,]+)\s+\(\s*([\d.]+%)\)\s+(\S+)", fl)
                if m and any(w in fl for w in want):
                    fn = re.sub(r"^.*/agent/", "agent/", m.group(3))
                    out(f"      {m.group(1):>13} {m.group(2):>7}  {fn}")
    out()
    return ok


if __name__ == "__main__":
    main()
