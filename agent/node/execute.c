/* SPDX-License-Identifier: MIT */
/* Running a decision's steps: the unit backend and the leaf modules do the work, each step's result goes
 * back to decide_feedback(). Each failure is logged here, once. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apply/authorized-keys.h"
#include "apply/generator.h"
#include "apply/sshd-config.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "node.h"
#include "text-util.h"

static void log_problem(const Snapshot *s, const Decision *d, const Problem *p) {
        const char *root = s->root ?: "", *mid = error_lookup(p->part, p->code).message_id;
        int e = p->code < 0 ? p->code : 0;

        switch (p->part) {
        case PART_REJECTED:
                /* Skipped and named (index and reason, never key material): the first few one by one, then a
                 * count (a document with a million bad entries must not flood the log). */
                for (size_t i = 0; i < s->policy.n_rejected && i < REJECTED_NAMED_MAX; i++) {
                        char idx[48];
                        snprintf(idx, sizeof idx, "KEY_INDEX=%zu", s->policy.rejected[i].index);
                        const char *fields[] = { idx, NULL };
                        log_event(LOG_WARNING, mid, fields, "Rejected publicKeys[%zu]: %s.", s->policy.rejected[i].index,
                                  s->policy.rejected[i].reason);
                }
                if (s->policy.n_rejected > REJECTED_NAMED_MAX)
                        log_event(LOG_WARNING, mid, NULL, "Rejected %zu more publicKeys entries (not logged one by one).",
                                  s->policy.n_rejected - REJECTED_NAMED_MAX);
                break;
        case PART_USER:
                if (p->code == HOME_E_ROOT)
                        log_event(LOG_ERR, mid, NULL, "Refusing admin user %s: it has uid 0 in the passwd database%s%s.",
                                  s->policy.admin_user, s->root ? " of " : "", root);
                else
                        log_event_errno(LOG_ERR, e, mid, NULL, "Admin user %s not found in the passwd database%s%s: %s",
                                        s->policy.admin_user, s->root ? " of " : "", root,
                                        *s->user.error                      ? s->user.error
                                                : p->code == HOME_E_NO_USER ? "no such user"
                                                                            : strerror(-e));
                break;
        case PART_HOME:
        case PART_SSH_DIR:
        case PART_KEYS_READ: log_event_errno(LOG_ERR, e, mid, NULL, "Not touching the keys of %s: %s.", s->user.name, s->user.error); break;
        case PART_KEYS_MERGE: {
                size_t line = 0;
                const char *what = NULL;
                (void) authorized_keys_check(s->keys_text, s->keys_len, &line, &what);
                log_event(
                        LOG_ERR, mid, NULL,
                        "Not touching the keys of %s: the managed block in %s/.ssh/authorized_keys is damaged (%s, line %zu); fix or remove the markers by hand.",
                        s->user.name, s->user.real_home, what ?: "?", line);
                break;
        }
        case PART_UNIT_QUERY: log_error_errno(e, "Cannot read the state of the ssh units: %m"); break;
        case PART_UNIT_BROKEN: {
                char unit_field[300];
                snprintf(unit_field, sizeof unit_field, "UNIT_NAME=%s", s->units.units[p->unit].name);
                const char *fields[] = { unit_field, NULL };
                log_event(LOG_ERR, mid, fields, "Cannot read the state of %s: %s", s->units.units[p->unit].name, s->units.errors[p->unit]);
                break;
        }
        case PART_SSHD_READ:
                log_error_errno(e, "Cannot read %s%s to remove the EntraId block: %s", root, SSHD_CONFIG,
                                sshd_read_error_to_string(p->code));
                break;
        case PART_ENTRAID:
                log_event(LOG_ERR, mid, NULL, "EntraId cannot be made effective: %s; sshd is left masked (fail closed).",
                          d->entraid_failed);
                break;
        default: break; /* the fallback's reason: logged by the caller, with the fetch's detail */
        }
}

void node_log_problems(const Snapshot *s, const Decision *d, size_t *logged) {
        for (; *logged < d->n_problems; (*logged)++)
                log_problem(s, d, &d->problems[*logged]);
}

/* Never service and socket both enabled for port 22 (SPEC §1): enabling one can enable the other too
 * (`Also=ssh.socket` in ssh.service's [Install]); when it came out enabled, disable it again. */
