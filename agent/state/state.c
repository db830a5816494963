/* SPDX-License-Identifier: MIT */
#include "state.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fs-util.h"
#include "json-util.h"
#include "macro.h"

#define STATE_MAX ((size_t) 16 * 1024 * 1024)
#define LOCK_GRACE_MSEC 500

/* The JSON fields that map one to one onto a struct member; the table's order is the file's. */
typedef enum FieldKind {
        FIELD_STRING, /* char *, written when set */
        FIELD_BOOL,   /* bool, always written */
        FIELD_FLAG,   /* bool, written when true */
} FieldKind;

typedef struct Field {
        const char *key;
        FieldKind kind;
        size_t offset;
} Field;

#define FIELD(key, kind, type, member) \
        { key, kind, offsetof(type, member) }
#define STRING_FIELD(key, type, member) FIELD(key, FIELD_STRING, type, member)
#define BOOL_FIELD(key, type, member) FIELD(key, FIELD_BOOL, type, member)

static const Field state_fields[] = {
        STRING_FIELD("mode_applied_time", State, mode_applied_time),
        STRING_FIELD("user", State, user),
        STRING_FIELD("authorized_keys", State, authorized_keys),
        STRING_FIELD("vm_id", State, vm_id),
};
static const Field key_fields[] = {
        STRING_FIELD("type", StateKey, type),
        STRING_FIELD("fingerprint", StateKey, fingerprint),
        STRING_FIELD("comment", StateKey, comment),
        STRING_FIELD("line", StateKey, line),
};
static const Field image_fields[] = {
        STRING_FIELD("service", ImageRecord, service),
        STRING_FIELD("socket", ImageRecord, socket),
        BOOL_FIELD("service_enabled", ImageRecord, service_enabled),
        BOOL_FIELD("socket_enabled", ImageRecord, socket_enabled),
};
static const Field flag_fields[] = {
        FIELD("generator_masked", FIELD_FLAG, State, generator_masked),
};
static const Field last_apply_fields[] = {
        /* "last_apply": {...}, into State */
        STRING_FIELD("time", State, last_time),
        STRING_FIELD("source", State, last_source),
        STRING_FIELD("result", State, last_result),
};

static void free_fields(void *base, const Field *f, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (f[i].kind == FIELD_STRING)
                        free(*(char **) ((char *) base + f[i].offset));
}

void image_record_done(ImageRecord *r) {
        free_fields(r, image_fields, ELEMENTSOF(image_fields));
        *r = (ImageRecord) {};
}

void state_done(State *s) {
        if (!s)
                return;
        free_fields(s, state_fields, ELEMENTSOF(state_fields));
        free_fields(s, last_apply_fields, ELEMENTSOF(last_apply_fields));
        for (size_t i = 0; i < s->n_keys; i++)
                free_fields(&s->keys[i], key_fields, ELEMENTSOF(key_fields));
        free(s->keys);
        strv_free(s->units);
        image_record_done(&s->image);
        *s = (State) { .mode = MODE_INVALID };
}

/* Reads the fields of o into base. Absent or null: NULL / false (older files lack newer fields); any
 * other type makes the file invalid. */
static int parse_fields(const cJSON *o, void *base, const Field *f, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f[i].key);
                void *p = (char *) base + f[i].offset;

                if (!v || cJSON_IsNull(v))
                        continue;
                if (f[i].kind == FIELD_STRING ? !cJSON_IsString(v) : !cJSON_IsBool(v))
                        return -EBADMSG;
                if (f[i].kind != FIELD_STRING)
                        *(bool *) p = cJSON_IsTrue(v);
                else if (!(*(char **) p = strdup(v->valuestring)))
                        return -ENOMEM;
        }
        return 0;
}

