/* SPDX-License-Identifier: MIT */
/* apply: fetch → validate → plan → apply (keys, units) → record. */

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply/authorized-keys.h"
#include "apply/generator.h"
#include "apply/sshd-config.h"
#include "cmd.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "text-util.h"

/* How many rejected publicKeys entries are logged one by one; the rest are counted. */
#define REJECTED_LOG_MAX 10

/* What one apply run decided and did; printed for --dry-run / --json and recorded. */
typedef struct Run {
        const Options *o;
        Node node;
        State prev;           /* the state file as found (mode MODE_INVALID if none) */
        Policy policy;
        bool have_policy;
        bool fallback;
        Mode mode;
        const char *source;   /* "imds", "file", "fallback" */
        char *fetch_detail;
        const char *result;   /* short word for the state file */
        int exit;
        AdminUser user;
        bool have_user;
        bool admin_changed;   /* the document names another admin than the state file: its block goes */
        int prev_admin;       /* 1 the previous admin's block is gone, -1 removing it failed */
        bool refused_root;    /* the admin has uid 0: never recorded as the user whose keys are managed */
        /* key part */
        bool key_part;        /* the key part is to be done (not blocked, not a fallback) */
        char *ak_old;
        size_t ak_old_len;
        bool ak_exists;
        char *ak_new;
        size_t ak_new_len;
        bool keys_change;
        int home_fd, ssh_fd;
        /* unit part */
        UnitInfoList units;
        UnitPlan plan;
        ImageRecord image;    /* the record to keep */
        /* sshd configuration (EntraId's block at the top of sshd_config) */
        SshdConfigFile sshd;
        int sshd_read_error;  /* 0, or why sshd_config could not be read */
        char *sshd_new;       /* what sshd_config is to hold, when sshd_change */
        size_t sshd_new_len;
        bool sshd_change;
        bool legacy_dropin;   /* the old agent's drop-in is there: remove it */
        char *entraid_failed; /* why EntraId could not be made effective (the units then fail closed) */
        GeneratorInfo gen;    /* systemd's ssh generator; gen.ours: the agent's own mask, kept in the state */
        size_t n_broken;      /* managed units whose state could not be read */
        const char *broken, *broken_error; /* the first of them, and why */
} Run;

static void run_done(Run *r) {
        state_done(&r->prev);
        policy_done(&r->policy);
        free(r->fetch_detail);
        admin_user_done(&r->user);
        free(r->ak_old);
        free(r->ak_new);
        if (r->home_fd >= 0)
                close(r->home_fd);
        if (r->ssh_fd >= 0)
                close(r->ssh_fd);
        unit_plan_done(&r->plan);
        unit_info_list_done(&r->units);
        image_record_done(&r->image);
        sshd_config_file_done(&r->sshd);
        free(r->sshd_new);
        free(r->entraid_failed);
        node_done(&r->node);
}

/* Records a failure; the most severe one decides the exit code and the result word. */
static void fail(Run *r, int code, const char *result) {
        if (!r->result || (code != r->exit && exit_code_worse(r->exit, code) == code))
                r->result = result;
        r->exit = exit_code_worse(r->exit, code);
}

/* The exit code of a home.c result: its documented outcomes, else what the errno says. */
static int home_exit_code(int e) {
        switch (e) {
        case HOME_E_NO_USER: case HOME_E_NOT_FOUND: case HOME_E_ROOT: return EX_NOUSER;
        case HOME_E_UNSAFE: return EX_NOPERM;
        case HOME_E_IMMUTABLE: return EX_CANTCREAT;
        default: return exit_code_from_errno(e);
        }
}

