/* SPDX-License-Identifier: MIT */
/* Offline unit backend: edits the unit-file symlinks of an image tree given with --root DIR, leaving exactly
 * what `systemctl --root=DIR mask|unmask|enable|disable UNIT` of systemd 252 would, and answering
 * get_file_state() with what `systemctl --root=DIR is-enabled UNIT` prints.
 *
 * The image tree is not trusted: every path is resolved with openat2(RESOLVE_IN_ROOT) against an fd of DIR,
 * so absolute or ".." symlinks inside the tree resolve inside the tree, never on the host. (systemctl itself
 * follows such links on the host in a few places; where the two differ we stay inside the root.) Without
 * openat2() (kernel < 5.6, valgrind) the same resolution is done by hand with O_PATH|O_NOFOLLOW fds.
 *
 * The logic mirrors src/shared/install.c of systemd 252 (and was checked against `systemctl --root` 252.39,
 * see tests/unit/test-units-offline.c):
 *   lookup       unit_file_search()/install_info_traverse(): the first entry NAME along the search path (in
 *                Debian's order: .../usr/local/lib, /lib, /usr/lib, so on merged-usr links say /lib/...);
 *                a symlink to /dev/null or an empty file is a mask; a link into the search path is an alias
 *                and the lookup restarts with the target's name; a link outside it to a file of the same
 *                name is a "linked" unit and is followed.
 *   is-enabled   unit_file_lookup_state()/find_symlinks_in_scope(): only etc/systemd/system ("enabled",
 *                "linked") and the /run directories ("enabled-runtime", "linked-runtime") are scanned.
 *   enable       install_info_apply(): Alias= links (never replacing what is there, not even a mask),
 *                WantedBy=/RequiredBy= links (replacing links that point elsewhere), Also= units likewise.
 *                Refused for masked units and for names that are alias links in /etc or /run.
 *   disable      install_context_mark_for_removal()/remove_marked_symlinks(): the names of the unit (and of
 *                its alias targets and Also= units) are marked unless masked, then every symlink under
 *                etc/systemd/system named like a marked unit or resolving to a file of a marked name is
 *                removed, and the directories that became empty on the way up are removed.
 *   mask/unmask  unit_file_mask()/unit_file_unmask(): etc/systemd/system/NAME -> /dev/null, never replacing
 *                anything; unmask removes a symlink reading "/dev/null" or an empty regular file, nothing else.
 * mask/unmask/enable/disable return 1 if they changed the tree and 0 if there was nothing to do. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "apply/units.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"

#define CONFIG_DIR "etc/systemd/system"
#ifndef STRV_FOREACH
#define STRV_FOREACH(s, l) for (char **s = (l); s && *s; s++)
#endif
#define FOLLOW_MAX 64
#define UNIT_NAME_MAX 255
#define UNIT_FILE_MAX (4U * 1024U * 1024U)

/* Search path of systemd 252 (Debian build) for the system scope, in order; paths inside the root. */
typedef enum DirKind {
        DIR_CONTROL,
        DIR_TRANSIENT,
        DIR_GENERATOR,
        DIR_CONFIG,
        DIR_ATTACHED,
        DIR_VENDOR,
} DirKind;

static const struct {
        const char *path;
        DirKind kind;
} search_path[] = {
        { "/etc/systemd/system.control", DIR_CONTROL },
        { "/run/systemd/system.control", DIR_CONTROL },
        { "/run/systemd/transient", DIR_TRANSIENT },
        { "/run/systemd/generator.early", DIR_GENERATOR },
        { "/" CONFIG_DIR, DIR_CONFIG },
        { "/etc/systemd/system.attached", DIR_ATTACHED },
        { "/run/systemd/system", DIR_CONFIG },
        { "/run/systemd/system.attached", DIR_ATTACHED },
        { "/run/systemd/generator", DIR_GENERATOR },
        { "/usr/local/lib/systemd/system", DIR_VENDOR },
        { "/lib/systemd/system", DIR_VENDOR },
        { "/usr/lib/systemd/system", DIR_VENDOR },
        { "/run/systemd/generator.late", DIR_GENERATOR },
};

static const char *const unit_suffixes[] = {
        ".service", ".socket", ".target", ".device", ".mount", ".automount",
        ".swap",    ".timer",  ".path",   ".slice",  ".scope",
};

typedef struct OfflineBackend {
        UnitBackend base;
        int root_fd;
        char *root;      /* as given, for messages */
        char *root_real; /* canonical path of the root on the host, to map /proc/self/fd links back */
} OfflineBackend;

static OfflineBackend *offline(UnitBackend *b) {
        return (OfflineBackend *) b;
}

typedef enum UnitInfoType {
        UNIT_INFO_REGULAR,
        UNIT_INFO_MASKED,
} UnitInfoType;

typedef struct UnitInfo {
        char *name; /* the name the unit file was found under (after following aliases) */
        char *path; /* absolute path inside the root of the unit file or mask */
        UnitInfoType type;
        char **aliases, **wanted_by, **required_by, **also;
        char *default_instance;
        int bad; /* a negative errno if some [Install] value could not be used */
} UnitInfo;

static void unit_info_done(UnitInfo *i) {
        free(i->name);
        free(i->path);
        strv_free(i->aliases);
        strv_free(i->wanted_by);
        strv_free(i->required_by);
        strv_free(i->also);
        free(i->default_instance);
        *i = (UnitInfo) {};
}

static void offline_closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* ---- small string helpers ---------------------------------------------------------------------------- */

static size_t names_count(char **l) {
        size_t n = 0;

        for (; l && l[n]; n++)
                ;
        return n;
}

