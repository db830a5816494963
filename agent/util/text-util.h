/* SPDX-License-Identifier: MIT */
#pragma once

/* Text that reaches people (terminals) and JSON readers: strict UTF-8 checks and escaping; and the line
 * walk that the line-based files (authorized_keys, sshd_config) share. Pure. */

#include <stdbool.h>
#include <stddef.h>

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool utf8_is_valid(const char *s, size_t len);

/* Valid UTF-8 without C0 controls (U+0000–U+001F; a tab allowed when allow_tab), DEL (U+007F) or C1 controls
 * (U+0080–U+009F): what may be stored and printed as is. */
bool text_is_clean(const char *s, size_t len, bool allow_tab);

/* A copy for printing: every byte of a C0/DEL/C1 control character or of invalid UTF-8 becomes "\xNN"
 * (so a terminal never sees an escape sequence and JSON stays valid UTF-8); everything else is kept.
 * NULL in, NULL out; NULL on ENOMEM. */
char *text_escape(const char *s);

/* The length of the line that starts at pos in text[0..len), its '\n' included (up to len without one). */
size_t line_length(const char *text, size_t len, size_t pos);
