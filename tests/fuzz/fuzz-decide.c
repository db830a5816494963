/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the decision (decide, decide_feedback, decide_record) from a snapshot the input bytes
 * describe: the mode or a fallback, the previous state, the admin user and their authorized_keys, six unit
 * names with their states (as fuzz-plan), the generator, sshd_config, live or offline; then a result for each
 * step, fed back as the executor would. Every byte is taken modulo the size of its table.
 * Properties:
 *   1. Disabled (SPEC §4): every unit step comes before the first key step; no unmask, enable or start;
 *   2. LocalUser/EntraId: the keys and sshd's configuration (and the checks) come before any unmask, enable or
 *      start; a fallback has no key step;
 *   3. never both a service and a port-22 socket enabled or started by the steps;
 *   4. the exit code is the most severe (exit_code_worse) of the problems found, with the first such
 *      problem's result word, and feedback never makes it less severe;
 *   5. decide_record() gives a state that state_format()/state_parse() take back, with the decision's mode. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "apply/authorized-keys.h"
#include "decide/decide.h"
#include "fs-util.h"
#include "fuzz-util.h"

#define K1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINeLX1n1hHf7QKOddwSSs6QACLGJPHl1FxS7h2Rm1UcN alice@x"

static const char *const names[] = {
        "ssh.service", "sshd.service", "ssh.socket", "sshd.socket", "sshd-unix-local.socket", "sshd-vsock.socket",
};
static const char *const file_states[] = {
        "not-found", "enabled",   "disabled", "masked",          "masked-runtime", "static", "alias",
        "generated", "transient", "linked",   "enabled-runtime", "indirect",       "bad",
};
static const char *const active_states[] = { "active", "inactive", "activating", "failed", "unknown" };
static const char *const keys_texts[] = { NULL, "", "# mine\n", AK_BEGIN "\n" K1 "\n" AK_END "\n", AK_BEGIN "\n", AK_END "\n" };
static const char *const sshd_texts[] = { "Port 22\n", SSHD_BLOCK_TEXT "Port 22\n", "# BEGIN aks-ssh-access\nPort 22\n" };
/* Step results: success (0, 1, 2: some steps say what they did), home.h's outcomes, errnos. */
static const int errnos[] = { 0,
                              1,
                              2,
                              HOME_E_UNSAFE,
                              HOME_E_IMMUTABLE,
                              HOME_E_NOT_FOUND,
                              HOME_E_DAMAGED,
                              SSHD_E_REJECTED,
                              SSHD_E_NOT_EFFECTIVE,
                              SSHD_E_NO_SSHD,
                              -ENOENT,
                              -EPERM,
                              -EACCES,
                              -EROFS,
                              -EIO,
                              -ENOSPC,
                              -EBADMSG,
                              -ELOOP,
                              -EBUSY,
                              -EINVAL };
/* sshd_config_read's results */
static const int sshd_reads[] = { SSHD_E_NOT_FOUND, SSHD_E_SYMLINK, SSHD_E_NOT_REGULAR, SSHD_E_TOO_LARGE, -EACCES, -EIO };

static bool is_key_step(StepKind k) {
        return k == STEP_REMOVE_PREVIOUS_KEYS || k == STEP_MAKE_SSH_DIR || k == STEP_WRITE_KEYS;
}

static bool opens(const Step *s) {
        return s->kind == STEP_UNIT && (s->action == UNIT_UNMASK || s->action == UNIT_ENABLE || s->action == UNIT_START);
}

