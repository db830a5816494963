# SPDX-License-Identifier: MIT
"""Node image variants built from the unit texts and sshd configuration of the images AKS runs on, as their
public sources have them (each text names its source: repository, path, commit). Applied to the Debian base
image of a lane, they keep Debian's sshd binary and PAM, and take the unit layout and sshd_config of:

  azure_linux_3   Azure Linux 3.0 / CBL-Mariner: sshd.service with Wants=/After=sshd-keygen.service,
                  sshd-keygen.service, no socket unit, an sshd_config without Include.
  ubuntu_2404     Ubuntu 24.04 with socket activation: ssh.socket (Accept=no, RequiredBy=ssh.service) enabled,
                  ssh.service disabled, plus the ssh.service.d/00-socket.conf drop-in that AgentBaker's
                  configureSSHService looks for (and removes when it switches a VHD back to the service).

Only what a variant needs to be that image is changed; where Debian's sshd needs something the original has
elsewhere, the line says so.
"""
import re

import harness as h  # first: it puts tests/lib on sys.path

import akstest  # noqa: E402

# ---------------------------------------------------------------------------------------------------------
# Azure Linux 3.0: microsoft/azurelinux @ 2172d5cf45e4ee08bf8f40f8b76c86fcfde1a834 ("[3.0] May 2026 monthly
# release"), SPECS/openssh/ (openssh 9.8p1-6). The spec installs these two files as /lib/systemd/system/*.

# SPECS/openssh/sshd.service, verbatim.
AZL_SSHD_SERVICE = """\
[Unit]
Description=OpenSSH Daemon
After=network.target sshd-keygen.service
Wants=sshd-keygen.service

[Service]
ExecStart=/usr/sbin/sshd -D
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
Restart=always

[Install]
WantedBy=multi-user.target
"""

# SPECS/openssh/sshd-keygen.service, verbatim.
AZL_SSHD_KEYGEN_SERVICE = """\
[Unit]
Description=Generate sshd host keys
ConditionPathExists=|!/etc/ssh/ssh_host_rsa_key
ConditionPathExists=|!/etc/ssh/ssh_host_ecdsa_key
ConditionPathExists=|!/etc/ssh/ssh_host_ed25519_key
Before=sshd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
"""

# /etc/ssh/sshd_config: upstream OpenSSH's sshd_config (openssh/openssh-portable, sshd_config at tag V_9_8_P1,
# commit 6849957945754e6551e515f41e8cf3937cda222d; no Include line) with its prose comments left out and every
# directive line (commented defaults included) in upstream's order, then the edits of SPECS/openssh/openssh.spec
# %install (AZL_SPEC_EDITS) applied to it.
UPSTREAM_SSHD_CONFIG_9_8 = """\
#	$OpenBSD: sshd_config,v 1.104 2021/07/02 05:11:21 dtucker Exp $

# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

#Port 22
#AddressFamily any
#ListenAddress 0.0.0.0
#ListenAddress ::

#HostKey /etc/ssh/ssh_host_rsa_key
#HostKey /etc/ssh/ssh_host_ecdsa_key
#HostKey /etc/ssh/ssh_host_ed25519_key

# Ciphers and keying
#RekeyLimit default none

# Logging
#SyslogFacility AUTH
#LogLevel INFO

# Authentication:

#LoginGraceTime 2m
#PermitRootLogin prohibit-password
#StrictModes yes
#MaxAuthTries 6
#MaxSessions 10

#PubkeyAuthentication yes

AuthorizedKeysFile	.ssh/authorized_keys

#AuthorizedPrincipalsFile none

#AuthorizedKeysCommand none
#AuthorizedKeysCommandUser nobody

#HostbasedAuthentication no
#IgnoreUserKnownHosts no
#IgnoreRhosts yes

# To disable tunneled clear text passwords, change to no here!
#PasswordAuthentication yes
#PermitEmptyPasswords no

#KbdInteractiveAuthentication yes

#KerberosAuthentication no
#GSSAPIAuthentication no

#UsePAM no

#AllowAgentForwarding yes
#AllowTcpForwarding yes
#GatewayPorts no
#X11Forwarding no
#PermitTTY yes
#PrintMotd yes
#PrintLastLog yes
#TCPKeepAlive yes
#PermitUserEnvironment no
#Compression delayed
#ClientAliveInterval 0
#ClientAliveCountMax 3
#UseDNS no
#PidFile /var/run/sshd.pid
#MaxStartups 10:30:100
#PermitTunnel no
#ChrootDirectory none
#VersionAddendum none

# no default banner path
#Banner none

# override default of no subsystems
Subsystem	sftp	/usr/libexec/sftp-server

# Example of overriding settings on a per-user basis
#Match User anoncvs
#	X11Forwarding no
#	AllowTcpForwarding no
#	PermitTTY no
#	ForceCommand cvs server
"""