static bool names_contain(char **l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

/* Appends s (taking ownership) to *l. */
static int names_add_take(char ***l, char *s) {
        size_t n = names_count(*l);
        char **m;

        if (!s)
                return -ENOMEM;
        m = realloc(*l, sizeof(char *) * (n + 2));
        if (!m) {
                free(s);
                return -ENOMEM;
        }
        m[n] = s;
        m[n + 1] = NULL;
        *l = m;
        return 0;
}

static int names_add(char ***l, const char *s) {
        return names_add_take(l, strdup(s));
}

static const char *last_component(const char *p) {
        const char *s = strrchr(p, '/');
        return s ? s + 1 : p;
}

static char *path_join_two(const char *a, const char *b) {
        char *r;
        size_t la = strlen(a);

        while (*b == '/')
                b++;
        if (asprintf(&r, "%s%s%s", a, (la > 0 && a[la - 1] == '/') ? "" : "/", b) < 0)
                return NULL;
        return r;
}

/* Lexical normalisation of an absolute path: collapses "//", "." and, unless keep_dotdot, ".." (".." of
 * "/" is "/"). */
static char *path_normalize_full(const char *p, bool keep_dotdot) {
        size_t n = strlen(p);
        char *r = malloc(n + 2), *o;

        if (!r)
                return NULL;
        o = r;
        *o = '\0';
        for (const char *s = p;;) {
                const char *e;
                size_t len;

                while (*s == '/')
                        s++;
                if (!*s)
                        break;
                e = strchrnul(s, '/');
                len = (size_t) (e - s);
                if (len == 1 && s[0] == '.')
                        ;
                else if (len == 2 && s[0] == '.' && s[1] == '.' && !keep_dotdot) {
                        char *slash = strrchr(r, '/');
                        if (slash)
                                *slash = '\0';
                } else {
                        *o = '\0';
                        o = r + strlen(r);
                        *o++ = '/';
                        memcpy(o, s, len);
                        o += len;
                        *o = '\0';
                }
                o = r + strlen(r);
                s = e;
        }
        if (!*r)
                strcpy(r, "/");
        return r;
}

static char *path_normalize(const char *p) {
        return path_normalize_full(p, false);
}

static bool path_equal_lexical(const char *a, const char *b) {
        _cleanup_free_ char *x = path_normalize(a), *y = path_normalize(b);

        return x && y && streq(x, y);
}

/* Absolute path inside the root of a symlink target, lexically: relative targets are relative to dir. */
static char *symlink_target_abs(const char *dir, const char *target) {
        _cleanup_free_ char *j = NULL;

        if (target[0] == '/')
                return path_normalize(target);
        j = path_join_two(dir, target);
        return j ? path_normalize(j) : NULL;
}

static bool path_has_prefix(const char *path, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(path, prefix, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* ---- unit names (unit-name.c) ------------------------------------------------------------------------ */

typedef enum UnitNameFlags {
        UNIT_NAME_PLAIN = 1 << 0,
        UNIT_NAME_TEMPLATE = 1 << 1,
        UNIT_NAME_INSTANCE = 1 << 2,
        UNIT_NAME_ANY = UNIT_NAME_PLAIN | UNIT_NAME_TEMPLATE | UNIT_NAME_INSTANCE,
} UnitNameFlags;

static bool unit_char_valid(char c, bool allow_at) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               strchr(":-_.\\", c) || (allow_at && c == '@');
}

static const char *unit_suffix(const char *name) {
        const char *dot = strrchr(name, '.');

        if (!dot)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(unit_suffixes); i++)
                if (streq(dot, unit_suffixes[i]))
                        return dot;
        return NULL;
}

static bool unit_name_is_valid(const char *name, UnitNameFlags flags) {
        const char *dot, *at;
        size_t n;

        if (!name || !*name)
                return false;
        n = strlen(name);
        if (n > UNIT_NAME_MAX)
                return false;
        dot = unit_suffix(name);
        if (!dot || dot == name)
                return false;
        at = strchr(name, '@');
        if (at && at > dot)
                return false;
        for (const char *p = name; p < (at ?: dot); p++)
                if (!unit_char_valid(*p, false))
                        return false;
        if (at == name)
                return false;
        if (!at)
                return flags & UNIT_NAME_PLAIN;
        if (at + 1 == dot)
                return flags & UNIT_NAME_TEMPLATE;
        for (const char *p = at + 1; p < dot; p++)
                if (!unit_char_valid(*p, true))
                        return false;
        return flags & UNIT_NAME_INSTANCE;
}

static bool unit_name_same_type(const char *a, const char *b) {
        const char *x = unit_suffix(a), *y = unit_suffix(b);

        return x && y && streq(x, y);
}

/* "foo@bar.service" -> "foo@.service"; -EINVAL if not an instance. */
static int unit_name_template(const char *name, char **ret) {
        const char *at, *dot;
        char *r;

        if (!unit_name_is_valid(name, UNIT_NAME_INSTANCE))
                return -EINVAL;
        at = strchr(name, '@');
        dot = strrchr(name, '.');
        if (asprintf(&r, "%.*s%s", (int) (at - name + 1), name, dot) < 0)
                return -ENOMEM;
        *ret = r;
        return 0;
}

/* "foo@.service" + "bar" -> "foo@bar.service". */
static int unit_name_replace_instance(const char *name, const char *instance, char **ret) {
        const char *at = strchr(name, '@'), *dot = strrchr(name, '.');
        char *r;

        if (!at || !dot || at > dot)
                return -EINVAL;
        if (asprintf(&r, "%.*s%s%s", (int) (at - name + 1), name, instance, dot) < 0)
                return -ENOMEM;
        *ret = r;
        return 0;
}

static bool template_matches(const char *name, const char *template_name) {
        _cleanup_free_ char *t = NULL;

        return unit_name_template(name, &t) >= 0 && streq(t, template_name);
}

/* ---- paths inside the root --------------------------------------------------------------------------- */

/* Opens PATH (absolute or relative, as seen inside the root) with symlinks resolved inside the root
 * (openat2 RESOLVE_IN_ROOT, or the same by hand where openat2 is refused: fs-util.c). */
static int root_open(OfflineBackend *b, const char *path, int flags) {
        return open_in_root(b->root_fd, path, flags, 0);
}

/* The path inside the root of an fd opened by root_open(). */
static int root_fd_path(OfflineBackend *b, int fd, char **ret) {
        char proc[64], buf[PATH_MAX];
        ssize_t n;
        size_t rl = strlen(b->root_real);
        const char *rest;
        char *r;

        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        n = readlink(proc, buf, sizeof buf - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';

        if (streq(b->root_real, "/"))
                rest = buf;
        else if (strncmp(buf, b->root_real, rl) == 0 && (buf[rl] == '/' || buf[rl] == '\0'))
                rest = buf + rl;
        else
                return -EXDEV;

        r = strdup(*rest ? rest : "/");
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

/* Splits PATH into its directory (opened O_PATH inside the root) and its last component. */
static int root_open_parent(OfflineBackend *b, const char *path, int flags, const char **ret_base) {
        _cleanup_free_ char *dir = NULL;
        const char *base = last_component(path);

        dir = strndup(path, (size_t) (base - path));
        if (!dir)
                return -ENOMEM;
        *ret_base = base;
        return root_open(b, dir, (flags ?: O_PATH) | O_DIRECTORY);
}

static int offline_readlinkat(int dfd, const char *name, char **ret) {
        char buf[PATH_MAX];
        ssize_t n;
        char *r;

        n = readlinkat(dfd, name, buf, sizeof buf - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        r = strdup(buf);
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

/* Like chase_symlinks(CHASE_NONEXISTENT) with the root as "/": follows all symlinks of PATH inside the
 * root. When a component is missing the rest is kept as written (normalised) and *ret_st is not set.
 * Returns 1 if the resolved path exists, 0 if not. */
static int root_chase(OfflineBackend *b, const char *path, char **ret_path, struct stat *ret_st) {
        _cleanup_free_ char *cur = strdup(path);

        if (!cur)
                return -ENOMEM;

        for (int hops = 0; hops < FOLLOW_MAX; hops++) {
                _cleanup_free_ char *dir = NULL, *target = NULL, *joined = NULL;
                _cleanup_close_ int dfd = -1;
                const char *base;
                struct stat st;
                int r;

                if (streq(cur, "/")) {
                        if (fstat(b->root_fd, &st) < 0)
                                return -errno;
                        if (ret_st)
                                *ret_st = st;
                        *ret_path = TAKE_PTR(cur);
                        return 1;
                }

                dfd = root_open_parent(b, cur, 0, &base);
                if (dfd == -ENOENT || dfd == -ENOTDIR) {
                        *ret_path = path_normalize(cur);
                        return *ret_path ? 0 : -ENOMEM;
                }
                if (dfd < 0)
                        return dfd;

                r = root_fd_path(b, dfd, &dir);
                if (r < 0)
                        return r;

                joined = path_join_two(dir, base);
                if (!joined)
                        return -ENOMEM;

                if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT)
                                return -errno;
                        *ret_path = TAKE_PTR(joined);
                        return 0;
                }
                if (!S_ISLNK(st.st_mode)) {
                        if (ret_st)
                                *ret_st = st;
                        *ret_path = TAKE_PTR(joined);
                        return 1;
                }

                r = offline_readlinkat(dfd, base, &target);
                if (r < 0)
                        return r;
                /* Relative to the real directory of the link; ".." is left to the kernel, which resolves
                 * the components before it first. */
                free(cur);
                cur = target[0] == '/' ? strdup(target) : path_join_two(dir, target);
                if (!cur)
                        return -ENOMEM;
        }
        return -ELOOP;
}

/* mkdir -p of PATH's parent directories inside the root, mode 0755 like systemd's mkdir_parents(). */
static int root_mkdir_parents(OfflineBackend *b, const char *path) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;

        for (char *e = strchr(p + 1, '/'); e; e = strchr(e + 1, '/')) {
                _cleanup_close_ int fd = -1;

                *e = '\0';
                fd = root_open(b, p, O_PATH | O_DIRECTORY);
                if (fd == -ENOENT) {
                        _cleanup_close_ int pfd = -1;
                        const char *base;

                        pfd = root_open_parent(b, p, 0, &base);
                        if (pfd < 0)
                                return pfd;
                        if (mkdirat(pfd, base, 0755) < 0 && errno != EEXIST)
                                return -errno;
                } else if (fd < 0)
                        return fd;
                *e = '/';
        }
        return 0;
}

/* ---- [Install] parsing (a conservative subset of conf-parser.c) -------------------------------------- */

/* extract_first_word(EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE): whitespace-separated words, quotes removed. */
static int extract_word(const char **p, char **ret) {
        const char *s = *p;
        char *w, *o;
        char quote = 0;

        s += strspn(s, " \t\n\r");
        if (!*s) {
                *p = s;
                *ret = NULL;
                return 0;
        }
        w = malloc(strlen(s) + 1);
        if (!w)
                return -ENOMEM;
        o = w;
        for (; *s; s++) {
                if (quote) {
                        if (*s == quote)
                                quote = 0;
                        else
                                *o++ = *s;
                } else if (*s == '"' || *s == '\'')
                        quote = *s;
                else if (strchr(" \t\n\r", *s))
                        break;
                else if (*s == '\\' && s[1]) {
                        *o++ = *s++;
                        *o++ = *s;
                } else
                        *o++ = *s;
        }
        *o = '\0';
        if (quote) {
                free(w);
                return -EINVAL; /* unbalanced quotes */
        }
        *p = s;
        *ret = w;
        return 1;
}

/* install_name_printf(): the specifiers that make sense in [Install] names. */
static int install_name_printf(const char *unit, const char *in, char **ret) {
        _cleanup_free_ char *prefix = NULL, *instance = NULL, *name_noext = NULL;
        const char *at = strchr(unit, '@'), *dot = strrchr(unit, '.');
        size_t cap = strlen(in) + 1, len = 0;
        _cleanup_free_ char *out = NULL;

        name_noext = strndup(unit, dot ? (size_t) (dot - unit) : strlen(unit));
        prefix = strndup(unit, at ? (size_t) (at - unit) : strlen(name_noext ?: ""));
        instance = at && dot ? strndup(at + 1, (size_t) (dot - at - 1)) : strdup("");
        if (!name_noext || !prefix || !instance)
                return -ENOMEM;

        for (const char *s = in; *s; s++) {
                const char *add;
                char one[2] = { *s, 0 };

                if (*s != '%')
                        add = one;
                else {
                        s++;
                        switch (*s) {
                        case 'n': add = unit; break;
                        case 'N': add = name_noext; break;
                        case 'p': add = prefix; break;
                        case 'i': add = instance; break;
                        case '%': add = "%"; break;
                        default: return -EBADMSG;
                        }
                }
                size_t al = strlen(add);
                if (!out || len + al + 1 > cap) {
                        cap = (len + al + 1) * 2;
                        char *n = realloc(out, cap);
                        if (!n)
                                return -ENOMEM;
                        out = n;
                }
                memcpy(out + len, add, al);
                len += al;
                out[len] = '\0';
        }
        if (!out) {
                out = strdup("");
                if (!out)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

/* A value we cannot use exactly as systemctl would (an unsupported specifier, not a unit name, unbalanced
 * quotes) is logged and remembered in info->bad: get_file_state() still answers, enable refuses. */
static int install_value_bad(UnitInfo *info, int error, const char *path, unsigned line, const char *key,
                             const char *value, const char *why) {
        if (info->bad == 0)
                info->bad = -abs(error);
        log_warning_errno(error, "%s:%u: %s=%s: %s, ignoring: %m", path, line, key, value, why);
        return 0;
}

static int parse_install_value(UnitInfo *info, const char *path, unsigned line, const char *key, const char *value) {
        char ***list = NULL;
        int r;

        if (streq(key, "Alias"))
                list = &info->aliases;
        else if (streq(key, "WantedBy"))
                list = &info->wanted_by;
        else if (streq(key, "RequiredBy"))
                list = &info->required_by;
        else if (streq(key, "Also"))
                list = &info->also;
        else if (streq(key, "DefaultInstance")) {
                _cleanup_free_ char *v = NULL;

                r = install_name_printf(info->name, value, &v);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0 || !*v || strchr(v, '/'))
                        return install_value_bad(info, r < 0 ? r : -EINVAL, path, line, key, value,
                                                 "not a usable instance name");
                free(info->default_instance);
                info->default_instance = TAKE_PTR(v);
                return 0;
        } else
                return 0; /* unknown keys are ignored, like systemd does (UpheldBy= is not an [Install] key in 252) */

        if (!*value) { /* an empty assignment resets the list */
                *list = strv_free(*list);
                return 0;
        }

        for (const char *p = value;;) {
                _cleanup_free_ char *word = NULL, *expanded = NULL;

                r = extract_word(&p, &word);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return install_value_bad(info, r, path, line, key, value, "cannot split into words");
                if (r == 0)
                        break;
                r = install_name_printf(info->name, word, &expanded);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        install_value_bad(info, r, path, line, key, word, "unsupported specifier");
                        continue;
                }
                if (!unit_name_is_valid(expanded, UNIT_NAME_ANY)) {
                        install_value_bad(info, -EINVAL, path, line, key, expanded, "not a valid unit name");
                        continue;
                }
                if (names_contain(*list, expanded))
                        continue;
                r = names_add_take(list, TAKE_PTR(expanded));
                if (r < 0)
                        return log_oom();
        }
        return 0;
}

static char *strip_ws(char *s) {
        char *e;

        s += strspn(s, " \t\n\r");
        e = s + strlen(s);
        while (e > s && strchr(" \t\n\r", e[-1]))
                *--e = '\0';
        return s;
}

/* Reads the [Install] section of the unit file fd (regular file). */
static int parse_install_section(int fd, const char *path, UnitInfo *info) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *buf = NULL, *cont = NULL;
        size_t bufsz = 0, total = 0;
        bool in_install = false;
        unsigned line = 0;

        f = fdopen(fd, "re");
        if (!f) {
                close(fd);
                return -errno;
        }

        for (;;) {
                ssize_t n = getline(&buf, &bufsz, f);
                char *l;
                bool escaped = false;

                if (n < 0) {
                        if (ferror(f))
                                return -EIO;
                        if (!cont)
                                break;
                        /* EOF in a continuation: process what we have. */
                        l = cont;
                } else {
                        line++;
                        total += (size_t) n;
                        if (total > UNIT_FILE_MAX)
                                return -EFBIG;
                        if (n > 0 && buf[n - 1] == '\n')
                                buf[--n] = '\0';
                        if (memchr(buf, '\0', (size_t) n))
                                return -EBADMSG;

                        /* Comments, also inside a continuation (where they are dropped). */
                        const char *t = buf + strspn(buf, " \t");
                        if (*t == '#' || *t == ';')
                                continue;

                        for (const char *e = buf; *e; e++)
                                escaped = escaped ? false : *e == '\\';

                        if (escaped)
                                buf[n - 1] = ' ';

                        if (cont) {
                                size_t cl = strlen(cont);
                                char *m = realloc(cont, cl + strlen(buf) + 1);
                                if (!m)
                                        return -ENOMEM;
                                strcpy(m + cl, buf);
                                cont = m;
                        } else if (escaped) {
                                cont = strdup(buf);
                                if (!cont)
                                        return -ENOMEM;
                        }
                        if (escaped)
                                continue;
                        l = cont ?: buf;
                }

                l = strip_ws(l);
                if (*l == '[') {
                        size_t k = strlen(l);
                        if (k < 2 || l[k - 1] != ']')
                                log_debug("%s:%u: Invalid section header, ignoring.", path, line);
                        else
                                in_install = k == strlen("[Install]") && strncmp(l, "[Install]", k) == 0;
                } else if (*l && in_install) {
                        char *eq = strchr(l, '=');
                        if (!eq)
                                log_debug("%s:%u: Missing '=', ignoring line.", path, line);
                        else {
                                *eq = '\0';
                                int r = parse_install_value(info, path, line, strip_ws(l), strip_ws(eq + 1));
                                if (r < 0)
                                        return r;
                        }
                }

                free(cont);
                cont = NULL;
                if (n < 0)
                        break;
        }
        return 0;
}

/* ---- lookup (unit_file_search() + install_info_traverse()) ------------------------------------------- */

static bool stat_null_or_empty(const struct stat *st) {
        return (S_ISREG(st->st_mode) && st->st_size <= 0) || S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode);
}

