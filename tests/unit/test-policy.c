/* SPDX-License-Identifier: MIT */
/* policy_parse() and policy_check_paths(): the IMDS document → mode, admin user, keys (SPEC §2). */

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "policy/policy.h"
#include "unit.h"

/* A valid ssh-ed25519 line whose 32-byte key is derived from `seed` (the parser checks structure, not
 * the curve point, exactly like sshd's authorized_keys reader). */
static char *key_line(uint32_t seed, const char *comment) {
        unsigned char blob[4 + 11 + 4 + 32];
        char b64[sodium_base64_ENCODED_LEN(sizeof blob, sodium_base64_VARIANT_ORIGINAL)];
        char *s;

        memcpy(blob, "\0\0\0\x0bssh-ed25519\0\0\0\x20", 19);
        for (size_t i = 0; i < 32; i++)
                blob[19 + i] = (unsigned char) (seed >> (8 * (i % 4))) ^ (unsigned char) (i * 37);
        sodium_bin2base64(b64, sizeof b64, blob, sizeof blob, sodium_base64_VARIANT_ORIGINAL);
        if (asprintf(&s, "ssh-ed25519 %s%s%s", b64, comment ? " " : "", comment ?: "") < 0)
                abort();
        return s;
}

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...) {
        va_list ap;
        char *s;
        va_start(ap, f);
        if (vasprintf(&s, f, ap) < 0)
                abort();
        va_end(ap);
        return s;
}

/* A document with the given tagsList and publicKeys JSON fragments (NULL: field absent). */
static char *doc(const char *tags, const char *keys) {
        return fmt("{\"compute\":{\"vmId\":\"1234-abcd\",\"osProfile\":{\"adminUsername\":\"azureuser\"}%s%s%s%s}}",
                   tags ? ",\"tagsList\":" : "", tags ?: "", keys ? ",\"publicKeys\":" : "", keys ?: "");
}

static char *tag(const char *value) {
        return fmt("[{\"name\":\"other\",\"value\":\"x\"},{\"name\":\"aks-managed-ssh-access\",\"value\":\"%s\"}]", value);
}

static int parse(const char *json, const char *mode_tag, Policy *p, const char **err) {
        *p = (Policy) { .mode = MODE_INVALID };
        return policy_parse(json, strlen(json), mode_tag, p, err);
}

/* Expects an invalid document: -EBADMSG, a reason, nothing handed out. */
static void check_invalid_len(const char *json, size_t len, const char *mode_tag, const char *why) {
        Policy p = { .mode = MODE_INVALID };
        const char *err = NULL;
        int r = policy_parse(json, len, mode_tag, &p, &err);
        CHECK_INTEQ(r, -EBADMSG, why);
        if (r >= 0)
                policy_done(&p);
        CHECK(err != NULL, why);
        CHECK(p.admin_user == NULL && p.keys == NULL && p.rejected == NULL, why);
}

static void check_invalid(const char *json, const char *why) {
        check_invalid_len(json, strlen(json), NULL, why);
}

