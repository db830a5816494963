# SPDX-License-Identifier: MIT
"""End-to-end harness: a Debian node booted with systemd-nspawn, real systemd, real sshd, real cloud-init, IMDS emulator.

Two lanes (LANES): Debian 12 "bookworm" (systemd 252, OpenSSH 9.2, cloud-init 22.4) and Debian 13 "trixie"
(systemd 257 with systemd-ssh-generator, OpenSSH 10.0, cloud-init 25.x). Each lane has its own cached base image
under build/e2e/<lane>/rootfs; every test of the suites that boot nodes runs on each lane.

Layout of one test ("node"):
  netns <tag>n   the node's network: lo (+ 169.254.169.254/32) (the IMDS emulator listens there,
                 inside this namespace only), veth vn0 = 10.231.0.2/24. The container uses this namespace.
  netns <tag>c   the "outside world": veth vc0 = 10.231.0.1/24; ssh logins and port probes start here.
  overlay        build/e2e/<lane>/rootfs (debootstrap, cached) + a per-test upper dir, mounted at <run>/merged; the
                 same upper dir across power cycles = reboots of the same node.
  cloud-init     the base image has no admin user: Debian's own cloud-init creates it at first boot from a NoCloud
                 seed (/var/lib/cloud/seed/nocloud), as Azure's datasource does from osProfile.
The host namespace never sends a packet anywhere: everything happens inside the two namespaces.
"""
import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))
import akstest  # noqa: E402  (the helpers shared with tests/integration and tests/bench)

BUILD = REPO / "build" / "e2e"
ROOTFS_STAMP_NAME = ".aks-e2e-rootfs"
EMULATOR = REPO / "tests" / "imds-emulator"
AGENT_BIN = Path(os.environ.get("AKS_SSH_ACCESS_BIN", REPO / "build" / "aks-ssh-access"))
PROBE_BIN = Path(os.environ.get("AKS_E2E_PROBE_BIN", BUILD / "units-live-probe"))

ADMIN = "azureuser"
ADMIN_UID = 1000
MODE_TAG = akstest.TAG
VM_ID = "0b5f9c1e-0000-4000-8000-00000000e2e0"
NODE_IP = "10.231.0.2"
CLIENT_IP = "10.231.0.1"
IMDS_IP = "169.254.169.254"


class Lane:
    """One Debian release the nodes are built from. debootstrap installs what has no virtual dependency;
    apt-get inside the tree (chroot) installs the rest (debootstrap's resolver cannot: cloud-init)."""

    def __init__(self, name, debootstrap_packages, apt_packages, systemd, openssh, generator, cloud_init_units):
        self.name = name
        self.suite = name
        self.debootstrap_packages = debootstrap_packages
        self.apt_packages = apt_packages
        self.systemd = systemd          # major version, as `systemctl --version` says
        self.openssh = openssh          # "9.2" ...
        self.generator = generator      # systemd-ssh-generator (systemd >= 256) is in the image
        self.cloud_init_units = cloud_init_units  # the units of that cloud-init (22.4: 4 stages; 25.x: main + stages)
        self.dir = BUILD / name
        self.rootfs = self.dir / "rootfs"
        # Version of the base image recipe: any change rebuilds the cached rootfs.
        self.recipe = f"3 {name} {debootstrap_packages} + {' '.join(apt_packages)} cloud-init-seeded {ADMIN}:{ADMIN_UID}"
        self.debootstrap_recipe = f"{name} {debootstrap_packages}"

    def __repr__(self):
        return self.name


_BASE = "systemd,systemd-sysv,dbus,openssh-server,iproute2,passwd,libcjson1,libsodium23"
LANES = {
    "bookworm": Lane("bookworm", _BASE + ",libcurl4", ["cloud-init"], systemd=252, openssh="9.2", generator=False,
                     cloud_init_units=("cloud-init-local.service", "cloud-init.service", "cloud-config.service",
                                       "cloud-final.service")),
    "trixie": Lane("trixie", _BASE + ",libcurl4t64", ["cloud-init"], systemd=257, openssh="10.0", generator=True,
                   cloud_init_units=("cloud-init-main.service", "cloud-init-local.service",
                                     "cloud-init-network.service", "cloud-config.service", "cloud-final.service")),
}
DEFAULT_LANE = LANES["bookworm"]