/* The first directory of the search path holding an entry NAME (of any type). */
static int unit_search(OfflineBackend *b, const char *name, char **ret_path) {
        for (size_t i = 0; i < ELEMENTSOF(search_path); i++) {
                _cleanup_close_ int dfd = root_open(b, search_path[i].path, O_PATH | O_DIRECTORY);
                struct stat st;

                if (dfd == -ENOENT || dfd == -ENOTDIR)
                        continue;
                if (dfd < 0)
                        return log_error_errno(dfd, "Failed to open %s%s: %m", b->root, search_path[i].path);
                if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return log_error_errno(errno, "Failed to stat %s%s/%s: %m", b->root, search_path[i].path, name);
                }
                *ret_path = path_join_two(search_path[i].path, name);
                return *ret_path ? 0 : -ENOMEM;
        }
        return -ENOENT;
}

/* Loads the unit file or mask at PATH into INFO. Returns 0, or 1 if PATH is a symlink to another file,
 * whose absolute path inside the root is then returned in *ret_target. */
static int unit_load(OfflineBackend *b, const char *path, UnitInfo *info, char **ret_target) {
        _cleanup_close_ int dfd = -1;
        const char *base;
        struct stat st;
        int fd, r;

        dfd = root_open_parent(b, path, 0, &base);
        if (dfd < 0)
                return dfd;
        if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;

        if (S_ISLNK(st.st_mode)) {
                _cleanup_free_ char *target = NULL, *resolved = NULL, *dir = NULL;
                struct stat tst;

                r = root_chase(b, path, &resolved, &tst);
                if (r < 0)
                        return r;
                if (streq(resolved, "/dev/null") || (r > 0 && stat_null_or_empty(&tst))) {
                        info->type = UNIT_INFO_MASKED;
                        return 0;
                }

                r = offline_readlinkat(dfd, base, &target);
                if (r < 0)
                        return r;
                dir = strndup(path, (size_t) (base - path));
                if (!dir)
                        return -ENOMEM;
                *ret_target = symlink_target_abs(dir, target);
                if (!*ret_target)
                        return -ENOMEM;
                return 1;
        }

        if (stat_null_or_empty(&st)) {
                info->type = UNIT_INFO_MASKED;
                return 0;
        }
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -ENOTTY;

        fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        if (!S_ISREG(st.st_mode)) { /* swapped since the fstatat() above */
                close(fd);
                return -ENOTTY;
        }
        r = parse_install_section(fd, path, info); /* takes fd */
        if (r < 0)
                return r;
        info->type = UNIT_INFO_REGULAR;
        return 0;
}

