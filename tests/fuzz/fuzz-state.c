/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the state file parser (state_parse) and its writer (state_format). The state file is
 * root-owned, but it is read at every boot, must never crash the agent, and whatever state_parse() accepts
 * must survive a save/load cycle: format(parse(x)) parses again, to a State that formats to the same text. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "state/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        State s = { .mode = MODE_INVALID }, t = { .mode = MODE_INVALID };
        char *text, *text2;
        int r;

        r = state_parse((const char *) data, size, &s);
        if (r < 0) {
                ASSERT(r == -EBADMSG || r == -ENOMEM);
                return 0;
        }
        ASSERT(s.mode >= 0 && s.mode < _MODE_MAX);
        for (size_t i = 0; i < s.n_keys; i++)
                ASSERT(s.keys[i].type && s.keys[i].fingerprint);

        text = state_format(&s);
        ASSERT(text);
        r = state_parse(text, strlen(text), &t);
        ASSERT(r == 0);
        ASSERT(t.mode == s.mode && t.n_keys == s.n_keys && t.image.recorded == s.image.recorded);
        text2 = state_format(&t);
        ASSERT(text2);
        ASSERT(strcmp(text, text2) == 0);

        free(text);
        free(text2);
        state_done(&s);
        state_done(&t);
        return 0;
}
