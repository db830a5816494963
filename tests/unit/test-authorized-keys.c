/* SPDX-License-Identifier: MIT */
/* The managed block inside authorized_keys (SPEC §4): every byte outside the block survives, the block is
 * replaced in place, removal gives the other bytes back, and merging is a fixed point. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply/authorized-keys.h"
#include "macro.h"
#include "unit.h"

#define B AK_BEGIN "\n"
#define E AK_END "\n"

static char *const keys2[] = { (char *) "ssh-ed25519 AAAAnew1 one", (char *) "ssh-ed25519 AAAAnew2 two", NULL };
#define BLOCK2 B "ssh-ed25519 AAAAnew1 one\nssh-ed25519 AAAAnew2 two\n" E
/* The same block appended to a text without a final newline: after a '\n', and without one at its end. */
#define BLOCK2_NO_NL "\n" B "ssh-ed25519 AAAAnew1 one\nssh-ed25519 AAAAnew2 two\n" AK_END

/* A damaged text: merge and block_lines refuse it, check names the line. */
static void check_damaged(const char *text, size_t line, const char *what, const char *why) {
        char *out = NULL, **got = NULL;
        size_t len = 0, l = 0;
        const char *w = NULL;
        bool found = false;

        CHECK_INTEQ(authorized_keys_merge(text, strlen(text), keys2, 2, &out, &len), AK_E_DAMAGED, why);
        CHECK(!out, "nothing built for a damaged text");
        CHECK_INTEQ(authorized_keys_merge(text, strlen(text), NULL, 0, &out, &len), AK_E_DAMAGED, why);
        CHECK_INTEQ(authorized_keys_block_lines(text, strlen(text), &got, &found), AK_E_DAMAGED, why);
        CHECK_INTEQ(authorized_keys_check(text, strlen(text), &l, &w), AK_E_DAMAGED, why);
        CHECK_INTEQ(l, line, "the unpaired marker's line");
        CHECK_STREQ(w, what, "what is wrong");
}

static char *merge(const char *text, char *const *lines, size_t n) {
        char *out = NULL;
        size_t len = 0;
        int r = authorized_keys_merge(text, strlen(text), lines, n, &out, &len);
        CHECK_INTEQ(r, 0, "merge succeeds");
        if (r < 0)
                return strdup("(merge failed)");
        CHECK_INTEQ(len, strlen(out), "ret_len is the text length, NUL-terminated");
        return out;
}

/* merge(text) must equal want, merging again must give the same bytes, and the block must read back. */
static void check_merge(const char *text, char *const *lines, size_t n, const char *want, const char *why) {
        _cleanup_free_ char *out = merge(text, lines, n), *again = NULL;
        char **got = NULL;
        bool found = false;

        CHECK_STREQ(out, want, why);
        again = merge(out, lines, n);
        CHECK_STREQ(again, out, "merging the merged text is a fixed point");

        CHECK_INTEQ(authorized_keys_block_lines(out, strlen(out), &got, &found), 0, "block_lines");
        CHECK(found == (n > 0), "block present exactly when keys were given");
        {
                size_t m = 0;
                while (got && got[m])
                        m++;
                CHECK_INTEQ(m, n, "block holds the lines given");
                for (size_t i = 0; i < n && i < m; i++)
                        CHECK_STREQ(got[i], lines[i], "block line read back");
        }
        strv_free(got);
}

static void test_fresh(void) {
        /* no file text at all */
        check_merge("", keys2, 2, BLOCK2, "empty file → exactly the block");
        check_merge("", keys2, 0, "", "empty file, no keys → empty");
        check_merge("", keys2, 1, B "ssh-ed25519 AAAAnew1 one\n" E, "one key");
        CHECK_STREQ(AK_BEGIN, "# BEGIN aks-ssh-access managed keys (edits inside this block are overwritten)", "marker per SPEC §4");
        CHECK_STREQ(AK_END, "# END aks-ssh-access managed keys", "marker per SPEC §4");
}