static bool path_in_search_path(const char *path) {
        for (size_t i = 0; i < ELEMENTSOF(search_path); i++)
                if (path_has_prefix(path, search_path[i].path))
                        return true;
        return false;
}

static bool path_in_config_dir(const char *path) {
        const char *base = last_component(path);
        size_t n = (size_t) (base - path);

        return (n == strlen("/" CONFIG_DIR "/") && strncmp(path, "/" CONFIG_DIR "/", n) == 0) ||
               (n == strlen("/run/systemd/system/") && strncmp(path, "/run/systemd/system/", n) == 0);
}

/* Resolves NAME like systemctl does: returns the unit file (or mask) it ends at. Every other name reached
 * through an alias symlink is appended to *hops (if given), as systemd queues it for processing too.
 * -ENOENT if NAME does not exist, -ENOLINK if it is an alias pointing to a name that does not exist,
 * -ELOOP with refuse_config_alias if NAME is an alias link in etc/systemd/system or run/systemd/system
 * (`systemctl enable` refuses to operate on those, while vendor aliases are fine). */
static int unit_lookup(OfflineBackend *b, const char *name, bool refuse_config_alias, UnitInfo *ret, char ***hops) {
        _cleanup_free_ char *cur = strdup(name);
        int r;

        if (!cur)
                return -ENOMEM;

        for (int n = 0; n < FOLLOW_MAX; n++) {
                _cleanup_free_ char *path = NULL;

                r = unit_search(b, cur, &path);
                if (r == -ENOENT && unit_name_is_valid(cur, UNIT_NAME_INSTANCE)) {
                        _cleanup_free_ char *template = NULL;

                        r = unit_name_template(cur, &template);
                        if (r < 0)
                                return r;
                        r = unit_search(b, template, &path);
                }
                if (r == -ENOENT)
                        return n > 0 ? -ENOLINK : -ENOENT;
                if (r < 0)
                        return r;

                for (; n < FOLLOW_MAX; n++) {
                        _cleanup_(unit_info_done) UnitInfo info = { .name = strdup(cur) };
                        _cleanup_free_ char *target = NULL;
                        const char *bn;

                        if (!info.name)
                                return -ENOMEM;

                        r = unit_load(b, path, &info, &target);
                        if (r < 0)
                                return r;
                        if (r == 0) {
                                info.path = TAKE_PTR(path);
                                *ret = info;
                                info = (UnitInfo) {};
                                return 0;
                        }

                        bn = last_component(target);
                        if (!unit_name_is_valid(bn, UNIT_NAME_ANY) || !unit_name_same_type(bn, cur) ||
                            (unit_name_is_valid(cur, UNIT_NAME_PLAIN) && !unit_name_is_valid(bn, UNIT_NAME_PLAIN)) ||
                            (unit_name_is_valid(cur, UNIT_NAME_TEMPLATE) && !unit_name_is_valid(bn, UNIT_NAME_TEMPLATE)))
                                return -EXDEV;

                        if (path_in_search_path(target)) {
                                /* unit_file_resolve_symlink(): a link into the search path is an alias, and
                                 * one to a file of its own name is an alias to itself, which systemd rejects. */
                                if (streq(bn, last_component(path)))
                                        return -ELOOP;
                        } else if (streq(bn, cur) || streq(bn, last_component(path))) {
                                /* A link to a file of the same name outside the search path ("linked" unit):
                                 * load that file. */
                                free(path);
                                path = TAKE_PTR(target);
                                continue;
                        }

                        /* An alias: look the target's name up along the search path again. */
                        if (refuse_config_alias && path_in_config_dir(path))
                                return -ELOOP;
                        free(cur);
                        if (unit_name_is_valid(info.name, UNIT_NAME_INSTANCE) && unit_name_is_valid(bn, UNIT_NAME_TEMPLATE)) {
                                const char *at = strchr(info.name, '@'), *dot = strrchr(info.name, '.');
                                _cleanup_free_ char *inst = strndup(at + 1, (size_t) (dot - at - 1));

                                if (!inst)
                                        return -ENOMEM;
                                cur = NULL;
                                r = unit_name_replace_instance(bn, inst, &cur);
                                if (r < 0)
                                        return r;
                        } else {
                                cur = strdup(bn);
                                if (!cur)
                                        return -ENOMEM;
                        }
                        if (hops && !names_contain(*hops, cur)) {
                                r = names_add(hops, cur);
                                if (r < 0)
                                        return r;
                        }
                        break;
                }
        }
        return -ELOOP;
}

