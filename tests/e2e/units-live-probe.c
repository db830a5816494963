/* SPDX-License-Identifier: MIT */
/* Drives the live unit backend (agent/apply/units-live.c) against a running systemd, one operation per
 * argument, so the end-to-end tests can check each D-Bus call (and run all of them under valgrind):
 *
 *   units-live-probe OP:UNIT... [reload]
 *   OP: file-state active-state resolve stop start mask unmask enable disable
 *
 * Prints "OP UNIT = RESULT" per operation (RESULT: the string, or the integer return value) and exits 1
 * if any operation failed (after running all of them). */
#include <stdio.h>

#include "apply/units.h"
#include "log.h"
#include "macro.h"

static int run_one(UnitBackend *b, const char *op, const char *unit) {
        _cleanup_free_ char *s = NULL;
        const UnitBackendVTable *v = b->vtable;
        int r;

        if (streq(op, "file-state"))
                r = v->get_file_state(b, unit, &s);
        else if (streq(op, "active-state"))
                r = v->get_active_state(b, unit, &s);
        else if (streq(op, "resolve"))
                r = v->resolve_name(b, unit, &s);
        else if (streq(op, "stop"))
                r = v->stop_no_block(b, unit);
        else if (streq(op, "start"))
                r = v->start_no_block(b, unit);
        else if (streq(op, "mask"))
                r = v->mask(b, unit);
        else if (streq(op, "unmask"))
                r = v->unmask(b, unit);
        else if (streq(op, "enable"))
                r = v->enable(b, unit);
        else if (streq(op, "disable"))
                r = v->disable(b, unit);
        else {
                fprintf(stderr, "unknown operation %s\n", op);
                return -EINVAL;
        }

        if (r >= 0 && s)
                printf("%s %s = %s\n", op, unit, s);
        else
                printf("%s %s = %d\n", op, unit, r);
        /* The backend does not log: its caller does, as the agent's executor would. */
        if (r < 0)
                log_error("Failed to %s %s: %s", op, unit, b->error[0] ? b->error : strerror(-r));
        fflush(stdout);
        return r;
}

int main(int argc, char *argv[]) {
        _cleanup_unit_backend_ UnitBackend *b = NULL;
        int r, failed = 0;

        log_open();
        log_set_max_level(LOG_DEBUG);

        r = unit_backend_new_live(&b);
        if (r < 0) {
                log_error_errno(r, "Failed to connect to systemd (private socket and system bus): %m");
                return 2;
        }

        for (int i = 1; i < argc; i++) {
                _cleanup_free_ char *op = strdup(argv[i]);
                char *unit;

                if (!op)
                        return 2;

                if (streq(op, "reload")) {
                        r = b->vtable->reload(b);
                        printf("reload = %d\n", r);
                        if (r < 0)
                                log_error("Failed to reload systemd: %s", b->error[0] ? b->error : strerror(-r));
                        fflush(stdout);
                } else {
                        unit = strchr(op, ':');
                        if (!unit) {
                                fprintf(stderr, "expected OP:UNIT, got %s\n", op);
                                return 2;
                        }
                        *unit++ = '\0';
                        r = run_one(b, op, unit);
                }
                if (r < 0)
                        failed = 1;
        }

        return failed;
}
