/* SPDX-License-Identifier: MIT */
/* What one apply does, per mode (SPEC §1, §3, §4): decide_disabled(), decide_localuser(), decide_entraid().
 * Pure: the snapshot in, the decision out. */

#include "decide.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "apply/authorized-keys.h"
#include "apply/sshd-config.h"
#include "macro.h"

static const char *const step_names[_STEP_MAX] = {
        [STEP_SAVE_IMAGE_RECORD] = "save-image-record",
        [STEP_UNIT] = "unit",
        [STEP_REMOVE_PREVIOUS_KEYS] = "remove-previous-keys",
        [STEP_REMOVE_STALE_TEMPS] = "remove-stale-temps",
        [STEP_MAKE_SSH_DIR] = "make-ssh-dir",
        [STEP_WRITE_KEYS] = "write-keys",
        [STEP_WRITE_SSHD_CONFIG] = "write-sshd-config",
        [STEP_REMOVE_LEGACY_DROPIN] = "remove-legacy-dropin",
        [STEP_CHECK_ENTRAID] = "check-entraid",
        [STEP_RESTORE_SSHD_CONFIG] = "restore-sshd-config",
        [STEP_CHECK_SSHD] = "check-sshd",
};

const char *step_kind_to_string(StepKind k) {
        return k >= 0 && k < _STEP_MAX ? step_names[k] : "?";
}

void decision_done(Decision *d) {
        free(d->problems);
        free(d->steps);
        unit_plan_done(&d->plan);
        image_record_done(&d->image);
        free(d->keys_new);
        free(d->sshd_new);
        free(d->entraid_failed);
        *d = (Decision) {};
}

void decision_fail(Decision *d, Part part, int code) {
        ErrorInfo e = error_lookup(part, code);

        if (!d->result || (e.exit != d->exit && exit_code_worse(d->exit, e.exit) == e.exit))
                d->result = e.result;
        d->exit = exit_code_worse(d->exit, e.exit);
}

/* A problem found: failed in the decision, kept for the caller to log. */
static int problem(Decision *d, Part part, int code, size_t unit) {
        if (!GREEDY_REALLOC(d->problems, d->n_problems + 1))
                return -ENOMEM;
        d->problems[d->n_problems++] = (Problem) { part, code, unit };
        decision_fail(d, part, code);
        return 0;
}

static int add_step(Decision *d, StepKind kind, UnitActionKind action, const char *unit) {
        if (!GREEDY_REALLOC(d->steps, d->n_steps + 1))
                return -ENOMEM;
        d->steps[d->n_steps++] = (Step) { kind, action, unit };
        return 0;
}
#define ADD(d, kind) add_step(d, kind, 0, NULL)

int decide_units(Mode mode, const Snapshot *s, const ImageRecord *image, UnitPlan *ret) {
        if (s->units_r < 0) {
                *ret = (UnitPlan) {};
                return 0; /* not readable: nothing to act on (reported as PART_UNIT_QUERY) */
        }
        return unit_plan_build_gen(mode, s->units.units, s->units.n, image, &s->gen, ret);
}

/* The unit plan as steps; the image record is saved first when a mask is about to be made and the state
 * has none yet, or the generator mask is about to be made (so that LocalUser knows it is the agent's). */
static int add_unit_steps(Decision *d, const Snapshot *s) {
        bool masks = false, gen_mask = false;
        int r;

        for (size_t i = 0; i < d->plan.n; i++) {
                masks = masks || d->plan.actions[i].kind == UNIT_MASK;
                gen_mask = gen_mask || d->plan.actions[i].kind == UNIT_MASK_GENERATOR;
        }
        if ((!s->prev.image.recorded && masks) || gen_mask) {
                r = ADD(d, STEP_SAVE_IMAGE_RECORD);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < d->plan.n; i++) {
                r = add_step(d, STEP_UNIT, d->plan.actions[i].kind, d->plan.actions[i].unit);
                if (r < 0)
                        return r;
        }
        return 0;
}