/* The key part's preparation: user, home, paths, the merged file. Blocks only the key part on failure. */
static void prepare_keys(Run *r) {
        _cleanup_strv_free_ char **lines = NULL;
        size_t n = 0;
        int e;

        e = admin_user_lookup(r->node.root_fd, r->policy.admin_user, &r->user);
        if (e != 0) {
                log_event_errno(LOG_ERR, e < 0 ? e : 0, MID_USER_MISSING, NULL, "Admin user %s not found in the passwd database%s%s: %s",
                                r->policy.admin_user, r->o->root ? " of " : "", r->o->root ?: "",
                                *r->user.error ? r->user.error : e == HOME_E_NO_USER ? "no such user" : strerror(-e));
                fail(r, EX_NOUSER, "admin-user-missing");
                return;
        }
        if (r->user.uid == 0) {
                /* Azure never provisions root as the admin: such a document is not trusted with root's keys. */
                log_event(LOG_ERR, MID_USER_MISSING, NULL, "Refusing admin user %s: it has uid 0 in the passwd database%s%s.",
                          r->policy.admin_user, r->o->root ? " of " : "", r->o->root ?: "");
                fail(r, EX_NOUSER, "admin-user-root");
                r->refused_root = true;
                return;
        }
        r->have_user = true;

        e = home_open(r->node.root_fd, &r->user, &r->home_fd);
        if (e != 0) {
                log_event_errno(LOG_ERR, e < 0 ? e : 0, MID_UNSAFE_PATH, NULL, "Not touching the keys of %s: %s.", r->user.name, r->user.error);
                fail(r, home_exit_code(e), e == HOME_E_NOT_FOUND ? "home-missing" : "unsafe-path");
                return;
        }

        (void) policy_check_paths(&r->policy, r->user.home, r->user.real_home);

        if (r->mode == MODE_LOCALUSER) {
                lines = calloc(r->policy.n_keys + 1, sizeof *lines);
                if (!lines) {
                        fail(r, EX_SOFTWARE, "out-of-memory");
                        return;
                }
                for (size_t i = 0; i < r->policy.n_keys; i++) {
                        lines[n] = sshkey_format(&r->policy.keys[i].key);
                        if (!lines[n++]) {
                                fail(r, EX_SOFTWARE, "out-of-memory");
                                return;
                        }
                }
        }

        e = ssh_dir_open(r->home_fd, &r->user, false, &r->ssh_fd);
        if (e == HOME_E_NOT_FOUND) {
                r->ssh_fd = -1;
        } else if (e != 0) {
                log_event_errno(LOG_ERR, e < 0 ? e : 0, MID_UNSAFE_PATH, NULL, "Not touching the keys of %s: %s.", r->user.name, r->user.error);
                fail(r, home_exit_code(e), "unsafe-path");
                return;
        } else {
                e = authorized_keys_read(r->ssh_fd, &r->user, &r->ak_old, &r->ak_old_len);
                if (e == HOME_E_NOT_FOUND)
                        r->ak_exists = false;
                else if (e != 0) {
                        log_event_errno(LOG_ERR, e < 0 ? e : 0, MID_UNSAFE_PATH, NULL, "Not touching the keys of %s: %s.", r->user.name, r->user.error);
                        fail(r, home_exit_code(e), e == HOME_E_UNSAFE ? "unsafe-path" : "io-error");
                        return;
                } else
                        r->ak_exists = true;
        }

        e = authorized_keys_merge(r->ak_old ?: "", r->ak_old_len, lines, n, &r->ak_new, &r->ak_new_len);
        if (e == -EBADMSG) {
                /* Unpaired markers: which lines are ours cannot be told, so the file is left as it is. */
                size_t line = 0;
                const char *what = NULL;
                (void) authorized_keys_check(r->ak_old, r->ak_old_len, &line, &what);
                log_event(LOG_ERR, MID_UNSAFE_PATH, NULL, "Not touching the keys of %s: the managed block in %s/.ssh/authorized_keys is damaged (%s, line %zu); fix or remove the markers by hand.",
                          r->user.name, r->user.real_home, what ?: "?", line);
                fail(r, EX_DATAERR, "authorized-keys-damaged");
                return;
        }
        if (e < 0) {
                fail(r, EX_SOFTWARE, "out-of-memory");
                return;
        }
        /* Nothing to write when the bytes would not change, or when there is no file and nothing to add. */
        r->keys_change = r->ak_exists ? (r->ak_new_len != r->ak_old_len || memcmp(r->ak_new, r->ak_old, r->ak_old_len) != 0)
                                      : n > 0;
        r->key_part = true;
}

/* The admin changed: the previous admin's managed block goes, every other byte of their file stays. */
static int remove_previous_admin_keys(Run *r) {
        _cleanup_(admin_user_done) AdminUser prev = {};
        _cleanup_free_ char *who = text_escape(r->prev.user); /* from state.json: printed escaped */
        bool removed = false;
        int e = authorized_keys_remove_managed(r->node.root_fd, r->prev.user, &prev, &removed);

        if (e == HOME_E_NO_USER) {
                log_warning("Previous admin user %s no longer exists; no managed keys of theirs to remove.", who ?: "?");
                e = 0;
        }
        if (e == HOME_E_ROOT) {
                log_warning("Previous admin user %s has uid 0; its authorized_keys is never touched.", who ?: "?");
                e = 0;
        }
        if (e != 0) {
                log_event_errno(LOG_ERR, e < 0 ? e : 0, MID_UNSAFE_PATH, NULL, "Cannot remove the managed keys of the previous admin user %s: %s",
                                who ?: "?", e == -EBADMSG ? "the managed block is damaged" : *prev.error ? prev.error : strerror(-e));
                fail(r, e == -EBADMSG ? EX_DATAERR : home_exit_code(e), e == -EBADMSG ? "authorized-keys-damaged" : "previous-admin-keys");
                r->prev_admin = -1;
                r->key_part = false; /* the state keeps naming the previous admin, so the next run tries again */
                return -1;
        }
        if (removed)
                log_event(LOG_INFO, MID_KEYS_WRITTEN, NULL, "Removed the managed keys of the previous admin user %s.", who ?: "?");
        r->prev_admin = 1;
        return removed;
}

