/* SPDX-License-Identifier: MIT */
/* The decision (SPEC §1, §3, §4): for each mode × node state × previous state, the exact ordered steps, the
 * exit code and result word; the feedback of failed steps; the state record; the error table. */

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "apply/authorized-keys.h"
#include "decide/decide.h"
#include "fixtures.h"
#include "node/node.h"
#include "log.h"
#include "macro.h"
#include "unit.h"

#define K1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINeLX1n1hHf7QKOddwSSs6QACLGJPHl1FxS7h2Rm1UcN alice@x"
#define K2 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdcYBdjt7YR2PzfpseuO8d/XpsDmMUVdky3dPHYvmJu bob@x"
#define AK "/home/azureuser/.ssh/authorized_keys"
#define BLOCK_K1 AK_BEGIN "\n" K1 "\n" AK_END "\n"

static const UnitInfo debian_broken_socket[] = {
        { "ssh.service", "enabled", "active", "ssh.service" },
        { "ssh.socket", "bad", "unknown", "ssh.socket" },
};
static char *no_errors[8];
static char *socket_broken[] = { NULL, (char *) "dangling link" };

#define UNITS(u)                                           \
        (UnitInfoList) {                                   \
                (UnitInfo *) (u), no_errors, ELEMENTSOF(u) \
        }

/* A node: azureuser (uid 1000) with a home and no .ssh; sshd_config without a block; no previous state. The
 * document: mode (NULL: none could be had, fetch_exit 69) and keys (NULL-terminated). */
static void node(Snapshot *s, const char *mode, const char *const *keys, UnitInfoList units) {
        char doc[8192];
        size_t len = 0;
        const char *err = NULL;

        *s = (Snapshot) { .root = "/r",
                          .fallback_mode = MODE_DISABLED,
                          .prev.mode = MODE_INVALID,
                          .policy.mode = MODE_INVALID,
                          .fetch_exit = EX_UNAVAILABLE,
                          .user_r = NOT_TRIED,
                          .home_r = NOT_TRIED,
                          .ssh_dir_r = NOT_TRIED,
                          .keys_r = NOT_TRIED,
                          .home_fd = -1,
                          .ssh_fd = -1,
                          .units = units,
                          .sshd = { .dir_fd = -1, .text = strdup("Port 22\n"), .len = 8 } };
        if (!mode)
                return;
        len += (size_t) snprintf(doc + len, sizeof doc - len,
                                 "{\"compute\":{\"osProfile\":{\"adminUsername\":\"azureuser\"},\"vmId\":\"vm-1\","
                                 "\"tagsList\":[{\"name\":\"aks-managed-ssh-access\",\"value\":\"%s\"}],\"publicKeys\":[",
                                 mode);
        for (size_t i = 0; keys && keys[i]; i++)
                len += (size_t) snprintf(doc + len, sizeof doc - len, "%s{\"keyData\":\"%s\",\"path\":\"" AK "\"}", i ? "," : "", keys[i]);
        len += (size_t) snprintf(doc + len, sizeof doc - len, "]}}");
        if (policy_parse(doc, len, NULL, &s->policy, &err) < 0)
                abort();
        s->have_policy = true;
        s->user = (AdminUser) { .name = strdup("azureuser"),
                                .uid = 1000,
                                .gid = 1000,
                                .home = strdup("/home/azureuser"),
                                .real_home = strdup("/home/azureuser") };
        s->user_r = s->home_r = 0;
        s->ssh_dir_r = HOME_E_NOT_FOUND;
}

/* .ssh exists; text NULL: no authorized_keys in it. */
static void with_keys_file(Snapshot *s, const char *text) {
        s->ssh_dir_r = 0;
        s->keys_r = text ? 0 : HOME_E_NOT_FOUND;
        s->keys_text = text ? strdup(text) : NULL;
        s->keys_len = text ? strlen(text) : 0;
}

static void with_prev(Snapshot *s, Mode mode, const char *user, bool service_enabled, bool socket_enabled) {
        s->prev = (State) { .mode = mode,
                            .user = user ? strdup(user) : NULL,
                            .authorized_keys = user ? strdup("/home/x/.ssh/authorized_keys") : NULL,
                            .image = { true, strdup("ssh.service"), strdup("ssh.socket"), service_enabled, socket_enabled },
                            .mode_applied_time = strdup("2026-01-01T00:00:00Z"),
                            .last_source = strdup("imds") };
}

static void snap_free(Snapshot *s) {
        state_done(&s->prev);
        policy_done(&s->policy);
        admin_user_done(&s->user);
        free(s->keys_text);
        free(s->sshd.text);
}

/* "save-image-record; stop ssh.service; ...; daemon-reload; write-keys" */
static char *render(const Decision *d) {
        size_t cap = 64 + d->n_steps * 64, len = 0;
        char *t = malloc(cap);

        if (!t)
                abort();
        t[0] = '\0';
        for (size_t i = 0; i < d->n_steps; i++) {
                const Step *st = &d->steps[i];
                if (st->kind == STEP_UNIT)
                        len += (size_t) snprintf(t + len, cap - len, "%s%s%s%s", i ? "; " : "", unit_action_to_string(st->action),
                                                 st->unit ? " " : "", st->unit ?: "");
                else
                        len += (size_t) snprintf(t + len, cap - len, "%s%s", i ? "; " : "", step_kind_to_string(st->kind));
        }
        return t;
}

