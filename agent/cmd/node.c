/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "apply/authorized-keys.h"
#include "apply/generator.h"
#include "apply/sshd-config.h"
#include "cmd.h"
#include "fs-util.h"
#include "imds/imds.h"
#include "log.h"
#include "macro.h"

/* Severity order: internal/system failures first, then what blocks sshd, the key part, the document. */
static int severity(int code) {
        switch (code) {
        case 0: return 0;
        case EX_DATAERR: return 1;      /* 65 rejected entries / invalid document */
        case EX_NOUSER: return 2;       /* 67 */
        case EX_NOPERM: return 3;       /* 77 */
        case EX_UNAVAILABLE: return 4;  /* 69 */
        case EX_CONFIG: return 5;       /* 78 */
        case EX_IOERR: return 6;        /* 74 */
        case EX_CANTCREAT: return 7;    /* 73 */
        case EX_SOFTWARE: return 8;     /* 70 */
        default: return 9;
        }
}

int exit_code_worse(int a, int b) {
        return severity(b) > severity(a) ? b : a;
}

int exit_code_from_errno(int r) {
        switch (r < 0 ? -r : r) {
        case 0: return 0;
        case EPERM: case ELOOP: case ENOTDIR: case EMLINK: return EX_NOPERM;
        case ENOENT: return EX_NOUSER;
        case EACCES: case EROFS: case EEXIST: case ENAMETOOLONG: return EX_CANTCREAT;
        case EIO: case ENOSPC: case EDQUOT: case EFBIG: return EX_IOERR;
        case EBADMSG: return EX_CONFIG;
        default: return EX_SOFTWARE;
        }
}

char *now_rfc3339(void) {
        struct timespec ts;
        struct tm tm;
        char buf[64];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return strdup(buf);
}

int node_open(const Options *o, bool need_backend, Node *ret) {
        Node n = { .root_fd = AT_FDCWD, .root = o->root };
        int r;

        r = config_init(&n.config);
        if (r < 0)
                return log_oom();
        if (o->root) {
                n.root_fd = open(o->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (n.root_fd < 0) {
                        r = -errno;
                        config_done(&n.config);
                        log_error_errno(r, "Cannot open root directory %s: %m", o->root);
                        return EX_USAGE;
                }
        }
        r = config_load(&n.config, n.root_fd, o->config_file);
        for (size_t i = 0; i < n.config.n_notes; i++) /* the loader does not log */
                log_full_errno(n.config.notes[i].level, n.config.notes[i].error, "%s", n.config.notes[i].text);
        if (r < 0) {
                node_done(&n);
                return EX_USAGE;
        }
        if (o->imds_url) {
                char *u = strdup(o->imds_url);
                if (!u) {
                        node_done(&n);
                        return EX_SOFTWARE;
                }
                free(n.config.imds_url);
                n.config.imds_url = u;
        }
        if (need_backend) {
                r = o->root ? unit_backend_new_offline(o->root, &n.backend) : unit_backend_new_live(&n.backend);
                if (r < 0) {
                        log_error_errno(r, "Cannot set up unit control (%s): %m", o->root ? "offline" : "systemd");
                        node_done(&n);
                        return EX_SOFTWARE;
                }
        }
        *ret = n;
        return 0;
}

void node_done(Node *n) {
        listener_list_done(&n->listeners);
        if (n->backend)
                n->backend->vtable->free(n->backend);
        if (n->root_fd >= 0)
                close(n->root_fd);
        config_done(&n->config);
        *n = (Node) { .root_fd = AT_FDCWD };
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

void unit_info_list_done(UnitInfoList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free((char *) l->units[i].name);
                free((char *) l->units[i].file_state);
                free((char *) l->units[i].active_state);
                free((char *) l->units[i].canonical);
                free(l->errors[i]);
        }
        free(l->units);
        free(l->errors);
        *l = (UnitInfoList) {};
}

/* One unit's state. A failure to read it (any error but "no such unit", which the backend answers as
 * "not-found") makes the unit broken: file_state "bad" and the error kept, so that the caller still
 * treats it (Disabled masks it) and names it. Only -ENOMEM is returned. */
static int query_unit(UnitBackend *b, const char *name, UnitInfo *ret, char **ret_error) {
        _cleanup_free_ char *fs = NULL, *as = NULL, *canon = NULL;
        int r;

        b->error[0] = '\0';
        r = b->vtable->get_file_state(b, name, &fs);
        if (r >= 0 && !streq(fs, "not-found")) {
                r = b->vtable->resolve_name(b, name, &canon);
                if (r == -ENOENT)
                        r = 0;
        }
        if (r >= 0)
                r = b->vtable->get_active_state(b, name, &as);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                free(fs);
                fs = NULL;
        }
        *ret = (UnitInfo) {
                .name = strdup(name),
                .file_state = r < 0 ? strdup("bad") : TAKE_PTR(fs),
                .active_state = as ? TAKE_PTR(as) : strdup(r < 0 ? "unknown" : "inactive"),
                .canonical = canon ? TAKE_PTR(canon) : strdup(name),
        };
        *ret_error = r < 0 ? strdup(b->error[0] ? b->error : strerror(-r)) : NULL;
        if (!ret->name || !ret->file_state || !ret->active_state || !ret->canonical || (r < 0 && !*ret_error))
                return -ENOMEM;
        return 0;
}

