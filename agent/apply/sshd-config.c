/* SPDX-License-Identifier: MIT */
#include "sshd-config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "spawn-util.h"
#include "text-util.h"

#define SSHD_TIMEOUT_MS 10000
#define SSHD_CHECK_OUTPUT_MAX 4096        /* sshd -t: a message at most */
#define SSHD_DUMP_OUTPUT_MAX (256 * 1024) /* sshd -T: every setting, a few KiB */

/* --- Pure text functions --- */

static bool line_starts(const char *line, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(line, prefix, n) == 0;
}

static bool is_marker(const char *line, size_t len) {
        return line_starts(line, len, SSHD_BLOCK_BEGIN_PREFIX) || line_starts(line, len, SSHD_BLOCK_END_PREFIX);
}

SshdBlockState sshd_block_state(const char *text, size_t len) {
        size_t pos = 0, n = strlen(SSHD_BLOCK_TEXT);
        bool ours = len >= n && memcmp(text, SSHD_BLOCK_TEXT, n) == 0;

        if (ours)
                pos = n;
        for (size_t l; pos < len; pos += l) {
                l = line_length(text, len, pos);
                if (is_marker(text + pos, l))
                        return SSHD_BLOCK_DAMAGED;
        }
        return ours ? SSHD_BLOCK_OURS : SSHD_BLOCK_ABSENT;
}

const char *sshd_block_state_to_string(SshdBlockState s) {
        switch (s) {
        case SSHD_BLOCK_ABSENT: return "absent";
        case SSHD_BLOCK_OURS: return "present";
        case SSHD_BLOCK_DAMAGED: return "changed";
        }
        return "?";
}

/* Offset just past the END line of the block whose BEGIN line is at pos, or 0 when there is none before
 * the next BEGIN (the BEGIN is then an orphan). */
static size_t block_end(const char *text, size_t len, size_t pos) {
        for (size_t l = line_length(text, len, pos); (pos += l) < len;) {
                l = line_length(text, len, pos);
                if (line_starts(text + pos, l, SSHD_BLOCK_END_PREFIX))
                        return pos + l;
                if (line_starts(text + pos, l, SSHD_BLOCK_BEGIN_PREFIX))
                        return 0;
        }
        return 0;
}

static void strip_into(char *out, size_t *ret_len, const char *text, size_t len) {
        size_t pos = 0, k = 0;

        while (pos < len) {
                size_t l = line_length(text, len, pos), end;

                if (line_starts(text + pos, l, SSHD_BLOCK_BEGIN_PREFIX) && (end = block_end(text, len, pos)) > 0) {
                        pos = end;
                        continue;
                }
                if (!is_marker(text + pos, l)) {
                        memcpy(out + k, text + pos, l);
                        k += l;
                }
                pos += l;
        }
        out[k] = '\0';
        *ret_len = k;
}

int sshd_block_strip(const char *text, size_t len, char **ret, size_t *ret_len) {
        char *out = malloc(len + 1);

        if (!out)
                return -ENOMEM;
        strip_into(out, ret_len, text, len);
        *ret = out;
        return 0;
}

int sshd_block_insert(const char *text, size_t len, char **ret, size_t *ret_len) {
        size_t n = strlen(SSHD_BLOCK_TEXT), k;
        char *out = malloc(n + len + 1);

        if (!out)
                return -ENOMEM;
        memcpy(out, SSHD_BLOCK_TEXT, n);
        strip_into(out + n, &k, text, len);
        *ret = out;
        *ret_len = n + k;
        return 0;
}

/* --- The file --- */

void sshd_config_file_done(SshdConfigFile *f) {
        if (f->dir_fd >= 0)
                close(f->dir_fd);
        free(f->text);
        *f = (SshdConfigFile) { .dir_fd = -1 };
}