static void test_mode(void) {
        static const struct {
                const char *value;
                Mode mode;
        } ok[] = {
                { "Disabled", MODE_DISABLED },   { "DISABLED", MODE_DISABLED },   { "disabled", MODE_DISABLED },
                { "LocalUser", MODE_LOCALUSER }, { "localuser", MODE_LOCALUSER }, { "LOCALUSER", MODE_LOCALUSER },
                { "EntraId", MODE_ENTRAID },     { "entraid", MODE_ENTRAID },     { "ENTRAID", MODE_ENTRAID },
        };
        Policy p;
        const char *err;

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_free_ char *t = tag(ok[i].value), *d = doc(t, "[]");
                CHECK_INTEQ(parse(d, NULL, &p, &err), 0, ok[i].value);
                CHECK_INTEQ(p.mode, ok[i].mode, ok[i].value);
                CHECK(p.mode_from_tag, "mode came from the tag");
                CHECK_STREQ(p.admin_user, "azureuser", "admin user");
                CHECK_STREQ(p.vm_id, "1234-abcd", "vm id");
                CHECK(err == NULL, "no error on success");
                policy_done(&p);
        }

        /* the tag's name is matched case-insensitively too, as Azure does (issue 11: ignored, node left open) */
        {
                static const char *const names[] = { "AKS-MANAGED-SSH-ACCESS", "Aks-Managed-Ssh-Access" };
                for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                        _cleanup_free_ char *t = NULL, *d = NULL;
                        if (asprintf(&t, "[{\"name\":\"%s\",\"value\":\"Disabled\"}]", names[i]) < 0)
                                abort();
                        d = doc(t, "[]");
                        CHECK_INTEQ(parse(d, NULL, &p, &err), 0, names[i]);
                        CHECK_INTEQ(p.mode, MODE_DISABLED, "tag name in another case");
                        CHECK(p.mode_from_tag, "from the tag");
                        policy_done(&p);
                }
        }

        CHECK_STREQ(mode_to_string(MODE_DISABLED), "Disabled", "mode_to_string");
        CHECK_STREQ(mode_to_string(MODE_LOCALUSER), "LocalUser", "mode_to_string");
        CHECK_STREQ(mode_to_string(MODE_ENTRAID), "EntraId", "mode_to_string");
        CHECK_INTEQ(mode_from_string(NULL), MODE_INVALID, "NULL is no mode");
        CHECK_INTEQ(mode_from_string("Local User"), MODE_INVALID, "no fuzzy matching");

        /* absent tag: LocalUser by default, and the caller can tell */
        {
                const char *absent[] = { NULL, "[]", "[{\"name\":\"other\",\"value\":\"Disabled\"}]",
                                         "[\"aks-managed-ssh-access\",{\"name\":\"x\"}]" };
                for (size_t i = 0; i < ELEMENTSOF(absent); i++) {
                        _cleanup_free_ char *d = doc(absent[i], NULL);
                        CHECK_INTEQ(parse(d, NULL, &p, &err), 0, absent[i] ?: "no tagsList");
                        CHECK_INTEQ(p.mode, MODE_LOCALUSER, "absent tag → LocalUser");
                        CHECK(!p.mode_from_tag, "absent tag → mode_from_tag false");
                        CHECK_INTEQ(p.n_keys, 0, "no keys");
                        policy_done(&p);
                }
        }

        /* custom tag name */
        {
                _cleanup_free_ char *d = doc("[{\"name\":\"my-ssh\",\"value\":\"Disabled\"}]", NULL);
                CHECK_INTEQ(parse(d, "my-ssh", &p, &err), 0, "custom tag");
                CHECK_INTEQ(p.mode, MODE_DISABLED, "custom tag read");
                CHECK(p.mode_from_tag, "custom tag counts");
                policy_done(&p);
                CHECK_INTEQ(parse(d, NULL, &p, &err), 0, "default tag name, custom tag present");
                CHECK_INTEQ(p.mode, MODE_LOCALUSER, "the default tag is not the custom one");
                CHECK(!p.mode_from_tag, "default tag absent");
                policy_done(&p);
        }

        /* the same tag twice with the same value (any case) is fine */
        {
                _cleanup_free_ char *d = doc("[{\"name\":\"aks-managed-ssh-access\",\"value\":\"Disabled\"},"
                                             "{\"name\":\"aks-managed-ssh-access\",\"value\":\"disabled\"}]",
                                             NULL);
                CHECK_INTEQ(parse(d, NULL, &p, &err), 0, "same value twice");
                CHECK_INTEQ(p.mode, MODE_DISABLED, "same value twice");
                policy_done(&p);
        }

        /* unknown mode values make the document invalid (fallback applies), never a guess */
        {
                const char *bad[] = { "Open", "", "Disabled ", " Disabled", "Entra", "LocalUser,Disabled" };
                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        _cleanup_free_ char *t = tag(bad[i]), *d = doc(t, NULL);
                        check_invalid(d, "unknown mode value");
                }
        }
        /* a tag value that is not a string: IMDS primitives are strings */
        {
                const char *bad[] = { "1", "null", "true", "{}", "[\"Disabled\"]" };
                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        _cleanup_free_ char *t = fmt("[{\"name\":\"aks-managed-ssh-access\",\"value\":%s}]", bad[i]);
                        _cleanup_free_ char *d = doc(t, NULL);
                        check_invalid(d, "non-string tag value");
                }
                /* the tag present without any value at all */
                _cleanup_free_ char *d = doc("[{\"name\":\"aks-managed-ssh-access\"}]", NULL);
                check_invalid(d, "tag without a value");
        }
        /* two tags that disagree: no way to tell which one is meant */
        {
                _cleanup_free_ char *d = doc("[{\"name\":\"aks-managed-ssh-access\",\"value\":\"Disabled\"},"
                                             "{\"name\":\"aks-managed-ssh-access\",\"value\":\"LocalUser\"}]",
                                             NULL);
                check_invalid(d, "conflicting tags");
        }
}

