/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the managed block of authorized_keys (authorized_keys_check, authorized_keys_block_lines,
 * authorized_keys_merge).
 *
 * Input: FILE-TEXT [ 0xff KEY-LINES ]. KEY-LINES are split at '\n'; like the lines the agent writes (which
 * come from sshkey_format() of a validated key) they get a key type in front and hold no CR/LF.
 * Properties (against a reference model written independently from the agent's code):
 *   0. a text whose exact marker lines do not pair up is damaged: check, block_lines and merge all refuse it
 *      with AK_E_DAMAGED and build nothing (no user byte can be lost, no managed key silently kept);
 *   1. removing (merge with n = 0) gives exactly the model's "every byte outside the complete blocks" (a
 *      block at the very end without a final newline takes the '\n' before it along);
 *   2. the new block holds exactly `lines` (block_lines of the output), and there is no block when n = 0;
 *   3. remove(merge(text, lines)) == remove(text): writing keys and removing them gives the bytes back
 *      exactly, a text without a final newline included;
 *   4. merging the output again with the same lines is a fixed point; so is removing twice;
 *   5. with no block, the block is appended after the text (after a '\n' if the text does not end in one). */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply/authorized-keys.h"
#include "fuzz-util.h"

#define MAX_LINES 64

static bool starts(const char *s, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(s, prefix, n) == 0;
}

static size_t line_len(const char *s, size_t len, size_t pos) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        return nl ? (size_t) (nl - (s + pos)) + 1 : len - pos;
}

/* Exactly the marker, then nothing, "\n", "\r\n" or (as the last line) "\r". */
static bool is_marker(const char *s, size_t l, const char *marker) {
        size_t n = strlen(marker);
        if (l < n || memcmp(s, marker, n) != 0)
                return false;
        return l == n || (l == n + 1 && (s[n] == '\n' || s[n] == '\r')) || (l == n + 2 && s[n] == '\r' && s[n + 1] == '\n');
}

/* Reference model: NULL when damaged; else the bytes that survive a removal, and whether a block exists. */
static char *model_keep(const char *text, size_t len, size_t *ret_len, bool *ret_found) {
        char *out = malloc(len + 1);
        size_t o = 0, pos = 0, user_bytes = 0;
        bool inside = false, found = false;

        ASSERT(out);
        while (pos < len) {
                size_t l = line_len(text, len, pos);
                if (is_marker(text + pos, l, AK_BEGIN)) {
                        if (inside) {
                                free(out);
                                return NULL;
                        }
                        inside = true;
                } else if (is_marker(text + pos, l, AK_END)) {
                        if (!inside) {
                                free(out);
                                return NULL;
                        }
                        inside = false;
                        found = true;
                        /* the last line, no newline: the '\n' before the block was ours */
                        if (pos + l == len && text[len - 1] != '\n' && user_bytes > 0) {
                                ASSERT(out[o - 1] == '\n');
                                o--;
                        }
                        user_bytes = 0;
                } else if (!inside) {
                        memcpy(out + o, text + pos, l);
                        o += l;
                        user_bytes += l; /* since the last block, or the start */
                }
                pos += l;
        }
        if (inside) {
                free(out);
                return NULL;
        }
        out[o] = '\0';
        *ret_len = o;
        *ret_found = found;
        return out;
}

static char *removal(const char *text, size_t len, size_t *ret_len) {
        char *out = NULL;
        ASSERT(authorized_keys_merge(text, len, NULL, 0, &out, ret_len) == 0);
        ASSERT(out && out[*ret_len] == '\0');
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

        size_t model_len = 0;
        bool model_found = false;
        char *model = model_keep(text, text_len, &model_len, &model_found);
        char **in_lines = NULL, *out = NULL;
        bool in_found = false;
        size_t out_len = 0;

        if (!model) {
                /* 0. damaged */
                ASSERT(authorized_keys_check(text, text_len, NULL, NULL) == AK_E_DAMAGED);
                ASSERT(authorized_keys_block_lines(text, text_len, &in_lines, &in_found) == AK_E_DAMAGED && !in_lines);
                ASSERT(authorized_keys_merge(text, text_len, lines, n, &out, &out_len) == AK_E_DAMAGED && !out);
                ASSERT(authorized_keys_merge(text, text_len, NULL, 0, &out, &out_len) == AK_E_DAMAGED && !out);
                goto done;
        }
        ASSERT(authorized_keys_check(text, text_len, NULL, NULL) == 0);
        ASSERT(authorized_keys_block_lines(text, text_len, &in_lines, &in_found) == 0);
        ASSERT(in_lines && in_found == model_found);
        strv_free(in_lines);

        /* 1. removal is the model */
        size_t removed_len, removed2_len;
        char *removed = removal(text, text_len, &removed_len);
        ASSERT(removed_len == model_len && memcmp(removed, model, model_len) == 0);
        char *removed2 = removal(removed, removed_len, &removed2_len);
        ASSERT(removed2_len == removed_len && memcmp(removed2, removed, removed_len) == 0);
        free(removed2);

        /* 2. the block holds the lines */
        ASSERT(authorized_keys_merge(text, text_len, lines, n, &out, &out_len) == 0);
        ASSERT(out && out[out_len] == '\0');
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

        /* 3. bytes back exactly */
        size_t back_len;
        char *back = removal(out, out_len, &back_len);
        ASSERT(back_len == removed_len && memcmp(back, removed, removed_len) == 0);
        free(back);

        /* 4. fixed point */
        char *again = NULL;
        size_t again_len = 0;
        ASSERT(authorized_keys_merge(out, out_len, lines, n, &again, &again_len) == 0);
        ASSERT(again_len == out_len && memcmp(again, out, out_len) == 0);
        free(again);

        /* 5. appended after the text */
        if (!model_found && n > 0) {
                size_t nl = text_len > 0 && text[text_len - 1] != '\n';
                ASSERT(out_len > text_len + nl && memcmp(out, text, text_len) == 0);
                ASSERT(!nl || out[text_len] == '\n');
                ASSERT(starts(out + text_len + nl, out_len - text_len - nl, AK_BEGIN "\n"));
        }
        free(removed);

done:
        free(out);
        free(model);
        for (size_t i = 0; i < n; i++)
                free(lines[i]);
        free(text);
        return 0;
}
