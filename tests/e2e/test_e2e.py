# SPDX-License-Identifier: MIT
"""End-to-end: the agent on a booted Debian node (systemd-nspawn), real systemd, real sshd, real cloud-init, IMDS
emulator; every case on each lane (Debian 12 bookworm: systemd 252, OpenSSH 9.2; Debian 13 trixie: systemd 257 with
systemd-ssh-generator, OpenSSH 10.0).

Each test builds its node image (base image + agent installed like an image builder does), boots it, and
checks the outcome from outside (ssh logins and port probes from another network namespace) and inside
(unit states, a banner probe of every listening socket, the journal and console of that boot, files).
See harness.py for the plumbing."""
import json
import re
import time

import pytest

import harness as h  # first: it puts tests/lib on sys.path
import variants as V

import akstest  # noqa: E402

MANAGED_BLOCK_BEGIN = akstest.KEYS_BEGIN_PREFIX
ENTRA_BLOCK_BEGIN = akstest.ENTRA_BEGIN_PREFIX
OLD_DROPIN = "/etc/ssh/sshd_config.d/50-aks-ssh-access.conf"
OWN_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXIncyBvd24ga2V5IG5vdCBtYW5hZ2VkIGJ5IGFrcyEh my-own-key\n"



# ---------------------------------------------------------------------------------------------------------
# listeners: what answers as sshd on the booted node

# Runs inside the node: every listening TCP socket (v4/v6, from /proc/net/tcp*) and every listening AF_UNIX stream
# socket with a path under /run (from /proc/net/unix), connected to in parallel (non-blocking), one short timeout;
# prints what each one said first. An SSH server speaks first ("SSH-2.0-..."), so its banner shows here.
LISTENER_PROBE = r"""
import json, os, select, socket, sys, time
targets = []
with open("/proc/net/unix") as f:
    next(f)
    for ln in f:
        p = ln.split()
        # Num RefCount Protocol Flags Type St Inode Path; Flags 0x10000 = __SO_ACCEPTCON (listening); Type 1 = stream
        if len(p) >= 8 and int(p[3], 16) & 0x10000 and int(p[4], 16) == 1 and p[7].startswith("/run/"):
            targets.append(("unix", p[7]))
for fn, fam in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
    try:
        lines = open(fn).read().splitlines()[1:]
    except OSError:
        continue
    for ln in lines:
        p = ln.split()
        if p[3] != "0A":  # TCP_LISTEN
            continue
        addr_hex, port_hex = p[1].split(":")
        raw = bytes.fromhex(addr_hex)
        if fam == socket.AF_INET:
            addr = socket.inet_ntop(fam, raw[::-1])
            addr = "127.0.0.1" if addr == "0.0.0.0" else addr
        else:
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
            addr = socket.inet_ntop(fam, raw)
            addr = "::1" if addr == "::" else addr
        targets.append(("tcp" if fam == socket.AF_INET else "tcp6", (addr, int(port_hex, 16))))
seen, socks = set(), {}
for kind, addr in targets:
    key = (kind, str(addr))
    if key in seen:
        continue
    seen.add(key)
    s = socket.socket(socket.AF_UNIX if kind == "unix" else socket.AF_INET if kind == "tcp" else socket.AF_INET6,
                      socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(addr)
    except (BlockingIOError, InterruptedError):
        pass
    except OSError as e:
        print(json.dumps({"kind": kind, "addr": str(addr), "error": e.strerror}))
        s.close()
        continue
    socks[s] = (kind, str(addr), b"")
deadline = time.monotonic() + float(sys.argv[1] if len(sys.argv) > 1 else 2.0)
while socks and time.monotonic() < deadline:
    r, _, _ = select.select(list(socks), [], [], max(0.0, deadline - time.monotonic()))
    for s in r:
        kind, addr, got = socks[s]
        try:
            data = s.recv(256)
        except OSError:
            data = b""
        if not data or b"\n" in got + data or len(got + data) >= 256:
            print(json.dumps({"kind": kind, "addr": addr, "said": (got + data).decode("latin-1")}))
            s.close()
            del socks[s]
        else:
            socks[s] = (kind, addr, got + data)
for s, (kind, addr, got) in socks.items():
    print(json.dumps({"kind": kind, "addr": addr, "said": got.decode("latin-1")}))
    s.close()
"""


def listeners(node):
    """[{kind, addr, said}] of every listening TCP socket and AF_UNIX stream socket under /run of the node."""
    # 3 s: a socket-activated sshd (Accept=no) first runs `sshd -t`, which on a loaded machine takes a while.
    p = node.sh("python3 - 3.0", input=LISTENER_PROBE)
    return [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()]


def ssh_listeners(node):
    return [x for x in listeners(node) if x.get("said", "").startswith("SSH-")]


def ssh_socket_units(node):
    """Lines of `systemctl list-sockets` (listening sockets) that name an ssh/sshd unit."""
    out = node.sh("systemctl list-sockets --no-legend --plain --no-pager", check=False).stdout
    return [ln for ln in out.splitlines() if re.search(r"\bsshd?[-.@a-z0-9]*\.(socket|service)", ln)]


GENERATOR_SOCKET = "sshd-unix-local.socket"
GENERATOR_PATH = "/run/ssh-unix-local/socket"
GENERATOR_MASK = "/etc/systemd/system-generators/systemd-ssh-generator"
GENERATOR_FIXED_SOCKETS = ("sshd-unix-local.socket", "sshd-vsock.socket", "sshd-unix-export.socket", "sshd-extra.socket")


