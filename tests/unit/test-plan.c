/* SPDX-License-Identifier: MIT */
/* The unit planner (SPEC §5): given the mode and the units as they are, the exact ordered action list. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "macro.h"
#include "plan/plan.h"
#include "unit.h"

/* Renders a plan as "stop ssh.service; mask ssh.service; daemon-reload" for exact comparison. */
static char *render(const UnitPlan *p) {
        size_t cap = 64 + p->n * 64, len = 0;
        char *s = malloc(cap);
        if (!s)
                abort();
        s[0] = '\0';
        for (size_t i = 0; i < p->n; i++)
                len += (size_t) snprintf(s + len, cap - len, "%s%s%s%s", i ? "; " : "", unit_action_to_string(p->actions[i].kind),
                                         p->actions[i].unit ? " " : "", p->actions[i].unit ?: "");
        return s;
}

static void check_plan(Mode mode, const UnitInfo *u, size_t n, const ImageRecord *rec, const char *want, const char *why) {
        UnitPlan p = {};
        _cleanup_free_ char *got = NULL;
        bool has_file_action = false;

        CHECK_INTEQ(unit_plan_build(mode, u, n, rec, &p), 0, why);
        got = render(&p);
        CHECK_STREQ(got, want, why);
        for (size_t i = 0; i < p.n; i++)
                has_file_action = has_file_action || p.actions[i].kind == UNIT_MASK || p.actions[i].kind == UNIT_UNMASK ||
                        p.actions[i].kind == UNIT_ENABLE || p.actions[i].kind == UNIT_DISABLE;
        CHECK(unit_plan_changes_files(&p) == has_file_action, "changes_files matches the actions");
        CHECK(unit_plan_changes_files(&p) == (strstr(want, "daemon-reload") != NULL), "daemon-reload exactly when files change");
        for (size_t i = 0; i < p.n; i++)
                CHECK((p.actions[i].kind == UNIT_RELOAD) == (p.actions[i].unit == NULL), "only daemon-reload has no unit");
        unit_plan_done(&p);
        CHECK(p.actions == NULL && p.n == 0, "unit_plan_done clears");
}

/* Builds the plan and returns ssh_unit/socket_activation (for LocalUser). */
static void check_target(Mode mode, const UnitInfo *u, size_t n, const ImageRecord *rec, const char *want_unit, bool want_socket,
                         const char *why) {
        UnitPlan p = {};
        CHECK_INTEQ(unit_plan_build(mode, u, n, rec, &p), 0, why);
        if (want_unit)
                CHECK_STREQ(p.ssh_unit, want_unit, why);
        else
                CHECK(p.ssh_unit == NULL, why);
        CHECK(p.socket_activation == want_socket, why);
        unit_plan_done(&p);
}

/* ---- Debian / Ubuntu: ssh.service (+ sshd.service alias), ssh.socket ------------------------------------- */

static const UnitInfo debian_default[] = {
        { "ssh.service", "enabled", "inactive", "ssh.service" },
        { "sshd.service", "alias", "inactive", "ssh.service" },
        { "ssh.socket", "disabled", "inactive", "ssh.socket" },
        { "sshd.socket", "not-found", "inactive", "sshd.socket" },
};

/* debian (running) and debian_masked: fixtures.h */

static const UnitInfo debian_masked_active[] = {
        { "ssh.service", "masked", "active", "ssh.service" },
        { "sshd.service", "masked", "inactive", "sshd.service" },
        { "ssh.socket", "masked", "inactive", "ssh.socket" },
        { "sshd.socket", "not-found", "inactive", "sshd.socket" },
};

static const UnitInfo debian_socket_on[] = {
        { "ssh.service", "disabled", "inactive", "ssh.service" },
        { "sshd.service", "not-found", "inactive", "sshd.service" },
        { "ssh.socket", "enabled", "active", "ssh.socket" },
        { "sshd.socket", "not-found", "inactive", "sshd.socket" },
};

static const ImageRecord rec_service = { .recorded = true,
                                         .service = (char *) "ssh.service",
                                         .socket = (char *) "ssh.socket",
                                         .service_enabled = true,
                                         .socket_enabled = false };
