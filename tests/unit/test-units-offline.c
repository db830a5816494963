/* SPDX-License-Identifier: MIT */
/* The offline unit backend (a wrapper around `systemctl --root`) against systemctl itself: every operation
 * runs on two identical scratch trees, on tree A through the backend and on tree B through
 * `systemctl --root=B` (mask with --force, as the backend does), and then both trees must be identical (the
 * backend adds or loses nothing), get_file_state() must print what `systemctl --root is-enabled` prints (and
 * fail when it fails), the return value must be 1 exactly when the tree changed, a repeat 0, and errors map
 * to the errno systemctl names. Layouts: Debian merged-usr, Debian with a real /lib, /lib plus /usr/lib plus
 * /usr/local, Azure Linux, conflicting links. What the backend decides itself is checked directly: broken
 * names (a FIFO is answered without running systemctl, which would hang on it), alias resolution, and
 * untrusted trees (etc/systemd/system, etc or a .wants linking out of the root: systemctl would write
 * outside, the backend must refuse). Needs systemctl (package systemd). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apply/units.h"
#include "log.h"
#include "macro.h"
#include "unit.h"

static char base_dir[] = "/tmp/test-units-offline.XXXXXX";
static int tree_counter;

/* ---- scratch trees ------------------------------------------------------------------------------------- */

typedef struct Entry {
        char type; /* 'f' file, 'l' symlink, 'd' directory */
        const char *path;
        const char *data; /* file content or symlink target */
} Entry;

#define SSH_SERVICE                                                                                \
        "[Unit]\nDescription=OpenBSD Secure Shell server\nAfter=network.target auditd.service\n\n" \
        "[Service]\nExecStart=/usr/sbin/sshd -D $SSHD_OPTS\nType=notify\n\n"                       \
        "[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n"
#define SSH_SOCKET                                                                          \
        "[Unit]\nDescription=OpenBSD Secure Shell server socket\nBefore=sockets.target\n\n" \
        "[Socket]\nListenStream=22\nAccept=no\n\n[Install]\nWantedBy=sockets.target\n"
#define SSH_TEMPLATE "[Unit]\nDescription=OpenBSD per-connection server\n\n[Service]\nExecStart=-/usr/sbin/sshd -i\n"
#define AZL_SSHD_SERVICE                                                                  \
        "[Unit]\nDescription=OpenSSH Daemon\nAfter=network.target sshd-keygen.target\n\n" \
        "[Service]\nExecStart=/usr/sbin/sshd -D\n\n[Install]\nWantedBy=multi-user.target\n"
#define AZL_SSHD_SOCKET                                                         \
        "[Unit]\nDescription=OpenSSH Server Socket\nConflicts=sshd.service\n\n" \
        "[Socket]\nListenStream=22\nAccept=yes\n\n[Install]\nWantedBy=sockets.target\n"
#define STATIC_SERVICE "[Unit]\nDescription=static\n\n[Service]\nExecStart=/bin/true\n"
#define WANTED_SERVICE "[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"
/* Debian's three ssh unit files in DIR; with a static unit in /usr/lib, as every Debian layout below has.
 * (clang-format would put the four entries on one line.) */
/* clang-format off */
#define DEBIAN_SSH_UNITS(dir)                                                           \
        { 'f', dir "/ssh.service", SSH_SERVICE },                                       \
        { 'f', dir "/ssh.socket", SSH_SOCKET },                                         \
        { 'f', dir "/ssh@.service", SSH_TEMPLATE },                                     \
        { 'f', "usr/lib/systemd/system/systemd-static.service", STATIC_SERVICE }
/* clang-format on */

static const Entry debian_merged[] = {
        { 'l', "lib", "usr/lib" },
        DEBIAN_SSH_UNITS("usr/lib/systemd/system"),
        { 'f', "usr/lib/systemd/system/multi-user.target", "[Unit]\nDescription=Multi-User System\n" },
        { 'f', "usr/lib/systemd/system/sockets.target", "[Unit]\nDescription=Sockets\n" },
        { 'd', "etc/systemd/system", NULL },
        {},
};

/* Debian before merged-usr: a real /lib holding the units. */
static const Entry debian_split[] = {
        DEBIAN_SSH_UNITS("lib/systemd/system"),
        { 'f', "usr/lib/systemd/system/vendor-usr.service", WANTED_SERVICE },
        { 'd', "etc/systemd/system", NULL },
        {},
};

