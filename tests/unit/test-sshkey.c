/* SPDX-License-Identifier: MIT */
/* sshkey_parse() against ssh-keygen as the oracle: keys of every supported type are generated at test time
 * and the parser's fingerprint/type/comment/bits must equal what `ssh-keygen -l -E sha256` prints. The
 * security-key types (which need a FIDO token to generate) are built by hand from the wire format and
 * ssh-keygen must accept them and print the same fingerprint. Then every rejection rule, each with a
 * crafted line that breaks exactly that rule. */

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "policy/sshkey.h"
#include "unit.h"

static char tmpdir[] = "/tmp/test-sshkey.XXXXXX";

/* ---- helpers ------------------------------------------------------------------------------------------ */

typedef struct Bytes {
        unsigned char *p;
        size_t len;
} Bytes;

static void bytes_add(Bytes *b, const void *d, size_t n) {
        b->p = realloc(b->p, b->len + n + 1);
        if (!b->p)
                abort();
        memcpy(b->p + b->len, d, n);
        b->len += n;
}

static void put_u32(Bytes *b, uint32_t v) {
        unsigned char x[4] = { v >> 24, v >> 16, v >> 8, v };
        bytes_add(b, x, 4);
}

static void put_string(Bytes *b, const void *d, size_t n) {
        put_u32(b, (uint32_t) n);
        bytes_add(b, d, n);
}

static void put_cstr(Bytes *b, const char *s) {
        put_string(b, s, strlen(s));
}

static char *b64(const unsigned char *d, size_t n) {
        size_t l = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        char *s = malloc(l);
        if (!s)
                abort();
        sodium_bin2base64(s, l, d, n, sodium_base64_VARIANT_ORIGINAL);
        return s;
}