static void test_foreign(void) {
        const char *foreign = "# my own keys\r\n"
                              "ssh-rsa AAAAold crlf line\r\n"
                              "\n"
                              "   \n"
                              "command=\"/bin/backup\",no-pty ssh-ed25519 AAAAbackup backup@host\n"
                              "from=\"10.0.0.0/8\" ssh-ed25519 AAAAfrom\n"
                              "# a comment mentioning # BEGIN aks-ssh-access in the middle\n";
        const char *tail = "ssh-ed25519 AAAAafter after the block\r\n# last line without newline";
        char *want = NULL, *text = NULL, *merged = NULL, *removed = NULL;

        /* foreign text ending in '\n': block appended, bytes before untouched */
        if (asprintf(&want, "%s%s", foreign, BLOCK2) < 0)
                abort();
        check_merge(foreign, keys2, 2, want, "block appended after foreign lines");
        merged = merge(foreign, keys2, 2);
        removed = merge(merged, NULL, 0);
        CHECK_STREQ(removed, foreign, "removing the block gives back the other bytes exactly");
        free(want);
        free(merged);
        free(removed);

        /* no trailing newline: a '\n' is added before the block, the block has none at its end, and removal
         * gives the bytes back exactly (issue 11: an extra '\n' stayed) */
        if (asprintf(&text, "%s%s", foreign, tail) < 0 || asprintf(&want, "%s%s%s", foreign, tail, BLOCK2_NO_NL) < 0)
                abort();
        check_merge(text, keys2, 2, want, "'\\n' added before the block, none after it");
        merged = merge(text, keys2, 2);
        removed = merge(merged, NULL, 0);
        CHECK_STREQ(removed, text, "removal gives back the text without a final newline exactly");
        free(merged);
        merged = merge(want, keys2, 1);
        free(removed);
        removed = merge(merged, NULL, 0);
        CHECK_STREQ(removed, text, "replaced in place, still exact after removal");
        free(want);
        free(merged);
        free(removed);

        /* block in the middle: replaced in place, foreign bytes before and after untouched */
        free(text);
        if (asprintf(&text, "%s" B "ssh-ed25519 AAAAold1 x\r\n# a hand edit inside\nssh-ed25519 AAAAold2\n" E "%s", foreign, tail) < 0 ||
            asprintf(&want, "%s" BLOCK2 "%s", foreign, tail) < 0)
                abort();
        check_merge(text, keys2, 2, want, "block replaced in place");
        {
                char **got = NULL;
                bool found = false;
                CHECK_INTEQ(authorized_keys_block_lines(text, strlen(text), &got, &found), 0, "old block read");
                CHECK(found, "old block found");
                CHECK(got && got[0] && got[1] && got[2] && !got[3], "three old lines");
                if (got && got[0] && got[1] && got[2]) {
                        CHECK_STREQ(got[0], "ssh-ed25519 AAAAold1 x", "CR stripped from a block line");
                        CHECK_STREQ(got[1], "# a hand edit inside", "comment inside the block is a line");
                        CHECK_STREQ(got[2], "ssh-ed25519 AAAAold2", "last old line");
                }
                strv_free(got);
        }
        free(want);
        if (asprintf(&want, "%s%s", foreign, tail) < 0)
                abort();
        check_merge(text, NULL, 0, want, "n=0 removes the block in the middle, nothing else");
        free(want);
        free(text);

        /* block first, block last without a final newline */
        check_merge(B "old\n" E "ssh-ed25519 AAAAmine\n", keys2, 2, BLOCK2 "ssh-ed25519 AAAAmine\n", "block at the top");
        check_merge("ssh-ed25519 AAAAmine\n" B "old\n" AK_END, keys2, 2, "ssh-ed25519 AAAAmine" BLOCK2_NO_NL,
                    "block at the end, END without newline: replaced keeping that shape");
        check_merge("ssh-ed25519 AAAAmine\n" B "old\n" AK_END, keys2, 0, "ssh-ed25519 AAAAmine",
                    "remove a block whose END has no newline, with the '\\n' appended before it");
        /* CRLF markers (the file was edited on Windows) still delimit the block */
        check_merge("a\r\n" AK_BEGIN "\r\nold\r\n" AK_END "\r\nb\r\n", keys2, 2, "a\r\n" BLOCK2 "b\r\n", "CRLF markers");
        /* markers are exact lines: edited markers, and a user's line that merely starts with a marker, are
         * user lines (issue 11: such a line was deleted) */
        check_merge("a\n# BEGIN aks-ssh-access (edited)\nold\n# END aks-ssh-access!\nb\n", keys2, 2,
                    "a\n# BEGIN aks-ssh-access (edited)\nold\n# END aks-ssh-access!\nb\n" BLOCK2, "edited markers are user lines");
        check_merge(AK_BEGIN " -- my note\nssh-ed25519 AAAAmine\n", NULL, 0, AK_BEGIN " -- my note\nssh-ed25519 AAAAmine\n",
                    "a line starting with the BEGIN marker is kept");
        check_merge(AK_BEGIN "x\n" B "old\n" E, keys2, 2, AK_BEGIN "x\n" BLOCK2, "BEGIN marker prefix kept before a block");
        /* an empty block */
        check_merge("a\n" B E "b\n", keys2, 2, "a\n" BLOCK2 "b\n", "empty block replaced");
        check_merge("a\n" B E "b\n", NULL, 0, "a\nb\n", "empty block removed");
}

