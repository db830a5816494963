/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "apply/sshd-config.h"
#include "cmd.h"
#include "fs-util.h"
#include "imds/imds.h"
#include "log.h"
#include "macro.h"

char *now_rfc3339(void) {
        struct timespec ts;
        struct tm tm;
        char buf[64];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return strdup(buf);
}

/* The IMDS client does not log: each retry is logged here, with its MESSAGE_ID. */
static void log_imds_retry(const ImdsRetry *t, void *userdata) {
        char attempt[32], http[32];
        const char *fields[] = { attempt, t->status > 0 ? http : NULL, NULL };

        snprintf(attempt, sizeof attempt, "IMDS_REQUESTS=%u", t->requests);
        snprintf(http, sizeof http, "HTTP_STATUS=%ld", t->status);
        log_event(LOG_INFO, MID_IMDS_RETRY, fields, "IMDS request %u failed (%s), retrying in %.2f s.", t->requests,
                  t->what, (double) t->wait_usec / 1e6);
        if (t->curl_error[0])
                log_debug("IMDS request %u: %s", t->requests, t->curl_error);
}

int node_fetch(const Options *o, const Node *n, char **ret_body, size_t *ret_len, const char **ret_source, char **ret_detail) {
        int r;

        if (o->imds_file) {
                _cleanup_close_ int fd = -1;
                bool is_stdin = streq(o->imds_file, "-");

                *ret_source = "file";
                fd = is_stdin ? dup(STDIN_FILENO) : open(o->imds_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        r = -errno;
                        if (asprintf(ret_detail, "cannot open --imds-file %s: %s", o->imds_file, strerror(-r)) < 0)
                                *ret_detail = NULL;
                        return EX_NOINPUT;
                }
                r = read_full_stream(fd, IMDS_MAX_BODY, ret_body, ret_len);
                if (r == -EFBIG) {
                        *ret_detail = strdup("document larger than 4 MiB");
                        return EX_DATAERR;
                }
                if (r < 0) {
                        if (asprintf(ret_detail, "cannot read --imds-file %s: %s", o->imds_file, strerror(-r)) < 0)
                                *ret_detail = NULL;
                        return EX_NOINPUT;
                }
                return 0;
        }

        *ret_source = "imds";
        ImdsRequest req = {
                .url = n->config.imds_url,
                .deadline_usec = (uint64_t) n->config.deadline_s * 1000000u,
                .max_body = IMDS_MAX_BODY,
                .on_retry = log_imds_retry,
        };
        r = imds_fetch(&req, ret_body, ret_len, ret_detail);
        if (r == -EFBIG)
                return EX_DATAERR;
        if (r < 0)
                return EX_UNAVAILABLE;
        return 0;
}

static int cmp_strp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The block holds exactly the recorded keys (as a set of fingerprints; sorted, not quadratic: verify runs
 * from a timer on nodes that may carry thousands of keys). */
static int keys_match(const BlockKeys *b, const State *s) {
        _cleanup_free_ const char **x = NULL, **y = NULL;

        if (b->n_invalid > 0 || b->n != s->n_keys)
                return 0;
        if (b->n == 0)
                return 1;
        x = calloc(b->n, sizeof *x);
        y = calloc(b->n, sizeof *y);
        if (!x || !y)
                return -ENOMEM;
        for (size_t i = 0; i < b->n; i++) {
                x[i] = b->keys[i].fingerprint;
                y[i] = s->keys[i].fingerprint;
        }
        qsort(x, b->n, sizeof *x, cmp_strp);
        qsort(y, b->n, sizeof *y, cmp_strp);
        for (size_t i = 0; i < b->n; i++)
                if (!streq(x[i], y[i]))
                        return 0;
        return 1;
}

static const char *expected_word(const UnitAction *a) {
        switch (a->kind) {
        case UNIT_STOP: return "stopped";
        case UNIT_DISABLE: return "disabled";
        case UNIT_MASK: case UNIT_MASK_GENERATOR: return "masked";
        case UNIT_UNMASK: case UNIT_UNMASK_GENERATOR: return "unmasked";
        case UNIT_ENABLE: return "enabled";
        case UNIT_START: return "running";
        default: return "reloaded";
        }
}

