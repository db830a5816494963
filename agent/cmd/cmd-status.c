/* SPDX-License-Identifier: MIT */
/* status, verify and show-imds: what support staff and node-problem-detector read. */

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "macro.h"
#include "state/metrics.h"
#include "text-util.h"

/* node-problem-detector reads the first stdout line cut at max_output_length (80 by default): the line says
 * what drifted within that. A longer one is cut at a UTF-8 character boundary, never mid-character (user
 * and unit names are UTF-8); the journal gets the whole message, of which the line is then a prefix. */
#define VERIFY_LINE_MAX 80

static void line_fit(char *s, size_t max) {
        size_t n = strcspn(s, "\n");

        if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        s[n] = '\0';
}

/* Disabled's promise "nothing answers as sshd": 1 and *ret_what = "drift: sshd answers on X" when something
 * does, else 0 (also when not checkable). */
static int verify_listeners(Node *n, char **ret_what) {
        const ListenerList *l;
        const Listener *x;
        int r;

        r = node_listeners(n, &l);
        if (r == -ENOENT)
                return 0; /* an offline tree: nothing runs there */
        if (r < 0) {
                log_warning_errno(r, "Cannot probe the node's listening sockets: %m");
                return 0;
        }
        x = listeners_first_ssh(l);
        if (!x)
                return 0;
        size_t more = listeners_count_ssh(l) - 1;
        char tail[32] = "";
        if (more > 0)
                snprintf(tail, sizeof tail, " (+%zu more)", more);
        /* The socket's name is cut so that the count still fits the line. */
        int room = VERIFY_LINE_MAX - (int) strlen("drift: sshd answers on ") - (int) strlen(tail);
        if (asprintf(ret_what, "drift: sshd answers on %.*s%s", room, x->name, tail) < 0)
                *ret_what = NULL;
        return 1;
}

void node_write_metrics(Node *n, const State *s, int verify, bool with_listeners) {
        MetricsInput m = { .mode = MODE_INVALID, .verify = verify, .sshd_answering = -1, .last_apply_time = -1 };
        const ListenerList *l = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        if (n->config.metrics_dir && streq(n->config.metrics_dir, "off"))
                return;
        if (s->mode != MODE_INVALID) {
                m.mode = s->mode;
                m.managed_keys = s->n_keys;
                m.have_last_apply = s->last_source || s->last_result || s->last_time;
                m.last_apply_time = metrics_parse_time(s->last_time);
                m.last_apply_exit = s->last_exit;
                m.last_apply_source = s->last_source;
                m.last_apply_result = s->last_result;
                m.fallback = s->last_source && streq(s->last_source, "fallback");
        }
        if (with_listeners && node_listeners(n, &l) >= 0)
                m.sshd_answering = (long) listeners_count_ssh(l);
        text = metrics_format(&m);
        if (!text) {
                log_oom();
                return;
        }
        r = metrics_write(n->root_fd, n->config.metrics_dir, text);
        if (r < 0)
                log_warning_errno(r, "Cannot write the metrics file %s/%s: %m", n->config.metrics_dir ?: METRICS_DIR_DEFAULT, METRICS_FILE);
}

/* verify's reading of the node (status shows the same): the recorded state's decision (decide_verify()),
 * Disabled's listener probe first. 0 in sync, 1 drift, 2 unknown; *ret_what its line. ret_state (may be NULL):
 * state_load()'s result. */
static int verify_node(Node *n, Snapshot *s, char **ret_what, int *ret_state) {
        bool keys_differ;
        int r, state_r;

        r = node_observe_recorded(n, s, &state_r, &keys_differ);
        if (ret_state)
                *ret_state = state_r;
        if (r < 0 || state_r < 0) {
                if (asprintf(ret_what, "unknown: %s%s",
                             r < 0                        ? "out of memory"
                                     : state_r == -ENOENT ? "nothing applied yet (no " STATE_DIR "/" STATE_FILE ")"
                                                          : "state file unreadable: ",
                             r < 0 || state_r == -ENOENT ? "" : strerror(-state_r)) < 0)
                        *ret_what = NULL;
                return 2;
        }
        /* In Disabled the promise is that nothing answers as sshd: the most serious drift, named first. */
        if (s->prev.mode == MODE_DISABLED && verify_listeners(n, ret_what) > 0)
                return 1;
        r = decide_verify(s, ret_what);
        if (r == 0 && keys_differ) {
                free(*ret_what);
                if (asprintf(ret_what, "drift: managed keys of %s differ from the last apply", s->prev.user ?: "?") < 0)
                        *ret_what = NULL;
                r = 1;
        }
        return r < 0 ? 2 : r;
}

