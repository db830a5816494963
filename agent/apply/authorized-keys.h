/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent's managed block inside an authorized_keys file. Pure text in, text out: every byte outside
 * the block is preserved. */

#include <stdbool.h>
#include <stddef.h>

#define AK_BEGIN "# BEGIN aks-ssh-access managed keys (edits inside this block are overwritten)"
#define AK_END "# END aks-ssh-access managed keys"
/* Markers are recognised by these prefixes (so a hand-edited marker comment still counts). */
#define AK_BEGIN_PREFIX "# BEGIN aks-ssh-access"
#define AK_END_PREFIX "# END aks-ssh-access"

/* Returns the lines inside the first complete managed block (without line terminators) as a
 * NULL-terminated strv; *ret_found tells whether a block exists at all. */
int authorized_keys_block_lines(const char *text, size_t len, char ***ret_lines, bool *ret_found);

/* Builds the new file text: the first complete block is replaced in place by a block holding `lines`
 * (n may be 0 → the block is removed), later blocks are dropped, an orphaned BEGIN line (no END after it)
 * is dropped; with no block and n > 0 the block is appended at the end (after a '\n' if the text does not
 * end in one). The result is NUL-terminated. */
int authorized_keys_merge(const char *text, size_t len, char *const *lines, size_t n, char **ret, size_t *ret_len);
