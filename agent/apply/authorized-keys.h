/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent's managed block inside an authorized_keys file. Pure text in, text out: every byte outside
 * the block is preserved.
 *
 * Markers are whole lines, exactly AK_BEGIN / AK_END (a CR before the LF is allowed: files edited on
 * Windows). A line that merely starts with a marker, or a hand-edited marker, is a user line like any other.
 * Complete blocks (BEGIN ... END) are the agent's; lines inside them are managed.
 *
 * A file whose markers do not pair up is damaged: a BEGIN with no END before the next BEGIN or the end of the
 * file (keys below it may be stale managed keys), or an END with no BEGIN (the BEGIN was edited away). The
 * agent cannot tell which lines are its own there, so it changes nothing in such a file and says so
 * (AK_E_DAMAGED; authorized_keys_check() names the line): no user byte is lost and no managed key is silently
 * turned into a user key.
 *
 * A block appended to a file that does not end in a newline is written as "\n" BEGIN ... END without a final
 * newline, so the file still ends the way it did, and removing the block (with that "\n") gives the bytes
 * back exactly. */

#include <stdbool.h>
#include <stddef.h>

#define AK_BEGIN "# BEGIN aks-ssh-access managed keys (edits inside this block are overwritten)"
#define AK_END "# END aks-ssh-access managed keys"

/* The outcome the caller must handle; otherwise 0, or -ENOMEM (nothing here logs). */
enum {
        AK_E_DAMAGED = 1, /* the markers do not pair up: nothing is built, the file is left as it is */
};

/* 0 when the markers pair up (no block, or complete blocks); AK_E_DAMAGED when not, with the 1-based line
 * number of the unpaired marker and a static description ("BEGIN marker without END", "END marker without BEGIN"). */
int authorized_keys_check(const char *text, size_t len, size_t *ret_line, const char **ret_what);

/* Returns the lines inside every complete managed block, in order (without line terminators), as a
 * NULL-terminated strv; *ret_found tells whether a block exists at all. AK_E_DAMAGED. */
int authorized_keys_block_lines(const char *text, size_t len, char ***ret_lines, bool *ret_found);

/* Builds the new file text: the first block is replaced in place by a block holding `lines` (n may be 0 →
 * the block is removed), later blocks are dropped; with no block and n > 0 the block is appended at the end.
 * The result is NUL-terminated. AK_E_DAMAGED (nothing built). */
int authorized_keys_merge(const char *text, size_t len, char *const *lines, size_t n, char **ret, size_t *ret_len);