def assert_nothing_answers_as_sshd(env):
    node = env.node
    assert not env.net.port_open(22), "port 22 is open from outside"
    found = ssh_listeners(node)
    assert not found, f"sockets answering as sshd on a Disabled node: {found}"
    units = ssh_socket_units(node)
    assert not units, f"systemctl list-sockets lists ssh units: {units}"
    if node.lane.generator:
        # systemd-ssh-generator's AF_UNIX socket (made at every boot): not listening, not started in this boot.
        assert node.prop(GENERATOR_SOCKET, "ActiveState") != "active", node.sh(
            f"systemctl status --no-pager {GENERATOR_SOCKET}", check=False).stdout
        assert node.sh(f"test -S {GENERATOR_PATH}", check=False).returncode != 0, f"{GENERATOR_PATH} exists"
        # ... and never listened in this boot, not even before the agent masked it.
        assert node.prop(GENERATOR_SOCKET, "InactiveExitTimestampMonotonic") in ("", "0"), \
            f"{GENERATOR_SOCKET} was started in this Disabled boot"


def assert_generator_masked(node, masked):
    """The design (TEAM.md, branch units): in Disabled the generator's fixed socket names are masked and the
    generator itself is masked (/etc/systemd/system-generators/systemd-ssh-generator -> /dev/null); in the other
    modes neither (what the image had, generator included)."""
    if not node.lane.generator:
        return
    link = node.sh(f"readlink {GENERATOR_MASK}", check=False).stdout.strip()
    if masked:
        assert link == "/dev/null", f"{GENERATOR_MASK}: {link!r}"
        for u in GENERATOR_FIXED_SOCKETS:
            assert node.file_state(u) == "masked", f"{u}: {node.file_state(u)}"
    else:
        assert link == "", f"generator still masked: {GENERATOR_MASK} -> {link}"
        assert node.file_state(GENERATOR_SOCKET) != "masked"


def assert_sshd_answers(node, tcp=True):
    """The other half of the probe (so that it can fail): sshd's banner on port 22 and, on systemd >= 256, on the
    generator's AF_UNIX socket: "what the image had"."""
    found = ssh_listeners(node)
    kinds = {(x["kind"], x["addr"]) for x in found}
    if tcp:
        assert any(k in ("tcp", "tcp6") and a.endswith(", 22)") for k, a in kinds), f"no sshd on port 22: {found}"
    if node.lane.generator:
        assert ("unix", GENERATOR_PATH) in kinds, f"the generator's {GENERATOR_PATH} does not answer: {found}"
        assert node.prop(GENERATOR_SOCKET, "ActiveState") == "active"
        assert_started_after_agent(node, GENERATOR_SOCKET)


# ---------------------------------------------------------------------------------------------------------
# cloud-init: the admin user made at first boot, before the agent

def cloud_init_user_unit(node):
    """The unit of cloud-init's "init" stage (users-groups): cloud-init-network.service since 24.3, else
    cloud-init.service."""
    if node.prop("cloud-init-network.service", "LoadState") == "loaded":
        return "cloud-init-network.service"
    return "cloud-init.service"


def assert_cloud_init(env):
    """cloud-init made the admin user from the NoCloud seed, finished its user stage before the agent started, kept
    the datasource's key out of authorized_keys, and ended "done" without errors."""
    node = env.node
    for u in node.lane.cloud_init_units:
        assert node.prop(u, "LoadState") == "loaded", f"{u} is not in this lane's cloud-init"
    pw = node.sh(f"getent passwd {h.ADMIN}", check=False).stdout.strip().split(":")
    assert len(pw) == 7 and pw[2] == str(h.ADMIN_UID), f"admin user not created by cloud-init: {pw}"
    unit = cloud_init_user_unit(node)
    assert node.prop(unit, "Result") == "success", node.sh(f"systemctl status --no-pager {unit}", check=False).stdout
    done = int(node.prop(unit, "ExecMainExitTimestampMonotonic") or 0)
    start = int(node.prop("aks-ssh-access.service", "ExecMainStartTimestampMonotonic") or 0)
    if start:  # (not set when the agent did not run in this boot, e.g. a test without the agent)
        assert 0 < done <= start, f"aks-ssh-access started ({start}) before {unit} finished ({done})"
    assert env.keys.pub[h.DATASOURCE_KEY].split()[1] not in authorized_keys(node), "cloud-init wrote the datasource's key"
    assert node.sh("test -e /root/.ssh/authorized_keys && cat /root/.ssh/authorized_keys", check=False).stdout.find(
        env.keys.pub[h.DATASOURCE_KEY].split()[1]) < 0, "cloud-init gave root the datasource's key"
    p = node.sh("cloud-init status --long", check=False)
    text = p.stdout
    assert re.search(r"^status: done$", text, re.M), f"cloud-init status (exit {p.returncode}):\n{text}{p.stderr}"
    assert p.returncode == 0, f"cloud-init status exit {p.returncode}:\n{text}"
    assert not re.search(r"^errors:\s*\S", text, re.M) or re.search(r"^errors: \[\]$", text, re.M), text
    m = re.search(r"^recoverable_errors:\s*(.*)$", text, re.M)
    assert m is None or m.group(1).strip() in ("{}", ""), f"cloud-init recoverable errors:\n{text}"


# ---------------------------------------------------------------------------------------------------------
# checks

def existing_ssh_units(node):
    return [u for u in h.SSH_UNITS if node.prop(u, "LoadState") not in ("not-found",)]


def assert_no_ordering_cycle(node):
    """No ordering cycle in this boot. PID 1 reports cycles while it builds the initial transaction, before
    journald runs, so on a container they only reach the console: read both."""
    text = node.sh("journalctl -b --no-pager -o cat", check=False).stdout + node.console.read_text(errors="replace")
    bad = [ln for ln in text.splitlines() if re.search(r"ordering cycle|deleted to break", ln, re.I)]
    assert not bad, f"ordering cycle at boot: {bad}"