static const ImageRecord rec_socket = { .recorded = true,
                                        .service = (char *) "ssh.service",
                                        .socket = (char *) "ssh.socket",
                                        .service_enabled = false,
                                        .socket_enabled = true };

static void test_disabled(void) {
        check_plan(MODE_DISABLED, debian_default, ELEMENTSOF(debian_default), NULL,
                   "stop ssh.service; stop sshd.service; stop ssh.socket; disable ssh.service; "
                   "mask ssh.service; mask sshd.service; mask ssh.socket; daemon-reload",
                   "Disabled from Debian default");
        check_plan(MODE_DISABLED, debian, ELEMENTSOF(debian), &rec_service,
                   "stop ssh.service; stop sshd.service; stop ssh.socket; disable ssh.service; "
                   "mask ssh.service; mask sshd.service; mask ssh.socket; daemon-reload",
                   "Disabled from Debian running (a record changes nothing)");
        check_plan(MODE_DISABLED, debian_masked, ELEMENTSOF(debian_masked), NULL, "", "Disabled already masked and inactive: in sync");
        check_plan(MODE_DISABLED, debian_masked_active, ELEMENTSOF(debian_masked_active), NULL, "stop ssh.service",
                   "Disabled, masked but still running: stop only");
        check_plan(MODE_DISABLED, debian_socket_on, ELEMENTSOF(debian_socket_on), NULL,
                   "stop ssh.service; stop ssh.socket; disable ssh.socket; mask ssh.service; mask ssh.socket; daemon-reload",
                   "Disabled from socket activation");
        check_plan(MODE_DISABLED, NULL, 0, NULL, "", "Disabled with no sshd units at all");
        {
                /* masked-runtime counts as masked; activating counts as running */
                static const UnitInfo u[] = {
                        { "ssh.service", "masked-runtime", "activating", "ssh.service" },
                        { "ssh.socket", "not-found", "inactive", "ssh.socket" },
                };
                check_plan(MODE_DISABLED, u, ELEMENTSOF(u), NULL, "stop ssh.service", "masked-runtime but activating");
        }
        {
                /* a static unit cannot be disabled, only masked */
                static const UnitInfo u[] = {
                        { "ssh.service", "static", "inactive", "ssh.service" },
                };
                check_plan(MODE_DISABLED, u, ELEMENTSOF(u), NULL, "stop ssh.service; mask ssh.service; daemon-reload", "static service");
        }
}