static int write_keys(Run *r) {
        int e, removed = 0;

        if (r->admin_changed && (removed = remove_previous_admin_keys(r)) < 0)
                return 0;
        if (!r->key_part)
                return removed > 0;
        /* A killed run's temp files go even when the file itself is already right (SPEC §4). */
        if (r->ssh_fd >= 0)
                (void) remove_stale_temp_files(r->ssh_fd, "authorized_keys");
        if (!r->keys_change)
                return removed > 0;
        if (r->ssh_fd < 0)
                e = ssh_dir_open(r->home_fd, &r->user, true, &r->ssh_fd);
        else
                e = ssh_dir_tighten(r->ssh_fd, &r->user, true);
        if (e != 0) {
                log_event_errno(LOG_ERR, e < 0 ? e : 0, MID_UNSAFE_PATH, NULL, "Not writing the keys of %s: %s.", r->user.name, r->user.error);
                fail(r, home_exit_code(e), e == HOME_E_UNSAFE ? "unsafe-path" : "cannot-create");
                return -1;
        }
        e = authorized_keys_write(r->ssh_fd, &r->user, r->ak_new, r->ak_new_len);
        if (e != 0) {
                log_event_errno(LOG_ERR, e < 0 ? e : 0, MID_UNSAFE_PATH, NULL, "Not writing the keys of %s: %s.", r->user.name, r->user.error);
                fail(r, home_exit_code(e), e == HOME_E_IMMUTABLE ? "cannot-create" : "io-error");
                return -1;
        }
        char count[32];
        snprintf(count, sizeof count, "KEY_COUNT=%zu", r->mode == MODE_LOCALUSER ? r->policy.n_keys : 0);
        const char *fields[] = { count, NULL };
        log_event(LOG_INFO, MID_KEYS_WRITTEN, fields, "%s managed keys of %s: %zu key%s.",
                  r->mode == MODE_LOCALUSER ? "Wrote" : "Removed", r->user.name,
                  r->mode == MODE_LOCALUSER ? r->policy.n_keys : 0, r->mode == MODE_LOCALUSER && r->policy.n_keys == 1 ? "" : "s");
        return 1;
}

/* Never service and socket both enabled for port 22 (SPEC §1): enabling one can enable the other too
 * (`Also=ssh.socket` in ssh.service's [Install]); when it came out enabled, disable it again. */
static int disable_the_other(Run *r) {
        UnitBackend *b = r->node.backend;
        _cleanup_free_ char *state = NULL;
        int e;

        if (!r->plan.off_unit)
                return 0;
        e = b->vtable->get_file_state(b, r->plan.off_unit, &state);
        if (e < 0 || !is_enabled_state(state))
                return 0; /* unreadable: the query already reported it; not enabled: nothing to do */
        log_info("Enabling %s also enabled %s; disabling it (never both for port 22).", r->plan.ssh_unit, r->plan.off_unit);
        e = b->vtable->disable(b, r->plan.off_unit);
        return e < 0 ? e : 0;
}

static int run_unit_plan(Run *r) {
        UnitBackend *b = r->node.backend;
        int worst = 0;

        for (size_t i = 0; i < r->plan.n; i++) {
                const UnitAction *a = &r->plan.actions[i];
                int e = 0;

                b->error[0] = '\0';
                switch (a->kind) {
                case UNIT_STOP: e = b->vtable->stop_no_block(b, a->unit); break;
                case UNIT_DISABLE: e = b->vtable->disable(b, a->unit); break;
                case UNIT_MASK: e = b->vtable->mask(b, a->unit); break;
                case UNIT_UNMASK: e = b->vtable->unmask(b, a->unit); break;
                case UNIT_ENABLE:
                        e = b->vtable->enable(b, a->unit);
                        if (e >= 0)
                                e = disable_the_other(r);
                        break;
                case UNIT_RELOAD: e = b->vtable->reload(b); break;
                case UNIT_START:
                        if (unit_is_generator_socket(a->unit)) {
                                /* only what the generator made after the daemon-reload */
                                _cleanup_free_ char *st = NULL;
                                if (b->vtable->get_file_state(b, a->unit, &st) < 0 || streq(st, "not-found"))
                                        break;
                        }
                        e = b->vtable->start_no_block(b, a->unit);
                        break;
                case UNIT_MASK_GENERATOR:
                        e = generator_mask(r->node.root_fd);
                        if (e > 0)
                                r->gen.ours = true;
                        break;
                case UNIT_UNMASK_GENERATOR:
                        e = generator_unmask(r->node.root_fd);
                        if (e >= 0)
                                r->gen.ours = false;
                        break;
                default: break;
                }
                if (e < 0) {
                        char unit_field[300];
                        snprintf(unit_field, sizeof unit_field, "UNIT_NAME=%s", a->unit ?: "");
                        const char *fields[] = { unit_field, NULL };
                        log_event_errno(LOG_ERR, e, MID_UNIT_FAILED, fields, "Failed to %s %s: %s", unit_action_to_string(a->kind),
                                        a->unit ?: "systemd", b->error[0] ? b->error : strerror(-e));
                        if (!worst)
                                worst = e;
                        /* Keep going: for Disabled every further step closes more; for the other modes a
                         * failed step leaves sshd off, which the exit code reports. */
                }
        }
        if (worst)
                fail(r, exit_code_from_errno(worst) == EX_CANTCREAT ? EX_CANTCREAT : EX_SOFTWARE, "unit-control-failed");
        return worst;
}

static const char *sshd_read_error_string(int e) {
        switch (-e) {
        case ENOENT: return "missing";
        case ELOOP: return "a symlink";
        case EBADFD: return "not a regular file";
        case EFBIG: return "larger than 1 MiB";
        default: return strerror(-e);
        }
}

