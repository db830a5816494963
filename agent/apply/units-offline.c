/* SPDX-License-Identifier: MIT */
/* Offline unit backend: an image tree given with --root DIR, no systemd running. The definition of correct is
 * what `systemctl --root=DIR` leaves (SPEC §5), so that is what runs: one `systemctl --root=DIR VERB -- UNIT`
 * per call (util/spawn-util: no shell, stdin /dev/null, a clean environment, bounded in time, dying with
 * the agent), so one broken unit never stops the others.
 *
 * What stays in-process is what the agent must decide itself, because the tree is not trusted and systemctl
 * writes through symlinked directories (an etc/systemd/system or multi-user.target.wants linking out of the
 * root makes `systemctl --root enable` write on the host):
 *   - the tree guard: etc, etc/systemd, etc/systemd/system must be real directories (or absent), and no
 *     NAME.wants, NAME.requires or NAME.upholds entry in etc/systemd/system may be a symlink; else nothing runs;
 *   - a unit name that is a FIFO, device, socket or directory in a unit directory (or a link to one inside
 *     the root) is broken without asking systemctl, which would block reading a FIFO;
 *   - resolve_name(): an alias link's target name, read with readlinkat() inside the root. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/units.h"
#include "fs-util.h"
#include "macro.h"
#include "spawn-util.h"

#define CONFIG_DIR "etc/systemd/system"
#define SYSTEMCTL_TIMEOUT_MS 30000
#define SYSTEMCTL_OUTPUT_MAX 16384
#define ALIAS_HOPS_MAX 8

/* systemd's search path for the system scope, in order (Debian: /lib before /usr/lib). */
static const char *const unit_dirs[] = {
        "etc/systemd/system.control",
        "run/systemd/system.control",
        "run/systemd/transient",
        "run/systemd/generator.early",
        CONFIG_DIR,
        "etc/systemd/system.attached",
        "run/systemd/system",
        "run/systemd/system.attached",
        "run/systemd/generator",
        "usr/local/lib/systemd/system",
        "lib/systemd/system",
        "usr/lib/systemd/system",
        "run/systemd/generator.late",
};

static const char *const systemctl_paths[] = { "/usr/bin/systemctl", "/bin/systemctl" };

typedef struct OfflineBackend {
        UnitBackend base;
        int root_fd;
        char *root_arg; /* "--root=/abs/path" */
        const char *systemctl;
} OfflineBackend;

static OfflineBackend *offline(UnitBackend *b) {
        return (OfflineBackend *) b;
}