static void test_localuser(void) {
        check_plan(MODE_LOCALUSER, debian_masked, ELEMENTSOF(debian_masked), &rec_service,
                   "unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.service; daemon-reload; start ssh.service",
                   "LocalUser from all-masked, image had the service");
        check_target(MODE_LOCALUSER, debian_masked, ELEMENTSOF(debian_masked), &rec_service, "ssh.service", false, "service serves 22");

        check_plan(MODE_LOCALUSER, debian_masked, ELEMENTSOF(debian_masked), &rec_socket,
                   "unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.socket; daemon-reload; start ssh.socket",
                   "LocalUser from all-masked, image had socket activation (service stays disabled)");
        check_target(MODE_LOCALUSER, debian_masked, ELEMENTSOF(debian_masked), &rec_socket, "ssh.socket", true, "socket serves 22");

        /* no record (first run on a node someone else masked): the service */
        check_plan(MODE_LOCALUSER, debian_masked, ELEMENTSOF(debian_masked), NULL,
                   "unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.service; daemon-reload; start ssh.service",
                   "LocalUser from all-masked without record");
        {
                ImageRecord none = { .recorded = false };
                check_plan(
                        MODE_LOCALUSER, debian_masked, ELEMENTSOF(debian_masked), &none,
                        "unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.service; daemon-reload; start ssh.service",
                        "LocalUser from all-masked, record not taken");
        }
        check_plan(MODE_ENTRAID, debian_masked, ELEMENTSOF(debian_masked), &rec_service,
                   "unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.service; daemon-reload; start ssh.service",
                   "EntraId opens sshd like LocalUser");

        /* in sync */
        check_plan(MODE_LOCALUSER, debian_default, ELEMENTSOF(debian_default), &rec_service, "", "LocalUser on Debian default: in sync");
        check_plan(MODE_LOCALUSER, debian, ELEMENTSOF(debian), &rec_service, "", "LocalUser, running: in sync");
        check_plan(MODE_LOCALUSER, debian_default, ELEMENTSOF(debian_default), NULL, "", "LocalUser on Debian default, no record: in sync");
        check_target(MODE_LOCALUSER, debian_default, ELEMENTSOF(debian_default), NULL, "ssh.service", false, "in sync: service");
        check_plan(MODE_LOCALUSER, debian_socket_on, ELEMENTSOF(debian_socket_on), &rec_socket, "", "socket activation in sync");

        /* the record says service, the node runs the socket: switch back */
        check_plan(MODE_LOCALUSER, debian_socket_on, ELEMENTSOF(debian_socket_on), &rec_service,
                   "stop ssh.socket; disable ssh.socket; enable ssh.service; daemon-reload; start ssh.service",
                   "socket → service as the image had it");
        /* the service is still enabled but someone switched to the socket: only the socket goes, the service
         * is started without touching its enablement */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "enabled", "inactive", "ssh.service" },
                        { "sshd.service", "alias", "inactive", "ssh.service" },
                        { "ssh.socket", "enabled", "active", "ssh.socket" },
                };
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), &rec_service,
                           "stop ssh.socket; disable ssh.socket; daemon-reload; start ssh.service", "enabled service, running socket");
        }
        /* the socket runs (not enabled), the service is enabled: stop the socket, start the service, no file change */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "enabled", "inactive", "ssh.service" },
                        { "ssh.socket", "disabled", "active", "ssh.socket" },
                };
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), &rec_service, "stop ssh.socket; start ssh.service",
                           "running but disabled socket");
        }
        /* Two real sockets, both masked, one of them still active (fuzz-plan's counterexample): LocalUser in
         * service mode must stop and leave disabled every socket, not only the one it picked. */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "enabled", "active", "ssh.service" },
                        { "sshd.service", "enabled", "inactive", "sshd.service" },
                        { "ssh.socket", "masked", "inactive", "ssh.socket" },
                        { "sshd.socket", "masked", "active", "sshd.socket" },
                };
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), &rec_service,
                           "unmask ssh.socket; unmask sshd.socket; stop sshd.socket; daemon-reload; start ssh.service",
                           "every socket stopped in service mode, not only the picked one");
        }
        /* Two real enabled sockets in socket mode ... and socket mode with two enabled services: both go. */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "enabled", "inactive", "ssh.service" },
                        { "sshd.service", "enabled", "active", "sshd.service" },
                        { "ssh.socket", "disabled", "inactive", "ssh.socket" },
                };
                check_plan(
                        MODE_LOCALUSER, u, ELEMENTSOF(u), &rec_socket,
                        "stop sshd.service; disable ssh.service; disable sshd.service; enable ssh.socket; daemon-reload; start ssh.socket",
                        "socket mode: every real service stopped and disabled");
        }
        /* A record naming units of the wrong kind (a hand-edited state.json) is not trusted: before the fix the
         * "socket" ssh.service was started as the port-22 unit and the running ssh.socket left up beside it. */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "masked", "inactive", "ssh.service" },
                        { "ssh.socket", "disabled", "active", "ssh.socket" },
                };
                static const ImageRecord swapped = {
                        .recorded = true, .service = (char *) "ssh.socket", .socket = (char *) "ssh.service", .service_enabled = true
                };
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), &swapped,
                           "unmask ssh.service; stop ssh.socket; enable ssh.service; daemon-reload; start ssh.service",
                           "a record of the wrong kinds is ignored");
        }
        /* the alias listed before its target: the real unit is the one enabled and started */
        {
                static const UnitInfo u[] = {
                        { "sshd.service", "masked", "inactive", "sshd.service" },
                        { "ssh.service", "masked", "inactive", "ssh.service" },
                };
                static const UnitInfo v[] = {
                        { "sshd.service", "alias", "inactive", "ssh.service" },
                        { "ssh.service", "enabled", "inactive", "ssh.service" },
                };
                ImageRecord r = {};
                unit_plan_image_record(v, ELEMENTSOF(v), &r);
                CHECK_STREQ(r.service, "ssh.service", "alias first: the record names the real unit");
                CHECK(r.service_enabled, "alias first: enabled");
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), &r,
                           "unmask sshd.service; unmask ssh.service; enable ssh.service; daemon-reload; start ssh.service",
                           "alias first: restore the real unit");
                image_record_done(&r);
        }
        /* at boot, before sshd: enabled and not yet started; systemd starts it, the plan must not */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "enabled", "inactive", "ssh.service" },
                        { "ssh.socket", "disabled", "inactive", "ssh.socket" },
                };
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), &rec_service, "", "enabled service: no action");
        }
        /* the service disabled (not masked) by someone: enable and start */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "disabled", "inactive", "ssh.service" },
                        { "sshd.service", "not-found", "inactive", "sshd.service" },
                        { "ssh.socket", "disabled", "inactive", "ssh.socket" },
                };
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), &rec_service, "enable ssh.service; daemon-reload; start ssh.service",
                           "disabled service");
        }
        /* only a socket unit exists at all */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "not-found", "inactive", "ssh.service" },
                        { "ssh.socket", "masked", "inactive", "ssh.socket" },
                };
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), NULL, "unmask ssh.socket; enable ssh.socket; daemon-reload; start ssh.socket",
                           "socket only");
                check_target(MODE_LOCALUSER, u, ELEMENTSOF(u), NULL, "ssh.socket", true, "socket only: socket serves 22");
        }
        /* no sshd unit on the node at all: nothing to do */
        {
                static const UnitInfo u[] = {
                        { "ssh.service", "not-found", "inactive", "ssh.service" },
                        { "ssh.socket", "not-found", "inactive", "ssh.socket" },
                };
                check_plan(MODE_LOCALUSER, u, ELEMENTSOF(u), &rec_service, "", "no sshd at all");
                check_target(MODE_LOCALUSER, u, ELEMENTSOF(u), &rec_service, NULL, false, "no sshd at all: no unit");
        }
}

