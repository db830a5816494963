/* SPDX-License-Identifier: MIT */
#include "policy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "macro.h"
#include "text-util.h"

static const char *const mode_names[_MODE_MAX] = {
        [MODE_LOCALUSER] = "LocalUser",
        [MODE_DISABLED] = "Disabled",
        [MODE_ENTRAID] = "EntraId",
};

const char *mode_to_string(Mode m) {
        if (m < 0 || m >= _MODE_MAX)
                return "invalid";
        return mode_names[m];
}

Mode mode_from_string(const char *s) {
        if (!s)
                return MODE_INVALID;
        for (Mode m = 0; m < _MODE_MAX; m++)
                if (strcaseeq(s, mode_names[m]))
                        return m;
        return MODE_INVALID;
}

static void policy_key_done(PolicyKey *k) {
        sshkey_done(&k->key);
        free(k->path);
}

void policy_done(Policy *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_keys; i++)
                policy_key_done(&p->keys[i]);
        free(p->keys);
        free(p->rejected);
        free(p->admin_user);
        free(p->vm_id);
        *p = (Policy) { .mode = MODE_INVALID };
}

/* Names why the document is invalid (a static string) and returns -EBADMSG. */
static int invalid_doc(const char **ret_error, const char *error) {
        *ret_error = error;
        return -EBADMSG;
}

/* Grows *array to hold at least `need` elements of `size` bytes, doubling (documents with 10 000 keys
 * happen; growing one by one would be quadratic). */
static int grow(void *array, size_t *alloc, size_t need, size_t size) {
        void **a = array;
        size_t n;
        void *p;

        if (need <= *alloc)
                return 0;
        n = *alloc ? *alloc * 2 : 16;
        if (n < need)
                n = need;
        p = reallocarray(*a, n, size);
        if (!p)
                return -ENOMEM;
        *a = p;
        *alloc = n;
        return 0;
}

static int reject(Policy *p, size_t index, const char *reason) {
        if (grow(&p->rejected, &p->n_rejected_alloc, p->n_rejected + 1, sizeof *p->rejected) < 0)
                return -ENOMEM;
        p->rejected[p->n_rejected++] = (Rejection) { .index = index, .reason = reason };
        return 0;
}

/* The tag's name is matched case-insensitively, as Azure treats tag names (SPEC §2); its value too. */
static int parse_mode(const cJSON *tags, const char *mode_tag, Policy *p, const char **ret_error) {
        const cJSON *t;
        const char *value = NULL;

        cJSON_ArrayForEach(t, tags) {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
                const cJSON *val = cJSON_GetObjectItemCaseSensitive(t, "value");

                if (!cJSON_IsObject(t) || !cJSON_IsString(name) || !strcaseeq(name->valuestring, mode_tag))
                        continue;
                if (!cJSON_IsString(val))
                        return invalid_doc(ret_error, "the SSH access tag's value is not a string");
                if (value && !strcaseeq(value, val->valuestring))
                        return invalid_doc(ret_error, "the SSH access tag appears twice with different values");
                value = val->valuestring;
        }

        if (!value) {
                p->mode = MODE_LOCALUSER;
                p->mode_from_tag = false;
                return 0;
        }
        p->mode = mode_from_string(value);
        if (p->mode == MODE_INVALID)
                return invalid_doc(ret_error, "unknown SSH access mode in the tag (expected Disabled, LocalUser or EntraId)");
        p->mode_from_tag = true;
        return 0;
}

