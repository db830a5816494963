/* SPDX-License-Identifier: MIT */
#include "sshkey.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "text-util.h"

typedef enum KeyKind { KIND_ED25519, KIND_ECDSA, KIND_SK_ED25519, KIND_SK_ECDSA, KIND_RSA } KeyKind;

static const struct {
        const char *name;
        KeyKind kind;
        const char *curve; /* ECDSA: the curve name inside the blob */
        size_t point_len;  /* ECDSA: uncompressed point length */
        unsigned bits;
        int nid; /* ECDSA: OpenSSL's curve */
} key_types[] = {
        { "ssh-ed25519", KIND_ED25519, NULL, 32, 256, 0 },
        { "ecdsa-sha2-nistp256", KIND_ECDSA, "nistp256", 65, 256, NID_X9_62_prime256v1 },
        { "ecdsa-sha2-nistp384", KIND_ECDSA, "nistp384", 97, 384, NID_secp384r1 },
        { "ecdsa-sha2-nistp521", KIND_ECDSA, "nistp521", 133, 521, NID_secp521r1 },
        { "sk-ssh-ed25519@openssh.com", KIND_SK_ED25519, NULL, 32, 256, 0 },
        { "sk-ecdsa-sha2-nistp256@openssh.com", KIND_SK_ECDSA, "nistp256", 65, 256, NID_X9_62_prime256v1 },
        { "ssh-rsa", KIND_RSA, NULL, 0, 0, 0 },
};

#define RSA_MIN_BITS 2048u
#define RSA_MAX_BITS 16384u

/* Names the rule a key breaks (a static string, never key material) and returns -EINVAL. */
static int reject_key(const char **ret_reason, const char *reason) {
        *ret_reason = reason;
        return -EINVAL;
}

void sshkey_done(SshKey *k) {
        if (!k)
                return;
        free(k->type);
        free(k->blob_b64);
        free(k->comment);
        free(k->fingerprint);
        *k = (SshKey) {};
}

/* A cursor over the SSH wire format (RFC 4251 §5). */
typedef struct Wire {
        const unsigned char *p;
        size_t left;
} Wire;

static int wire_string(Wire *w, const unsigned char **ret, size_t *ret_len) {
        uint32_t n;

        if (w->left < 4)
                return -EINVAL;
        n = (uint32_t) w->p[0] << 24 | (uint32_t) w->p[1] << 16 | (uint32_t) w->p[2] << 8 | w->p[3];
        if (n > w->left - 4)
                return -EINVAL;
        *ret = w->p + 4;
        *ret_len = n;
        w->p += 4 + n;
        w->left -= 4 + n;
        return 0;
}