/* ---- Azure Linux / RHEL naming: sshd.service is the real unit, no ssh.service ------------------------------ */

static void test_azure_linux(void) {
        static const UnitInfo def[] = {
                { "ssh.service", "not-found", "inactive", "ssh.service" },
                { "sshd.service", "enabled", "active", "sshd.service" },
                { "ssh.socket", "not-found", "inactive", "ssh.socket" },
                { "sshd.socket", "disabled", "inactive", "sshd.socket" },
        };
        static const UnitInfo masked[] = {
                { "ssh.service", "not-found", "inactive", "ssh.service" },
                { "sshd.service", "masked", "inactive", "sshd.service" },
                { "ssh.socket", "not-found", "inactive", "ssh.socket" },
                { "sshd.socket", "masked", "inactive", "sshd.socket" },
        };
        ImageRecord rec = {};

        check_plan(MODE_DISABLED, def, ELEMENTSOF(def), NULL,
                   "stop sshd.service; stop sshd.socket; disable sshd.service; mask sshd.service; mask sshd.socket; daemon-reload",
                   "Azure Linux: Disabled");
        check_plan(MODE_DISABLED, masked, ELEMENTSOF(masked), NULL, "", "Azure Linux: Disabled in sync");

        unit_plan_image_record(def, ELEMENTSOF(def), &rec);
        CHECK(rec.recorded, "record taken");
        CHECK_STREQ(rec.service, "sshd.service", "Azure Linux record: service");
        CHECK_STREQ(rec.socket, "sshd.socket", "Azure Linux record: socket");
        CHECK(rec.service_enabled, "Azure Linux record: service enabled");
        CHECK(!rec.socket_enabled, "Azure Linux record: socket disabled");

        check_plan(MODE_LOCALUSER, masked, ELEMENTSOF(masked), &rec,
                   "unmask sshd.service; unmask sshd.socket; enable sshd.service; daemon-reload; start sshd.service",
                   "Azure Linux: LocalUser from masked with record");
        check_plan(MODE_LOCALUSER, masked, ELEMENTSOF(masked), NULL,
                   "unmask sshd.service; unmask sshd.socket; enable sshd.service; daemon-reload; start sshd.service",
                   "Azure Linux: LocalUser from masked without record");
        check_plan(MODE_LOCALUSER, def, ELEMENTSOF(def), &rec, "", "Azure Linux: LocalUser in sync");
        check_target(MODE_LOCALUSER, def, ELEMENTSOF(def), &rec, "sshd.service", false, "Azure Linux: sshd.service serves 22");
        image_record_done(&rec);
}