static void check_steps(const Decision *d, const char *want, int want_exit, const char *want_result, const char *why) {
        _cleanup_free_ char *got = render(d);

        CHECK_STREQ(got, want, why);
        CHECK_INTEQ(d->exit, want_exit, why);
        CHECK_STREQ(d->result ?: "ok", want_result, why);
}

/* Decides and checks; the decision is left in *d for further checks (decision_done by the caller). */
static void check_decide(const Snapshot *s, Decision *d, const char *want, int want_exit, const char *want_result, const char *why) {
        CHECK_INTEQ(decide(s, d), 0, why);
        check_steps(d, want, want_exit, want_result, why);
}

static size_t find_step(const Decision *d, StepKind kind) {
        for (size_t i = 0; i < d->n_steps; i++)
                if (d->steps[i].kind == kind)
                        return i;
        abort();
}

#define DISABLED_UNITS                                                                                  \
        "stop ssh.service; stop sshd.service; stop ssh.socket; disable ssh.service; mask ssh.service; " \
        "mask sshd.service; mask ssh.socket; daemon-reload"
#define OPEN_UNITS "unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.service; daemon-reload; start ssh.service"

static void test_disabled(void) {
        Snapshot s;
        Decision d = {};

        node(&s, "Disabled", NULL, UNITS(debian));
        with_keys_file(&s, "# mine\n" BLOCK_K1);
        check_decide(&s, &d, "save-image-record; " DISABLED_UNITS "; remove-stale-temps; make-ssh-dir; write-keys", 0, "ok",
                     "Disabled from Debian: image record saved, units closed, then the keys go");
        CHECK_STREQ(d.keys_new, "# mine\n", "the block goes, every other byte stays");
        CHECK(d.image.recorded && d.image.service_enabled && !d.image.socket_enabled, "the image record is taken from the units");
        decision_done(&d);
        snap_free(&s);

        node(&s, "Disabled", NULL, UNITS(debian_masked));
        with_prev(&s, MODE_DISABLED, "azureuser", true, false);
        check_decide(&s, &d, "", 0, "ok", "Disabled, already masked, no .ssh: nothing to do (most boots)");
        CHECK(d.image.service_enabled && streq(d.image.service, "ssh.service"), "the previous record is kept");
        decision_done(&d);
        with_keys_file(&s, "# mine\n");
        check_decide(&s, &d, "remove-stale-temps", 0, "ok", "Disabled in sync with a .ssh: only a killed run's temp files go");
        decision_done(&d);
        free(s.sshd.text);
        s.sshd.text = strdup(SSHD_BLOCK_TEXT "Port 22\n");
        s.sshd.len = strlen(s.sshd.text);
        s.legacy_dropin = 1;
        check_decide(&s, &d, "remove-stale-temps; write-sshd-config; remove-legacy-dropin", 0, "ok",
                     "Disabled: EntraId's block and the old drop-in go");
        CHECK_STREQ(d.sshd_new, "Port 22\n", "the image's sshd_config byte for byte");
        decision_done(&d);
        snap_free(&s);
}

static void test_localuser(void) {
        static const char *const keys[] = { K1, K2, NULL };
        Snapshot s;
        Decision d = {};

        node(&s, "LocalUser", keys, UNITS(debian_masked));
        with_prev(&s, MODE_DISABLED, "azureuser", true, false);
        check_decide(&s, &d, "make-ssh-dir; write-keys; " OPEN_UNITS, 0, "ok", "LocalUser from Disabled: keys before any unmask");
        CHECK_STREQ(d.keys_new, AK_BEGIN "\n" K1 "\n" K2 "\n" AK_END "\n", "the block holds exactly the document's keys");
        decision_done(&d);

        s.live = true;
        check_decide(&s, &d, "make-ssh-dir; write-keys; check-sshd; " OPEN_UNITS, 0, "ok", "live: sshd -t before the units");
        /* sshd -t fails: unmask and enable, but no start */
        CHECK_INTEQ(decide_feedback(&s, &d, find_step(&d, STEP_CHECK_SSHD), SSHD_E_REJECTED, NULL), 0, "feedback");
        check_steps(&d,
                    "make-ssh-dir; write-keys; check-sshd; unmask ssh.service; unmask sshd.service; unmask ssh.socket; "
                    "enable ssh.service; daemon-reload",
                    EX_CONFIG, "sshd-config-invalid", "a failed sshd -t drops the start");
        decision_done(&d);
        check_decide(&s, &d, "make-ssh-dir; write-keys; check-sshd; " OPEN_UNITS, 0, "ok", "again");
        CHECK_INTEQ(decide_feedback(&s, &d, find_step(&d, STEP_CHECK_SSHD), SSHD_E_NO_SSHD, NULL), 0, "feedback");
        CHECK_INTEQ(d.exit, 0, "no sshd binary to check with: not a failure");
        decision_done(&d);
        s.live = false;

        /* the image had socket activation: the socket again, never both */
        state_done(&s.prev);
        with_prev(&s, MODE_DISABLED, "azureuser", false, true);
        check_decide(&s, &d,
                     "make-ssh-dir; write-keys; unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.socket; "
                     "daemon-reload; start ssh.socket",
                     0, "ok", "LocalUser restores socket activation");
        decision_done(&d);

        /* in sync */
        state_done(&s.prev);
        with_prev(&s, MODE_LOCALUSER, "azureuser", true, false);
        with_keys_file(&s, AK_BEGIN "\n" K1 "\n" K2 "\n" AK_END "\n");
        s.units = UNITS(debian);
        check_decide(&s, &d, "remove-stale-temps", 0, "ok", "LocalUser in sync: nothing is written");
        CHECK(!d.keys_change, "keys unchanged");
        decision_done(&d);
        snap_free(&s);

        /* a rejected entry: the valid ones are applied, exit 65 */
        static const char *const some_bad[] = { K1, "ssh-ed25519 AAAA", NULL };
        node(&s, "LocalUser", some_bad, UNITS(debian));
        check_decide(&s, &d, "make-ssh-dir; write-keys", EX_DATAERR, "rejected-entries", "rejected entries: 65, the rest applied");
        decision_done(&d);
        snap_free(&s);
}

