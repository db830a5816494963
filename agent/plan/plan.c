/* SPDX-License-Identifier: MIT */
#include "plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs-util.h"
#include "macro.h"

#define IN_SET_FILE_ACTION(k)                                                                                                 \
        ((k) == UNIT_DISABLE || (k) == UNIT_MASK || (k) == UNIT_UNMASK || (k) == UNIT_ENABLE || (k) == UNIT_MASK_GENERATOR || \
         (k) == UNIT_UNMASK_GENERATOR)

static const char *const action_names[_UNIT_ACTION_MAX] = {
        [UNIT_STOP] = "stop",
        [UNIT_DISABLE] = "disable",
        [UNIT_MASK] = "mask",
        [UNIT_UNMASK] = "unmask",
        [UNIT_ENABLE] = "enable",
        [UNIT_RELOAD] = "daemon-reload",
        [UNIT_START] = "start",
        [UNIT_MASK_GENERATOR] = "mask-generator",
        [UNIT_UNMASK_GENERATOR] = "unmask-generator",
};

bool unit_is_generator_socket(const char *name) {
        static const char *const fixed[] = { "sshd-unix-local.socket", "sshd-vsock.socket", "sshd-unix-export.socket",
                                             "sshd-extra.socket" };
        const char *p;

        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                if (streq(name, fixed[i]))
                        return true;
        if (strncmp(name, "sshd-extra-", 11) != 0)
                return false;
        p = name + 11;
        if (*p < '1' || *p > '9')
                return false;
        while (*p >= '0' && *p <= '9')
                p++;
        return streq(p, ".socket");
}

const char *unit_action_to_string(UnitActionKind k) {
        return k >= 0 && k < _UNIT_ACTION_MAX ? action_names[k] : "?";
}

static bool exists(const UnitInfo *u) {
        return !streq(u->file_state, "not-found");
}

static bool broken(const UnitInfo *u) {
        return streq(u->file_state, "bad");
}

static bool masked(const UnitInfo *u) {
        return streq(u->file_state, "masked") || streq(u->file_state, "masked-runtime");
}

static bool running(const UnitInfo *u) {
        return streq(u->active_state, "active") || streq(u->active_state, "activating") || streq(u->active_state, "reloading");
}

static const UnitInfo *find(const UnitInfo *units, size_t n, const char *name) {
        for (size_t i = 0; name && i < n; i++)
                if (streq(units[i].name, name))
                        return &units[i];
        return NULL;
}

/* The first configured unit of that kind that exists as a unit of its own (not an alias); with only
 * aliases, the first alias (its state says whether its target is enabled; acting on the alias name acts
 * on the target). */
static bool generated(const UnitInfo *u) {
        return streq(u->file_state, "generated") || streq(u->file_state, "transient");
}

static bool pickable(const UnitInfo *u, const char *suffix) {
        return endswith(u->name, suffix) && exists(u) && !unit_is_generator_socket(u->name);
}

static const UnitInfo *pick(const UnitInfo *units, size_t n, const char *suffix) {
        /* A real unit file first: a unit a generator made (e.g. from a leftover SysV ssh script) cannot be
         * enabled, and on Azure Linux it would shadow the real sshd.service. */
        /* A broken unit (its state unreadable) is never picked: not for the record, not to serve port 22. */
        for (size_t i = 0; i < n; i++)
                if (pickable(&units[i], suffix) && !broken(&units[i]) && !streq(units[i].file_state, "alias") && !generated(&units[i]))
                        return &units[i];
        for (size_t i = 0; i < n; i++)
                if (pickable(&units[i], suffix) && streq(units[i].file_state, "alias"))
                        return &units[i];
        for (size_t i = 0; i < n; i++)
                if (pickable(&units[i], suffix) && !broken(&units[i]))
                        return &units[i];
        return NULL;
}