int node_query_units(Node *n, UnitInfoList *ret) {
        _cleanup_strv_free_ char **names = NULL;
        UnitInfoList l = {};
        GeneratorInfo gen = {};
        size_t count = 0;
        int r;

        /* The managed set: the configured units, and with systemd's ssh generator in the tree its sockets. */
        r = generator_query(n->root_fd, &gen);
        if (r >= 0 && gen.present) {
                r = generator_socket_names(n->root_fd, &names);
                if (r == -ENOMEM)
                        return r;
        }
        for (char **u = n->config.units; *u; u++)
                count++;
        for (char **u = names; u && *u; u++)
                count++;
        l.units = calloc(count ?: 1, sizeof *l.units);
        l.errors = calloc(count ?: 1, sizeof *l.errors);
        if (!l.units || !l.errors) {
                free(l.units);
                free(l.errors);
                return -ENOMEM;
        }
        /* Every unit is tried: one that cannot be read does not stop the others (SPEC §4). */
        size_t n_config = 0;
        for (char **u = n->config.units; *u; u++)
                n_config++;
        for (size_t k = 0; k < count; k++) {
                const char *u = k < n_config ? n->config.units[k] : names[k - n_config];
                bool dup = false;
                for (size_t j = 0; j < l.n; j++)
                        dup = dup || streq(l.units[j].name, u);
                if (dup)
                        continue;
                r = query_unit(n->backend, u, &l.units[l.n], &l.errors[l.n]);
                l.n++;
                if (r < 0) {
                        unit_info_list_done(&l);
                        return r;
                }
        }
        *ret = l;
        return 0;
}

void block_keys_done(BlockKeys *b) {
        for (size_t i = 0; i < b->n; i++)
                sshkey_done(&b->keys[i]);
        free(b->keys);
        *b = (BlockKeys) {};
}

