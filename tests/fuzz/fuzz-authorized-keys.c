/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the managed block of authorized_keys (authorized_keys_block_lines, authorized_keys_merge).
 *
 * Input: FILE-TEXT [ 0xff KEY-LINES ]. KEY-LINES are split at '\n'; like the lines the agent writes (which
 * come from sshkey_format() of a validated key) they get a key type in front and hold no CR/LF.
 * Properties:
 *   1. merge(text, lines) with the managed block taken out is exactly the reference model of "every line of
 *      text that is not part of a complete block and not an orphaned BEGIN marker", byte for byte and in
 *      order (SPEC §4: removing the block's lines gives back the other bytes);
 *   2. the new block holds exactly `lines` (block_lines of the output), and there is no block when n = 0;
 *   3. merging the output again with the same lines is a fixed point; so is removing twice;
 *   4. block_lines on the input never fails and reports found iff the model saw a complete block. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply/authorized-keys.h"
#include "log.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_set_max_level(-1);
        return 0;
}

#define ASSERT(c)                                                                           \
        do {                                                                                \
                if (!(c)) {                                                                 \
                        fprintf(stderr, "fuzz-authorized-keys: property failed: %s\n", #c); \
                        abort();                                                            \
                }                                                                           \
        } while (0)

#define MAX_LINES 64

static bool starts(const char *s, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(s, prefix, n) == 0;
}

static size_t line_len(const char *s, size_t len, size_t pos) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        return nl ? (size_t) (nl - (s + pos)) + 1 : len - pos;
}

/* Reference model, written independently from the agent's code: the bytes of `text` that survive a merge.
 * A BEGIN line opens a block if an END line follows before any other BEGIN line; the whole block (BEGIN..END
 * inclusive) goes. A BEGIN line without such an END goes alone. Everything else stays. */
static char *model_keep(const char *text, size_t len, size_t *ret_len, bool *ret_found) {
        char *out = malloc(len + 1);
        size_t o = 0, pos = 0;
        bool found = false;

        ASSERT(out);
        while (pos < len) {
                size_t l = line_len(text, len, pos);
                if (!starts(text + pos, l, AK_BEGIN_PREFIX)) {
                        memcpy(out + o, text + pos, l);
                        o += l;
                        pos += l;
                        continue;
                }
                size_t q = pos + l, end = 0;
                while (q < len) {
                        size_t ql = line_len(text, len, q);
                        if (starts(text + q, ql, AK_END_PREFIX)) {
                                end = q + ql;
                                break;
                        }
                        if (starts(text + q, ql, AK_BEGIN_PREFIX))
                                break;
                        q += ql;
                }
                if (end) {
                        found = true;
                        pos = end;
                } else
                        pos += l;
        }
        out[o] = '\0';
        *ret_len = o;
        *ret_found = found;
        return out;
}

