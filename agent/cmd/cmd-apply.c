/* SPDX-License-Identifier: MIT */
/* apply: fetch → validate → observe → decide → execute → record. What each mode does: decide/decide.c. */

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apply/sshd-config.h"
#include "cmd.h"
#include "log.h"
#include "macro.h"
#include "text-util.h"

/* The keys the run manages (LocalUser with the key part done), for the plan, --json and the log. */
static size_t managed_keys(const Snapshot *s, const Decision *d) {
        return d->key_part && d->mode == MODE_LOCALUSER ? s->policy.n_keys : 0;
}

static void print_plan(const Options *o, const Snapshot *s, const Decision *d) {
        const char *root = o->root ?: "";

        printf("Plan%s: mode %s (source %s)\n", o->dry_run ? " (dry run, nothing changed)" : "", mode_to_string(d->mode), d->source);
        if (d->key_part) {
                _cleanup_free_ char *home = text_escape(s->user.real_home); /* from passwd: escaped */
                printf("  %s%s/.ssh/authorized_keys: %s\n", root, home ?: "?",
                       !d->keys_change                     ? "unchanged"
                               : d->mode == MODE_LOCALUSER ? "write the managed block"
                                                           : "remove the managed block");
                for (size_t i = 0; i < managed_keys(s, d); i++)
                        printf("    %s %s %s\n", s->policy.keys[i].key.type, s->policy.keys[i].key.fingerprint,
                               s->policy.keys[i].key.comment ?: "");
        } else
                printf("  authorized_keys: not touched\n");
        if (d->admin_changed) {
                _cleanup_free_ char *who = text_escape(s->prev.user);
                printf("  previous admin %s: remove the managed block\n", who ?: "?");
        }
        for (size_t i = 0; s->have_policy && i < s->policy.n_rejected && i < REJECTED_NAMED_MAX; i++)
                printf("  rejected publicKeys[%zu]: %s\n", s->policy.rejected[i].index, s->policy.rejected[i].reason);
        if (s->have_policy && s->policy.n_rejected > REJECTED_NAMED_MAX)
                printf("  rejected: %zu more entries\n", s->policy.n_rejected - REJECTED_NAMED_MAX);
        if (d->sshd_change)
                printf("  %s%s: %s\n", root, SSHD_CONFIG,
                       d->mode == MODE_ENTRAID ? "write the EntraId block at the top" : "remove the EntraId block");
        else if (d->mode == MODE_ENTRAID && s->sshd_r != 0)
                printf("  %s%s: unusable (%s): sshd fails closed\n", root, SSHD_CONFIG, sshd_read_error_to_string(s->sshd_r));
        if (s->legacy_dropin > 0)
                printf("  %s%s/%s: remove\n", root, SSHD_LEGACY_DROPIN_DIR, SSHD_LEGACY_DROPIN_NAME);
        bool units = false;
        for (size_t i = 0; i < d->n_steps; i++)
                if (d->steps[i].kind == STEP_UNIT) {
                        printf("  %s %s\n", unit_action_to_string(d->steps[i].action), d->steps[i].unit ?: "");
                        units = true;
                }
        if (!units)
                printf("  units: unchanged\n");
}

static void print_json(const Options *o, const Snapshot *s, const Decision *d) {
        cJSON *j = cJSON_CreateObject(), *a;

        if (!j)
                return;
        cJSON_AddStringToObject(j, "mode", mode_to_string(d->mode));
        cJSON_AddStringToObject(j, "source", d->source);
        cJSON_AddStringToObject(j, "result", d->result ?: "ok");
        cJSON_AddNumberToObject(j, "exit", d->exit);
        cJSON_AddBoolToObject(j, "dry_run", o->dry_run);
        cJSON_AddBoolToObject(j, "fallback", d->fallback);
        if (s->user_r == 0 && s->user.uid != 0)
                cJSON_AddStringToObject(j, "user", s->user.name);
        cJSON_AddBoolToObject(j, "keys_changed", d->keys_change);
        a = cJSON_AddArrayToObject(j, "keys");
        for (size_t i = 0; a && i < managed_keys(s, d); i++)
                cJSON_AddItemToArray(a, json_key(&s->policy.keys[i].key));
        cJSON_AddItemToObject(j, "rejected", s->have_policy ? json_rejections(&s->policy) : cJSON_CreateArray());
        a = cJSON_AddArrayToObject(j, "actions");
        for (size_t i = 0; a && i < d->n_steps; i++) {
                if (d->steps[i].kind != STEP_UNIT)
                        continue;
                cJSON *k = cJSON_CreateObject();
                cJSON_AddStringToObject(k, "action", unit_action_to_string(d->steps[i].action));
                if (d->steps[i].unit)
                        cJSON_AddStringToObject(k, "unit", d->steps[i].unit);
                cJSON_AddItemToArray(a, k);
        }
        json_print_free(j, false);
}

