/* SPDX-License-Identifier: MIT */
/* EntraId's block at the top of sshd_config: inserted before the image's bytes, removed giving them back
 * exactly (also without a final newline, also for an empty file), one block only, and a hand-edited or
 * moved block is not "ours". */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/sshd-config.h"
#include "macro.h"
#include "unit.h"

#define BLOCK SSHD_BLOCK_TEXT

static char *insert(const char *text, size_t len, size_t *ret_len) {
        char *out = NULL;
        int r = sshd_block_insert(text, len, &out, ret_len);
        CHECK_INTEQ(r, 0, "insert succeeds");
        return r < 0 ? strdup("") : out;
}

static char *strip(const char *text, size_t len, size_t *ret_len) {
        char *out = NULL;
        int r = sshd_block_strip(text, len, &out, ret_len);
        CHECK_INTEQ(r, 0, "strip succeeds");
        return r < 0 ? strdup("") : out;
}

/* The round trip on an image's file: insert puts exactly the block before its bytes, the result is ours,
 * inserting again is a fixed point, and stripping gives the original bytes back. */
static void check_round_trip(const char *image, size_t len, const char *why) {
        size_t n1 = 0, n2 = 0, n3 = 0, bl = strlen(BLOCK);
        _cleanup_free_ char *with = insert(image, len, &n1), *again = NULL, *back = NULL;

        CHECK_INTEQ(n1, bl + len, why);
        CHECK(memcmp(with, BLOCK, bl) == 0, "the block comes first, at byte 0");
        CHECK(memcmp(with + bl, image, len) == 0, "the image's bytes follow unchanged");
        CHECK_INTEQ(with[n1], '\0', "NUL-terminated");
        CHECK_INTEQ(sshd_block_state(with, n1), SSHD_BLOCK_OURS, "just inserted: ours");
        CHECK_INTEQ(sshd_block_state(image, len), SSHD_BLOCK_ABSENT, "the image has no block");

        again = insert(with, n1, &n2);
        CHECK(n2 == n1 && memcmp(again, with, n1) == 0, "inserting twice is a fixed point");

        back = strip(with, n1, &n3);
        CHECK(n3 == len && memcmp(back, image, len) == 0, "removing gives the image's bytes back exactly");
}

static void test_round_trips(void) {
        static const char debian[] = "# This is the sshd server system-wide configuration file.  See\n"
                                     "# sshd_config(5) for more information.\n\n"
                                     "Include /etc/ssh/sshd_config.d/*.conf\n\n"
                                     "#PubkeyAuthentication yes\n"
                                     "KbdInteractiveAuthentication no\n"
                                     "UsePAM yes\n"
                                     "Subsystem\tsftp\t/usr/lib/openssh/sftp-server\n";
        static const char binary[] = "PubkeyAuthentication yes\r\n\0\xff\xfe trailing bytes";

        check_round_trip(debian, strlen(debian), "a Debian-like file");
        check_round_trip("", 0, "an empty file");
        check_round_trip("UsePAM yes", 10, "a file without a final newline");
        check_round_trip("\n", 1, "a file that is one newline");
        check_round_trip("\n\n\n", 3, "blank lines only");
        check_round_trip(binary, sizeof binary - 1, "CRLF, a NUL and non-UTF-8 bytes are kept as they are");
}

static void test_states(void) {
        static const char moved[] = "UsePAM yes\n" BLOCK;
        static const char doubled[] = BLOCK BLOCK "UsePAM yes\n";
        static const char edited_value[] = SSHD_BLOCK_BEGIN "\nPubkeyAuthentication yes\n" SSHD_BLOCK_END "\nUsePAM yes\n";
        static const char edited_marker[] = "# BEGIN aks-ssh-access\nPubkeyAuthentication no\n" SSHD_BLOCK_END "\n";
        static const char extra_line[] = SSHD_BLOCK_BEGIN "\nPubkeyAuthentication no\nPasswordAuthentication yes\n" SSHD_BLOCK_END "\n";
        static const char orphan_end[] = BLOCK "UsePAM yes\n" SSHD_BLOCK_END "\n";
        static const char no_final_nl[] = SSHD_BLOCK_BEGIN "\nPubkeyAuthentication no\n" SSHD_BLOCK_END;
        static const char lookalike[] = "#  BEGIN aks-ssh-access (indented differently: not a marker)\nUsePAM yes\n";

        CHECK_INTEQ(sshd_block_state(BLOCK, strlen(BLOCK)), SSHD_BLOCK_OURS, "the block alone is ours");
        /* Below Include or a PubkeyAuthentication line sshd would not take it: not where it must be. */
        CHECK_INTEQ(sshd_block_state(moved, strlen(moved)), SSHD_BLOCK_DAMAGED, "a block not at the top is not in sync");
        CHECK_INTEQ(sshd_block_state(doubled, strlen(doubled)), SSHD_BLOCK_DAMAGED, "two blocks are not in sync");
        CHECK_INTEQ(sshd_block_state(edited_value, strlen(edited_value)), SSHD_BLOCK_DAMAGED, "a hand-edited value is drift");
        CHECK_INTEQ(sshd_block_state(edited_marker, strlen(edited_marker)), SSHD_BLOCK_DAMAGED, "a hand-edited marker is drift");
        CHECK_INTEQ(sshd_block_state(extra_line, strlen(extra_line)), SSHD_BLOCK_DAMAGED, "an added line is drift");
        CHECK_INTEQ(sshd_block_state(orphan_end, strlen(orphan_end)), SSHD_BLOCK_DAMAGED, "a stray END line is drift");
        CHECK_INTEQ(sshd_block_state(no_final_nl, strlen(no_final_nl)), SSHD_BLOCK_DAMAGED, "END without its newline is not exact");
        CHECK_INTEQ(sshd_block_state(lookalike, strlen(lookalike)), SSHD_BLOCK_ABSENT, "only the exact prefix is a marker");
        CHECK_STREQ(sshd_block_state_to_string(SSHD_BLOCK_DAMAGED), "changed", "state names");
}

