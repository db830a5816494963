/* SPDX-License-Identifier: MIT */
/* Live unit backend: org.freedesktop.systemd1.Manager over sd-bus.
 *
 * We run early in boot, ordered before sshd and possibly before dbus-daemon, so we talk to PID 1 on its
 * private socket (/run/systemd/private, root only, no bus daemon in between) and fall back to the system
 * bus only when that fails. Jobs are enqueued with mode "replace" and never waited for: sshd's start job
 * is ordered after us, so waiting for it from inside our own start job would deadlock the boot. */

#include <errno.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "apply/units.h"
#include "log.h"
#include "macro.h"

#define SYSTEMD_PRIVATE_ADDRESS "unix:path=/run/systemd/private"
#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"
#define SYSTEMD_UNIT "org.freedesktop.systemd1.Unit"

#define BUS_ERROR_NO_SUCH_UNIT "org.freedesktop.systemd1.NoSuchUnit"
#define BUS_ERROR_LOAD_FAILED "org.freedesktop.systemd1.LoadFailed"

/* daemon-reload on a busy node can take a while; a plain method call is answered within milliseconds. */
#define METHOD_TIMEOUT_USEC (60ULL * 1000000ULL)
#define RELOAD_TIMEOUT_USEC (180ULL * 1000000ULL)

typedef struct LiveBackend {
        UnitBackend base;
        sd_bus *bus;
} LiveBackend;

static LiveBackend *live(UnitBackend *b) {
        return (LiveBackend *) b;
}

/* "Failed to mask ssh.service: Unit file ... (org.freedesktop.DBus.Error.FileExists)" */
static int log_bus_error(int r, const sd_bus_error *error, const char *what, const char *unit) {
        if (error && sd_bus_error_is_set(error))
                return log_error_errno(r, "Failed to %s%s%s: %s (%s)", what, unit ? " " : "", unit ?: "",
                                       error->message ?: "no message", error->name);

        return log_error_errno(r, "Failed to %s%s%s: %m", what, unit ? " " : "", unit ?: "");
}

static bool error_is_no_unit(const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error))
                return sd_bus_error_has_names(error, BUS_ERROR_NO_SUCH_UNIT, SD_BUS_ERROR_FILE_NOT_FOUND);
        return r == -ENOENT;
}

static int live_get_file_state(UnitBackend *b, const char *unit, char **ret_state) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *state;
        char *s;
        int r;

        r = sd_bus_call_method(live(b)->bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "GetUnitFileState",
                               &error, &reply, "s", unit);
        if (r < 0) {
                if (error_is_no_unit(&error, r)) {
                        s = strdup("not-found");
                        if (!s)
                                return log_oom();
                        *ret_state = s;
                        return 0;
                }
                return log_bus_error(r, &error, "get unit file state of", unit);
        }

        r = sd_bus_message_read(reply, "s", &state);
        if (r < 0)
                return log_error_errno(r, "Failed to parse unit file state of %s: %m", unit);

        s = strdup(state);
        if (!s)
                return log_oom();

        *ret_state = s;
        return 0;
}

/* The object path of a loaded unit, or NULL (returns 0) if systemd has not loaded it. */
static int live_get_unit_path(LiveBackend *lb, const char *unit, bool load, char **ret_path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        char *p;
        int r;

        r = sd_bus_call_method(lb->bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, load ? "LoadUnit" : "GetUnit",
                               &error, &reply, "s", unit);
        if (r < 0) {
                if (!load && sd_bus_error_has_name(&error, BUS_ERROR_NO_SUCH_UNIT)) {
                        *ret_path = NULL;
                        return 0;
                }
                if (load && sd_bus_error_has_names(&error, BUS_ERROR_NO_SUCH_UNIT, BUS_ERROR_LOAD_FAILED)) {
                        log_debug("Unit %s cannot be loaded: %s (%s)", unit, error.message ?: "", error.name);
                        return -ENOENT;
                }
                return log_bus_error(r, &error, load ? "load unit" : "look up unit", unit);
        }

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return log_error_errno(r, "Failed to parse object path of %s: %m", unit);

        p = strdup(path);
        if (!p)
                return log_oom();

        *ret_path = p;
        return 0;
}