void unit_plan_image_record(const UnitInfo *units, size_t n, ImageRecord *ret) {
        const UnitInfo *s = pick(units, n, ".service"), *k = pick(units, n, ".socket");

        *ret = (ImageRecord) {
                .recorded = true,
                .service = s ? strdup(s->name) : NULL,
                .socket = k ? strdup(k->name) : NULL,
                .service_enabled = s && is_enabled_state(s->file_state),
                .socket_enabled = k && is_enabled_state(k->file_state),
        };
}

typedef struct Builder {
        UnitPlan plan;
        bool generator_starts; /* start the generator's sockets at the end */
        int error;
} Builder;

static void add(Builder *b, UnitActionKind kind, const char *unit) {
        if (b->error)
                return;
        for (size_t i = 0; i < b->plan.n; i++)
                if (b->plan.actions[i].kind == kind &&
                    (b->plan.actions[i].unit == unit || (unit && b->plan.actions[i].unit && streq(b->plan.actions[i].unit, unit))))
                        return; /* once is enough */
        if (!GREEDY_REALLOC(b->plan.actions, b->plan.n + 1)) {
                b->error = -ENOMEM;
                return;
        }
        b->plan.actions[b->plan.n++] = (UnitAction) { kind, unit };
}

bool unit_plan_changes_files(const UnitPlan *p) {
        for (size_t i = 0; i < p->n; i++)
                if (IN_SET_FILE_ACTION(p->actions[i].kind))
                        return true;
        return false;
}

static void plan_disabled(Builder *b, const UnitInfo *units, size_t n, const GeneratorInfo *gen) {
        bool generator = gen && gen->present;

        /* Stop first (at boot this also cancels sshd's queued start job), then disable (which removes
         * alias links, so the alias name can be masked too), then mask every name. A broken unit ("bad":
         * not masked, not enabled) is stopped and masked like the others: failing closed is per unit. */
        for (size_t i = 0; i < n; i++)
                if (exists(&units[i]) && (!masked(&units[i]) || running(&units[i])))
                        add(b, UNIT_STOP, units[i].name);
        for (size_t i = 0; i < n; i++)
                if (exists(&units[i]) && !masked(&units[i]) && is_enabled_state(units[i].file_state))
                        add(b, UNIT_DISABLE, units[i].canonical);
        for (size_t i = 0; i < n; i++)
                if ((exists(&units[i]) || (generator && unit_is_generator_socket(units[i].name))) && !masked(&units[i]))
                        add(b, UNIT_MASK, units[i].name);
        if (generator && !gen->masked)
                add(b, UNIT_MASK_GENERATOR, SSH_GENERATOR);
}