/* On drift: apply the state file's own state again (apply's path, lock included, no IMDS), then verify
 * afresh. 0 with "repaired: <what was found>" when the node is back in sync, else 1. */
static int verify_repair(const Options *o, Node *n, Snapshot *s, char **what) {
        Options ao = { .root = o->root, .from_state = true };
        _cleanup_free_ char *found = TAKE_PTR(*what), *after = NULL;
        const char *drift = found && strncmp(found, "drift: ", 7) == 0 ? found + 7 : found ?: "?";
        char field[300];
        int rc, code;

        rc = cmd_apply(&ao);
        /* The node changed: forget the listeners seen before and read it again. */
        listener_list_done(&n->listeners);
        n->listeners_probed = false;
        snapshot_done(s);
        code = verify_node(n, s, &after, NULL);
        snprintf(field, sizeof field, "DRIFT=%s", drift);
        const char *fields[] = { field, NULL };
        if (code == 0) {
                log_event(LOG_NOTICE, MID_DRIFT_REPAIRED, fields, "Drift repaired (%s): the last applied state of mode %s re-asserted.",
                          drift, mode_to_string(s->prev.mode));
                if (asprintf(what, "repaired: %s", drift) < 0)
                        *what = NULL;
                return 0;
        }
        log_event(LOG_ERR, MID_DRIFT, fields, "Drift repair failed (apply exit %d): %s", rc, after ?: drift);
        if (asprintf(what, "drift: %s (repair failed)", after && strncmp(after, "drift: ", 7) == 0 ? after + 7 : drift) < 0)
                *what = NULL;
        return 1;
}

/* Text from disk (state.json, passwd, a hand-edited block) is printed escaped: no terminal escapes, valid
 * UTF-8 in JSON. */
static void escape_in_place(char **p) {
        char *e;

        if (!*p)
                return;
        e = text_escape(*p);
        if (!e)
                return; /* out of memory: printed as "?" by the callers' fallbacks would lose more */
        free(*p);
        *p = e;
}

static int verify_report(const Options *o, int code, const char *raw) {
        _cleanup_free_ char *what = text_escape(raw);

        if (!what)
                return code;
        line_fit(what, VERIFY_LINE_MAX);
        if (o->json) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddStringToObject(j, "result", code == 0 ? "in_sync" : code == 1 ? "drift" : "unknown");
                cJSON_AddNumberToObject(j, "exit", code);
                cJSON_AddStringToObject(j, "message", what);
                json_print_free(j, true); /* one line, as without --json */
        } else
                printf("%s\n", what);
        return code;
}

int cmd_verify(const Options *o) {
        Node n = {};
        Snapshot s = SNAPSHOT_INIT;
        _cleanup_free_ char *what = NULL;
        int code;

        code = node_open(o->root, NULL, NULL, true, &n);
        if (code != 0)
                return verify_report(o, 2, (char[]) { "unknown: cannot open the node's configuration or unit control" });
        code = verify_node(&n, &s, &what, NULL);
        if (code == 1 && (o->repair || n.config.drift_repair))
                code = verify_repair(o, &n, &s, &what);
        node_write_metrics(&n, &s.prev, code, true);
        /* Run by the timer, the journal gets the event with its MESSAGE_ID (the unit discards stdout);
         * on a terminal the stdout line says it all. */
        if (log_get_target() == LOG_TARGET_JOURNAL)
                log_event(code == 0 ? LOG_INFO : LOG_WARNING, code == 1 ? MID_DRIFT : NULL, NULL, "%s", what ?: "unknown");
        if (!what)
                what = strdup(code == 0 ? "in sync" : code == 1 ? "drift" : "unknown");
        verify_report(o, code, what ?: (char[]) { "unknown" });
        snapshot_done(&s);
        node_done(&n);
        return code;
}