def assert_agent_ok(node):
    assert node.prop("aks-ssh-access.service", "Result") == "success", node.sh(
        "systemctl status --no-pager -l aks-ssh-access.service", check=False).stdout
    assert node.prop("aks-ssh-access.service", "ActiveState") == "active"
    assert node.prop("aks-ssh-access.service", "ExecMainStatus") == "0"


def agent_done_usec(node):
    t = int(node.prop("aks-ssh-access.service", "ActiveEnterTimestampMonotonic") or 0)
    if t == 0:  # failed (fallback): it never became active; it finished when its main process exited
        t = int(node.prop("aks-ssh-access.service", "ExecMainExitTimestampMonotonic"))
    assert t > 0
    return t


def assert_started_after_agent(node, unit):
    """UNIT left "inactive" only after the agent had finished (monotonic timestamps of this boot)."""
    started = int(node.prop(unit, "InactiveExitTimestampMonotonic"))
    assert started > 0, f"{unit} never started"
    assert started >= agent_done_usec(node), f"{unit} started before aks-ssh-access finished"


def assert_never_started_this_boot(node, units):
    """No ssh unit left "inactive" in this boot, no start job in the journal, no sshd process ever logged."""
    for u in units:
        assert node.prop(u, "InactiveExitTimestampMonotonic") in ("0", ""), f"{u} was started in this boot"
        assert node.prop(u, "ActiveState") == "inactive", u
    for e in node.journal_entries():
        unit = e.get("UNIT") or e.get("USER_UNIT")
        if unit in h.SSH_UNITS and e.get("MESSAGE_ID") in (h.MID_UNIT_STARTING, h.MID_UNIT_STARTED):
            raise AssertionError(f"journal: {unit}: {e.get('MESSAGE')}")
        assert e.get("_COMM") != "sshd", f"sshd ran in this boot: {e.get('MESSAGE')}"
        assert "Server listening on" not in str(e.get("MESSAGE")), e.get("MESSAGE")


def assert_all_masked(node, units):
    for u in units:
        assert node.file_state(u) == "masked", f"{u}: {node.file_state(u)}"
    # Alias names that only exist while enabled (sshd.service on Debian) must not be left able to start sshd.
    for u in h.SSH_UNITS:
        assert node.file_state(u) in ("masked", "not-found"), f"{u}: {node.file_state(u)}"


def authorized_keys(node):
    return node.sh(f"cat /home/{h.ADMIN}/.ssh/authorized_keys", check=False).stdout


def assert_key_files_safe(node):
    out = node.sh(f"stat -c '%a %u %g %F' /home/{h.ADMIN}/.ssh /home/{h.ADMIN}/.ssh/authorized_keys").stdout.split("\n")
    assert out[0] == f"700 {h.ADMIN_UID} {h.ADMIN_UID} directory", out
    assert out[1] == f"600 {h.ADMIN_UID} {h.ADMIN_UID} regular file", out


def status_json(node):
    rc, doc, p = node.agent_json("status", "--json")
    assert doc is not None, f"status --json printed no JSON (rc {rc}): {p.stdout} {p.stderr}"
    return doc


def assert_login(env, key, ok=True):
    p = env.net.ssh(env.keys.priv[key])
    if ok:
        assert p.returncode == 0 and p.stdout.strip() == h.ADMIN, f"login with {key} failed: {p.stderr}"
    else:
        assert p.returncode == 255 and "Permission denied" in p.stderr, \
            f"login with {key} not refused as expected: rc {p.returncode} {p.stdout} {p.stderr}"


def check_local_user(env, keys=("k1", "k2"), refused=("k3",), service="ssh.service", own_line=None):
    node = env.node
    assert_agent_ok(node)
    assert_no_ordering_cycle(node)
    assert node.prop(service, "ActiveState") == "active", service
    assert_started_after_agent(node, service)
    for k in keys:
        assert_login(env, k)
    for k in (*refused, h.DATASOURCE_KEY):
        assert_login(env, k, ok=False)
    assert_sshd_answers(node)
    assert_generator_masked(node, False)
    assert_cloud_init(env)
    st = status_json(node)
    assert st["mode"].lower() == "localuser", st
    assert st["user"] == h.ADMIN
    assert sorted(k["fingerprint"] for k in st["keys"]) == sorted(env.keys.fp[k] for k in keys), st["keys"]
    text = authorized_keys(node)
    assert MANAGED_BLOCK_BEGIN in text
    for k in keys:
        assert text.count(env.keys.pub[k].split()[1]) == 1
    if own_line is not None:
        assert text.startswith(own_line), "the user's own line was not kept in front of the block"
    assert_key_files_safe(node)


def check_disabled(env, probe=None, own_line=OWN_LINE):
    node = env.node
    if probe is not None:
        tries, hits = env.net.stop_port_probe(probe)
        assert tries > 10, tries
        assert hits == 0, f"port 22 accepted {hits} of {tries} connections during boot"
    assert not env.net.port_open(22), "port 22 is open"
    units = existing_ssh_units(node)
    assert units, "no ssh unit at all?"
    assert_all_masked(node, units)
    assert_never_started_this_boot(node, units)
    assert_no_ordering_cycle(node)
    assert_nothing_answers_as_sshd(env)
    assert_generator_masked(node, True)
    assert_cloud_init(env)
    assert authorized_keys(node) == own_line, "managed keys not removed / the user's own line changed"
    st = status_json(node)
    assert st["mode"].lower() == "disabled", st
    assert st["keys"] == [], st


def sshd_config_files(root):
    """{path: bytes} of /etc/ssh/sshd_config and every file under /etc/ssh/sshd_config.d (what EntraId may touch)."""
    out = {}
    for p in [root / "etc/ssh/sshd_config", *sorted((root / "etc/ssh/sshd_config.d").glob("*"))]:
        if p.is_file() or p.is_symlink():
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else f"-> {p.readlink()}".encode()
    return out


