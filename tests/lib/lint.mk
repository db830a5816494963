# SPDX-License-Identifier: MIT
# Lint targets, run by `make check`:
#   make format-check   clang-format --dry-run -Werror over the C sources (.clang-format; tests/lib/format-all)
#   make format         rewrites them in place (the same list)
#   make cppcheck       cppcheck over every C file, suppressions with their reasons in tests/lib/cppcheck.supp
#   make shellcheck     shellcheck over every shell script of the tree (found by its #! line)

CLANG_FORMAT   ?= clang-format
CPPCHECK       ?= cppcheck
SHELLCHECK     ?= shellcheck
# The C files cppcheck reads: the agent, its unit tests and fuzzers, the e2e probe and the bench's helpers. Only
# the configuration the build uses (-D_GNU_SOURCE: cppcheck then checks no other #ifdef combination).
CPPCHECK_SRCS  := $(sort $(wildcard agent/*.c agent/*/*.c tests/*/*.c))
CPPCHECK_FLAGS := --std=c11 --enable=warning,style,performance,portability --inline-suppr --error-exitcode=1 -q \
                  --suppressions-list=tests/lib/cppcheck.supp --library=tests/lib/cppcheck.cfg -D_GNU_SOURCE \
                  -DVERSION='"$(VERSION)"' \
                  -Iagent -Iagent/util -Itests/unit -j2 --cppcheck-build-dir=$(BUILD)/cppcheck
# Every file git knows whose first line is a shell's #! (sh, bash, dash), wherever it lives.
SHELL_SCRIPTS   = $(shell git ls-files -z | xargs -0 -r awk 'FNR == 1 { if (/^\#!.*[/ ](ba|da)?sh( |$$)/) print FILENAME; nextfile }')

CHECK_TARGETS  += format-check cppcheck shellcheck
.PHONY: format format-check cppcheck shellcheck

format:
	@CLANG_FORMAT=$(CLANG_FORMAT) tests/lib/format-all
format-check:
	@CLANG_FORMAT=$(CLANG_FORMAT) tests/lib/format-all --check

# The build dir caches results per file and does not notice a new cppcheck.cfg: start afresh when it changed.
cppcheck:
	@if [ tests/lib/cppcheck.cfg -nt $(BUILD)/cppcheck ]; then rm -rf $(BUILD)/cppcheck; fi
	@mkdir -p $(BUILD)/cppcheck
	$(CPPCHECK) $(CPPCHECK_FLAGS) $(CPPCHECK_SRCS)

shellcheck:
	$(SHELLCHECK) $(SHELL_SCRIPTS)