int cmd_status(const Options *o) {
        Node n = {};
        Snapshot snap = SNAPSHOT_INIT;
        State *s = &snap.prev;
        BlockKeys block = {};
        _cleanup_free_ char *what = NULL, *ak_path = NULL;
        bool have_state, have_block;
        int code, r, sync;

        code = node_open(o->root, NULL, NULL, true, &n);
        if (code != 0) {
                fprintf(stderr, "aks-ssh-access: status: cannot start (see above)\n");
                return code;
        }
        /* One reading of the node, verify's: the line, the units and the block shown below all come from it. */
        sync = verify_node(&n, &snap, &what, &r);
        have_state = r >= 0;
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "State file %s/%s is unreadable: %m", STATE_DIR, STATE_FILE);
        if (!have_state) {
                free(what); /* said below as "nothing applied yet" */
                what = NULL;
        }
        have_block = have_state && s->user && node_block(&snap, &block) == 0;
        if (have_state && snap.user_r == 0 && snap.user.real_home && asprintf(&ak_path, "%s/.ssh/authorized_keys", snap.user.real_home) < 0)
                ak_path = NULL;
        if (snap.units_r < 0)
                log_warning_errno(snap.units_r, "Cannot read unit states: %m");
        const UnitInfoList units = snap.units;
        char **printed[] = { &s->user, &s->authorized_keys, &s->last_time, &s->last_source, &s->last_result, &ak_path, &what };
        for (size_t i = 0; i < ELEMENTSOF(printed); i++)
                escape_in_place(printed[i]);
        for (size_t i = 0; have_block && i < block.n; i++)
                escape_in_place(&block.keys[i].comment);
        const ListenerList *ls = NULL;
        int lr = node_listeners(&n, &ls);

        if (o->json) {
                cJSON *j = cJSON_CreateObject(), *a, *us;

                cJSON_AddItemToObject(j, "mode", have_state ? cJSON_CreateString(mode_to_string(s->mode)) : cJSON_CreateNull());
                cJSON_AddItemToObject(j, "user", have_state && s->user ? cJSON_CreateString(s->user) : cJSON_CreateNull());
                cJSON_AddItemToObject(j, "authorized_keys",
                                      ak_path                      ? cJSON_CreateString(ak_path)
                                              : s->authorized_keys ? cJSON_CreateString(s->authorized_keys)
                                                                   : cJSON_CreateNull());
                a = cJSON_AddArrayToObject(j, "keys");
                for (size_t i = 0; have_block && i < block.n; i++)
                        cJSON_AddItemToArray(a, json_key(&block.keys[i]));
                us = cJSON_AddObjectToObject(j, "units");
                for (size_t i = 0; i < units.n; i++) {
                        cJSON *x = cJSON_CreateObject();
                        cJSON_AddStringToObject(x, "file_state", units.units[i].file_state);
                        cJSON_AddStringToObject(x, "active_state", units.units[i].active_state);
                        cJSON_AddItemToObject(us, units.units[i].name, x);
                }
                if (have_state) {
                        cJSON *l = cJSON_AddObjectToObject(j, "last_apply");
                        cJSON_AddItemToObject(l, "time", s->last_time ? cJSON_CreateString(s->last_time) : cJSON_CreateNull());
                        cJSON_AddItemToObject(l, "source", s->last_source ? cJSON_CreateString(s->last_source) : cJSON_CreateNull());
                        cJSON_AddItemToObject(l, "result", s->last_result ? cJSON_CreateString(s->last_result) : cJSON_CreateNull());
                        cJSON_AddNumberToObject(l, "exit", s->last_exit);
                } else
                        cJSON_AddNullToObject(j, "last_apply");
                cJSON *lj = cJSON_AddObjectToObject(j, "listeners");
                cJSON_AddBoolToObject(lj, "checked", lr >= 0);
                cJSON_AddBoolToObject(lj, "vsock_checked", lr >= 0 && ls->vsock_checked);
                cJSON_AddNumberToObject(lj, "listening", lr >= 0 ? (double) ls->n : 0);
                /* Every socket probed, and what it said first (people ask "what listens here?"). */
                cJSON *all = cJSON_AddArrayToObject(lj, "sockets");
                for (size_t i = 0; lr >= 0 && i < ls->n; i++) {
                        cJSON *x = cJSON_CreateObject();
                        cJSON_AddStringToObject(x, "socket", ls->items[i].name);
                        cJSON_AddBoolToObject(x, "sshd", ls->items[i].ssh);
                        cJSON_AddBoolToObject(x, "checked", ls->items[i].probed);
                        cJSON_AddStringToObject(x, "banner", ls->items[i].banner);
                        cJSON_AddItemToArray(all, x);
                }
                cJSON *sa = cJSON_AddArrayToObject(lj, "sshd");
                for (size_t i = 0; lr >= 0 && i < ls->n; i++)
                        if (ls->items[i].ssh) {
                                cJSON *x = cJSON_CreateObject();
                                cJSON_AddStringToObject(x, "socket", ls->items[i].name);
                                cJSON_AddStringToObject(x, "banner", ls->items[i].banner);
                                cJSON_AddItemToArray(sa, x);
                        }
                cJSON_AddItemToObject(j, "in_sync", sync == 2 ? cJSON_CreateNull() : cJSON_CreateBool(sync == 0));
                cJSON_AddStringToObject(j, "verify", what ?: "unknown: nothing applied yet");
                json_print_free(j, false);
        } else {
                printf("Mode:             %s\n", have_state ? mode_to_string(s->mode) : "(nothing applied yet)");
                if (have_state)
                        printf("Last apply:       %s from %s, result %s (exit %d)\n", s->last_time ?: "?", s->last_source ?: "?",
                               s->last_result ?: "?", s->last_exit);
                printf("Admin user:       %s\n", have_state && s->user ? s->user : "-");
                printf("authorized_keys:  %s\n", ak_path ?: s->authorized_keys ?: "-");
                if (have_block && block.damage)
                        printf("Managed keys:     damaged block (%s, line %zu): not touched\n", block.damage, block.damage_line);
                else if (have_block) {
                        printf("Managed keys:     %zu%s\n", block.n, block.n_invalid ? " (and lines that are not valid keys)" : "");
                        for (size_t i = 0; i < block.n; i++)
                                printf("  %-36s %s %s\n", block.keys[i].type, block.keys[i].fingerprint, block.keys[i].comment ?: "");
                } else
                        printf("Managed keys:     (not readable)\n");
                printf("Units:\n");
                for (size_t i = 0; i < units.n; i++)
                        printf("  %-26s %-10s %s\n", units.units[i].name, units.units[i].file_state, units.units[i].active_state);
                if (lr == -ENOENT)
                        printf("Answering as sshd: not checkable (no %s/proc: an offline tree)\n", o->root ?: "");
                else if (lr < 0)
                        printf("Answering as sshd: not checkable (%s)\n", strerror(-lr));
                else if (listeners_count_ssh(ls) == 0)
                        printf("Answering as sshd: none (%zu listening socket%s probed)\n", ls->n, ls->n == 1 ? "" : "s");
                else {
                        printf("Answering as sshd:\n");
                        for (size_t i = 0; i < ls->n; i++)
                                if (ls->items[i].ssh)
                                        printf("  %-40s %s\n", ls->items[i].name, ls->items[i].banner);
                }
                for (size_t i = 0; lr >= 0 && i < ls->n; i++)
                        if (!ls->items[i].probed)
                                printf("  (not checkable: %s)\n", ls->items[i].name);
                if (lr >= 0 && !ls->vsock_checked)
                        printf("  (vsock not checkable: the kernel has no vsock_diag)\n");
                /* node_verify's line is "in sync: ...", "drift: ..." or "unknown: ...": said once, as yes/no. */
                const char *v = what ?: "unknown: nothing applied yet";
                if (sync == 0 && strncmp(v, "in sync: ", 9) == 0)
                        printf("In sync:          yes (%s)\n", v + 9);
                else if (sync == 1 && strncmp(v, "drift: ", 7) == 0)
                        printf("In sync:          no, drift: %s\n", v + 7);
                else
                        printf("In sync:          %s\n", v);
        }

        block_keys_done(&block);
        snapshot_done(&snap);
        node_done(&n);
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

