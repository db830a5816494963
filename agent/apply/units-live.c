/* SPDX-License-Identifier: MIT */
/* Live unit backend: org.freedesktop.systemd1.Manager over sd-bus.
 *
 * We run early in boot, ordered before sshd and possibly before dbus-daemon, so we talk to PID 1 on its
 * private socket (/run/systemd/private, root only, no bus daemon in between) and fall back to the system
 * bus only when that fails. Jobs are enqueued with mode "replace" and never waited for: sshd's start job
 * is ordered after us, so waiting for it from inside our own start job would deadlock the boot. */

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "apply/units.h"
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

/* Keeps the D-Bus error for the caller's message, e.g. "Unit file ... (org.freedesktop.DBus.Error.FileExists)";
 * without one (a local failure) b->error stays "" and the caller says strerror(-r). Returns r. */
static int bus_error(UnitBackend *b, int r, const sd_bus_error *error) {
        if (sd_bus_error_is_set(error))
                snprintf(b->error, sizeof b->error, "%s (%s)", error->message ?: "no message", error->name);
        return r;
}

/* The one way this backend talks to PID 1: a Manager method with arguments `types`, ...; timeout 0 is the
 * bus' method call timeout. On failure the D-Bus error is in *error and b->error. */
static int manager_call(UnitBackend *b, uint64_t timeout, const char *method, sd_bus_error *error, sd_bus_message **reply,
                        const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r;

        b->error[0] = '\0';
        r = sd_bus_message_new_method_call(live(b)->bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, method);
        if (r < 0)
                return r;

        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }

        r = sd_bus_call(live(b)->bus, m, timeout, error, reply);
        if (r < 0)
                return bus_error(b, r, error);

        return 0;
}

/* Reads one string-like value ('s', 'o') of the reply into a copy. */
static int reply_string(sd_bus_message *reply, char type, char **ret) {
        const char *v;
        char *s;
        int r;

        r = sd_bus_message_read_basic(reply, type, &v);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG; /* no such value in the reply */

        s = strdup(v);
        if (!s)
                return -ENOMEM;

        *ret = s;
        return 0;
}

static int strdup_to(char **ret, const char *s) {
        char *copy = strdup(s);

        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static bool error_is_no_unit(const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error))
                return sd_bus_error_has_names(error, BUS_ERROR_NO_SUCH_UNIT, SD_BUS_ERROR_FILE_NOT_FOUND);
        return r == -ENOENT;
}

/* PID 1 answers "no such unit" for a name whose only file is a dangling link (or a link to something that
 * is not a unit file): that name is broken, not absent — it must be reported and masked (force replaces the
 * link), never skipped. Looked up in systemd's unit directories, without following anything. */
static int unit_name_has_entry(const char *unit) {
        static const char *const dirs[] = { "/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
                                            "/lib/systemd/system", "/usr/lib/systemd/system" };
        struct stat st;

        if (strchr(unit, '/'))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_close_ int dfd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0 && fstatat(dfd, unit, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        return 1;
        }
        return 0;
}

static int live_get_file_state(UnitBackend *b, const char *unit, char **ret_state) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = manager_call(b, 0, "GetUnitFileState", &error, &reply, "s", unit);
        if (r < 0 && error_is_no_unit(&error, r)) {
                if (unit_name_has_entry(unit)) {
                        snprintf(b->error, sizeof b->error, "a link or file at the name that PID 1 cannot load (%s)",
                                 error.message ?: error.name ?: "no such unit");
                        return -ENOLINK;
                }
                return strdup_to(ret_state, "not-found");
        }
        if (r < 0)
                return r;

        return reply_string(reply, 's', ret_state);
}

/* The object path of a loaded unit, or NULL (returns 0) if systemd has not loaded it. */
static int live_get_unit_path(UnitBackend *b, const char *unit, bool load, char **ret_path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = manager_call(b, 0, load ? "LoadUnit" : "GetUnit", &error, &reply, "s", unit);
        if (r < 0 && !load && sd_bus_error_has_name(&error, BUS_ERROR_NO_SUCH_UNIT)) {
                *ret_path = NULL;
                return 0;
        }
        if (r < 0 && load && sd_bus_error_has_names(&error, BUS_ERROR_NO_SUCH_UNIT, BUS_ERROR_LOAD_FAILED))
                return -ENOENT;
        if (r < 0)
                return r;

        return reply_string(reply, 'o', ret_path);
}

static int live_get_unit_property(UnitBackend *b, const char *path, const char *property, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_string(live(b)->bus, SYSTEMD_DEST, path, SYSTEMD_UNIT, property, &error, ret);
        if (r < 0)
                return bus_error(b, r, &error);

        return 0;
}