static bool path_is_runtime(const char *path) {
        return path_has_prefix(path, "/run");
}

static DirKind path_dir_kind(const char *path) {
        for (size_t i = 0; i < ELEMENTSOF(search_path); i++)
                if (path_has_prefix(path, search_path[i].path))
                        return search_path[i].kind;
        return DIR_VENDOR;
}

/* ---- is-enabled (unit_file_lookup_state()) ----------------------------------------------------------- */

static bool is_known_name(const UnitInfo *info, const char *name) {
        _cleanup_free_ char *instance = NULL;

        if (streq(name, info->name) || names_contain(info->aliases, name))
                return true;
        /* the instance DefaultInstance= enables */
        return info->default_instance && unit_name_is_valid(name, UNIT_NAME_INSTANCE) &&
               unit_name_replace_instance(info->name, info->default_instance, &instance) >= 0 && streq(name, instance);
}

static bool str_endswith(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix);
}

/* find_symlinks(): 1 if DIR (a config directory) enables INFO; *same_name_link if it only "links" it. */
static int find_symlinks(OfflineBackend *b, const char *dir, const UnitInfo *info, bool match_name,
                         bool ignore_same_name, bool *same_name_link) {
        _cleanup_(offline_closedirp) DIR *d = NULL;
        struct dirent *de;
        int fd;

        fd = root_open(b, dir, O_RDONLY | O_DIRECTORY);
        if (fd == -ENOENT || fd == -ENOTDIR)
                return 0;
        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }

        /* .wants/, .requires/, .upholds/: the link's name counts, not its destination. */
        while ((de = readdir(d))) {
                _cleanup_(offline_closedirp) DIR *sub = NULL;
                struct dirent *se;
                struct stat st;
                int sfd;

                if (!str_endswith(de->d_name, ".wants") && !str_endswith(de->d_name, ".requires") &&
                    !str_endswith(de->d_name, ".upholds"))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sfd < 0)
                        continue;
                sub = fdopendir(sfd);
                if (!sub) {
                        close(sfd);
                        continue;
                }
                while ((se = readdir(sub))) {
                        if (fstatat(sfd, se->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
                                continue;
                        if (!streq(se->d_name, info->name) && !template_matches(se->d_name, info->name))
                                continue;
                        if (!match_name || is_known_name(info, se->d_name))
                                return 1;
                }
        }

        /* Top level: aliases (links named otherwise pointing to the unit) and same-name links. */
        rewinddir(d);
        while ((de = readdir(d))) {
                _cleanup_free_ char *dest = NULL;
                bool found_path, found_dest;
                struct stat st;

                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
                        continue;
                if (offline_readlinkat(dirfd(d), de->d_name, &dest) < 0)
                        continue;
                found_dest = streq(last_component(dest), info->name);
                found_path = !ignore_same_name && streq(de->d_name, info->name);
                if (found_path && found_dest)
                        *same_name_link = true;
                else if ((found_path || found_dest) && (!match_name || is_known_name(info, de->d_name)))
                        return 1;
        }
        return 0;
}

/* find_symlinks_in_scope(): only etc/systemd/system and the /run directories enable a unit. */
static int find_symlinks_in_scope(OfflineBackend *b, const UnitInfo *info, bool match_name, const char **ret_state) {
        bool same_config = false, same_runtime = false, enabled_runtime = false, ignore_same_name = false;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(search_path); i++) {
                const char *dir = search_path[i].path;
                bool persistent = streq(dir, "/" CONFIG_DIR), same = false;

                if (persistent || path_is_runtime(dir)) {
                        r = find_symlinks(b, dir, info, match_name, ignore_same_name, &same);
                        if (r < 0)
                                return r;
                        if (r > 0) {
                                if (persistent) {
                                        *ret_state = "enabled";
                                        return 1;
                                }
                                enabled_runtime = true;
                        } else if (same) {
                                if (persistent)
                                        same_config = true;
                                else
                                        same_runtime = true;
                        }
                }
                if (!ignore_same_name && path_has_prefix(info->path, dir))
                        ignore_same_name = true;
        }

        if (enabled_runtime)
                *ret_state = "enabled-runtime";
        else if (same_config)
                *ret_state = "linked";
        else if (same_runtime)
                *ret_state = "linked-runtime";
        else
                return 0;
        return 1;
}