def sshd_T(node, user=h.ADMIN):
    """sshd's effective configuration for a connection of USER from the client namespace (sshd -T -C)."""
    # sshd -T needs its privilege separation directory, which only the units make (the agent's keeps it).
    p = node.sh(f"mkdir -p /run/sshd && sshd -T -C user={user},host=aks-e2e-client,addr={h.CLIENT_IP}", check=False)
    assert p.returncode == 0, f"sshd -T: {p.stderr}"
    return akstest.sshd_settings(p.stdout)


def check_entra_id(env, own_line, service="ssh.service", socket=None):
    """EntraId in force: the agent succeeded, sshd is up (the service, or the image's socket) after the agent,
    public-key authentication is off for the admin in sshd's effective configuration, every key is refused,
    the managed block is gone and the user's own line kept."""
    node = env.node
    assert_agent_ok(node)
    assert_no_ordering_cycle(node)
    unit = socket or service
    assert node.prop(unit, "ActiveState") == "active", node.sh(f"systemctl status --no-pager {unit}", check=False).stdout
    assert_started_after_agent(node, unit)
    assert sshd_T(node)["pubkeyauthentication"] == "no", "EntraId: sshd -T says pubkeyauthentication is not off"
    # The design (TEAM.md, branch entraid): a delimited block at the very top of sshd_config, no drop-in.
    cfg = node.sh("cat /etc/ssh/sshd_config").stdout
    assert cfg.startswith(ENTRA_BLOCK_BEGIN), f"EntraId block not at the top:\n{cfg[:300]}"
    assert node.sh(f"test -e {OLD_DROPIN}", check=False).returncode == 1, "old EntraId drop-in present"
    assert env.net.port_open(22)
    for k in ("k1", "k2", "own"):
        assert_login(env, k, ok=False)
    assert_sshd_answers(node)
    assert_generator_masked(node, False)
    assert authorized_keys(node) == own_line
    st = status_json(node)
    assert st["mode"].lower() == "entraid" and st["keys"] == [], st
    assert_cloud_init(env)


def boot(env, expect="running", **kw):
    state = env.node.boot(**kw)
    if expect is not None:
        failed = env.node.sh("systemctl --failed --no-legend --plain --no-pager", check=False).stdout
        assert state == expect, f"system {state}, failed units: {failed}"
    return state


# ---------------------------------------------------------------------------------------------------------
# cases

def test_lane_is_what_it_says(lane, rootfs):
    """The base image is the release the lane names: systemd, OpenSSH, cloud-init versions, the ssh generator."""
    v = h.run(["chroot", rootfs, "systemctl", "--version"]).stdout.split()[1]
    assert int(v) == lane.systemd, v
    p = h.run(["chroot", rootfs, "/usr/sbin/sshd", "-V"], check=False)
    assert f"OpenSSH_{lane.openssh}" in p.stderr, p.stderr
    ci = h.run(["chroot", rootfs, "dpkg-query", "-W", "-f=${Version}", "cloud-init"]).stdout
    assert ci.startswith("22.4" if lane.name == "bookworm" else "25."), ci
    gen = rootfs / "usr/lib/systemd/system-generators/systemd-ssh-generator"
    assert gen.exists() == lane.generator
    assert not (rootfs / "home" / h.ADMIN).exists() and h.ADMIN not in (rootfs / "etc/passwd").read_text(), \
        "the base image must not have the admin user: cloud-init makes it"


def test_local_user_two_keys(env):
    env.image(authorized_keys=OWN_LINE)
    env.imds("LocalUser", ["k1", "k2"])
    boot(env)
    check_local_user(env, own_line=OWN_LINE)
    assert env.node.file_state("ssh.service") == "enabled"
    # The agent asked IMDS like IMDS wants to be asked.
    reqs = env.net.imds_requests()
    assert reqs and all(r["headers"].get("Metadata") == "true" for r in reqs), reqs
    # A second run on an in-sync node changes nothing and keeps sshd running.
    before = env.node.sh(f"stat -c %Y.%i /home/{h.ADMIN}/.ssh/authorized_keys").stdout
    p = env.node.sh("aks-ssh-access apply", check=False)
    assert p.returncode == 0, p.stderr
    assert env.node.sh(f"stat -c %Y.%i /home/{h.ADMIN}/.ssh/authorized_keys").stdout == before
    assert env.node.sh("aks-ssh-access verify", check=False).returncode == 0
    assert_login(env, "k2")
    # The agent's own files, as its unit (StateDirectory=, UMask=) and the SPEC want them.
    out = env.node.sh("stat -c '%a %U %F' /var/lib/aks-ssh-access /var/lib/aks-ssh-access/state.json "
                      "/run/aks-ssh-access.lock").stdout.splitlines()
    assert out == ["700 root directory", "600 root regular file", "600 root regular empty file"], out


