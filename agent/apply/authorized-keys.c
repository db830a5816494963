/* SPDX-License-Identifier: MIT */
#include "authorized-keys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "text-util.h"

typedef struct Buf {
        char *p;
        size_t len;
} Buf;

static int buf_add(Buf *b, const char *s, size_t n) {
        if (!GREEDY_REALLOC(b->p, b->len + n + 1))
                return -ENOMEM;
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
        return 0;
}

/* The line's content: without its '\n' and one CR before it (also at the very end without a '\n': adding the
 * '\n' before an appended block must never turn a user line into a marker or back). */
static size_t content_len(const char *line, size_t l) {
        if (l > 0 && line[l - 1] == '\n')
                l--;
        if (l > 0 && line[l - 1] == '\r')
                l--;
        return l;
}

static bool line_is(const char *line, size_t l, const char *marker) {
        size_t c = content_len(line, l), n = strlen(marker);
        return c == n && memcmp(line, marker, n) == 0;
}

/* One complete block: [start, end) from its BEGIN line to just past its END line. */
typedef struct Block {
        size_t start, end;
        size_t inner_start, inner_end; /* the lines between the markers */
        bool end_unterminated;         /* the END line is the file's last and has no '\n' */
} Block;

/* Splits the text into complete blocks; AK_E_DAMAGED (with line and what) at the first unpaired marker. */
static int scan(const char *text, size_t len, Block **ret_blocks, size_t *ret_n, size_t *ret_line, const char **ret_what) {
        _cleanup_free_ Block *blocks = NULL;
        size_t n = 0, lineno = 0, begin_line = 0, l;
        bool inside = false;
        Block cur = {};

        for (size_t pos = 0; pos < len; pos += l) {
                l = line_length(text, len, pos);
                lineno++;
                if (line_is(text + pos, l, AK_BEGIN)) {
                        if (inside) {
                                *ret_line = begin_line;
                                *ret_what = "BEGIN marker without END";
                                return AK_E_DAMAGED;
                        }
                        inside = true;
                        begin_line = lineno;
                        cur = (Block) { .start = pos, .inner_start = pos + l };
                } else if (line_is(text + pos, l, AK_END)) {
                        if (!inside) {
                                *ret_line = lineno;
                                *ret_what = "END marker without BEGIN";
                                return AK_E_DAMAGED;
                        }
                        inside = false;
                        cur.inner_end = pos;
                        cur.end = pos + l;
                        cur.end_unterminated = text[pos + l - 1] != '\n';
                        if (ret_blocks) {
                                if (!GREEDY_REALLOC(blocks, n + 1))
                                        return -ENOMEM;
                                blocks[n] = cur;
                        }
                        n++;
                }
        }
        if (inside) {
                *ret_line = begin_line;
                *ret_what = "BEGIN marker without END";
                return AK_E_DAMAGED;
        }
        if (ret_blocks)
                *ret_blocks = TAKE_PTR(blocks);
        *ret_n = n;
        return 0;
}

int authorized_keys_check(const char *text, size_t len, size_t *ret_line, const char **ret_what) {
        size_t n, line = 0;
        const char *what = NULL;
        int r = scan(text, len, NULL, &n, &line, &what);

        if (r == AK_E_DAMAGED) {
                if (ret_line)
                        *ret_line = line;
                if (ret_what)
                        *ret_what = what;
        }
        return r;
}

int authorized_keys_block_lines(const char *text, size_t len, char ***ret_lines, bool *ret_found) {
        _cleanup_free_ Block *blocks = NULL;
        _cleanup_strv_free_ char **lines = NULL;
        size_t nb = 0, n = 0, line;
        const char *what;
        int r;

        r = scan(text, len, &blocks, &nb, &line, &what);
        if (r != 0)
                return r;
        lines = calloc(1, sizeof *lines);
        if (!lines)
                return -ENOMEM;
        for (size_t b = 0; b < nb; b++)
                for (size_t pos = blocks[b].inner_start, l; pos < blocks[b].inner_end; pos += l) {
                        l = line_length(text, len, pos);
                        size_t ll = l;
                        while (ll > 0 && (text[pos + ll - 1] == '\n' || text[pos + ll - 1] == '\r'))
                                ll--;
                        if (strv_consume(&lines, &n, strndup(text + pos, ll)) < 0)
                                return -ENOMEM;
                }
        *ret_lines = TAKE_PTR(lines);
        *ret_found = nb > 0;
        return 0;
}

static int add_block(Buf *b, char *const *lines, size_t n, bool final_newline) {
        int r = buf_add(b, AK_BEGIN "\n", strlen(AK_BEGIN) + 1);

        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = buf_add(b, lines[i], strlen(lines[i]));
                if (r >= 0)
                        r = buf_add(b, "\n", 1);
        }
        if (r >= 0)
                r = buf_add(b, AK_END "\n", strlen(AK_END) + final_newline);
        return r;
}

int authorized_keys_merge(const char *text, size_t len, char *const *lines, size_t n, char **ret, size_t *ret_len) {
        _cleanup_free_ Block *blocks = NULL;
        size_t nb = 0, pos = 0, line;
        const char *what;
        Buf b = {};
        int r;

        r = scan(text, len, &blocks, &nb, &line, &what);
        if (r != 0)
                return r;
        r = buf_add(&b, "", 0);
        for (size_t i = 0; r >= 0 && i < nb; i++) {
                size_t keep_to = blocks[i].start;
                /* A block at the very end without a final newline was appended after a "\n" of ours
                 * (the text did not end in one): that "\n" goes with it. */
                bool ours_nl = blocks[i].end_unterminated && keep_to > pos && (i > 0 || n == 0);
                if (ours_nl)
                        keep_to--;
                r = buf_add(&b, text + pos, keep_to - pos);
                if (r >= 0 && i == 0 && n > 0)
                        r = add_block(&b, lines, n, !blocks[i].end_unterminated);
                pos = blocks[i].end;
        }
        if (r >= 0)
                r = buf_add(&b, text + pos, len - pos);

        if (r >= 0 && nb == 0 && n > 0) {
                /* Appended: after a "\n" of ours when the text does not end in one, and then without a final
                 * newline, so that the file ends as it did and removal gives the bytes back exactly. */
                bool unterminated = b.len > 0 && b.p[b.len - 1] != '\n';
                if (unterminated)
                        r = buf_add(&b, "\n", 1);
                if (r >= 0)
                        r = add_block(&b, lines, n, !unterminated);
        }
        if (r < 0) {
                free(b.p);
                return r;
        }
        *ret = b.p;
        *ret_len = b.len;
        return 0;
}