int snapshot_keys_result(const Snapshot *s, Part *ret_part) {
        if (s->user_r != 0) {
                *ret_part = PART_USER;
                return s->user_r;
        }
        if (s->home_r != 0) {
                *ret_part = PART_HOME;
                return s->home_r;
        }
        if (s->ssh_dir_r != 0 && s->ssh_dir_r != HOME_E_NOT_FOUND) {
                *ret_part = PART_SSH_DIR;
                return s->ssh_dir_r;
        }
        if (s->ssh_dir_r == 0 && s->keys_r != 0 && s->keys_r != HOME_E_NOT_FOUND) {
                *ret_part = PART_KEYS_READ;
                return s->keys_r;
        }
        return 0;
}

/* The key part: the user, the home, the merged file. A problem blocks only the key part (SPEC §4). */
static int decide_keys(const Snapshot *s, Decision *d) {
        const Policy *p = &s->policy;
        _cleanup_strv_free_ char **lines = NULL;
        size_t n = 0;
        Part part;
        int r;

        /* The state names a user whose file the agent managed (authorized_keys is recorded only when the key
         * part was done): if the document names another admin now, that block goes. */
        d->admin_changed = p->admin_user && s->prev.user && s->prev.authorized_keys && !streq(s->prev.user, p->admin_user);
        if (!p->admin_user) /* a repair of a state that never had a user: no key part */
                return 0;
        if (s->user_r == 0 && s->user.uid == 0) {
                /* Azure never provisions root as the admin: such a document is not trusted with root's keys. */
                d->refused_root = true;
                return problem(d, PART_USER, HOME_E_ROOT, 0);
        }
        r = snapshot_keys_result(s, &part);
        if (r != 0)
                return problem(d, part, r, 0);
        if (d->mode == MODE_LOCALUSER) {
                lines = calloc(p->n_keys + 1, sizeof *lines);
                if (!lines)
                        return -ENOMEM;
                for (; n < p->n_keys; n++)
                        if (!(lines[n] = sshkey_format(&p->keys[n].key)))
                                return -ENOMEM;
        }
        r = authorized_keys_merge(s->keys_text ?: "", s->keys_len, lines, n, &d->keys_new, &d->keys_new_len);
        if (r == AK_E_DAMAGED)
                return problem(d, PART_KEYS_MERGE, r, 0);
        if (r < 0)
                return r;
        /* Nothing to write when the bytes would not change, or when there is no file and nothing to add. */
        bool exists = s->ssh_dir_r == 0 && s->keys_r == 0;
        d->keys_change = exists ? d->keys_new_len != s->keys_len || memcmp(d->keys_new, s->keys_text, s->keys_len) != 0 : n > 0;
        d->key_part = true;
        return 0;
}

static int add_key_steps(const Snapshot *s, Decision *d) {
        int r = 0;

        if (d->admin_changed)
                r = ADD(d, STEP_REMOVE_PREVIOUS_KEYS);
        if (r < 0 || !d->key_part)
                return r;
        /* A killed run's temp files go even when the file itself is already right (SPEC §4). */
        if (s->ssh_dir_r == 0)
                r = ADD(d, STEP_REMOVE_STALE_TEMPS);
        if (r >= 0 && d->keys_change)
                r = ADD(d, STEP_MAKE_SSH_DIR) ?: ADD(d, STEP_WRITE_KEYS);
        return r;
}

/* What sshd_config is to hold: EntraId's block at the top, else no block. */
static int decide_sshd(const Snapshot *s, Decision *d) {
        bool entraid = d->mode == MODE_ENTRAID;
        int r;

        if (s->sshd_r != 0) {
                /* Outside EntraId, a missing file, a symlink or a non-regular file holds nothing of ours (we
                 * only ever write a regular file); anything else may hide a block we cannot remove. */
                if (!entraid && s->sshd_r != SSHD_E_NOT_FOUND && s->sshd_r != SSHD_E_SYMLINK && s->sshd_r != SSHD_E_NOT_REGULAR)
                        return problem(d, PART_SSHD_READ, s->sshd_r, 0);
                return 0;
        }
        SshdBlockState st = sshd_block_state(s->sshd.text, s->sshd.len);
        if (entraid ? st == SSHD_BLOCK_OURS : st == SSHD_BLOCK_ABSENT)
                return 0;
        r = entraid ? sshd_block_insert(s->sshd.text, s->sshd.len, &d->sshd_new, &d->sshd_new_len)
                    : sshd_block_strip(s->sshd.text, s->sshd.len, &d->sshd_new, &d->sshd_new_len);
        if (r < 0)
                return r;
        d->sshd_change = true;
        return 0;
}