def test_disabled_from_first_boot(env):
    # The image comes with a managed block (e.g. keys an earlier apply wrote) and a line of the user's own.
    block = (f"{MANAGED_BLOCK_BEGIN} (edits inside this block are overwritten)\n{env.keys.pub['k1']}\n"
             "# END aks-ssh-access managed keys\n")
    root = env.image(authorized_keys=OWN_LINE + block)
    # Another unit of the image wants sshd (what defeats today's stop+disable): a masked sshd stays down.
    (root / "etc/systemd/system/wants-ssh.service").write_text(
        "[Unit]\nWants=ssh.service sshd.service\nAfter=ssh.service\n[Service]\nType=oneshot\n"
        "RemainAfterExit=yes\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
    h.run(["systemctl", f"--root={root}", "enable", "wants-ssh.service"])
    env.imds("Disabled", ["k1", "k2"])
    probe = env.net.start_port_probe()
    boot(env)
    check_disabled(env, probe)
    assert_agent_ok(env.node)
    assert env.node.prop("wants-ssh.service", "ActiveState") == "active"


def test_disabled_local_user_disabled_across_reboots(env):
    env.image(authorized_keys=OWN_LINE)
    env.imds("Disabled", ["k1", "k2"])
    probe = env.net.start_port_probe()
    boot(env)
    check_disabled(env, probe)

    env.node.poweroff()
    env.imds("LocalUser", ["k1", "k2"])
    boot(env)
    check_local_user(env, own_line=OWN_LINE)
    assert env.node.file_state("ssh.service") == "enabled"
    assert env.node.prop("ssh.socket", "ActiveState") == "inactive", "service and socket both on port 22"

    env.node.poweroff()
    env.imds("Disabled", ["k1", "k2"])
    probe = env.net.start_port_probe()
    boot(env)
    check_disabled(env, probe)


def test_socket_activation_image(env):
    env.image(h.image_socket_activation, authorized_keys=OWN_LINE)
    assert h.run(["systemctl", f"--root={env.node.root}", "is-enabled", "ssh.socket"]).stdout.strip() == "enabled"
    env.imds("Disabled", ["k1", "k2"])
    probe = env.net.start_port_probe()
    boot(env)
    check_disabled(env, probe)
    assert env.node.file_state("ssh.socket") == "masked"

    # LocalUser restores the image's way: socket activation, not the service (never both on port 22).
    env.node.poweroff()
    env.imds("LocalUser", ["k1", "k2"])
    boot(env)
    node = env.node
    assert_agent_ok(node)
    assert_no_ordering_cycle(node)
    assert node.file_state("ssh.socket") == "enabled"
    assert node.file_state("ssh.service") in ("disabled", "static", "indirect"), node.file_state("ssh.service")
    assert node.prop("ssh.socket", "ActiveState") == "active"
    assert_started_after_agent(node, "ssh.socket")
    for k in ("k1", "k2"):
        assert_login(env, k)
    assert_login(env, "k3", ok=False)


def test_socket_starts_only_after_agent(env):
    """With the socket enabled and LocalUser from the first boot: no cycle, the socket waits for the agent."""
    env.image(h.image_socket_activation)
    env.imds("LocalUser", ["k1"])
    boot(env)
    node = env.node
    assert_agent_ok(node)
    assert_no_ordering_cycle(node)
    assert_started_after_agent(node, "ssh.socket")
    # sockets.target (which Debian's ssh.socket is explicitly Before=) was reached, after the agent: the agent
    # runs before basic.target when a socket is enabled, which is why its unit has DefaultDependencies=no.
    assert node.prop("sockets.target", "ActiveState") == "active"
    assert_started_after_agent(node, "sockets.target")
    assert node.prop("aks-ssh-access.service", "DefaultDependencies") == "no"
    assert_login(env, "k1")


def test_azure_linux_naming(env):
    env.image(h.image_azure_linux_naming, authorized_keys=OWN_LINE)
    env.imds("LocalUser", ["k1", "k2"])
    boot(env)
    check_local_user(env, service="sshd.service", own_line=OWN_LINE)
    assert env.node.prop("ssh.service", "LoadState") == "not-found"

    env.node.poweroff()
    env.imds("Disabled", ["k1", "k2"])
    probe = env.net.start_port_probe()
    boot(env)
    check_disabled(env, probe)
    assert env.node.file_state("sshd.service") == "masked"
    assert env.node.file_state("sshd.socket") == "masked"


def test_entra_id_and_back(env):
    """EntraId on Debian's own sshd configuration: sshd runs with public-key authentication off for the admin (as
    `sshd -T -C user=...` says), the managed keys removed, the user's own key line refused; back to LocalUser: the
    image's sshd configuration byte for byte, keys back, the own key logs in again."""
    own = env.keys.pub["own"] + "\n"
    root = env.image(authorized_keys=own)
    image_ssh = sshd_config_files(root)
    env.imds("LocalUser", ["k1", "k2"])
    boot(env)
    check_local_user(env, own_line=own)
    assert_login(env, "own")
    assert sshd_T(env.node)["pubkeyauthentication"] == "yes"

    env.node.poweroff()
    env.imds("EntraId", ["k1", "k2"])
    boot(env)
    check_entra_id(env, own_line=own)

    env.node.poweroff()
    env.imds("LocalUser", ["k1", "k2"])
    boot(env)
    assert sshd_config_files(env.node.root) == image_ssh, "leaving EntraId did not give back the image's sshd config"
    assert ENTRA_BLOCK_BEGIN not in env.node.sh("cat /etc/ssh/sshd_config").stdout, "EntraId block left behind"
    check_local_user(env, own_line=own)
    assert_login(env, "own")


def test_imds_down_fails_closed_then_recovers(env):
    env.image(config={"deadline_s": "5"}, authorized_keys=OWN_LINE)
    env.imds("LocalUser", ["k1", "k2"], up=False)
    probe = env.net.start_port_probe()
    t0 = time.monotonic()
    state = boot(env, expect=None)
    node = env.node
    # The agent's unit failed (69: IMDS unavailable) and says so where support staff look.
    assert state == "degraded", state
    assert node.prop("aks-ssh-access.service", "Result") == "exit-code"
    assert node.prop("aks-ssh-access.service", "ExecMainStatus") == "69"
    st = node.sh("systemctl status --no-pager -l aks-ssh-access.service", check=False)
    assert st.returncode == 3 and "failed" in st.stdout and "status=69" in st.stdout, st.stdout
    failed = node.sh("systemctl --failed --no-legend --plain --no-pager", check=False).stdout.split()
    assert "aks-ssh-access.service" in failed and len([f for f in failed if f.endswith((".service", ".socket"))]) == 1, failed
    # It waited for IMDS for about the configured deadline (5 s), not the default 90 s.
    took = (int(node.prop("aks-ssh-access.service", "ExecMainExitTimestampMonotonic")) -
            int(node.prop("aks-ssh-access.service", "ExecMainStartTimestampMonotonic"))) / 1e6
    assert 4 <= took <= 30, took
    assert time.monotonic() - t0 < 60
    check_disabled(env, probe)  # fail closed: fallback_mode = disabled

    env.node.poweroff()
    env.imds("LocalUser", ["k1", "k2"], up=True)
    boot(env)
    check_local_user(env, own_line=OWN_LINE)


def test_verify_detects_hand_made_drift(env):
    env.image()
    env.imds("Disabled", ["k1"])
    boot(env)
    node = env.node
    p = node.sh("aks-ssh-access verify", check=False)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert node.prop("aks-ssh-access-verify.timer", "ActiveState") == "active"
    # In its sandbox too (read-only file system, no network, only CAP_DAC_READ_SEARCH): in sync = success.
    node.sh("systemctl start aks-ssh-access-verify.service")
    assert node.prop("aks-ssh-access-verify.service", "Result") == "success"
    node.sh("systemctl reset-failed; journalctl --rotate >/dev/null 2>&1 || true")

    node.sh("systemctl unmask ssh.service sshd.service && systemctl enable ssh.service")
    p = node.sh("aks-ssh-access verify", check=False)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    line = p.stdout.splitlines()[0] if p.stdout else ""
    assert line, "verify printed nothing on stdout"

    # The timer's run (made to fire now, not 5 min after boot) logs the drift and shows in systemctl.
    node.sh("mkdir -p /run/systemd/system/aks-ssh-access-verify.timer.d && printf '[Timer]\\nOnActiveSec=1s\\n"
            "RandomizedDelaySec=0\\nAccuracySec=1ms\\n' >/run/systemd/system/aks-ssh-access-verify.timer.d/e2e.conf"
            " && systemctl daemon-reload && systemctl restart aks-ssh-access-verify.timer")
    deadline = time.monotonic() + 30
    svc = "aks-ssh-access-verify.service"
    before = int(node.prop(svc, "ExecMainStartTimestampMonotonic"))

    def finished_new_run():
        start = int(node.prop(svc, "ExecMainStartTimestampMonotonic") or 0)
        end = int(node.prop(svc, "ExecMainExitTimestampMonotonic") or 0)
        return start > before and end >= start and node.prop(svc, "ActiveState") in ("failed", "inactive")

    while not finished_new_run():
        assert time.monotonic() < deadline, "the verify timer did not fire"
        time.sleep(0.5)
    assert node.prop("aks-ssh-access-verify.service", "Result") == "exit-code"
    assert node.prop("aks-ssh-access-verify.service", "ExecMainStatus") == "1"
    # journald may still be reading the unit's stdout stream when the unit has exited: wait for it (at most 10 s).
    deadline = time.monotonic() + 10
    while True:
        logged = node.sh("journalctl -b --no-pager -o cat -u aks-ssh-access-verify.service").stdout
        if line in logged or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert line in logged, f"verify's line {line!r} not in the unit's journal:\n{logged}"
    failed = node.sh("systemctl --failed --no-legend --plain --no-pager", check=False).stdout
    assert "aks-ssh-access-verify.service" in failed


def test_units_verify_and_sandbox(env):
    """systemd-analyze verify passes on every unit we ship (as installed), and the exposure is recorded."""
    env.image()
    env.imds("LocalUser", ["k1"])
    boot(env)
    node = env.node
    units = ["aks-ssh-access.service", "aks-ssh-access-verify.service", "aks-ssh-access-verify.timer",
             "ssh.socket", "ssh.service"]
    paths = " ".join(f"/usr/lib/systemd/system/{u}" for u in units)
    p = node.sh(f"systemd-analyze verify --man=no {paths}", check=False)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr
    for u in ("aks-ssh-access.service", "aks-ssh-access-verify.service"):
        p = node.sh(f"systemd-analyze security --no-pager {u}", check=False)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout)
        assert m, p.stdout
        h.log(f"systemd-analyze security {u}: {m.group(1)}")
        (h.BUILD / f"security-{u}.txt").write_text(p.stdout)  # kept for the README's figure
        assert float(m.group(1)) <= 3.0, p.stdout
    # The sandbox did not get in the agent's way: it ran, wrote, and sshd started.
    assert_agent_ok(node)
    assert_login(env, "k1")