static void test_broken_blocks(void) {
        /* two blocks: the first is replaced in place, the second dropped; both are read (a second block's
         * keys are managed keys sshd would accept) */
        check_merge("a\n" B "k1\n" E "b\n" B "k2\n" E "c\n", keys2, 2, "a\n" BLOCK2 "b\nc\n", "second block dropped");
        check_merge("a\n" B "k1\n" E "b\n" B "k2\n" E "c\n", NULL, 0, "a\nb\nc\n", "both blocks removed");
        {
                char **got = NULL;
                bool found = false;
                const char *t = "a\n" B "k1\n" E "b\n" B "k2\n" E "c\n";
                CHECK_INTEQ(authorized_keys_block_lines(t, strlen(t), &got, &found), 0, "two blocks read");
                CHECK(found && got && got[0] && got[1] && !got[2], "both blocks' lines");
                if (got && got[0] && got[1]) {
                        CHECK_STREQ(got[0], "k1", "first block");
                        CHECK_STREQ(got[1], "k2", "second block");
                }
                strv_free(got);
        }

        /* Damaged (issue 11: keys below an orphan BEGIN silently became user lines): nothing is changed and
         * the unpaired marker is named. */
        check_damaged("a\n" B "k1\nb\n", 2, "BEGIN marker without END", "orphan BEGIN");
        check_damaged("a\n" AK_BEGIN, 2, "BEGIN marker without END", "orphan BEGIN as the last line, no newline");
        check_damaged("a\n" B "x\n" B "y\n" E "z\n", 2, "BEGIN marker without END", "orphan BEGIN before a block");
        check_damaged("a\n" E "b\n", 2, "END marker without BEGIN", "stray END");
        check_damaged(E "a\n" B "k\n" E, 1, "END marker without BEGIN", "stray END before a block");
        check_damaged("a\n# BEGIN aks-ssh-access (edited)\nk\n" E, 4, "END marker without BEGIN", "BEGIN edited away");
        check_damaged(B "k\n" E B "k2\n", 4, "BEGIN marker without END", "a complete block, then an orphan");
        CHECK_INTEQ(authorized_keys_check("a\n" BLOCK2 "b\n", strlen("a\n" BLOCK2 "b\n"), NULL, NULL), 0, "a good block");
        CHECK_INTEQ(authorized_keys_check("", 0, NULL, NULL), 0, "empty");
}

static void test_block_lines(void) {
        char **got = NULL;
        bool found = true;

        CHECK_INTEQ(authorized_keys_block_lines("", 0, &got, &found), 0, "empty text");
        CHECK(!found, "empty text: no block");
        CHECK(got && !got[0], "empty text: empty strv");
        strv_free(got);

        got = NULL;
        found = true;
        CHECK_INTEQ(authorized_keys_block_lines("ssh-ed25519 AAAA\n", 17, &got, &found), 0, "no block");
        CHECK(!found, "no block found");
        CHECK(got && !got[0], "no block: empty strv");
        strv_free(got);

        /* only the given length is looked at */
        {
                const char *t = BLOCK2 "garbage";
                got = NULL;
                CHECK_INTEQ(authorized_keys_block_lines(t, strlen(BLOCK2) - 1, &got, &found), 0, "cut before END's newline");
                CHECK(found, "END line complete inside the length");
                strv_free(got);
                got = NULL;
                CHECK_INTEQ(authorized_keys_block_lines(t, strlen(BLOCK2) - 2, &got, &found), AK_E_DAMAGED, "cut inside END");
                CHECK_INTEQ(authorized_keys_block_lines(t, strlen(B) + 5, &got, &found), AK_E_DAMAGED, "cut inside the block");
        }
}

/* Foreign bytes are kept byte for byte even when they are not text (a NUL, invalid UTF-8, a lone CR). */
static void test_binary_foreign(void) {
        static const char text[] = "a\0b\r\xff\xfe\n" AK_BEGIN "\nold\n" AK_END "\n\0tail\rno newline";
        static const char want[] = "a\0b\r\xff\xfe\n" BLOCK2 "\0tail\rno newline";
        static const char want_removed[] = "a\0b\r\xff\xfe\n\0tail\rno newline";
        char *out = NULL;
        size_t len = 0;

        CHECK_INTEQ(authorized_keys_merge(text, sizeof text - 1, keys2, 2, &out, &len), 0, "binary merge");
        CHECK_INTEQ(len, sizeof want - 1, "binary merge length");
        CHECK(out && len == sizeof want - 1 && memcmp(out, want, len) == 0, "binary foreign bytes kept exactly");
        free(out);
        out = NULL;
        CHECK_INTEQ(authorized_keys_merge(text, sizeof text - 1, NULL, 0, &out, &len), 0, "binary removal");
        CHECK_INTEQ(len, sizeof want_removed - 1, "binary removal length");
        CHECK(out && len == sizeof want_removed - 1 && memcmp(out, want_removed, len) == 0, "binary removal exact");
        free(out);
}

int main(void) {
        test_fresh();
        test_foreign();
        test_broken_blocks();
        test_block_lines();
        test_binary_foreign();
        return unit_finish();
}