static Bytes unb64(const char *s) {
        Bytes b = { malloc(strlen(s) + 1), 0 };
        if (!b.p || sodium_base642bin(b.p, strlen(s) + 1, s, strlen(s), NULL, &b.len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
                abort();
        return b;
}

/* "type base64(blob)[ comment]" */
static char *make_line(const char *type, const Bytes *blob, const char *comment) {
        _cleanup_free_ char *e = b64(blob->p, blob->len);
        char *s;
        if (asprintf(&s, "%s %s%s%s", type, e, comment ? " " : "", comment ?: "") < 0)
                abort();
        return s;
}

static char *run(const char *fmt, ...) _printf_(1, 2);
static char *run(const char *fmt, ...) {
        _cleanup_free_ char *cmd = NULL;
        char *out = NULL;
        size_t n = 0;
        va_list ap;
        FILE *f;

        va_start(ap, fmt);
        if (vasprintf(&cmd, fmt, ap) < 0)
                abort();
        va_end(ap);
        f = popen(cmd, "r");
        if (!f)
                abort();
        out = malloc(65536);
        if (!out)
                abort();
        n = fread(out, 1, 65535, f);
        out[n] = '\0';
        if (pclose(f) != 0) {
                fprintf(stderr, "command failed: %s\n", cmd);
                free(out);
                return NULL;
        }
        return out;
}

static char *read_text(const char *path) {
        FILE *f = fopen(path, "re");
        char *s = malloc(65536);
        size_t n;
        if (!f || !s)
                abort();
        n = fread(s, 1, 65535, f);
        s[n] = '\0';
        fclose(f);
        return s;
}

static void write_text(const char *path, const char *s) {
        FILE *f = fopen(path, "we");
        if (!f)
                abort();
        fputs(s, f);
        fclose(f);
}

/* The oracle: `ssh-keygen -l -E sha256 -f FILE` → "BITS SHA256:... COMMENT (TYPE)" */
typedef struct Oracle {
        unsigned bits;
        char fingerprint[128];
        char comment[512];
        char kind[64];
} Oracle;

static bool oracle(const char *path, Oracle *o) {
        _cleanup_free_ char *out = run("ssh-keygen -l -E sha256 -f '%s' 2>&1", path);
        char *sp1, *sp2, *lp;

        if (!out)
                return false;
        out[strcspn(out, "\n")] = '\0';
        /* comment may contain spaces: split at the first two spaces and at the last " (" */
        sp1 = strchr(out, ' ');
        if (!sp1)
                return false;
        *sp1 = '\0';
        o->bits = (unsigned) strtoul(out, NULL, 10);
        sp2 = strchr(sp1 + 1, ' ');
        lp = strrchr(sp1 + 1, '(');
        if (!sp2 || !lp || lp < sp2)
                return false;
        *sp2 = '\0';
        snprintf(o->fingerprint, sizeof o->fingerprint, "%s", sp1 + 1);
        lp[-1] = '\0';
        snprintf(o->comment, sizeof o->comment, "%s", sp2 + 1);
        snprintf(o->kind, sizeof o->kind, "%.*s", (int) strcspn(lp + 1, ")"), lp + 1);
        return true;
}

static int parse_str(const char *line, SshKey *k, const char **reason) {
        return sshkey_parse(line, strlen(line), k, reason);
}

/* Expects a rejection: -EINVAL and a reason string. */
static void check_reject(const char *line, size_t len, const char *why) {
        SshKey k = {};
        const char *reason = NULL;
        int r = sshkey_parse(line, len, &k, &reason);
        CHECK_INTEQ(r, -EINVAL, why);
        CHECK(reason != NULL, why);
        CHECK(!k.type && !k.fingerprint, why); /* nothing handed out on failure */
        if (r >= 0)
                sshkey_done(&k);
}

static void check_reject_str(const char *line, const char *why) {
        check_reject(line, strlen(line), why);
}

/* ---- generated keys vs ssh-keygen ---------------------------------------------------------------------- */

static const struct {
        const char *t;
        int bits;
        const char *type;
        const char *kind;
} gen[] = {
        { "ed25519", 0, "ssh-ed25519", "ED25519" },
        { "ecdsa", 256, "ecdsa-sha2-nistp256", "ECDSA" },
        { "ecdsa", 384, "ecdsa-sha2-nistp384", "ECDSA" },
        { "ecdsa", 521, "ecdsa-sha2-nistp521", "ECDSA" },
        { "rsa", 2048, "ssh-rsa", "RSA" },
        { "rsa", 4096, "ssh-rsa", "RSA" },
};

/* Lines kept for the crafted cases below. */
static char *line_ed25519, *line_p256, *line_p384, *line_rsa2048;

static void test_generated(void) {
        for (size_t i = 0; i < ELEMENTSOF(gen); i++) {
                _cleanup_free_ char *path = NULL, *pub = NULL, *out = NULL, *fmt = NULL, *expect_fmt = NULL;
                const char *comment = "user@host with  two  spaces";
                SshKey k = {};
                Oracle o = {};
                const char *reason = NULL;
                char bits[16] = "";

                if (gen[i].bits)
                        snprintf(bits, sizeof bits, "-b %d", gen[i].bits);
                if (asprintf(&path, "%s/key%zu", tmpdir, i) < 0)
                        abort();
                out = run("ssh-keygen -q -t %s %s -N '' -C '%s' -f '%s' </dev/null 2>&1", gen[i].t, bits, comment, path);
                CHECK(out != NULL, "ssh-keygen generates the key");
                if (!out)
                        continue;
                free(path);
                if (asprintf(&path, "%s/key%zu.pub", tmpdir, i) < 0)
                        abort();
                pub = read_text(path);
                CHECK(oracle(path, &o), "ssh-keygen -l reads the key");
                CHECK_STREQ(o.kind, gen[i].kind, "ssh-keygen kind");

                CHECK_INTEQ(parse_str(pub, &k, &reason), 0, gen[i].type);
                CHECK(reason == NULL, "no reason on success");
                CHECK_STREQ(k.type, gen[i].type, "declared type");
                CHECK_STREQ(k.fingerprint, o.fingerprint, "fingerprint as ssh-keygen prints it");
                CHECK_STREQ(k.comment, o.comment, "comment, inner spaces kept");
                CHECK_STREQ(k.comment, comment, "comment as generated");
                CHECK_INTEQ(k.bits, o.bits, "bits as ssh-keygen prints them");
                CHECK_INTEQ(k.bits, gen[i].bits ?: 256, "bits as requested");

                /* sshkey_format gives back the .pub line (without its newline) */
                fmt = sshkey_format(&k);
                expect_fmt = strndup(pub, strcspn(pub, "\n"));
                CHECK_STREQ(fmt, expect_fmt, "sshkey_format round trip");
                sshkey_done(&k);
                CHECK(k.type == NULL && k.fingerprint == NULL, "sshkey_done clears");

                pub[strcspn(pub, "\n")] = '\0';
                if (i == 0)
                        line_ed25519 = strdup(pub);
                else if (gen[i].bits == 256)
                        line_p256 = strdup(pub);
                else if (gen[i].bits == 384)
                        line_p384 = strdup(pub);
                else if (gen[i].bits == 2048)
                        line_rsa2048 = strdup(pub);
        }
}

/* Returns the decoded blob of a "type b64 ..." line. */
static Bytes line_blob(const char *line) {
        const char *s = strchr(line, ' ') + 1;
        _cleanup_free_ char *e = strndup(s, strcspn(s, " "));
        return unb64(e);
}

/* Reads SSH string number `idx` of a blob. */
static Bytes blob_field(const Bytes *b, unsigned idx) {
        size_t pos = 0;
        for (;;) {
                uint32_t n = (uint32_t) b->p[pos] << 24 | (uint32_t) b->p[pos + 1] << 16 | (uint32_t) b->p[pos + 2] << 8 | b->p[pos + 3];
                if (idx-- == 0)
                        return (Bytes) { b->p + pos + 4, n };
                pos += 4 + n;
        }
}

/* ---- security keys, built by hand ---------------------------------------------------------------------- */

static void check_sk(const char *type, const Bytes *blob, unsigned bits, const char *kind) {
        _cleanup_free_ char *line = make_line(type, blob, "fido key"), *path = NULL, *fmt = NULL;
        SshKey k = {};
        Oracle o = {};

        if (asprintf(&path, "%s/%s.pub", tmpdir, kind) < 0)
                abort();
        write_text(path, line);
        CHECK(oracle(path, &o), "ssh-keygen -lf accepts the hand-built security key");
        CHECK_STREQ(o.kind, kind, "ssh-keygen names the sk type");
        CHECK_INTEQ(parse_str(line, &k, NULL), 0, type);
        CHECK_STREQ(k.type, type, "sk type");
        CHECK_STREQ(k.fingerprint, o.fingerprint, "sk fingerprint as ssh-keygen prints it");
        CHECK_STREQ(k.comment, "fido key", "sk comment");
        CHECK_INTEQ(k.bits, bits, "sk bits");
        CHECK_INTEQ(k.bits, o.bits, "sk bits as ssh-keygen prints them");
        fmt = sshkey_format(&k);
        CHECK_STREQ(fmt, line, "sk format round trip");
        sshkey_done(&k);
}

static void test_security_keys(void) {
        Bytes ed = line_blob(line_ed25519), p256 = line_blob(line_p256);
        Bytes edpk = blob_field(&ed, 1), point = blob_field(&p256, 2);
        Bytes sk_ed = {}, sk_ec = {}, bad = {};
        char *l;

        put_cstr(&sk_ed, "sk-ssh-ed25519@openssh.com");
        put_string(&sk_ed, edpk.p, edpk.len);
        put_cstr(&sk_ed, "ssh:");
        check_sk("sk-ssh-ed25519@openssh.com", &sk_ed, 256, "ED25519-SK");

        put_cstr(&sk_ec, "sk-ecdsa-sha2-nistp256@openssh.com");
        put_cstr(&sk_ec, "nistp256");
        put_string(&sk_ec, point.p, point.len);
        put_cstr(&sk_ec, "ssh:");
        check_sk("sk-ecdsa-sha2-nistp256@openssh.com", &sk_ec, 256, "ECDSA-SK");

        /* a security key without the application string is truncated: sshd could not parse it */
        put_cstr(&bad, "sk-ssh-ed25519@openssh.com");
        put_string(&bad, edpk.p, edpk.len);
        l = make_line("sk-ssh-ed25519@openssh.com", &bad, NULL);
        check_reject_str(l, "sk key without application");
        free(l);
        /* an empty application string is not a valid security key */
        put_cstr(&bad, "");
        l = make_line("sk-ssh-ed25519@openssh.com", &bad, NULL);
        check_reject_str(l, "sk key with empty application");
        free(l);
        /* the declared sk type must match: a plain ed25519 blob under the sk name */
        l = make_line("sk-ssh-ed25519@openssh.com", &ed, NULL);
        check_reject_str(l, "sk type declared, ed25519 blob");
        free(l);
        free(bad.p);

        free(sk_ed.p);
        free(sk_ec.p);
        free(ed.p);
        free(p256.p);
}

/* ---- RSA sizes and mpints ------------------------------------------------------------------------------- */

/* An RSA blob with exponent e (raw mpint bytes) and modulus n (raw mpint bytes). */
static char *rsa_line(const unsigned char *e, size_t elen, const unsigned char *n, size_t nlen) {
        Bytes b = {};
        char *l;
        put_cstr(&b, "ssh-rsa");
        put_string(&b, e, elen);
        put_string(&b, n, nlen);
        l = make_line("ssh-rsa", &b, "crafted");
        free(b.p);
        return l;
}

/* A modulus mpint of exactly `bits` bits (minimal encoding: leading 0 when the top bit is set). */
static unsigned char *modulus(unsigned bits, size_t *ret_len) {
        size_t bytes = (bits + 7) / 8;
        bool pad = bits % 8 == 0;
        unsigned char *m = malloc(bytes + 1);
        if (!m)
                abort();
        memset(m, 0xa5, bytes + 1);
        if (pad) {
                m[0] = 0;
                m[1] = 0x80 | 0x25;
        } else
                m[0] = (unsigned char) ((1u << (bits % 8 - 1)) | 1u);
        m[bytes + pad - 1] |= 1; /* odd */
        *ret_len = bytes + pad;
        return m;
}

static void check_rsa_bits(unsigned bits, bool ok, const char *why) {
        static const unsigned char e[] = { 0x01, 0x00, 0x01 };
        size_t nlen;
        _cleanup_free_ unsigned char *n = modulus(bits, &nlen);
        _cleanup_free_ char *l = rsa_line(e, sizeof e, n, nlen);
        SshKey k = {};

        if (ok) {
                CHECK_INTEQ(parse_str(l, &k, NULL), 0, why);
                CHECK_INTEQ(k.bits, bits, why);
                sshkey_done(&k);
        } else
                check_reject_str(l, why);
}

static void test_rsa(void) {
        static const unsigned char e65537[] = { 0x01, 0x00, 0x01 };
        _cleanup_free_ char *path = NULL, *out = NULL, *pub = NULL;
        char *l;
        size_t nlen;
        _cleanup_free_ unsigned char *n = modulus(2048, &nlen);

        /* a real 1024-bit RSA key: below the 2048-bit floor */
        if (asprintf(&path, "%s/rsa1024", tmpdir) < 0)
                abort();
        out = run("ssh-keygen -q -t rsa -b 1024 -N '' -C small -f '%s' </dev/null 2>&1", path);
        CHECK(out != NULL, "ssh-keygen makes a 1024-bit key");
        free(path);
        if (asprintf(&path, "%s/rsa1024.pub", tmpdir) < 0)
                abort();
        pub = read_text(path);
        check_reject_str(pub, "RSA-1024 is below 2048 bits");

        check_rsa_bits(2048, true, "2048 bits is the floor, accepted");
        check_rsa_bits(2047, false, "2047 bits is below the floor");
        check_rsa_bits(1023, false, "1023 bits is below the floor");
        check_rsa_bits(16384, true, "16384 bits is the ceiling, accepted");
        check_rsa_bits(16385, false, "16385 bits is above the ceiling");
        check_rsa_bits(3072, true, "3072 bits accepted");

        /* the modulus must be a positive mpint: top bit set without a leading zero means negative */
        l = rsa_line(e65537, sizeof e65537, n + 1, nlen - 1);
        check_reject_str(l, "negative RSA modulus");
        free(l);
        /* non-minimal mpint: a leading zero in front of a byte without the top bit */
        {
                size_t ml;
                _cleanup_free_ unsigned char *m = modulus(2047, &ml);
                _cleanup_free_ unsigned char *m2 = malloc(ml + 1);
                m2[0] = 0;
                memcpy(m2 + 1, m, ml);
                l = rsa_line(e65537, sizeof e65537, m2, ml + 1);
                check_reject_str(l, "non-minimal RSA modulus (00 before a byte < 0x80)");
                free(l);
                /* two leading zeros before a top-bit byte: still non-minimal */
                _cleanup_free_ unsigned char *m3 = malloc(nlen + 1);
                m3[0] = 0;
                memcpy(m3 + 1, n, nlen);
                l = rsa_line(e65537, sizeof e65537, m3, nlen + 1);
                check_reject_str(l, "non-minimal RSA modulus (00 00 80...)");
                free(l);
        }
        /* a zero-length modulus is the number 0: no key */
        l = rsa_line(e65537, sizeof e65537, n, 0);
        check_reject_str(l, "empty RSA modulus");
        free(l);
        /* exponent rules */
        {
                static const unsigned char eneg[] = { 0x81, 0x00, 0x01 }, eeven[] = { 0x01, 0x00, 0x00 }, eone[] = { 0x01 },
                                           enonmin[] = { 0x00, 0x01, 0x00, 0x01 }, ethree[] = { 0x03 };
                l = rsa_line(eneg, sizeof eneg, n, nlen);
                check_reject_str(l, "negative RSA exponent");
                free(l);
                l = rsa_line(eeven, sizeof eeven, n, nlen);
                check_reject_str(l, "even RSA exponent");
                free(l);
                l = rsa_line(eone, sizeof eone, n, nlen);
                check_reject_str(l, "RSA exponent 1");
                free(l);
                l = rsa_line(enonmin, sizeof enonmin, n, nlen);
                check_reject_str(l, "non-minimal RSA exponent");
                free(l);
                l = rsa_line(ethree, sizeof ethree, n, nlen);
                SshKey k = {};
                CHECK_INTEQ(parse_str(l, &k, NULL), 0, "RSA exponent 3 is fine");
                sshkey_done(&k);
                free(l);
        }
}

/* ---- other rejection rules --------------------------------------------------------------------------------- */

static void test_rejections(void) {
        Bytes ed = line_blob(line_ed25519), p256 = line_blob(line_p256), rsa = line_blob(line_rsa2048);
        Bytes edpk = blob_field(&ed, 1), point = blob_field(&p256, 2);
        const char *ed_b64 = strchr(line_ed25519, ' ') + 1;
        _cleanup_free_ char *ed_b64_only = strndup(ed_b64, strcspn(ed_b64, " "));
        char *l;

        /* the declared type must equal the type inside the blob */
        l = make_line("ssh-rsa", &ed, NULL);
        check_reject_str(l, "ssh-rsa declared, ed25519 blob");
        free(l);
        l = make_line("ssh-ed25519", &rsa, NULL);
        check_reject_str(l, "ssh-ed25519 declared, rsa blob");
        free(l);
        l = make_line("ecdsa-sha2-nistp384", &p256, NULL);
        check_reject_str(l, "nistp384 declared, nistp256 blob");
        free(l);

        /* ECDSA: the curve name inside must match the type */
        {
                Bytes b = {};
                put_cstr(&b, "ecdsa-sha2-nistp256");
                put_cstr(&b, "nistp384");
                put_string(&b, point.p, point.len);
                l = make_line("ecdsa-sha2-nistp256", &b, NULL);
                check_reject_str(l, "ECDSA curve mismatch");
                free(l);
                free(b.p);
                /* a compressed point (0x02 prefix) is not what OpenSSH writes */
                b = (Bytes) {};
                put_cstr(&b, "ecdsa-sha2-nistp256");
                put_cstr(&b, "nistp256");
                put_string(&b, point.p, 33);
                b.p[b.len - 33] = 0x02;
                l = make_line("ecdsa-sha2-nistp256", &b, NULL);
                check_reject_str(l, "ECDSA compressed point");
                free(l);
                free(b.p);
                /* a point of the right length but without the 0x04 prefix */
                b = (Bytes) {};
                put_cstr(&b, "ecdsa-sha2-nistp256");
                put_cstr(&b, "nistp256");
                put_string(&b, point.p, point.len);
                b.p[b.len - point.len] = 0x05;
                l = make_line("ecdsa-sha2-nistp256", &b, NULL);
                check_reject_str(l, "ECDSA point without 0x04");
                free(l);
                free(b.p);
                /* a point that is not on the curve (one bit of y flipped): ssh-keygen and sshd refuse it, so
                 * must we (issue 11: it was written and listed by status) */
                static const struct {
                        const char *type;
                        bool sk;
                } off[] = { { "ecdsa-sha2-nistp256", false }, { "sk-ecdsa-sha2-nistp256@openssh.com", true } };
                for (size_t i = 0; i < ELEMENTSOF(off); i++) {
                        const char *reason = NULL;
                        SshKey k = {};
                        b = (Bytes) {};
                        put_cstr(&b, off[i].type);
                        put_cstr(&b, "nistp256");
                        put_string(&b, point.p, point.len);
                        b.p[b.len - 1] ^= 1;
                        if (off[i].sk)
                                put_cstr(&b, "ssh:");
                        l = make_line(off[i].type, &b, NULL);
                        CHECK_INTEQ(sshkey_parse(l, strlen(l), &k, &reason), -EINVAL, "off-curve point rejected");
                        CHECK_STREQ(reason, "ECDSA public point is not a valid point of its curve", off[i].type);
                        free(l);
                        free(b.p);
                        /* all-zero coordinates: not on the curve either */
                        b = (Bytes) {};
                        put_cstr(&b, off[i].type);
                        put_cstr(&b, "nistp256");
                        put_string(&b, point.p, point.len);
                        memset(b.p + b.len - 64, 0, 64);
                        if (off[i].sk)
                                put_cstr(&b, "ssh:");
                        l = make_line(off[i].type, &b, NULL);
                        check_reject_str(l, "all-zero point");
                        free(l);
                        free(b.p);
                }
        }

        /* ed25519 public keys are exactly 32 bytes */
        {
                unsigned char k33[33];
                memcpy(k33, edpk.p, 32);
                k33[32] = 0x42;
                Bytes b = {};
                put_cstr(&b, "ssh-ed25519");
                put_string(&b, edpk.p, 31);
                l = make_line("ssh-ed25519", &b, NULL);
                check_reject_str(l, "ed25519 with a 31-byte key");
                free(l);
                free(b.p);
                b = (Bytes) {};
                put_cstr(&b, "ssh-ed25519");
                put_string(&b, k33, 33);
                l = make_line("ssh-ed25519", &b, NULL);
                check_reject_str(l, "ed25519 with a 33-byte key");
                free(l);
                free(b.p);
        }

        /* trailing data after the key: a blob ssh-keygen would not write */
        {
                Bytes b = {};
                bytes_add(&b, ed.p, ed.len);
                put_cstr(&b, "");
                l = make_line("ssh-ed25519", &b, NULL);
                check_reject_str(l, "trailing empty string after the ed25519 key");
                free(l);
                b.len = ed.len + 1;
                l = make_line("ssh-ed25519", &b, NULL);
                check_reject_str(l, "one trailing byte after the ed25519 key");
                free(l);
                free(b.p);
                b = (Bytes) {};
                bytes_add(&b, rsa.p, rsa.len);
                put_cstr(&b, "x");
                l = make_line("ssh-rsa", &b, NULL);
                check_reject_str(l, "trailing data after the RSA modulus");
                free(l);
                free(b.p);
        }
        /* truncated blobs: cut at every length from 0 to len-1 */
        {
                unsigned bad = 0;
                for (size_t cut = 0; cut < ed.len; cut++) {
                        Bytes b = { ed.p, cut };
                        SshKey k = {};
                        if (cut == 0)
                                continue; /* empty base64 is "missing data", checked below */
                        l = make_line("ssh-ed25519", &b, NULL);
                        if (sshkey_parse(l, strlen(l), &k, NULL) != -EINVAL)
                                bad++;
                        free(l);
                }
                CHECK_INTEQ(bad, 0, "every truncation of an ed25519 blob is rejected");
                bad = 0;
                for (size_t cut = 1; cut < rsa.len; cut += 7) {
                        Bytes b = { rsa.p, cut };
                        SshKey k = {};
                        l = make_line("ssh-rsa", &b, NULL);
                        if (sshkey_parse(l, strlen(l), &k, NULL) != -EINVAL)
                                bad++;
                        free(l);
                }
                CHECK_INTEQ(bad, 0, "truncations of an RSA blob are rejected");
                bad = 0;
                for (size_t cut = 1; cut < p256.len; cut++) {
                        Bytes b = { p256.p, cut };
                        SshKey k = {};
                        l = make_line("ecdsa-sha2-nistp256", &b, NULL);
                        if (sshkey_parse(l, strlen(l), &k, NULL) != -EINVAL)
                                bad++;
                        free(l);
                }
                CHECK_INTEQ(bad, 0, "every truncation of an ECDSA blob is rejected");
        }

        /* base64 */
        check_reject_str("ssh-ed25519 AAAA!!!!", "characters outside the base64 alphabet");
        check_reject_str("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "base64 of a length that cannot decode");
        if (asprintf(&l, "ssh-ed25519 %.*s*%s", 10, ed_b64_only, ed_b64_only + 11) < 0)
                abort();
        check_reject_str(l, "one bad base64 character in the middle of a real key");
        free(l);
        if (asprintf(&l, "ssh-ed25519 %s=", ed_b64_only) < 0)
                abort();
        check_reject_str(l, "extra '=' after the padding");
        free(l);
        if (asprintf(&l, "ssh-ed25519 %.*s", (int) strlen(ed_b64_only) - 1, ed_b64_only) < 0)
                abort();
        check_reject_str(l, "padding cut short");
        free(l);
        check_reject_str("ssh-ed25519", "type only, no base64");
        check_reject_str("ssh-ed25519   \t ", "type and blanks, no base64");

        /* key options in front of the type are never accepted from IMDS */
        if (asprintf(&l, "from=\"10.0.0.1\" %s", line_ed25519) < 0)
                abort();
        check_reject_str(l, "from= option");
        free(l);
        if (asprintf(&l, "command=\"/bin/true\" %s", line_ed25519) < 0)
                abort();
        check_reject_str(l, "command= option");
        free(l);
        if (asprintf(&l, "no-pty %s", line_ed25519) < 0)
                abort();
        check_reject_str(l, "no-pty option");
        free(l);
        if (asprintf(&l, "restrict,command=\"x y\" %s", line_ed25519) < 0)
                abort();
        check_reject_str(l, "restrict,command= options");
        free(l);

        /* unknown types */
        {
                Bytes b = {};
                put_cstr(&b, "ssh-dss");
                put_cstr(&b, "p");
                put_cstr(&b, "q");
                put_cstr(&b, "g");
                put_cstr(&b, "y");
                l = make_line("ssh-dss", &b, NULL);
                check_reject_str(l, "ssh-dss is not supported");
                free(l);
                free(b.p);
        }
        if (asprintf(&l, "SSH-ED25519 %s", ed_b64_only) < 0)
                abort();
        check_reject_str(l, "type names are case-sensitive");
        free(l);
        if (asprintf(&l, "ssh-ed25519-cert-v01@openssh.com %s", ed_b64_only) < 0)
                abort();
        check_reject_str(l, "certificates are not a supported type");
        free(l);

        /* control characters anywhere but at the end */
        {
                static const struct {
                        char c;
                        const char *why;
                } ctl[] = {
                        { '\n', "embedded LF would start a new authorized_keys line" },
                        { '\r', "embedded CR" },
                        { '\x01', "control character 0x01" },
                        { '\x1b', "ESC (terminal escape in logs)" },
                        { '\x7f', "DEL" },
                        { '\v', "vertical tab is not a field separator" },
                        { '\0', "NUL inside the counted length" },
                };
                size_t base = strlen(line_ed25519);
                for (size_t i = 0; i < ELEMENTSOF(ctl); i++) {
                        _cleanup_free_ char *m = malloc(base + 16);
                        size_t len;
                        /* in the comment */
                        len = (size_t) sprintf(m, "%s a", line_ed25519);
                        m[len - 1] = ctl[i].c;
                        memcpy(m + len, "b", 2);
                        len++;
                        check_reject(m, len, ctl[i].why);
                        /* in the middle of the base64 */
                        memcpy(m, line_ed25519, base + 1);
                        m[20] = ctl[i].c;
                        check_reject(m, base, ctl[i].why);
                }
        }

        /* C1 control characters (UTF-8 encoded U+0080–U+009F; U+009B is an 8-bit CSI) and DEL in the comment:
         * terminal escapes in status / --dry-run / show-imds (issue 11) */
        {
                static const char *const c1[] = { "\xc2\x80", "\xc2\x85", "\xc2\x9b", "\xc2\x9f", "\x7f" };
                for (size_t i = 0; i < ELEMENTSOF(c1); i++) {
                        _cleanup_free_ char *m = NULL;
                        const char *reason = NULL;
                        SshKey k = {};
                        if (asprintf(&m, "%s a%sb", line_ed25519, c1[i]) < 0)
                                abort();
                        CHECK_INTEQ(sshkey_parse(m, strlen(m), &k, &reason), -EINVAL, "C1/DEL in the comment rejected");
                        CHECK_STREQ(reason, "control character in key", "named as a control character");
                }
                /* U+00A0 (no-break space, c2 a0) and U+00E9 are printable: accepted */
                _cleanup_free_ char *m = NULL;
                SshKey k = {};
                if (asprintf(&m, "%s caf\xc3\xa9\xc2\xa0x", line_ed25519) < 0)
                        abort();
                CHECK_INTEQ(sshkey_parse(m, strlen(m), &k, NULL), 0, "printable non-ASCII comment accepted");
                sshkey_done(&k);
        }

        /* length: 8192 bytes (after trailing CR/LF) is the limit */
        {
                size_t base = strlen(line_ed25519);
                _cleanup_free_ char *m = malloc(8200);
                SshKey k = {};
                memcpy(m, line_ed25519, base);
                memset(m + base, 'x', 8200 - base);
                m[base] = ' ';
                CHECK_INTEQ(sshkey_parse(m, 8192, &k, NULL), 0, "8192-byte line accepted");
                {
                        const char *cstart = strchr(strchr(line_ed25519, ' ') + 1, ' ') + 1;
                        CHECK_INTEQ(k.comment ? strlen(k.comment) : 0, 8192 - (size_t) (cstart - line_ed25519), "comment fills the line");
                }
                sshkey_done(&k);
                check_reject(m, 8193, "8193-byte line is over the limit");
                m[8192] = '\r';
                m[8193] = '\n';
                CHECK_INTEQ(sshkey_parse(m, 8194, &k, NULL), 0, "8192 bytes + CRLF accepted (terminator stripped first)");
                sshkey_done(&k);
        }

        /* empty */
        check_reject("", 0, "empty line");
        check_reject_str("\r\n", "only a line terminator");
        check_reject_str("   ", "only blanks");

        free(ed.p);
        free(p256.p);
        free(rsa.p);
}

/* ---- accepted spellings --------------------------------------------------------------------------------- */

static void test_accepted(void) {
        const char *sp = strchr(line_ed25519, ' ');
        _cleanup_free_ char *type = strndup(line_ed25519, (size_t) (sp - line_ed25519));
        _cleanup_free_ char *blob = strndup(sp + 1, strcspn(sp + 1, " "));
        _cleanup_free_ char *expect_fp = NULL;
        char *l, *f;
        SshKey k = {};

        {
                Bytes b = line_blob(line_ed25519);
                expect_fp = sshkey_fingerprint(b.p, b.len);
                free(b.p);
        }

        if (asprintf(&l, "%s %s me@host\r\n", type, blob) < 0)
                abort();
        CHECK_INTEQ(parse_str(l, &k, NULL), 0, "trailing CRLF is stripped");
        CHECK_STREQ(k.comment, "me@host", "comment without CRLF");
        CHECK_STREQ(k.fingerprint, expect_fp, "fingerprint");
        f = sshkey_format(&k);
        {
                _cleanup_free_ char *want = NULL;
                if (asprintf(&want, "%s %s me@host", type, blob) < 0)
                        abort();
                CHECK_STREQ(f, want, "sshkey_format drops the CRLF");
        }
        free(f);
        sshkey_done(&k);
        free(l);

        if (asprintf(&l, "%s\t%s\tcomment\twith\ttabs", type, blob) < 0)
                abort();
        CHECK_INTEQ(parse_str(l, &k, NULL), 0, "tabs separate fields");
        CHECK_STREQ(k.blob_b64, blob, "blob after a tab");
        CHECK_STREQ(k.comment, "comment\twith\ttabs", "tabs inside the comment kept");
        sshkey_done(&k);
        free(l);

        if (asprintf(&l, "%s %s   a  b  c   \n", type, blob) < 0)
                abort();
        CHECK_INTEQ(parse_str(l, &k, NULL), 0, "comment with spaces");
        CHECK_STREQ(k.comment, "a  b  c", "inner runs kept, outer blanks dropped");
        f = sshkey_format(&k);
        {
                _cleanup_free_ char *want = NULL;
                if (asprintf(&want, "%s %s a  b  c", type, blob) < 0)
                        abort();
                CHECK_STREQ(f, want, "sshkey_format with comment");
        }
        free(f);
        sshkey_done(&k);
        free(l);

        if (asprintf(&l, "%s %s", type, blob) < 0)
                abort();
        CHECK_INTEQ(parse_str(l, &k, NULL), 0, "no comment");
        CHECK(k.comment == NULL, "no comment → NULL");
        f = sshkey_format(&k);
        CHECK_STREQ(f, l, "sshkey_format without comment: no trailing space");
        free(f);
        sshkey_done(&k);
        free(l);

        if (asprintf(&l, "%s %s \t \n", type, blob) < 0)
                abort();
        CHECK_INTEQ(parse_str(l, &k, NULL), 0, "trailing blanks only");
        CHECK(k.comment == NULL, "blank comment → NULL");
        sshkey_done(&k);
        free(l);

        /* sshkey_fingerprint on a known vector: SHA-256 of the empty string */
        f = sshkey_fingerprint((const unsigned char *) "", 0);
        CHECK_STREQ(f, "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", "SHA-256 of nothing, unpadded base64");
        free(f);
        f = sshkey_fingerprint((const unsigned char *) "abc", 3);
        CHECK_STREQ(f, "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0", "SHA-256 of abc");
        free(f);
}

int main(void) {
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        test_generated();
        if (!line_ed25519 || !line_p256 || !line_p384 || !line_rsa2048) {
                fprintf(stderr, "key generation failed, cannot continue\n");
                unit_failed++;
        } else {
                test_security_keys();
                test_rsa();
                test_rejections();
                test_accepted();
        }
        free(line_ed25519);
        free(line_p256);
        free(line_p384);
        free(line_rsa2048);
        free(run("rm -rf '%s'", tmpdir));
        return unit_finish();
}