static void check_order(const Snapshot *s, const Decision *d) {
        ssize_t first_key = -1, last_unit = -1, first_open = -1, last_prep = -1;
        bool svc_on = false, sock_on = false;

        for (size_t i = 0; i < d->n_steps; i++) {
                const Step *st = &d->steps[i];
                if (is_key_step(st->kind) && first_key < 0)
                        first_key = (ssize_t) i;
                if (st->kind == STEP_UNIT)
                        last_unit = (ssize_t) i;
                if (opens(st) && first_open < 0)
                        first_open = (ssize_t) i;
                if (is_key_step(st->kind) || st->kind == STEP_WRITE_SSHD_CONFIG || st->kind == STEP_REMOVE_LEGACY_DROPIN ||
                    st->kind == STEP_CHECK_ENTRAID || st->kind == STEP_CHECK_SSHD)
                        last_prep = (ssize_t) i;
                if (d->fallback)
                        ASSERT(!is_key_step(st->kind) && st->kind != STEP_REMOVE_STALE_TEMPS);
                if (st->kind == STEP_UNIT && (st->action == UNIT_ENABLE || st->action == UNIT_START)) {
                        svc_on = svc_on || endswith(st->unit, ".service");
                        sock_on = sock_on || streq(st->unit, "ssh.socket") || streq(st->unit, "sshd.socket");
                }
                if (st->kind == STEP_UNIT && st->action != UNIT_RELOAD && st->action != UNIT_MASK_GENERATOR &&
                    st->action != UNIT_UNMASK_GENERATOR) {
                        bool known = false;
                        for (size_t j = 0; j < s->units.n; j++)
                                known = known || streq(st->unit, s->units.units[j].name) || streq(st->unit, s->units.units[j].canonical);
                        ASSERT(known);
                }
        }
        /* 1. */
        if (d->mode == MODE_DISABLED || d->entraid_failed) {
                ASSERT(first_open < 0);
                if (d->mode == MODE_DISABLED && first_key >= 0)
                        ASSERT(last_unit < first_key);
        } else if (first_open >= 0) /* 2. */
                ASSERT(last_prep < first_open);
        ASSERT(!(svc_on && sock_on)); /* 3. */
}