static void test_fallback(void) {
        Snapshot s;
        Decision d = {};
        State st;

        node(&s, NULL, NULL, UNITS(debian));
        check_decide(&s, &d, "save-image-record; " DISABLED_UNITS, EX_UNAVAILABLE, "imds-unavailable",
                     "no document, no state: fallback_mode (Disabled), keys untouched");
        CHECK(d.fallback && !d.key_part && d.mode == MODE_DISABLED, "a fallback");
        decision_done(&d);

        with_prev(&s, MODE_LOCALUSER, "azureuser", true, false);
        s.fetch_exit = EX_DATAERR;
        s.units = UNITS(debian_masked);
        check_decide(&s, &d, OPEN_UNITS, EX_DATAERR, "invalid-document", "invalid document: the last applied mode again");
        d.source = "fallback";
        CHECK_INTEQ(decide_record(&s, &d, "2026-02-02T00:00:00Z", &st), 0, "record");
        CHECK_STREQ(st.user, "azureuser", "a fallback keeps the user");
        CHECK_STREQ(st.mode_applied_time, "2026-01-01T00:00:00Z", "... and when the mode was applied from a document");
        CHECK_STREQ(st.last_source, "fallback", "source");
        CHECK_STREQ(st.last_result, "invalid-document", "result");
        CHECK_INTEQ(st.last_exit, EX_DATAERR, "exit");
        state_done(&st);
        decision_done(&d);
        snap_free(&s);
}

static void test_user_problems(void) {
        static const char *const keys[] = { K1, NULL };
        Snapshot s;
        Decision d = {};
        State st;

        node(&s, "Disabled", keys, UNITS(debian));
        s.user_r = HOME_E_NO_USER;
        check_decide(&s, &d, "save-image-record; " DISABLED_UNITS, EX_NOUSER, "admin-user-missing",
                     "user missing: only the key part is blocked, Disabled still masks");
        CHECK(d.n_problems == 1 && d.problems[0].part == PART_USER, "one problem, to log");
        decision_done(&d);

        s.user_r = 0;
        s.user.uid = 0;
        s.units = UNITS(debian_masked);
        check_decide(&s, &d, "", EX_NOUSER, "admin-user-root", "uid 0: refused like a missing user");
        CHECK_INTEQ(decide_record(&s, &d, "t", &st), 0, "record");
        CHECK(st.user == NULL, "a uid-0 admin is never recorded");
        state_done(&st);
        decision_done(&d);

        s.user.uid = 1000;
        s.home_r = HOME_E_UNSAFE;
        check_decide(&s, &d, "", EX_NOPERM, "unsafe-path", "an unsafe home: 77");
        decision_done(&d);
        s.home_r = HOME_E_NOT_FOUND;
        check_decide(&s, &d, "", EX_NOUSER, "home-missing", "no home: 67");
        decision_done(&d);
        s.home_r = 0;
        with_keys_file(&s, AK_BEGIN "\n" K2 "\n");
        check_decide(&s, &d, "", EX_DATAERR, "authorized-keys-damaged", "a damaged block is not touched: 65");
        decision_done(&d);
        free(s.keys_text);
        s.keys_text = NULL;
        s.keys_r = -EIO;
        check_decide(&s, &d, "", EX_IOERR, "io-error", "authorized_keys unreadable: 74");
        decision_done(&d);
        snap_free(&s);
}

static void test_admin_changed(void) {
        static const char *const keys[] = { K1, NULL };
        Snapshot s;
        Decision d = {};
        State st;

        node(&s, "LocalUser", keys, UNITS(debian));
        with_prev(&s, MODE_LOCALUSER, "olduser", true, false);
        check_decide(&s, &d, "remove-previous-keys; make-ssh-dir; write-keys", 0, "ok", "another admin: their block goes first");
        CHECK_INTEQ(decide_feedback(&s, &d, 0, 0, NULL), 0, "feedback");
        CHECK_INTEQ(decide_record(&s, &d, "t", &st), 0, "record");
        CHECK_STREQ(st.user, "azureuser", "the new admin is recorded");
        CHECK(st.n_keys == 1 && st.keys[0].line && streq(st.keys[0].line, K1), "with the line written");
        state_done(&st);
        decision_done(&d);

        check_decide(&s, &d, "remove-previous-keys; make-ssh-dir; write-keys", 0, "ok", "again");
        CHECK_INTEQ(decide_feedback(&s, &d, 0, HOME_E_UNSAFE, NULL), 0, "feedback");
        check_steps(&d, "remove-previous-keys", EX_NOPERM, "previous-admin-keys", "removing theirs failed: the new admin's wait");
        CHECK_INTEQ(decide_record(&s, &d, "t", &st), 0, "record");
        CHECK_STREQ(st.user, "olduser", "the state keeps naming the previous admin, so the next run tries again");
        state_done(&st);
        decision_done(&d);
        snap_free(&s);
}