static void plan_open(Builder *b, const UnitInfo *units, size_t n, const ImageRecord *rec, const GeneratorInfo *gen) {
        const UnitInfo *svc = NULL, *sock = NULL, *on, *off;
        bool want_socket;

        /* What the image had, generator included: the agent's own generator mask goes, the generator's
         * sockets are unmasked (below, with every managed name) and started after the daemon-reload. */
        if (gen && gen->masked && gen->ours)
                add(b, UNIT_UNMASK_GENERATOR, SSH_GENERATOR);

        if (rec && rec->recorded) {
                svc = find(units, n, rec->service);
                sock = find(units, n, rec->socket);
                /* A record (state.json, root's) naming a unit of the wrong kind is not trusted (fuzz-plan). */
                if (svc && !endswith(svc->name, ".service"))
                        svc = NULL;
                if (sock && !endswith(sock->name, ".socket"))
                        sock = NULL;
        }
        if (!svc || !exists(svc) || broken(svc))
                svc = pick(units, n, ".service");
        if (!sock || !exists(sock) || broken(sock))
                sock = pick(units, n, ".socket");
        want_socket = rec && rec->recorded && rec->socket_enabled && !rec->service_enabled && sock;
        if (!svc && sock)
                want_socket = true;

        on = want_socket ? sock : svc;
        off = want_socket ? svc : sock;
        b->generator_starts = gen && gen->present && gen->masked && gen->ours;
        for (size_t i = 0; gen && gen->present && i < n; i++)
                if (unit_is_generator_socket(units[i].name) && masked(&units[i])) {
                        add(b, UNIT_UNMASK, units[i].name);
                        b->generator_starts = true;
                }
        b->plan.ssh_unit = on ? on->name : NULL;
        b->plan.off_unit = on && off && exists(off) ? off->canonical : NULL;
        b->plan.socket_activation = want_socket;
        if (!on)
                return; /* no sshd unit on this node at all */

        /* Unmask every managed name first, so that enabling can recreate alias links. */
        for (size_t i = 0; i < n; i++)
                if (masked(&units[i]) && !unit_is_generator_socket(units[i].name))
                        add(b, UNIT_UNMASK, units[i].name);
        /* Every unit of the other kind goes, not only the one picked: a node can have two real sockets (or
         * services), e.g. ssh.socket and sshd.socket, and any of them left running or enabled would hold port
         * 22 beside the one started (found by fuzz-plan). The generator's sockets are not on port 22. */
        const char *off_suffix = endswith(on->name, ".socket") ? ".service" : ".socket";
        bool off_running = false;
        for (int pass = 0; pass < 2; pass++) /* stops first, then disables */
                for (size_t i = 0; i < n; i++) {
                        const UnitInfo *u = &units[i];
                        if (!endswith(u->name, off_suffix) || !exists(u) || unit_is_generator_socket(u->name))
                                continue;
                        if (pass == 0 && running(u)) {
                                add(b, UNIT_STOP, u->name);
                                off_running = true;
                        }
                        if (pass == 1 && is_enabled_state(u->file_state))
                                add(b, UNIT_DISABLE, u->canonical);
                }
        /* static/generated/transient units cannot be enabled: they run when something pulls them in. */
        bool changed = masked(on) || !(is_enabled_state(on->file_state) || streq(on->file_state, "static") || generated(on));
        if (changed)
                add(b, UNIT_ENABLE, on->canonical); /* enabling through an alias name fails (ELOOP) */
        if (changed || off_running)
                add(b, UNIT_START, on->name);
}

int unit_plan_build(Mode mode, const UnitInfo *units, size_t n, const ImageRecord *rec, UnitPlan *ret) {
        return unit_plan_build_gen(mode, units, n, rec, NULL, ret);
}

int unit_plan_build_gen(Mode mode, const UnitInfo *units, size_t n, const ImageRecord *rec, const GeneratorInfo *gen, UnitPlan *ret) {
        Builder b = {};

        if (mode == MODE_DISABLED)
                plan_disabled(&b, units, n, gen);
        else
                plan_open(&b, units, n, rec, gen);
        if (b.generator_starts)
                for (size_t i = 0; i < n; i++)
                        if (unit_is_generator_socket(units[i].name))
                                add(&b, UNIT_START, units[i].name); /* the executor skips names not generated */

        if (unit_plan_changes_files(&b.plan)) {
                /* daemon-reload after the file changes and before any start */
                size_t start_at = b.plan.n;
                for (size_t i = 0; i < b.plan.n; i++)
                        if (b.plan.actions[i].kind == UNIT_START) {
                                start_at = i;
                                break;
                        }
                add(&b, UNIT_RELOAD, NULL);
                if (!b.error && start_at < b.plan.n - 1) {
                        UnitAction reload = b.plan.actions[b.plan.n - 1];
                        memmove(b.plan.actions + start_at + 1, b.plan.actions + start_at, (b.plan.n - 1 - start_at) * sizeof reload);
                        b.plan.actions[start_at] = reload;
                }
        }
        if (b.error) {
                unit_plan_done(&b.plan);
                return b.error;
        }
        *ret = b.plan;
        return 0;
}

void unit_plan_done(UnitPlan *p) {
        free(p->actions);
        *p = (UnitPlan) {};
}