/* Outside EntraId: the block goes (and the old drop-in); sshd's config is the image's again. */
static int add_sshd_steps(const Snapshot *s, Decision *d) {
        int r = 0;

        if (d->sshd_change)
                r = ADD(d, STEP_WRITE_SSHD_CONFIG);
        if (r >= 0 && s->legacy_dropin > 0)
                r = ADD(d, STEP_REMOVE_LEGACY_DROPIN);
        return r;
}

const char *sshd_read_error_to_string(int e) {
        switch (e) {
        case SSHD_E_NOT_FOUND: return "missing";
        case SSHD_E_SYMLINK: return "a symlink";
        case SSHD_E_NOT_REGULAR: return "not a regular file";
        case SSHD_E_TOO_LARGE: return "larger than 1 MiB";
        case SSHD_E_NO_SSHD: return "not checked: no " SSHD_BINARY;
        case SSHD_E_REJECTED: return "refused by sshd";
        case SSHD_E_NOT_EFFECTIVE: return "not effective";
        default: return strerror(-e);
        }
}

/* EntraId cannot be made effective: the steps from `from` on are replaced by Disabled's unit steps (stopped,
 * masked: fail closed). */
static int fail_closed(const Snapshot *s, Decision *d, size_t from, const char *why) {
        if (!d->entraid_failed && !(d->entraid_failed = strdup(why)))
                return -ENOMEM;
        d->n_steps = from;
        unit_plan_done(&d->plan);
        return problem(d, PART_ENTRAID, 0, 0) ?: decide_units(MODE_DISABLED, s, &d->image, &d->plan) ?: add_unit_steps(d, s);
}

/* Disabled: close first — sshd stopped and masked before the keys go (SPEC §4); then EntraId's block and
 * the old drop-in go. */
static int decide_disabled(const Snapshot *s, Decision *d) {
        return add_unit_steps(d, s) ?: add_key_steps(s, d) ?: add_sshd_steps(s, d);
}

/* LocalUser: keys (and sshd's config) before sshd is unmasked and started; `sshd -t` before a start. */
static int decide_localuser(const Snapshot *s, Decision *d) {
        int r = add_key_steps(s, d) ?: add_sshd_steps(s, d);

        if (r >= 0 && s->live && d->plan.n > 0)
                r = ADD(d, STEP_CHECK_SSHD);
        return r ?: add_unit_steps(d, s);
}

/* EntraId: keys removed, then public-key authentication off, proven (sshd -T) before sshd may start; when
 * that cannot be had, sshd is masked as in Disabled (SPEC §1). */
static int decide_entraid(const Snapshot *s, Decision *d) {
        int r = add_key_steps(s, d);

        if (r < 0)
                return r;
        if (s->sshd_r != 0) {
                _cleanup_free_ char *why = NULL;
                if (asprintf(&why, "%s%s is %s", s->root ?: "", SSHD_CONFIG, sshd_read_error_to_string(s->sshd_r)) < 0)
                        return -ENOMEM;
                return fail_closed(s, d, d->n_steps, why);
        }
        r = add_sshd_steps(s, d);
        if (r >= 0 && s->live)
                r = ADD(d, STEP_CHECK_ENTRAID);
        return r ?: add_unit_steps(d, s);
}

