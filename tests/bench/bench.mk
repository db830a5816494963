# SPDX-License-Identifier: MIT
# `make bench` (issue 6): boot critical-path cost, memory and scaling of `apply`, side by side with the shell
# approach nodes use today and with the floor; offline (--root) and live (inside a booted systemd-nspawn node,
# through the tests/e2e harness). Not part of `make check`. Needs root, curl, jq, systemctl, shellcheck; the live
# rows need what `make e2e` needs (debootstrap, systemd-container, iproute2); valgrind for the instruction counts.
#   BENCH_RUNS=21 BENCH_SCALE_RUNS=11 BENCH_LIVE_RUNS=7 BENCH_BOOTS=3   runs per row / boots
#   BENCH_LIVE=0 BENCH_CALLGRIND=0                                      skip the live rows / the callgrind section
#   BENCH_OUT=FILE                                                      also write the table to FILE

BENCH_DIR      := $(BUILD)/bench
BENCH_COMMA    := ,
BENCH_ZNOW     := -Wl$(BENCH_COMMA)-z$(BENCH_COMMA)relro$(BENCH_COMMA)-z$(BENCH_COMMA)now
# The libraries' floor: all four linked and loaded (--no-as-needed), only libcurl called.
BENCH_LIBS_ALL := -Wl,--no-as-needed $(PKG_LIBS) -Wl,--as-needed
BENCH_BINS     := $(BENCH_DIR)/run1 $(BENCH_DIR)/floor $(BENCH_DIR)/floor-lazy $(BENCH_DIR)/floor-curl \
                  $(BENCH_DIR)/floor-socket $(BENCH_DIR)/agent-lazy $(BENCH_DIR)/agent-curl-nothing \
                  $(BENCH_DIR)/openat2-shim.so

# The launcher: static on purpose (see run1.c).
$(BENCH_DIR)/run1: tests/bench/run1.c
	@mkdir -p $(@D)
	$(CC) -std=gnu17 -D_GNU_SOURCE $(WARN) -O2 -static -o $@ $<

# Floors: 4 libraries with the agent's link flags; the same with lazy binding; libcurl alone; the three other
# libraries with a plain-socket GET (what an in-tree IMDS client would cost).
$(BENCH_DIR)/floor: tests/bench/floor.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS) $(BENCH_LIBS_ALL)

$(BENCH_DIR)/floor-lazy: tests/bench/floor.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(filter-out $(BENCH_ZNOW),$(ALL_LDFLAGS)) -Wl,-z,relro $(BENCH_LIBS_ALL)

$(BENCH_DIR)/floor-curl: tests/bench/floor.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS) $(shell pkg-config --libs libcurl)

$(BENCH_DIR)/floor-socket: tests/bench/floor.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DFLOOR_SOCKET -o $@ $< $(ALL_LDFLAGS) -Wl,--no-as-needed \
		$(shell pkg-config --libs libsystemd libcjson libsodium) -Wl,--as-needed

# Link experiments on the agent's own objects: lazy binding; curl_global_init(CURL_GLOBAL_NOTHING).
$(BENCH_DIR)/agent-lazy: $(BUILD)/obj/agent/main.o $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(filter-out $(BENCH_ZNOW),$(ALL_LDFLAGS)) -Wl,-z,relro $(PKG_LIBS)

$(BENCH_DIR)/agent-curl-nothing: $(BUILD)/obj/agent/main.o $(LIB_OBJS) tests/bench/wrap-curl-init.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $(BUILD)/obj/agent/main.o $(LIB_OBJS) tests/bench/wrap-curl-init.c \
		-Wl,--wrap=curl_global_init $(ALL_LDFLAGS) $(PKG_LIBS)

# Bench-only LD_PRELOAD shim: lets valgrind 3.19 (no openat2) count the instructions of `apply --root`.
$(BENCH_DIR)/openat2-shim.so: tests/bench/openat2-shim.c
	@mkdir -p $(@D)
	$(CC) -std=gnu17 -D_GNU_SOURCE $(WARN) -O2 -shared -fPIC -o $@ $< -ldl

.PHONY: bench bench-bins
bench-bins: $(BUILD)/aks-ssh-access $(BENCH_BINS)
bench: bench-bins
	@shellcheck tests/bench/shell-apply
	PYTHONDONTWRITEBYTECODE=1 AKS_SSH_ACCESS_BIN=$(CURDIR)/$(BUILD)/aks-ssh-access BENCH_BUILD=$(CURDIR)/$(BENCH_DIR) \
		$(PYTHON) tests/bench/bench.py