static int live_get_unit_property(LiveBackend *lb, const char *unit, const char *path, const char *property,
                                  char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_string(lb->bus, SYSTEMD_DEST, path, SYSTEMD_UNIT, property, &error, ret);
        if (r < 0) {
                _cleanup_free_ char *what = NULL;

                if (asprintf(&what, "read property %s of", property) < 0)
                        return log_oom();
                return log_bus_error(r, &error, what, unit);
        }

        return 0;
}

static int live_get_active_state(UnitBackend *b, const char *unit, char **ret_state) {
        _cleanup_free_ char *path = NULL;
        char *s;
        int r;

        /* GetUnit, not LoadUnit: a unit systemd has not loaded is inactive, no need to load it to say so. */
        r = live_get_unit_path(live(b), unit, /* load= */ false, &path);
        if (r < 0)
                return r;
        if (!path) {
                s = strdup("inactive");
                if (!s)
                        return log_oom();
                *ret_state = s;
                return 0;
        }

        return live_get_unit_property(live(b), unit, path, "ActiveState", ret_state);
}

static int live_resolve_name(UnitBackend *b, const char *unit, char **ret_name) {
        _cleanup_free_ char *path = NULL, *load_state = NULL, *id = NULL;
        int r;

        /* LoadUnit follows aliases: the object it returns is the unit the alias points to, and its Id is
         * that unit's primary name (sshd.service -> ssh.service on Debian). */
        r = live_get_unit_path(live(b), unit, /* load= */ true, &path);
        if (r < 0)
                return r;

        r = live_get_unit_property(live(b), unit, path, "LoadState", &load_state);
        if (r < 0)
                return r;
        if (streq(load_state, "not-found"))
                return -ENOENT;

        r = live_get_unit_property(live(b), unit, path, "Id", &id);
        if (r < 0)
                return r;

        *ret_name = TAKE_PTR(id);
        return 0;
}

static int live_job(LiveBackend *lb, const char *method, const char *unit) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *job;
        int r;

        r = sd_bus_call_method(lb->bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, method, &error, &reply, "ss",
                               unit, "replace");
        if (r < 0)
                return log_bus_error(r, &error, streq(method, "StartUnit") ? "start" : "stop", unit);

        /* Only for the log: the job is enqueued, we deliberately do not wait for it. */
        r = sd_bus_message_read(reply, "o", &job);
        if (r < 0)
                return log_error_errno(r, "Failed to parse job path for %s: %m", unit);

        log_debug("Enqueued %s of %s as %s (not waiting).", method, unit, job);
        return 0;
}

static int live_stop_no_block(UnitBackend *b, const char *unit) {
        return live_job(live(b), "StopUnit", unit);
}

static int live_start_no_block(UnitBackend *b, const char *unit) {
        return live_job(live(b), "StartUnit", unit);
}

/* Reads the a(sss) {type, file, source} array of unit-file changes; returns how many entries it had. */
static int read_changes(sd_bus_message *reply, const char *what, const char *unit) {
        const char *type, *file, *source;
        int r, n = 0;

        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "(sss)");
        if (r < 0)
                return log_error_errno(r, "Failed to parse changes of %s %s: %m", what, unit);

        for (;;) {
                r = sd_bus_message_read(reply, "(sss)", &type, &file, &source);
                if (r < 0)
                        return log_error_errno(r, "Failed to parse changes of %s %s: %m", what, unit);
                if (r == 0)
                        break;

                log_debug("%s %s: %s %s%s%s", what, unit, type, file, *source ? " -> " : "", source);
                n++;
        }

        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return log_error_errno(r, "Failed to parse changes of %s %s: %m", what, unit);

        return n;
}

/* Calls one of the *UnitFiles methods for a single unit: signature as (+ runtime b) (+ force b).
 * force (only with with_force) lets systemd replace a symlink in the way, never a file or directory. */