static void test_invalid_documents(void) {
        static const char nul_doc[] = "{\"compute\":{\"osProfile\":{\"adminUsername\":\"azureuser\"}}}\0 ";

        /* not JSON at all */
        check_invalid("not json", "not JSON");
        /* an empty body */
        check_invalid("", "empty body");
        /* a JSON array is not the instance document */
        check_invalid("[{\"compute\":{}}]", "JSON array");
        /* a valid document followed by garbage is a truncated/concatenated response */
        check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azureuser\"}}} x", "trailing garbage");
        check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azureuser\"}}}{}", "two documents");
        /* an embedded NUL would hide the rest of the body from cJSON */
        check_invalid_len(nul_doc, sizeof nul_doc - 1, NULL, "NUL byte after the document");
        /* no compute object */
        check_invalid("{}", "no compute");
        check_invalid("{\"network\":{}}", "no compute");
        check_invalid("{\"compute\":\"x\"}", "compute is a string");
        check_invalid("{\"compute\":null}", "compute is null");
        /* adminUsername must be a non-empty string */
        check_invalid("{\"compute\":{}}", "no osProfile");
        check_invalid("{\"compute\":{\"osProfile\":{}}}", "adminUsername missing");
        check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":5}}}", "adminUsername a number");
        check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":null}}}", "adminUsername null");
        check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":[\"a\"]}}}", "adminUsername an array");
        check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"\"}}}", "adminUsername empty");
        check_invalid("{\"compute\":{\"osProfile\":\"azureuser\"}}", "osProfile a string");
        /* publicKeys / tagsList of the wrong type */
        {
                _cleanup_free_ char *d1 = doc(NULL, "{}"), *d2 = doc("\"x\"", NULL), *d3 = doc(NULL, "\"ssh-ed25519 AAAA\""),
                                    *d4 = doc("{\"name\":\"aks-managed-ssh-access\",\"value\":\"Disabled\"}", NULL), *d5 = doc(NULL, "5");
                check_invalid(d1, "publicKeys is an object");
                check_invalid(d2, "tagsList is a string");
                check_invalid(d3, "publicKeys is a string");
                check_invalid(d4, "tagsList is an object");
                check_invalid(d5, "publicKeys is a number");
                _cleanup_free_ char *d6 = doc(NULL, "null"), *d7 = doc("null", NULL);
                /* null is not an array (SPEC §2: a non-array publicKeys/tagsList makes the document invalid) */
                check_invalid(d6, "publicKeys is null");
                check_invalid(d7, "tagsList is null");
        }
        /* sanity: the same document without the breakage parses (so the cases above fail for their reason) */
        {
                Policy p;
                const char *err;
                const char *good = "{\"compute\":{\"osProfile\":{\"adminUsername\":\"azureuser\"}}} \r\n\t";
                CHECK_INTEQ(parse(good, NULL, &p, &err), 0, "minimal document with trailing whitespace");
                CHECK_STREQ(p.admin_user, "azureuser", "admin user");
                CHECK(p.vm_id == NULL, "no vmId");
                CHECK_INTEQ(p.n_keys + p.n_rejected, 0, "no keys");
                policy_done(&p);
        }
}

