/* SPDX-License-Identifier: MIT */
#include "json-util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* cJSON decodes the escape \u0000 into a NUL inside a C string, which would silently cut the value
 * short ("key\u0000junk" read as "key"). Every such escape becomes \u0001 (same length), so the value
 * keeps a visible control character that the validators reject. *ret is a patched copy, or NULL when
 * there was nothing to patch. */
static int defuse_nul_escapes(const char *s, size_t len, char **ret) {
        char *copy = NULL;

        for (const char *hit = memmem(s, len, "\\u0000", 6); hit; hit = memmem(hit + 1, len - (size_t) (hit + 1 - s), "\\u0000", 6)) {
                size_t i = (size_t) (hit - s), backslashes = 0;

                for (size_t k = i + 1; k > 0 && s[k - 1] == '\\'; k--)
                        backslashes++;
                if (backslashes % 2 == 0)
                        continue; /* "\\u0000": an escaped backslash, then plain text */
                if (!copy) {
                        copy = malloc(len + 1);
                        if (!copy)
                                return -ENOMEM;
                        memcpy(copy, s, len);
                        copy[len] = '\0';
                }
                copy[i + 5] = '1';
        }
        *ret = copy;
        return 0;
}

cJSON *json_parse_whole(const char *s, size_t len) {
        const char *end = NULL;
        char *copy = NULL;
        cJSON *j;

        if (memchr(s, 0, len))
                return NULL; /* cJSON would stop at an embedded NUL */
        if (defuse_nul_escapes(s, len, &copy) < 0)
                return NULL;
        if (copy)
                s = copy;
        j = cJSON_ParseWithLengthOpts(s, len, &end, false);
        while (j && end && end < s + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
                end++;
        if (j && end != s + len) {
                cJSON_Delete(j);
                j = NULL;
        }
        free(copy);
        return j;
}
