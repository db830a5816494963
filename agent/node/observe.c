/* SPDX-License-Identifier: MIT */
/* Reading the node once: the snapshot decide() works on. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "apply/authorized-keys.h"
#include "apply/generator.h"
#include "apply/sshd-config.h"
#include "fs-util.h"
#include "imds/imds.h"
#include "log.h"
#include "macro.h"
#include "node.h"

int node_open(const char *root, const char *config_file, const char *imds_url, bool need_backend, Node *ret) {
        Node n = { .root_fd = AT_FDCWD, .root = root };
        int r;

        r = config_init(&n.config);
        if (r < 0)
                return log_oom();
        if (root) {
                n.root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (n.root_fd < 0) {
                        r = -errno;
                        config_done(&n.config);
                        log_error_errno(r, "Cannot open root directory %s: %m", root);
                        return EX_USAGE;
                }
        }
        r = config_load(&n.config, n.root_fd, config_file);
        for (size_t i = 0; i < n.config.n_notes; i++) /* the loader does not log */
                log_full_errno(n.config.notes[i].level, n.config.notes[i].error, "%s", n.config.notes[i].text);
        if (r < 0) {
                node_done(&n);
                return EX_USAGE;
        }
        if (imds_url) {
                char *u = strdup(imds_url);
                if (!u) {
                        node_done(&n);
                        return EX_SOFTWARE;
                }
                free(n.config.imds_url);
                n.config.imds_url = u;
        }
        if (need_backend) {
                r = root ? unit_backend_new_offline(root, &n.backend) : unit_backend_new_live(&n.backend);
                if (r < 0) {
                        log_error_errno(r, "Cannot set up unit control (%s): %m", root ? "offline" : "systemd");
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

static void unit_info_list_done(UnitInfoList *l) {
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

/* Every managed unit's state: the configured units and, with systemd's ssh generator in the tree (gen), its
 * sockets. -ENOMEM only: a unit that cannot be read is reported in the list. */
static int node_query_units(Node *n, const GeneratorInfo *gen, UnitInfoList *ret) {
        _cleanup_strv_free_ char **names = NULL;
        UnitInfoList l = {};
        size_t n_config = strv_length(n->config.units), count;
        int r = 0;

        /* The managed set: the configured units, and with systemd's ssh generator in the tree its sockets. */
        if (gen->present && generator_socket_names(n->root_fd, &names) == -ENOMEM)
                return -ENOMEM;
        count = n_config + strv_length(names);
        l.units = calloc(count ?: 1, sizeof *l.units);
        l.errors = calloc(count ?: 1, sizeof *l.errors);
        /* Every unit is tried: one that cannot be read does not stop the others (SPEC §4). */
        for (size_t k = 0; l.units && l.errors && r >= 0 && k < count; k++) {
                const char *u = k < n_config ? n->config.units[k] : names[k - n_config];
                bool dup = false;
                for (size_t j = 0; j < l.n; j++)
                        dup = dup || streq(l.units[j].name, u);
                if (dup)
                        continue;
                r = query_unit(n->backend, u, &l.units[l.n], &l.errors[l.n]);
                l.n++; /* also a half-filled one: freed below */
        }
        if (!l.units || !l.errors || r < 0) {
                unit_info_list_done(&l);
                return -ENOMEM;
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

static int block_keys_parse(const char *text, size_t len, BlockKeys *ret) {
        _cleanup_strv_free_ char **lines = NULL;
        BlockKeys b = {};
        size_t count = 0;
        int r;

        if (!text) {
                *ret = b;
                return 0;
        }
        r = authorized_keys_block_lines(text, len, &lines, &b.found);
        if (r == AK_E_DAMAGED) {
                (void) authorized_keys_check(text, len, &b.damage_line, &b.damage);
                *ret = b;
                return 0;
        }
        if (r < 0)
                return r;
        count = strv_length(lines);
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

/* The admin user `name` (NULL: none) into s: each step's result, the file's text, the fds. -ENOMEM only. */
static int node_observe_user(Node *n, const char *name, Snapshot *s) {
        s->user_r = s->home_r = s->ssh_dir_r = s->keys_r = NOT_TRIED;
        s->home_fd = s->ssh_fd = -1;
        if (!name)
                return 0;
        /* Each step: 0, a HOME_E_* outcome (home.h), or a negative errno. */
        s->user_r = admin_user_lookup(n->root_fd, name, &s->user);
        if (s->user_r == -ENOMEM)
                return s->user_r;
        if (s->user_r != 0 || s->user.uid == 0)
                return 0; /* root's home is never looked at */
        s->home_r = home_open(n->root_fd, &s->user, &s->home_fd);
        if (s->home_r != 0)
                return 0;
        s->ssh_dir_r = ssh_dir_open(s->home_fd, &s->user, false, &s->ssh_fd);
        if (s->ssh_dir_r != 0) {
                s->ssh_fd = -1;
                return 0;
        }
        s->keys_r = authorized_keys_read(s->ssh_fd, &s->user, &s->keys_text, &s->keys_len);
        return s->keys_r == -ENOMEM ? s->keys_r : 0;
}

static void node_observe_units(Node *n, Snapshot *s) {
        /* The generator once: its sockets join the managed set; its mask is the agent's only while it is there. */
        s->gen.ours = s->prev.generator_masked;
        if (generator_query(n->root_fd, &s->gen) < 0)
                s->gen = (GeneratorInfo) { .ours = s->gen.ours };
        s->gen.ours = s->gen.ours && s->gen.masked; /* a mask someone removed is no longer ours */
        s->units_r = node_query_units(n, &s->gen, &s->units);
}

int node_block(const Snapshot *s, BlockKeys *ret) {
        Part part;
        int r = snapshot_keys_result(s, &part);

        return r != 0 ? r : block_keys_parse(s->keys_r == 0 ? s->keys_text : NULL, s->keys_len, ret);
}

int node_observe(Node *n, Snapshot *s) {
        int r;

        s->root = n->root;
        s->live = !n->root;
        s->fallback_mode = n->config.fallback_mode;
        r = node_observe_user(n, s->have_policy ? s->policy.admin_user : NULL, s);
        if (r < 0)
                return r;
        if (s->home_r == 0)
                (void) policy_check_paths(&s->policy, s->user.home, s->user.real_home);

        node_observe_units(n, s);
        s->sshd_r = sshd_config_read(n->root_fd, &s->sshd);
        if (s->sshd_r == -ENOMEM)
                return s->sshd_r;
        s->legacy_dropin = sshd_legacy_dropin_state(n->root_fd);
        if (s->legacy_dropin < 0)
                log_warning_errno(s->legacy_dropin, "Cannot look for the old EntraId drop-in %s/%s: %m", SSHD_LEGACY_DROPIN_DIR,
                                  SSHD_LEGACY_DROPIN_NAME);
        return 0;
}

/* The policy the state file records, as a repair re-asserts it (SPEC §6 verify --repair). */
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

/* A state file of an older version records the keys' fingerprints only: for verify, the block's own lines
 * stand in for them when they are the recorded keys, in order; else *ret_differ. -ENOMEM only. */
static int policy_keys_from_block(Snapshot *s, bool *ret_differ) {
        _cleanup_(block_keys_done) BlockKeys b = {};
        bool same;

        *ret_differ = false;
        if (node_block(s, &b) != 0)
                return 0; /* the user, home or file cannot be read: decide() says so */
        same = !b.damage && b.n_invalid == 0 && b.n == s->prev.n_keys;
        for (size_t i = 0; same && i < b.n; i++)
                same = streq(b.keys[i].fingerprint, s->prev.keys[i].fingerprint);
        *ret_differ = !same;
        if (!same || b.n == 0)
                return 0;
        s->policy.keys = calloc(b.n, sizeof *s->policy.keys);
        if (!s->policy.keys)
                return -ENOMEM;
        for (size_t i = 0; i < b.n; i++)
                s->policy.keys[i] = (PolicyKey) { .key = b.keys[i], .index = i };
        s->policy.n_keys = s->policy.n_keys_alloc = b.n;
        b.n = 0; /* moved: only the array is freed */
        return 0;
}

int node_observe_recorded(Node *n, Snapshot *s, int *ret_state, bool *ret_keys_differ) {
        const char *source;
        bool legacy = false;
        int r;

        *ret_keys_differ = false;
        *ret_state = state_load(n->root_fd, &s->prev);
        if (*ret_state < 0)
                s->prev = (State) { .mode = MODE_INVALID };
        else {
                r = policy_from_state(&s->prev, &s->policy, &source);
                if (r == EX_SOFTWARE)
                        return -ENOMEM;
                /* EX_NOINPUT: the key lines are missing; the user and mode are still the state's. */
                legacy = r == EX_NOINPUT;
                if (legacy) {
                        s->policy = (Policy) { .mode = s->prev.mode, .mode_from_tag = true };
                        if (s->prev.user && !(s->policy.admin_user = strdup(s->prev.user)))
                                return -ENOMEM;
                }
                s->have_policy = s->from_state = true;
        }
        r = node_observe(n, s);
        if (r >= 0 && legacy)
                r = policy_keys_from_block(s, ret_keys_differ);
        return r;
}

/* The IMDS client does not log: each retry is logged here, with its MESSAGE_ID. */
static void log_imds_retry(const ImdsRetry *t, void *userdata) {
        char attempt[32], http[32];
        const char *fields[] = { attempt, t->status > 0 ? http : NULL, NULL };

        snprintf(attempt, sizeof attempt, "IMDS_REQUESTS=%u", t->requests);
        snprintf(http, sizeof http, "HTTP_STATUS=%ld", t->status);
        log_event(LOG_INFO, MID_IMDS_RETRY, fields, "IMDS request %u failed (%s), retrying in %.2f s.", t->requests, t->what,
                  (double) t->wait_usec / 1e6);
        if (t->curl_error[0])
                log_debug("IMDS request %u: %s", t->requests, t->curl_error);
}

int node_fetch(const Node *n, const char *imds_file, char **ret_body, size_t *ret_len, const char **ret_source, char **ret_detail) {
        int r;

        if (imds_file) {
                _cleanup_close_ int fd = -1;

                *ret_source = "file";
                fd = streq(imds_file, "-") ? dup(STDIN_FILENO) : open(imds_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                r = fd < 0 ? -errno : read_full_stream(fd, IMDS_MAX_BODY, ret_body, ret_len);
                if (r == -EFBIG) {
                        *ret_detail = strdup("document larger than 4 MiB");
                        return EX_DATAERR;
                }
                if (r < 0) {
                        if (asprintf(ret_detail, "cannot %s --imds-file %s: %s", fd < 0 ? "open" : "read", imds_file, strerror(-r)) < 0)
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

int node_listeners(Node *n, const ListenerList **ret) {
        if (!n->listeners_probed) {
                _cleanup_free_ char *dir = NULL;

                n->listeners_probed = true;
                /* /proc/self/net, not /proc/net: the verify unit's ProcSubset=pid hides the latter. */
                if (asprintf(&dir, "%s/proc/self/net", n->root ?: "") < 0)
                        return -ENOMEM;
                n->listeners_r = listeners_read(dir, &n->listeners);
                if (n->listeners_r >= 0) {
                        int r = listeners_probe(&n->listeners, LISTENERS_PROBE_TIMEOUT_USEC);
                        n->listeners_r = r < 0 ? r : 0;
                }
        }
        *ret = &n->listeners;
        return n->listeners_r;
}

void snapshot_done(Snapshot *s) {
        state_done(&s->prev);
        policy_done(&s->policy);
        admin_user_done(&s->user);
        free(s->keys_text);
        if (s->home_fd >= 0)
                close(s->home_fd);
        if (s->ssh_fd >= 0)
                close(s->ssh_fd);
        unit_info_list_done(&s->units);
        sshd_config_file_done(&s->sshd);
        *s = SNAPSHOT_INIT;
}