static void print_plan(Run *r) {
        if (r->o->json)
                return;
        printf("Plan%s: mode %s (source %s)\n", r->o->dry_run ? " (dry run, nothing changed)" : "", mode_to_string(r->mode), r->source);
        if (r->key_part) {
                _cleanup_free_ char *home = text_escape(r->user.real_home); /* from passwd: escaped */
                if (r->keys_change)
                        printf("  %s%s/.ssh/authorized_keys: %s\n", r->o->root ?: "", home ?: "?",
                               r->mode == MODE_LOCALUSER ? "write the managed block" : "remove the managed block");
                else
                        printf("  %s%s/.ssh/authorized_keys: unchanged\n", r->o->root ?: "", home ?: "?");
                if (r->mode == MODE_LOCALUSER)
                        for (size_t i = 0; i < r->policy.n_keys; i++)
                                printf("    %s %s %s\n", r->policy.keys[i].key.type, r->policy.keys[i].key.fingerprint,
                                       r->policy.keys[i].key.comment ?: "");
        } else
                printf("  authorized_keys: not touched\n");
        if (r->admin_changed) {
                _cleanup_free_ char *who = text_escape(r->prev.user);
                printf("  previous admin %s: remove the managed block\n", who ?: "?");
        }
        for (size_t i = 0; r->have_policy && i < r->policy.n_rejected && i < REJECTED_LOG_MAX; i++)
                printf("  rejected publicKeys[%zu]: %s\n", r->policy.rejected[i].index, r->policy.rejected[i].reason);
        if (r->have_policy && r->policy.n_rejected > REJECTED_LOG_MAX)
                printf("  rejected: %zu more entries\n", r->policy.n_rejected - REJECTED_LOG_MAX);
        if (r->sshd_change)
                printf("  %s%s: %s\n", r->o->root ?: "", SSHD_CONFIG,
                       r->mode == MODE_ENTRAID ? "write the EntraId block at the top" : "remove the EntraId block");
        else if (r->mode == MODE_ENTRAID && r->sshd_read_error)
                printf("  %s%s: unusable (%s): sshd fails closed\n", r->o->root ?: "", SSHD_CONFIG, sshd_read_error_string(r->sshd_read_error));
        if (r->legacy_dropin)
                printf("  %s%s/%s: remove\n", r->o->root ?: "", SSHD_LEGACY_DROPIN_DIR, SSHD_LEGACY_DROPIN_NAME);
        for (size_t i = 0; i < r->plan.n; i++)
                printf("  %s %s\n", unit_action_to_string(r->plan.actions[i].kind), r->plan.actions[i].unit ?: "");
        if (r->plan.n == 0)
                printf("  units: unchanged\n");
}

static void print_json(Run *r) {
        cJSON *j = cJSON_CreateObject(), *a;

        if (!j)
                return;
        cJSON_AddStringToObject(j, "mode", mode_to_string(r->mode));
        cJSON_AddStringToObject(j, "source", r->source);
        cJSON_AddStringToObject(j, "result", r->result ?: "ok");
        cJSON_AddNumberToObject(j, "exit", r->exit);
        cJSON_AddBoolToObject(j, "dry_run", r->o->dry_run);
        cJSON_AddBoolToObject(j, "fallback", r->fallback);
        if (r->have_user)
                cJSON_AddStringToObject(j, "user", r->user.name);
        cJSON_AddBoolToObject(j, "keys_changed", r->keys_change);
        a = cJSON_AddArrayToObject(j, "keys");
        for (size_t i = 0; a && r->have_policy && r->mode == MODE_LOCALUSER && r->key_part && i < r->policy.n_keys; i++)
                cJSON_AddItemToArray(a, json_key(&r->policy.keys[i].key));
        cJSON_AddItemToObject(j, "rejected", r->have_policy ? json_rejections(&r->policy) : cJSON_CreateArray());
        a = cJSON_AddArrayToObject(j, "actions");
        for (size_t i = 0; a && i < r->plan.n; i++) {
                cJSON *k = cJSON_CreateObject();
                cJSON_AddStringToObject(k, "action", unit_action_to_string(r->plan.actions[i].kind));
                if (r->plan.actions[i].unit)
                        cJSON_AddStringToObject(k, "unit", r->plan.actions[i].unit);
                cJSON_AddItemToArray(a, k);
        }
        json_print_free(j);
}