static void test_broken_unit(void) {
        Snapshot s;
        Decision d = {};

        node(&s, "Disabled", NULL, UNITS(debian_broken_socket));
        s.units.errors = socket_broken;
        check_decide(&s, &d,
                     "save-image-record; stop ssh.service; stop ssh.socket; disable ssh.service; mask ssh.service; "
                     "mask ssh.socket; daemon-reload",
                     EX_SOFTWARE, "unit-broken", "Disabled masks the broken unit too: 70");
        CHECK(d.n_broken == 1 && d.problems[0].part == PART_UNIT_BROKEN && d.problems[0].unit == 1, "named");
        CHECK(d.image.recorded && d.image.socket == NULL, "a broken unit is never recorded as the image's");
        decision_done(&d);
        snap_free(&s);

        node(&s, "LocalUser", NULL, UNITS(debian_broken_socket));
        s.units.errors = socket_broken;
        check_decide(&s, &d, "", EX_SOFTWARE, "unit-broken", "LocalUser leaves it alone and serves port 22 with the service");
        decision_done(&d);
        s.units_r = -ENOMEM;
        check_decide(&s, &d, "", EX_SOFTWARE, "unit-control-failed", "unit states unreadable: no unit steps");
        CHECK(!d.image.recorded, "never a record from a failed query");
        decision_done(&d);
        snap_free(&s);
}

static void test_entraid(void) {
        Snapshot s;
        Decision d = {};

        node(&s, "EntraId", NULL, UNITS(debian_masked));
        with_prev(&s, MODE_DISABLED, "azureuser", true, false);
        check_decide(&s, &d, "write-sshd-config; " OPEN_UNITS, 0, "ok", "EntraId offline: the block, then the units");
        CHECK_STREQ(d.sshd_new, SSHD_BLOCK_TEXT "Port 22\n", "the block at the top");
        decision_done(&d);

        s.live = true;
        check_decide(&s, &d, "write-sshd-config; check-entraid; " OPEN_UNITS, 0, "ok", "live: sshd -T before any unmask");
        CHECK_INTEQ(decide_feedback(&s, &d, 0, 0, NULL), 0, "written");
        CHECK_INTEQ(decide_feedback(&s, &d, 1, SSHD_E_NOT_EFFECTIVE, "sshd -T shows pubkeyauthentication yes"), 0, "not effective");
        check_steps(&d, "write-sshd-config; check-entraid; restore-sshd-config", EX_CONFIG, "entraid-not-effective",
                    "fail closed: the image's sshd_config back, the units stay masked (Disabled's steps: none here)");
        CHECK_STREQ(d.entraid_failed, "sshd -T shows pubkeyauthentication yes", "why");
        decision_done(&d);

        s.units = UNITS(debian);
        check_decide(&s, &d, "write-sshd-config; check-entraid", 0, "ok", "EntraId from Debian: the units are right already");
        decision_done(&d);
        s.units = UNITS(debian_masked);

        /* sshd_config a symlink: known before anything is done */
        s.sshd_r = SSHD_E_SYMLINK;
        check_decide(&s, &d, "", EX_CONFIG, "entraid-not-effective", "EntraId with an unusable sshd_config fails closed at once");
        CHECK_STREQ(d.entraid_failed, "/r/etc/ssh/sshd_config is a symlink", "why");
        decision_done(&d);
        s.units = UNITS(debian);
        check_decide(&s, &d, DISABLED_UNITS, EX_CONFIG, "entraid-not-effective", "... with Disabled's steps (the record exists)");
        decision_done(&d);

        /* the write refused */
        s.sshd_r = 0;
        check_decide(&s, &d, "write-sshd-config; check-entraid", 0, "ok", "again");
        CHECK_INTEQ(decide_feedback(&s, &d, 0, -EROFS, NULL), 0, "feedback");
        check_steps(&d, "write-sshd-config; " DISABLED_UNITS, EX_CONFIG, "entraid-not-effective", "a refused write fails closed");
        CHECK_STREQ(d.entraid_failed, "cannot write /r/etc/ssh/sshd_config: Read-only file system", "why");
        decision_done(&d);
        snap_free(&s);
}

static void test_unit_feedback(void) {
        Snapshot s;
        Decision d = {};

        node(&s, "Disabled", NULL, UNITS(debian));
        check_decide(&s, &d, "save-image-record; " DISABLED_UNITS, 0, "ok", "Disabled");
        CHECK_INTEQ(decide_feedback(&s, &d, 1, -EACCES, NULL), 0, "stop refused");
        CHECK_INTEQ(decide_feedback(&s, &d, 2, -EIO, NULL), 0, "a later failure");
        check_steps(&d, "save-image-record; " DISABLED_UNITS, EX_CANTCREAT, "unit-control-failed",
                    "every unit is tried; the first failure says how (73)");
        decision_done(&d);
        snap_free(&s);
}

