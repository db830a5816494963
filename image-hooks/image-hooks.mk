# SPDX-License-Identifier: MIT
# image-hooks/image-hooks.mk — included by the top-level Makefile.
#   make install DESTDIR= PREFIX=   lay out the agent (never enables or starts anything)
#   make man                        build/man/aks-ssh-access.8 from image-hooks/man/aks-ssh-access.8.md
#   make deb                        build/aks-ssh-access_$(VERSION)_<arch>.deb (and its -dbgsym): debhelper,
#                                   `dpkg-buildpackage -b` in build/deb-src/ on a `git archive` of the tree
#   make rpm                        build/rpm/RPMS/<arch>/aks-ssh-access-$(VERSION)-1.<arch>.rpm from a
#                                   `git archive` tarball (on a Debian host with --nodeps: its BuildRequires
#                                   are rpm names; on Azure Linux build the spec with its BuildRequires)
#   make image-hooks-test           shellcheck, install layout, provision/deprovision, packages (lintian,
#                                   rpmlint, file lists), man page, catalog, and the boot test through tests/e2e

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
IH_MAN_SRC      := image-hooks/man/aks-ssh-access.8.md
IH_MAN          := $(BUILD)/man/aks-ssh-access.8
IH_CLOUD_INIT   := image-hooks/cloud-init/90-aks-ssh-access.cfg

# What `make install` lays out, one entry per line (add yours): MODE:SOURCE:DESTINATION, DESTINATION
# under $(DESTDIR). IH_CONFIG: the same, but never overwrites an existing file (the admin's). IH_DIRS:
# MODE:DIRECTORY, made even when empty.
IH_FILES        += 0755:$(BUILD)/aks-ssh-access:$(PREFIX)/bin/aks-ssh-access
IH_FILES        += $(foreach u,$(IH_UNITS),0644:$(u):$(SYSTEMD_UNIT_DIR)/$(notdir $(u)))
IH_FILES        += $(foreach d,$(IH_DROPINS),0644:$(d):$(SYSTEMD_UNIT_DIR)/$(d:units/%=%))
IH_FILES        += 0644:units/aks-ssh-access.catalog:$(CATALOG_DIR)/aks-ssh-access.catalog
IH_FILES        += 0644:units/aks-ssh-access.tmpfiles:$(PREFIX)/lib/tmpfiles.d/aks-ssh-access.conf
IH_FILES        += 0644:image-hooks/npd/aks-ssh-access-monitor.json:$(PREFIX)/share/aks-ssh-access/npd/aks-ssh-access-monitor.json
IH_FILES        += 0644:$(IH_MAN):$(MAN8_DIR)/aks-ssh-access.8
IH_FILES        += 0644:$(IH_CLOUD_INIT):$(SYSCONFDIR)/cloud/cloud.cfg.d/90-aks-ssh-access.cfg
IH_FILES        += 0755:image-hooks/provision:$(HOOKS_DIR)/provision
IH_FILES        += 0755:image-hooks/deprovision:$(HOOKS_DIR)/deprovision
IH_FILES        += 0644:$(IH_CLOUD_INIT):$(HOOKS_DIR)/cloud-init/90-aks-ssh-access.cfg
IH_CONFIG       += 0644:image-hooks/aks-ssh-access.conf:$(SYSCONFDIR)/aks-ssh-access.conf
IH_DIRS         += 0755:$(SYSCONFDIR)/aks-ssh-access.conf.d
IH_DIRS         += 0700:$(LOCALSTATEDIR)/lib/aks-ssh-access
# Where Disabled masks systemd-ssh-generator: the unit may write only there (ReadWritePaths=-...), not create it.
IH_DIRS         += 0755:$(SYSCONFDIR)/systemd/system-generators