void json_print_free(cJSON *j, bool one_line) {
        char *text = !j ? NULL : one_line ? cJSON_PrintUnformatted(j) : cJSON_Print(j);

        if (text)
                puts(text);
        free(text);
        cJSON_Delete(j);
}

int cmd_show_imds(const Options *o) {
        Node n = {};
        Policy p = { .mode = MODE_INVALID };
        AdminUser u = {};
        _cleanup_free_ char *body = NULL, *detail = NULL;
        const char *source = NULL, *err = NULL;
        size_t len = 0;
        int code, r;
        bool user_ok = false;

        code = node_open(o->root, o->config_file, o->imds_url, false, &n);
        if (code != 0) {
                fprintf(stderr, "aks-ssh-access: show-imds: cannot start (see above)\n");
                return code;
        }
        code = node_fetch(&n, o->imds_file, &body, &len, &source, &detail);
        if (code != 0) {
                fprintf(stderr, "aks-ssh-access: %s: %s\n",
                        code == EX_UNAVAILABLE       ? "IMDS unavailable"
                                : code == EX_NOINPUT ? "cannot read the document"
                                                     : "invalid document",
                        detail ?: "?");
                node_done(&n);
                return code;
        }
        r = policy_parse(body, len, n.config.mode_tag, &p, &err);
        if (r < 0) {
                fprintf(stderr, "aks-ssh-access: invalid document: %s\n", err ?: strerror(-r));
                node_done(&n);
                return r == -ENOMEM ? EX_SOFTWARE : EX_DATAERR;
        }
        r = admin_user_lookup(n.root_fd, p.admin_user, &u);
        if (r == 0) {
                int home_fd = -1;
                user_ok = true;
                if (home_open(n.root_fd, &u, &home_fd) == 0)
                        close(home_fd);
                (void) policy_check_paths(&p, u.home, u.real_home);
        }

        if (o->json) {
                cJSON *j = cJSON_CreateObject(), *a;
                cJSON_AddStringToObject(j, "mode", mode_to_string(p.mode));
                cJSON_AddBoolToObject(j, "mode_from_tag", p.mode_from_tag);
                cJSON_AddStringToObject(j, "user", p.admin_user);
                cJSON_AddBoolToObject(j, "user_exists", user_ok);
                cJSON_AddStringToObject(j, "source", source);
                a = cJSON_AddArrayToObject(j, "keys");
                for (size_t i = 0; i < p.n_keys; i++) {
                        cJSON *k = json_key(&p.keys[i].key);
                        cJSON_AddNumberToObject(k, "index", (double) p.keys[i].index);
                        cJSON_AddItemToArray(a, k);
                }
                cJSON_AddItemToObject(j, "rejected", json_rejections(&p));
                json_print_free(j, false);
        } else {
                printf("Mode:        %s%s\n", mode_to_string(p.mode), p.mode_from_tag ? "" : " (tag absent: default)");
                printf("Admin user:  %s%s\n", p.admin_user, user_ok ? "" : " (not in this node's passwd database: paths not checked)");
                printf("Keys:        %zu\n", p.n_keys);
                for (size_t i = 0; i < p.n_keys; i++)
                        printf("  [%zu] %-34s %s %s\n", p.keys[i].index, p.keys[i].key.type, p.keys[i].key.fingerprint,
                               p.keys[i].key.comment ?: "");
                for (size_t i = 0; i < p.n_rejected; i++)
                        printf("  rejected [%zu]: %s\n", p.rejected[i].index, p.rejected[i].reason);
        }

        code = 0;
        if (!user_ok) {
                fprintf(stderr, "aks-ssh-access: admin user %s not found in the passwd database\n", p.admin_user);
                code = EX_NOUSER;
        } else if (p.n_rejected > 0) {
                fprintf(stderr, "aks-ssh-access: %zu publicKeys entr%s rejected\n", p.n_rejected, p.n_rejected == 1 ? "y" : "ies");
                code = EX_DATAERR;
        }
        admin_user_done(&u);
        policy_done(&p);
        node_done(&n);
        return code;
}