static int disable_the_other(UnitBackend *b, const UnitPlan *plan) {
        _cleanup_free_ char *state = NULL;
        int e;

        if (!plan->off_unit)
                return 0;
        e = b->vtable->get_file_state(b, plan->off_unit, &state);
        if (e < 0 || !is_enabled_state(state))
                return 0; /* unreadable: the query already reported it; not enabled: nothing to do */
        log_info("Enabling %s also enabled %s; disabling it (never both for port 22).", plan->ssh_unit, plan->off_unit);
        e = b->vtable->disable(b, plan->off_unit);
        return e < 0 ? e : 0;
}

static int run_unit_action(Node *n, const Decision *d, const Step *st) {
        UnitBackend *b = n->backend;
        int e = 0;

        b->error[0] = '\0';
        switch (st->action) {
        case UNIT_STOP: e = b->vtable->stop_no_block(b, st->unit); break;
        case UNIT_DISABLE: e = b->vtable->disable(b, st->unit); break;
        case UNIT_MASK: e = b->vtable->mask(b, st->unit); break;
        case UNIT_UNMASK: e = b->vtable->unmask(b, st->unit); break;
        case UNIT_ENABLE:
                e = b->vtable->enable(b, st->unit);
                if (e >= 0)
                        e = disable_the_other(b, &d->plan);
                break;
        case UNIT_RELOAD: e = b->vtable->reload(b); break;
        case UNIT_START:
                if (unit_is_generator_socket(st->unit)) {
                        /* only what the generator made after the daemon-reload */
                        _cleanup_free_ char *fs = NULL;
                        if (b->vtable->get_file_state(b, st->unit, &fs) < 0 || streq(fs, "not-found"))
                                break;
                }
                e = b->vtable->start_no_block(b, st->unit);
                break;
        case UNIT_MASK_GENERATOR: e = generator_mask(n->root_fd); break;
        case UNIT_UNMASK_GENERATOR: e = generator_unmask(n->root_fd); break;
        default: break;
        }
        if (e < 0) {
                char unit_field[300];
                snprintf(unit_field, sizeof unit_field, "UNIT_NAME=%s", st->unit ?: "");
                const char *fields[] = { unit_field, NULL };
                log_event_errno(LOG_ERR, e, error_lookup(PART_UNITS, e).message_id, fields, "Failed to %s %s: %s",
                                unit_action_to_string(st->action), st->unit ?: "systemd", b->error[0] ? b->error : strerror(-e));
        }
        return e;
}

/* Before the first mask: the image record (and that the generator mask about to be made is the agent's),
 * so that a crash right after cannot lose how the image had sshd. A shallow copy of the previous state. */
static int save_image_record(Node *n, const Snapshot *s, const Decision *d) {
        State st = s->prev;
        bool gen_mask = false;
        int e;

        for (size_t i = 0; i < d->plan.n; i++)
                gen_mask = gen_mask || d->plan.actions[i].kind == UNIT_MASK_GENERATOR;
        st.image = d->image;
        st.generator_masked = d->gen_ours || gen_mask;
        if (st.mode == MODE_INVALID)
                st.mode = d->mode;
        e = state_save(n->root_fd, &st);
        if (e < 0)
                log_warning_errno(e, "Cannot record the image's sshd setup before masking: %m");
        return 0;
}

/* The admin changed: the previous admin's managed block goes, every other byte of their file stays.
 * 0 (*ret_removed: a block went), else a HOME_E_* outcome or a negative errno. */
static int remove_previous_keys(Node *n, const Snapshot *s, bool *ret_removed) {
        _cleanup_(admin_user_done) AdminUser prev = {};
        _cleanup_free_ char *who = text_escape(s->prev.user); /* from state.json: printed escaped */
        int e = authorized_keys_remove_managed(n->root_fd, s->prev.user, &prev, ret_removed);

        if (e == HOME_E_NO_USER)
                log_warning("Previous admin user %s no longer exists; no managed keys of theirs to remove.", who ?: "?");
        else if (e == HOME_E_ROOT)
                log_warning("Previous admin user %s has uid 0; its authorized_keys is never touched.", who ?: "?");
        else if (e != 0)
                log_event_errno(LOG_ERR, e < 0 ? e : 0, error_lookup(PART_PREVIOUS_KEYS, e).message_id, NULL,
                                "Cannot remove the managed keys of the previous admin user %s: %s", who ?: "?",
                                e == HOME_E_DAMAGED   ? "the managed block is damaged"
                                        : *prev.error ? prev.error
                                                      : strerror(-e));
        else if (*ret_removed)
                log_event(LOG_INFO, MID_KEYS_WRITTEN, NULL, "Removed the managed keys of the previous admin user %s.", who ?: "?");
        return e == HOME_E_NO_USER || e == HOME_E_ROOT ? 0 : e;
}