static void format_fields(cJSON *o, const void *base, const Field *f, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const void *p = (const char *) base + f[i].offset;

                if (f[i].kind == FIELD_BOOL || (f[i].kind == FIELD_FLAG && *(const bool *) p))
                        cJSON_AddBoolToObject(o, f[i].key, *(const bool *) p);
                else if (f[i].kind == FIELD_STRING && *(char *const *) p)
                        cJSON_AddStringToObject(o, f[i].key, *(char *const *) p);
        }
}

/* o's member `key` when `is` says it has the right type; absent or null: NULL (older files lack newer
 * members); any other type makes the file invalid. */
static int member(const cJSON *o, const char *key, cJSON_bool (*is)(const cJSON *), const cJSON **ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (v && !cJSON_IsNull(v) && !is(v))
                return -EBADMSG;
        *ret = v && is(v) ? v : NULL;
        return 0;
}

int state_parse(const char *text, size_t len, State *ret) {
        _cleanup_cjson_ cJSON *doc = NULL;
        const cJSON *v, *keys, *units = NULL, *image = NULL, *last = NULL, *e;
        State s = { .mode = MODE_INVALID };
        int r;

        if (memchr(text, 0, len))
                return -EBADMSG;
        doc = json_parse_whole(text, len);
        if (!cJSON_IsObject(doc))
                return -EBADMSG;

        v = cJSON_GetObjectItemCaseSensitive(doc, "mode");
        if (cJSON_IsString(v))
                s.mode = mode_from_string(v->valuestring);
        keys = cJSON_GetObjectItemCaseSensitive(doc, "keys"); /* when present an array, not even null */
        r = s.mode == MODE_INVALID || (keys && !cJSON_IsArray(keys)) ? -EBADMSG : 0;
        r = r ?: member(doc, "units", cJSON_IsArray, &units) ?: member(doc, "image_ssh", cJSON_IsObject, &image) ?:
            member(doc, "last_apply", cJSON_IsObject, &last) ?: parse_fields(doc, &s, state_fields, ELEMENTSOF(state_fields)) ?:
            parse_fields(doc, &s, flag_fields, ELEMENTSOF(flag_fields));

        if (r >= 0 && keys && !(s.keys = calloc((size_t) cJSON_GetArraySize(keys) ?: 1, sizeof *s.keys)))
                r = -ENOMEM;
        for (e = (r >= 0 && keys) ? keys->child : NULL; r >= 0 && e; e = e->next) {
                StateKey *k = &s.keys[s.n_keys++];
                r = cJSON_IsObject(e) ? parse_fields(e, k, key_fields, ELEMENTSOF(key_fields)) : -EBADMSG;
                if (r >= 0 && (!k->type || !k->fingerprint))
                        r = -EBADMSG;
        }
        if (r >= 0 && units && !(s.units = calloc((size_t) cJSON_GetArraySize(units) + 1, sizeof *s.units)))
                r = -ENOMEM;
        e = r >= 0 && units ? units->child : NULL;
        for (size_t i = 0; r >= 0 && e; e = e->next, i++)
                if (!cJSON_IsString(e))
                        r = -EBADMSG;
                else if (!(s.units[i] = strdup(e->valuestring)))
                        r = -ENOMEM;
        if (r >= 0 && image) {
                s.image.recorded = true;
                r = parse_fields(image, &s.image, image_fields, ELEMENTSOF(image_fields));
        }
        if (r >= 0 && last) {
                const cJSON *x = cJSON_GetObjectItemCaseSensitive(last, "exit");
                r = x && !cJSON_IsNumber(x) ? -EBADMSG : parse_fields(last, &s, last_apply_fields, ELEMENTSOF(last_apply_fields));
                if (r >= 0 && x)
                        s.last_exit = x->valueint;
        }

        if (r < 0) {
                state_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

char *state_format(const State *s) {
        _cleanup_cjson_ cJSON *doc = cJSON_CreateObject();
        cJSON *keys, *units, *img, *last;
        char *text;

        if (!doc)
                return NULL;
        cJSON_AddNumberToObject(doc, "version", 1);
        cJSON_AddStringToObject(doc, "mode", mode_to_string(s->mode));
        format_fields(doc, s, state_fields, ELEMENTSOF(state_fields));
        keys = cJSON_AddArrayToObject(doc, "keys");
        for (size_t i = 0; keys && i < s->n_keys; i++) {
                cJSON *k = cJSON_CreateObject();
                if (!k)
                        return NULL;
                cJSON_AddItemToArray(keys, k);
                format_fields(k, &s->keys[i], key_fields, ELEMENTSOF(key_fields));
        }
        units = cJSON_AddArrayToObject(doc, "units");
        for (char **u = s->units; units && u && *u; u++)
                cJSON_AddItemToArray(units, cJSON_CreateString(*u));
        if (s->image.recorded) {
                img = cJSON_AddObjectToObject(doc, "image_ssh");
                if (!img)
                        return NULL;
                format_fields(img, &s->image, image_fields, ELEMENTSOF(image_fields));
        }
        format_fields(doc, s, flag_fields, ELEMENTSOF(flag_fields));
        last = cJSON_AddObjectToObject(doc, "last_apply");
        if (!last)
                return NULL;
        format_fields(last, s, last_apply_fields, ELEMENTSOF(last_apply_fields));
        cJSON_AddNumberToObject(last, "exit", s->last_exit);

        text = cJSON_Print(doc);
        if (!text)
                return NULL;
        /* cJSON_Print has no trailing newline; add one for people reading it with cat. */
        size_t n = strlen(text);
        char *t = realloc(text, n + 2);
        if (!t) {
                free(text);
                return NULL;
        }
        t[n] = '\n';
        t[n + 1] = '\0';
        return t;
}

int state_load(int root_fd, State *ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        fd = open_in_root(root_fd, STATE_DIR "/" STATE_FILE, O_RDONLY | O_NOFOLLOW, 0);
        if (fd < 0)
                return fd;
        r = read_full_fd(fd, STATE_MAX, &text, &len);
        if (r < 0)
                return r;
        return state_parse(text, len, ret);
}

int state_save(int root_fd, const State *s) {
        _cleanup_free_ char *text = state_format(s);
        _cleanup_close_ int dfd = -1;
        int r;

        if (!text)
                return -ENOMEM;
        dfd = mkdir_open_in_root(root_fd, STATE_DIR, 0700);
        if (dfd < 0)
                return dfd;
        (void) remove_stale_temp_files(dfd, STATE_FILE);
        r = write_file_atomic(dfd, STATE_FILE, text, strlen(text), 0600, 0, 0);
        return r < 0 ? r : 0;
}

int lock_acquire(int root_fd, int *ret_fd) {
        _cleanup_close_ int fd = -1;

        fd = open_in_root(root_fd, LOCK_PATH, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
        if (fd == -ENOENT) {
                /* an image tree without /run */
                int d = mkdir_open_in_root(root_fd, "/run", 0755);
                if (d < 0)
                        return d;
                close(d);
                fd = open_in_root(root_fd, LOCK_PATH, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
        }
        if (fd == -EROFS) {
                /* The units' /run is read-only and the lock file is made by tmpfiles.d/aks-ssh-access.conf at
                 * boot. Without it (a tree that lacks the tmpfiles.d line), refusing to run would leave sshd
                 * as the image had it: take the lock in the state directory, which both units can write. */
                _cleanup_close_ int dfd = mkdir_open_in_root(root_fd, STATE_DIR, 0700);
                if (dfd < 0)
                        return dfd;
                fd = openat(dfd, LOCK_FALLBACK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0)
                        return -errno;
        }
        if (fd < 0)
                return fd;
        /* A run killed while forking a child (systemctl, sshd) leaves that child holding the lock for an instant:
         * it shares the open file description until it execs or dies with its parent. "Another run holds it"
         * is one that still does after LOCK_GRACE_MSEC. */
        for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited += 10) {
                if (errno != EWOULDBLOCK || waited >= LOCK_GRACE_MSEC)
                        return -errno;
                (void) usleep(10 * 1000);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}
