/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs-util.h"
#include "imds/imds.h"
#include "log.h"
#include "macro.h"

#define CONFIG_MAX ((size_t) 1024 * 1024)

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
                char **nl = realloc(l, (n + 2) * sizeof *nl);
                if (!nl)
                        return strv_free(l);
                l = nl;
                l[n] = strndup(s, len);
                if (!l[n])
                        return strv_free(l);
                l[++n] = NULL;
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
        *c = (Config) {};
}

static bool valid_unit_name(const char *u) {
        size_t n = strlen(u);
        if (n == 0 || n > 255 || strchr(u, '/') || u[0] == '.')
                return false;
        return (n > 8 && streq(u + n - 8, ".service")) || (n > 7 && streq(u + n - 7, ".socket"));
}

static int set_key(Config *c, const char *key, const char *value) {
        if (streq(key, "imds_url")) {
                if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
                        return -EINVAL;
                char *v = strdup(value);
                if (!v)
                        return -ENOMEM;
                free(c->imds_url);
                c->imds_url = v;
        } else if (streq(key, "mode_tag")) {
                if (!*value)
                        return -EINVAL;
                char *v = strdup(value);
                if (!v)
                        return -ENOMEM;
                free(c->mode_tag);
                c->mode_tag = v;
        } else if (streq(key, "deadline_s")) {
                char *end;
                errno = 0;
                unsigned long d = strtoul(value, &end, 10);
                if (errno || *end || end == value || d < 1 || d > 3600)
                        return -EINVAL;
                /* The unit lives at most TimeoutStartSec=150 s: a longer IMDS deadline would have systemd kill
                 * the agent before the fallback (fail closed) runs. Clamped, with a warning. */
                if (d > DEADLINE_MAX_S) {
                        log_warning("deadline_s = %lu is more than %u s (the unit's TimeoutStartSec=%u s less %u s kept for the fallback); using %u s.",
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
                if (!l[0]) {
                        strv_free(l);
                        return -EINVAL;
                }
                for (char **u = l; *u; u++)
                        if (!valid_unit_name(*u)) {
                                strv_free(l);
                                return -EINVAL;
                        }
                strv_free(c->units);
                c->units = l;
        } else if (streq(key, "drift")) {
                if (streq(value, "report"))
                        c->drift_repair = false;
                else if (streq(value, "repair"))
                        c->drift_repair = true;
                else
                        return -EINVAL;
        } else if (streq(key, "metrics_dir")) {
                /* an absolute directory (under --root when given), or "off" */
                if (!streq(value, "off") && (value[0] != '/' || strlen(value) >= 4096))
                        return -EINVAL;
                char *v = strdup(value);
                if (!v)
                        return -ENOMEM;
                free(c->metrics_dir);
                c->metrics_dir = v;
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
                        return log_error_errno(EINVAL, "%s:%u: NUL byte in configuration.", origin, lineno);

                k = line;
                while (isspace((unsigned char) *k))
                        k++;
                if (*k == '\0' || *k == '#' || *k == ';')
                        continue;
                eq = strchr(k, '=');
                if (!eq) {
                        ret = log_error_errno(EINVAL, "%s:%u: expected `key = value`.", origin, lineno);
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
                        ret = log_error_errno(EINVAL, "%s:%u: unknown setting \"%s\".", origin, lineno, k);
                else if (r < 0)
                        ret = log_error_errno(EINVAL, "%s:%u: invalid value for %s.", origin, lineno, k);
        }
        return ret;
}

static int load_file_at(Config *c, int fd, const char *origin) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        /* Regular files only, capped: a FIFO or a device must neither hang nor spin the boot. */
        int r = read_regular_fd(fd, CONFIG_MAX, &text, &len);

        if (r == -EBADFD)
                return log_error_errno(EINVAL, "Refusing to read %s: not a regular file.", origin);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", origin);
        return config_parse_text(c, text, len, origin);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
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
                _cleanup_strv_free_ char **names = calloc(1, sizeof(char *));
                size_t n = 0;
                int d = dup(dfd);
                DIR *dir = d >= 0 ? fdopendir(d) : NULL;
                struct dirent *de;

                if (!names || !dir) {
                        if (dir)
                                closedir(dir);
                        else if (d >= 0)
                                close(d);
                        return -ENOMEM;
                }
                while ((de = readdir(dir))) {
                        size_t l = strlen(de->d_name);
                        if (de->d_name[0] == '.' || l < 6 || !streq(de->d_name + l - 5, ".conf"))
                                continue;
                        char **nn = realloc(names, (n + 2) * sizeof *nn);
                        if (!nn) {
                                closedir(dir);
                                return -ENOMEM;
                        }
                        names = nn;
                        names[n] = strdup(de->d_name);
                        names[++n] = NULL;
                        if (!names[n - 1]) {
                                closedir(dir);
                                return -ENOMEM;
                        }
                }
                closedir(dir);
                qsort(names, n, sizeof *names, cmp_str);
                for (size_t i = 0; i < n; i++) {
                        char origin[PATH_MAX];
                        snprintf(origin, sizeof origin, "%s/%s", CONFIG_DIR, names[i]);
                        /* Resolved inside the root like every other path: a symlink to a host path in an
                         * image must not be read from the build host. */
                        _cleanup_close_ int f = open_in_root(root_fd, origin, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
                        if (f < 0) {
                                log_warning_errno(f, "Cannot open %s: %m", origin);
                                continue;
                        }
                        r = load_file_at(c, f, origin);
                        if (r == -ENOMEM)
                                return r;
                }
        }

        if (explicit_file) {
                _cleanup_close_ int f = open(explicit_file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (f < 0)
                        return log_error_errno(errno, "Cannot open configuration %s: %m", explicit_file);
                r = load_file_at(c, f, explicit_file);
                if (r < 0)
                        return r;
        }
        return 0;
}