static int live_get_active_state(UnitBackend *b, const char *unit, char **ret_state) {
        _cleanup_free_ char *path = NULL;
        int r;

        /* GetUnit, not LoadUnit: a unit systemd has not loaded is inactive, no need to load it to say so. */
        r = live_get_unit_path(b, unit, /* load= */ false, &path);
        if (r < 0)
                return r;
        if (!path)
                return strdup_to(ret_state, "inactive");

        return live_get_unit_property(b, path, "ActiveState", ret_state);
}

static int live_resolve_name(UnitBackend *b, const char *unit, char **ret_name) {
        _cleanup_free_ char *path = NULL, *load_state = NULL, *id = NULL;
        int r;

        /* LoadUnit follows aliases: the object it returns is the unit the alias points to, and its Id is
         * that unit's primary name (sshd.service -> ssh.service on Debian). */
        r = live_get_unit_path(b, unit, /* load= */ true, &path);
        if (r < 0)
                return r;

        r = live_get_unit_property(b, path, "LoadState", &load_state);
        if (r < 0)
                return r;
        if (streq(load_state, "not-found"))
                return -ENOENT;

        r = live_get_unit_property(b, path, "Id", &id);
        if (r < 0)
                return r;

        *ret_name = TAKE_PTR(id);
        return 0;
}

/* The job is enqueued (its path is in the reply); we deliberately do not wait for it. */
static int live_job(UnitBackend *b, const char *method, const char *unit) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        return manager_call(b, 0, method, &error, NULL, "ss", unit, "replace");
}

static int live_stop_no_block(UnitBackend *b, const char *unit) {
        return live_job(b, "StopUnit", unit);
}

static int live_start_no_block(UnitBackend *b, const char *unit) {
        return live_job(b, "StartUnit", unit);
}

/* Counts the a(sss) {type, file, source} array of unit-file changes. */
static int count_changes(sd_bus_message *reply) {
        const char *type, *file, *source;
        int r, n = 0;

        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "(sss)");
        if (r < 0)
                return r;

        for (;;) {
                r = sd_bus_message_read(reply, "(sss)", &type, &file, &source);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                n++;
        }

        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;

        return n;
}

/* Calls one of the *UnitFiles methods for a single unit: signature as + runtime b (false: persistent,
 * like plain systemctl) + force b for the methods that have one (force >= 0). force lets systemd replace a
 * symlink in the way, never a file or directory. Returns 1 if anything changed. */
static int live_unit_files(UnitBackend *b, const char *method, const char *unit, int force) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (force >= 0)
                r = manager_call(b, 0, method, &error, &reply, "asbb", 1, unit, false, force);
        else
                r = manager_call(b, 0, method, &error, &reply, "asb", 1, unit, false);
        if (r < 0)
                return r;

        if (streq(method, "EnableUnitFiles")) {
                int carries_install_info;

                r = sd_bus_message_read(reply, "b", &carries_install_info);
                if (r < 0)
                        return r;
        }

        r = count_changes(reply);
        if (r < 0)
                return r;

        return r > 0;
}

/* force: a dangling or looping link at the unit's name in /etc/systemd/system is replaced by the mask
 * (fail closed); a file or directory there is refused by systemd even so, and reported. */
static int live_mask(UnitBackend *b, const char *unit) {
        return live_unit_files(b, "MaskUnitFiles", unit, true);
}

static int live_unmask(UnitBackend *b, const char *unit) {
        return live_unit_files(b, "UnmaskUnitFiles", unit, -1);
}

/* No force: never replace an alias link of another unit. */
static int live_enable(UnitBackend *b, const char *unit) {
        return live_unit_files(b, "EnableUnitFiles", unit, false);
}

static int live_disable(UnitBackend *b, const char *unit) {
        return live_unit_files(b, "DisableUnitFiles", unit, -1);
}

/* The reply comes after the reload is complete; on the private socket the connection survives it. */
static int live_reload(UnitBackend *b) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        return manager_call(b, RELOAD_TIMEOUT_USEC, "Reload", &error, NULL, NULL);
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

        /* No private socket (not root, or PID 1 not listening yet): the system bus. */
        r = bus_connect_private(&bus);
        if (r < 0)
                r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;

        r = sd_bus_set_method_call_timeout(bus, METHOD_TIMEOUT_USEC);
        if (r < 0)
                return r;

        lb = malloc(sizeof *lb);
        if (!lb)
                return -ENOMEM;

        *lb = (LiveBackend) {
                .base.vtable = &live_vtable,
                .bus = TAKE_PTR(bus),
        };

        *ret = &lb->base;
        return 0;
}