static void test_image_record(void) {
        ImageRecord rec = {};

        unit_plan_image_record(debian_default, ELEMENTSOF(debian_default), &rec);
        CHECK(rec.recorded, "Debian record taken");
        CHECK_STREQ(rec.service, "ssh.service", "Debian record: the real unit, not the alias");
        CHECK_STREQ(rec.socket, "ssh.socket", "Debian record: socket");
        CHECK(rec.service_enabled, "Debian record: service enabled");
        CHECK(!rec.socket_enabled, "Debian record: socket disabled");
        image_record_done(&rec);
        CHECK(rec.service == NULL && !rec.recorded, "image_record_done clears");

        unit_plan_image_record(debian_socket_on, ELEMENTSOF(debian_socket_on), &rec);
        CHECK_STREQ(rec.service, "ssh.service", "socket image: service");
        CHECK_STREQ(rec.socket, "ssh.socket", "socket image: socket");
        CHECK(!rec.service_enabled, "socket image: service disabled");
        CHECK(rec.socket_enabled, "socket image: socket enabled");
        image_record_done(&rec);

        /* a record taken from this node brings it back exactly as it was */
        unit_plan_image_record(debian_socket_on, ELEMENTSOF(debian_socket_on), &rec);
        check_plan(MODE_LOCALUSER, debian_masked, ELEMENTSOF(debian_masked), &rec,
                   "unmask ssh.service; unmask sshd.service; unmask ssh.socket; enable ssh.socket; daemon-reload; start ssh.socket",
                   "record of a socket image restores the socket");
        image_record_done(&rec);

        {
                static const UnitInfo none[] = {
                        { "ssh.service", "not-found", "inactive", "ssh.service" },
                        { "ssh.socket", "not-found", "inactive", "ssh.socket" },
                };
                unit_plan_image_record(none, ELEMENTSOF(none), &rec);
                CHECK(rec.recorded, "record taken even with no sshd");
                CHECK(rec.service == NULL && rec.socket == NULL, "no units recorded");
                CHECK(!rec.service_enabled && !rec.socket_enabled, "nothing enabled");
                image_record_done(&rec);
        }
        {
                /* only the alias name configured (units = sshd.service): the record keeps the configured
                 * name (the planner looks units up by it; enabling an alias name enables its target), and
                 * an alias link exists only while its target is enabled */
                static const UnitInfo alias_only[] = {
                        { "sshd.service", "alias", "active", "ssh.service" },
                };
                unit_plan_image_record(alias_only, ELEMENTSOF(alias_only), &rec);
                CHECK_STREQ(rec.service, "sshd.service", "alias only: the configured name recorded");
                CHECK(rec.service_enabled, "alias only: the aliased service is enabled");
                /* and LocalUser on that node is already in sync: nothing to do */
                UnitPlan p = {};
                CHECK_INTEQ(unit_plan_build(MODE_LOCALUSER, alias_only, ELEMENTSOF(alias_only), &rec, &p), 0, "plan");
                CHECK_INTEQ(p.n, 0, "alias only: LocalUser in sync");
                CHECK_STREQ(p.ssh_unit, "sshd.service", "alias only: the unit serving port 22");
                unit_plan_done(&p);
                image_record_done(&rec);
        }

        CHECK_STREQ(unit_action_to_string(UNIT_STOP), "stop", "action name");
        CHECK_STREQ(unit_action_to_string(UNIT_RELOAD), "daemon-reload", "action name");
        CHECK_STREQ(unit_action_to_string(_UNIT_ACTION_MAX), "?", "out of range");
}

