/* SPDX-License-Identifier: MIT */
#include "text-util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4) and its code point, or 0 when invalid. */
static size_t utf8_char(const unsigned char *s, size_t left, uint32_t *ret_cp) {
        unsigned char c = s[0];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
                *ret_cp = c;
                return 1;
        }
        if (c >= 0xc2 && c <= 0xdf)
                n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                n = 3, cp = c & 0x07;
        else
                return 0;
        if (left - 1 < n)
                return 0;
        for (size_t k = 1; k <= n; k++) {
                if ((s[k] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *ret_cp = cp;
        return n + 1;
}

static bool is_control(uint32_t cp) {
        return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
}

bool utf8_is_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s;
        uint32_t cp;

        for (size_t i = 0, n; i < len; i += n)
                if ((n = utf8_char(p + i, len - i, &cp)) == 0)
                        return false;
        return true;
}

bool text_is_clean(const char *s, size_t len, bool allow_tab) {
        const unsigned char *p = (const unsigned char *) s;
        uint32_t cp;

        for (size_t i = 0, n; i < len; i += n) {
                n = utf8_char(p + i, len - i, &cp);
                if (n == 0 || (is_control(cp) && !(allow_tab && cp == '\t')))
                        return false;
        }
        return true;
}

char *text_escape(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        size_t len, o = 0;
        char *out;
        uint32_t cp;

        if (!s)
                return NULL;
        len = strlen(s);
        out = malloc(len * 4 + 1);
        if (!out)
                return NULL;
        for (size_t i = 0, n; i < len; i += n) {
                n = utf8_char(p + i, len - i, &cp);
                if (n > 0 && !is_control(cp)) {
                        memcpy(out + o, p + i, n);
                        o += n;
                        continue;
                }
                if (n == 0)
                        n = 1; /* an invalid byte: escape it alone, resynchronise at the next */
                for (size_t k = 0; k < n; k++)
                        o += (size_t) sprintf(out + o, "\\x%02x", p[i + k]);
        }
        out[o] = '\0';
        return out;
}

size_t line_length(const char *text, size_t len, size_t pos) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        return nl ? (size_t) (nl - (text + pos)) + 1 : len - pos;
}