# SPECS/openssh/openssh.spec %install at that commit, in order: the sed -i edits (pattern, replacement) ...
AZL_SPEC_EDITS = [
    (r"#UsePAM no", "UsePAM yes"),
    (r"#PermitRootLogin prohibit-password", "PermitRootLogin no"),
    (r"#PrintMotd yes", "PrintMotd no"),
    (r"#PermitUserEnvironment no", "PermitUserEnvironment no"),
    (r"#ClientAliveInterval 0", "ClientAliveInterval 120"),
    (r"#ClientAliveCountMax 0", "ClientAliveCountMax 0"),  # (upstream says "3": this one matches nothing)
]
# ... the appended lines (echo "" >> and a here-document) ...
AZL_SPEC_APPEND_1 = "\n# Ensure SSH LoginGraceTime is set to one minute or less\nLoginGraceTime 60\n"
AZL_SPEC_EDITS_2 = [
    (r"# no default banner path", "# default banner path"),
    (r"#Banner none", "Banner /etc/issue.net"),
]
AZL_SPEC_APPEND_2 = "MACs hmac-sha2-512,hmac-sha2-256\nCiphers aes256-ctr,aes192-ctr,aes128-ctr\n"

# What the aadsshlogin package (Entra ID login) appends to sshd_config: its Match block, which EntraId mode must
# leave in force (shape as in issue 9 / SPEC §1).
AADSSHLOGIN_BLOCK = """\
# Added by aadsshlogin installer
Match User *@*,????????-????-????-????-????????????
    AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k
    AuthorizedKeysCommandUser root
"""


def azure_linux_sshd_config():
    text = UPSTREAM_SSHD_CONFIG_9_8
    for pat, rep in AZL_SPEC_EDITS:
        text = re.sub(pat, rep, text)
    text += AZL_SPEC_APPEND_1
    for pat, rep in AZL_SPEC_EDITS_2:
        text = re.sub(pat, rep, text)
    return text + AZL_SPEC_APPEND_2


def remove_debian_ssh_units(root):
    """Debian's openssh-server units, aliases, SysV script (systemd-sysv-generator would make an ssh.service of it)
    and enablement links: gone, as on an image whose package never had them."""
    h.run(["systemctl", f"--root={root}", "disable", "ssh.service", "ssh.socket"], check=False)
    for d in ("usr/lib/systemd/system", "lib/systemd/system"):
        for name in ("ssh.service", "ssh.socket", "ssh@.service", "sshd.service", "sshd@.service",
                     "sshd-keygen.service", "rescue-ssh.target"):
            p = root / d / name
            if p.is_symlink() or p.exists():
                p.unlink()
    for f in [root / "etc/init.d/ssh", *root.glob("etc/rc?.d/[SK][0-9][0-9]ssh")]:
        f.unlink()


def azure_linux_3(root):
    """Azure Linux 3.0's openssh-server layout and configuration (see the texts above)."""
    remove_debian_ssh_units(root)
    unitdir = root / "usr/lib/systemd/system"  # the spec's /lib/systemd/system; /lib -> usr/lib on Debian
    (unitdir / "sshd.service").write_text(AZL_SSHD_SERVICE)
    (unitdir / "sshd-keygen.service").write_text(AZL_SSHD_KEYGEN_SERVICE)
    # Azure Linux's sshd is built with its privilege separation directory in /var/lib/sshd (the spec creates it);
    # Debian's sshd wants /run/sshd, which Debian's ssh.service makes (RuntimeDirectory=) and this sshd.service
    # does not: a tmpfiles.d line stands in for the difference of the two builds.
    (root / "etc/tmpfiles.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/tmpfiles.d/aks-e2e-sshd-privsep.conf").write_text("d /run/sshd 0755 root root -\n")
    cfg = root / "etc/ssh/sshd_config"
    cfg.write_text(azure_linux_sshd_config() + AADSSHLOGIN_BLOCK)
    cfg.chmod(0o600)  # %attr(0600,root,root) %config(noreplace)
    # Debian's sshd_config.d (empty) is left: Azure Linux has none, and this sshd_config does not include it.
    h.run(["systemctl", f"--root={root}", "enable", "sshd.service", "sshd-keygen.service"])  # %systemd_post