static void test_entries(void) {
        _cleanup_free_ char *k0 = key_line(1, "first"), *k1 = key_line(2, "second"), *keys = NULL, *d = NULL;
        Policy p;
        const char *err;

        keys = fmt("["
                   "\"%s\","                                                                           /* 0: not an object */
                   "{\"keyData\":5,\"path\":\"/home/azureuser/.ssh/authorized_keys\"},"                /* 1: keyData a number */
                   "{\"path\":\"/home/azureuser/.ssh/authorized_keys\"},"                              /* 2: keyData missing */
                   "{\"keyData\":\"%s\"},"                                                             /* 3: path missing */
                   "{\"keyData\":\"%s\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"},"           /* 4: valid */
                   "{\"keyData\":\"ssh-dss AAAA\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"}," /* 5: bad key */
                   "{\"keyData\":\"%s\",\"path\":5},"                                                  /* 6: path a number */
                   "null,"                                                                             /* 7: null */
                   "{\"keyData\":\"%s\\r\\n\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"},"     /* 8: valid, CRLF */
                   "{\"keyData\":\"no-pty %s\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"}"     /* 9: options */
                   "]",
                   k0, k0, k0, k0, k1, k1);
        d = doc(NULL, keys);
        CHECK_INTEQ(parse(d, NULL, &p, &err), 0, "bad entries do not fail the document");
        CHECK_INTEQ(p.n_keys, 2, "two valid entries");
        if (p.n_keys == 2) {
                CHECK_INTEQ(p.keys[0].index, 4, "first valid is entry 4");
                CHECK_STREQ(p.keys[0].key.comment, "first", "entry 4 comment");
                CHECK_STREQ(p.keys[0].path, "/home/azureuser/.ssh/authorized_keys", "entry 4 path");
                CHECK_INTEQ(p.keys[1].index, 8, "second valid is entry 8");
                CHECK_STREQ(p.keys[1].key.comment, "second", "CRLF stripped from keyData");
        }
        CHECK_INTEQ(p.n_rejected, 8, "eight rejected entries");
        {
                static const size_t want[] = { 0, 1, 2, 3, 5, 6, 7, 9 };
                for (size_t i = 0; i < ELEMENTSOF(want) && i < p.n_rejected; i++) {
                        CHECK_INTEQ(p.rejected[i].index, want[i], "rejected index");
                        CHECK(p.rejected[i].reason && *p.rejected[i].reason, "rejection has a reason");
                        CHECK(!strstr(p.rejected[i].reason, "AAAA"), "reason holds no key material");
                }
                if (p.n_rejected == 8) {
                        CHECK_STREQ(p.rejected[0].reason, "entry is not an object", "reason 0");
                        CHECK_STREQ(p.rejected[1].reason, "keyData is missing or not a string", "reason 1");
                        CHECK_STREQ(p.rejected[2].reason, "keyData is missing or not a string", "reason 2");
                        CHECK_STREQ(p.rejected[3].reason, "path is missing or not a string", "reason 3");
                        CHECK_STREQ(p.rejected[5].reason, "path is missing or not a string", "reason 6");
                        CHECK_STREQ(p.rejected[6].reason, "entry is not an object", "reason 7");
                }
        }
        policy_done(&p);
        CHECK(p.keys == NULL && p.n_keys == 0 && p.admin_user == NULL, "policy_done clears");

        /* control characters arriving as JSON escapes are still control characters (SPEC §2: any control
         * character other than trailing CR/LF rejects the entry) */
        {
                _cleanup_free_ char *k = key_line(3, "c"), *ks = NULL, *dd = NULL;
                ks = fmt("[{\"keyData\":\"%s\\nssh-ed25519 AAAAinjected\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"},"
                         "{\"keyData\":\"%s\\u001b[31m\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"},"
                         /* a NUL must not silently cut the entry short: what follows it would be dropped unseen */
                         "{\"keyData\":\"%s\\u0000 trailing\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"}]",
                         k, k, k);
                dd = doc(NULL, ks);
                CHECK_INTEQ(parse(dd, NULL, &p, &err), 0, "escaped control characters parse as a document");
                CHECK_INTEQ(p.n_keys, 0, "no entry with an escaped control character is accepted");
                CHECK_INTEQ(p.n_rejected, 3, "all three rejected");
                policy_done(&p);

                /* a path with an escaped NUL is not the authorized_keys path */
                free(ks);
                free(dd);
                ks = fmt("[{\"keyData\":\"%s\",\"path\":\"/home/azureuser/.ssh/authorized_keys\\u0000/../../../etc/shadow\"}]", k);
                dd = doc(NULL, ks);
                CHECK_INTEQ(parse(dd, NULL, &p, &err), 0, "NUL path parses as a document");
                CHECK_INTEQ(p.n_keys + p.n_rejected, 1, "one entry");
                policy_check_paths(&p, "/home/azureuser", NULL);
                CHECK_INTEQ(p.n_keys, 0, "a path with an embedded NUL is rejected");
                policy_done(&p);

                /* not valid UTF-8, or a C0/C1 control character or DEL: the name goes into state.json and onto
                 * terminals (issue 11) */
                check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azure\xffuser\"}}}", "adminUsername not UTF-8");
                check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azure\xc3user\"}}}", "adminUsername truncated UTF-8");
                check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azure\\u009buser\"}}}", "adminUsername with a C1 CSI");
                check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azure\\u0085user\"}}}", "adminUsername with a C1 NEL");
                check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azure\\u007fuser\"}}}", "adminUsername with DEL");
                check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azure\\u001b[0muser\"}}}", "adminUsername with ESC");
                check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azure\\tuser\"}}}", "adminUsername with a tab");
                /* an admin user name with an embedded NUL is not a user name */
                check_invalid("{\"compute\":{\"osProfile\":{\"adminUsername\":\"azureuser\\u0000root\"}}}",
                              "adminUsername with an escaped NUL");
        }

        /* publicKeys absent: no keys, a valid document */
        free(d);
        d = doc(NULL, NULL);
        CHECK_INTEQ(parse(d, NULL, &p, &err), 0, "publicKeys absent");
        CHECK_INTEQ(p.n_keys + p.n_rejected, 0, "publicKeys absent: nothing");
        policy_done(&p);
}