static int copy_image(const ImageRecord *from, ImageRecord *to) {
        *to = *from;
        to->service = from->service ? strdup(from->service) : NULL;
        to->socket = from->socket ? strdup(from->socket) : NULL;
        return (from->service && !to->service) || (from->socket && !to->socket) ? -ENOMEM : 0;
}

int decide(const Snapshot *s, Decision *ret) {
        Decision d = { .mode = s->have_policy                 ? s->policy.mode
                               : s->prev.mode != MODE_INVALID ? s->prev.mode
                                                              : s->fallback_mode,
                       .fallback = !s->have_policy };
        int r = 0;

        if (d.fallback) {
                /* No valid configuration: re-assert the last applied mode, else fail closed; keys untouched. */
                r = problem(&d, s->fetch_exit == EX_UNAVAILABLE ? PART_IMDS : PART_DOCUMENT, 0, 0);
        } else {
                r = decide_keys(s, &d);
                if (r >= 0 && s->policy.n_rejected > 0)
                        r = problem(&d, PART_REJECTED, 0, 0);
        }
        if (r >= 0 && s->units_r < 0)
                r = problem(&d, PART_UNIT_QUERY, s->units_r, 0);
        /* A broken unit does not stop the others: the plan still treats it (Disabled masks it), the exit says
         * it was found. */
        for (size_t i = 0; r >= 0 && s->units_r >= 0 && i < s->units.n; i++)
                if (s->units.errors[i]) {
                        d.n_broken++;
                        r = problem(&d, PART_UNIT_BROKEN, 0, i);
                }
        /* The image's record is kept once taken; it is taken before anything is first masked, from the units
         * that could be read (never from a failed query). */
        if (r >= 0 && s->prev.image.recorded)
                r = copy_image(&s->prev.image, &d.image);
        else if (r >= 0 && s->units_r >= 0)
                unit_plan_image_record(s->units.units, s->units.n, &d.image);
        d.gen_ours = s->gen.ours;
        if (r >= 0)
                r = decide_units(d.mode, s, &d.image, &d.plan) ?: decide_sshd(s, &d);
        if (r >= 0)
                r = d.mode == MODE_DISABLED      ? decide_disabled(s, &d)
                        : d.mode == MODE_ENTRAID ? decide_entraid(s, &d)
                                                 : decide_localuser(s, &d);
        if (r < 0) {
                decision_done(&d);
                return r;
        }
        *ret = d;
        return 0;
}