static int offline_get_file_state(UnitBackend *backend, const char *unit, char **ret_state) {
        OfflineBackend *b = offline(backend);
        _cleanup_(unit_info_done) UnitInfo info = {};
        const char *state = NULL;
        char *s;
        int r;

        if (!unit_name_is_valid(unit, UNIT_NAME_ANY))
                return log_error_errno(-EINVAL, "Invalid unit name \"%s\": %m", unit);

        r = unit_lookup(b, unit, false, &info, NULL);
        if (r == -ENOENT)
                state = "not-found";
        else if (r == -ENOLINK) /* an alias link to a name that does not exist: systemctl fails the same way */
                return log_error_errno(r, "Failed to get unit file state for %s in %s: alias to a missing unit: %m",
                                       unit, b->root);
        else if (r < 0)
                return log_error_errno(r, "Failed to get unit file state for %s in %s: %m", unit, b->root);
        else if (info.type == UNIT_INFO_MASKED)
                state = path_is_runtime(info.path) ? "masked-runtime" : "masked";
        else if (!streq(unit, last_component(info.path)) && !unit_name_is_valid(info.name, UNIT_NAME_INSTANCE))
                state = "alias";
        else if (path_dir_kind(info.path) == DIR_GENERATOR)
                state = "generated";
        else if (path_dir_kind(info.path) == DIR_TRANSIENT)
                state = "transient";
        else {
                r = find_symlinks_in_scope(b, &info, true, &state);
                if (r == 0) {
                        r = find_symlinks_in_scope(b, &info, false, &state);
                        if (r > 0)
                                state = "indirect";
                }
                if (r < 0)
                        return log_error_errno(r, "Failed to scan for links to %s in %s: %m", unit, b->root);
                if (r == 0) {
                        if (info.aliases || info.wanted_by || info.required_by)
                                state = "disabled";
                        else if (info.also)
                                state = "indirect";
                        else
                                state = "static";
                }
        }

        s = strdup(state);
        if (!s)
                return log_oom();
        *ret_state = s;
        return 0;
}

static int offline_resolve_name(UnitBackend *backend, const char *unit, char **ret_name) {
        OfflineBackend *b = offline(backend);
        _cleanup_(unit_info_done) UnitInfo info = {};
        int r;

        if (!unit_name_is_valid(unit, UNIT_NAME_ANY))
                return log_error_errno(-EINVAL, "Invalid unit name \"%s\": %m", unit);

        r = unit_lookup(b, unit, false, &info, NULL);
        if (r == -ENOENT || r == -ENOLINK)
                return -ENOENT;
        if (r < 0)
                return log_error_errno(r, "Failed to look up %s in %s: %m", unit, b->root);
        *ret_name = TAKE_PTR(info.name);
        return 0;
}

/* ---- changing links (create_symlink(), remove_marked_symlinks()) ------------------------------------- */

static char *symlink_target_join(const char *dir, const char *target) {
        _cleanup_free_ char *j = target[0] == '/' ? strdup(target) : path_join_two(dir, target);

        return j ? path_normalize_full(j, true) : NULL;
}

/* chroot_unit_symlinks_equivalent(): the same path (".." is not collapsed, as path_equal() does not), or
 * both resolving to the same existing file. */
static bool symlinks_equivalent(OfflineBackend *b, const char *link_dir, const char *a, const char *b_target) {
        _cleanup_free_ char *x = symlink_target_join(link_dir, a), *y = symlink_target_join(link_dir, b_target);
        _cleanup_close_ int fx = -1, fy = -1;
        struct stat sx, sy;

        if (!x || !y)
                return false;
        if (streq(x, y))
                return true;
        fx = root_open(b, x, O_PATH);
        fy = root_open(b, y, O_PATH);
        return fx >= 0 && fy >= 0 && fstat(fx, &sx) >= 0 && fstat(fy, &sy) >= 0 && sx.st_dev == sy.st_dev &&
               sx.st_ino == sy.st_ino;
}

/* Creates LINK (a path inside the root) pointing to TARGET. Returns 1 if created or replaced, 0 if an
 * equivalent link is already there, -EEXIST if something else is there (replaced only with force). */
static int create_symlink(OfflineBackend *b, const char *unit, const char *target, const char *link, bool force) {
        _cleanup_free_ char *dest = NULL, *dir = NULL, *tmp = NULL;
        _cleanup_close_ int dfd = -1;
        static unsigned counter;
        const char *base;
        int r;

        r = root_mkdir_parents(b, link);
        if (r < 0)
                return log_error_errno(r, "Failed to create the parent directories of %s%s for %s: %m", b->root,
                                       link, unit);

        dfd = root_open_parent(b, link, 0, &base);
        if (dfd < 0)
                return log_error_errno(dfd, "Failed to open the directory of %s%s for %s: %m", b->root, link, unit);

        if (symlinkat(target, dfd, base) >= 0) {
                log_info("Created symlink %s%s → %s.", b->root, link, target);
                return 1;
        }
        if (errno != EEXIST)
                return log_error_errno(errno, "Failed to create symlink %s%s → %s for %s: %m", b->root, link, target,
                                       unit);

        r = offline_readlinkat(dfd, base, &dest);
        if (r == -EINVAL)
                return log_error_errno(-EEXIST, "Cannot link %s: %s%s already exists and is not a symlink: %m", unit,
                                       b->root, link);
        if (r < 0)
                return log_error_errno(r, "Failed to read symlink %s%s for %s: %m", b->root, link, unit);

        dir = strndup(link, (size_t) (base - link));
        if (!dir)
                return log_oom();
        if (symlinks_equivalent(b, dir, dest, target))
                return 0;
        if (!force)
                return log_error_errno(-EEXIST, "Cannot link %s: %s%s already exists and is a symlink to %s: %m",
                                       unit, b->root, link, dest);

        if (asprintf(&tmp, ".#%s.%d.%u", base, (int) getpid(), counter++) < 0)
                return log_oom();
        if (symlinkat(target, dfd, tmp) < 0)
                return log_error_errno(errno, "Failed to create symlink %s%s%s for %s: %m", b->root, dir, tmp, unit);
        if (renameat(dfd, tmp, dfd, base) < 0) {
                r = -errno;
                (void) unlinkat(dfd, tmp, 0);
                return log_error_errno(r, "Failed to replace symlink %s%s for %s: %m", b->root, link, unit);
        }
        log_info("Replaced symlink %s%s → %s (was → %s).", b->root, link, target, dest);
        return 1;
}

typedef struct RemoveContext {
        OfflineBackend *b;
        const char *unit;
        char **names; /* marked unit names */
        int changed;
} RemoveContext;