static int record(Run *r) {
        State s = { .mode = r->mode };
        _cleanup_free_ char *now = now_rfc3339();
        int e;

        /* Keys and user: what this run made them, or (fallback, blocked key part) what they were. */
        if (r->key_part) {
                s.user = strdup(r->user.name);
                if (asprintf(&s.authorized_keys, "%s/.ssh/authorized_keys", r->user.real_home) < 0)
                        s.authorized_keys = NULL;
                size_t n = r->mode == MODE_LOCALUSER ? r->policy.n_keys : 0;
                s.keys = calloc(n ?: 1, sizeof *s.keys);
                for (size_t i = 0; s.keys && i < n; i++) {
                        const SshKey *k = &r->policy.keys[i].key;
                        s.keys[s.n_keys++] = (StateKey) { strdup(k->type), strdup(k->fingerprint), k->comment ? strdup(k->comment) : NULL,
                                                          sshkey_format(k) };
                }
        } else if (r->prev_admin >= 0 && (r->prev_admin > 0 || r->refused_root)) {
                /* The previous admin's keys are gone (or there was none); the new admin's could not be
                 * written. A uid-0 admin is not recorded: verify and status must not go looking in root's home. */
                s.user = r->refused_root ? NULL : strdup(r->policy.admin_user);
                s.keys = calloc(1, sizeof *s.keys);
        } else {
                s.user = r->prev.user ? strdup(r->prev.user) : (r->have_policy ? strdup(r->policy.admin_user) : NULL);
                s.authorized_keys = r->prev.authorized_keys ? strdup(r->prev.authorized_keys) : NULL;
                s.keys = r->prev.keys;
                s.n_keys = r->prev.n_keys;
                r->prev.keys = NULL;
                r->prev.n_keys = 0;
        }
        s.units = calloc(r->units.n + 1, sizeof *s.units);
        for (size_t i = 0, k = 0; s.units && i < r->units.n; i++)
                if (!streq(r->units.units[i].file_state, "not-found"))
                        s.units[k++] = strdup(r->units.units[i].name);
        s.image = r->image;
        r->image = (ImageRecord) {};
        s.generator_masked = r->gen.ours;
        s.vm_id = r->have_policy && r->policy.vm_id ? strdup(r->policy.vm_id) : (r->prev.vm_id ? strdup(r->prev.vm_id) : NULL);
        s.last_time = now ? strdup(now) : NULL;
        s.last_source = strdup(r->source);
        s.last_result = strdup(r->result ?: "ok");
        s.last_exit = r->exit;
        s.mode_applied_time = (r->fallback || r->o->from_state) && r->prev.mode_applied_time ? strdup(r->prev.mode_applied_time) : (now ? strdup(now) : NULL);

        e = state_save(r->node.root_fd, &s);
        state_done(&s);
        if (e < 0) {
                log_error_errno(e, "Cannot write %s/%s: %m", STATE_DIR, STATE_FILE);
                fail(r, exit_code_from_errno(e) == EX_CANTCREAT ? EX_CANTCREAT : EX_IOERR, "state-write-failed");
        }
        return e;
}

/* Keep the image's record once taken; take it before anything is first masked, from the units that
 * could be read (never from a failed query). */
static int take_image_record(Run *r, bool units_read) {
        if (r->prev.image.recorded) {
                r->image = r->prev.image;
                r->prev.image = (ImageRecord) {};
                return 0;
        }
        if (units_read)
                unit_plan_image_record(r->units.units, r->units.n, &r->image);
        return 0;
}

/* Write the image record before the first mask, so that a crash right after cannot lose how the image had
 * sshd. A shallow copy of the previous state: nothing in it is freed here. */
static void save_image_record_before_masking(Run *r) {
        bool masks = false, gen_mask = false;
        int e;

        for (size_t i = 0; i < r->plan.n; i++) {
                masks = masks || r->plan.actions[i].kind == UNIT_MASK;
                gen_mask = gen_mask || r->plan.actions[i].kind == UNIT_MASK_GENERATOR;
        }
        /* ... and that the generator mask about to be made is the agent's (so LocalUser removes it). */
        if ((!r->prev.image.recorded && masks) || gen_mask) {
                State s = r->prev;
                s.image = r->image;
                s.generator_masked = r->gen.ours || gen_mask;
                if (s.mode == MODE_INVALID)
                        s.mode = r->mode;
                e = state_save(r->node.root_fd, &s);
                if (e < 0)
                        log_warning_errno(e, "Cannot record the image's sshd setup before masking: %m");
        }
}

/* What sshd's configuration needs: EntraId's block at the top of sshd_config, else no block; never the old
 * drop-in. Also done in a fallback: the mode's sshd part is re-asserted like its unit part. */
static void prepare_sshd(Run *r) {
        int e = sshd_config_read(r->node.root_fd, &r->sshd);

        if (e < 0) {
                r->sshd_read_error = e;
                /* Outside EntraId, a missing file, a symlink or a non-regular file holds nothing of ours (we
                 * only ever write a regular file); anything else may hide a block we cannot remove. */
                if (r->mode != MODE_ENTRAID && e != -ENOENT && e != -ELOOP && e != -EBADFD) {
                        log_error_errno(e, "Cannot read %s%s to remove the EntraId block: %m", r->o->root ?: "", SSHD_CONFIG);
                        fail(r, exit_code_from_errno(e) == EX_SOFTWARE ? EX_IOERR : exit_code_from_errno(e), "sshd-config-unreadable");
                }
        } else {
                SshdBlockState st = sshd_block_state(r->sshd.text, r->sshd.len);
                if (r->mode == MODE_ENTRAID ? st != SSHD_BLOCK_OURS : st != SSHD_BLOCK_ABSENT) {
                        e = r->mode == MODE_ENTRAID ? sshd_block_insert(r->sshd.text, r->sshd.len, &r->sshd_new, &r->sshd_new_len)
                                                    : sshd_block_strip(r->sshd.text, r->sshd.len, &r->sshd_new, &r->sshd_new_len);
                        if (e < 0)
                                fail(r, EX_SOFTWARE, "out-of-memory");
                        else
                                r->sshd_change = true;
                }
        }
        e = sshd_legacy_dropin_state(r->node.root_fd);
        if (e < 0)
                log_warning_errno(e, "Cannot look for the old EntraId drop-in %s/%s: %m", SSHD_LEGACY_DROPIN_DIR, SSHD_LEGACY_DROPIN_NAME);
        r->legacy_dropin = e > 0;
}