static void check_strip(const char *text, const char *want, const char *why) {
        size_t n = 0;
        _cleanup_free_ char *out = strip(text, strlen(text), &n);

        CHECK_STREQ(out, want, why);
        CHECK_INTEQ(n, strlen(want), "ret_len is the length");
}

static void check_insert(const char *text, const char *want, const char *why) {
        size_t n = 0;
        _cleanup_free_ char *out = insert(text, strlen(text), &n);

        CHECK_STREQ(out, want, why);
        CHECK_INTEQ(n, strlen(want), "ret_len is the length");
}

static void test_repairs(void) {
        /* Every block goes wherever it is; the lines around it stay. */
        check_strip("a\n" BLOCK "b\n" BLOCK "c", "a\nb\nc", "every block is removed, the rest kept");
        check_strip(SSHD_BLOCK_BEGIN "\nPubkeyAuthentication yes\n" SSHD_BLOCK_END "\nUsePAM yes\n", "UsePAM yes\n",
                    "a hand-edited block is still ours to remove, with what is inside it");
        /* An orphaned marker (its partner deleted by hand) goes alone: no guessing which lines were ours. */
        check_strip(SSHD_BLOCK_BEGIN "\nPubkeyAuthentication no\nUsePAM yes\n", "PubkeyAuthentication no\nUsePAM yes\n",
                    "an orphaned BEGIN line goes alone");
        check_strip("UsePAM yes\n" SSHD_BLOCK_END "\nX11Forwarding no\n", "UsePAM yes\nX11Forwarding no\n",
                    "an orphaned END line goes alone");
        check_strip(SSHD_BLOCK_BEGIN "\n" SSHD_BLOCK_BEGIN "\nx\n" SSHD_BLOCK_END "\ny\n", "y\n",
                    "a BEGIN followed by another BEGIN: the first is an orphan, the second block is complete");
        check_strip(SSHD_BLOCK_BEGIN, "", "a lone BEGIN without a newline");

        /* Insert repairs: one exact block at the top, whatever was there. */
        check_insert("UsePAM yes\n" BLOCK, BLOCK "UsePAM yes\n", "a block moved down is put back on top");
        check_insert(SSHD_BLOCK_BEGIN "\nPubkeyAuthentication yes\n" SSHD_BLOCK_END "\nUsePAM yes", BLOCK "UsePAM yes",
                     "a hand-edited block is replaced");
        check_insert(BLOCK BLOCK, BLOCK, "two blocks become one");
}

/* sshd_config_read()'s outcomes in a scratch root: each a documented SSHD_E_*, not an errno. */
static void test_read(void) {
        char root[] = "/tmp/test-sshd-config.XXXXXX", cmd[128];
        SshdConfigFile f = { .dir_fd = -1 };
        int root_fd;

        if (!mkdtemp(root) || (root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
                CHECK(false, "scratch root");
                return;
        }
        CHECK_INTEQ(sshd_config_read(root_fd, &f), SSHD_E_NOT_FOUND, "no /etc/ssh: not found");
        CHECK_INTEQ(mkdirat(root_fd, "etc", 0755) ?: mkdirat(root_fd, "etc/ssh", 0755), 0, "mkdir etc/ssh");
        CHECK_INTEQ(sshd_config_read(root_fd, &f), SSHD_E_NOT_FOUND, "no sshd_config: not found");
        CHECK_INTEQ(symlinkat("/dev/null", root_fd, "etc/ssh/sshd_config"), 0, "symlink");
        CHECK_INTEQ(sshd_config_read(root_fd, &f), SSHD_E_SYMLINK, "a symlink is never followed");
        CHECK_INTEQ(unlinkat(root_fd, "etc/ssh/sshd_config", 0) ?: mkfifoat(root_fd, "etc/ssh/sshd_config", 0644), 0, "fifo");
        CHECK_INTEQ(sshd_config_read(root_fd, &f), SSHD_E_NOT_REGULAR, "a FIFO is refused without blocking");
        CHECK_INTEQ(unlinkat(root_fd, "etc/ssh/sshd_config", 0), 0, "unlink");
        int fd = openat(root_fd, "etc/ssh/sshd_config", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        CHECK(fd >= 0 && ftruncate(fd, SSHD_CONFIG_MAX + 1) == 0, "a sparse file over the limit");
        if (fd >= 0)
                close(fd);
        CHECK_INTEQ(sshd_config_read(root_fd, &f), SSHD_E_TOO_LARGE, "larger than SSHD_CONFIG_MAX");
        fd = openat(root_fd, "etc/ssh/sshd_config", O_WRONLY | O_TRUNC | O_CLOEXEC);
        CHECK(fd >= 0 && write(fd, "Port 22\n", 8) == 8, "write");
        if (fd >= 0)
                close(fd);
        CHECK_INTEQ(sshd_config_read(root_fd, &f), 0, "a regular file is read");
        CHECK_STREQ(f.text, "Port 22\n", "its bytes");
        sshd_config_file_done(&f);
        close(root_fd);
        snprintf(cmd, sizeof cmd, "rm -rf %s", root);
        CHECK_INTEQ(system(cmd), 0, "scratch root removed");
}

int main(void) {
        test_round_trips();
        test_states();
        test_repairs();
        test_read();
        return unit_finish();
}
