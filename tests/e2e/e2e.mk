# SPDX-License-Identifier: MIT
# End-to-end tests: the agent on a booted Debian node (systemd-nspawn + real systemd + real sshd + real cloud-init)
# with the IMDS emulator reachable only inside network namespaces the tests create. Needs root. Every case runs on
# each lane of E2E_LANES: Debian 12 bookworm (systemd 252, OpenSSH 9.2) and Debian 13 trixie (systemd 257 with
# systemd-ssh-generator, OpenSSH 10.0). Each lane's base image is built once into build/e2e/<lane>/rootfs
# (debootstrap, then apt-get inside the tree for cloud-init) and reused while its recipe is unchanged.
# `make e2e E2E_LANES=trixie E2E_ARGS="-k socket -x"` to select.
# Needs (TEST_DEBS): debootstrap systemd-container iproute2 openssh-client python3-pytest valgrind libc6-dbg
# (valgrind on Debian needs the ld.so symbols of libc6-dbg). AKS_E2E_INSTALL=provision|make|copy picks how
# the agent is put into the image (default: image-hooks/provision).

E2E_PROBE := $(BUILD)/e2e/units-live-probe
E2E_ARGS  ?=
E2E_LANES ?= bookworm trixie

# Drives the live unit backend alone (test_live_backend_under_valgrind).
$(E2E_PROBE): tests/e2e/units-live-probe.c $(BUILD)/obj/agent/apply/units-live.o $(BUILD)/obj/agent/util/log.o
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS)

.PHONY: e2e
e2e: $(BUILD)/aks-ssh-access $(E2E_PROBE)
	cd tests/e2e && AKS_E2E_LANES="$(E2E_LANES)" AKS_SSH_ACCESS_BIN=$(CURDIR)/$(BUILD)/aks-ssh-access \
		AKS_E2E_PROBE_BIN=$(CURDIR)/$(E2E_PROBE) $(PYTHON) -m pytest -q -p no:cacheprovider $(E2E_ARGS) .

CHECK_TARGETS += e2e
