# SPDX-License-Identifier: MIT
# Fuzzing (libFuzzer, clang -fsanitize=fuzzer,address,undefined) of the pure parsers: the IMDS document
# (policy_parse + policy_check_paths), the public-key validator/fingerprinter (sshkey_parse), the
# authorized_keys block parser/merger, the config parser, the state file parser and the unit planner
# (unit_plan_build: SPEC §4 ordering and "never service and socket" as properties) and the whole decision
# (fuzz-decide: decide + decide_feedback + decide_record; ordering per mode, the exit code the most severe
# of the problems, the state record parses back). Seeds: tests/fuzz/corpus/.
#   make fuzz [FUZZ_SECONDS=auto|N] [FUZZ_RUNS=10000000]
#                                      each target until FUZZ_RUNS executions, within its own time budget
#                                      (auto: sized from measured rates for >= 10^7, see run-fuzz), or N s each
#   make fuzz-smoke [FUZZ_SMOKE_SECONDS=12]   the short run of each target that `make check` does
#   make stress [STRESS_ITERATIONS=5000]      the long crash-consistency run (tests/integration)
# Needs (TEST_DEBS): clang libclang-rt-14-dev libfuzzer-14-dev. Results: build/fuzz/run/results.txt.

FUZZ_SECONDS       ?= auto
FUZZ_SMOKE_SECONDS ?= 12
STRESS_ITERATIONS  ?= 5000
FUZZ_TARGETS       := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(sort $(wildcard tests/fuzz/fuzz-*.c)))
FUZZ_OBJS          := $(LIB_SRCS:%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_CFLAGS        := $(SAN_CFLAGS)

.PHONY: fuzz fuzz-smoke fuzz-build stress
.SECONDARY: $(FUZZ_OBJS)

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(FUZZ_OBJS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(PKG_LIBS)

fuzz-build: $(FUZZ_TARGETS)

fuzz: $(FUZZ_TARGETS)
	tests/fuzz/run-fuzz $(FUZZ_SECONDS) $(BUILD)/fuzz/run $(FUZZ_TARGETS)

fuzz-smoke: $(FUZZ_TARGETS)
	tests/fuzz/run-fuzz $(FUZZ_SMOKE_SECONDS) $(BUILD)/fuzz/smoke $(FUZZ_TARGETS)

# The long crash-consistency run: SIGKILL at random instants during apply, STRESS_ITERATIONS times.
stress: $(BUILD)/aks-ssh-access
	cd tests/integration && AKS_SSH_ACCESS_BIN=$(CURDIR)/$(BUILD)/aks-ssh-access \
		AKS_CRASH_ITERATIONS=$(STRESS_ITERATIONS) AKS_CRASH_BUDGET_S=0 \
		$(PYTHON) -m pytest -q -s -p no:cacheprovider test_crash_consistency.py

CHECK_TARGETS += fuzz-smoke
