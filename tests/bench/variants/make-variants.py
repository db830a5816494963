#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Builds experimental agent variants for `make bench` from a patched COPY of agent/ (the tree is not touched):

  agent-fastkeys      sshkey.c: table-driven base64 decode/encode instead of libsodium's constant-time ones
                      (public keys are public: no timing concern), sodium_init() once, no asprintf per key.
  agent-keys-sorted   node.c: keys_match() compares sorted fingerprint lists, O(n log n) instead of O(n*m)
                      (status/verify, not apply).

  make-variants.py SRCDIR NAME     writes the patched copy of agent/ to SRCDIR/agent (bench.mk compiles it)
Each patch is applied by exact text replacement and fails loudly when the agent source no longer matches."""
import os
import shutil
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

FASTKEYS = [(
    "agent/policy/sshkey.c",
    """char *sshkey_fingerprint(const unsigned char *blob, size_t len) {
        unsigned char digest[crypto_hash_sha256_BYTES];
        char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
        char *ret;

        if (sodium_init() < 0) /* idempotent; picks the implementations */
                return NULL;
        crypto_hash_sha256(digest, blob, len);
        sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
        if (asprintf(&ret, "SHA256:%s", b64) < 0)
                return NULL;
        return ret;
}
""",
    """static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 without padding; out holds 4*ceil(n/3)+1. */
static void b64_encode_nopad(char *out, const unsigned char *in, size_t n) {
        size_t i = 0;
        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
                *out++ = b64_chars[v >> 18];
                *out++ = b64_chars[(v >> 12) & 63];
                *out++ = b64_chars[(v >> 6) & 63];
                *out++ = b64_chars[v & 63];
        }
        if (n - i == 1) {
                uint32_t v = (uint32_t) in[i] << 16;
                *out++ = b64_chars[v >> 18];
                *out++ = b64_chars[(v >> 12) & 63];
        } else if (n - i == 2) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
                *out++ = b64_chars[v >> 18];
                *out++ = b64_chars[(v >> 12) & 63];
                *out++ = b64_chars[(v >> 6) & 63];
        }
        *out = 0;
}

/* Strict standard base64 with '=' padding (what sodium_base642bin(ORIGINAL) accepts, no ignored characters):
 * returns the decoded length or -1. Not constant-time: public keys are public. */
static ssize_t b64_decode(unsigned char *out, const char *in, size_t n) {
        static signed char map[256];
        static bool init;
        size_t o = 0, i, pad = 0;

        if (!init) {
                memset(map, -1, sizeof map);
                for (i = 0; i < 64; i++)
                        map[(unsigned char) b64_chars[i]] = (signed char) i;
                init = true;
        }
        if (n % 4 != 0)
                return -1;
        if (n >= 1 && in[n - 1] == '=')
                pad++;
        if (n >= 2 && in[n - 2] == '=')
                pad++;
        for (i = 0; i < n; i += 4) {
                int a = map[(unsigned char) in[i]], b = map[(unsigned char) in[i + 1]];
                bool last = i + 4 == n;
                int c = last && pad == 2 ? 0 : map[(unsigned char) in[i + 2]];
                int d = last && pad >= 1 ? 0 : map[(unsigned char) in[i + 3]];
                if (a < 0 || b < 0 || c < 0 || d < 0)
                        return -1;
                uint32_t v = (uint32_t) a << 18 | (uint32_t) b << 12 | (uint32_t) c << 6 | (uint32_t) d;
                out[o++] = (unsigned char) (v >> 16);
                if (!(last && pad == 2))
                        out[o++] = (unsigned char) (v >> 8);
                if (!(last && pad >= 1))
                        out[o++] = (unsigned char) v;
                /* non-canonical trailing bits are refused, like libsodium does */
                if (last && ((pad == 2 && (b & 15)) || (pad == 1 && (c & 3))))
                        return -1;
        }
        return (ssize_t) o;
}

char *sshkey_fingerprint(const unsigned char *blob, size_t len) {
        static bool sodium_ready;
        unsigned char digest[crypto_hash_sha256_BYTES];
        char *ret = malloc(7 + 44);

        if (!ret)
                return NULL;
        if (!sodium_ready) {
                if (sodium_init() < 0) {
                        free(ret);
                        return NULL;
                }
                sodium_ready = true;
        }
        crypto_hash_sha256(digest, blob, len);
        memcpy(ret, "SHA256:", 7);
        b64_encode_nopad(ret + 7, digest, sizeof digest);
        return ret;
}
"""), (
    "agent/policy/sshkey.c",
    """        if (sodium_base642bin(blob, b64_len, line + b64_start, b64_len, NULL, &blob_len, &b64_end,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            b64_end != line + b64_start + b64_len) {""",
    """        ssize_t dl = b64_decode(blob, line + b64_start, b64_len);
        blob_len = dl < 0 ? 0 : (size_t) dl;
        b64_end = line + b64_start + b64_len;
        if (dl < 0) {"""), (
    "agent/policy/sshkey.c",
    """        const char *b64_end;
""",
    """        const char *b64_end _unused_;
"""), (
    "agent/policy/sshkey.c",
    "#include <string.h>\n",
    "#include <string.h>\n#include <sys/types.h>\n")]

KEYS_SORTED = [(
    "agent/cmd/node.c",
    """static int keys_match(const BlockKeys *b, const State *s) {
        if (b->n_invalid > 0 || b->n != s->n_keys)
                return 0;
        for (size_t i = 0; i < s->n_keys; i++) {
                bool found = false;
                for (size_t j = 0; j < b->n && !found; j++)
                        found = streq(b->keys[j].fingerprint, s->keys[i].fingerprint);
                if (!found)
                        return 0;
        }
        return 1;
}""",
    """static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The same multiset of fingerprints on both sides: sort both lists, compare in order. O(n log n). */
static int keys_match(const BlockKeys *b, const State *s) {
        _cleanup_free_ const char **x = NULL, **y = NULL;

        if (b->n_invalid > 0 || b->n != s->n_keys)
                return 0;
        x = malloc((b->n ?: 1) * sizeof *x);
        y = malloc((b->n ?: 1) * sizeof *y);
        if (!x || !y)
                return 0;
        for (size_t i = 0; i < b->n; i++) {
                x[i] = b->keys[i].fingerprint;
                y[i] = s->keys[i].fingerprint;
        }
        qsort(x, b->n, sizeof *x, cmp_str);
        qsort(y, b->n, sizeof *y, cmp_str);
        for (size_t i = 0; i < b->n; i++)
                if (!streq(x[i], y[i]))
                        return 0;
        return 1;
}""")]

VARIANTS = {"agent-fastkeys": FASTKEYS, "agent-keys-sorted": KEYS_SORTED}


def main():
    src, name = sys.argv[1:3]
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(os.path.join(REPO, "agent"), os.path.join(src, "agent"))
    for path, old, new in VARIANTS[name]:
        p = os.path.join(src, path)
        text = open(p).read()
        if text.count(old) != 1:
            sys.exit(f"make-variants: {name}: the patch for {path} no longer applies (agent source changed)")
        open(p, "w").write(text.replace(old, new))


if __name__ == "__main__":
    main()