int decide_feedback(const Snapshot *s, Decision *d, size_t i, int r, const char *reason) {
        const Step *st = &d->steps[i];
        bool entraid = d->mode == MODE_ENTRAID;

        switch (st->kind) {
        case STEP_UNIT:
                if (st->action == UNIT_MASK_GENERATOR && r > 0)
                        d->gen_ours = true;
                if (st->action == UNIT_UNMASK_GENERATOR && r >= 0)
                        d->gen_ours = false;
                /* The first failed action says how: for Disabled every further step closes more; for the
                 * other modes a failed step leaves sshd off, which the exit code reports. */
                if (r < 0 && !d->units_failed) {
                        d->units_failed = true;
                        decision_fail(d, PART_UNITS, r);
                }
                return 0;
        /* The key part's steps: 0, else a HOME_E_* outcome or a negative errno. */
        case STEP_REMOVE_PREVIOUS_KEYS:
                d->prev_admin = r != 0 ? -1 : 1;
                if (r == 0)
                        return 0;
                decision_fail(d, PART_PREVIOUS_KEYS, r);
                /* The state keeps naming the previous admin, so the next run tries again; the new admin's
                 * keys wait for that. */
                d->key_part = false;
                break;
        case STEP_MAKE_SSH_DIR:
        case STEP_WRITE_KEYS:
                if (r == 0)
                        return 0;
                decision_fail(d, st->kind == STEP_MAKE_SSH_DIR ? PART_SSH_DIR_CREATE : PART_KEYS_WRITE, r);
                break;
        case STEP_WRITE_SSHD_CONFIG:
                if (r >= 0) {
                        d->sshd_written = true;
                        return 0;
                }
                if (entraid) {
                        _cleanup_free_ char *why = NULL;
                        if (asprintf(&why, "cannot write %s%s: %s", s->root ?: "", SSHD_CONFIG, strerror(-r)) < 0)
                                return -ENOMEM;
                        return fail_closed(s, d, i + 1, why);
                }
                decision_fail(d, PART_SSHD_WRITE, r);
                return 0;
        case STEP_REMOVE_LEGACY_DROPIN:
                if (r < 0)
                        decision_fail(d, entraid ? PART_LEGACY_DROPIN_ENTRAID : PART_LEGACY_DROPIN, r);
                return 0;
        case STEP_CHECK_ENTRAID:
                if (r == 0)
                        return 0;
                r = fail_closed(s, d, i + 1, reason ?: sshd_read_error_to_string(r));
                /* sshd's configuration as it was before this run. */
                if (r >= 0 && d->sshd_written) {
                        r = add_step(d, STEP_UNIT, 0, NULL); /* room for one more */
                        if (r >= 0) {
                                memmove(d->steps + i + 2, d->steps + i + 1, (d->n_steps - i - 2) * sizeof *d->steps);
                                d->steps[i + 1] = (Step) { .kind = STEP_RESTORE_SSHD_CONFIG };
                        }
                }
                return r;
        case STEP_RESTORE_SSHD_CONFIG:
                if (r >= 0)
                        d->sshd_written = false;
                return 0;
        case STEP_CHECK_SSHD:
                if (r != SSHD_E_REJECTED)
                        return 0;
                /* Unmask and enable, but do not start an sshd whose configuration is broken. */
                decision_fail(d, PART_SSHD_CHECK, r);
                size_t k = i + 1;
                for (size_t j = i + 1; j < d->n_steps; j++)
                        if (!(d->steps[j].kind == STEP_UNIT && d->steps[j].action == UNIT_START))
                                d->steps[k++] = d->steps[j];
                d->n_steps = k;
                return 0;
        default: return 0;
        }
        /* A failed key step: the rest of the key part is not done. */
        size_t k = i + 1;
        for (size_t j = i + 1; j < d->n_steps; j++)
                if (d->steps[j].kind != STEP_REMOVE_STALE_TEMPS && d->steps[j].kind != STEP_MAKE_SSH_DIR &&
                    d->steps[j].kind != STEP_WRITE_KEYS)
                        d->steps[k++] = d->steps[j];
        d->n_steps = k;
        return 0;
}

static int strdup_or_null(const char *s, char **ret) {
        *ret = s ? strdup(s) : NULL;
        return s && !*ret ? -ENOMEM : 0;
}

/* A state file key from a written key (its line formatted) or from the previous state's. */
static int key_dup(const SshKey *k, const StateKey *sk, StateKey *ret) {
        *ret = (StateKey) { .type = strdup(k ? k->type : sk->type), .fingerprint = strdup(k ? k->fingerprint : sk->fingerprint) };
        if ((k ? k->comment : sk->comment) && !(ret->comment = strdup(k ? k->comment : sk->comment)))
                return -ENOMEM;
        ret->line = k ? sshkey_format(k) : sk->line ? strdup(sk->line) : NULL;
        return !ret->type || !ret->fingerprint || ((k || sk->line) && !ret->line) ? -ENOMEM : 0;
}