static int live_unit_files(LiveBackend *lb, const char *method, const char *what, const char *unit, bool with_force,
                           bool force) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(lb->bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, method);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s message for %s: %m", method, unit);

        r = sd_bus_message_append(m, "as", 1, unit);
        if (r >= 0)
                r = sd_bus_message_append(m, "b", 0); /* runtime = false: persistent, like plain systemctl */
        if (r >= 0 && with_force)
                r = sd_bus_message_append(m, "b", (int) force);
        if (r < 0)
                return log_error_errno(r, "Failed to build %s message for %s: %m", method, unit);

        r = sd_bus_call(lb->bus, m, METHOD_TIMEOUT_USEC, &error, &reply);
        if (r < 0)
                return log_bus_error(r, &error, what, unit);

        if (streq(method, "EnableUnitFiles")) {
                int carries_install_info;

                r = sd_bus_message_read(reply, "b", &carries_install_info);
                if (r < 0)
                        return log_error_errno(r, "Failed to parse reply of %s %s: %m", what, unit);
        }

        r = read_changes(reply, what, unit);
        if (r < 0)
                return r;

        return r > 0;
}

/* force: a dangling or looping link at the unit's name in /etc/systemd/system is replaced by the mask
 * (fail closed); a file or directory there is refused by systemd even so, and reported. */
static int live_mask(UnitBackend *b, const char *unit) {
        return live_unit_files(live(b), "MaskUnitFiles", "mask", unit, true, true);
}

static int live_unmask(UnitBackend *b, const char *unit) {
        return live_unit_files(live(b), "UnmaskUnitFiles", "unmask", unit, false, false);
}

/* No force: never replace an alias link of another unit. */
static int live_enable(UnitBackend *b, const char *unit) {
        return live_unit_files(live(b), "EnableUnitFiles", "enable", unit, true, false);
}

static int live_disable(UnitBackend *b, const char *unit) {
        return live_unit_files(live(b), "DisableUnitFiles", "disable", unit, false, false);
}

static int live_reload(UnitBackend *b) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(live(b)->bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "Reload");
        if (r < 0)
                return log_error_errno(r, "Failed to create Reload message: %m");

        /* The reply comes after the reload is complete; on the private socket the connection survives it. */
        r = sd_bus_call(live(b)->bus, m, RELOAD_TIMEOUT_USEC, &error, &reply);
        if (r < 0)
                return log_bus_error(r, &error, "reload systemd", NULL);

        return 0;
}

static void live_free(UnitBackend *b) {
        LiveBackend *lb = live(b);

        if (!lb)
                return;
        sd_bus_flush_close_unref(lb->bus);
        free(lb);
}

static const UnitBackendVTable live_vtable = {
        .name = "live",
        .get_file_state = live_get_file_state,
        .get_active_state = live_get_active_state,
        .resolve_name = live_resolve_name,
        .stop_no_block = live_stop_no_block,
        .start_no_block = live_start_no_block,
        .mask = live_mask,
        .unmask = live_unmask,
        .enable = live_enable,
        .disable = live_disable,
        .reload = live_reload,
        .free = live_free,
};

static int bus_connect_private(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        /* The private socket is root only (and PID 1 checks that); don't even try as another user. */
        if (geteuid() != 0)
                return -EPERM;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;

        r = sd_bus_set_address(bus, SYSTEMD_PRIVATE_ADDRESS);
        if (r < 0)
                return r;

        r = sd_bus_start(bus);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(bus);
        return 0;
}

int unit_backend_new_live(UnitBackend **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        LiveBackend *lb;
        int r;

        r = bus_connect_private(&bus);
        if (r < 0) {
                log_debug_errno(r, "Failed to connect to systemd's private socket, trying the system bus: %m");

                r = sd_bus_open_system(&bus);
                if (r < 0)
                        return log_error_errno(r, "Failed to connect to systemd (private socket and system bus): %m");
        }

        r = sd_bus_set_method_call_timeout(bus, METHOD_TIMEOUT_USEC);
        if (r < 0)
                return log_error_errno(r, "Failed to set D-Bus method call timeout: %m");

        lb = malloc(sizeof *lb);
        if (!lb)
                return log_oom();

        *lb = (LiveBackend) {
                .base.vtable = &live_vtable,
                .bus = TAKE_PTR(bus),
        };

        *ret = &lb->base;
        return 0;
}
