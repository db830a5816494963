"""Test helpers shared by the integration suite (tests/integration/conftest.py), the end-to-end harness
(tests/e2e/harness.py, and through it the image-hook tests) and the benchmark (tests/bench/bench.py): one of
each. Stdlib only, no pytest. Import it with

    sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
    import akstest

What is here:
    TAG, IMDS_QUERY                  the mode tag's name; the IMDS query the agent sends
    KEYS_BEGIN/KEYS_END,             the markers of the managed authorized_keys block and of the EntraId
    ENTRA_BEGIN/ENTRA_END            sshd_config block, as the agent writes them (*_PREFIX: up to the parenthesis)
    DEBIAN_SSH_SERVICE/_SOCKET,      Debian 12's ssh units, verbatim
    DEBIAN_UNITS
    imds_doc()                       a document shaped like the one IMDS returns for an AKS node
    write_doc()                      a document (or any text) to a file, for --imds-file
    make_root()                      a scratch root tree: passwd/group with the admin user, ssh units, enablement
    is_enabled()                     what `systemctl --root=ROOT is-enabled UNIT` prints
    ssh_keygen(), fingerprint(),     key pairs and fingerprints, with ssh-keygen as the oracle
    fingerprints()
    snapshot()                       everything about a tree, for before/after comparisons
    sshd_settings()                  `sshd -T` output as {keyword: value}
    stop_process()                   terminate a helper process, kill it if it does not go
"""
import json
import os
import stat
import subprocess

TAG = "aks-managed-ssh-access"
IMDS_QUERY = "/metadata/instance?api-version=2021-08-01&extended=true"

# The agent's markers (agent/apply/authorized-keys.h, agent/apply/sshd-config.h).
KEYS_BEGIN_PREFIX = "# BEGIN aks-ssh-access managed keys"
KEYS_BEGIN = KEYS_BEGIN_PREFIX + " (edits inside this block are overwritten)"
KEYS_END = "# END aks-ssh-access managed keys"
ENTRA_BEGIN_PREFIX = "# BEGIN aks-ssh-access EntraId"
ENTRA_BEGIN = ENTRA_BEGIN_PREFIX + " (public-key authentication off outside Match blocks; removed in other modes)"
ENTRA_END = "# END aks-ssh-access EntraId"

# Debian 12's units (openssh-server 1:9.2p1-2), verbatim.
DEBIAN_SSH_SERVICE = """[Unit]
Description=OpenBSD Secure Shell server
Documentation=man:sshd(8) man:sshd_config(5)
After=network.target auditd.service
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Service]
EnvironmentFile=-/etc/default/ssh
ExecStartPre=/usr/sbin/sshd -t
ExecStart=/usr/sbin/sshd -D $SSHD_OPTS
ExecReload=/usr/sbin/sshd -t
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
Restart=on-failure
RestartPreventExitStatus=255
Type=notify
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755

[Install]
WantedBy=multi-user.target
Alias=sshd.service
"""
DEBIAN_SSH_SOCKET = """[Unit]
Description=OpenBSD Secure Shell server socket
Before=sockets.target
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Socket]
ListenStream=22
Accept=no

[Install]
WantedBy=sockets.target
"""
DEBIAN_UNITS = {"ssh.service": DEBIAN_SSH_SERVICE, "ssh.socket": DEBIAN_SSH_SOCKET}


# --------------------------------------------------------------------------------------------------------------
# IMDS documents


def imds_doc(mode, keys, user="azureuser", path=None, extra_tags=(), tag=TAG,
             vm_id="02aab8a4-74ef-476e-8182-f6d2ba4166a6", computer_name="aks-nodepool1-12345678-vmss000000"):
    """A document shaped like what IMDS returns for an AKS VMSS node (api-version 2021-08-01, extended=true).
    mode None leaves the mode tag out; keys are public key lines; path overrides every key's path."""
    tags = [{"name": "aks-managed-cluster-name", "value": "c1"}] + list(extra_tags)
    if mode is not None:
        tags.append({"name": tag, "value": mode})
    return {
        "compute": {
            "azEnvironment": "AzurePublicCloud",
            "location": "westeurope",
            "name": "aks-nodepool1-12345678-vmss_0",
            "osType": "Linux",
            "osProfile": {"adminUsername": user, "computerName": computer_name,
                          "disablePasswordAuthentication": "true"},
            "publicKeys": [{"keyData": k, "path": path or f"/home/{user}/.ssh/authorized_keys"} for k in keys],
            "tagsList": tags,
            "tags": ";".join(f"{t['name']}:{t['value']}" for t in tags),
            "vmId": vm_id,
            "vmScaleSetName": "aks-nodepool1-12345678-vmss",
            "vmSize": "Standard_D4s_v3",
            "zone": "",
            "userData": "",
            "securityProfile": {"secureBootEnabled": "false", "virtualTpmEnabled": "false"},
            "storageProfile": {"imageReference": {"id": "", "offer": "", "publisher": "", "sku": "", "version": ""},
                               "osDisk": {"caching": "ReadOnly", "diskSizeGB": "128", "osType": "Linux"}},
            "extended": {"compute": {"hasCustomData": "true"}},
        },
        "network": {"interface": [{"ipv4": {"ipAddress": [{"privateIpAddress": "10.224.0.4", "publicIpAddress": ""}],
                                             "subnet": [{"address": "10.224.0.0", "prefix": "16"}]},
                                    "ipv6": {"ipAddress": []}, "macAddress": "6045BD8E1A2B"}]},
    }


