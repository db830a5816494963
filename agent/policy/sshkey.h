/* SPDX-License-Identifier: MIT */
#pragma once

/* OpenSSH public keys as IMDS hands them out ("type base64 [comment]"): a conservative validator that
 * rejects rather than guesses, and the SHA256 fingerprint exactly as `ssh-keygen -l` prints it.
 * Pure: no I/O. */

#include <stddef.h>

#define SSHKEY_MAX_LINE 8192

typedef struct SshKey {
        char *type;        /* "ssh-ed25519", ... as declared (equal to the blob's embedded type) */
        char *blob_b64;    /* the base64 blob, as given */
        char *comment;     /* may be NULL; inner whitespace runs are kept as given */
        char *fingerprint; /* "SHA256:" + unpadded base64 of SHA-256(blob) */
        unsigned bits;     /* key size in bits (RSA: modulus; ed25519: 256; ECDSA: curve size) */
} SshKey;

void sshkey_done(SshKey *k);

/* Parses and validates one authorized_keys-style line. Trailing CR/LF are stripped first. On failure
 * returns a negative errno (-EINVAL for every rule broken, -ENOMEM) and, if ret_reason is not NULL, a
 * static string naming the rule (never containing key material). */
int sshkey_parse(const char *line, size_t len, SshKey *ret, const char **ret_reason);

/* The line the agent writes: "type blob[ comment]" (no trailing newline). */
char *sshkey_format(const SshKey *k);

/* Fingerprint of a raw blob, "SHA256:..." (unpadded base64). */
char *sshkey_fingerprint(const unsigned char *blob, size_t len);
