/* SPDX-License-Identifier: MIT */
/* Clean text (issue 11): what is stored and printed is valid UTF-8 without C0/C1 controls or DEL, and what
 * is printed from disk is escaped. */

#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "text-util.h"
#include "unit.h"

static void check_escape(const char *in, const char *want, const char *why) {
        _cleanup_free_ char *got = text_escape(in);
        CHECK_STREQ(got, want, why);
}

int main(void) {
        CHECK(utf8_is_valid("", 0), "empty is valid");
        CHECK(utf8_is_valid("caf\xc3\xa9", 5), "two-byte sequence");
        CHECK(utf8_is_valid("\xf0\x9f\x94\x91", 4), "four-byte sequence (U+1F511)");
        CHECK(!utf8_is_valid("\xff", 1), "0xff is never UTF-8");
        CHECK(!utf8_is_valid("\xc3", 1), "truncated sequence");
        CHECK(!utf8_is_valid("\xc0\xaf", 2), "overlong '/' must be rejected");
        CHECK(!utf8_is_valid("\xed\xa0\x80", 3), "a surrogate must be rejected");
        CHECK(!utf8_is_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF must be rejected");

        CHECK(text_is_clean("azureuser", 9, false), "plain name");
        CHECK(text_is_clean("J\xc3\xb6rg", 5, false), "printable non-ASCII");
        CHECK(text_is_clean("a\xc2\xa0"
                            "b",
                            4, false),
              "U+00A0 is printable, not C1");
        CHECK(!text_is_clean("a\x1b[0m", 6, false), "ESC (C0)");
        CHECK(!text_is_clean("a\x7f", 2, false), "DEL");
        CHECK(!text_is_clean("a\xc2\x9b"
                             "2J",
                             5, false),
              "U+009B CSI (C1) must be rejected");
        CHECK(!text_is_clean("a\xc2\x80", 3, false), "U+0080, first C1");
        CHECK(!text_is_clean("a\xc2\x9f", 3, false), "U+009F, last C1");
        CHECK(!text_is_clean("a\tb", 3, false), "a tab when not allowed");
        CHECK(text_is_clean("a\tb", 3, true), "a tab when allowed");
        CHECK(!text_is_clean("a\xff", 2, true), "invalid UTF-8 is never clean");
        CHECK(!text_is_clean("a\0b", 3, true), "NUL");

        check_escape("azureuser", "azureuser", "clean text unchanged");
        check_escape("J\xc3\xb6rg \xf0\x9f\x94\x91", "J\xc3\xb6rg \xf0\x9f\x94\x91", "printable UTF-8 unchanged");
        check_escape("a\x1b[31mred", "a\\x1b[31mred", "ESC escaped");
        check_escape("a\xc2\x9b"
                     "2J",
                     "a\\xc2\\x9b2J", "C1 escaped as its two bytes");
        check_escape("a\x7f", "a\\x7f", "DEL escaped");
        check_escape("a\xff\xc3", "a\\xff\\xc3", "invalid bytes escaped one by one");
        check_escape("\xc3\xa9\xc3", "\xc3\xa9\\xc3", "valid then truncated");
        CHECK(text_escape(NULL) == NULL, "NULL in, NULL out");

        /* macro.h: endswith() and GREEDY_REALLOC(), the one suffix test and the one way to grow an array. */
        const char *name = "ssh.socket";
        CHECK(endswith(name, ".socket") == name + 3, "endswith points at the suffix");
        CHECK(endswith(name, "") == name + strlen(name), "the empty suffix is at the end");
        CHECK(!endswith(name, ".service"), "another suffix");
        CHECK(!endswith(".socket", "x.socket"), "a suffix longer than the string must not match");

        _cleanup_free_ int *a = NULL;
        for (size_t i = 0; i < 1000; i++) {
                CHECK(GREEDY_REALLOC(a, i + 1) == a, "grown, and the new pointer is returned");
                a[i] = (int) i;
        }
        CHECK_INTEQ(a[999] + a[0], 999, "the elements survive every growth");
        return unit_finish();
}