int sshd_config_read(int root_fd, SshdConfigFile *ret) {
        _cleanup_close_ int dfd = -1, fd = -1;
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t len;
        int r;

        dfd = open_in_root(root_fd, SSHD_CONFIG_DIR, O_RDONLY | O_DIRECTORY, 0);
        if (dfd == -ENOENT)
                return SSHD_E_NOT_FOUND;
        if (dfd == -ELOOP) /* a symlink loop on the way: nothing sshd reads either */
                return SSHD_E_SYMLINK;
        if (dfd < 0)
                return dfd;
        /* O_NONBLOCK: a FIFO at the name must not hang the boot; it is refused below. */
        fd = openat(dfd, SSHD_CONFIG_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? SSHD_E_NOT_FOUND : errno == ELOOP ? SSHD_E_SYMLINK : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return SSHD_E_NOT_REGULAR;
        r = read_full_fd(fd, SSHD_CONFIG_MAX, &text, &len);
        if (r == -EFBIG)
                return SSHD_E_TOO_LARGE;
        if (r < 0)
                return r;
        *ret = (SshdConfigFile) {
                .dir_fd = TAKE_FD(dfd),
                .text = TAKE_PTR(text),
                .len = len,
                .mode = st.st_mode & 07777,
                .uid = st.st_uid,
                .gid = st.st_gid,
        };
        return 0;
}

int sshd_config_write(SshdConfigFile *f, const char *text, size_t len) {
        return write_file_atomic(f->dir_fd, SSHD_CONFIG_NAME, text, len, f->mode, f->uid, f->gid);
}

int sshd_legacy_dropin_state(int root_fd) {
        _cleanup_close_ int dfd = open_in_root(root_fd, SSHD_LEGACY_DROPIN_DIR, O_RDONLY | O_DIRECTORY, 0);
        struct stat st;

        if (dfd == -ENOENT || dfd == -ENOTDIR)
                return 0;
        if (dfd < 0)
                return dfd;
        if (fstatat(dfd, SSHD_LEGACY_DROPIN_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        return 1;
}

int sshd_legacy_dropin_remove(int root_fd) {
        _cleanup_close_ int dfd = open_in_root(root_fd, SSHD_LEGACY_DROPIN_DIR, O_RDONLY | O_DIRECTORY, 0);

        if (dfd == -ENOENT || dfd == -ENOTDIR)
                return 0;
        if (dfd < 0)
                return dfd;
        (void) remove_stale_temp_files(dfd, SSHD_LEGACY_DROPIN_NAME);
        if (unlinkat(dfd, SSHD_LEGACY_DROPIN_NAME, 0) < 0)
                return errno == ENOENT ? 0 : -errno;
        (void) fsync(dfd);
        return 1;
}

/* --- sshd itself --- */

/* The first line of sshd's message, for one log line. */
static const char *first_line(char *s) {
        s += strspn(s, "\n");
        s[strcspn(s, "\n")] = '\0';
        return *s ? s : "(no message)";
}

static int reason(char **ret_reason, int r, const char *fmt, const char *arg) {
        if (ret_reason && asprintf(ret_reason, fmt, arg) < 0)
                *ret_reason = NULL;
        return r;
}

/* Runs sshd with argv (util/spawn-util: clean environment, dies with us, 10 s at most: sshd -t/-T are
 * quick, a hang must not hold the boot). 0 when it exited 0; SSHD_E_REJECTED when it did not, with `what`
 * and sshd's first line in *ret_reason; a negative errno when it could not be run. */
static int run_sshd(char *const argv[], size_t cap, const char *what, SpawnResult *ret, char **ret_reason) {
        int r;

        /* Debian's sshd -t/-T insist on its privilege separation directory, which ssh.service creates only
         * when it starts, i.e. after us (the agent's unit has RuntimeDirectory=sshd for that; a run by hand
         * does not). An empty /run/sshd is harmless where sshd uses another one. */
        (void) mkdir("/run/sshd", 0755);
        r = spawn_capture(argv, cap, SSHD_TIMEOUT_MS, ret);
        if (r < 0)
                return reason(ret_reason, r, "cannot run %s", SSHD_BINARY);
        if (ret->exit_status == 0)
                return 0;
        if (ret_reason && asprintf(ret_reason, "%s: %s", what, first_line(*ret->err ? ret->err : ret->out)) < 0)
                *ret_reason = NULL;
        spawn_result_done(ret);
        return SSHD_E_REJECTED;
}

/* `sshd -t -f SSHD_CONFIG`; what: how a refusal is described. */
static int sshd_test(const char *what, char **ret_reason) {
        char *argv[] = { (char *) SSHD_BINARY, (char *) "-t", (char *) "-f", (char *) SSHD_CONFIG, NULL };
        SpawnResult res = {};
        int r = run_sshd(argv, SSHD_CHECK_OUTPUT_MAX, what, &res, ret_reason);

        spawn_result_done(&res);
        return r;
}

int sshd_config_check(char **ret_reason) {
        if (access(SSHD_BINARY, X_OK) < 0)
                return SSHD_E_NO_SSHD;
        return sshd_test("sshd configuration check failed", ret_reason);
}

/* The value sshd -T prints for a keyword (lower case), or NULL. Points into text (modified). */
static const char *dump_value(char *text, const char *keyword) {
        size_t n = strlen(keyword);

        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                if (strncmp(line, keyword, n) == 0 && line[n] == ' ')
                        return line + n + 1;
                line = nl ? nl + 1 : NULL;
        }
        return NULL;
}

int sshd_check_entraid(const char *user, char **ret_reason) {
        _cleanup_free_ char *spec = NULL;
        SpawnResult res = {};
        int r;

        if (access(SSHD_BINARY, X_OK) < 0)
                return reason(ret_reason, SSHD_E_NO_SSHD, "%s is missing: cannot check the setting", SSHD_BINARY);
        r = sshd_test("sshd -t refuses the configuration", ret_reason);
        if (r != 0)
                return r;

        /* Every connection attribute a Match line can test is given (user, host, addr, laddr, lport), so that
         * sshd evaluates the image's Match blocks instead of refusing the test specification. */
        if (asprintf(&spec, "user=%s,host=localhost,addr=127.0.0.1,laddr=127.0.0.1,lport=22", user) < 0)
                return -ENOMEM;
        char *dump[] = { (char *) SSHD_BINARY, (char *) "-T", (char *) "-f", (char *) SSHD_CONFIG, (char *) "-C", spec, NULL };
        r = run_sshd(dump, SSHD_DUMP_OUTPUT_MAX, "sshd -T fails", &res, ret_reason);
        if (r != 0)
                return r;
        const char *v = dump_value(res.out, "pubkeyauthentication");
        if (!v || !streq(v, "no"))
                r = reason(ret_reason, SSHD_E_NOT_EFFECTIVE, "sshd -T says pubkeyauthentication %s", v ?: "(nothing)");
        spawn_result_done(&res);
        return r;
}