/* The unit part: the decision for the recorded mode, image record and generator mask has no unit steps. */
static int verify_units(Node *n, const State *st, char **ret_what) {
        Snapshot s = { .prev = { .mode = MODE_INVALID, .generator_masked = st->generator_masked }, .home_fd = -1, .ssh_fd = -1,
                       .sshd.dir_fd = -1 };
        UnitPlan plan = {};
        int rc = 0;

        node_observe_units(n, &s);
        if (s.units_r < 0) {
                if (asprintf(ret_what, "unknown: cannot read unit states: %s", strerror(-s.units_r)) < 0)
                        *ret_what = NULL;
                snapshot_done(&s);
                return 2;
        }
        if (decide_units(st->mode, &s, &st->image, &plan) < 0) {
                snapshot_done(&s);
                return 2;
        }
        /* Name the most telling difference: a unit file state first (masked, enabled...), else a job. */
        const UnitAction *first = NULL;
        for (size_t i = 0; i < plan.n && !first; i++)
                if (plan.actions[i].kind != UNIT_RELOAD && plan.actions[i].kind != UNIT_STOP && plan.actions[i].kind != UNIT_START)
                        first = &plan.actions[i];
        for (size_t i = 0; i < plan.n && !first; i++)
                if (plan.actions[i].kind != UNIT_RELOAD)
                        first = &plan.actions[i];
        if (first) {
                const char *state = first->kind == UNIT_MASK_GENERATOR ? "not masked" : first->kind == UNIT_UNMASK_GENERATOR ? "masked" : "?";
                for (size_t j = 0; j < s.units.n; j++)
                        if (streq(s.units.units[j].name, first->unit) || streq(s.units.units[j].canonical, first->unit))
                                state = first->kind == UNIT_STOP ? s.units.units[j].active_state : s.units.units[j].file_state;
                if (asprintf(ret_what, "drift: %s is %s, expected %s for mode %s", first->unit, state, expected_word(first),
                             mode_to_string(st->mode)) < 0)
                        *ret_what = NULL;
                rc = 1;
        }
        unit_plan_done(&plan);
        snapshot_done(&s);
        return rc;
}

/* The key part: the block holds exactly the recorded keys. */
static int verify_keys(Node *n, const State *st, char **ret_what) {
        Snapshot s = { .prev.mode = MODE_INVALID, .home_fd = -1, .ssh_fd = -1, .sshd.dir_fd = -1 };
        BlockKeys b = {};
        int rc, r;

        r = node_read_block(n, st->user, &s, &b);
        snapshot_done(&s);
        if (r == 0 && b.damage) {
                if (asprintf(ret_what, "drift: managed block of %s damaged (%s, line %zu)", st->user, b.damage, b.damage_line) < 0)
                        *ret_what = NULL;
                block_keys_done(&b);
                return 1;
        }
        if (r == HOME_E_UNSAFE)
                rc = 1;
        else if (r != 0)
                rc = 2;
        else {
                int m = keys_match(&b, st);
                rc = m < 0 ? 2 : m == 0 ? 1 : 0;
        }
        block_keys_done(&b);
        if (rc && asprintf(ret_what, "%s: managed keys of %s %s", rc == 1 ? "drift" : "unknown", st->user,
                           r == HOME_E_UNSAFE ? "are behind an unsafe path" : r != 0 ? "cannot be read" : "differ from the last apply") < 0)
                *ret_what = NULL;
        return rc;
}

int node_verify(Node *n, const State *s, char **ret_what) {
        const char *sshd_what = NULL;
        int rc;

        /* In Disabled the promise is that nothing answers as sshd: the most serious drift, named first. */
        if (s->mode == MODE_DISABLED && node_verify_listeners(n, ret_what) > 0)
                return 1;
        rc = verify_units(n, s, ret_what);
        if (rc)
                return rc;
        rc = sshd_config_verify(n->root_fd, s->mode == MODE_ENTRAID, &sshd_what);
        if (rc) {
                if (asprintf(ret_what, "%s: %s for mode %s", rc == 1 ? "drift" : "unknown", sshd_what, mode_to_string(s->mode)) < 0)
                        *ret_what = NULL;
                return rc;
        }
        rc = s->user ? verify_keys(n, s, ret_what) : 0;
        if (rc)
                return rc;
        if (asprintf(ret_what, "in sync: %s, %zu managed key%s, applied %s from %s", mode_to_string(s->mode), s->n_keys,
                     s->n_keys == 1 ? "" : "s", s->last_time ?: "?", s->last_source ?: "?") < 0)
                *ret_what = NULL;
        return 0;
}

cJSON *json_key(const SshKey *k) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "type", k->type);
        cJSON_AddStringToObject(o, "fingerprint", k->fingerprint);
        cJSON_AddItemToObject(o, "comment", k->comment ? cJSON_CreateString(k->comment) : cJSON_CreateNull());
        return o;
}

cJSON *json_rejections(const Policy *p) {
        cJSON *a = cJSON_CreateArray();

        for (size_t i = 0; a && i < p->n_rejected; i++) {
                cJSON *k = cJSON_CreateObject();
                cJSON_AddNumberToObject(k, "index", (double) p->rejected[i].index);
                cJSON_AddStringToObject(k, "reason", p->rejected[i].reason);
                cJSON_AddItemToArray(a, k);
        }
        return a;
}

void json_print_free(cJSON *j) {
        char *text = j ? cJSON_Print(j) : NULL;

        if (text)
                puts(text);
        free(text);
        cJSON_Delete(j);
}
