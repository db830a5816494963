# SPDX-License-Identifier: MIT
# End-to-end tests: the agent on a booted Debian 12 node (systemd-nspawn + real systemd + real sshd) with the
# IMDS emulator reachable only inside network namespaces the tests create. Needs root. The Debian base image
# is debootstrapped once into build/e2e/rootfs and reused. `make e2e E2E_ARGS="-k socket -x"` to select.
# Needs (TEST_DEBS): debootstrap systemd-container iproute2 openssh-client python3-pytest valgrind libc6-dbg
# (valgrind on Debian needs the ld.so symbols of libc6-dbg). AKS_E2E_INSTALL=provision|make|copy picks how
# the agent is put into the image (default: image-hooks/provision).

E2E_PROBE := $(BUILD)/e2e/units-live-probe
E2E_ARGS  ?=

# Drives the live unit backend alone (test_live_backend_under_valgrind).
$(E2E_PROBE): tests/e2e/units-live-probe.c $(BUILD)/obj/agent/apply/units-live.o $(BUILD)/obj/agent/util/log.o
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS)

.PHONY: e2e
e2e: $(BUILD)/aks-ssh-access $(E2E_PROBE)
	cd tests/e2e && AKS_SSH_ACCESS_BIN=$(CURDIR)/$(BUILD)/aks-ssh-access \
		AKS_E2E_PROBE_BIN=$(CURDIR)/$(E2E_PROBE) $(PYTHON) -m pytest -q -p no:cacheprovider $(E2E_ARGS) .

CHECK_TARGETS += e2e
