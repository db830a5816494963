/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the IMDS instance document parser (policy_parse) and the path/duplicate filter
 * (policy_check_paths). Properties checked beyond "no crash, no leak, no UB":
 *   - a failed parse names its reason, a successful one has a mode and an admin user;
 *   - every accepted key has a type, a blob and a "SHA256:" fingerprint; indices are unique and ascending;
 *   - after policy_check_paths() every kept key's path is the admin's authorized_keys, no two kept keys
 *     share (type, blob), and kept + rejected-for-path + duplicates = keys before. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "policy/policy.h"

static const char *const homes[][2] = {
        { "/home/azureuser", NULL },
        { "/home/azureuser/", "/data/home/azureuser" },
        { "/", NULL },
        { NULL, "/home/azureuser" },
};

static bool path_ok(const char *path, const char *home) {
        char want[512];
        size_t n;

        if (!home)
                return false;
        n = strlen(home);
        while (n > 1 && home[n - 1] == '/')
                n--;
        if (n == 1)
                n = 0;
        snprintf(want, sizeof want, "%.*s/.ssh/authorized_keys", (int) n, home);
        return strcmp(path, want) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Policy p = { .mode = MODE_INVALID };
        const char *err = NULL, *tag = NULL;
        unsigned sel = 0;
        int r;

        /* The first byte picks the home spelling and the mode tag name; the rest is the document. The seed
         * corpus starts with a byte 0x00 or '{', so plain JSON files also work as they are. */
        if (size > 0 && data[0] < 8) {
                sel = data[0];
                data++;
                size--;
        }
        if (sel & 4)
                tag = "custom-ssh-tag";

        r = policy_parse((const char *) data, size, tag, &p, &err);
        if (r < 0) {
                ASSERT(err != NULL || r == -ENOMEM);
                return 0;
        }
        ASSERT(err == NULL);
        ASSERT(p.mode >= 0 && p.mode < _MODE_MAX);
        ASSERT(p.admin_user && p.admin_user[0]);
        for (size_t i = 0; i < p.n_keys; i++) {
                const PolicyKey *k = &p.keys[i];
                ASSERT(k->key.type && k->key.blob_b64 && k->path);
                ASSERT(strncmp(k->key.fingerprint, "SHA256:", 7) == 0 && strlen(k->key.fingerprint) == 7 + 43);
                ASSERT(i == 0 || p.keys[i - 1].index < k->index);
        }
        for (size_t i = 0; i < p.n_rejected; i++)
                ASSERT(p.rejected[i].reason != NULL);

        size_t before = p.n_keys, rejected_before = p.n_rejected;
        const char *home = homes[sel & 3][0], *real_home = homes[sel & 3][1];
        size_t dropped = policy_check_paths(&p, home, real_home);

        ASSERT(p.n_rejected == rejected_before + dropped);
        ASSERT(p.n_keys + dropped <= before);
        for (size_t i = 0; i < p.n_keys; i++) {
                ASSERT(path_ok(p.keys[i].path, home) || path_ok(p.keys[i].path, real_home));
                ASSERT(i == 0 || p.keys[i - 1].index < p.keys[i].index);
                for (size_t j = 0; j < i; j++)
                        ASSERT(strcmp(p.keys[i].key.blob_b64, p.keys[j].key.blob_b64) != 0 ||
                               strcmp(p.keys[i].key.type, p.keys[j].key.type) != 0);
        }
        policy_done(&p);
        return 0;
}