int node_read_block(const Node *n, AdminUser *u, BlockKeys *ret) {
        _cleanup_close_ int home_fd = -1, ssh_fd = -1;
        _cleanup_free_ char *text = NULL;
        _cleanup_strv_free_ char **lines = NULL;
        BlockKeys b = {};
        size_t len, count = 0;
        int r;

        r = home_open(n->root_fd, u, &home_fd);
        if (r != 0)
                return r;
        r = ssh_dir_open(home_fd, u, false, &ssh_fd);
        if (r == HOME_E_NOT_FOUND) {
                *ret = b;
                return 0;
        }
        if (r != 0)
                return r;
        r = authorized_keys_read(ssh_fd, u, &text, &len);
        if (r == HOME_E_NOT_FOUND) {
                *ret = b;
                return 0;
        }
        if (r != 0)
                return r;
        r = authorized_keys_block_lines(text, len, &lines, &b.found);
        if (r == -EBADMSG) {
                (void) authorized_keys_check(text, len, &b.damage_line, &b.damage);
                *ret = b;
                return 0;
        }
        if (r < 0)
                return r;
        for (char **l = lines; *l; l++)
                count++;
        b.keys = calloc(count ?: 1, sizeof *b.keys);
        if (!b.keys)
                return -ENOMEM;
        for (char **l = lines; *l; l++) {
                if (sshkey_parse(*l, strlen(*l), &b.keys[b.n], NULL) == 0)
                        b.n++;
                else
                        b.n_invalid++;
        }
        *ret = b;
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
        case UNIT_MASK: return "masked";
        case UNIT_UNMASK: return "unmasked";
        case UNIT_ENABLE: return "enabled";
        case UNIT_START: return "running";
        default: return "reloaded";
        }
}

int node_verify(Node *n, const State *s, char **ret_what) {
        UnitInfoList units = {};
        UnitPlan plan = {};
        int r, rc = 0;

        /* In Disabled the promise is that nothing answers as sshd: the most serious drift, named first. */
        if (s->mode == MODE_DISABLED && node_verify_listeners(n, ret_what) > 0)
                return 1;

        r = node_query_units(n, &units);
        if (r < 0) {
                if (asprintf(ret_what, "unknown: cannot read unit states: %s", strerror(-r)) < 0)
                        *ret_what = NULL;
                return 2;
        }
        r = unit_plan_build(s->mode, units.units, units.n, &s->image, &plan);
        if (r < 0) {
                unit_info_list_done(&units);
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
        for (const UnitAction *a = first; a; a = NULL) {
                const char *state = "?";
                for (size_t j = 0; j < units.n; j++)
                        if (a->unit && (streq(units.units[j].name, a->unit) || streq(units.units[j].canonical, a->unit)))
                                state = a->kind == UNIT_STOP ? units.units[j].active_state : units.units[j].file_state;
                if (asprintf(ret_what, "drift: %s is %s, expected %s for mode %s", a->unit, state, expected_word(a), mode_to_string(s->mode)) < 0)
                        *ret_what = NULL;
                rc = 1;
        }
        unit_plan_done(&plan);
        unit_info_list_done(&units);
        if (rc)
                return rc;

        const char *sshd_what = NULL;
        rc = sshd_config_verify(n->root_fd, s->mode == MODE_ENTRAID, &sshd_what);
        if (rc) {
                if (asprintf(ret_what, "%s: %s for mode %s", rc == 1 ? "drift" : "unknown", sshd_what, mode_to_string(s->mode)) < 0)
                        *ret_what = NULL;
                return rc;
        }

        if (s->user) {
                AdminUser u = {};
                BlockKeys b = {};

                r = admin_user_lookup(n->root_fd, s->user, &u);
                if (r == 0)
                        r = node_read_block(n, &u, &b);
                admin_user_done(&u);
                if (r == HOME_E_UNSAFE)
                        rc = 1;
                else if (r != 0)
                        rc = 2;
                else if (b.damage) {
                        if (asprintf(ret_what, "drift: managed block of %s damaged (%s, line %zu)", s->user, b.damage, b.damage_line) < 0)
                                *ret_what = NULL;
                        block_keys_done(&b);
                        return 1;
                } else {
                        int m = keys_match(&b, s);
                        rc = m < 0 ? 2 : m == 0 ? 1 : 0;
                }
                if (rc && asprintf(ret_what, "%s: managed keys of %s %s", rc == 1 ? "drift" : "unknown", s->user,
                                   r == HOME_E_UNSAFE ? "are behind an unsafe path" : r != 0 ? "cannot be read" : "differ from the last apply") < 0)
                        *ret_what = NULL;
                block_keys_done(&b);
                if (rc)
                        return rc;
        }

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