def test_live_backend_under_valgrind(env):
    """The sd-bus backend against PID 1 of the node, every call, under valgrind (run from the host)."""
    env.image(agent=False)
    # A scratch unit with an alias, so that every call has something real to change.
    unitdir = env.node.root / "usr/lib/systemd/system"
    (unitdir / "e2e-probe.service").write_text(
        "[Unit]\nDescription=e2e probe\n[Service]\nExecStart=/bin/sleep infinity\n"
        "[Install]\nWantedBy=multi-user.target\nAlias=e2e-probe-alias.service\n")
    # valgrind (and its libc debug symbols) and the probe run from the host's tree, bound read-only into the
    # node, with the node's /run/systemd bound over the host tree's: they talk to the node's PID 1.
    env.node.boot(extra_args=["--bind-ro=/:/run/host-root"])
    node = env.node
    ops = ["file-state:e2e-probe.service", "enable:e2e-probe.service", "enable:e2e-probe.service", "reload",
           "file-state:e2e-probe.service", "resolve:e2e-probe-alias.service", "resolve:sshd.service",
           "resolve:no-such-unit.service", "file-state:no-such-unit.service", "active-state:no-such-unit.service",
           "start:e2e-probe.service", "stop:e2e-probe.service", "disable:e2e-probe.service",
           "disable:e2e-probe.service", "mask:e2e-probe.service", "mask:e2e-probe.service", "reload",
           "file-state:e2e-probe.service", "start:e2e-probe.service", "unmask:e2e-probe.service",
           "unmask:e2e-probe.service", "reload", "file-state:e2e-probe.service", "active-state:ssh.service"]
    # valgrind needs a writable TMPDIR; a tmpfs on the host tree's /mnt, not on /tmp: the probe (in the
    # checkout's build/) may well live under /tmp.
    p = node.sh("unshare -m --propagation private /bin/sh -c 'mount --bind /run/systemd /run/host-root/run/systemd && "
                "mount -t tmpfs tmpfs /run/host-root/mnt && "
                "TMPDIR=/mnt exec chroot /run/host-root valgrind --error-exitcode=99 --leak-check=full "
                "--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect "
                f"{h.PROBE_BIN} {' '.join(ops)}'", check=False)
    h.log("probe:\n" + p.stdout + p.stderr)
    out = dict()
    lines = [ln for ln in p.stdout.splitlines() if " = " in ln]
    assert len(lines) == len(ops), (p.stdout, p.stderr)
    for i, ln in enumerate(lines):
        out[i] = ln.split(" = ", 1)[1]
    assert p.returncode == 1, f"valgrind or the probe: rc {p.returncode}\n{p.stderr}"  # 1: the masked start
    assert re.search(r"==\d+== ERROR SUMMARY: 0 errors from 0 contexts", p.stderr), p.stderr
    assert re.search(r"==\d+== All heap blocks were freed|definitely lost: 0 bytes", p.stderr), p.stderr
    expect = ["disabled", "1", "0", "0", "enabled", "e2e-probe.service", "ssh.service", "-2", "not-found",
              "inactive", "0", "0", "1", "0", "1", "0", "0", "masked", None, "1", "0", "0", "disabled", "active"]
    for i, e in enumerate(expect):
        if e is not None:
            assert out[i] == e, f"{ops[i]}: {out[i]} (expected {e})"
    assert int(out[18]) < 0
    # The failure names the unit and the D-Bus error.
    assert re.search(r"Failed to start e2e-probe\.service: .*\(org\.freedesktop\.systemd1\.UnitMasked\)", p.stderr), \
        p.stderr
    # What systemctl sees agrees.
    assert node.file_state("e2e-probe.service") == "disabled"
    assert node.prop("e2e-probe.service", "ActiveState") == "inactive"