int decide_record(const Snapshot *s, const Decision *d, const char *now, State *ret) {
        State st = { .mode = d->mode, .generator_masked = d->gen_ours, .last_exit = d->exit };
        const Policy *p = &s->policy;
        int r = 0;

        /* Keys and user: what this run made them, or (fallback, blocked key part) what they were. */
        if (d->key_part) {
                size_t n = d->mode == MODE_LOCALUSER ? p->n_keys : 0;
                r = strdup_or_null(s->user.name, &st.user);
                if (r >= 0 && asprintf(&st.authorized_keys, "%s/.ssh/authorized_keys", s->user.real_home) < 0)
                        r = -ENOMEM;
                st.keys = calloc(n ?: 1, sizeof *st.keys);
                for (size_t i = 0; st.keys && i < n; i++)
                        r = key_dup(&p->keys[i].key, NULL, &st.keys[st.n_keys++]) ?: r;
        } else if (d->prev_admin >= 0 && (d->prev_admin > 0 || d->refused_root)) {
                /* The previous admin's keys are gone (or there was none); the new admin's could not be written.
                 * A uid-0 admin is not recorded: verify and status must not go looking in root's home. */
                r = strdup_or_null(d->refused_root ? NULL : p->admin_user, &st.user);
                st.keys = calloc(1, sizeof *st.keys);
        } else {
                r = strdup_or_null(s->prev.user ?: (s->have_policy ? p->admin_user : NULL), &st.user)
                        ?: strdup_or_null(s->prev.authorized_keys, &st.authorized_keys);
                st.keys = calloc(s->prev.n_keys ?: 1, sizeof *st.keys);
                for (size_t i = 0; st.keys && i < s->prev.n_keys; i++)
                        r = key_dup(NULL, &s->prev.keys[i], &st.keys[st.n_keys++]) ?: r;
        }
        st.units = calloc(s->units.n + 1, sizeof *st.units);
        for (size_t i = 0, k = 0; st.units && i < s->units.n; i++)
                if (!streq(s->units.units[i].file_state, "not-found"))
                        st.units[k++] = strdup(s->units.units[i].name);
        if (r >= 0)
                r = copy_image(&d->image, &st.image) ?:
                    strdup_or_null(s->have_policy && p->vm_id ? p->vm_id : s->prev.vm_id, &st.vm_id) ?:
                    strdup_or_null(now, &st.last_time) ?: strdup_or_null(d->source, &st.last_source) ?:
                    strdup_or_null(d->result ?: "ok", &st.last_result) ?:
                    strdup_or_null((d->fallback || s->from_state) && s->prev.mode_applied_time ? s->prev.mode_applied_time : now,
                                   &st.mode_applied_time);
        if (r < 0 || !st.keys || !st.units) {
                state_done(&st);
                return -ENOMEM;
        }
        *ret = st;
        return 0;
}

/* --- verify: the decision for the recorded state changes nothing on the node --- */

static const char *expected_word(UnitActionKind k) {
        switch (k) {
        case UNIT_STOP: return "stopped";
        case UNIT_DISABLE: return "disabled";
        case UNIT_MASK:
        case UNIT_MASK_GENERATOR: return "masked";
        case UNIT_UNMASK:
        case UNIT_UNMASK_GENERATOR: return "unmasked";
        case UNIT_ENABLE: return "enabled";
        case UNIT_START: return "running";
        default: return "reloaded";
        }
}

/* The unit step that names the drift best: a unit file state first (masked, enabled...), else a job. */
static const Step *first_unit_step(const Decision *d) {
        for (int jobs = 0; jobs < 2; jobs++)
                for (size_t i = 0; i < d->n_steps; i++) {
                        const Step *st = &d->steps[i];
                        if (st->kind == STEP_UNIT && st->action != UNIT_RELOAD &&
                            (jobs || (st->action != UNIT_STOP && st->action != UNIT_START)))
                                return st;
                }
        return NULL;
}

static bool has_step(const Decision *d, StepKind kind) {
        for (size_t i = 0; i < d->n_steps; i++)
                if (d->steps[i].kind == kind)
                        return true;
        return false;
}

const Problem *decision_find_problem(const Decision *d, Part part) {
        for (size_t i = 0; i < d->n_problems; i++)
                if (d->problems[i].part == part)
                        return &d->problems[i];
        return NULL;
}

_printf_(3, 4) static int verdict(char **ret_what, int code, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(ret_what, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *ret_what = NULL;
                return -ENOMEM;
        }
        return code;
}

