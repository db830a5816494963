/* SPDX-License-Identifier: MIT */
#include "json-util.h"

#include <stdbool.h>
#include <string.h>

cJSON *json_parse_whole(const char *s, size_t len) {
        const char *end = NULL;
        cJSON *j;

        if (memchr(s, 0, len))
                return NULL; /* cJSON would stop at an embedded NUL */
        j = cJSON_ParseWithLengthOpts(s, len, &end, false);
        if (!j)
                return NULL;
        while (end && end < s + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
                end++;
        if (end != s + len) {
                cJSON_Delete(j);
                return NULL;
        }
        return j;
}