static char *now_rfc3339(void) {
        struct timespec ts;
        struct tm tm;
        char buf[64];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return strdup(buf);
}

/* The state record, and the metrics from what the state file holds then. */
static void record(Node *n, const Snapshot *s, Decision *d) {
        _cleanup_free_ char *now = now_rfc3339();
        State st = { .mode = MODE_INVALID };
        int e;

        e = decide_record(s, d, now, &st);
        if (e < 0)
                decision_fail(d, PART_OOM, e);
        else
                e = state_save(n->root_fd, &st);
        if (e < 0 && st.mode != MODE_INVALID) {
                log_error_errno(e, "Cannot write %s/%s: %m", STATE_DIR, STATE_FILE);
                decision_fail(d, PART_STATE, e);
        }
        node_write_metrics(n, e < 0 ? &s->prev : &st, -1, false);
        state_done(&st);
}

static void log_outcome(const Decision *d, bool changed) {
        char mode_field[64], source_field[64];

        snprintf(mode_field, sizeof mode_field, "SSH_ACCESS_MODE=%s", mode_to_string(d->mode));
        snprintf(source_field, sizeof source_field, "SSH_ACCESS_SOURCE=%s", d->source);
        const char *fields[] = { mode_field, source_field, NULL };
        if (changed)
                log_event(LOG_NOTICE, d->fallback ? MID_FALLBACK_APPLIED : MID_MODE_APPLIED, fields,
                          "SSH access mode %s applied%s (source %s)%s%s.", mode_to_string(d->mode), d->fallback ? " as fallback" : "",
                          d->source, d->exit && d->result ? ", with problems: " : "", d->exit && d->result ? d->result : "");
        else
                log_event(LOG_INFO, MID_ALREADY_IN_SYNC, fields, "SSH access mode %s: node already in sync (source %s).",
                          mode_to_string(d->mode), d->source);
}

/* Every non-zero exit prints one clear line on stderr (SPEC §6). */
static void print_failure(const Snapshot *s, const Decision *d, const char *detail) {
        const char *what = d->result ?: "failed";
        const Problem *broken = decision_find_problem(d, PART_UNIT_BROKEN);

        if (d->entraid_failed && d->exit == EX_CONFIG)
                fprintf(stderr, "aks-ssh-access: EntraId%s cannot be made effective: %s; sshd left masked (fail closed)\n",
                        d->fallback ? " (fallback)" : "", d->entraid_failed);
        else if (d->fallback)
                fprintf(stderr, "aks-ssh-access: %s (%s); applied fallback mode %s\n",
                        d->exit == EX_UNAVAILABLE ? "IMDS unavailable" : "invalid document", detail ?: what, mode_to_string(d->mode));
        else if (d->exit == EX_DATAERR && streq(what, "rejected-entries"))
                fprintf(stderr, "aks-ssh-access: %zu publicKeys entr%s rejected; applied mode %s with the valid ones\n",
                        s->policy.n_rejected, s->policy.n_rejected == 1 ? "y" : "ies", mode_to_string(d->mode));
        else if (broken && d->exit == EX_SOFTWARE && streq(what, "unit-broken"))
                fprintf(stderr, "aks-ssh-access: apply: unit %s%s is broken (%s); mode %s applied to every other unit\n",
                        s->units.units[broken->unit].name, d->n_broken > 1 ? " (and others)" : "", s->units.errors[broken->unit],
                        mode_to_string(d->mode));
        else
                fprintf(stderr, "aks-ssh-access: apply: %s (mode %s; see the log above)\n", what, mode_to_string(d->mode));
}

/* What is wanted: the document (or the state file, for a repair), or why there is none. Returns 0, or an
 * exit code to stop with (the line on stderr printed). */
