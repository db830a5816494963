/* SPDX-License-Identifier: MIT */
#pragma once

/* What every libFuzzer target here shares: the entry points, a quiet log, ASSERT for the properties and the
 * input reader of the table-driven targets. One target per translation unit, so LLVMFuzzerInitialize is
 * defined here. Before including this header a target may define
 *   FUZZ_SETUP()  more set-up, run once from LLVMFuzzerInitialize (e.g. sodium_init);
 *   FUZZ_DUMP()   what a failed property prints before the abort (e.g. the input, readable). */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_set_max_level(-1); /* library code does not log; whatever else would, keep libFuzzer's output readable */
#ifdef FUZZ_SETUP
        FUZZ_SETUP();
#endif
        return 0;
}

#ifndef FUZZ_DUMP
#define FUZZ_DUMP() \
        do {        \
        } while (0)
#endif

/* The message run-fuzz looks for: "<target>: property failed: <condition>" (the target is the binary's name). */
#define ASSERT(c)                                                                                        \
        do {                                                                                             \
                if (!(c)) {                                                                              \
                        fprintf(stderr, "%s: property failed: %s\n", program_invocation_short_name, #c); \
                        FUZZ_DUMP();                                                                     \
                        abort();                                                                         \
                }                                                                                        \
        } while (0)

/* The input as a stream of choices: take(in, mod) is the next byte modulo mod (0 once the input is used up),
 * TAKE(in, table) the table's element it selects; so every input is a case the table describes. */
typedef struct Input {
        const uint8_t *p;
        size_t left;
} Input;

static inline unsigned take(Input *in, unsigned mod) {
        unsigned v = 0;
        if (in->left > 0) {
                v = *in->p++;
                in->left--;
        }
        return v % mod;
}
#define TAKE(in, table) (table)[take(in, ELEMENTSOF(table))]
