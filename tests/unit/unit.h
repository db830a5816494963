/* SPDX-License-Identifier: MIT */
#pragma once

/* A minimal test harness: plain C, direct assertions of exact values. Each test binary ends with
 * "N passed, N failed" and exits non-zero on any failure. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond, why)                                                                          \
        do {                                                                                      \
                if (cond) {                                                                       \
                        unit_passed++;                                                            \
                } else {                                                                          \
                        unit_failed++;                                                            \
                        fprintf(stderr, "FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, why); \
                }                                                                                 \
        } while (0)

#define CHECK_STREQ(a, b, why)                                                                                                             \
        do {                                                                                                                               \
                const char *_a = (a), *_b = (b);                                                                                           \
                if (_a && _b && strcmp(_a, _b) == 0) {                                                                                     \
                        unit_passed++;                                                                                                     \
                } else {                                                                                                                   \
                        unit_failed++;                                                                                                     \
                        fprintf(stderr, "FAIL %s:%d: \"%s\" != \"%s\" (%s)\n", __FILE__, __LINE__, _a ? _a : "(null)", _b ? _b : "(null)", \
                                why);                                                                                                      \
                }                                                                                                                          \
        } while (0)

#define CHECK_INTEQ(a, b, why)                                                                                                \
        do {                                                                                                                  \
                long long _a = (long long) (a), _b = (long long) (b);                                                         \
                if (_a == _b) {                                                                                               \
                        unit_passed++;                                                                                        \
                } else {                                                                                                      \
                        unit_failed++;                                                                                        \
                        fprintf(stderr, "FAIL %s:%d: %s == %lld, expected %lld (%s)\n", __FILE__, __LINE__, #a, _a, _b, why); \
                }                                                                                                             \
        } while (0)

static inline int unit_finish(void) {
        printf("%d passed, %d failed\n", unit_passed, unit_failed);
        return unit_failed == 0 ? 0 : 1;
}
