/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the configuration file parser (config_parse_text). Properties: whatever the text, the
 * resulting Config stays valid (an http(s) URL, a non-empty mode tag, a deadline in 1..3600, a valid
 * fallback mode, a non-empty list of *.service / *.socket names without '/'); a text that parses cleanly
 * gives the same Config when parsed a second time on top (applying a file is idempotent). */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "policy/config.h"

static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);
        return n > m && strcmp(s + n - m, suffix) == 0;
}

static void check_valid(const Config *c) {
        ASSERT(c->imds_url && (strncmp(c->imds_url, "http://", 7) == 0 || strncmp(c->imds_url, "https://", 8) == 0));
        ASSERT(c->mode_tag && c->mode_tag[0]);
        ASSERT(c->deadline_s >= 1 && c->deadline_s <= 3600);
        ASSERT(c->fallback_mode >= 0 && c->fallback_mode < _MODE_MAX);
        ASSERT(c->units && c->units[0]);
        for (char **u = c->units; *u; u++) {
                ASSERT(!strchr(*u, '/') && (*u)[0] != '.');
                ASSERT(ends_with(*u, ".service") || ends_with(*u, ".socket"));
        }
}

static bool same(const Config *a, const Config *b) {
        size_t i;

        if (strcmp(a->imds_url, b->imds_url) || strcmp(a->mode_tag, b->mode_tag) || a->deadline_s != b->deadline_s ||
            a->fallback_mode != b->fallback_mode)
                return false;
        for (i = 0; a->units[i] && b->units[i]; i++)
                if (strcmp(a->units[i], b->units[i]))
                        return false;
        return !a->units[i] && !b->units[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config c, d;
        int r;

        ASSERT(config_init(&c) == 0);
        r = config_parse_text(&c, (const char *) data, size, "fuzz.conf");
        ASSERT(r == 0 || r == -EINVAL || r == -ENOMEM);
        check_valid(&c);

        if (r == 0) {
                ASSERT(config_init(&d) == 0);
                ASSERT(config_parse_text(&d, (const char *) data, size, "fuzz.conf") == 0);
                ASSERT(config_parse_text(&d, (const char *) data, size, "fuzz.conf") == 0);
                ASSERT(same(&c, &d));
                config_done(&d);
        }
        config_done(&c);
        return 0;
}
