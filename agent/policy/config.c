/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs-util.h"
#include "imds/imds.h"
#include "macro.h"

#define CONFIG_MAX ((size_t) 1024 * 1024)

/* Keeps a message for the caller's log and returns -abs(error), like log_error_errno(). Without memory
 * for it the message is lost, never the error. */
_printf_(4, 5) static int note(Config *c, int level, int error, const char *fmt, ...) {
        char *text = NULL;
        va_list ap;
        int k;

        error = abs(error);
        va_start(ap, fmt);
        k = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (k >= 0 && GREEDY_REALLOC(c->notes, c->n_notes + 1))
                c->notes[c->n_notes++] = (ConfigNote) { .level = level, .error = error, .text = TAKE_PTR(text) };
        free(text);
        return -error;
}

static char **strv_split_ws(const char *s) {
        char **l = calloc(1, sizeof *l);
        size_t n = 0;

        if (!l)
                return NULL;
        while (*s) {
                size_t len;

                while (*s && (isspace((unsigned char) *s) || *s == ','))
                        s++;
                len = strcspn(s, " \t,");
                if (len == 0)
                        break;
                if (strv_consume(&l, &n, strndup(s, len)) < 0)
                        return strv_free(l);
                s += len;
        }
        return l;
}

int config_init(Config *c) {
        *c = (Config) {
                .imds_url = strdup(IMDS_DEFAULT_URL),
                .mode_tag = strdup(MODE_TAG_DEFAULT),
                .deadline_s = DEFAULT_DEADLINE_S,
                .fallback_mode = MODE_DISABLED,
                .units = strv_split_ws(DEFAULT_UNITS),
        };
        if (!c->imds_url || !c->mode_tag || !c->units) {
                config_done(c);
                return -ENOMEM;
        }
        return 0;
}

void config_done(Config *c) {
        free(c->imds_url);
        free(c->mode_tag);
        strv_free(c->units);
        free(c->metrics_dir);
        for (size_t i = 0; i < c->n_notes; i++)
                free(c->notes[i].text);
        free(c->notes);
        *c = (Config) {};
}

static bool valid_unit_name(const char *u) {
        size_t n = strlen(u);
        if (n == 0 || n > 255 || strchr(u, '/') || u[0] == '.')
                return false;
        return (n > 8 && endswith(u, ".service")) || (n > 7 && endswith(u, ".socket"));
}

static int set_string(char **field, const char *value) {
        char *v = strdup(value);

        if (!v)
                return -ENOMEM;
        free(*field);
        *field = v;
        return 0;
}

static int set_key(Config *c, const char *key, const char *value) {
        if (streq(key, "imds_url")) {
                if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
                        return -EINVAL;
                return set_string(&c->imds_url, value);
        } else if (streq(key, "mode_tag")) {
                if (!*value)
                        return -EINVAL;
                return set_string(&c->mode_tag, value);
        } else if (streq(key, "deadline_s")) {
                char *end;
                errno = 0;
                unsigned long d = strtoul(value, &end, 10);
                if (errno || *end || end == value || d < 1 || d > 3600)
                        return -EINVAL;
                /* The unit lives at most TimeoutStartSec=150 s: a longer IMDS deadline would have systemd kill
                 * the agent before the fallback (fail closed) runs. Clamped, with a warning. */
                if (d > DEADLINE_MAX_S) {
                        (void) note(
                                c, LOG_WARNING, 0,
                                "deadline_s = %lu is more than %u s (the unit's TimeoutStartSec=%u s less %u s kept for the fallback); using %u s.",
                                d, DEADLINE_MAX_S, UNIT_TIMEOUT_START_S, UNIT_TIMEOUT_START_S - DEADLINE_MAX_S, DEADLINE_MAX_S);
                        d = DEADLINE_MAX_S;
                }
                c->deadline_s = (unsigned) d;
        } else if (streq(key, "fallback_mode")) {
                Mode m = mode_from_string(value);
                if (m == MODE_INVALID)
                        return -EINVAL;
                c->fallback_mode = m;
        } else if (streq(key, "units")) {
                char **l = strv_split_ws(value);
                if (!l)
                        return -ENOMEM;
                for (char **u = l; *u; u++)
                        if (!valid_unit_name(*u)) {
                                strv_free(l);
                                return -EINVAL;
                        }
                if (!l[0]) {
                        strv_free(l);
                        return -EINVAL;
                }
                strv_free(c->units);
                c->units = l;
        } else if (streq(key, "drift")) {
                if (!streq(value, "report") && !streq(value, "repair"))
                        return -EINVAL;
                c->drift_repair = streq(value, "repair");
        } else if (streq(key, "metrics_dir")) {
                /* an absolute directory (under --root when given), or "off" */
                if (!streq(value, "off") && (value[0] != '/' || strlen(value) >= 4096))
                        return -EINVAL;
                return set_string(&c->metrics_dir, value);
        } else
                return -ENOKEY;
        return 0;
}