static int write_keys(Snapshot *s, const Decision *d, int ssh_fd) {
        size_t n = d->mode == MODE_LOCALUSER ? s->policy.n_keys : 0;
        char count[32];
        int e;

        e = authorized_keys_write(ssh_fd, &s->user, d->keys_new, d->keys_new_len);
        if (e != 0)
                return e;
        snprintf(count, sizeof count, "KEY_COUNT=%zu", n);
        const char *fields[] = { count, NULL };
        log_event(LOG_INFO, MID_KEYS_WRITTEN, fields, "%s managed keys of %s: %zu key%s.", d->mode == MODE_LOCALUSER ? "Wrote" : "Removed",
                  s->user.name, n, n == 1 ? "" : "s");
        return 0;
}

int node_execute(Node *n, Snapshot *s, Decision *d, bool *ret_changed) {
        _cleanup_close_ int made_ssh_fd = -1;
        SshdConfigFile sshd = s->sshd; /* shallow: the snapshot's file, written through its directory fd */
        const char *root = s->root ?: "";
        int ssh_fd = s->ssh_fd, r;
        size_t logged = d->n_problems;
        bool changed = false;

        for (size_t i = 0; i < d->n_steps; i++) {
                const Step *st = &d->steps[i];
                _cleanup_free_ char *why = NULL;
                int e = 0;

                switch (st->kind) {
                case STEP_SAVE_IMAGE_RECORD: e = save_image_record(n, s, d); break;
                case STEP_UNIT:
                        e = run_unit_action(n, d, st);
                        changed = true;
                        break;
                case STEP_REMOVE_PREVIOUS_KEYS: {
                        bool removed = false;
                        e = remove_previous_keys(n, s, &removed);
                        changed |= removed;
                        break;
                }
                case STEP_REMOVE_STALE_TEMPS: (void) remove_stale_temp_files(ssh_fd, "authorized_keys"); break;
                case STEP_MAKE_SSH_DIR:
                        if (ssh_fd < 0) {
                                e = ssh_dir_open(s->home_fd, &s->user, true, &made_ssh_fd);
                                ssh_fd = made_ssh_fd;
                        } else
                                e = ssh_dir_tighten(ssh_fd, &s->user, true);
                        break;
                case STEP_WRITE_KEYS:
                        e = write_keys(s, d, ssh_fd);
                        changed |= e == 0;
                        break;
                case STEP_WRITE_SSHD_CONFIG:
                        e = sshd_config_write(&sshd, d->sshd_new, d->sshd_new_len);
                        if (e < 0 && d->mode != MODE_ENTRAID)
                                log_error_errno(e, "Cannot remove the EntraId block from %s%s: %m", root, SSHD_CONFIG);
                        break;
                case STEP_REMOVE_LEGACY_DROPIN:
                        e = sshd_legacy_dropin_remove(n->root_fd);
                        if (e < 0)
                                log_error_errno(e, "Cannot remove the old EntraId drop-in %s/%s: %m", SSHD_LEGACY_DROPIN_DIR,
                                                SSHD_LEGACY_DROPIN_NAME);
                        changed |= e > 0;
                        break;
                case STEP_CHECK_ENTRAID:
                        e = sshd_check_entraid(s->have_policy ? s->policy.admin_user : s->prev.user ?: "nobody", &why);
                        break;
                case STEP_RESTORE_SSHD_CONFIG:
                        e = sshd_config_write(&sshd, s->sshd.text, s->sshd.len);
                        if (e < 0)
                                log_error_errno(e, "Cannot put the original %s back: %m", SSHD_CONFIG);
                        break;
                case STEP_CHECK_SSHD:
                        e = sshd_config_check(&why);
                        if (e == SSHD_E_REJECTED)
                                log_event(LOG_ERR, MID_SSHD_CONFIG_BAD, NULL, "%s", why ?: "sshd configuration check failed");
                        else if (e < 0)
                                log_error_errno(e, "Cannot run %s -t: %m", SSHD_BINARY);
                        break;
                default: break;
                }
                if (e != 0 && (st->kind == STEP_MAKE_SSH_DIR || st->kind == STEP_WRITE_KEYS))
                        log_event_errno(LOG_ERR, e < 0 ? e : 0, error_lookup(PART_KEYS_WRITE, e).message_id, NULL,
                                        "Not writing the keys of %s: %s.", s->user.name, s->user.error);
                r = decide_feedback(s, d, i, e, why);
                if (r < 0)
                        return r;
                node_log_problems(s, d, &logged);
        }
        *ret_changed = changed || d->sshd_written;
        return 0;
}