/* Says why in b->base.error and returns -error. */
_printf_(3, 4) static int fail(OfflineBackend *b, int error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(b->base.error, sizeof b->base.error, fmt, ap);
        va_end(ap);
        return -abs(error);
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* A plain unit name: what systemctl would take as a name, never as an option or a path. */
static bool unit_name_ok(const char *name) {
        static const char *const suffixes[] = { ".service", ".socket", ".target", ".path", ".timer", ".mount" };
        bool suffix = false;

        if (!name || !*name || name[0] == '-' || name[0] == '.' || strlen(name) > 255)
                return false;
        for (const char *p = name; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@", *p))
                        return false;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
                suffix = suffix || (endswith(name, suffixes[i]) && strlen(name) > strlen(suffixes[i]));
        return suffix;
}

/* The tree guard (see the top): 0, or -ELOOP with the reason in b->base.error. */
static int tree_guard(OfflineBackend *b) {
        _cleanup_close_ int fd = -1;
        const char *parts[] = { "etc", "systemd", "system" };
        int dfd = b->root_fd;

        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                struct stat st;
                if (fstatat(dfd, parts[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                return 0; /* systemctl creates it: nothing to be redirected */
                        return fail(b, errno, "cannot inspect %s of the root: %s", parts[i], strerror(errno));
                }
                if (!S_ISDIR(st.st_mode))
                        return fail(b, ELOOP, "%s in the root is %s, not a directory: refusing to run systemctl",
                                    i == 0           ? "etc"
                                            : i == 1 ? "etc/systemd"
                                                     : CONFIG_DIR,
                                    S_ISLNK(st.st_mode) ? "a symlink" : "something else");
                int nfd = openat(dfd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0)
                        return fail(b, errno, "cannot open %s of the root: %s", parts[i], strerror(errno));
                if (fd >= 0)
                        close(fd);
                dfd = fd = nfd;
        }

        _cleanup_(closedirp) DIR *d = fdopendir(fd);
        if (!d)
                return fail(b, errno, "cannot read %s", CONFIG_DIR);
        fd = -1; /* owned by d now */
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_type == DT_LNK &&
                    (endswith(de->d_name, ".wants") || endswith(de->d_name, ".requires") || endswith(de->d_name, ".upholds")))
                        return fail(b, ELOOP, CONFIG_DIR "/%s is a symlink: refusing to run systemctl", de->d_name);
        return 0;
}

/* The first unit directory along the search path with an entry named `name`: its fd (O_PATH), the index in
 * unit_dirs and the entry's lstat. -ENOENT when no directory has one. */
static int find_entry(OfflineBackend *b, const char *name, size_t *ret_index, struct stat *ret_st) {
        for (size_t i = 0; i < ELEMENTSOF(unit_dirs); i++) {
                int dfd = open_in_root(b->root_fd, unit_dirs[i], O_PATH | O_DIRECTORY, 0);

                if (dfd < 0)
                        continue;
                if (fstatat(dfd, name, ret_st, AT_SYMLINK_NOFOLLOW) == 0) {
                        *ret_index = i;
                        return dfd;
                }
                close(dfd);
        }
        return -ENOENT;
}

/* The first entry named UNIT along the search path is a FIFO, device, socket or directory (or a link to
 * one inside the root): broken, and systemctl is not asked (it would block reading a FIFO). */
static int name_guard(OfflineBackend *b, const char *unit) {
        struct stat st;
        size_t i;
        _cleanup_close_ int dfd = find_entry(b, unit, &i, &st);

        if (dfd < 0)
                return 0;
        if (S_ISLNK(st.st_mode)) {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/%s", unit_dirs[i], unit) < 0)
                        return -ENOMEM;
                _cleanup_close_ int fd = open_in_root(b->root_fd, p, O_PATH, 0);
                if (fd < 0 || fstat(fd, &st) < 0)
                        return 0; /* dangling or looping: systemctl says which */
        }
        if (S_ISDIR(st.st_mode))
                return fail(b, EISDIR, "/%s/%s is a directory, not a unit file", unit_dirs[i], unit);
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) /* a character device: a mask (/dev/null) */
                return fail(b, EBADFD, "/%s/%s is not a regular file (a FIFO, socket or device)", unit_dirs[i], unit);
        return 0;
}

/* What every call that runs systemctl checks first: the name, the tree, the entry. */
static int guards(OfflineBackend *b, const char *unit) {
        int r;

        b->base.error[0] = '\0';
        if (!unit_name_ok(unit))
                return fail(b, EINVAL, "\"%s\" is not a valid unit name", unit);
        r = tree_guard(b);
        return r < 0 ? r : name_guard(b, unit);
}

/* The errno whose text ends systemctl's message ("Failed to ...: Link has been severed"), else EIO. */
static int errno_of_message(const char *msg) {
        const char *colon = strrchr(msg, ':');
        const char *text = colon ? colon + 2 : msg;

        if (colon && colon[1] == ' ')
                for (int e = 1; e < 134; e++)
                        if (streq(text, strerror(e)))
                                return e;
        if (strstr(msg, "is masked"))
                return ERFKILL;
        if (strstr(msg, "does not exist"))
                return ENOENT;
        if (strstr(msg, "already exists"))
                return EEXIST;
        if (strstr(msg, "refusing to operate on linked unit file"))
                return ELOOP;
        return EIO;
}

/* systemctl failed: the last non-empty line of its stderr, trimmed, in b->base.error; the errno it names. */
static int systemctl_failed(OfflineBackend *b, SpawnResult *res) {
        char *text = res->err;
        size_t n = strlen(text);

        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '.'))
                text[--n] = '\0';
        char *l = strrchr(text, '\n');
        snprintf(b->base.error, sizeof b->base.error, "%s", l ? l + 1 : text);
        spawn_result_done(res);
        return -errno_of_message(b->base.error);
}

/* Runs `systemctl --root=DIR VERB [--force] -- UNIT`. */
static int run_systemctl(OfflineBackend *b, const char *verb, bool force, const char *unit, SpawnResult *ret) {
        char *argv[8] = { (char *) b->systemctl, (char *) "--no-pager", b->root_arg, (char *) verb };
        size_t n = 4;

        if (force)
                argv[n++] = (char *) "--force";
        argv[n++] = (char *) "--"; /* the unit is a name, never an option */
        argv[n++] = (char *) unit;
        int r;

        r = spawn_capture(argv, SYSTEMCTL_OUTPUT_MAX, SYSTEMCTL_TIMEOUT_MS, ret);
        if (r < 0)
                return fail(b, r, "cannot run %s: %s", b->systemctl, strerror(-r));
        if (ret->timed_out) {
                spawn_result_done(ret);
                return fail(b, ETIME, "systemctl %s %s did not finish in time", verb, unit);
        }
        return 0;
}

static int offline_get_file_state(UnitBackend *backend, const char *unit, char **ret_state) {
        OfflineBackend *b = offline(backend);
        SpawnResult res = {};
        char word[64] = "";
        int r;

        r = guards(b, unit);
        if (r < 0)
                return r;
        r = run_systemctl(b, "is-enabled", false, unit, &res);
        if (r < 0)
                return r;
        sscanf(res.out, "%63s", word);
        if (!*word && strstr(res.err, "No such file or directory"))
                strcpy(word, "not-found");
        if (!*word)
                return systemctl_failed(b, &res);
        spawn_result_done(&res);
        *ret_state = strdup(word);
        return *ret_state ? 0 : -ENOMEM;
}