def selected_lanes():
    """AKS_E2E_LANES="bookworm trixie" (default: every lane), in that order."""
    names = os.environ.get("AKS_E2E_LANES", " ".join(LANES)).replace(",", " ").split()
    unknown = [n for n in names if n not in LANES]
    if unknown:
        raise ValueError(f"AKS_E2E_LANES: unknown lane(s) {unknown}; known: {list(LANES)}")
    return [LANES[n] for n in names]


# Kept for callers of the single-lane days (tests/bench): the default lane's base image.
ROOTFS = DEFAULT_LANE.rootfs
SUITE = DEFAULT_LANE.suite

SSH_UNITS = ("ssh.service", "sshd.service", "ssh.socket", "sshd.socket")
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
            "-o", "PreferredAuthentications=publickey"]

# MESSAGE_IDs systemd logs for unit jobs (sd-messages.h).
MID_UNIT_STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
MID_UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"


def log(msg):
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    p = subprocess.run([str(c) for c in cmd], **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
                           f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


# ---------------------------------------------------------------------------------------------------------
# Base image (built once, cached under build/e2e/rootfs)

def debian_mirror(suite="bookworm"):
    """The Debian mirror this machine's apt uses (deb822 .sources or one-line lists); it serves every suite."""
    for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        text = Path(f).read_text()
        for stanza in text.split("\n\n"):
            if re.search(r"^Suites:.*\bbookworm\b", stanza, re.M) and "security" not in stanza:
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if m:
                    return m.group(1)
    for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        with contextlib.suppress(OSError):
            for line in Path(f).read_text().splitlines():
                m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(?:bookworm|trixie)\s", line)
                if m:
                    return m.group(1)
    return "http://deb.debian.org/debian"


def ensure_rootfs(lane=None):
    """Builds the lane's base image once (reused while its recipe stamp matches): debootstrap, then apt-get
    inside the tree, then customize_base. Several runs at once wait for each other (flock)."""
    lane = lane or DEFAULT_LANE
    lane.dir.mkdir(parents=True, exist_ok=True)
    with open(lane.dir / ".rootfs.lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        stamp = lane.rootfs / ROOTFS_STAMP_NAME
        if stamp.exists() and stamp.read_text() == lane.recipe:
            return lane.rootfs
        t0 = time.monotonic()
        tmp = lane.dir / "rootfs.tmp"
        done = tmp / ".debootstrap-done"
        if not (done.exists() and done.read_text() == lane.debootstrap_recipe):
            if tmp.exists():
                shutil.rmtree(tmp)
            mirror = debian_mirror(lane.suite)
            log(f"debootstrap {lane.suite} from {mirror} (once, cached in {lane.rootfs})")
            run(["debootstrap", "--variant=minbase", f"--include={lane.debootstrap_packages}", lane.suite, tmp,
                 mirror], stdout=subprocess.DEVNULL)
            log(f"debootstrap {lane.suite} took {time.monotonic() - t0:.0f} s")
            done.write_text(lane.debootstrap_recipe)
        apt_install(tmp, lane.apt_packages)
        customize_base(tmp)
        if lane.rootfs.exists():
            shutil.rmtree(lane.rootfs)
        done.unlink()
        (tmp / ROOTFS_STAMP_NAME).write_text(lane.recipe)
        tmp.rename(lane.rootfs)
        log(f"base image {lane.name} ready in {time.monotonic() - t0:.0f} s")
        return lane.rootfs


def ensure_rootfs_all(lanes):
    """ensure_rootfs of several lanes at once (a cold CI machine: the debootstraps overlap their downloads)."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        for f in [pool.submit(ensure_rootfs, lane) for lane in lanes]:
            f.result()


def apt_install(root, packages):
    """apt-get install inside the tree: /proc mounted, a policy-rc.d that starts nothing, no recommends."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    os.chmod(policy, 0o755)
    run(["mount", "-t", "proc", "proc", root / "proc"])
    try:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
        run(["chroot", root, "apt-get", "update", "-q"], env=env)
        run(["chroot", root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env,
            stdout=subprocess.DEVNULL)
        run(["chroot", root, "apt-get", "clean"], env=env)
    finally:
        run(["umount", "-l", root / "proc"], check=False)
        policy.unlink()


# /etc/cloud/cloud.cfg.d/ of the base image: the NoCloud seed is the node's only datasource; the container's link is
# set up from outside (cloud-init must not write a network configuration); the host keys the image has are kept.
CLOUD_CFG_E2E = """\
# aks-ssh-access e2e: a container node whose datasource is the NoCloud seed in /var/lib/cloud/seed/nocloud.
datasource_list: [NoCloud]
network: {config: disabled}
ssh_deletekeys: false
"""


def customize_base(root):
    """What every AKS-like image has: no machine-id baked in, nothing slow at boot, cloud-init that can run in a
    container. The admin user is NOT in the image: cloud-init creates it at first boot (write_seed)."""
    (root / "etc/hostname").write_text("aks-e2e-node\n")
    (root / "etc/machine-id").write_text("")
    # cloud-init (python) refuses to run in the C locale on Debian 13 without it; harmless on 12.
    (root / "etc/default/locale").write_text("LANG=C.UTF-8\n")
    (root / "etc/cloud/cloud.cfg.d/05-aks-e2e.cfg").write_text(CLOUD_CFG_E2E)
    # Debian's default user is in "netdev", which a cloud image has (a system group) and minbase has not: without it
    # cloud-init would create it as gid 1000 and the admin's own group would not be ADMIN_UID.
    if run(["chroot", root, "getent", "group", "netdev"], check=False).returncode != 0:
        run(["chroot", root, "groupadd", "-r", "netdev"])
    # Persistent journal, so a test can read the journal of an earlier boot.
    (root / "var/log/journal").mkdir(mode=0o2755, exist_ok=True)
    # Timers of a general-purpose Debian that would only add noise to a 30 s boot.
    for t in ("apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
              "fstrim.timer"):
        run(["systemctl", f"--root={root}", "disable", t], check=False)


def write_seed(root, public_keys=(), instance_id=VM_ID):
    """The NoCloud seed cloud-init reads at first boot, shaped like what Azure's datasource gives: the admin user as
    the default user (osProfile.adminUsername) and the VM's public keys as the datasource's keys (which the
    image's cloud-init drop-in, 90-aks-ssh-access.cfg, keeps out of authorized_keys)."""
    seed = root / "var/lib/cloud/seed/nocloud"
    seed.mkdir(parents=True, exist_ok=True)
    meta = {"instance-id": instance_id, "local-hostname": "aks-e2e-node", "public-keys": list(public_keys)}
    (seed / "meta-data").write_text(json.dumps(meta, indent=1) + "\n")
    # The default user is created by cc_users_groups (sudo: null, this image has no sudo; "false" is deprecated).
    (seed / "user-data").write_text(
        "#cloud-config\n"
        f"user: {{name: {ADMIN}, uid: {ADMIN_UID}, shell: /bin/bash, lock_passwd: true, sudo: null}}\n")


def prepare_home(root):
    """The admin's home made before first boot (a test that seeds authorized_keys), owned as cloud-init's useradd
    will make the user (uid/gid ADMIN_UID); useradd keeps an existing home."""
    home = root / "home" / ADMIN
    if not home.exists():
        home.mkdir(mode=0o750, parents=True)
        os.chown(home, ADMIN_UID, ADMIN_UID)
    return home


# ---------------------------------------------------------------------------------------------------------
# Installing the agent into an image, as an image builder would

def install_method():
    """How the agent gets into the image: AKS_E2E_INSTALL=provision|make|copy, else the best available."""
    m = os.environ.get("AKS_E2E_INSTALL")
    if m:
        return m
    if os.access(REPO / "image-hooks" / "provision", os.X_OK):
        return "provision"
    if (REPO / "image-hooks" / "image-hooks.mk").exists():
        return "make"
    return "copy"


def install_agent(root):
    """Installs the agent into the image tree and enables it, the way an image builder does: the
    image-hooks provisioning hook (which runs `make install DESTDIR=root PREFIX=/usr`, then enables the
    units offline), or plain `make install` + `systemctl --root enable`. The image's sshd units are left as
    the test's image variant set them (--default-ssh keep)."""
    method = install_method()
    if method == "provision":
        run([REPO / "image-hooks" / "provision", f"--root={root}", f"--from-tree={REPO}", "--default-ssh=keep",
             "--quiet"])
    elif method == "make":
        run(["make", "-s", "-C", REPO, "install", f"DESTDIR={root}", "PREFIX=/usr"])
    else:
        unitdir = root / "usr/lib/systemd/system"
        shutil.copy2(AGENT_BIN, root / "usr/bin/aks-ssh-access")
        for f in sorted((REPO / "units").iterdir()):
            if f.suffix in (".service", ".timer", ".socket"):
                shutil.copy2(f, unitdir / f.name)
    # The binary under test (AKS_SSH_ACCESS_BIN, e.g. a locally rebuilt one) wins over what was installed.
    if AGENT_BIN.exists():
        shutil.copy2(AGENT_BIN, root / "usr/bin/aks-ssh-access")
        os.chmod(root / "usr/bin/aks-ssh-access", 0o755)
    run(["systemctl", f"--root={root}", "enable", "aks-ssh-access.service", "aks-ssh-access-verify.timer"])


def set_config(root, **settings):
    """Sets key = value lines in the image's /etc/aks-ssh-access.conf (keeps other lines)."""
    conf = root / "etc/aks-ssh-access.conf"
    lines = conf.read_text().splitlines() if conf.exists() else []
    for key, value in settings.items():
        lines = [ln for ln in lines if not re.match(rf"\s*{key}\s*=", ln)]
        lines.append(f"{key} = {value}")
    conf.write_text("\n".join(lines) + "\n")


def image_socket_activation(root):
    """An image that uses socket activation: ssh.socket enabled, ssh.service not."""
    run(["systemctl", f"--root={root}", "disable", "ssh.service"])
    run(["systemctl", f"--root={root}", "enable", "ssh.socket"])


def image_azure_linux_naming(root):
    """Azure Linux names its units sshd.service / sshd.socket: no ssh.* unit, no alias."""
    unitdir = root / "usr/lib/systemd/system"
    run(["systemctl", f"--root={root}", "disable", "ssh.service", "ssh.socket"])
    svc = (unitdir / "ssh.service").read_text()
    svc = "\n".join(ln for ln in svc.splitlines() if not ln.startswith("Alias=")) + "\n"
    (unitdir / "sshd.service").write_text(svc)
    (unitdir / "ssh.service").unlink()
    (unitdir / "sshd.socket").write_text((unitdir / "ssh.socket").read_text())
    (unitdir / "ssh.socket").unlink()
    # Debian's SysV script would make systemd-sysv-generator synthesize an ssh.service: Azure Linux has none.
    for f in [root / "etc/init.d/ssh", *root.glob("etc/rc?.d/[SK][0-9][0-9]ssh")]:
        f.unlink()
    run(["systemctl", f"--root={root}", "enable", "sshd.service"])
    for u in ("ssh.service", "ssh.socket", "sshd.service"):
        assert (unitdir / u).exists() == (u == "sshd.service"), u


# ---------------------------------------------------------------------------------------------------------
# IMDS documents and keys

# k1..k3: keys IMDS may list; "own": a line the user put into authorized_keys himself (outside the managed block);
# "ds": the key the cloud datasource hands to cloud-init (must never reach authorized_keys).
KEY_NAMES = ("k1", "k2", "k3", "own", "ds")
DATASOURCE_KEY = "ds"


class Keys:
    """ed25519 key pairs made with ssh-keygen; fingerprints as ssh-keygen -l prints them."""

    def __init__(self, directory, names=KEY_NAMES):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.priv, self.pub, self.fp = {}, {}, {}
        for n in names:
            p = self.dir / n
            if not p.exists():
                akstest.ssh_keygen(p, comment=f"e2e-{n}")
            self.priv[n] = p
            self.pub[n] = (self.dir / f"{n}.pub").read_text().strip()
            self.fp[n] = akstest.fingerprint(f"{p}.pub")


def imds_doc(mode, keys, admin=ADMIN):
    """The node's IMDS document (akstest.imds_doc: shaped like an AKS node's) with this harness's vmId."""
    return akstest.imds_doc(mode, keys, user=admin, vm_id=VM_ID, computer_name="aks-e2e-node")


# ---------------------------------------------------------------------------------------------------------
# Network namespaces + IMDS emulator

class Net:
    def __init__(self, tag, workdir):
        self.node_ns = f"{tag}n"
        self.client_ns = f"{tag}c"
        self.workdir = Path(workdir)
        self.doc = self.workdir / "imds.json"
        self.imds_log = self.workdir / "imds.log"
        self.emulator = None
        self.probes = []

    def setup(self):
        for ns in (self.node_ns, self.client_ns):
            if Path(f"/run/netns/{ns}").exists():
                run(["ip", "netns", "del", ns], check=False)
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        n, c = self.node_ns, self.client_ns
        # IMDS' link-local address on the node namespace's loopback (this kernel has no dummy links).
        run(["ip", "-n", n, "addr", "add", f"{IMDS_IP}/32", "dev", "lo"])
        run(["ip", "-n", n, "link", "add", "vn0", "type", "veth", "peer", "name", "vc0", "netns", c])
        run(["ip", "-n", n, "addr", "add", f"{NODE_IP}/24", "dev", "vn0"])
        run(["ip", "-n", c, "addr", "add", f"{CLIENT_IP}/24", "dev", "vc0"])
        run(["ip", "-n", n, "link", "set", "vn0", "up"])
        run(["ip", "-n", c, "link", "set", "vc0", "up"])

    def write_doc(self, doc):
        tmp = self.doc.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.rename(self.doc)

    def start_imds(self):
        """The emulator at 169.254.169.254:80, inside the node's namespace only."""
        if self.emulator:
            return
        self.emulator = subprocess.Popen(
            ["ip", "netns", "exec", self.node_ns, "/usr/bin/python3", EMULATOR, "--bind", IMDS_IP, "--port", "80",
             "--doc", self.doc, "--log", self.imds_log],
            stdout=subprocess.PIPE, stderr=open(self.workdir / "imds.stderr", "a"), text=True)
        line = self.emulator.stdout.readline().strip()
        if line != "80":
            self.stop_imds()
            raise RuntimeError(f"IMDS emulator did not start (said {line!r})")

    def stop_imds(self):
        if self.emulator:
            akstest.stop_process(self.emulator)
            self.emulator = None

    def imds_requests(self):
        if not self.imds_log.exists():
            return []
        return [json.loads(ln) for ln in self.imds_log.read_text().splitlines() if ln.strip()]

    def teardown(self):
        self.stop_imds()
        for p in self.probes:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in (self.node_ns, self.client_ns):
            run(["ip", "netns", "del", ns], check=False)

    # From the outside world (the client namespace):
    def ssh(self, key, command="id -un", user=ADMIN):
        return run(["ip", "netns", "exec", self.client_ns, "ssh", *SSH_OPTS, "-i", key, f"{user}@{NODE_IP}",
                    command], check=False, stdin=subprocess.DEVNULL)

    def port_open(self, port=22):
        """True if a TCP connect to the node's port succeeds (refused/timeout: False)."""
        p = run(["ip", "netns", "exec", self.client_ns, "/usr/bin/python3", "-c",
                 "import socket,sys\n"
                 "s=socket.socket(); s.settimeout(2)\n"
                 f"sys.exit(0 if s.connect_ex(('{NODE_IP}',{port}))==0 else 1)"], check=False)
        return p.returncode == 0

    def start_port_probe(self, port=22):
        """Connects to the node's port every 20 ms until stopped; stop_port_probe() says how often it got in."""
        code = ("import socket,signal,sys,time\n"
                "hits=0; tries=0; stop=False\n"
                "def h(*a):\n global stop; stop=True\n"
                "signal.signal(signal.SIGTERM,h)\n"
                "print('ready',flush=True)\n"
                "while not stop:\n"
                " s=socket.socket(); s.settimeout(0.5)\n"
                f" tries+=1; hits+= s.connect_ex(('{NODE_IP}',{port}))==0\n"
                " s.close(); time.sleep(0.02)\n"
                "print(tries,hits,flush=True)\n")
        p = subprocess.Popen(["ip", "netns", "exec", self.client_ns, "/usr/bin/python3", "-c", code],
                             stdout=subprocess.PIPE, text=True)
        self.probes.append(p)
        assert p.stdout.readline().strip() == "ready"
        return p

    @staticmethod
    def stop_port_probe(p):
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(10)
        tries, hits = map(int, out.split())
        return tries, hits


# ---------------------------------------------------------------------------------------------------------
# The node: an overlay on the base image, booted with systemd-nspawn

class Node:
    def __init__(self, tag, workdir, net, lane=None, seed_keys=()):
        self.lane = lane or DEFAULT_LANE
        self.seed_keys = list(seed_keys)
        self.tag = tag
        self.workdir = Path(workdir)
        self.net = net
        self.upper = self.workdir / "upper"
        self.ovl_work = self.workdir / "ovlwork"
        self.merged = self.workdir / "merged"
        self.proc = None
        self.leader = None
        self.boots = 0
        self.console = None

    # -- image
    def mount(self):
        if os.path.ismount(self.merged):
            return
        for d in (self.upper, self.ovl_work, self.merged):
            d.mkdir(parents=True, exist_ok=True)
        fresh = not any(self.upper.iterdir())
        run(["mount", "-t", "overlay", f"e2e-{self.tag}", "-o",
             f"lowerdir={self.lane.rootfs},upperdir={self.upper},workdir={self.ovl_work}", self.merged])
        if fresh:
            write_seed(self.merged, self.seed_keys)

    def umount(self):
        if os.path.ismount(self.merged):
            r = run(["umount", self.merged], check=False)
            if r.returncode != 0:
                run(["umount", "-l", self.merged], check=False)

    @property
    def root(self):
        return self.merged

    # -- boot / power off
    def boot(self, timeout=120, extra_args=(), init_args=()):
        """Boots the image and waits until systemd finished starting up. Returns is-system-running's word.
        extra_args go to systemd-nspawn, init_args to the container's systemd (its "kernel command line")."""
        assert self.proc is None
        self.mount()
        self.boots += 1
        self.console = self.workdir / f"console-{self.boots}.log"
        cmd = ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", f"--machine=e2e-{self.tag}",
               f"--network-namespace-path=/run/netns/{self.net.node_ns}", "--console=read-only",
               "--link-journal=no", *extra_args, "-D", self.merged, *init_args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.console, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.leader is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited ({self.proc.returncode}): {self.console.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("container PID 1 not found")
            self.leader = self._find_leader()
            time.sleep(0.05)
        while not Path(f"/proc/{self.leader}/root/run/systemd/private").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"systemd did not come up: {self.console.read_text()[-3000:]}")
            time.sleep(0.05)
        left = max(1, int(deadline - time.monotonic()))
        p = self.sh(f"timeout {left} systemctl is-system-running --wait", check=False)
        state = p.stdout.strip()
        log(f"{self.tag}: boot {self.boots}: {state}")
        return state

    def _find_leader(self):
        """The container's PID 1: the descendant of systemd-nspawn whose innermost PID is 1."""
        todo, seen = [self.proc.pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                m = re.search(r"^NSpid:\s+(.*)$", status, re.M)
                if m and m.group(1).split()[-1] == "1" and len(m.group(1).split()) > 1:
                    return pid
            with contextlib.suppress(OSError):
                for t in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
        return None

    def poweroff(self, timeout=60):
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.sh("systemctl poweroff --no-block", check=False, timeout=10)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.tag}: poweroff timed out, killing the container")
            self.kill()
        self.proc = None
        self.leader = None

    def kill(self):
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(20)
        self.proc = None
        self.leader = None

    def reboot(self):
        self.poweroff()
        return self.boot()

    def teardown(self):
        if self.proc is not None:
            # Keep the failing state around for a post-mortem before it is gone.
            with contextlib.suppress(Exception):
                (self.workdir / "journal-last-boot.txt").write_text(
                    self.sh("journalctl -b --no-pager -o short-monotonic", check=False, timeout=20).stdout)
            self.poweroff(timeout=20)
        self.kill()
        self.umount()

    # -- inside the running node
    def sh(self, script, check=True, timeout=120, input=None):
        """Runs a shell command line in every namespace of the booted node."""
        assert self.leader, "node is not running"
        return run(["nsenter", "-t", self.leader, "-a", "--", "/usr/bin/env", "-i",
                    "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "/bin/sh", "-c", script],
                   check=check, timeout=timeout, input=input)

    def prop(self, unit, name):
        return self.sh(f"systemctl show -P {name} {unit}").stdout.strip()

    def file_state(self, unit):
        p = self.sh(f"systemctl is-enabled {unit}", check=False)
        out = p.stdout.strip()
        return out if out else "not-found"

    def journal(self, args=""):
        return self.sh(f"journalctl -b --no-pager -o json {args}", check=False).stdout

    def journal_entries(self, args=""):
        out = []
        for ln in self.journal(args).splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(ln))
        return out

    def agent_json(self, *args):
        p = self.sh("aks-ssh-access " + " ".join(args), check=False)
        return p.returncode, json.loads(p.stdout) if p.stdout.strip().startswith("{") else None, p


# ---------------------------------------------------------------------------------------------------------

class Cleanup:
    """Everything a test started, torn down in reverse order whatever happens (also on SIGTERM/SIGINT)."""

    def __init__(self):
        self.items = []

    def push(self, fn):
        self.items.append(fn)
        return fn

    def run(self):
        while self.items:
            fn = self.items.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - teardown must go on
                log(f"teardown step failed: {e}")


# ----------------------------------------------------------------------------------------------------------------
# Shared by the suites that boot nodes (tests/e2e, image-hooks/tests): one node per test, leftovers, summary.


def sweep(run_dir, ns_regex):
    """Unmounts what lies below run_dir and deletes the network namespaces whose name matches ns_regex."""
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f]
    for m in reversed(mounts):
        if m.startswith(str(run_dir) + "/"):
            subprocess.run(["umount", "-l", m], check=False)
    if Path("/run/netns").is_dir():
        for ns in os.listdir("/run/netns"):
            if re.fullmatch(ns_regex, ns):
                subprocess.run(["ip", "netns", "del", ns], check=False)


def terminal_summary(terminalreporter, name):
    """The closing line CI reads: "NAME: N passed, N failed"."""
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    terminalreporter.write_line(f"{name}: {passed} passed, {failed} failed")


class NodeEnv:
    """One node of one test: its network namespaces (IMDS emulator inside), its container, its cleanup."""

    counter = 0

    def __init__(self, name, keys, runs, ns_prefix, lane=None):
        NodeEnv.counter += 1
        self.lane = lane or DEFAULT_LANE
        self.tag = f"{ns_prefix}{NodeEnv.counter}"
        self.workdir = runs / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        self.keys = keys
        self.cleanup = Cleanup()
        self.net = Net(self.tag, self.workdir)
        self.cleanup.push(self.net.teardown)
        self.net.setup()
        # The datasource's key (osProfile's, on Azure) is one IMDS never lists here: cloud-init must not install it.
        self.node = Node(self.tag, self.workdir, self.net, self.lane, seed_keys=[keys.pub[DATASOURCE_KEY]])
        self.cleanup.push(self.node.teardown)

    def imds(self, mode, key_names=(), up=True):
        self.net.write_doc(imds_doc(mode, [self.keys.pub[k] for k in key_names]))
        if up:
            self.net.start_imds()
        else:
            self.net.stop_imds()