static int add_key(Policy *p, size_t index, const cJSON *entry) {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(entry, "keyData");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(entry, "path");
        const char *reason = NULL;
        SshKey k;
        int r;

        if (!cJSON_IsObject(entry))
                return reject(p, index, "entry is not an object");
        if (!cJSON_IsString(data))
                return reject(p, index, "keyData is missing or not a string");
        if (!cJSON_IsString(path))
                return reject(p, index, "path is missing or not a string");

        r = sshkey_parse(data->valuestring, strlen(data->valuestring), &k, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reject(p, index, reason);

        char *path_copy = strdup(path->valuestring);
        if (grow(&p->keys, &p->n_keys_alloc, p->n_keys + 1, sizeof *p->keys) < 0 || !path_copy) {
                free(path_copy);
                sshkey_done(&k);
                return -ENOMEM;
        }
        p->keys[p->n_keys++] = (PolicyKey) { .key = k, .path = path_copy, .index = index };
        return 0;
}

int policy_parse(const char *json, size_t len, const char *mode_tag, Policy *ret, const char **ret_error) {
        _cleanup_cjson_ cJSON *doc = NULL;
        const cJSON *compute, *os, *user, *keys, *tags, *vmid, *e;
        const char *dummy;
        Policy p = { .mode = MODE_INVALID };
        size_t index = 0;
        int r;

        if (!ret_error)
                ret_error = &dummy;
        *ret_error = NULL;
        mode_tag = mode_tag ?: MODE_TAG_DEFAULT;

        /* cJSON stops at the first NUL; a document with an embedded NUL is not JSON we accept. */
        if (memchr(json, 0, len))
                return invalid_doc(ret_error, "document contains a NUL byte");
        doc = json_parse_whole(json, len);
        if (!doc)
                return invalid_doc(ret_error, "document is not valid JSON");
        compute = cJSON_GetObjectItemCaseSensitive(doc, "compute");
        if (!cJSON_IsObject(compute))
                return invalid_doc(ret_error, "document has no compute object");
        os = cJSON_GetObjectItemCaseSensitive(compute, "osProfile");
        user = cJSON_GetObjectItemCaseSensitive(os, "adminUsername");
        if (!cJSON_IsString(user) || user->valuestring[0] == '\0')
                return invalid_doc(ret_error, "compute.osProfile.adminUsername is missing or not a string");
        /* The name is stored in state.json and printed: valid UTF-8 without C0/C1 controls or DEL (SPEC §2). */
        if (!text_is_clean(user->valuestring, strlen(user->valuestring), false))
                return invalid_doc(ret_error, "compute.osProfile.adminUsername is not valid UTF-8 or contains a control character");
        if (strpbrk(user->valuestring, "/:"))
                return invalid_doc(ret_error, "compute.osProfile.adminUsername contains '/' or ':'");
        keys = cJSON_GetObjectItemCaseSensitive(compute, "publicKeys");
        /* null too: SPEC §2, a non-array publicKeys is invalid */
        if (keys && !cJSON_IsArray(keys))
                return invalid_doc(ret_error, "compute.publicKeys is not an array");
        tags = cJSON_GetObjectItemCaseSensitive(compute, "tagsList");
        if (tags && !cJSON_IsArray(tags))
                return invalid_doc(ret_error, "compute.tagsList is not an array");

        r = parse_mode(tags, mode_tag, &p, ret_error);
        if (r < 0)
                return r;

        p.admin_user = strdup(user->valuestring);
        vmid = cJSON_GetObjectItemCaseSensitive(compute, "vmId");
        if (cJSON_IsString(vmid))
                p.vm_id = strdup(vmid->valuestring);
        if (!p.admin_user || (cJSON_IsString(vmid) && !p.vm_id)) {
                policy_done(&p);
                return -ENOMEM;
        }

        cJSON_ArrayForEach(e, keys) {
                r = add_key(&p, index++, e);
                if (r < 0) {
                        policy_done(&p);
                        return r;
                }
        }

        *ret = p;
        return 0;
}

static bool path_is(const char *path, const char *home) {
        size_t n;

        if (!home)
                return false;
        n = strlen(home);
        while (n > 1 && home[n - 1] == '/')
                n--;
        if (n == 1 && home[0] == '/')
                n = 0; /* home "/" → "/.ssh/authorized_keys" */
        return strncmp(path, home, n) == 0 && streq(path + n, "/.ssh/authorized_keys");
}

static int cmp_blob_then_position(const void *a, const void *b, void *userdata) {
        const PolicyKey *sort_base = userdata;
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        int c = strcmp(sort_base[x].key.blob_b64, sort_base[y].key.blob_b64);
        if (c == 0)
                c = strcmp(sort_base[x].key.type, sort_base[y].key.type);
        if (c == 0)
                c = x < y ? -1 : x > y;
        return c;
}

/* Marks every key whose (type, blob) appeared earlier. O(n log n): documents with 10 000 keys happen. */
static int mark_duplicates(const PolicyKey *keys, size_t n, bool *dup) {
        _cleanup_free_ size_t *order = malloc((n ?: 1) * sizeof *order);

        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                order[i] = i;
        qsort_r(order, n, sizeof *order, cmp_blob_then_position, (void *) keys);
        for (size_t i = 1; i < n; i++)
                dup[order[i]] = streq(keys[order[i]].key.blob_b64, keys[order[i - 1]].key.blob_b64) &&
                        streq(keys[order[i]].key.type, keys[order[i - 1]].key.type);
        return 0;
}

size_t policy_check_paths(Policy *p, const char *home, const char *real_home) {
        size_t kept = 0, dropped = 0;

        for (size_t i = 0; i < p->n_keys; i++) {
                PolicyKey *k = &p->keys[i];

                if (!path_is(k->path, home) && !path_is(k->path, real_home)) {
                        /* On ENOMEM the key is still dropped; only its log line is lost. */
                        (void) reject(p, k->index, "path is not the admin user's ~/.ssh/authorized_keys");
                        policy_key_done(k);
                        dropped++;
                        continue;
                }
                p->keys[kept++] = *k;
        }
        p->n_keys = kept;

        /* Duplicate blobs are written once: the first occurrence wins, with its comment. */
        _cleanup_free_ bool *dup = calloc(kept ?: 1, sizeof *dup);
        if (!dup || mark_duplicates(p->keys, kept, dup) < 0)
                return dropped; /* out of memory: duplicates stay, which is harmless */
        kept = 0;
        for (size_t i = 0; i < p->n_keys; i++) {
                if (dup[i])
                        policy_key_done(&p->keys[i]);
                else
                        p->keys[kept++] = p->keys[i];
        }
        p->n_keys = kept;
        return dropped;
}