/* Outside EntraId: the block goes (and the old drop-in); sshd's config is the image's again. */
static bool remove_sshd_block(Run *r) {
        bool changed = false;
        int e;

        if (r->sshd_change) {
                e = sshd_config_write(&r->sshd, r->sshd_new, r->sshd_new_len);
                if (e < 0) {
                        log_error_errno(e, "Cannot remove the EntraId block from %s%s: %m", r->o->root ?: "", SSHD_CONFIG);
                        fail(r, e == -EPERM || e == -EBUSY ? EX_CANTCREAT : exit_code_from_errno(e), "cannot-create");
                } else
                        changed = true;
        }
        if (r->legacy_dropin) {
                e = sshd_legacy_dropin_remove(r->node.root_fd);
                if (e < 0) {
                        log_error_errno(e, "Cannot remove the old EntraId drop-in %s/%s: %m", SSHD_LEGACY_DROPIN_DIR, SSHD_LEGACY_DROPIN_NAME);
                        fail(r, exit_code_from_errno(e) == EX_SOFTWARE ? EX_CANTCREAT : exit_code_from_errno(e), "cannot-create");
                } else
                        changed |= e > 0;
        }
        return changed;
}

static int entraid_failed(Run *r, const char *fmt, ...) _printf_(2, 3);
static int entraid_failed(Run *r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (!r->entraid_failed && vasprintf(&r->entraid_failed, fmt, ap) < 0)
                r->entraid_failed = NULL;
        va_end(ap);
        return -EBADMSG;
}

/* EntraId: the block at the top of sshd_config, then (live) sshd -T must agree before sshd may start. On
 * any failure the original sshd_config is put back and the caller fails the units closed. */
static bool write_sshd_block(Run *r) {
        const char *root = r->o->root ?: "";
        bool wrote = false;
        int e;

        if (r->sshd_read_error) {
                entraid_failed(r, "%s%s is %s", root, SSHD_CONFIG, sshd_read_error_string(r->sshd_read_error));
                return false;
        }
        if (r->sshd_change) {
                e = sshd_config_write(&r->sshd, r->sshd_new, r->sshd_new_len);
                if (e < 0) {
                        entraid_failed(r, "cannot write %s%s: %s", root, SSHD_CONFIG, strerror(-e));
                        return false;
                }
                wrote = true;
        }
        if (r->legacy_dropin) {
                e = sshd_legacy_dropin_remove(r->node.root_fd);
                if (e < 0) {
                        /* Harmless here (it says the same), but not in sync: report it. */
                        log_error_errno(e, "Cannot remove the old EntraId drop-in %s/%s: %m", SSHD_LEGACY_DROPIN_DIR, SSHD_LEGACY_DROPIN_NAME);
                        fail(r, EX_CANTCREAT, "cannot-create");
                }
        }
        if (!r->o->root) {
                _cleanup_free_ char *why = NULL;
                const char *user = r->have_policy ? r->policy.admin_user : r->prev.user ?: "nobody";

                e = sshd_check_entraid(user, &why);
                if (e < 0) {
                        entraid_failed(r, "%s", why ?: strerror(-e));
                        if (wrote) {
                                e = sshd_config_write(&r->sshd, r->sshd.text, r->sshd.len);
                                if (e < 0)
                                        log_error_errno(e, "Cannot put the original %s back: %m", SSHD_CONFIG);
                                else
                                        wrote = false;
                        }
                        return wrote;
                }
        }
        return wrote;
}

/* EntraId could not be made effective: the units get Disabled's treatment (stopped, masked). */
static void fail_closed(Run *r) {
        int e;

        log_event(LOG_ERR, MID_SSHD_CONFIG_BAD, NULL, "EntraId cannot be made effective: %s; sshd is left masked (fail closed).",
                  r->entraid_failed);
        fail(r, EX_CONFIG, "entraid-not-effective");
        unit_plan_done(&r->plan);
        e = unit_plan_build_gen(MODE_DISABLED, r->units.units, r->units.n, &r->image, &r->gen, &r->plan);
        if (e < 0) {
                fail(r, EX_SOFTWARE, "out-of-memory");
                return;
        }
        save_image_record_before_masking(r);
}

