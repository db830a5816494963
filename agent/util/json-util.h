/* SPDX-License-Identifier: MIT */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

/* Parses len bytes that must hold exactly one JSON value (surrounding whitespace allowed). cJSON's own
 * require_null_terminated flag wants the NUL counted in len, so the end is checked here. */
cJSON *json_parse_whole(const char *s, size_t len);

static inline void cjson_deletep(cJSON **j) {
        if (*j)
                cJSON_Delete(*j);
}
#define _cleanup_cjson_ __attribute__((cleanup(cjson_deletep)))
