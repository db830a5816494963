/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the public key validator and fingerprinter (sshkey_parse, sshkey_format).
 *
 * Input byte 0 selects how the rest is used:
 *   0x00..0x07  "raw blob" mode: the rest is a binary SSH wire blob; it is base64-encoded behind the key type
 *               number byte0 (so the fuzzer reaches blob_validate() without having to learn base64);
 *   anything else: the whole input is one authorized_keys-style line.
 * Properties of an accepted key: the fingerprint is "SHA256:" + 43 base64 characters and equals the
 * fingerprint of the decoded blob; the formatted line is valid UTF-8 without control characters but tab, at most
 * 8 KiB, and parses again to the same type, blob, comment and fingerprint (a fixed point). */

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_SETUP()                   \
        do {                           \
                if (sodium_init() < 0) \
                        abort();       \
        } while (0)

#include "fuzz-util.h"
#include "policy/sshkey.h"

static const char *const types[8] = {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-rsa",
        "ssh-dss",
};

/* Independent of the agent's validator: decode every sequence, compare with the shortest encoding. */
static bool utf8_ok(const char *str) {
        const unsigned char *s = (const unsigned char *) str;
        while (*s) {
                uint32_t cp;
                int n = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 ? 1 : (*s & 0xf0) == 0xe0 ? 2 : (*s & 0xf8) == 0xf0 ? 3 : -1;
                if (n < 0)
                        return false;
                cp = n == 0 ? *s : (uint32_t) (*s & (0x3f >> n));
                for (int k = 1; k <= n; k++) {
                        if ((s[k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[k] & 0x3f);
                }
                int shortest = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
                if (shortest != n || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                s += n + 1;
        }
        return true;
}

static bool streq_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_accepted(const SshKey *k) {
        SshKey again = {};
        char *line;
        int r;

        ASSERT(k->type && k->blob_b64);
        ASSERT(strncmp(k->fingerprint, "SHA256:", 7) == 0 && strlen(k->fingerprint) == 7 + 43);
        ASSERT(k->bits >= 256);

        /* the fingerprint is the one of the blob as given */
        size_t b64_len = strlen(k->blob_b64), blob_len = 0;
        unsigned char *blob = malloc(b64_len + 1);
        ASSERT(blob);
        ASSERT(sodium_base642bin(blob, b64_len + 1, k->blob_b64, b64_len, NULL, &blob_len, NULL, sodium_base64_VARIANT_ORIGINAL) == 0);
        char *fp = sshkey_fingerprint(blob, blob_len);
        ASSERT(fp && strcmp(fp, k->fingerprint) == 0);
        free(fp);
        free(blob);

        line = sshkey_format(k);
        ASSERT(line);
        ASSERT(strlen(line) <= SSHKEY_MAX_LINE);
        for (const char *c = line; *c; c++)
                ASSERT((unsigned char) *c >= 0x20 || *c == '\t');
        ASSERT(line[0] != '#' && line[0] != ' ' && line[0] != '\t');
        ASSERT(utf8_ok(line)); /* it goes into state.json and status --json */
        r = sshkey_parse(line, strlen(line), &again, NULL);
        ASSERT(r == 0);
        ASSERT(strcmp(again.type, k->type) == 0);
        ASSERT(strcmp(again.blob_b64, k->blob_b64) == 0);
        ASSERT(streq_null(again.comment, k->comment));
        ASSERT(strcmp(again.fingerprint, k->fingerprint) == 0);
        ASSERT(again.bits == k->bits);
        sshkey_done(&again);
        free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        SshKey k = {};
        const char *reason = NULL;
        char *line = NULL;
        size_t len;
        int r;

        if (size > 0 && data[0] < 8) {
                /* raw blob mode */
                const char *type = types[data[0]];
                size_t blob_len = size - 1, b64 = sodium_base64_ENCODED_LEN(blob_len, sodium_base64_VARIANT_ORIGINAL);
                len = strlen(type) + 1 + b64 + sizeof " fuzz@example";
                line = malloc(len);
                ASSERT(line);
                strcpy(line, type);
                strcat(line, " ");
                sodium_bin2base64(line + strlen(line), b64, data + 1, blob_len, sodium_base64_VARIANT_ORIGINAL);
                strcat(line, " fuzz@example");
                len = strlen(line);
        } else {
                line = malloc(size ?: 1);
                ASSERT(line);
                memcpy(line, data, size);
                len = size;
        }

        r = sshkey_parse(line, len, &k, &reason);
        if (r < 0) {
                ASSERT(r == -EINVAL || r == -ENOMEM);
                ASSERT(r == -ENOMEM || reason != NULL);
        } else {
                ASSERT(reason == NULL);
                check_accepted(&k);
                sshkey_done(&k);
        }
        free(line);
        return 0;
}
