# SPDX-License-Identifier: MIT
# image-hooks/image-hooks.mk — included by the top-level Makefile.
#   make install DESTDIR= PREFIX=   lay out the agent (never enables or starts anything)
#   make deb                        build/aks-ssh-access_$(VERSION)_<arch>.deb (Debian/Ubuntu images)
#   make rpm                        build/rpm/RPMS/<arch>/aks-ssh-access-$(VERSION)-1.<arch>.rpm (on a Debian
#                                   host with --nodeps; on Azure Linux use the spec with its BuildRequires)
#   make image-hooks-test           shellcheck, install layout, provision/deprovision, packages, man page,
#                                   catalog, and the boot test through tests/e2e when it is there

SYSCONFDIR      ?= /etc
LOCALSTATEDIR   ?= /var
# The systemd unit directory: systemd's pkg-config answer for the system prefix, else under PREFIX.
ifeq ($(origin SYSTEMD_UNIT_DIR),undefined)
  ifeq ($(PREFIX),/usr)
    SYSTEMD_UNIT_DIR := $(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),/usr/lib/systemd/system)
  else
    SYSTEMD_UNIT_DIR := $(PREFIX)/lib/systemd/system
  endif
endif
CATALOG_DIR     ?= $(PREFIX)/lib/systemd/catalog
MAN8_DIR        ?= $(PREFIX)/share/man/man8
HOOKS_DIR       ?= $(PREFIX)/lib/aks-ssh-access

IH_UNITS        := $(sort $(wildcard units/*.service units/*.timer units/*.socket units/*.path))
IH_DROPINS      := $(sort $(wildcard units/*.d/*.conf))
IH_MAN          := image-hooks/man/aks-ssh-access.8
IH_CLOUD_INIT   := image-hooks/cloud-init/90-aks-ssh-access.cfg

DEB_ARCH        := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_FILE        := $(BUILD)/aks-ssh-access_$(VERSION)_$(DEB_ARCH).deb
RPM_TOPDIR      := $(CURDIR)/$(BUILD)/rpm
RPM_TARBALL     := $(BUILD)/rpm/SOURCES/aks-ssh-access-$(VERSION).tar.gz
RPMBUILD_FLAGS  ?=

CHECK_TARGETS   += image-hooks-test

.PHONY: install deb rpm image-hooks-test

install: $(BUILD)/aks-ssh-access
	install -D -m 0755 $(BUILD)/aks-ssh-access $(DESTDIR)$(PREFIX)/bin/aks-ssh-access
	install -d -m 0755 $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	install -m 0644 $(IH_UNITS) $(DESTDIR)$(SYSTEMD_UNIT_DIR)/
	set -e; for f in $(IH_DROPINS); do \
		install -D -m 0644 $$f $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$${f#units/}; done
	install -D -m 0644 units/aks-ssh-access.catalog $(DESTDIR)$(CATALOG_DIR)/aks-ssh-access.catalog
	install -D -m 0644 units/aks-ssh-access.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/aks-ssh-access.conf
	install -D -m 0644 image-hooks/npd/aks-ssh-access-monitor.json $(DESTDIR)$(PREFIX)/share/aks-ssh-access/npd/aks-ssh-access-monitor.json
	install -D -m 0644 $(IH_MAN) $(DESTDIR)$(MAN8_DIR)/aks-ssh-access.8
	@# An existing configuration is the admin's: never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/aks-ssh-access.conf || \
		install -D -m 0644 image-hooks/aks-ssh-access.conf $(DESTDIR)$(SYSCONFDIR)/aks-ssh-access.conf
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/aks-ssh-access.conf.d $(DESTDIR)$(SYSCONFDIR)/systemd/system-generators
	install -D -m 0644 $(IH_CLOUD_INIT) $(DESTDIR)$(SYSCONFDIR)/cloud/cloud.cfg.d/90-aks-ssh-access.cfg
	install -d -m 0700 $(DESTDIR)$(LOCALSTATEDIR)/lib/aks-ssh-access
	install -D -m 0755 image-hooks/provision $(DESTDIR)$(HOOKS_DIR)/provision
	install -D -m 0755 image-hooks/deprovision $(DESTDIR)$(HOOKS_DIR)/deprovision
	install -D -m 0644 $(IH_CLOUD_INIT) $(DESTDIR)$(HOOKS_DIR)/cloud-init/90-aks-ssh-access.cfg

# Debian/Ubuntu package: a staging tree from `make install`, DEBIAN/ from image-hooks/packaging/debian,
# files owned by root whatever user builds it (--root-owner-group).
deb: $(DEB_FILE)
$(DEB_FILE): $(BUILD)/aks-ssh-access $(IH_UNITS) $(IH_DROPINS) units/aks-ssh-access.catalog $(IH_MAN) \
		$(IH_CLOUD_INIT) image-hooks/aks-ssh-access.conf image-hooks/provision image-hooks/deprovision \
		$(wildcard image-hooks/packaging/debian/*) image-hooks/image-hooks.mk
	rm -rf $(BUILD)/deb-root
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(BUILD)/deb-root PREFIX=/usr
	strip --strip-debug $(BUILD)/deb-root/usr/bin/aks-ssh-access
	gzip -9n $(BUILD)/deb-root$(MAN8_DIR)/aks-ssh-access.8
	install -d -m 0755 $(BUILD)/deb-root/DEBIAN
	set -e; size=$$(du -sk --exclude=DEBIAN $(BUILD)/deb-root | cut -f1); \
		sed -e 's/@VERSION@/$(VERSION)/' -e 's/@ARCH@/$(DEB_ARCH)/' -e "s/@SIZE@/$$size/" \
		image-hooks/packaging/debian/control.in >$(BUILD)/deb-root/DEBIAN/control
	install -m 0644 image-hooks/packaging/debian/conffiles $(BUILD)/deb-root/DEBIAN/conffiles
	install -m 0755 image-hooks/packaging/debian/postinst image-hooks/packaging/debian/prerm \
		image-hooks/packaging/debian/postrm $(BUILD)/deb-root/DEBIAN/
	cd $(BUILD)/deb-root && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort | \
		xargs md5sum >DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(BUILD)/deb-root $@

# RPM for Azure Linux / Mariner. On this Debian host: --nodeps (its BuildRequires are rpm names).
rpm: $(BUILD)/aks-ssh-access
	rm -rf $(RPM_TOPDIR)
	mkdir -p $(RPM_TOPDIR)/SOURCES
	tar --exclude=./build --exclude=./.git --exclude='./tests/e2e/cache' \
		--transform 's,^\.,aks-ssh-access-$(VERSION),' -czf $(RPM_TARBALL) .
	rpmbuild -bb --nodeps $(RPMBUILD_FLAGS) --define '_topdir $(RPM_TOPDIR)' --define 'debug_package %{nil}' \
		--define 'version_override $(VERSION)' image-hooks/packaging/rpm/aks-ssh-access.spec

image-hooks-test: $(BUILD)/aks-ssh-access
	image-hooks/tests/run-tests