def write_doc(path, doc):
    """doc (a dict or list: serialized with json.dumps; a str: written as it is) to path; returns path as a str."""
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


# --------------------------------------------------------------------------------------------------------------
# Scratch roots and units


def make_root(root, user="azureuser", uid=1000, units=None, enable=("ssh.service",)):
    """A scratch root tree at root: etc/passwd and etc/group with root and the admin user (uid = gid), its home
    (0755, owned by it), the units {name: text} in usr/lib/systemd/system (default Debian 12's), and `enable`
    enabled with `systemctl --root`. Returns root."""
    for d in ("etc/systemd/system", "usr/lib/systemd/system", "var/lib", "run", "root", f"home/{user}"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "root"), 0o700)
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write(f"root:x:0:0:root:/root:/bin/bash\n{user}:x:{uid}:{uid}::/home/{user}:/bin/bash\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write(f"root:x:0:\n{user}:x:{uid}:\n")
    home = os.path.join(root, "home", user)
    os.chown(home, uid, uid)
    os.chmod(home, 0o755)
    for name, text in (DEBIAN_UNITS if units is None else units).items():
        with open(os.path.join(root, "usr/lib/systemd/system", name), "w") as f:
            f.write(text)
    for u in enable:
        subprocess.run(["systemctl", f"--root={root}", "enable", u], capture_output=True, check=True)
    return root


def is_enabled(root, unit):
    """What `systemctl --root=ROOT is-enabled UNIT` prints ("" for a unit it does not know)."""
    return subprocess.run(["systemctl", f"--root={root}", "is-enabled", unit], capture_output=True,
                          text=True).stdout.strip()


# --------------------------------------------------------------------------------------------------------------
# Keys: ssh-keygen is the oracle


def ssh_keygen(path, kind="ed25519", bits=None, comment=None):
    """A new key pair at path (private) and path.pub, no passphrase; returns the public key line."""
    cmd = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)]
    if bits:
        cmd += ["-b", str(bits)]
    if comment is not None:
        cmd += ["-C", comment]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    with open(f"{path}.pub") as f:
        return f.read().strip()


def fingerprint(pub_path):
    """The "SHA256:..." fingerprint of the one key in pub_path, as `ssh-keygen -l` prints it."""
    return subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub_path)], capture_output=True,
                          text=True, check=True).stdout.split()[1]


def fingerprints(path):
    """The sorted fingerprints of every key in an authorized_keys file (ssh-keygen must accept the file)."""
    r = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return sorted(line.split()[1] for line in r.stdout.splitlines() if line.strip())


def sshd_settings(text):
    """`sshd -T` output as {keyword: value}; a keyword listed more than once keeps its first value."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        out.setdefault(k, v)
    return out


def stop_process(proc, timeout=5):
    """SIGTERM, then SIGKILL when proc (a subprocess.Popen) is still there after timeout seconds; reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------------------------
# Trees


def _content(p, st, file_fields):
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(p))
    if stat.S_ISREG(st.st_mode):
        with open(p, "rb") as f:
            return ("file", f.read()) + tuple(getattr(st, n) for n in file_fields)
    if stat.S_ISDIR(st.st_mode):
        return ("dir",)
    return ("other", stat.S_IFMT(st.st_mode))


def snapshot(top, stat_fields=("st_mode", "st_uid", "st_gid"), file_fields=(), skip=(), with_top=False):
    """{path relative to top: (the lstat fields named in stat_fields..., content)} for every entry below top
    (sorted; no symlink followed), and for top itself (".") when with_top. content is ("link", target),
    ("file", bytes, the fields named in file_fields...), ("dir",) or ("other", S_IFMT).
    skip: paths relative to top whose subtrees are left out; a directory between top and a skipped path records
    only (st_mode, st_uid, st_gid): its times, size and link count change with what it holds."""
    top = os.fspath(top)
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        names = dirnames + filenames
        if with_top and dirpath == top:
            names = [""] + names
        for n in sorted(names):
            p = os.path.join(dirpath, n) if n else dirpath
            rel = os.path.relpath(p, top)
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            st = os.lstat(p)
            if any(s.startswith(rel + "/") for s in skip):
                out[rel] = (st.st_mode, st.st_uid, st.st_gid)
            else:
                out[rel] = tuple(getattr(st, f) for f in stat_fields) + (_content(p, st, file_fields),)
        dirnames[:] = [d for d in dirnames if os.path.relpath(os.path.join(dirpath, d), top) not in skip]
    return out
