/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the planning step (unit_plan_build) that turns (desired mode, the node's unit states, the
 * image record from the state file) into ordered unit actions. Only the public API of plan.h is used.
 *
 * Input bytes: mode, then for each of six unit names (ssh/sshd service and socket, two generator sockets):
 * present, file state, active state, alias (of ssh.service / ssh.socket); then the image record (recorded,
 * service, socket, service_enabled, socket_enabled). Every byte is taken modulo the size of its table, so
 * every input is a node the unit backends could report.
 * Properties (SPEC §4/§5):
 *   1. Disabled: no start, unmask or enable; every stop comes before the first mask;
 *   2. LocalUser/EntraId: no unmask after a start; when unit files change, a daemon-reload comes after the
 *      last file change and before the first start;
 *   3. never both a service and a port-22 socket (ssh.socket, sshd.socket) enabled or started by the plan;
 *      and never both left enabled or running among the units that are files of their own (not aliases)
 *      once the plan ran (FUZZ_PLAN_STRICT=0 turns that end-state check off);
 *   Disabled, too: once the plan ran, every unit that exists is masked and not running.
 *   4. every action names a unit of the input (or none, for daemon-reload), no action twice, and
 *      unit_plan_changes_files() says whether a file action is in the plan. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool strict;
static void dump(void);
#define FUZZ_SETUP() (strict = !(getenv("FUZZ_PLAN_STRICT") && streq(getenv("FUZZ_PLAN_STRICT"), "0")))
#define FUZZ_DUMP() dump()

#include "fs-util.h"
#include "fuzz-util.h"
#include "plan/plan.h"

/* What a failed property prints: the node and the plan, readable. */
static const UnitInfo *dump_units;
static size_t dump_n;
static const UnitPlan *dump_plan;
static Mode dump_mode;

static void dump(void) {
        fprintf(stderr, "mode %s\n", mode_to_string(dump_mode));
        for (size_t i = 0; i < dump_n; i++)
                fprintf(stderr, "  unit %s %s %s (-> %s)\n", dump_units[i].name, dump_units[i].file_state, dump_units[i].active_state,
                        dump_units[i].canonical);
        for (size_t i = 0; dump_plan && i < dump_plan->n; i++)
                fprintf(stderr, "  %s %s\n", unit_action_to_string(dump_plan->actions[i].kind), dump_plan->actions[i].unit ?: "");
}

static const char *const names[] = {
        "ssh.service", "sshd.service", "ssh.socket", "sshd.socket", "sshd-unix-local.socket", "sshd-vsock.socket",
};
static const char *const file_states[] = {
        "not-found", "enabled",   "disabled", "masked",          "masked-runtime", "static",   "alias",
        "generated", "transient", "linked",   "enabled-runtime", "linked-runtime", "indirect", "bad",
};
static const char *const active_states[] = { "active", "inactive", "activating", "reloading", "failed", "unknown" };

#define MAX_UNITS 6

static bool is_file_action(UnitActionKind k) {
        return k == UNIT_DISABLE || k == UNIT_MASK || k == UNIT_UNMASK || k == UNIT_ENABLE;
}

static bool is_masked(const char *fs) {
        return streq(fs, "masked") || streq(fs, "masked-runtime");
}

static bool is_running(const char *as) {
        return streq(as, "active") || streq(as, "activating") || streq(as, "reloading");
}

static bool names_unit(const UnitAction *a, const UnitInfo *u) {
        return a->unit && (streq(a->unit, u->name) || streq(a->unit, u->canonical));
}