static bool link_is_marked(RemoveContext *c, const char *dir, const char *name) {
        _cleanup_free_ char *t = NULL, *p = NULL, *resolved = NULL;
        int r;

        if (names_contain(c->names, name))
                return true;
        if (unit_name_template(name, &t) >= 0 && names_contain(c->names, t))
                return true;

        p = path_join_two(dir, name);
        if (!p)
                return false;
        r = root_chase(c->b, p, &resolved, NULL);
        if (r < 0)
                return false;
        return names_contain(c->names, last_component(resolved));
}

/* remove_marked_symlinks_fd(): walks DIR (inside the root, fd dfd) recursively. Returns 1 if something
 * was removed in this subtree, so that the caller removes the directory if it became empty. */
static int remove_marked_symlinks_fd(RemoveContext *c, int dfd, const char *dir) {
        _cleanup_(offline_closedirp) DIR *d = NULL;
        struct dirent *de;
        int fd, r = 0, removed = 0;

        fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }

        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                path = path_join_two(dir, de->d_name);
                if (!path)
                        return -ENOMEM;

                if (S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int sfd = -1;
                        int q;

                        sfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sfd < 0) {
                                if (errno != ENOENT && r == 0)
                                        r = -errno;
                                continue;
                        }
                        q = remove_marked_symlinks_fd(c, sfd, path);
                        if (q < 0) {
                                if (r == 0)
                                        r = q;
                        } else if (q > 0) {
                                removed = 1;
                                /* rmdir_parents(): a directory that became empty goes too. */
                                if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) >= 0)
                                        log_debug("Removed empty directory %s%s.", c->b->root, path);
                        }
                } else if (S_ISLNK(st.st_mode)) {
                        if (!unit_name_is_valid(de->d_name, UNIT_NAME_ANY))
                                continue;
                        if (!link_is_marked(c, dir, de->d_name))
                                continue;
                        if (unlinkat(dfd, de->d_name, 0) < 0) {
                                if (errno == ENOENT)
                                        continue;
                                log_error_errno(errno, "Failed to remove %s%s (disabling %s): %m", c->b->root, path,
                                                c->unit);
                                if (r == 0)
                                        r = -errno;
                                continue;
                        }
                        log_info("Removed \"%s%s\".", c->b->root, path);
                        removed = 1;
                        c->changed = 1;
                }
        }
        return r < 0 ? r : removed;
}

static int remove_marked_symlinks(RemoveContext *c) {
        _cleanup_close_ int dfd = -1;
        int r;

        if (!c->names)
                return 0;
        dfd = root_open(c->b, "/" CONFIG_DIR, O_RDONLY | O_DIRECTORY);
        if (dfd == -ENOENT || dfd == -ENOTDIR)
                return 0;
        if (dfd < 0)
                return log_error_errno(dfd, "Failed to open %s/%s: %m", c->b->root, CONFIG_DIR);
        r = remove_marked_symlinks_fd(c, dfd, "/" CONFIG_DIR);
        return r < 0 ? r : 0;
}

/* ---- the vtable -------------------------------------------------------------------------------------- */