/* A unit whose state could not be read ("bad"): Disabled stops and masks it with the others; LocalUser never
 * picks it (not for port 22, not for the image record) and leaves it alone. */
static void test_broken(void) {
        static const UnitInfo socket_image[] = {
                { "ssh.service", "disabled", "inactive", "ssh.service" },
                { "sshd.service", "not-found", "inactive", "sshd.service" },
                { "ssh.socket", "enabled", "inactive", "ssh.socket" },
                { "sshd.socket", "bad", "unknown", "sshd.socket" },
        };
        static const UnitInfo broken_first[] = {
                { "ssh.socket", "bad", "unknown", "ssh.socket" },
                { "sshd.socket", "disabled", "inactive", "sshd.socket" },
                { "sshd.service", "masked", "inactive", "sshd.service" },
        };
        ImageRecord rec = {};

        check_plan(MODE_DISABLED, socket_image, ELEMENTSOF(socket_image), NULL,
                   "stop ssh.service; stop ssh.socket; stop sshd.socket; disable ssh.socket; "
                   "mask ssh.service; mask ssh.socket; mask sshd.socket; daemon-reload",
                   "Disabled with a broken sshd.socket: every unit, the broken one too");
        unit_plan_image_record(socket_image, ELEMENTSOF(socket_image), &rec);
        CHECK_STREQ(rec.socket, "ssh.socket", "record: the readable socket, not the broken one");
        CHECK(rec.socket_enabled && !rec.service_enabled, "record: socket activation");
        image_record_done(&rec);
        check_plan(MODE_LOCALUSER, socket_image, ELEMENTSOF(socket_image), NULL,
                   "disable ssh.socket; enable ssh.service; daemon-reload; start ssh.service",
                   "LocalUser without record: the service, the broken socket left alone");

        unit_plan_image_record(broken_first, ELEMENTSOF(broken_first), &rec);
        CHECK_STREQ(rec.socket, "sshd.socket", "record skips a broken unit listed first");
        image_record_done(&rec);
        {
                ImageRecord r = {
                        .recorded = true, .service = (char *) "sshd.service", .socket = (char *) "ssh.socket", .socket_enabled = true
                };
                check_plan(MODE_LOCALUSER, broken_first, ELEMENTSOF(broken_first), &r,
                           "unmask sshd.service; enable sshd.socket; daemon-reload; start sshd.socket",
                           "recorded socket broken now: the other socket serves port 22");
        }
        check_plan(MODE_DISABLED, broken_first, ELEMENTSOF(broken_first), NULL,
                   "stop ssh.socket; stop sshd.socket; mask ssh.socket; mask sshd.socket; daemon-reload",
                   "Disabled: a broken unit is stopped and masked, never disabled");
}

static void check_plan_gen(Mode mode, const UnitInfo *u, size_t n, const ImageRecord *rec, const GeneratorInfo *gen, const char *want,
                           const char *why) {
        UnitPlan p = {};
        _cleanup_free_ char *got = NULL;

        CHECK_INTEQ(unit_plan_build_gen(mode, u, n, rec, gen, &p), 0, why);
        got = render(&p);
        CHECK_STREQ(got, want, why);
        CHECK(unit_plan_changes_files(&p) == (strstr(want, "daemon-reload") != NULL), "daemon-reload exactly when files change");
        unit_plan_done(&p);
}

/* systemd's ssh generator: its sockets masked even before they exist, the generator masked; LocalUser
 * removes only the agent's own generator mask and starts the generator's sockets after the reload. */