/* What the plan leaves: per unit, the file state and active state (a small model of systemctl). */
static void simulate(const UnitPlan *p, const UnitInfo *units, size_t n, const char **fs, const char **as) {
        for (size_t i = 0; i < n; i++) {
                fs[i] = units[i].file_state;
                as[i] = units[i].active_state;
        }
        for (size_t k = 0; k < p->n; k++)
                for (size_t i = 0; i < n; i++) {
                        const UnitAction *a = &p->actions[k];
                        if (!names_unit(a, &units[i]) || streq(fs[i], "not-found"))
                                continue;
                        switch (a->kind) {
                        case UNIT_STOP: as[i] = "inactive"; break;
                        case UNIT_DISABLE:
                                if (is_enabled_state(fs[i]))
                                        fs[i] = "disabled";
                                break;
                        case UNIT_MASK: fs[i] = "masked"; break;
                        case UNIT_UNMASK:
                                if (is_masked(fs[i]))
                                        fs[i] = units[i].file_state[0] == 'm' ? "disabled" : units[i].file_state;
                                break;
                        case UNIT_ENABLE: fs[i] = "enabled"; break;
                        case UNIT_START: as[i] = "active"; break;
                        default: break;
                        }
                }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Input in = { data, size };
        UnitInfo units[MAX_UNITS];
        ImageRecord rec = {};
        UnitPlan plan = {};
        Mode mode = (Mode) take(&in, _MODE_MAX);
        size_t n = 0;

        /* Each name at most once (as node_query_units reports them); an alias resolves to a unit of its own
         * kind: ssh.service for a service, ssh.socket for a socket. */
        for (size_t ni = 0; ni < ELEMENTSOF(names); ni++) {
                if (!take(&in, 2))
                        continue;
                const char *fs = TAKE(&in, file_states);
                const char *as = TAKE(&in, active_states);
                const char *target = endswith(names[ni], ".service") ? names[0] : names[2];
                bool alias = take(&in, 2) || streq(fs, "alias");
                /* An alias name reports "alias" (or "masked", "not-found"); ssh.service/ssh.socket are the targets. */
                if (streq(target, names[ni]))
                        alias = false;
                if (alias && !is_masked(fs) && !streq(fs, "not-found"))
                        fs = "alias";
                if (!alias && streq(fs, "alias"))
                        fs = "disabled";
                units[n++] = (UnitInfo) {
                        .name = names[ni],
                        .file_state = fs,
                        .active_state = as,
                        .canonical = alias ? target : names[ni],
                };
        }
        rec.recorded = take(&in, 2);
        unsigned s = take(&in, ELEMENTSOF(names) + 1), k = take(&in, ELEMENTSOF(names) + 1);
        rec.service = s < ELEMENTSOF(names) ? (char *) names[s] : NULL;
        rec.socket = k < ELEMENTSOF(names) ? (char *) names[k] : NULL;
        rec.service_enabled = take(&in, 2);
        rec.socket_enabled = take(&in, 2);

        if (unit_plan_build(mode, units, n, &rec, &plan) < 0)
                return 0; /* out of memory */
        dump_units = units;
        dump_n = n;
        dump_plan = &plan;
        dump_mode = mode;

        ssize_t first_start = -1, first_mask = -1, last_stop = -1, last_file = -1;
        bool files = false;
        for (size_t i = 0; i < plan.n; i++) {
                const UnitAction *a = &plan.actions[i];

                /* 4. */
                ASSERT(a->kind >= 0 && a->kind < _UNIT_ACTION_MAX);
                if (a->kind == UNIT_RELOAD)
                        ASSERT(a->unit == NULL);
                else {
                        bool known = false;
                        for (size_t j = 0; j < n; j++)
                                known = known || streq(a->unit, units[j].name) || streq(a->unit, units[j].canonical);
                        ASSERT(known);
                }
                for (size_t j = 0; j < i; j++)
                        ASSERT(!(plan.actions[j].kind == a->kind &&
                                 (plan.actions[j].unit == a->unit ||
                                  (a->unit && plan.actions[j].unit && streq(plan.actions[j].unit, a->unit)))));
                if (a->kind == UNIT_START && first_start < 0)
                        first_start = (ssize_t) i;
                if (a->kind == UNIT_MASK && first_mask < 0)
                        first_mask = (ssize_t) i;
                if (a->kind == UNIT_STOP)
                        last_stop = (ssize_t) i;
                if (is_file_action(a->kind)) {
                        last_file = (ssize_t) i;
                        files = true;
                }
                /* 2. no unmask after a start */
                if (a->kind == UNIT_UNMASK)
                        ASSERT(first_start < 0);
        }
        ASSERT(unit_plan_changes_files(&plan) == files);

        if (mode == MODE_DISABLED) {
                /* 1. */
                for (size_t i = 0; i < plan.n; i++)
                        ASSERT(plan.actions[i].kind != UNIT_START && plan.actions[i].kind != UNIT_UNMASK &&
                               plan.actions[i].kind != UNIT_ENABLE);
                if (first_mask >= 0)
                        ASSERT(last_stop < first_mask);
        }
        if (files) {
                /* 2. a daemon-reload after the last file change, and before the first start */
                bool reload = false;
                for (ssize_t i = last_file + 1; i < (ssize_t) plan.n && (first_start < 0 || i < first_start); i++)
                        reload = reload || plan.actions[i].kind == UNIT_RELOAD;
                ASSERT(reload);
        }

        /* 3. */
        bool svc_on = false, sock_on = false;
        for (size_t i = 0; i < plan.n; i++) {
                const UnitAction *a = &plan.actions[i];
                if (a->kind != UNIT_ENABLE && a->kind != UNIT_START)
                        continue;
                svc_on = svc_on || endswith(a->unit, ".service");
                sock_on = sock_on || streq(a->unit, "ssh.socket") || streq(a->unit, "sshd.socket");
        }
        ASSERT(!(svc_on && sock_on));

        const char *fs[MAX_UNITS], *as[MAX_UNITS];
        simulate(&plan, units, n, fs, as);
        /* The end state over every port-22 unit. It found two plan.c bugs, both fixed: with two unit files of
         * one kind (ssh.socket and sshd.socket) only the picked one was stopped; and an image record naming a
         * unit of the wrong kind turned the plan around (corpus: regress-record-wrong-kind). */
        if (strict && mode != MODE_DISABLED && plan.n > 0) {
                bool svc = false, sock = false;
                for (size_t i = 0; i < n; i++) {
                        if (!streq(units[i].canonical, units[i].name) || streq(fs[i], "alias") || streq(fs[i], "not-found"))
                                continue;
                        bool on = is_enabled_state(fs[i]) || is_running(as[i]);
                        svc = svc || (on && endswith(units[i].name, ".service"));
                        /* port 22: ssh.socket / sshd.socket (the generator's sockets are AF_UNIX / AF_VSOCK) */
                        sock = sock || (on && (streq(units[i].name, "ssh.socket") || streq(units[i].name, "sshd.socket")));
                }
                ASSERT(!(svc && sock));
        }
        if (mode == MODE_DISABLED)
                for (size_t i = 0; i < n; i++)
                        if (!streq(units[i].file_state, "not-found"))
                                ASSERT(is_masked(fs[i]) && !is_running(as[i]));

        unit_plan_done(&plan);
        return 0;
}