# ---------------------------------------------------------------------------------------------------------
# images as they really are (variants.py): each mode ends right on each, on each lane

def check_variant_local_user(env, variant, own_line):
    node = env.node
    assert_agent_ok(node)
    assert_no_ordering_cycle(node)
    unit = variant.socket or variant.service
    assert node.prop(unit, "ActiveState") == "active", node.sh(f"systemctl status --no-pager {unit}", check=False).stdout
    assert_started_after_agent(node, unit)
    # What the image had: the service enabled, or the socket (and then not the service: never both on port 22).
    if variant.socket:
        assert node.file_state(variant.socket) == "enabled"
        assert node.file_state(variant.service) in ("disabled", "static", "indirect"), node.file_state(variant.service)
    else:
        assert node.file_state(variant.service) == "enabled"
    for k in ("k1", "own"):
        assert_login(env, k)
    for k in ("k3", h.DATASOURCE_KEY):
        assert_login(env, k, ok=False)
    assert sshd_T(node)["pubkeyauthentication"] == "yes"
    assert_sshd_answers(node)
    assert_generator_masked(node, False)
    text = authorized_keys(node)
    assert text.startswith(own_line) and MANAGED_BLOCK_BEGIN in text and env.keys.pub["k1"].split()[1] in text
    assert_cloud_init(env)


@pytest.mark.parametrize("variant", V.VARIANTS, ids=lambda v: v.label)
def test_image_variant_all_modes(env, variant):
    """LocalUser -> EntraId -> Disabled -> LocalUser on the unit layout and sshd_config of a real AKS image."""
    own = env.keys.pub["own"] + "\n"
    root = env.image(variant, authorized_keys=own)
    image_ssh = sshd_config_files(root)

    env.imds("LocalUser", ["k1"])
    boot(env)
    check_variant_local_user(env, variant, own)

    env.node.poweroff()
    env.imds("EntraId", ["k1"])
    boot(env)
    check_entra_id(env, own, service=variant.service, socket=variant.socket)
    if variant is V.azure_linux_3:
        # The aadsshlogin Match block stays in force for Entra ID users.
        t = sshd_T(env.node, user="alice@contoso.com")
        assert t.get("authorizedkeyscommand") == "/usr/sbin/aad_certhandler %u %k", t.get("authorizedkeyscommand")
        assert t.get("authorizedkeyscommanduser") == "root", t.get("authorizedkeyscommanduser")

    env.node.poweroff()
    env.imds("Disabled", ["k1"])
    probe = env.net.start_port_probe()
    boot(env)
    check_disabled(env, probe, own_line=own)
    assert_agent_ok(env.node)
    assert sshd_config_files(env.node.root) == image_ssh, "leaving EntraId did not give back the image's sshd config"

    env.node.poweroff()
    env.imds("LocalUser", ["k1"])
    boot(env)
    check_variant_local_user(env, variant, own)
    assert sshd_config_files(env.node.root) == image_ssh


# ---------------------------------------------------------------------------------------------------------
# fail closed per unit (SPEC §4 "Every unit is tried"), live backend on a booted node