static void test_generator(void) {
        static const UnitInfo fresh[] = {
                { "ssh.service", "enabled", "inactive", "ssh.service" },
                { "ssh.socket", "disabled", "inactive", "ssh.socket" },
                { "sshd-unix-local.socket", "generated", "active", "sshd-unix-local.socket" },
                { "sshd-vsock.socket", "not-found", "inactive", "sshd-vsock.socket" },
        };
        static const UnitInfo masked[] = {
                { "ssh.service", "masked", "inactive", "ssh.service" },
                { "ssh.socket", "masked", "inactive", "ssh.socket" },
                { "sshd-unix-local.socket", "masked", "inactive", "sshd-unix-local.socket" },
                { "sshd-vsock.socket", "masked", "inactive", "sshd-vsock.socket" },
        };
        static const UnitInfo open_gen[] = {
                { "ssh.service", "enabled", "inactive", "ssh.service" },
                { "ssh.socket", "disabled", "inactive", "ssh.socket" },
                { "sshd-unix-local.socket", "generated", "active", "sshd-unix-local.socket" },
        };
        const GeneratorInfo present = { .present = true }, ours = { .present = true, .masked = true, .ours = true },
                            theirs = { .present = true, .masked = true }, absent = {};

        check_plan_gen(MODE_DISABLED, fresh, ELEMENTSOF(fresh), NULL, &present,
                       "stop ssh.service; stop ssh.socket; stop sshd-unix-local.socket; disable ssh.service; mask ssh.service; "
                       "mask ssh.socket; mask sshd-unix-local.socket; mask sshd-vsock.socket; "
                       "mask-generator systemd-ssh-generator; daemon-reload",
                       "Disabled with the generator: its sockets (existing or not) and the generator masked");
        check_plan_gen(MODE_DISABLED, fresh, ELEMENTSOF(fresh), NULL, &absent,
                       "stop ssh.service; stop ssh.socket; stop sshd-unix-local.socket; disable ssh.service; mask ssh.service; "
                       "mask ssh.socket; mask sshd-unix-local.socket; daemon-reload",
                       "Disabled without the generator binary: no generator mask, absent names left");
        check_plan_gen(MODE_DISABLED, masked, ELEMENTSOF(masked), NULL, &ours, "", "Disabled with the generator: in sync");
        check_plan_gen(MODE_LOCALUSER, masked, ELEMENTSOF(masked), &rec_service, &ours,
                       "unmask-generator systemd-ssh-generator; unmask sshd-unix-local.socket; unmask sshd-vsock.socket; "
                       "unmask ssh.service; unmask ssh.socket; enable ssh.service; daemon-reload; "
                       "start ssh.service; start sshd-unix-local.socket; start sshd-vsock.socket",
                       "LocalUser: the agent's generator mask removed, the generator's sockets back");
        check_plan_gen(MODE_LOCALUSER, masked, ELEMENTSOF(masked), &rec_service, &theirs,
                       "unmask sshd-unix-local.socket; unmask sshd-vsock.socket; unmask ssh.service; unmask ssh.socket; "
                       "enable ssh.service; daemon-reload; start ssh.service; start sshd-unix-local.socket; start sshd-vsock.socket",
                       "LocalUser: an image builder's generator mask is never removed");
        check_plan_gen(MODE_LOCALUSER, open_gen, ELEMENTSOF(open_gen), &rec_service, &present, "", "LocalUser with the generator: in sync");
        {
                /* a generator socket is never the one picked to serve port 22 */
                static const UnitInfo only_gen[] = {
                        { "ssh.service", "masked", "inactive", "ssh.service" },
                        { "sshd-unix-local.socket", "generated", "inactive", "sshd-unix-local.socket" },
                };
                ImageRecord r = {};
                unit_plan_image_record(only_gen, ELEMENTSOF(only_gen), &r);
                CHECK(r.socket == NULL, "a generator socket is not the image's socket");
                image_record_done(&r);
        }
        CHECK(unit_is_generator_socket("sshd-extra-2.socket"), "sshd-extra-N");
        CHECK(!unit_is_generator_socket("sshd-extra-0.socket"), "N >= 1");
        CHECK(!unit_is_generator_socket("sshd.socket"), "the configured socket");
        CHECK(!unit_is_generator_socket("sshd-extra-2x.socket"), "digits only");
}

int main(void) {
        test_generator();
        test_broken();
        test_disabled();
        test_localuser();
        test_azure_linux();
        test_image_record();
        return unit_finish();
}