/* One key per path, all with distinct blobs; returns the Policy after policy_check_paths. */
static size_t run_paths(const char *const *paths, size_t n, const char *home, const char *real_home, Policy *p) {
        char *keys = strdup("[");
        _cleanup_free_ char *d = NULL;
        const char *err;

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *k = key_line((uint32_t) (100 + i), NULL), *old = keys;
                keys = fmt("%s%s{\"keyData\":\"%s\",\"path\":\"%s\"}", old, i ? "," : "", k, paths[i]);
        }
        {
                char *old = keys;
                keys = fmt("%s]", old);
                free(old);
        }
        d = doc(NULL, keys);
        free(keys);
        CHECK_INTEQ(parse(d, NULL, p, &err), 0, "path document parses");
        CHECK_INTEQ(p->n_keys, n, "every path entry parses before the path check");
        return policy_check_paths(p, home, real_home);
}

static void test_paths(void) {
        static const char *const paths[] = {
                "/home/azureuser/.ssh/authorized_keys",              /* 0: kept */
                "/home/azureuser/.ssh/../.ssh/authorized_keys",      /* 1: not the exact spelling */
                "/etc/shadow",                                       /* 2: outside the home */
                "/home/azureuser/.ssh/authorized_keys2",             /* 3: another file sshd reads */
                "/home/azureuseX/.ssh/authorized_keys",              /* 4: another home */
                "/home/azureuser//.ssh/authorized_keys",             /* 5: double slash */
                "/home/azureuser/.ssh/authorized_keys/",             /* 6: trailing slash */
                ".ssh/authorized_keys",                              /* 7: relative */
                "",                                                  /* 8: empty */
                "/data/home/azureuser/.ssh/authorized_keys",         /* 9: the realpath spelling: kept */
                "/home/azureuser/.ssh/authorized_keys\\n",           /* 10: with a newline */
                "/home/azureuser/.ssh/./authorized_keys",            /* 11: dot component */
                "/home/azureuser/../azureuser/.ssh/authorized_keys", /* 12: dotdot through the home */
                "/HOME/azureuser/.ssh/authorized_keys",              /* 13: case differs */
                "/home/azure/.ssh/authorized_keys",                  /* 14: a prefix of the home */
        };
        Policy p;
        size_t r;

        r = run_paths(paths, ELEMENTSOF(paths), "/home/azureuser", "/data/home/azureuser", &p);
        CHECK_INTEQ(r, ELEMENTSOF(paths) - 2, "all but two rejected for their path");
        CHECK_INTEQ(p.n_keys, 2, "exact and realpath spelling kept");
        if (p.n_keys == 2) {
                CHECK_INTEQ(p.keys[0].index, 0, "exact path kept");
                CHECK_INTEQ(p.keys[1].index, 9, "realpath spelling kept");
        }
        CHECK_INTEQ(p.n_rejected, ELEMENTSOF(paths) - 2, "rejections recorded");
        for (size_t i = 0, j = 0; i < p.n_rejected; i++, j++) {
                if (j == 0 || j == 9)
                        j++;
                CHECK_INTEQ(p.rejected[i].index, j, "rejected path index, in order");
                CHECK_STREQ(p.rejected[i].reason, "path is not the admin user's ~/.ssh/authorized_keys", "path reason");
        }
        policy_done(&p);

        /* home with a trailing slash in passwd: the exact spelling still matches */
        {
                static const char *const ps[] = { "/home/azureuser/.ssh/authorized_keys", "/home/azureuser//.ssh/authorized_keys" };
                r = run_paths(ps, 2, "/home/azureuser/", NULL, &p);
                CHECK_INTEQ(r, 1, "trailing-slash home: one rejected");
                CHECK_INTEQ(p.n_keys, 1, "trailing-slash home: canonical spelling kept");
                if (p.n_keys == 1)
                        CHECK_INTEQ(p.keys[0].index, 0, "trailing-slash home: entry 0");
                policy_done(&p);
        }
        /* no home known at all: nothing can be accepted */
        {
                static const char *const ps[] = { "/home/azureuser/.ssh/authorized_keys" };
                r = run_paths(ps, 1, NULL, NULL, &p);
                CHECK_INTEQ(r, 1, "no home: rejected");
                CHECK_INTEQ(p.n_keys, 0, "no home: nothing kept");
                policy_done(&p);
        }
        /* only the realpath given */
        {
                static const char *const ps[] = { "/home/azureuser/.ssh/authorized_keys", "/data/home/azureuser/.ssh/authorized_keys" };
                r = run_paths(ps, 2, NULL, "/data/home/azureuser", &p);
                CHECK_INTEQ(r, 1, "realpath only: passwd spelling rejected");
                CHECK_INTEQ(p.n_keys, 1, "realpath only: one kept");
                if (p.n_keys == 1)
                        CHECK_INTEQ(p.keys[0].index, 1, "realpath only: entry 1");
                policy_done(&p);
        }
        /* home "/" */
        {
                static const char *const ps[] = { "/.ssh/authorized_keys", "//.ssh/authorized_keys" };
                r = run_paths(ps, 2, "/", "/", &p);
                CHECK_INTEQ(r, 1, "root home: one rejected");
                CHECK_INTEQ(p.n_keys, 1, "root home: /.ssh/authorized_keys kept");
                if (p.n_keys == 1)
                        CHECK_INTEQ(p.keys[0].index, 0, "root home: entry 0");
                policy_done(&p);
        }
}