static void apply_mode(Run *r) {
        int e;

        e = node_query_units(&r->node, &r->units);
        if (e < 0) {
                log_error_errno(e, "Cannot read the state of the ssh units: %m");
                fail(r, EX_SOFTWARE, "unit-control-failed");
        }
        /* A broken unit does not stop the others: the plan still treats it (Disabled masks it), the exit
         * says it was found. */
        for (size_t i = 0; i < r->units.n; i++)
                if (r->units.errors[i]) {
                        char unit_field[300];
                        snprintf(unit_field, sizeof unit_field, "UNIT_NAME=%s", r->units.units[i].name);
                        const char *fields[] = { unit_field, NULL };
                        log_event(LOG_ERR, MID_UNIT_FAILED, fields, "Cannot read the state of %s: %s", r->units.units[i].name,
                                  r->units.errors[i]);
                        if (r->n_broken++ == 0) {
                                r->broken = r->units.units[i].name;
                                r->broken_error = r->units.errors[i];
                        }
                        fail(r, EX_SOFTWARE, "unit-broken");
                }
        take_image_record(r, e >= 0);
        r->gen.ours = r->prev.generator_masked;
        if (generator_query(r->node.root_fd, &r->gen) < 0)
                r->gen = (GeneratorInfo) { .ours = r->gen.ours };
        r->gen.ours = r->gen.ours && r->gen.masked; /* a mask someone removed is no longer ours */
        if (e >= 0) {
                e = unit_plan_build_gen(r->mode, r->units.units, r->units.n, &r->image, &r->gen, &r->plan);
                if (e < 0)
                        fail(r, EX_SOFTWARE, "out-of-memory");
        }
        prepare_sshd(r);

        if (r->o->dry_run) {
                /* An unusable sshd_config is known to fail EntraId closed already: show that plan. */
                if (r->mode == MODE_ENTRAID && r->sshd_read_error) {
                        unit_plan_done(&r->plan);
                        if (unit_plan_build_gen(MODE_DISABLED, r->units.units, r->units.n, &r->image, &r->gen, &r->plan) < 0)
                                fail(r, EX_SOFTWARE, "out-of-memory");
                }
                print_plan(r);
                return;
        }

        save_image_record_before_masking(r);

        bool changed = false;
        if (r->mode == MODE_DISABLED) {
                /* Close first: sshd stopped and masked before the keys go. */
                changed |= r->plan.n > 0;
                run_unit_plan(r);
                changed |= write_keys(r) > 0;
                changed |= remove_sshd_block(r);
        } else if (r->mode == MODE_ENTRAID) {
                /* Keys removed, then public-key authentication off, proven before sshd may start; when that
                 * cannot be had, sshd is masked as in Disabled. */
                changed |= write_keys(r) > 0;
                changed |= write_sshd_block(r);
                if (r->entraid_failed)
                        fail_closed(r);
                changed |= r->plan.n > 0;
                run_unit_plan(r);
        } else {
                /* Keys (and sshd config) before sshd is unmasked and started. */
                changed |= write_keys(r) > 0;
                changed |= remove_sshd_block(r);
                bool config_ok = true;
                _cleanup_free_ char *why = NULL;
                int c = !r->o->root && r->plan.n > 0 ? sshd_config_check(&why) : 0;
                if (c == -EBADMSG) {
                        log_event(LOG_ERR, MID_SSHD_CONFIG_BAD, NULL, "%s", why ?: "sshd configuration check failed");
                        fail(r, EX_CONFIG, "sshd-config-invalid");
                        config_ok = false;
                } else if (c < 0 && c != -ENOENT)
                        log_error_errno(c, "Cannot run %s -t: %m", SSHD_BINARY);
                if (!config_ok) {
                        /* Unmask and enable, but do not start an sshd whose configuration is broken. */
                        size_t k = 0;
                        for (size_t i = 0; i < r->plan.n; i++)
                                if (r->plan.actions[i].kind != UNIT_START)
                                        r->plan.actions[k++] = r->plan.actions[i];
                        r->plan.n = k;
                }
                changed |= r->plan.n > 0;
                run_unit_plan(r);
        }

        char mode_field[64], source_field[64];
        snprintf(mode_field, sizeof mode_field, "SSH_ACCESS_MODE=%s", mode_to_string(r->mode));
        snprintf(source_field, sizeof source_field, "SSH_ACCESS_SOURCE=%s", r->source);
        const char *fields[] = { mode_field, source_field, NULL };
        if (changed)
                log_event(LOG_NOTICE, r->fallback ? MID_FALLBACK_APPLIED : MID_MODE_APPLIED, fields, "SSH access mode %s applied%s (source %s)%s%s.",
                          mode_to_string(r->mode), r->fallback ? " as fallback" : "", r->source,
                          r->exit && r->result ? ", with problems: " : "", r->exit && r->result ? r->result : "");
        else
                log_event(LOG_INFO, MID_ALREADY_IN_SYNC, fields, "SSH access mode %s: node already in sync (source %s).", mode_to_string(r->mode), r->source);
}

