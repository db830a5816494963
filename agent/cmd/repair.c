/* SPDX-License-Identifier: MIT */
/* Drift repair (verify --repair, drift = repair): the last applied state re-asserted without IMDS. The
 * state file is turned back into the policy apply would have had, and apply's own path does the rest
 * (units, keys block, sshd setting, generator), so a repair is exactly an apply of the same state. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "macro.h"

int policy_from_state(const State *s, Policy *ret, const char **ret_source) {
        _cleanup_(policy_done) Policy p = { .mode = s->mode, .mode_from_tag = true };

        if (s->mode == MODE_INVALID)
                return EX_NOINPUT;
        if (s->user && !(p.admin_user = strdup(s->user)))
                return EX_SOFTWARE;
        if (s->mode == MODE_LOCALUSER && s->n_keys > 0) {
                if (!s->authorized_keys)
                        return EX_NOINPUT;
                p.keys = calloc(s->n_keys, sizeof *p.keys);
                if (!p.keys)
                        return EX_SOFTWARE;
                p.n_keys_alloc = s->n_keys;
                for (size_t i = 0; i < s->n_keys; i++) {
                        PolicyKey *k = &p.keys[p.n_keys];
                        /* A state file of an older version has fingerprints only: nothing to rewrite. */
                        if (!s->keys[i].line || sshkey_parse(s->keys[i].line, strlen(s->keys[i].line), &k->key, NULL) < 0 ||
                            !streq(k->key.fingerprint, s->keys[i].fingerprint)) {
                                sshkey_done(&k->key);
                                return EX_NOINPUT;
                        }
                        k->index = i;
                        k->path = strdup(s->authorized_keys);
                        p.n_keys++;
                        if (!k->path)
                                return EX_SOFTWARE;
                }
        }
        *ret = p;
        p = (Policy) {};
        /* The record keeps saying where the state came from (imds, file, fallback). */
        *ret_source = s->last_source ?: "repair";
        return 0;
}