static void test_duplicates(void) {
        _cleanup_free_ char *a1 = key_line(7, "alice first"), *a2 = key_line(7, "alice again"), *b = key_line(8, "bob"),
                            *a3 = key_line(7, NULL), *c = key_line(9, "carol"), *b2 = key_line(8, "bob2");
        const char *good = "/home/azureuser/.ssh/authorized_keys", *bad = "/root/.ssh/authorized_keys";
        Policy p;
        const char *err;
        size_t r;

        {
                _cleanup_free_ char *keys = fmt("[{\"keyData\":\"%s\",\"path\":\"%s\"},{\"keyData\":\"%s\",\"path\":\"%s\"},"
                                                "{\"keyData\":\"%s\",\"path\":\"%s\"},{\"keyData\":\"%s\",\"path\":\"%s\"},"
                                                "{\"keyData\":\"%s\",\"path\":\"%s\"},{\"keyData\":\"%s\",\"path\":\"%s\"}]",
                                                a1, good, b, good, a2, good, c, good, a3, good, b2, good);
                _cleanup_free_ char *d = doc(NULL, keys);
                CHECK_INTEQ(parse(d, NULL, &p, &err), 0, "duplicates parse");
                CHECK_INTEQ(p.n_keys, 6, "all six parse");
                r = policy_check_paths(&p, "/home/azureuser", "/home/azureuser");
                CHECK_INTEQ(r, 0, "no path rejections");
                CHECK_INTEQ(p.n_keys, 3, "duplicates written once");
                if (p.n_keys == 3) {
                        CHECK_INTEQ(p.keys[0].index, 0, "alice: first occurrence");
                        CHECK_STREQ(p.keys[0].key.comment, "alice first", "first wins, with its comment");
                        CHECK_INTEQ(p.keys[1].index, 1, "bob: first occurrence");
                        CHECK_STREQ(p.keys[1].key.comment, "bob", "bob's first comment");
                        CHECK_INTEQ(p.keys[2].index, 3, "carol, document order kept");
                }
                CHECK_INTEQ(p.n_rejected, 0, "duplicates are not rejections");
                policy_done(&p);
        }
        /* the first occurrence has a bad path: the later valid one is still written */
        {
                _cleanup_free_ char *keys = fmt("[{\"keyData\":\"%s\",\"path\":\"%s\"},{\"keyData\":\"%s\",\"path\":\"%s\"},"
                                                "{\"keyData\":\"%s\",\"path\":\"%s\"}]",
                                                a1, bad, a2, good, a3, good);
                _cleanup_free_ char *d = doc(NULL, keys);
                CHECK_INTEQ(parse(d, NULL, &p, &err), 0, "dup/bad path parses");
                r = policy_check_paths(&p, "/home/azureuser", NULL);
                CHECK_INTEQ(r, 1, "one path rejection");
                CHECK_INTEQ(p.n_keys, 1, "one key kept");
                if (p.n_keys == 1) {
                        CHECK_INTEQ(p.keys[0].index, 1, "the later valid occurrence");
                        CHECK_STREQ(p.keys[0].key.comment, "alice again", "its comment");
                }
                CHECK_INTEQ(p.n_rejected, 1, "one rejection recorded");
                if (p.n_rejected == 1)
                        CHECK_INTEQ(p.rejected[0].index, 0, "entry 0 rejected for its path");
                policy_done(&p);
        }
}