int cmd_apply(const Options *o) {
        Run r = { .o = o, .home_fd = -1, .ssh_fd = -1, .mode = MODE_INVALID, .prev = { .mode = MODE_INVALID },
                  .policy = { .mode = MODE_INVALID }, .sshd = { .dir_fd = -1 } };
        _cleanup_close_ int lock_fd = -1;
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        const char *doc_error = NULL;
        int e, code;

        code = node_open(o, true, &r.node);
        if (code != 0) {
                fprintf(stderr, "aks-ssh-access: apply: cannot start (see above)\n");
                return code;
        }

        if (!o->dry_run) {
                e = lock_acquire(r.node.root_fd, &lock_fd);
                if (e == -EWOULDBLOCK) {
                        fprintf(stderr, "aks-ssh-access: another run holds %s%s\n", o->root ?: "", LOCK_PATH);
                        run_done(&r);
                        return EX_TEMPFAIL;
                }
                if (e < 0) {
                        fprintf(stderr, "aks-ssh-access: cannot take the lock %s%s: %s\n", o->root ?: "", LOCK_PATH, strerror(-e));
                        run_done(&r);
                        return exit_code_from_errno(e) == EX_CANTCREAT ? EX_CANTCREAT : EX_IOERR;
                }
        }

        e = state_load(r.node.root_fd, &r.prev);
        if (e < 0 && e != -ENOENT)
                log_warning_errno(e, "Ignoring unreadable state file %s/%s: %m", STATE_DIR, STATE_FILE);
        if (e < 0)
                r.prev = (State) { .mode = MODE_INVALID };

        if (o->from_state)
                code = policy_from_state(&r.prev, &r.policy, &r.source);
        else
                code = node_fetch(o, &r.node, &body, &len, &r.source, &r.fetch_detail);
        if (o->from_state && code != 0) {
                fprintf(stderr, "aks-ssh-access: cannot repair: %s\n", code == EX_SOFTWARE ? "out of memory"
                        : "the state file lacks what to re-assert (no mode, or keys recorded without their lines by an older version; run apply)");
                run_done(&r);
                return code;
        }
        if (code == EX_NOINPUT) {
                fprintf(stderr, "aks-ssh-access: %s\n", r.fetch_detail ?: "cannot read --imds-file");
                run_done(&r);
                return EX_NOINPUT;
        }
        if (o->from_state)
                r.have_policy = true;
        else if (code == 0) {
                e = policy_parse(body, len, r.node.config.mode_tag, &r.policy, &doc_error);
                if (e == -ENOMEM) {
                        run_done(&r);
                        return log_oom(), EX_SOFTWARE;
                }
                if (e < 0)
                        code = EX_DATAERR;
                else
                        r.have_policy = true;
        }

        if (code != 0) {
                /* No valid configuration: re-assert the last applied mode, else fail closed. */
                r.fallback = true;
                r.mode = r.prev.mode != MODE_INVALID ? r.prev.mode : r.node.config.fallback_mode;
                if (code == EX_UNAVAILABLE)
                        log_event(LOG_ERR, MID_IMDS_UNAVAILABLE, NULL, "IMDS unavailable: %s", r.fetch_detail ?: "?");
                else
                        log_event(LOG_ERR, MID_DOCUMENT_INVALID, NULL, "Invalid %s document: %s", r.source,
                                  doc_error ?: r.fetch_detail ?: "?");
                r.source = "fallback";
                r.exit = code;
                r.result = code == EX_UNAVAILABLE ? "imds-unavailable" : "invalid-document";
                log_event(LOG_WARNING, MID_FALLBACK_APPLIED, NULL, "Applying fallback mode %s (%s); keys untouched.",
                          mode_to_string(r.mode), r.prev.mode != MODE_INVALID ? "last applied" : "fallback_mode");
                apply_mode(&r);
        } else {
                r.mode = r.policy.mode;
                /* The state names a user whose file the agent managed (authorized_keys is recorded only when
                 * the key part was done): if the document names another admin now, that block goes. */
                r.admin_changed = r.policy.admin_user && r.prev.user && r.prev.authorized_keys &&
                                  !streq(r.prev.user, r.policy.admin_user);
                if (r.policy.admin_user) /* a repair of a state that never had a user: no key part */
                        prepare_keys(&r);
                /* Rejected entries are skipped and named (index and reason, never key material): the first
                 * few one by one, then a count (a document with a million bad entries must not flood the log). */
                for (size_t i = 0; i < r.policy.n_rejected && i < REJECTED_LOG_MAX; i++) {
                        char idx[48];
                        snprintf(idx, sizeof idx, "KEY_INDEX=%zu", r.policy.rejected[i].index);
                        const char *fields[] = { idx, NULL };
                        log_event(LOG_WARNING, MID_KEY_REJECTED, fields, "Rejected publicKeys[%zu]: %s.",
                                  r.policy.rejected[i].index, r.policy.rejected[i].reason);
                }
                if (r.policy.n_rejected > REJECTED_LOG_MAX)
                        log_event(LOG_WARNING, MID_KEY_REJECTED, NULL, "Rejected %zu more publicKeys entries (not logged one by one).",
                                  r.policy.n_rejected - REJECTED_LOG_MAX);
                if (r.policy.n_rejected > 0)
                        fail(&r, EX_DATAERR, "rejected-entries");
                apply_mode(&r);
        }

        if (!o->dry_run) {
                record(&r);
                node_write_metrics(&r.node, -1, false);
        }
        if (o->json)
                print_json(&r);

        code = r.exit;
        if (code != 0) {
                const char *what = r.result ?: "failed";
                if (r.entraid_failed && code == EX_CONFIG)
                        fprintf(stderr, "aks-ssh-access: EntraId%s cannot be made effective: %s; sshd left masked (fail closed)\n",
                                r.fallback ? " (fallback)" : "", r.entraid_failed);
                else if (r.fallback)
                        fprintf(stderr, "aks-ssh-access: %s (%s); applied fallback mode %s\n",
                                code == EX_UNAVAILABLE ? "IMDS unavailable" : "invalid document",
                                doc_error ?: r.fetch_detail ?: what, mode_to_string(r.mode));
                else if (code == EX_DATAERR && streq(what, "rejected-entries"))
                        fprintf(stderr, "aks-ssh-access: %zu publicKeys entr%s rejected; applied mode %s with the valid ones\n",
                                r.policy.n_rejected, r.policy.n_rejected == 1 ? "y" : "ies", mode_to_string(r.mode));
                else if (r.broken && code == EX_SOFTWARE && streq(what, "unit-broken"))
                        fprintf(stderr, "aks-ssh-access: apply: unit %s%s is broken (%s); mode %s applied to every other unit\n",
                                r.broken, r.n_broken > 1 ? " (and others)" : "", r.broken_error, mode_to_string(r.mode));
                else
                        fprintf(stderr, "aks-ssh-access: apply: %s (mode %s; see the log above)\n", what, mode_to_string(r.mode));
        }
        run_done(&r);
        return code;
}