/* Both a real /lib and /usr/lib, units in /usr/lib only; one in /usr/local. */
static const Entry both_libs[] = {
        { 'd', "lib/systemd/system", NULL },
        { 'f', "lib/systemd/system/libonly.service", WANTED_SERVICE },
        DEBIAN_SSH_UNITS("usr/lib/systemd/system"),
        { 'f', "usr/local/lib/systemd/system/local.service", WANTED_SERVICE },
        {},
};

static const Entry azure_linux[] = {
        { 'l', "lib", "usr/lib" },
        { 'f', "usr/lib/systemd/system/sshd.service", AZL_SSHD_SERVICE },
        { 'f', "usr/lib/systemd/system/sshd.socket", AZL_SSHD_SOCKET },
        { 'f', "usr/lib/systemd/system/sshd@.service", SSH_TEMPLATE },
        { 'f', "usr/lib/systemd/system/sshd-keygen@.service",
          "[Service]\nExecStart=/usr/libexec/openssh/sshd-keygen %i\n\n[Install]\nWantedBy=sshd-keygen.target\n" },
        { 'd', "etc/systemd/system", NULL },
        {},
};

static int make_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

static char *new_tree(const Entry *entries) {
        char *root;

        if (asprintf(&root, "%s/tree%d", base_dir, ++tree_counter) < 0 || mkdir(root, 0755) < 0)
                abort();
        for (const Entry *e = entries; e->type; e++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", root, e->path) < 0 || make_parents(p) < 0)
                        abort();
                if (e->type == 'd') {
                        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                                abort();
                } else if (e->type == 'l') {
                        if (symlink(e->data, p) < 0)
                                abort();
                } else {
                        FILE *f = fopen(p, "we");
                        if (!f || fputs(e->data, f) < 0 || fclose(f) != 0)
                                abort();
                }
        }
        return root;
}

/* ---- listings ---------------------------------------------------------------------------------------- */

typedef struct Listing {
        char **lines;
        size_t n, cap;
} Listing;

static void listing_add(Listing *l, char *line) {
        if (l->n + 1 >= l->cap) {
                l->cap = l->cap ? l->cap * 2 : 64;
                l->lines = realloc(l->lines, l->cap * sizeof(char *));
                if (!l->lines)
                        abort();
        }
        l->lines[l->n++] = line;
}