azure_linux_3.service = "sshd.service"
azure_linux_3.socket = None
azure_linux_3.label = "azure-linux-3"

# ---------------------------------------------------------------------------------------------------------
# Ubuntu 24.04 (noble), openssh 1:9.6p1-3ubuntu13.9: yaobinwen/openssh-ubuntu @
# b68bc075acfd0616efcea21e47ef4bdde7d1d284, applied-1:9.6p1-3ubuntu13.9/debian/systemd/ssh.socket and ssh.service
# (Ubuntu's source package, git-dpm "applied" tree). Its postinst enables ssh.socket and disables ssh.service
# (debian/openssh-server.postinst, "Make sure ssh.service is disabled ... systemctl enable ssh.socket").

UBUNTU_SSH_SOCKET = """\
[Unit]
Description=OpenBSD Secure Shell server socket
Before=sockets.target ssh.service
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Socket]
ListenStream=22
Accept=no
FreeBind=yes

[Install]
WantedBy=sockets.target
RequiredBy=ssh.service
"""

# ssh.service (same source): Debian 12's, byte for byte.
UBUNTU_SSH_SERVICE = akstest.DEBIAN_SSH_SERVICE

# /etc/systemd/system/ssh.service.d/00-socket.conf: the drop-in Ubuntu 22.10's socket-activation migration wrote
# (24.04's postinst removes it only on upgrades from < 1:9.6p1-3ubuntu3, line 140 of the postinst above; images
# that went through 22.10-23.10 keep it). Azure/AgentBaker @ 0036c27059cfe3e79d2fdee91d14c106ca22858b,
# parts/linux/cloud-init/artifacts/cse_helpers.sh, configureSSHService() checks for exactly this path (and
# ssh.socket.d/addresses.conf) when it turns such a VHD back to ssh.service. Its content: ordering on and
# requirement of the socket (the two directives of that migration's drop-in).
UBUNTU_00_SOCKET_CONF = """\
[Unit]
Requires=ssh.socket
After=ssh.socket
"""


def ubuntu_2404(root):
    """Ubuntu 24.04's socket-activated sshd: ssh.socket enabled, ssh.service disabled, the 00-socket.conf drop-in.
    sshd_config: the lane's Debian one, which is Ubuntu 24.04's (same debian-config patch: Include of
    sshd_config.d/*.conf at the top, KbdInteractiveAuthentication no, UsePAM yes); only comments differ."""
    unitdir = root / "usr/lib/systemd/system"
    h.run(["systemctl", f"--root={root}", "disable", "ssh.service", "ssh.socket"])
    (unitdir / "ssh.socket").write_text(UBUNTU_SSH_SOCKET)
    (unitdir / "ssh.service").write_text(UBUNTU_SSH_SERVICE)
    dropin = root / "etc/systemd/system/ssh.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "00-socket.conf").write_text(UBUNTU_00_SOCKET_CONF)
    # Debian's SysV script: Ubuntu 24.04 has one too (debian/openssh-server.ssh.init), systemd ignores it next to
    # the native ssh.service.
    h.run(["systemctl", f"--root={root}", "enable", "ssh.socket"])
    enabled = h.run(["systemctl", f"--root={root}", "is-enabled", "ssh.socket", "ssh.service"], check=False).stdout
    assert enabled.split() == ["enabled", "disabled"], enabled


ubuntu_2404.service = "ssh.service"
ubuntu_2404.socket = "ssh.socket"
ubuntu_2404.label = "ubuntu-24.04"

VARIANTS = [azure_linux_3, ubuntu_2404]