DEB_ARCH        := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_FILE        := $(BUILD)/aks-ssh-access_$(VERSION)_$(DEB_ARCH).deb
DEB_DBGSYM      := $(BUILD)/aks-ssh-access-dbgsym_$(VERSION)_$(DEB_ARCH).deb
DEB_SRC         := $(BUILD)/deb-src/aks-ssh-access-$(VERSION)
DEB_CHANGES     := $(BUILD)/deb-src/aks-ssh-access_$(VERSION)_$(DEB_ARCH).changes
RPM_TOPDIR      := $(CURDIR)/$(BUILD)/rpm
RPM_TARBALL     := $(BUILD)/rpm/SOURCES/aks-ssh-access-$(VERSION).tar.gz
RPMBUILD_FLAGS  ?=
# On a Debian host: --nodeps (the BuildRequires are Azure Linux names); Debian's rpm makes no -debuginfo
# package (Azure Linux's does, stripping the binary into it) and its brp-strip only strips debug info, so
# the package's one ELF file is stripped as there; its brp-compress needs bash (`read -d`), not dash.
ifneq ($(wildcard /etc/debian_version),)
RPM_HOST_FLAGS  := --nodeps --define 'debug_package %{nil}' \
                   --define '__brp_strip %{__strip} --strip-unneeded %{buildroot}%{_bindir}/aks-ssh-access' \
                   --define '__brp_compress /bin/bash /usr/lib/rpm/brp-compress'
endif

# Both packages are built from the tracked files as they are in the work tree, through `git archive`:
# `git stash create` makes a commit of them without touching any ref or the work tree (it prints nothing
# when the tree is clean: then HEAD). Untracked and ignored files (build/, caches) never get in.
IH_TRACKED      := $(wildcard $(shell git ls-files 2>/dev/null))
# `$(IH_ARCHIVE) -o FILE.tar[.gz]`: written by git itself, so a failure stops make (no pipe to lose it).
IH_ARCHIVE       = git archive --prefix=aks-ssh-access-$(VERSION)/ \
                   "$$(git stash create 2>/dev/null | grep . || echo HEAD)"

CHECK_TARGETS   += image-hooks-test

.PHONY: install man deb rpm image-hooks-test

man: $(IH_MAN)
$(IH_MAN): $(IH_MAN_SRC) Makefile
	@mkdir -p $(@D)
	sed -e 's/@VERSION@/$(VERSION)/g' $< | go-md2man -out $@

install: $(BUILD)/aks-ssh-access $(IH_MAN)
	set -e; for e in $(IH_DIRS); do install -d -m "$${e%%:*}" "$(DESTDIR)$${e#*:}"; done
	set -e; for e in $(IH_FILES); do m=$${e%%:*}; e=$${e#*:}; \
		install -D -m "$$m" "$${e%%:*}" "$(DESTDIR)$${e#*:}"; done
	@# An existing configuration is the admin's: never overwritten.
	set -e; for e in $(IH_CONFIG); do m=$${e%%:*}; e=$${e#*:}; \
		test -e "$(DESTDIR)$${e#*:}" || install -D -m "$$m" "$${e%%:*}" "$(DESTDIR)$${e#*:}"; done

deb: $(DEB_FILE)
$(DEB_FILE): $(IH_TRACKED)
	rm -rf $(BUILD)/deb-src
	mkdir -p $(BUILD)/deb-src
	$(IH_ARCHIVE) -o $(BUILD)/deb-src/source.tar
	tar -x -C $(BUILD)/deb-src -f $(BUILD)/deb-src/source.tar
	cp -R $(DEB_SRC)/image-hooks/packaging/debian $(DEB_SRC)/debian
	@# Its changelog says the package version; the Makefile's VERSION must agree.
	test "$$(cd $(DEB_SRC) && dpkg-parsechangelog -S Version)" = "$(VERSION)"
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	cp $(BUILD)/deb-src/$(notdir $(DEB_FILE)) $@
	cp $(BUILD)/deb-src/$(notdir $(DEB_DBGSYM)) $(DEB_DBGSYM)

rpm: $(RPM_TARBALL)
	rm -rf $(RPM_TOPDIR)/RPMS $(RPM_TOPDIR)/SRPMS $(RPM_TOPDIR)/BUILD $(RPM_TOPDIR)/BUILDROOT
	rpmbuild -ba $(RPM_HOST_FLAGS) $(RPMBUILD_FLAGS) --define '_topdir $(RPM_TOPDIR)' \
		--define 'version_override $(VERSION)' image-hooks/packaging/rpm/aks-ssh-access.spec
$(RPM_TARBALL): $(IH_TRACKED)
	@mkdir -p $(@D)
	$(IH_ARCHIVE) -o $@.tmp.tar.gz
	mv $@.tmp.tar.gz $@

image-hooks-test: $(BUILD)/aks-ssh-access
	image-hooks/tests/run-tests