static void test_error_table(void) {
        static const struct {
                Part part;
                int code, exit;
                const char *result;
        } t[] = {
                { PART_HOME, HOME_E_NOT_FOUND, EX_NOUSER, "home-missing" },
                { PART_HOME, HOME_E_UNSAFE, EX_NOPERM, "unsafe-path" },
                { PART_HOME, HOME_E_IMMUTABLE, EX_CANTCREAT, "unsafe-path" },
                { PART_USER, HOME_E_NO_USER, EX_NOUSER, "admin-user-missing" },
                { PART_USER, HOME_E_UNSAFE, EX_NOUSER, "admin-user-missing" },
                { PART_KEYS_READ, HOME_E_UNSAFE, EX_NOPERM, "unsafe-path" },
                { PART_SSH_DIR, HOME_E_UNSAFE, EX_NOPERM, "unsafe-path" },
                { PART_SSH_DIR_CREATE, HOME_E_UNSAFE, EX_NOPERM, "unsafe-path" },
                { PART_SSH_DIR_CREATE, HOME_E_IMMUTABLE, EX_CANTCREAT, "cannot-create" },
                { PART_KEYS_WRITE, HOME_E_IMMUTABLE, EX_CANTCREAT, "cannot-create" },
                { PART_KEYS_WRITE, HOME_E_UNSAFE, EX_NOPERM, "io-error" },
                { PART_PREVIOUS_KEYS, HOME_E_IMMUTABLE, EX_CANTCREAT, "previous-admin-keys" },
                { PART_PREVIOUS_KEYS, HOME_E_UNSAFE, EX_NOPERM, "previous-admin-keys" },
                { PART_HOME, -ENOENT, EX_NOUSER, "home-missing" },
                { PART_HOME, -EPERM, EX_NOPERM, "unsafe-path" },
                { PART_HOME, -EIO, EX_IOERR, "unsafe-path" },
                { PART_KEYS_READ, -EPERM, EX_NOPERM, "unsafe-path" },
                { PART_KEYS_READ, -EIO, EX_IOERR, "io-error" },
                { PART_SSH_DIR_CREATE, -ENOENT, EX_CANTCREAT, "cannot-create" },
                { PART_SSH_DIR_CREATE, -EPERM, EX_NOPERM, "unsafe-path" },
                { PART_KEYS_WRITE, -EPERM, EX_CANTCREAT, "cannot-create" },
                { PART_KEYS_WRITE, -ENOSPC, EX_IOERR, "io-error" },
                { PART_UNITS, -EROFS, EX_CANTCREAT, "unit-control-failed" },
                { PART_UNITS, -EIO, EX_SOFTWARE, "unit-control-failed" },
                { PART_SSHD_READ, -EINVAL, EX_IOERR, "sshd-config-unreadable" },
                { PART_SSHD_READ, -EACCES, EX_CANTCREAT, "sshd-config-unreadable" },
                { PART_SSHD_WRITE, -EBUSY, EX_CANTCREAT, "cannot-create" },
                { PART_LEGACY_DROPIN, -EBUSY, EX_CANTCREAT, "cannot-create" },
                { PART_LEGACY_DROPIN, -EPERM, EX_NOPERM, "cannot-create" },
                { PART_LEGACY_DROPIN_ENTRAID, -EPERM, EX_CANTCREAT, "cannot-create" },
                { PART_STATE, -EACCES, EX_CANTCREAT, "state-write-failed" },
                { PART_STATE, -EIO, EX_IOERR, "state-write-failed" },
                { PART_LOCK, -EWOULDBLOCK, EX_TEMPFAIL, "locked" },
                { PART_LOCK, -EINVAL, EX_IOERR, "io-error" },
                { PART_USER, HOME_E_ROOT, EX_NOUSER, "admin-user-root" },
                { PART_PREVIOUS_KEYS, HOME_E_DAMAGED, EX_DATAERR, "authorized-keys-damaged" },
                /* the leaves' documented codes (AK_E_*, SSHD_E_*), and errnos by class where the part has no row */
                { PART_KEYS_MERGE, AK_E_DAMAGED, EX_DATAERR, "authorized-keys-damaged" },
                { PART_KEYS_MERGE, -ENOMEM, EX_SOFTWARE, "out-of-memory" },
                { PART_SSHD_READ, SSHD_E_TOO_LARGE, EX_IOERR, "sshd-config-unreadable" },
                { PART_SSHD_READ, -ENOTDIR, EX_NOPERM, "sshd-config-unreadable" },
                { PART_SSHD_CHECK, SSHD_E_REJECTED, EX_CONFIG, "sshd-config-invalid" },
                { PART_LEGACY_DROPIN, -EROFS, EX_CANTCREAT, "cannot-create" },
                { PART_SSHD_WRITE, -EIO, EX_IOERR, "cannot-create" },
                { PART_SSHD_WRITE, -EINVAL, EX_SOFTWARE, "cannot-create" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                ErrorInfo e = error_lookup(t[i].part, t[i].code);
                CHECK_INTEQ(e.exit, t[i].exit, t[i].result);
                CHECK_STREQ(e.result, t[i].result, "result word");
        }
        CHECK_STREQ(error_lookup(PART_ENTRAID, 0).message_id, MID_SSHD_CONFIG_BAD, "MESSAGE_ID");
        CHECK_INTEQ(exit_code_worse(EX_DATAERR, EX_SOFTWARE), EX_SOFTWARE, "70 is worse than 65");
        CHECK_INTEQ(exit_code_worse(EX_CANTCREAT, EX_NOUSER), EX_CANTCREAT, "73 is worse than 67");
}

/* ---- The executor with a fake unit backend: the calls in order, and each result fed back ---------------- */

typedef struct FakeBackend {
        UnitBackend base;
        char calls[1024];
        const char *fail_unit; /* this unit's file changes fail with fail_errno */
        int fail_errno;
        const char *enabled; /* get_file_state answers "enabled" for it */
} FakeBackend;

static int fake_call(UnitBackend *b, const char *what, const char *unit) {
        FakeBackend *f = (FakeBackend *) b;
        size_t len = strlen(f->calls);

        snprintf(f->calls + len, sizeof f->calls - len, "%s%s%s%s", len ? "; " : "", what, unit ? " " : "", unit ?: "");
        return f->fail_unit && unit && streq(unit, f->fail_unit) && !streq(what, "stop") ? f->fail_errno : 0;
}
static int fake_file_state(UnitBackend *b, const char *unit, char **ret) {
        FakeBackend *f = (FakeBackend *) b;
        *ret = strdup(f->enabled && streq(unit, f->enabled) ? "enabled" : "disabled");
        return *ret ? 0 : -ENOMEM;
}
static int fake_stop(UnitBackend *b, const char *u) {
        return fake_call(b, "stop", u);
}
static int fake_start(UnitBackend *b, const char *u) {
        return fake_call(b, "start", u);
}
static int fake_mask(UnitBackend *b, const char *u) {
        return fake_call(b, "mask", u);
}
static int fake_unmask(UnitBackend *b, const char *u) {
        return fake_call(b, "unmask", u);
}
static int fake_enable(UnitBackend *b, const char *u) {
        return fake_call(b, "enable", u);
}
static int fake_disable(UnitBackend *b, const char *u) {
        return fake_call(b, "disable", u);
}
static int fake_reload(UnitBackend *b) {
        return fake_call(b, "daemon-reload", NULL);
}

static const UnitBackendVTable fake_vtable = {
        .name = "fake",
        .get_file_state = fake_file_state,
        .stop_no_block = fake_stop,
        .start_no_block = fake_start,
        .mask = fake_mask,
        .unmask = fake_unmask,
        .enable = fake_enable,
        .disable = fake_disable,
        .reload = fake_reload,
};

static void test_execute(void) {
        char dir[] = "/tmp/test-decide-XXXXXX";
        FakeBackend fake = { .base.vtable = &fake_vtable };
        Snapshot s;
        Decision d = {};
        bool changed = false;

        CHECK(mkdtemp(dir) != NULL, "scratch root");
        Node n = { .root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC), .root = dir, .backend = &fake.base };
        char var[64];
        snprintf(var, sizeof var, "%s/var", dir);
        CHECK(mkdir(var, 0755) == 0, "var");
        snprintf(var, sizeof var, "%s/var/lib", dir);
        CHECK(mkdir(var, 0755) == 0, "var/lib");

        /* a fallback to Disabled (no key part): the image record is saved first, then every unit is tried */
        node(&s, NULL, NULL, UNITS(debian));
        s.root = dir;
        fake.fail_unit = "sshd.service";
        fake.fail_errno = -EROFS;
        CHECK_INTEQ(decide(&s, &d), 0, "decide");
        CHECK_INTEQ(node_execute(&n, &s, &d, &changed), 0, "execute");
        CHECK_STREQ(fake.calls,
                    "stop ssh.service; stop sshd.service; stop ssh.socket; disable ssh.service; mask ssh.service; "
                    "mask sshd.service; mask ssh.socket; daemon-reload",
                    "the calls, in the plan's order, all of them");
        CHECK(changed, "changed");
        CHECK_INTEQ(d.exit, EX_CANTCREAT, "a read-only unit file (73) is more severe than IMDS unavailable (69)");
        CHECK_STREQ(d.result, "unit-control-failed", "result word");
        decision_done(&d);
        State st = {};
        CHECK_INTEQ(state_load(n.root_fd, &st), 0, "the image record was saved before the first mask");
        CHECK(st.image.recorded && st.image.service_enabled && st.mode == MODE_DISABLED, "with how the image had sshd");
        state_done(&st);
        snap_free(&s);

        /* LocalUser: enabling the service also enabled the socket (Also=): it is disabled again */
        node(&s, NULL, NULL, UNITS(debian_masked));
        s.root = dir;
        s.fallback_mode = MODE_LOCALUSER;
        fake = (FakeBackend) { .base.vtable = &fake_vtable, .enabled = "ssh.socket" };
        CHECK_INTEQ(decide(&s, &d), 0, "decide");
        CHECK_INTEQ(node_execute(&n, &s, &d, &changed), 0, "execute");
        CHECK_STREQ(fake.calls,
                    "unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.service; disable ssh.socket; "
                    "daemon-reload; start ssh.service",
                    "never both for port 22");
        decision_done(&d);
        snap_free(&s);
        close(n.root_fd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
        CHECK(system(cmd) == 0, "cleanup");
}

/* verify's snapshot: the state apply recorded for mode and keys (azureuser at AK, Debian's image: the service),
 * the policy it records (policy_from_state, as node_observe_recorded() does), the user's home as in node(). */
static void recorded(Snapshot *s, Mode mode, const char *const *keys, UnitInfoList units) {
        const char *source;
        size_t n = 0;

        node(s, "Disabled", NULL, units); /* the user; the document's policy is replaced by the state's */
        policy_done(&s->policy);
        while (keys && keys[n])
                n++;
        s->prev = (State) { .mode = mode,
                            .user = strdup("azureuser"),
                            .authorized_keys = strdup(AK),
                            .n_keys = n,
                            .keys = calloc(n + 1, sizeof *s->prev.keys),
                            .last_time = strdup("2026-01-01T00:00:00Z"),
                            .last_source = strdup("imds"),
                            .image = { true, strdup("ssh.service"), strdup("ssh.socket"), true, false } };
        for (size_t i = 0; i < n; i++) {
                SshKey k = {};
                if (sshkey_parse(keys[i], strlen(keys[i]), &k, NULL) < 0)
                        abort();
                s->prev.keys[i] = (StateKey) { .type = strdup(k.type), .fingerprint = strdup(k.fingerprint), .line = strdup(keys[i]) };
                sshkey_done(&k);
        }
        if (policy_from_state(&s->prev, &s->policy, &source) != 0)
                abort();
        (void) policy_check_paths(&s->policy, s->user.home, s->user.real_home);
        s->from_state = true;
}

static void check_verify(const Snapshot *s, int want, const char *want_line, const char *why) {
        _cleanup_free_ char *line = NULL;

        CHECK_INTEQ(decide_verify(s, &line), want, why);
        CHECK_STREQ(line, want_line, why);
}

static void with_sshd_config(Snapshot *s, const char *text) {
        free(s->sshd.text);
        s->sshd.text = strdup(text);
        s->sshd.len = strlen(text);
}

#define APPLIED "applied 2026-01-01T00:00:00Z from imds"

static void test_verify_disabled(void) {
        Snapshot s;

        recorded(&s, MODE_DISABLED, NULL, UNITS(debian_masked));
        check_verify(&s, 0, "in sync: Disabled, 0 managed keys, " APPLIED, "masked, no .ssh");
        with_keys_file(&s, "# mine\n");
        s.live = true;
        check_verify(&s, 0, "in sync: Disabled, 0 managed keys, " APPLIED, "a killed run's temp files are not drift");
        s.units = UNITS(debian);
        check_verify(&s, 1, "drift: ssh.service is enabled, expected disabled for mode Disabled",
                     "a unit file state names the drift before a job (stop)");
        UnitInfo hand[ELEMENTSOF(debian_masked)];
        memcpy(hand, debian_masked, sizeof hand);
        hand[0].file_state = "disabled"; /* unmasked by hand */
        s.units = UNITS(hand);
        check_verify(&s, 1, "drift: ssh.service is disabled, expected masked for mode Disabled", "unmasked by hand");
        hand[0].file_state = "masked";
        hand[0].active_state = "active"; /* started by hand */
        check_verify(&s, 1, "drift: ssh.service is active, expected stopped for mode Disabled", "only a job: named by the active state");
        s.units = UNITS(debian_masked);
        s.units_r = -EIO;
        check_verify(&s, 2, "unknown: cannot read unit states: Input/output error", "unit states unreadable: cannot tell");
        s.units_r = 0;

        s.gen = (GeneratorInfo) { .present = true };
        check_verify(&s, 1, "drift: systemd-ssh-generator is not masked, expected masked for mode Disabled",
                     "the generator would make its sockets again (the image record step does not count)");
        s.gen = (GeneratorInfo) {};

        with_sshd_config(&s, SSHD_BLOCK_TEXT "Port 22\n");
        check_verify(&s, 1, "drift: sshd_config still has the EntraId block for mode Disabled", "EntraId's block left");
        with_sshd_config(&s, "Port 22\n");
        s.legacy_dropin = 1;
        check_verify(&s, 1, "drift: the old EntraId drop-in is present for mode Disabled", "the old drop-in");
        s.legacy_dropin = -EACCES;
        check_verify(&s, 2, "unknown: sshd_config.d cannot be read for mode Disabled", "cannot look for the drop-in");
        s.legacy_dropin = 0;
        s.sshd_r = SSHD_E_NOT_FOUND;
        check_verify(&s, 0, "in sync: Disabled, 0 managed keys, " APPLIED, "no sshd_config holds nothing of ours");
        s.sshd_r = SSHD_E_TOO_LARGE;
        check_verify(&s, 2, "unknown: sshd_config cannot be read for mode Disabled", "too large to read: a block may hide in it");
        s.sshd_r = 0;

        free(s.keys_text);
        s.keys_text = NULL;
        with_keys_file(&s, "# mine\n" BLOCK_K1);
        check_verify(&s, 1, "drift: managed keys of azureuser differ from the last apply", "a managed key back in Disabled");
        snap_free(&s);
}

static void test_verify_localuser(void) {
        static const char *const keys[] = { K1, K2, NULL };
        Snapshot s;

        recorded(&s, MODE_LOCALUSER, keys, UNITS(debian));
        with_keys_file(&s, "# mine\n" AK_BEGIN "\n" K1 "\n" K2 "\n" AK_END "\n");
        check_verify(&s, 0, "in sync: LocalUser, 2 managed keys, " APPLIED, "the block apply would write is there");
        s.live = true;
        check_verify(&s, 0, "in sync: LocalUser, 2 managed keys, " APPLIED, "live: no sshd -t step without unit steps either");
        s.units = UNITS(debian_masked);
        check_verify(&s, 1, "drift: ssh.service is masked, expected unmasked for mode LocalUser",
                     "masked by hand (sshd -t does not count)");
        s.units = UNITS(debian);
        s.sshd_r = SSHD_E_SYMLINK;
        check_verify(&s, 0, "in sync: LocalUser, 2 managed keys, " APPLIED, "a symlinked sshd_config holds nothing of ours");
        s.sshd_r = SSHD_E_TOO_LARGE;
        check_verify(&s, 2, "unknown: sshd_config cannot be read for mode LocalUser", "a block may hide in it");
        s.sshd_r = 0;

        /* The keys are compared as the bytes apply would write: what --repair would rewrite is drift. */
        static const char *const drifted[] = {
                AK_BEGIN "\n" K2 "\n" K1 "\n" AK_END "\n",        /* reordered */
                AK_BEGIN "\n" K1 "\n" K2 " edited\n" AK_END "\n", /* a comment edited inside the block */
                AK_BEGIN "\n" K1 "\n" AK_END "\n",                /* a key removed */
                "# mine\n",                                       /* the block removed */
        };
        for (size_t i = 0; i < ELEMENTSOF(drifted); i++) {
                free(s.keys_text);
                with_keys_file(&s, drifted[i]);
                check_verify(&s, 1, "drift: managed keys of azureuser differ from the last apply", drifted[i]);
        }
        free(s.keys_text);
        with_keys_file(&s, NULL);
        check_verify(&s, 1, "drift: managed keys of azureuser differ from the last apply", "authorized_keys removed");
        s.ssh_dir_r = HOME_E_NOT_FOUND;
        check_verify(&s, 1, "drift: managed keys of azureuser differ from the last apply", ".ssh removed");
        with_keys_file(&s, "ssh-ed25519 AAAAown own\n" AK_BEGIN "\n" K1 "\n");
        check_verify(&s, 1, "drift: managed block of azureuser damaged (BEGIN marker without END, line 2)", "damaged: named with its line");
        free(s.keys_text);
        s.keys_text = NULL;

        s.ssh_dir_r = HOME_E_UNSAFE;
        check_verify(&s, 1, "drift: managed keys of azureuser are behind an unsafe path", ".ssh a symlink: drift (sshd refuses it too)");
        s.ssh_dir_r = 0;
        s.keys_r = -EIO;
        check_verify(&s, 2, "unknown: managed keys of azureuser cannot be read", "the file unreadable: cannot tell");
        s.home_r = HOME_E_UNSAFE;
        check_verify(&s, 1, "drift: managed keys of azureuser are behind an unsafe path", "the home unsafe");
        s.user_r = HOME_E_NO_USER;
        check_verify(&s, 2, "unknown: managed keys of azureuser cannot be read", "the user gone: cannot tell");
        s.units = UNITS(debian_masked);
        check_verify(&s, 1, "drift: ssh.service is masked, expected unmasked for mode LocalUser",
                     "the units first: they are always applied");
        snap_free(&s);
}

static void test_verify_entraid(void) {
        Snapshot s;

        recorded(&s, MODE_ENTRAID, NULL, UNITS(debian));
        with_sshd_config(&s, SSHD_BLOCK_TEXT "Port 22\n");
        check_verify(&s, 0, "in sync: EntraId, 0 managed keys, " APPLIED, "the block at the top");
        s.live = true;
        check_verify(&s, 0, "in sync: EntraId, 0 managed keys, " APPLIED, "live: sshd -T is apply's check, not verify's");
        with_sshd_config(&s, "Port 22\n" SSHD_BLOCK_TEXT);
        check_verify(&s, 1, "drift: the EntraId block in sshd_config is changed for mode EntraId", "moved below");
        with_sshd_config(&s, "Port 22\n");
        check_verify(&s, 1, "drift: sshd_config has no EntraId block for mode EntraId", "removed");
        s.legacy_dropin = 1;
        check_verify(&s, 1, "drift: the old EntraId drop-in is present for mode EntraId", "the drop-in is named before the block");
        s.legacy_dropin = 0;
        s.sshd_r = SSHD_E_NOT_FOUND;
        check_verify(&s, 1, "drift: sshd_config is missing for mode EntraId", "EntraId cannot be had: the decision fails closed");
        s.units = UNITS(debian_masked);
        check_verify(&s, 1, "drift: sshd_config is missing for mode EntraId", "... also on the node a fail-closed apply left masked");
        s.sshd_r = SSHD_E_NOT_REGULAR;
        check_verify(&s, 1, "drift: sshd_config is not a regular file for mode EntraId", "not a regular file");
        s.sshd_r = SSHD_E_TOO_LARGE;
        check_verify(&s, 2, "unknown: sshd_config cannot be read for mode EntraId", "too large to read");
        s.sshd_r = 0;
        with_sshd_config(&s, SSHD_BLOCK_TEXT "Port 22\n");
        check_verify(&s, 1, "drift: ssh.service is masked, expected unmasked for mode EntraId", "masked by hand");
        snap_free(&s);
}

int main(void) {
        log_set_max_level(-1);
        test_disabled();
        test_localuser();
        test_fallback();
        test_user_problems();
        test_admin_changed();
        test_broken_unit();
        test_entraid();
        test_unit_feedback();
        test_error_table();
        test_execute();
        test_verify_disabled();
        test_verify_localuser();
        test_verify_entraid();
        return unit_finish();
}
