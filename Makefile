# aks-ssh-access — see README.md. `make` builds build/aks-ssh-access.
# Fragments owned by each area add to CHECK_TARGETS / PHONY: tests/*/*.mk, image-hooks/*.mk.

VERSION      := 0.1.0
PREFIX       ?= /usr
DESTDIR      ?=
CC           ?= cc
CLANG        ?= clang
PYTHON       ?= /usr/bin/python3
BUILD        := build
PKGS         := libsystemd libcurl libcjson libsodium libcrypto

# Debian packages a fresh Debian 12 needs: to build, and to run the tests.
BUILD_DEBS   := gcc make pkg-config libsystemd-dev libcurl4-openssl-dev libcjson-dev libsodium-dev libssl-dev
TEST_DEBS    := clang libclang-rt-14-dev libfuzzer-14-dev python3 python3-pytest openssh-client \
                openssh-server valgrind debootstrap systemd systemd-container iproute2 shellcheck clang-format cppcheck \
                curl jq rpm dpkg-dev fakeroot procps psmisc man-db libc6-dbg \
                prometheus-node-exporter prometheus
DEMO_DEBS    := python3 openssh-client systemd
# The man page is generated (image-hooks/man/aks-ssh-access.8.md); the packages are built and linted.
BUILD_DEBS   += go-md2man
TEST_DEBS    += build-essential debhelper lintian rpmlint cpio file

PKG_CFLAGS   := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN         := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter -Wmissing-prototypes \
                -Wstrict-prototypes -Wno-format-nonliteral
# A distribution's build flags (dpkg-buildflags, rpm's %set_build_flags) may set _FORTIFY_SOURCE to another
# level: a second definition would be a "redefined" warning, i.e. an error with -Werror.
HARDEN       := $(if $(findstring _FORTIFY_SOURCE,$(CPPFLAGS) $(CFLAGS)),,-D_FORTIFY_SOURCE=2) -fstack-protector-strong -fPIE
CFLAGS       ?= -O2 -g
# Compiler flags, defined once: every build uses BASE_CFLAGS. The plain build adds the hardening,
# $(CPPFLAGS) and $(CFLAGS); the sanitizer builds (ASan+UBSan here, libFuzzer in tests/fuzz/fuzz.mk) add
# SAN_FLAGS instead (_FORTIFY_SOURCE and ASan do not mix). -MMD -MP: header dependencies, included below.
BASE_CFLAGS  := -std=gnu17 -D_GNU_SOURCE -DVERSION='"$(VERSION)"' $(WARN) -Iagent -Iagent/util $(PKG_CFLAGS) \
                -MMD -MP
SAN_FLAGS    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
ALL_CFLAGS   := $(BASE_CFLAGS) $(HARDEN) $(CPPFLAGS) $(CFLAGS)
SAN_CFLAGS   := $(BASE_CFLAGS) $(SAN_FLAGS)
ALL_LDFLAGS  := -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(LDFLAGS)

LIB_SRCS     := $(sort $(wildcard agent/*/*.c))
LIB_OBJS     := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
SAN_OBJS     := $(LIB_SRCS:%.c=$(BUILD)/asan/%.o)
UNIT_TESTS   := $(sort $(wildcard tests/unit/test-*.c))
UNIT_BINS    := $(UNIT_TESTS:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_SAN     := $(UNIT_TESTS:tests/unit/%.c=$(BUILD)/asan/tests/%)

CHECK_TARGETS := unit-test unit-test-asan smoke integration

.PHONY: all deps test-deps check unit-test unit-test-asan integration smoke demo clean asan-binary
all: $(BUILD)/aks-ssh-access

# Installs what is missing (Debian/Ubuntu, as root). Quiet and quick when everything is there.
deps:
	@tests/lib/ensure-debs $(BUILD_DEBS)
test-deps:
	@tests/lib/ensure-debs $(BUILD_DEBS) $(TEST_DEBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -c -o $@ $<

$(BUILD)/aks-ssh-access: $(BUILD)/obj/agent/main.o $(LIB_OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS)

# The agent itself under ASan+UBSan, for the integration suite (AKS_SSH_ACCESS_BIN=build/asan/aks-ssh-access).
asan-binary: $(BUILD)/asan/aks-ssh-access
$(BUILD)/asan/aks-ssh-access: $(BUILD)/asan/agent/main.o $(SAN_OBJS)
	$(CLANG) $(SAN_CFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJS) $(ALL_LDFLAGS) $(PKG_LIBS)

$(BUILD)/asan/tests/%: tests/unit/%.c $(SAN_OBJS)
	@mkdir -p $(@D)
	$(CLANG) $(SAN_CFLAGS) -Itests/unit -o $@ $< $(SAN_OBJS) $(PKG_LIBS)

unit-test: $(UNIT_BINS)
	@tests/lib/run-unit-tests $(UNIT_BINS)

unit-test-asan: $(UNIT_SAN)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		tests/lib/run-unit-tests $(UNIT_SAN)

# Integration: the built binary (and its ASan build) against the IMDS emulator on loopback and scratch roots.
integration: $(BUILD)/aks-ssh-access $(BUILD)/asan/aks-ssh-access
	cd tests/integration && AKS_SSH_ACCESS_BIN=$(CURDIR)/$(BUILD)/aks-ssh-access \
		AKS_SSH_ACCESS_ASAN_BIN=$(CURDIR)/$(BUILD)/asan/aks-ssh-access $(PYTHON) -m pytest -q -p no:cacheprovider .

smoke: $(BUILD)/aks-ssh-access
	@if [ -x ../shared/acceptance/offline-smoke ] || [ -f ../shared/acceptance/offline-smoke ]; then \
		$(PYTHON) ../shared/acceptance/offline-smoke; else echo "smoke: ../shared/acceptance not present, skipped"; fi

# Header dependencies that -MMD wrote (none before the first build, which builds everything anyway).
-include $(wildcard $(BUILD)/obj/agent/*.d $(BUILD)/obj/agent/*/*.d $(BUILD)/asan/agent/*.d \
        $(BUILD)/asan/agent/*/*.d $(BUILD)/tests/*.d $(BUILD)/asan/tests/*.d $(BUILD)/fuzz/*.d \
        $(BUILD)/fuzz/obj/agent/*/*.d)

# `install`, packaging: image-hooks/image-hooks.mk; end-to-end: tests/e2e/e2e.mk; fuzz: tests/fuzz/fuzz.mk;
# bench: tests/bench/bench.mk.
-include $(wildcard tests/*/*.mk image-hooks/*.mk)

# -k: every suite runs even when an earlier one failed; make still exits non-zero.
check: test-deps
	$(MAKE) -k $(CHECK_TARGETS)

demo: deps
	@tests/lib/ensure-debs $(DEMO_DEBS)
	$(MAKE) all
	tests/demo/run-demo

clean:
	rm -rf $(BUILD)