int decide_verify(const Snapshot *s, char **ret_what) {
        _cleanup_(decision_done) Decision d = {};
        const char *mode = mode_to_string(s->prev.mode), *user = s->prev.user ?: "?";
        const Problem *p = NULL;
        const Step *u;
        int r;

        r = decide(s, &d);
        if (r < 0)
                return r;
        /* The order: units, sshd's configuration, keys; the first difference found is the line. */
        if (s->units_r < 0)
                return verdict(ret_what, 2, "unknown: cannot read unit states: %s", strerror(-s->units_r));
        /* EntraId cannot be had (sshd_config unusable; verify runs no sshd -T): the decision fails closed. */
        if (decision_find_problem(&d, PART_ENTRAID)) {
                bool known = s->sshd_r == SSHD_E_NOT_FOUND || s->sshd_r == SSHD_E_SYMLINK || s->sshd_r == SSHD_E_NOT_REGULAR;
                return known ? verdict(ret_what, 1, "drift: sshd_config is %s for mode %s", sshd_read_error_to_string(s->sshd_r), mode)
                             : verdict(ret_what, 2, "unknown: sshd_config cannot be read for mode %s", mode);
        }
        u = first_unit_step(&d);
        if (u) {
                const char *state = u->action == UNIT_MASK_GENERATOR ? "not masked" : u->action == UNIT_UNMASK_GENERATOR ? "masked" : "?";
                const UnitInfo *x = NULL;
                /* The unit of that name, else the one it is an alias of (not an alias's own "alias" state). */
                for (size_t j = 0; j < s->units.n && !(x && streq(x->name, u->unit)); j++)
                        if (streq(s->units.units[j].name, u->unit) || (!x && streq(s->units.units[j].canonical, u->unit)))
                                x = &s->units.units[j];
                if (x)
                        state = u->action == UNIT_STOP ? x->active_state : x->file_state;
                return verdict(ret_what, 1, "drift: %s is %s, expected %s for mode %s", u->unit, state, expected_word(u->action), mode);
        }
        if (s->legacy_dropin < 0)
                return verdict(ret_what, 2, "unknown: sshd_config.d cannot be read for mode %s", mode);
        if (has_step(&d, STEP_REMOVE_LEGACY_DROPIN))
                return verdict(ret_what, 1, "drift: the old EntraId drop-in is present for mode %s", mode);
        if (decision_find_problem(&d, PART_SSHD_READ))
                return verdict(ret_what, 2, "unknown: sshd_config cannot be read for mode %s", mode);
        if (has_step(&d, STEP_WRITE_SSHD_CONFIG))
                return verdict(ret_what, 1, "drift: %s for mode %s",
                               d.mode != MODE_ENTRAID ? "sshd_config still has the EntraId block"
                                       : sshd_block_state(s->sshd.text, s->sshd.len) == SSHD_BLOCK_ABSENT
                                       ? "sshd_config has no EntraId block"
                                       : "the EntraId block in sshd_config is changed",
                               mode);
        /* The key part: the user, the home, .ssh, the file (only the first problem is decided). */
        for (Part part = PART_USER; part <= PART_KEYS_READ && !p; part++)
                p = decision_find_problem(&d, part);
        if (p)
                return p->code == HOME_E_UNSAFE ? verdict(ret_what, 1, "drift: managed keys of %s are behind an unsafe path", user)
                                                : verdict(ret_what, 2, "unknown: managed keys of %s cannot be read", user);
        if (decision_find_problem(&d, PART_KEYS_MERGE)) {
                size_t line = 0;
                const char *what = "?";
                (void) authorized_keys_check(s->keys_text, s->keys_len, &line, &what);
                return verdict(ret_what, 1, "drift: managed block of %s damaged (%s, line %zu)", user, what, line);
        }
        if (has_step(&d, STEP_WRITE_KEYS) || has_step(&d, STEP_REMOVE_PREVIOUS_KEYS))
                return verdict(ret_what, 1, "drift: managed keys of %s differ from the last apply", user);
        return verdict(ret_what, 0, "in sync: %s, %zu managed key%s, applied %s from %s", mode, s->prev.n_keys,
                       s->prev.n_keys == 1 ? "" : "s", s->prev.last_time ?: "?", s->prev.last_source ?: "?");
}