/* The output with our (single, exact-marker) block cut out; also returns where it was. */
static char *cut_block(const char *s, size_t len, size_t *ret_len, size_t *ret_block_start) {
        const char *b = NULL, *e;
        char *out;

        for (size_t pos = 0; pos < len; pos += line_len(s, len, pos))
                if (starts(s + pos, len - pos, AK_BEGIN "\n")) {
                        b = s + pos;
                        break;
                }
        out = malloc(len + 1);
        ASSERT(out);
        if (!b) {
                memcpy(out, s, len);
                out[len] = '\0';
                *ret_len = len;
                *ret_block_start = SIZE_MAX;
                return out;
        }
        e = memmem(b, len - (size_t) (b - s), "\n" AK_END "\n", strlen(AK_END) + 2);
        ASSERT(e);
        e += strlen(AK_END) + 2;
        size_t pre = (size_t) (b - s), post = len - (size_t) (e - s);
        memcpy(out, s, pre);
        memcpy(out + pre, e, post);
        out[pre + post] = '\0';
        *ret_len = pre + post;
        *ret_block_start = pre;
        return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *sep = memchr(data, 0xff, size);
        size_t text_len = sep ? (size_t) (sep - data) : size;
        char *text = malloc(text_len + 1);
        char *lines[MAX_LINES + 1] = {};
        size_t n = 0;

        ASSERT(text);
        memcpy(text, data, text_len);
        text[text_len] = '\0';

        if (sep) {
                const uint8_t *p = sep + 1, *end = data + size;
                while (p <= end && n < MAX_LINES) {
                        const uint8_t *nl = memchr(p, '\n', (size_t) (end - p));
                        size_t l = nl ? (size_t) (nl - p) : (size_t) (end - p);
                        char *line = malloc(l + sizeof "ssh-ed25519 ");
                        size_t k = 0;
                        ASSERT(line);
                        k = (size_t) sprintf(line, "ssh-ed25519 ");
                        for (size_t i = 0; i < l; i++)
                                if (p[i] != '\r' && p[i] != '\n' && p[i] != 0)
                                        line[k++] = (char) p[i];
                        line[k] = '\0';
                        lines[n++] = line;
                        if (!nl)
                                break;
                        p = nl + 1;
                }
        }

        /* 4. block_lines on the input */
        char **in_lines = NULL;
        bool in_found = false;
        ASSERT(authorized_keys_block_lines(text, text_len, &in_lines, &in_found) == 0);
        ASSERT(in_lines);
        strv_free(in_lines);

        size_t model_len;
        bool model_found;
        char *model = model_keep(text, text_len, &model_len, &model_found);
        ASSERT(in_found == model_found);

        /* 1. + 2. */
        char *out = NULL;
        size_t out_len = 0;
        ASSERT(authorized_keys_merge(text, text_len, lines, n, &out, &out_len) == 0);
        ASSERT(out && out[out_len] == '\0');

        size_t cut_len, block_start;
        char *cut = cut_block(out, out_len, &cut_len, &block_start);
        if (n == 0)
                ASSERT(block_start == SIZE_MAX);
        else
                ASSERT(block_start != SIZE_MAX);
        /* Appending to a text without a final newline adds one before the block: the only extra byte. */
        if (n > 0 && !model_found && model_len > 0 && model[model_len - 1] != '\n') {
                ASSERT(cut_len == model_len + 1 && cut[model_len] == '\n');
                ASSERT(memcmp(cut, model, model_len) == 0);
        } else {
                ASSERT(cut_len == model_len);
                ASSERT(memcmp(cut, model, model_len) == 0);
        }

        char **got = NULL;
        bool found = false;
        ASSERT(authorized_keys_block_lines(out, out_len, &got, &found) == 0);
        ASSERT(found == (n > 0));
        size_t g = 0;
        for (; got[g]; g++) {
                ASSERT(g < n);
                ASSERT(strcmp(got[g], lines[g]) == 0);
        }
        ASSERT(g == n);
        strv_free(got);

        /* 3. fixed point */
        char *again = NULL;
        size_t again_len = 0;
        ASSERT(authorized_keys_merge(out, out_len, lines, n, &again, &again_len) == 0);
        ASSERT(again_len == out_len && memcmp(again, out, out_len) == 0);
        free(again);

        /* removing twice is a fixed point too, and removing gives back the model exactly */
        char *removed = NULL, *removed2 = NULL;
        size_t removed_len = 0, removed2_len = 0;
        ASSERT(authorized_keys_merge(text, text_len, NULL, 0, &removed, &removed_len) == 0);
        ASSERT(removed_len == model_len && memcmp(removed, model, model_len) == 0);
        ASSERT(authorized_keys_merge(removed, removed_len, NULL, 0, &removed2, &removed2_len) == 0);
        ASSERT(removed2_len == removed_len && memcmp(removed2, removed, removed_len) == 0);
        free(removed);
        free(removed2);

        free(cut);
        free(out);
        free(model);
        for (size_t i = 0; i < n; i++)
                free(lines[i]);
        free(text);
        return 0;
}