/* 4. against the problems found */
static void check_exit(const Decision *d) {
        int worst = 0;
        const char *result = NULL;

        for (size_t i = 0; i < d->n_problems; i++) {
                ErrorInfo e = error_lookup(d->problems[i].part, d->problems[i].code);
                if (!result || (e.exit != worst && exit_code_worse(worst, e.exit) == e.exit))
                        result = e.result;
                worst = exit_code_worse(worst, e.exit);
        }
        ASSERT(d->exit == worst);
        ASSERT(result ? d->result && streq(d->result, result) : !d->result);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Input in = { data, size };
        UnitInfo units[ELEMENTSOF(names)];
        char *errors[ELEMENTSOF(names)] = {};
        Snapshot s = { .root = "/r",
                       .prev.mode = MODE_INVALID,
                       .policy.mode = MODE_INVALID,
                       .home_fd = -1,
                       .ssh_fd = -1,
                       .sshd.dir_fd = -1,
                       .user_r = NOT_TRIED,
                       .home_r = NOT_TRIED,
                       .ssh_dir_r = NOT_TRIED,
                       .keys_r = NOT_TRIED };
        Decision d = {};
        State st = {};
        size_t n = 0;
        char doc[1024];
        const char *err = NULL;
        unsigned mode = take(&in, _MODE_MAX + 1);

        s.live = take(&in, 2);
        s.fallback_mode = (Mode) take(&in, _MODE_MAX);
        s.fetch_exit = take(&in, 2) ? EX_UNAVAILABLE : EX_DATAERR;
        if (mode < _MODE_MAX) {
                int len = snprintf(doc, sizeof doc,
                                   "{\"compute\":{\"osProfile\":{\"adminUsername\":\"azureuser\"},\"tagsList\":[{\"name\":"
                                   "\"aks-managed-ssh-access\",\"value\":\"%s\"}],\"publicKeys\":[%s]}}",
                                   mode_to_string((Mode) mode),
                                   take(&in, 2)           ? "{\"keyData\":\"" K1 "\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"}"
                                           : take(&in, 2) ? "{\"keyData\":\"ssh-ed25519 AAAA\",\"path\":\"x\"}"
                                                          : "");
                if (policy_parse(doc, (size_t) len, NULL, &s.policy, &err) < 0)
                        goto out;
                s.have_policy = true;
                s.user_r = take(&in, 4) == 0 ? HOME_E_NO_USER : 0;
                if (s.user_r == 0) {
                        s.user = (AdminUser) { .name = strdup("azureuser"),
                                               .uid = take(&in, 4) == 0 ? 0 : 1000,
                                               .gid = 1000,
                                               .home = strdup("/home/azureuser"),
                                               .real_home = strdup("/home/azureuser") };
                        s.home_r = take(&in, 4) == 0 ? HOME_E_UNSAFE : 0;
                        s.ssh_dir_r = take(&in, 2) ? 0 : TAKE(&in, errnos);
                        if (s.ssh_dir_r > 0 && s.ssh_dir_r < HOME_E_UNSAFE)
                                s.ssh_dir_r = HOME_E_NOT_FOUND;
                        const char *text = TAKE(&in, keys_texts);
                        s.keys_r = text ? 0 : take(&in, 2) ? HOME_E_NOT_FOUND : -EIO;
                        s.keys_text = text ? strdup(text) : NULL;
                        s.keys_len = text ? strlen(text) : 0;
                }
        }
        if (take(&in, 2)) {
                s.prev.mode = (Mode) take(&in, _MODE_MAX);
                s.prev.user = strdup(take(&in, 2) ? "azureuser" : "olduser");
                s.prev.authorized_keys = take(&in, 2) ? strdup("/home/olduser/.ssh/authorized_keys") : NULL;
                s.prev.image =
                        (ImageRecord) { take(&in, 2), strdup(TAKE(&in, names)), strdup(TAKE(&in, names)), take(&in, 2), take(&in, 2) };
                s.prev.generator_masked = take(&in, 2);
        }
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                if (!take(&in, 2))
                        continue;
                const char *fs = TAKE(&in, file_states);
                bool alias = streq(fs, "alias") && (streq(names[i], "sshd.service") || streq(names[i], "sshd.socket"));
                if (streq(fs, "alias") && !alias)
                        fs = "disabled";
                units[n] = (UnitInfo) { names[i], fs, TAKE(&in, active_states), alias ? names[i - 1] : names[i] };
                errors[n] = streq(fs, "bad") ? (char *) "broken" : NULL;
                n++;
        }
        s.units = (UnitInfoList) { units, errors, n };
        s.units_r = take(&in, 16) == 0 ? -ENOMEM : 0;
        s.gen = (GeneratorInfo) { take(&in, 2), take(&in, 2), false };
        s.gen.ours = s.gen.masked && s.prev.generator_masked;
        s.sshd_r = take(&in, 4) == 0 ? TAKE(&in, sshd_reads) : 0;
        if (s.sshd_r == 0) {
                s.sshd.text = strdup(TAKE(&in, sshd_texts));
                s.sshd.len = strlen(s.sshd.text);
        }
        s.legacy_dropin = (int) take(&in, 3) - 1;

        if (decide(&s, &d) < 0)
                goto out;
        check_order(&s, &d);
        check_exit(&d);
        d.source = "imds";
        for (size_t i = 0; i < d.n_steps; i++) {
                int before = d.exit, r = TAKE(&in, errnos);
                if (decide_feedback(&s, &d, i, r, "reason") < 0)
                        goto out;
                ASSERT(exit_code_worse(before, d.exit) == d.exit);
                check_order(&s, &d);
        }
        if (decide_record(&s, &d, "2026-01-01T00:00:00Z", &st) >= 0) {
                _cleanup_free_ char *text = state_format(&st);
                State back = {};
                if (text) {
                        ASSERT(state_parse(text, strlen(text), &back) == 0);
                        ASSERT(back.mode == d.mode);
                        state_done(&back);
                }
                state_done(&st);
        }
out:
        decision_done(&d);
        state_done(&s.prev);
        policy_done(&s.policy);
        admin_user_done(&s.user);
        free(s.keys_text);
        free(s.sshd.text);
        return 0;
}