static int config_path_of(const char *name, const char *middle, const char *suffix, char **ret) {
        char *p;

        if (asprintf(&p, "/%s/%s%s%s", CONFIG_DIR, name, middle ?: "", suffix ?: "") < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int offline_mask(UnitBackend *backend, const char *unit) {
        OfflineBackend *b = offline(backend);
        _cleanup_free_ char *link = NULL;
        int r;

        if (!unit_name_is_valid(unit, UNIT_NAME_ANY))
                return log_error_errno(-EINVAL, "Cannot mask \"%s\": not a valid unit name: %m", unit);
        r = config_path_of(unit, NULL, NULL, &link);
        if (r < 0)
                return log_oom();
        return create_symlink(b, unit, "/dev/null", link, true); /* like mask --force: replaces a link */
}

static int offline_unmask(UnitBackend *backend, const char *unit) {
        OfflineBackend *b = offline(backend);
        _cleanup_free_ char *link = NULL, *dest = NULL;
        _cleanup_close_ int dfd = -1;
        const char *base;
        struct stat st;
        int r;

        if (!unit_name_is_valid(unit, UNIT_NAME_ANY))
                return log_error_errno(-EINVAL, "Cannot unmask \"%s\": not a valid unit name: %m", unit);
        r = config_path_of(unit, NULL, NULL, &link);
        if (r < 0)
                return log_oom();

        dfd = root_open_parent(b, link, 0, &base);
        if (dfd == -ENOENT || dfd == -ENOTDIR)
                return 0;
        if (dfd < 0)
                return log_error_errno(dfd, "Cannot unmask %s: failed to open %s/%s: %m", unit, b->root, CONFIG_DIR);
        if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(errno, "Cannot unmask %s: failed to stat %s%s: %m", unit, b->root, link);
        }

        /* Like systemctl --root: a link whose target reads /dev/null, or an empty file. Other masks
         * (a relative link that would resolve to dev/null inside the root) are left alone, as systemctl does. */
        if (S_ISLNK(st.st_mode)) {
                r = offline_readlinkat(dfd, base, &dest);
                if (r < 0)
                        return log_error_errno(r, "Cannot unmask %s: failed to read %s%s: %m", unit, b->root, link);
                if (!path_equal_lexical(dest, "/dev/null") || dest[0] != '/')
                        return 0;
        } else if (!S_ISREG(st.st_mode) || st.st_size > 0)
                return 0;

        if (unlinkat(dfd, base, 0) < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(errno, "Failed to unmask %s: cannot remove %s%s: %m", unit, b->root, link);
        }
        log_info("Removed \"%s%s\".", b->root, link);
        return 1;
}

static int install_info_apply(OfflineBackend *b, const UnitInfo *info) {
        static const struct {
                size_t offset;
                const char *suffix;
        } deps[] = {
                { offsetof(UnitInfo, wanted_by), ".wants/" },
                { offsetof(UnitInfo, required_by), ".requires/" },
        };
        _cleanup_free_ char *instance_name = NULL;
        const char *n = info->name;
        int r = 0, q, changed = 0;

        STRV_FOREACH(a, info->aliases) {
                _cleanup_free_ char *link = NULL;

                if (streq(*a, info->name))
                        continue;
                if (!unit_name_same_type(*a, info->name) ||
                    unit_name_is_valid(*a, UNIT_NAME_TEMPLATE) != unit_name_is_valid(info->name, UNIT_NAME_TEMPLATE)) {
                        q = log_error_errno(-EXDEV, "Cannot enable %s: invalid Alias=%s: %m", info->name, *a);
                        if (r == 0)
                                r = q;
                        continue;
                }
                if (config_path_of(*a, NULL, NULL, &link) < 0)
                        return log_oom();
                /* systemctl 252 never replaces what is there, not even a dangling link or a mask. */
                q = create_symlink(b, info->name, info->path, link, false);
                if (q < 0) {
                        if (r == 0)
                                r = q;
                } else if (q > 0)
                        changed = 1;
        }

        if (unit_name_is_valid(info->name, UNIT_NAME_TEMPLATE)) {
                if (!info->default_instance)
                        return r < 0 ? r : changed; /* only instances get .wants/ links */
                q = unit_name_replace_instance(info->name, info->default_instance, &instance_name);
                if (q < 0)
                        return log_oom();
                n = instance_name;
        }

        for (size_t k = 0; k < ELEMENTSOF(deps); k++) {
                char **list = *(char ***) ((const char *) info + deps[k].offset);

                STRV_FOREACH(t, list) {
                        _cleanup_free_ char *link = NULL;

                        if (config_path_of(*t, deps[k].suffix, n, &link) < 0)
                                return log_oom();
                        q = create_symlink(b, info->name, info->path, link, true);
                        if (q < 0) {
                                if (r == 0)
                                        r = q;
                        } else if (q > 0)
                                changed = 1;
                }
        }
        return r < 0 ? r : changed;
}

static int offline_enable(UnitBackend *backend, const char *unit) {
        OfflineBackend *b = offline(backend);
        _cleanup_strv_free_ char **todo = NULL, **done = NULL;
        int r = 0, changed = 0;

        if (!unit_name_is_valid(unit, UNIT_NAME_ANY))
                return log_error_errno(-EINVAL, "Cannot enable \"%s\": not a valid unit name: %m", unit);
        if (names_add(&todo, unit) < 0)
                return log_oom();

        for (size_t i = 0; todo[i]; i++) {
                _cleanup_(unit_info_done) UnitInfo info = {};
                const char *name = todo[i];
                bool auxiliary = i > 0;
                int q;

                q = unit_lookup(b, name, true, &info, NULL);
                if ((q == -ENOENT || q == -ENOLINK) && auxiliary) {
                        log_debug("Unit %s (Also= of %s) does not exist, ignoring.", name, unit);
                        continue;
                }
                if (q == -ENOENT || q == -ENOLINK)
                        return log_error_errno(-ENOENT, "Cannot enable %s: unit %s does not exist in %s: %m", unit,
                                               name, b->root);
                if (q == -ELOOP)
                        return log_error_errno(q, "Cannot enable %s: %s is an alias link in %s/%s or /run, refusing "
                                               "to operate on it (like systemctl): %m", unit, name, b->root, CONFIG_DIR);
                if (q < 0)
                        return log_error_errno(q, "Cannot enable %s: failed to load %s in %s: %m", unit, name, b->root);
                if (names_contain(done, info.name))
                        continue;
                if (names_add(&done, info.name) < 0)
                        return log_oom();

                if (info.type == UNIT_INFO_MASKED) {
                        if (auxiliary)
                                continue; /* a masked Also= unit is skipped */
                        return log_error_errno(-ERFKILL, "Cannot enable %s: unit file %s%s is masked: %m", unit,
                                               b->root, info.path);
                }
                if (info.bad < 0)
                        return log_error_errno(info.bad, "Cannot enable %s: the [Install] section of %s%s has values "
                                               "this backend cannot apply exactly like systemctl: %m", unit, b->root,
                                               info.path);
                if (path_dir_kind(info.path) == DIR_GENERATOR || path_dir_kind(info.path) == DIR_TRANSIENT)
                        return log_error_errno(-EADDRNOTAVAIL, "Cannot enable %s: %s%s is generated or transient: %m",
                                               unit, b->root, info.path);

                STRV_FOREACH(a, info.also)
                        if (!names_contain(todo, *a) && names_add(&todo, *a) < 0)
                                return log_oom();

                q = install_info_apply(b, &info);
                if (q < 0) {
                        if (r == 0)
                                r = q;
                } else if (q > 0)
                        changed = 1;
        }
        return r < 0 ? r : changed;
}

static int offline_disable(UnitBackend *backend, const char *unit) {
        OfflineBackend *b = offline(backend);
        _cleanup_strv_free_ char **todo = NULL, **marked = NULL;
        RemoveContext c = { .b = b, .unit = unit };
        int r;

        if (!unit_name_is_valid(unit, UNIT_NAME_ANY))
                return log_error_errno(-EINVAL, "Cannot disable \"%s\": not a valid unit name: %m", unit);
        if (names_add(&todo, unit) < 0)
                return log_oom();

        /* install_context_mark_for_removal(): names of units that are not masked, whether they exist or not;
         * alias targets and Also= units are processed too. */
        for (size_t i = 0; todo[i]; i++) {
                _cleanup_(unit_info_done) UnitInfo info = {};
                _cleanup_strv_free_ char **hops = NULL;
                const char *name = todo[i];

                r = unit_lookup(b, name, false, &info, &hops);
                STRV_FOREACH(h, hops)
                        if (!names_contain(todo, *h) && names_add(&todo, *h) < 0)
                                return log_oom();
                if (r >= 0) {
                        if (info.type == UNIT_INFO_MASKED) {
                                log_debug("Unit %s is masked, not disabling it.", name);
                                continue;
                        }
                        STRV_FOREACH(a, info.also)
                                if (!names_contain(todo, *a) && names_add(&todo, *a) < 0)
                                        return log_oom();
                        if (hops)
                                continue; /* an alias name: its target's name is processed instead */
                } else if (r == -ENOENT || r == -ENOLINK)
                        log_debug("Unit %s not found in %s, removing links of that name.", name, b->root);
                else
                        log_warning_errno(r, "Failed to load %s in %s, removing links of that name: %m", name, b->root);

                if (!names_contain(marked, name) && names_add(&marked, name) < 0)
                        return log_oom();
        }

        c.names = marked;
        r = remove_marked_symlinks(&c);
        if (r < 0)
                return log_error_errno(r, "Failed to disable %s in %s: %m", unit, b->root);
        return c.changed;
}

static int offline_get_active_state(UnitBackend *backend, const char *unit, char **ret_state) {
        char *s = strdup("unknown");

        if (!s)
                return log_oom();
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

        if (b->root_fd >= 0)
                close(b->root_fd);
        free(b->root);
        free(b->root_real);
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
        _cleanup_free_ OfflineBackend *b = NULL;
        struct stat st;

        if (!root || !*root)
                return log_error_errno(-EINVAL, "No root directory given: %m");

        b = calloc(1, sizeof *b);
        if (!b)
                return log_oom();
        b->base.vtable = &offline_vtable;
        b->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (b->root_fd < 0)
                return log_error_errno(errno, "Failed to open root directory %s: %m", root);
        if (fstat(b->root_fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
                close(b->root_fd);
                return log_error_errno(-ENOTDIR, "Root %s is not a directory: %m", root);
        }
        b->root = strdup(root);
        b->root_real = realpath(root, NULL);
        if (!b->root || !b->root_real) {
                close(b->root_fd);
                free(b->root);
                free(b->root_real);
                return log_oom();
        }
        /* "/srv/img/" prints as "/srv/img" + "/etc/..." */
        for (size_t n = strlen(b->root); n > 1 && b->root[n - 1] == '/'; n--)
                b->root[n - 1] = '\0';
        if (streq(b->root, "/"))
                b->root[0] = '\0';

        *ret = &TAKE_PTR(b)->base;
        return 0;
}
