/* SPDX-License-Identifier: MIT */
#include "authorized-keys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

typedef struct Buf {
        char *p;
        size_t len, alloc;
} Buf;

static int buf_add(Buf *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->alloc) {
                size_t na = (b->len + n + 1) * 2;
                char *np = realloc(b->p, na);
                if (!np)
                        return -ENOMEM;
                b->p = np;
                b->alloc = na;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
        return 0;
}

static bool line_starts(const char *line, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(line, prefix, n) == 0;
}

/* Next line [*pos, end-of-line incl. '\n'); returns its length incl. the terminator, 0 at the end. */
static size_t next_line(const char *text, size_t len, size_t pos) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        return nl ? (size_t) (nl - (text + pos)) + 1 : len - pos;
}

/* Finds the END line for a BEGIN at `pos`; returns the offset just past the END line or 0 if none. */
static size_t find_block_end(const char *text, size_t len, size_t pos) {
        size_t l = next_line(text, len, pos);

        for (pos += l; pos < len; pos += l) {
                l = next_line(text, len, pos);
                if (line_starts(text + pos, l, AK_END_PREFIX))
                        return pos + l;
                if (line_starts(text + pos, l, AK_BEGIN_PREFIX))
                        return 0; /* a new BEGIN before any END: the first one is orphaned */
        }
        return 0;
}

int authorized_keys_block_lines(const char *text, size_t len, char ***ret_lines, bool *ret_found) {
        size_t pos = 0, l, end;
        char **lines = NULL;
        size_t n = 0;

        for (; pos < len; pos += l) {
                l = next_line(text, len, pos);
                if (!line_starts(text + pos, l, AK_BEGIN_PREFIX))
                        continue;
                end = find_block_end(text, len, pos);
                if (end == 0)
                        continue;
                lines = calloc(1, sizeof *lines);
                if (!lines)
                        return -ENOMEM;
                for (pos += l; pos < end; pos += l) {
                        l = next_line(text, len, pos);
                        if (line_starts(text + pos, l, AK_END_PREFIX))
                                break;
                        size_t ll = l;
                        while (ll > 0 && (text[pos + ll - 1] == '\n' || text[pos + ll - 1] == '\r'))
                                ll--;
                        char **nl = realloc(lines, (n + 2) * sizeof *nl);
                        if (!nl) {
                                strv_free(lines);
                                return -ENOMEM;
                        }
                        lines = nl;
                        lines[n] = strndup(text + pos, ll);
                        if (!lines[n]) {
                                strv_free(lines);
                                return -ENOMEM;
                        }
                        lines[++n] = NULL;
                }
                *ret_lines = lines;
                *ret_found = true;
                return 0;
        }

        lines = calloc(1, sizeof *lines);
        if (!lines)
                return -ENOMEM;
        *ret_lines = lines;
        *ret_found = false;
        return 0;
}

static int add_block(Buf *b, char *const *lines, size_t n) {
        int r = buf_add(b, AK_BEGIN "\n", strlen(AK_BEGIN) + 1);

        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = buf_add(b, lines[i], strlen(lines[i]));
                if (r >= 0)
                        r = buf_add(b, "\n", 1);
        }
        if (r >= 0)
                r = buf_add(b, AK_END "\n", strlen(AK_END) + 1);
        return r;
}

int authorized_keys_merge(const char *text, size_t len, char *const *lines, size_t n, char **ret, size_t *ret_len) {
        Buf b = {};
        bool placed = false;
        size_t pos = 0, l;
        int r = buf_add(&b, "", 0);

        while (r >= 0 && pos < len) {
                l = next_line(text, len, pos);
                if (!line_starts(text + pos, l, AK_BEGIN_PREFIX)) {
                        r = buf_add(&b, text + pos, l);
                        pos += l;
                        continue;
                }
                size_t end = find_block_end(text, len, pos);
                if (end == 0) {
                        pos += l; /* orphaned BEGIN: only our marker line goes */
                        continue;
                }
                if (!placed && n > 0)
                        r = add_block(&b, lines, n);
                placed = true;
                pos = end;
        }

        if (r >= 0 && !placed && n > 0) {
                if (b.len > 0 && b.p[b.len - 1] != '\n')
                        r = buf_add(&b, "\n", 1);
                if (r >= 0)
                        r = add_block(&b, lines, n);
        }
        if (r < 0) {
                free(b.p);
                return r;
        }
        *ret = b.p;
        *ret_len = b.len;
        return 0;
}