static int want(const Options *o, Node *n, Snapshot *s, const char **ret_source, char **ret_detail, const char **ret_doc_error) {
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        int code, e;

        if (o->from_state) {
                code = policy_from_state(&s->prev, &s->policy, ret_source);
                if (code != 0) {
                        fprintf(stderr, "aks-ssh-access: cannot repair: %s\n",
                                code == EX_SOFTWARE
                                        ? "out of memory"
                                        : "the state file lacks what to re-assert (no mode, or keys recorded without their lines by an older version; run apply)");
                        return code;
                }
                s->have_policy = true;
                return 0;
        }
        code = node_fetch(n, o->imds_file, &body, &len, ret_source, ret_detail);
        if (code == EX_NOINPUT) {
                fprintf(stderr, "aks-ssh-access: %s\n", *ret_detail ?: "cannot read --imds-file");
                return code;
        }
        if (code == 0) {
                e = policy_parse(body, len, n->config.mode_tag, &s->policy, ret_doc_error);
                if (e == -ENOMEM)
                        return log_oom(), EX_SOFTWARE;
                if (e < 0)
                        code = EX_DATAERR;
                else
                        s->have_policy = true;
        }
        if (code == 0)
                return 0;
        /* No valid configuration: re-assert the last applied mode, else fail closed (decide()). */
        s->fetch_exit = code;
        if (code == EX_UNAVAILABLE)
                log_event(LOG_ERR, MID_IMDS_UNAVAILABLE, NULL, "IMDS unavailable: %s", *ret_detail ?: "?");
        else
                log_event(LOG_ERR, MID_DOCUMENT_INVALID, NULL, "Invalid %s document: %s", *ret_source, *ret_doc_error ?: *ret_detail ?: "?");
        *ret_source = "fallback";
        log_event(LOG_WARNING, MID_FALLBACK_APPLIED, NULL, "Applying fallback mode %s (%s); keys untouched.",
                  mode_to_string(s->prev.mode != MODE_INVALID ? s->prev.mode : n->config.fallback_mode),
                  s->prev.mode != MODE_INVALID ? "last applied" : "fallback_mode");
        return 0;
}

int cmd_apply(const Options *o) {
        Node n = {};
        Snapshot s = SNAPSHOT_INIT;
        Decision d = {};
        _cleanup_close_ int lock_fd = -1;
        _cleanup_free_ char *detail = NULL;
        const char *source = NULL, *doc_error = NULL;
        size_t logged = 0;
        bool changed = false;
        int code, e;

        s.from_state = o->from_state;
        code = node_open(o->root, o->config_file, o->imds_url, true, &n);
        if (code != 0) {
                fprintf(stderr, "aks-ssh-access: apply: cannot start (see above)\n");
                return code;
        }
        if (!o->dry_run) {
                e = lock_acquire(n.root_fd, &lock_fd);
                if (e == -EWOULDBLOCK)
                        fprintf(stderr, "aks-ssh-access: another run holds %s%s\n", o->root ?: "", LOCK_PATH);
                else if (e < 0)
                        fprintf(stderr, "aks-ssh-access: cannot take the lock %s%s: %s\n", o->root ?: "", LOCK_PATH, strerror(-e));
                if (e < 0) {
                        node_done(&n);
                        return error_lookup(PART_LOCK, e).exit;
                }
        }

        e = state_load(n.root_fd, &s.prev);
        if (e < 0 && e != -ENOENT)
                log_warning_errno(e, "Ignoring unreadable state file %s/%s: %m", STATE_DIR, STATE_FILE);
        if (e < 0)
                s.prev = (State) { .mode = MODE_INVALID };

        code = want(o, &n, &s, &source, &detail, &doc_error);
        if (code != 0)
                goto finish;
        e = node_observe(&n, &s);
        if (e >= 0)
                e = decide(&s, &d);
        if (e < 0) {
                log_oom();
                code = EX_SOFTWARE;
                goto finish;
        }
        d.source = source;
        node_log_problems(&s, &d, &logged);

        if (o->dry_run) {
                if (!o->json)
                        print_plan(o, &s, &d);
        } else {
                e = node_execute(&n, &s, &d, &changed);
                if (e < 0)
                        decision_fail(&d, PART_OOM, e);
                log_outcome(&d, changed);
                record(&n, &s, &d);
        }
        if (o->json)
                print_json(o, &s, &d);
        code = d.exit;
        if (code != 0)
                print_failure(&s, &d, doc_error ?: detail);
finish:
        decision_done(&d);
        snapshot_done(&s);
        node_done(&n);
        return code;
}