@pytest.mark.parametrize("kind", ["dangling-link", "alias-loop", "mask-refused"])
def test_broken_unit_fails_closed(env, kind):
    """One managed unit that cannot be handled like the others: a dangling link or a link loop at sshd.socket
    (broken unit file), or an enabled ssh.socket whose unit file is a local copy in /etc/systemd/system, so
    that PID 1 refuses to mask it (D-Bus error: the file exists). Disabled masks every other ssh unit, nothing
    answers as sshd during or after boot, and the agent exits non-zero naming that unit."""
    root = env.image(authorized_keys=OWN_LINE)
    unitdir = root / "etc/systemd/system"
    broken = "sshd.socket"
    if kind == "dangling-link":
        (unitdir / "sshd.socket").symlink_to("/nonexistent/sshd.socket")
    elif kind == "alias-loop":
        (unitdir / "sshd.socket").symlink_to("sshd-loop.socket")
        (unitdir / "sshd-loop.socket").symlink_to("sshd.socket")
    else:
        broken = "ssh.socket"
        h.image_socket_activation(root)
        (unitdir / "ssh.socket").write_text((root / "usr/lib/systemd/system/ssh.socket").read_text())
        p = h.run(["systemctl", f"--root={root}", "mask", "ssh.socket"], check=False)
        assert p.returncode != 0 and "exists" in p.stderr, p  # what PID 1 will answer the agent, too
    env.imds("Disabled", ["k1"])
    probe = env.net.start_port_probe()
    boot(env, expect=None)
    node = env.node
    tries, hits = env.net.stop_port_probe(probe)
    assert tries > 10 and hits == 0, f"port 22 accepted {hits} of {tries} connections during boot"
    status = node.prop("aks-ssh-access.service", "ExecMainStatus")
    log = node.sh("journalctl -b --no-pager -o cat -u aks-ssh-access.service", check=False).stdout
    assert status not in ("0", ""), f"a broken unit file was not reported (exit {status}):\n{log}"
    assert broken in log, f"the error does not name {broken}:\n{log}"
    others = [u for u in ("ssh.service", "ssh.socket") if u != broken]
    for u in others:
        assert node.file_state(u) == "masked", f"{u}: {node.file_state(u)} (one broken unit failed the rest open)"
    assert node.file_state("sshd.service") in ("masked", "not-found"), node.file_state("sshd.service")
    assert_never_started_this_boot(node, others)
    assert node.prop(broken, "ActiveState") in ("inactive", ""), f"{broken} is {node.prop(broken, 'ActiveState')}"
    assert_nothing_answers_as_sshd(env)
    assert_generator_masked(node, True)
    assert authorized_keys(node) == OWN_LINE
    assert_cloud_init(env)


# ---------------------------------------------------------------------------------------------------------
# drift repair by the verify timer's service (drift = repair), or only a report (the default)

@pytest.mark.parametrize("drift", ["repair", "report"])
def test_verify_service_drift(env, drift):
    env.image(config={"drift": drift} if drift != "report" else None)
    env.imds("Disabled", ["k1"])
    boot(env)
    node = env.node
    assert node.sh("aks-ssh-access verify", check=False).returncode == 0
    # Someone opens sshd by hand.
    node.sh("systemctl unmask ssh.service ssh.socket sshd.service && systemctl start ssh.service")
    assert node.prop("ssh.service", "ActiveState") == "active"
    assert ssh_listeners(node), "sshd started by hand does not answer?"
    node.sh("systemctl reset-failed aks-ssh-access-verify.service; systemctl start aks-ssh-access-verify.service",
            check=False)
    svc = node.prop("aks-ssh-access-verify.service", "ExecMainStatus")
    log = node.sh("journalctl -b --no-pager -o cat -u aks-ssh-access-verify.service", check=False).stdout
    if drift == "repair":
        assert svc == "0", f"verify with drift = repair: exit {svc}\n{log}"
        for u in existing_ssh_units(node):
            assert node.file_state(u) == "masked", f"{u}: {node.file_state(u)}\n{log}"
        assert node.prop("ssh.service", "ActiveState") == "inactive"
        assert_nothing_answers_as_sshd(env)
    else:
        assert svc == "1", f"verify (report): exit {svc}\n{log}"
        assert node.prop("ssh.service", "ActiveState") == "active", "drift = report must not repair"
        assert node.file_state("ssh.service") != "masked"


# ---------------------------------------------------------------------------------------------------------
# the generator's other sockets: those asked for with the ssh.listen credential and systemd.ssh_listen=

def test_generator_extra_listeners(env):
    """systemd >= 256 also makes sshd-extra*.socket for the ssh.listen credential and systemd.ssh_listen= on the
    kernel command line (a container's: systemd's own arguments). LocalUser: they answer as the image had them
    (on systemd 252 nothing does: no generator); Disabled: nothing answers on them either."""
    args = dict(extra_args=["--set-credential=ssh.listen:0.0.0.0:2222"], init_args=["systemd.ssh_listen=2223"])
    own = env.keys.pub["own"] + "\n"
    env.image(authorized_keys=own)
    env.imds("LocalUser", ["k1"])
    boot(env, **args)
    node = env.node
    check_local_user(env, keys=("k1",), refused=("k2", "k3"), own_line=own)
    assert_login(env, "own")
    addrs = {(x["kind"], x["addr"]) for x in ssh_listeners(node)}
    for port in (2222, 2223):
        answers = any(a.endswith(f", {port})") for k, a in addrs if k.startswith("tcp"))
        assert answers == node.lane.generator, f"port {port}: sshd answers {answers} (generator: {node.lane.generator})"
        assert env.net.port_open(port) == node.lane.generator, port

    env.node.poweroff()
    env.imds("Disabled", ["k1"])
    probe = env.net.start_port_probe()
    boot(env, **args)
    check_disabled(env, probe, own_line=own)
    for port in (2222, 2223):
        assert not env.net.port_open(port), f"port {port} open in Disabled"
    extra = node.sh("systemctl list-units --all --no-legend --plain 'sshd-*.socket'", check=False).stdout
    assert not any(" active " in ln for ln in extra.splitlines()), extra