static void listing_walk(Listing *l, const char *root, const char *rel) {
        _cleanup_free_ char *dir = NULL;
        DIR *d;
        struct dirent *de;

        if (asprintf(&dir, "%s%s", root, rel) < 0)
                abort();
        d = opendir(dir);
        if (!d)
                return;
        while ((de = readdir(d))) {
                _cleanup_free_ char *r = NULL, *full = NULL;
                struct stat st;
                char *line, target[4096] = "";

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (asprintf(&r, "%s/%s", rel, de->d_name) < 0 || asprintf(&full, "%s%s", root, r) < 0)
                        abort();
                if (lstat(full, &st) < 0)
                        abort();
                if (S_ISLNK(st.st_mode)) {
                        ssize_t n = readlink(full, target, sizeof target - 1);
                        if (n < 0)
                                abort();
                        target[n] = '\0';
                }
                if (asprintf(&line, "%s %c %s", r, S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : 'f', target) < 0)
                        abort();
                listing_add(l, line);
                if (S_ISDIR(st.st_mode))
                        listing_walk(l, root, r);
        }
        closedir(d);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The whole tree as text, one "path type target" line per entry, sorted. */
static char *tree_listing(const char *root) {
        Listing l = {};
        size_t len = 1;
        char *out, *o;

        listing_walk(&l, root, "");
        qsort(l.lines, l.n, sizeof(char *), cmp_str);
        for (size_t i = 0; i < l.n; i++)
                len += strlen(l.lines[i]) + 1;
        out = o = malloc(len);
        if (!out)
                abort();
        *o = '\0';
        for (size_t i = 0; i < l.n; i++) {
                o = stpcpy(o, l.lines[i]);
                o = stpcpy(o, "\n");
                free(l.lines[i]);
        }
        free(l.lines);
        return out;
}

/* ---- systemctl --root ---------------------------------------------------------------------------------- */

/* Runs `systemctl --root=ROOT VERB UNIT`, returns its exit status, stdout and stderr (trimmed) in *ret_out
 * and *ret_err. */
static int systemctl_full(const char *root, const char *verb, const char *unit, char **ret_out, char **ret_err) {
        _cleanup_free_ char *rootarg = NULL;
        char out[4096], err[4096];
        size_t lens[2] = {};
        int outpipe[2], errpipe[2], status;
        pid_t pid;

        if (asprintf(&rootarg, "--root=%s", root) < 0 || pipe2(outpipe, O_CLOEXEC) < 0 || pipe2(errpipe, O_CLOEXEC) < 0)
                abort();
        pid = fork();
        if (pid < 0)
                abort();
        if (pid == 0) {
                if (dup2(outpipe[1], STDOUT_FILENO) < 0 || dup2(errpipe[1], STDERR_FILENO) < 0)
                        _exit(127);
                /* the backend masks like `mask --force` (a link in the way is replaced, fail closed) */
                if (streq(verb, "mask"))
                        execlp("systemctl", "systemctl", "--no-pager", rootarg, verb, "--force", unit, (char *) NULL);
                else
                        execlp("systemctl", "systemctl", "--no-pager", rootarg, verb, unit, (char *) NULL);
                _exit(127);
        }
        close(outpipe[1]);
        close(errpipe[1]);
        /* systemctl writes little; read stdout to its end, then stderr (both fit in the pipe buffers) */
        for (int i = 0; i < 2; i++) {
                int fd = i == 0 ? outpipe[0] : errpipe[0];
                char *buf = i == 0 ? out : err;
                ssize_t n;

                while ((n = read(fd, buf + lens[i], sizeof out - 1 - lens[i])) > 0)
                        lens[i] += (size_t) n;
                buf[lens[i]] = '\0';
                while (lens[i] > 0 && (buf[lens[i] - 1] == '\n' || buf[lens[i] - 1] == ' '))
                        buf[--lens[i]] = '\0';
                close(fd);
        }
        if (waitpid(pid, &status, 0) < 0)
                abort();
        if (!WIFEXITED(status) || WEXITSTATUS(status) == 127) {
                fprintf(stderr, "systemctl could not be run\n");
                abort();
        }
        if (ret_out)
                *ret_out = strdup(out);
        if (ret_err)
                *ret_err = strdup(err);
        return WEXITSTATUS(status);
}

static int systemctl(const char *root, const char *verb, const char *unit, char **ret_out) {
        return systemctl_full(root, verb, unit, ret_out, NULL);
}

/* ---- the comparison ------------------------------------------------------------------------------------ */

typedef struct Pair {
        const char *name;
        char *a, *b; /* tree A: backend; tree B: systemctl */
        UnitBackend *backend;
} Pair;

static void pair_init(Pair *p, const char *name, const Entry *entries) {
        int r;

        *p = (Pair) { .name = name, .a = new_tree(entries), .b = new_tree(entries) };
        r = unit_backend_new_offline(p->a, &p->backend);
        CHECK(r == 0, "unit_backend_new_offline");
        if (r < 0)
                abort();
        CHECK_STREQ(p->backend->vtable->name, "offline", "vtable name");
}

static void pair_done(Pair *p) {
        p->backend->vtable->free(p->backend);
        free(p->a);
        free(p->b);
}

static bool has_line(const char *text, const char *line, size_t len) {
        for (const char *s = text; *s;) {
                const char *e = strchrnul(s, '\n');
                if ((size_t) (e - s) == len && strncmp(s, line, len) == 0)
                        return true;
                s = *e ? e + 1 : e;
        }
        return false;
}

static void print_missing(const char *label, const char *from, const char *in) {
        for (const char *s = from; *s;) {
                const char *e = strchrnul(s, '\n');
                if (!has_line(in, s, (size_t) (e - s)))
                        fprintf(stderr, "  %s %.*s\n", label, (int) (e - s), s);
                s = *e ? e + 1 : e;
        }
}

static void check_same_trees(Pair *p, const char *what) {
        _cleanup_free_ char *la = tree_listing(p->a), *lb = tree_listing(p->b);

        if (!streq(la, lb)) {
                unit_failed++;
                fprintf(stderr, "FAIL %s: trees differ\n", what);
                print_missing("only backend:  ", la, lb);
                print_missing("only systemctl:", lb, la);
        } else
                unit_passed++;
}

static void check_state(Pair *p, const char *unit) {
        _cleanup_free_ char *want = NULL, *err = NULL, *got = NULL;
        char why[512];
        int r;

        (void) systemctl_full(p->b, "is-enabled", unit, &want, &err);
        r = p->backend->vtable->get_file_state(p->backend, unit, &got);
        snprintf(why, sizeof why, "[%s] is-enabled %s (systemctl: \"%s\" \"%s\")", p->name, unit, want, err);
        if (streq(want, "") && !strstr(err, "No such file or directory")) {
                /* systemctl failed for another reason (e.g. "Too many levels of symbolic links"): so must we */
                CHECK(r < 0, why);
                return;
        }
        if (streq(want, "")) { /* "Failed to get unit file state for X: No such file or directory" */
                free(want);
                want = strdup("not-found");
        }
        CHECK_INTEQ(r, 0, why);
        CHECK_STREQ(got, want, why);
}

static void check_states(Pair *p, const char *const *units) {
        for (const char *const *u = units; *u; u++)
                check_state(p, *u);
}

static int backend_op(Pair *p, const char *verb, const char *unit) {
        const UnitBackendVTable *v = p->backend->vtable;

        if (streq(verb, "enable"))
                return v->enable(p->backend, unit);
        if (streq(verb, "disable"))
                return v->disable(p->backend, unit);
        if (streq(verb, "mask"))
                return v->mask(p->backend, unit);
        if (streq(verb, "unmask"))
                return v->unmask(p->backend, unit);
        abort();
}

/* One operation on both trees; then: same trees, r < 0 iff systemctl failed, r == 1 iff tree A changed, and
 * (when it succeeded) repeating it changes nothing and returns 0. */
static int op(Pair *p, const char *verb, const char *unit) {
        _cleanup_free_ char *before = tree_listing(p->a), *after = NULL, *again = NULL;
        char why[256];
        int r, rc, r2, rc2;

        r = backend_op(p, verb, unit);
        rc = systemctl(p->b, verb, unit, NULL);
        after = tree_listing(p->a);
        snprintf(why, sizeof why, "[%s] %s %s (backend %d, systemctl exit %d)", p->name, verb, unit, r, rc);
        check_same_trees(p, why);
        CHECK((r < 0) == (rc != 0), why);
        if (r >= 0)
                CHECK_INTEQ(r, streq(before, after) ? 0 : 1, why);

        if (r >= 0) {
                /* Once more on both trees: nothing changes, and the backend says so with 0. (Or both refuse:
                 * `systemctl enable ALIAS` works once from /usr/lib, then refuses the link it made in /etc.) */
                r2 = backend_op(p, verb, unit);
                rc2 = systemctl(p->b, verb, unit, NULL);
                again = tree_listing(p->a);
                snprintf(why, sizeof why, "[%s] %s %s repeated (backend %d, systemctl exit %d)", p->name, verb, unit, r2, rc2);
                check_same_trees(p, why);
                CHECK((r2 < 0) == (rc2 != 0), why);
                if (rc2 == 0)
                        CHECK_INTEQ(r2, 0, why);
                CHECK_STREQ(again, after, why);
        }
        return r;
}

/* ---- scenarios ----------------------------------------------------------------------------------------- */

static const char *const ssh_names[] = { "ssh.service",   "sshd.service",           "ssh.socket", "sshd.socket", "ssh@.service",
                                         "ssh@x.service", "systemd-static.service", NULL };
static const char *const azl_names[] = { "sshd.service", "ssh.service", "sshd.socket", "sshd@.service", "sshd-keygen@.service", NULL };

static void test_debian_basic(const Entry *layout, const char *name) {
        Pair p;
        _cleanup_free_ char *resolved = NULL;

        pair_init(&p, name, layout);
        check_states(&p, ssh_names);

        CHECK_INTEQ(p.backend->vtable->resolve_name(p.backend, "sshd.service", &resolved), -ENOENT,
                    "alias without its link does not resolve");
        CHECK_INTEQ(op(&p, "enable", "ssh.service"), 1, "enable ssh.service");
        check_states(&p, ssh_names);
        /* systemctl refuses to enable through an alias link in /etc ("refusing to operate on linked unit file") */
        CHECK_INTEQ(op(&p, "enable", "sshd.service"), -ELOOP, "enable via the alias name");
        CHECK_INTEQ(p.backend->vtable->resolve_name(p.backend, "sshd.service", &resolved), 0, "resolve alias");
        CHECK_STREQ(resolved, "ssh.service", "sshd.service is an alias of ssh.service");
        free(resolved);
        resolved = NULL;
        CHECK_INTEQ(p.backend->vtable->resolve_name(p.backend, "ssh.service", &resolved), 0, "resolve");
        CHECK_STREQ(resolved, "ssh.service", "ssh.service resolves to itself");

        /* mask replaces an existing alias link like `systemctl mask --force`; unmask removes the mask */
        CHECK_INTEQ(op(&p, "mask", "sshd.service"), 1, "mask over alias link");
        CHECK_INTEQ(op(&p, "unmask", "sshd.service"), 1, "unmask the alias name");
        CHECK_INTEQ(op(&p, "enable", "ssh.service"), 1, "enable recreates the alias link");
        CHECK_INTEQ(op(&p, "disable", "sshd.service"), 1, "disable via alias name");
        check_states(&p, ssh_names);
        CHECK_INTEQ(op(&p, "enable", "ssh.socket"), 1, "enable ssh.socket");
        CHECK_INTEQ(op(&p, "disable", "ssh.service"), 0, "ssh.service already disabled");
        check_states(&p, ssh_names);
        CHECK_INTEQ(op(&p, "enable", "ssh@.service"), 0, "template without [Install]: nothing to do");
        CHECK_INTEQ(op(&p, "enable", "systemd-static.service"), 0, "static: nothing to do");
        CHECK_INTEQ(op(&p, "enable", "nope.service"), -ENOENT, "enable a missing unit");
        CHECK_INTEQ(op(&p, "disable", "nope.service"), 0, "disable a missing unit");
        CHECK_INTEQ(op(&p, "unmask", "ssh.service"), 0, "unmask an unmasked unit");
        pair_done(&p);
}

/* What the agent does for mode Disabled, then LocalUser again. */
static void test_agent_sequence(const Entry *layout, const char *name, const char *const *names) {
        static const char *const four[] = { "ssh.service", "sshd.service", "ssh.socket", "sshd.socket", NULL };
        Pair p;

        pair_init(&p, name, layout);
        op(&p, "enable", names[0]);
        check_states(&p, names);
        for (const char *const *u = four; *u; u++)
                op(&p, "disable", *u);
        check_states(&p, names);
        for (const char *const *u = four; *u; u++)
                CHECK_INTEQ(op(&p, "mask", *u), 1, "mask");
        check_states(&p, names);
        CHECK_INTEQ(op(&p, "enable", names[0]), -ERFKILL, "enable a masked unit");
        CHECK_INTEQ(op(&p, "disable", names[0]), 0, "disable leaves a masked unit alone");
        for (const char *const *u = four; *u; u++)
                CHECK_INTEQ(op(&p, "unmask", *u), 1, "unmask");
        check_states(&p, names);
        CHECK_INTEQ(op(&p, "enable", names[0]), 1, "enable after unmask");
        check_states(&p, names);

        /* unmask only ssh.service while sshd.service is still masked, then enable: the alias link replaces
         * the mask or not, like systemctl */
        op(&p, "disable", names[0]);
        for (const char *const *u = four; *u; u++)
                op(&p, "mask", *u);
        op(&p, "unmask", names[0]);
        op(&p, "enable", names[0]);
        check_states(&p, names);
        pair_done(&p);
}

/* Socket activation: socket enabled, service disabled (and back). */
static void test_socket_activation(const Entry *layout, const char *name, const char *service, const char *socket,
                                   const char *const *names) {
        Pair p;

        pair_init(&p, name, layout);
        CHECK_INTEQ(op(&p, "enable", service), 1, "enable service");
        CHECK_INTEQ(op(&p, "enable", socket), 1, "enable socket");
        CHECK_INTEQ(op(&p, "disable", service), 1, "disable service");
        check_states(&p, names);
        CHECK_INTEQ(op(&p, "disable", socket), 1, "disable socket");
        CHECK_INTEQ(op(&p, "enable", service), 1, "enable service again");
        check_states(&p, names);
        pair_done(&p);
}

/* Links already there that point elsewhere, a regular file where a link goes, an empty .wants dir. */
static void test_conflicts(void) {
        static const Entry conflicts[] = {
                { 'l', "lib", "usr/lib" },
                { 'f', "usr/lib/systemd/system/ssh.service", SSH_SERVICE },
                { 'f', "usr/lib/systemd/system/ssh.socket", SSH_SOCKET },
                { 'f', "usr/lib/systemd/system/other.service", WANTED_SERVICE },
                { 'l', "etc/systemd/system/multi-user.target.wants/ssh.service", "/usr/lib/systemd/system/other.service" },
                { 'l', "etc/systemd/system/sshd.service", "/usr/lib/systemd/system/other.service" },
                { 'd', "etc/systemd/system/sockets.target.wants", NULL },
                { 'f', "etc/systemd/system/regular.service", "[Service]\nExecStart=/bin/true\n" },
                { 'l', "etc/systemd/system/sub/dir.wants/ssh.socket", "/lib/systemd/system/ssh.socket" },
                { 'l', "etc/systemd/system/multi-user.target.wants/ssh.socket", "/usr/lib/systemd/system/ssh.socket" },
                {},
        };
        static const Entry equivalent[] = {
                { 'l', "lib", "usr/lib" },
                { 'f', "usr/lib/systemd/system/ssh.service", SSH_SERVICE },
                { 'l', "etc/systemd/system/multi-user.target.wants/ssh.service", "/usr/lib/systemd/system/ssh.service" },
                { 'l', "etc/systemd/system/sshd.service", "../../../usr/lib/systemd/system/ssh.service" },
                {},
        };
        static const char *const names[] = { "ssh.service", "sshd.service", "ssh.socket", "other.service", "regular.service", NULL };
        Pair p;

        pair_init(&p, "conflicts", conflicts);
        check_states(&p, names);
        op(&p, "enable", "ssh.service"); /* wants link replaced, alias link of another unit: -EEXIST */
        check_states(&p, names);
        op(&p, "mask", "regular.service");
        op(&p, "unmask", "regular.service");
        op(&p, "disable", "ssh.socket"); /* nested dir.wants and the empty sockets.target.wants */
        op(&p, "disable", "other.service");
        check_states(&p, names);
        pair_done(&p);

        pair_init(&p, "equivalent links", equivalent);
        CHECK_INTEQ(op(&p, "enable", "ssh.service"), 0, "equivalent links count as present");
        check_states(&p, names);
        pair_done(&p);
}

/* ---- an untrusted tree must never make the backend write outside it ----------------------------------- */

static bool dir_is_empty(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        bool empty = true;

        if (!d)
                return true;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        empty = false;
        closedir(d);
        return empty;
}

static void run_all_ops(UnitBackend *b, const char *const *units) {
        static const char *const verbs[] = { "enable", "mask", "unmask", "disable", "enable", NULL };

        for (const char *const *v = verbs; *v; v++)
                for (const char *const *u = units; *u; u++) {
                        _cleanup_free_ char *s = NULL;
                        Pair fake = { .backend = b };
                        (void) backend_op(&fake, *v, *u);
                        (void) b->vtable->get_file_state(b, *u, &s);
                }
}

/* An untrusted root: every operation on every unit, and then `outside` must still be empty. Frees root. */
static void check_stays_inside(char *root, const char *const *units, const char *outside, const char *what) {
        UnitBackend *b = NULL;
        char why[256];

        CHECK_INTEQ(unit_backend_new_offline(root, &b), 0, "new");
        run_all_ops(b, units);
        b->vtable->free(b);
        snprintf(why, sizeof why, "%s stays empty (%s)", outside, what);
        CHECK(dir_is_empty(outside), why);
        free(root);
}

static int rm_rf(const char *path) {
        _cleanup_free_ char *cmd = NULL;

        return asprintf(&cmd, "rm -rf '%s'", path) < 0 ? -ENOMEM : system(cmd);
}

static void test_unsafe(void) {
        static const char *const ssh_units[] = { "ssh.service", "sshd.service", "ssh.socket", NULL };
        static const char *const escape_units[] = { "aks-offline-escape-test.service", "aks-offline-escape-alias.service", NULL };
        static const Entry escape_test[] = {
                { 'f', "usr/lib/systemd/system/aks-offline-escape-test.service",
                  "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
                  "Alias=aks-offline-escape-alias.service\n" },
                { 'd', "etc/systemd/system", NULL },
                {},
        };
        _cleanup_free_ char *outside = NULL, *link_abs = NULL, *rel = NULL, *host_before = NULL, *host_after = NULL;
        char *root;
        UnitBackend *b = NULL;

        if (asprintf(&outside, "%s/elsewhere", base_dir) < 0 || mkdir(outside, 0755) < 0)
                abort();

        /* 1: etc/systemd/system is an absolute symlink to a host directory */
        root = new_tree(debian_merged + 1); /* no lib link, no etc/systemd/system */
        if (asprintf(&link_abs, "%s/etc/systemd/system", root) < 0 || rmdir(link_abs) < 0 || symlink(outside, link_abs) < 0)
                abort();
        check_stays_inside(root, ssh_units, outside, "absolute etc/systemd/system link");

        /* 2: etc is a symlink to "/etc" — the host's /etc/systemd/system must not be touched. The unit has a
         * name of its own so that even a broken backend could not change the host's ssh. */
        host_before = tree_listing("/etc/systemd/system");
        root = new_tree(escape_test);
        free(link_abs);
        if (asprintf(&link_abs, "%s/etc", root) < 0 || rm_rf(link_abs) != 0 || symlink("/etc", link_abs) < 0)
                abort();
        CHECK_INTEQ(unit_backend_new_offline(root, &b), 0, "new");
        run_all_ops(b, escape_units);
        b->vtable->free(b);
        host_after = tree_listing("/etc/systemd/system");
        CHECK_STREQ(host_after, host_before, "host /etc/systemd/system untouched (etc -> /etc)");
        if (!streq(host_after, host_before)) { /* undo what a broken backend did to this machine */
                (void) unlink("/etc/systemd/system/multi-user.target.wants/aks-offline-escape-test.service");
                (void) unlink("/etc/systemd/system/aks-offline-escape-alias.service");
        }
        free(root);

        /* 3: etc/systemd is a relative link climbing out of the root, .wants a link to the outside */
        root = new_tree(debian_merged);
        free(link_abs);
        if (asprintf(&link_abs, "%s/etc/systemd", root) < 0 || asprintf(&rel, "../../../../../../../../../..%s", outside) < 0)
                abort();
        if (rm_rf(link_abs) != 0 || symlink(rel, link_abs) < 0)
                abort();
        check_stays_inside(root, ssh_units, outside, "relative etc/systemd link");

        root = new_tree(debian_merged);
        free(link_abs);
        if (asprintf(&link_abs, "%s/etc/systemd/system/multi-user.target.wants", root) < 0 || symlink(outside, link_abs) < 0)
                abort();
        free(link_abs);
        if (asprintf(&link_abs, "%s/usr/lib/systemd/system/ssh.socket", root) < 0 || unlink(link_abs) < 0 ||
            symlink("/usr/lib/systemd/system/ssh.socket", link_abs) < 0) /* a loop inside the root */
                abort();
        check_stays_inside(root, ssh_units, outside, ".wants link to outside");
}

static void test_offline_noops(void) {
        _cleanup_free_ char *s = NULL, *root = new_tree(debian_merged);
        UnitBackend *b = NULL;

        CHECK_INTEQ(unit_backend_new_offline(root, &b), 0, "new");
        CHECK_INTEQ(b->vtable->get_active_state(b, "ssh.service", &s), 0, "active state");
        CHECK_STREQ(s, "unknown", "offline active state");
        CHECK_INTEQ(b->vtable->start_no_block(b, "ssh.service"), 0, "start no-op");
        CHECK_INTEQ(b->vtable->stop_no_block(b, "ssh.service"), 0, "stop no-op");
        CHECK_INTEQ(b->vtable->reload(b), 0, "reload no-op");
        /* Invalid names are rejected before touching anything. */
        CHECK_INTEQ(b->vtable->enable(b, "../../etc/passwd"), -EINVAL, "path as unit name");
        CHECK_INTEQ(b->vtable->mask(b, "ssh"), -EINVAL, "name without suffix");
        CHECK_INTEQ(b->vtable->disable(b, "a/b.service"), -EINVAL, "slash in name");
        b->vtable->free(b);

        CHECK_INTEQ(unit_backend_new_offline("/nonexistent/root", &b), -ENOENT, "missing root");
}

/* Broken names: answered without systemctl hanging (a FIFO), with the reason in b->error. */
static void test_broken_names(void) {
        static const Entry tree[] = {
                { 'l', "lib", "usr/lib" },
                { 'f', "usr/lib/systemd/system/ssh.service", SSH_SERVICE },
                { 'l', "etc/systemd/system/sshd.socket", "/usr/lib/systemd/system/gone.socket" },
                { 'l', "etc/systemd/system/loop.socket", "/etc/systemd/system/loop.socket" },
                { 'd', "etc/systemd/system/dir.socket", NULL },
                { 'l', "etc/systemd/system/todir.socket", "/etc/systemd/system/dir.socket" },
                {},
        };
        _cleanup_free_ char *root = new_tree(tree), *fifo = NULL, *s = NULL;
        UnitBackend *b = NULL;

        if (asprintf(&fifo, "%s/etc/systemd/system/fifo.socket", root) < 0 || mkfifo(fifo, 0644) < 0)
                abort();
        CHECK_INTEQ(unit_backend_new_offline(root, &b), 0, "new");
        CHECK_INTEQ(b->vtable->get_file_state(b, "fifo.socket", &s), -EBADFD, "FIFO: broken, systemctl not asked");
        CHECK(strstr(b->error, "/etc/systemd/system/fifo.socket") != NULL, b->error);
        CHECK_INTEQ(b->vtable->get_file_state(b, "dir.socket", &s), -EISDIR, "directory at the name");
        CHECK_INTEQ(b->vtable->get_file_state(b, "todir.socket", &s), -EISDIR, "link to a directory in the root");
        CHECK_INTEQ(b->vtable->get_file_state(b, "sshd.socket", &s), -ENOLINK, "dangling link (systemctl's answer)");
        CHECK(strstr(b->error, "Link has been severed") != NULL, b->error);
        CHECK_INTEQ(b->vtable->get_file_state(b, "loop.socket", &s), -ELOOP, "looping link");
        CHECK_INTEQ(b->vtable->mask(b, "fifo.socket"), -EBADFD, "a FIFO is never replaced");
        CHECK_INTEQ(b->vtable->mask(b, "sshd.socket"), 1, "a dangling link is replaced by the mask (--force)");
        CHECK_INTEQ(b->vtable->get_file_state(b, "sshd.socket", &s), 0, "masked now");
        CHECK_STREQ(s, "masked", "dangling link masked");
        free(s);
        s = NULL;
        CHECK_INTEQ(b->vtable->mask(b, "loop.socket"), 1, "a looping link is replaced by the mask");
        CHECK_INTEQ(b->vtable->resolve_name(b, "ssh.service", &s), 0, "resolve a unit file");
        CHECK_STREQ(s, "ssh.service", "a unit file resolves to itself");
        b->vtable->free(b);
}

int main(void) {
        log_set_max_level(LOG_WARNING);
        if (!mkdtemp(base_dir))
                abort();

        test_offline_noops();
        test_debian_basic(debian_merged, "debian merged-usr");
        test_debian_basic(debian_split, "debian split /lib");
        test_debian_basic(both_libs, "real /lib and /usr/lib");
        test_agent_sequence(debian_merged, "agent sequence debian", ssh_names);
        test_agent_sequence(azure_linux, "agent sequence azure linux", azl_names);
        test_socket_activation(debian_merged, "socket activation debian", "ssh.service", "ssh.socket", ssh_names);
        test_socket_activation(azure_linux, "socket activation azure linux", "sshd.service", "sshd.socket", azl_names);
        test_conflicts();
        test_broken_names();
        test_unsafe();

        {
                Pair p;
                static const char *const names[] = { "libonly.service", "local.service", "ssh.service", NULL };
                pair_init(&p, "lib and usr/local", both_libs);
                op(&p, "enable", "libonly.service");
                op(&p, "enable", "local.service");
                check_states(&p, names);
                op(&p, "disable", "libonly.service");
                check_states(&p, names);
                pair_done(&p);
        }

        if (rm_rf(base_dir) != 0)
                fprintf(stderr, "could not remove %s\n", base_dir);
        return unit_finish();
}