/* mask/unmask/enable/disable: 1 when systemctl reports a symlink created or removed, else 0. */
static int offline_change(UnitBackend *backend, const char *verb, const char *unit) {
        OfflineBackend *b = offline(backend);
        SpawnResult res = {};
        int r;

        r = guards(b, unit);
        if (r < 0)
                return r;
        r = run_systemctl(b, verb, streq(verb, "mask"), unit, &res);
        if (r < 0)
                return r;
        if (res.exit_status != 0)
                return systemctl_failed(b, &res);
        r = strstr(res.err, "Created symlink") || strstr(res.err, "Removed") || strstr(res.out, "Created symlink") ||
                strstr(res.out, "Removed");
        spawn_result_done(&res);
        return r;
}

static int offline_mask(UnitBackend *b, const char *unit) {
        return offline_change(b, "mask", unit);
}

static int offline_unmask(UnitBackend *b, const char *unit) {
        return offline_change(b, "unmask", unit);
}

static int offline_enable(UnitBackend *b, const char *unit) {
        return offline_change(b, "enable", unit);
}

static int offline_disable(UnitBackend *b, const char *unit) {
        return offline_change(b, "disable", unit);
}

/* The unit file UNIT resolves to: an alias link (sshd.service -> .../ssh.service) gives its target's name,
 * followed inside the root through the search path; a mask or a file gives UNIT. */
static int offline_resolve_name(UnitBackend *backend, const char *unit, char **ret_name) {
        OfflineBackend *b = offline(backend);
        _cleanup_free_ char *name = strdup(unit);

        if (!name)
                return -ENOMEM;
        if (!unit_name_ok(unit))
                return -EINVAL;
        for (int hop = 0; hop < ALIAS_HOPS_MAX; hop++) {
                struct stat st;
                size_t i;
                char buf[4096];
                _cleanup_close_ int dfd = find_entry(b, name, &i, &st);

                if (dfd < 0)
                        return hop == 0 ? -ENOENT : (*ret_name = TAKE_PTR(name), 0);
                if (!S_ISLNK(st.st_mode))
                        break;
                ssize_t n = readlinkat(dfd, name, buf, sizeof buf - 1);
                if (n < 0)
                        return -errno;
                buf[n] = '\0';
                const char *base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
                const char *dot = strrchr(name, '.');
                if (streq(buf, "/dev/null") || streq(base, name) || !unit_name_ok(base) || !dot || !endswith(base, dot))
                        break; /* a mask, or a link that is no alias: this name is the unit's */
                char *target = strdup(base);
                if (!target)
                        return -ENOMEM;
                free(name);
                name = target;
        }
        *ret_name = TAKE_PTR(name);
        return 0;
}

static int offline_get_active_state(UnitBackend *backend, const char *unit, char **ret_state) {
        char *s = strdup("unknown"); /* nothing runs in an image tree */

        if (!s)
                return -ENOMEM;
        *ret_state = s;
        return 0;
}

static int offline_noop_unit(UnitBackend *backend, const char *unit) {
        return 0;
}

static int offline_reload(UnitBackend *backend) {
        return 0;
}

static void offline_free(UnitBackend *backend) {
        OfflineBackend *b = offline(backend);

        if (!b)
                return;
        if (b->root_fd >= 0)
                close(b->root_fd);
        free(b->root_arg);
        free(b);
}

static const UnitBackendVTable offline_vtable = {
        .name = "offline",
        .get_file_state = offline_get_file_state,
        .get_active_state = offline_get_active_state,
        .resolve_name = offline_resolve_name,
        .stop_no_block = offline_noop_unit,
        .start_no_block = offline_noop_unit,
        .mask = offline_mask,
        .unmask = offline_unmask,
        .enable = offline_enable,
        .disable = offline_disable,
        .reload = offline_reload,
        .free = offline_free,
};

int unit_backend_new_offline(const char *root, UnitBackend **ret) {
        _cleanup_free_ char *real = NULL;
        OfflineBackend *b;

        if (!root || !*root)
                return -EINVAL;
        real = realpath(root, NULL);
        if (!real)
                return -errno;
        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->base.vtable = &offline_vtable;
        b->root_fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (b->root_fd < 0 || asprintf(&b->root_arg, "--root=%s", real) < 0) {
                int r = b->root_fd < 0 ? -errno : -ENOMEM;
                b->root_arg = NULL;
                offline_free(&b->base);
                return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(systemctl_paths) && !b->systemctl; i++)
                if (access(systemctl_paths[i], X_OK) == 0)
                        b->systemctl = systemctl_paths[i];
        if (!b->systemctl) {
                offline_free(&b->base);
                return -ENOEXEC; /* `systemctl --root` is how offline unit files are changed (package systemd) */
        }
        *ret = &b->base;
        return 0;
}