static bool wire_string_eq(const unsigned char *s, size_t len, const char *want) {
        return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* Bit length of a positive mpint; -EINVAL for negative or non-minimal encodings. */
static int mpint_bits(const unsigned char *s, size_t len, unsigned *ret) {
        if (len == 0)
                return -EINVAL;
        if (s[0] & 0x80)
                return -EINVAL; /* negative */
        if (s[0] == 0) {
                /* a leading zero is only allowed to keep the sign bit clear */
                if (len == 1 || !(s[1] & 0x80))
                        return -EINVAL;
                s++;
                len--;
        }
        if (len > RSA_MAX_BITS / 8 + 1)
                return -EINVAL;
        unsigned bits = (unsigned) (len - 1) * 8;
        for (unsigned char top = s[0]; top; top >>= 1)
                bits++;
        *ret = bits;
        return 0;
}

/* The checks OpenSSH makes before it uses an ECDSA public key (sshkey_ec_validate_public(), after
 * EC_POINT_oct2point() put the point on the curve), so that what ssh-keygen and sshd refuse is refused here
 * too: on the curve, not the point at infinity, both coordinates longer than half the order, order·Q at
 * infinity, and x, y < order − 1. OpenSSL's libcrypto is in the process anyway (libcurl's TLS). 0 valid,
 * -EINVAL invalid, -ENOMEM. */
static int ecdsa_point_check(int nid, const unsigned char *point, size_t len) {
        EC_GROUP *group = NULL;
        EC_POINT *q = NULL, *nq = NULL;
        BN_CTX *ctx = NULL;
        BIGNUM *x, *y, *order, *limit;
        int r = -ENOMEM;

        ctx = BN_CTX_new();
        group = ctx ? EC_GROUP_new_by_curve_name(nid) : NULL;
        q = group ? EC_POINT_new(group) : NULL;
        nq = group ? EC_POINT_new(group) : NULL;
        if (!q || !nq)
                goto out;
        BN_CTX_start(ctx);
        x = BN_CTX_get(ctx);
        y = BN_CTX_get(ctx);
        order = BN_CTX_get(ctx);
        limit = BN_CTX_get(ctx);
        if (!limit)
                goto end;
        r = -EINVAL;
        if (EC_POINT_oct2point(group, q, point, len, ctx) != 1 || EC_POINT_is_at_infinity(group, q) ||
            EC_POINT_is_on_curve(group, q, ctx) != 1)
                goto end;
        if (EC_GROUP_get_order(group, order, ctx) != 1 || EC_POINT_get_affine_coordinates(group, q, x, y, ctx) != 1)
                goto end;
        if (BN_num_bits(x) <= BN_num_bits(order) / 2 || BN_num_bits(y) <= BN_num_bits(order) / 2)
                goto end;
        /* order·Q = ∞ follows from "on the curve" for the NIST prime curves (cofactor 1); checked anyway only
         * where the cofactor says it could fail, which saves a scalar multiplication per key. */
        if (!BN_is_one(EC_GROUP_get0_cofactor(group)) &&
            (EC_POINT_mul(group, nq, NULL, q, order, ctx) != 1 || EC_POINT_is_at_infinity(group, nq) != 1))
                goto end;
        if (!BN_sub(limit, order, BN_value_one()) || BN_cmp(x, limit) >= 0 || BN_cmp(y, limit) >= 0)
                goto end;
        r = 0;
end:
        BN_CTX_end(ctx);
out:
        EC_POINT_free(nq);
        EC_POINT_free(q);
        EC_GROUP_free(group);
        BN_CTX_free(ctx);
        return r;
}

/* Validates the decoded blob against the declared type; sets the key size. */
static int blob_validate(const unsigned char *blob, size_t len, size_t type_idx, unsigned *ret_bits, const char **reason) {
        Wire w = { blob, len };
        const unsigned char *s;
        size_t n;
        unsigned bits = key_types[type_idx].bits;

        if (wire_string(&w, &s, &n) < 0 || !wire_string_eq(s, n, key_types[type_idx].name))
                return reject_key(reason, "key type inside the blob differs from the declared type");

        switch (key_types[type_idx].kind) {
        case KIND_ED25519:
        case KIND_SK_ED25519:
                if (wire_string(&w, &s, &n) < 0 || n != 32)
                        return reject_key(reason, "malformed ed25519 public key");
                break;
        case KIND_ECDSA:
        case KIND_SK_ECDSA:
                if (wire_string(&w, &s, &n) < 0 || !wire_string_eq(s, n, key_types[type_idx].curve))
                        return reject_key(reason, "ECDSA curve name does not match the key type");
                if (wire_string(&w, &s, &n) < 0 || n != key_types[type_idx].point_len || s[0] != 0x04)
                        return reject_key(reason, "malformed ECDSA public point");
                int e = ecdsa_point_check(key_types[type_idx].nid, s, n);
                if (e == -ENOMEM)
                        return e;
                if (e < 0)
                        return reject_key(reason, "ECDSA public point is not a valid point of its curve");
                break;
        case KIND_RSA: {
                unsigned ebits;

                if (wire_string(&w, &s, &n) < 0 || mpint_bits(s, n, &ebits) < 0 || ebits < 2 || ebits > 64 || !(s[n - 1] & 1))
                        return reject_key(reason, "malformed RSA public exponent");
                if (wire_string(&w, &s, &n) < 0 || mpint_bits(s, n, &bits) < 0)
                        return reject_key(reason, "malformed RSA modulus");
                if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
                        return reject_key(reason, "RSA modulus outside 2048-16384 bits");
                break;
        }
        }

        if (key_types[type_idx].kind == KIND_SK_ED25519 || key_types[type_idx].kind == KIND_SK_ECDSA) {
                if (wire_string(&w, &s, &n) < 0 || n == 0)
                        return reject_key(reason, "security key without application string");
        }

        if (w.left != 0)
                return reject_key(reason, "trailing data after the public key");

        *ret_bits = bits;
        return 0;
}

char *sshkey_fingerprint(const unsigned char *blob, size_t len) {
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

static bool is_field_sep(char c) {
        return c == ' ' || c == '\t';
}

/* Skips the separators at *p, then the field after them; returns where the field starts. */
static size_t next_field(const char *line, size_t len, size_t *p) {
        size_t start;

        while (*p < len && is_field_sep(line[*p]))
                (*p)++;
        start = *p;
        while (*p < len && !is_field_sep(line[*p]))
                (*p)++;
        return start;
}

int sshkey_parse(const char *line, size_t len, SshKey *ret, const char **ret_reason) {
        const char *dummy;
        _cleanup_free_ unsigned char *blob = NULL;
        size_t blob_len, type_idx = SIZE_MAX, i;
        unsigned bits = 0;
        int r;

        if (!ret_reason)
                ret_reason = &dummy;
        *ret_reason = NULL;

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;

        if (len == 0)
                return reject_key(ret_reason, "empty key");
        if (len > SSHKEY_MAX_LINE)
                return reject_key(ret_reason, "key line longer than 8 KiB");
        for (i = 0; i < len; i++) {
                unsigned char c = (unsigned char) line[i];
                if ((c < 0x20 && c != '\t') || c == 0x7f)
                        return reject_key(ret_reason, "control character in key");
        }
        /* The comment ends up in state.json, `status --json` and on terminals: strict UTF-8, and no C1 control
         * character (U+0080–U+009F: 8-bit terminal escapes such as CSI) either. */
        if (!utf8_is_valid(line, len))
                return reject_key(ret_reason, "key is not valid UTF-8");
        if (!text_is_clean(line, len, true))
                return reject_key(ret_reason, "control character in key");

        /* field 1: the type. Anything else in front (key options like from="..." or command="...") is refused. */
        size_t p = 0, type_start = next_field(line, len, &p), type_len = p - type_start;
        for (i = 0; i < ELEMENTSOF(key_types); i++)
                if (strlen(key_types[i].name) == type_len && memcmp(line + type_start, key_types[i].name, type_len) == 0)
                        type_idx = i;
        if (type_idx == SIZE_MAX)
                return reject_key(ret_reason, "unsupported key type or key options");

        /* field 2: the base64 blob */
        size_t b64_start = next_field(line, len, &p), b64_len = p - b64_start;
        if (b64_len == 0)
                return reject_key(ret_reason, "missing base64 key data");

        blob = malloc(b64_len); /* decoded is always shorter */
        if (!blob)
                return -ENOMEM;
        const char *b64_end;
        if (sodium_base642bin(blob, b64_len, line + b64_start, b64_len, NULL, &blob_len, &b64_end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            b64_end != line + b64_start + b64_len)
                return reject_key(ret_reason, "key data is not valid base64");

        r = blob_validate(blob, blob_len, type_idx, &bits, ret_reason);
        if (r < 0)
                return r;

        /* field 3: the comment, the rest of the line */
        while (p < len && is_field_sep(line[p]))
                p++;
        size_t comment_len = len - p;
        while (comment_len > 0 && is_field_sep(line[p + comment_len - 1]))
                comment_len--;

        SshKey k = {
                .type = strndup(line + type_start, type_len),
                .blob_b64 = strndup(line + b64_start, b64_len),
                .comment = comment_len > 0 ? strndup(line + p, comment_len) : NULL,
                .fingerprint = sshkey_fingerprint(blob, blob_len),
                .bits = bits,
        };
        if (!k.type || !k.blob_b64 || (comment_len > 0 && !k.comment) || !k.fingerprint) {
                sshkey_done(&k);
                return -ENOMEM;
        }

        *ret = k;
        return 0;
}

char *sshkey_format(const SshKey *k) {
        char *s;

        if (asprintf(&s, "%s %s%s%s", k->type, k->blob_b64, k->comment ? " " : "", k->comment ?: "") < 0)
                return NULL;
        return s;
}