int config_parse_text(Config *c, const char *text, size_t len, const char *origin) {
        int ret = 0;
        unsigned lineno = 0;

        for (size_t pos = 0; pos < len;) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t l = nl ? (size_t) (nl - text - pos) : len - pos;
                _cleanup_free_ char *line = strndup(text + pos, l);
                char *k, *v, *eq, *end;
                int r;

                pos += l + 1;
                lineno++;
                if (!line)
                        return -ENOMEM;
                if (memchr(text + pos - l - 1, 0, l))
                        return note(c, LOG_ERR, EINVAL, "%s:%u: NUL byte in configuration.", origin, lineno);

                k = line;
                while (isspace((unsigned char) *k))
                        k++;
                if (*k == '\0' || *k == '#' || *k == ';')
                        continue;
                eq = strchr(k, '=');
                if (!eq) {
                        ret = note(c, LOG_ERR, EINVAL, "%s:%u: expected `key = value`.", origin, lineno);
                        continue;
                }
                *eq = '\0';
                v = eq + 1;
                for (end = eq; end > k && isspace((unsigned char) end[-1]); end--)
                        end[-1] = '\0';
                while (isspace((unsigned char) *v))
                        v++;
                for (end = v + strlen(v); end > v && isspace((unsigned char) end[-1]); end--)
                        end[-1] = '\0';
                /* optional quotes around the value */
                size_t vl = strlen(v);
                if (vl >= 2 && ((v[0] == '"' && v[vl - 1] == '"') || (v[0] == '\'' && v[vl - 1] == '\''))) {
                        v[vl - 1] = '\0';
                        v++;
                }

                r = set_key(c, k, v);
                if (r == -ENOMEM)
                        return r;
                if (r == -ENOKEY)
                        ret = note(c, LOG_ERR, EINVAL, "%s:%u: unknown setting \"%s\".", origin, lineno, k);
                else if (r < 0)
                        ret = note(c, LOG_ERR, EINVAL, "%s:%u: invalid value for %s.", origin, lineno, k);
        }
        return ret;
}

static int load_file_at(Config *c, int fd, const char *origin) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        /* Regular files only, capped: a FIFO or a device must neither hang nor spin the boot. */
        int r = read_regular_fd(fd, CONFIG_MAX, &text, &len);

        if (r == -EBADFD)
                return note(c, LOG_ERR, EINVAL, "Refusing to read %s: not a regular file.", origin);
        if (r < 0)
                return note(c, LOG_ERR, r, "Cannot read %s: %s", origin, strerror(-r));
        return config_parse_text(c, text, len, origin);
}

static int is_conf_name(const struct dirent *de) {
        return de->d_name[0] != '.' && strlen(de->d_name) >= 6 && endswith(de->d_name, ".conf");
}

static int cmp_names(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

int config_load(Config *c, int root_fd, const char *explicit_file) {
        _cleanup_close_ int fd = -1, dfd = -1;
        int r;

        fd = open_in_root(root_fd, CONFIG_FILE, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
        if (fd >= 0) {
                r = load_file_at(c, fd, CONFIG_FILE);
                if (r == -ENOMEM)
                        return r;
        }

        dfd = open_in_root(root_fd, CONFIG_DIR, O_RDONLY | O_DIRECTORY, 0);
        if (dfd >= 0) {
                struct dirent **names = NULL;
                int n = scandirat(dfd, ".", &names, is_conf_name, cmp_names); /* lexical, whatever the locale */

                if (n < 0)
                        return -ENOMEM;
                r = 0;
                for (int i = 0; i < n; i++) {
                        char origin[PATH_MAX];
                        snprintf(origin, sizeof origin, "%s/%s", CONFIG_DIR, names[i]->d_name);
                        free(names[i]);
                        if (r == -ENOMEM)
                                continue;
                        /* Resolved inside the root like every other path: a symlink to a host path in an
                         * image must not be read from the build host. */
                        _cleanup_close_ int f = open_in_root(root_fd, origin, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
                        if (f < 0) {
                                (void) note(c, LOG_WARNING, f, "Cannot open %s: %s", origin, strerror(-f));
                                continue;
                        }
                        r = load_file_at(c, f, origin);
                }
                free(names);
                if (r == -ENOMEM)
                        return r;
        }

        if (explicit_file) {
                _cleanup_close_ int f = open(explicit_file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (f < 0)
                        return note(c, LOG_ERR, errno, "Cannot open configuration %s: %s", explicit_file, strerror(errno));
                r = load_file_at(c, f, explicit_file);
                if (r < 0)
                        return r;
        }
        return 0;
}