static void test_many(void) {
        const size_t n = 10000;
        size_t cap = n * 160 + 256, len = 0;
        _cleanup_free_ char *keys = malloc(cap), *d = NULL;
        Policy p;
        const char *err;

        len += (size_t) snprintf(keys + len, cap - len, "[");
        for (size_t i = 0; i < n + 100; i++) {
                /* the last 100 repeat the first 100 */
                _cleanup_free_ char *k = key_line((uint32_t) (i < n ? i : i - n) * 2654435761u, NULL);
                len += (size_t) snprintf(keys + len, cap - len, "%s{\"keyData\":\"%s\",\"path\":\"/home/azureuser/.ssh/authorized_keys\"}",
                                         i ? "," : "", k);
        }
        snprintf(keys + len, cap - len, "]");
        d = doc(NULL, keys);
        CHECK_INTEQ(parse(d, NULL, &p, &err), 0, "10 000 keys parse");
        CHECK_INTEQ(p.n_keys, n + 100, "all parsed");
        CHECK_INTEQ(policy_check_paths(&p, "/home/azureuser", NULL), 0, "no path rejections");
        CHECK_INTEQ(p.n_keys, n, "100 duplicates dropped");
        {
                bool ordered = true;
                for (size_t i = 0; i < p.n_keys; i++)
                        ordered = ordered && p.keys[i].index == i;
                CHECK(ordered, "document order kept after de-duplication");
        }
        policy_done(&p);
}

int main(void) {
        if (sodium_init() < 0)
                return 1;
        test_mode();
        test_invalid_documents();
        test_entries();
        test_paths();
        test_duplicates();
        test_many();
        return unit_finish();
}
