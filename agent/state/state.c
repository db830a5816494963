/* SPDX-License-Identifier: MIT */
#include "state.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fs-util.h"
#include "log.h"
#include "json-util.h"
#include "macro.h"

#define STATE_MAX ((size_t) 16 * 1024 * 1024)

void image_record_done(ImageRecord *r) {
        free(r->service);
        free(r->socket);
        *r = (ImageRecord) {};
}

void state_done(State *s) {
        if (!s)
                return;
        free(s->user);
        free(s->authorized_keys);
        for (size_t i = 0; i < s->n_keys; i++) {
                free(s->keys[i].type);
                free(s->keys[i].fingerprint);
                free(s->keys[i].comment);
                free(s->keys[i].line);
        }
        free(s->keys);
        strv_free(s->units);
        image_record_done(&s->image);
        free(s->vm_id);
        free(s->last_time);
        free(s->last_source);
        free(s->last_result);
        free(s->mode_applied_time);
        *s = (State) { .mode = MODE_INVALID };
}

static int dup_string(const cJSON *o, const char *key, char **ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsString(v))
                return -EBADMSG;
        *ret = strdup(v->valuestring);
        return *ret ? 0 : -ENOMEM;
}

static int dup_bool(const cJSON *o, const char *key, bool *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v || cJSON_IsNull(v)) {
                *ret = false;
                return 0;
        }
        if (!cJSON_IsBool(v))
                return -EBADMSG;
        *ret = cJSON_IsTrue(v);
        return 0;
}

int state_parse(const char *text, size_t len, State *ret) {
        _cleanup_cjson_ cJSON *doc = NULL;
        const cJSON *v, *e;
        State s = { .mode = MODE_INVALID };
        int r = 0;

        if (memchr(text, 0, len))
                return -EBADMSG;
        doc = json_parse_whole(text, len);
        if (!cJSON_IsObject(doc))
                return -EBADMSG;

        v = cJSON_GetObjectItemCaseSensitive(doc, "mode");
        if (cJSON_IsString(v))
                s.mode = mode_from_string(v->valuestring);
        if (s.mode == MODE_INVALID)
                r = -EBADMSG;

        if (r >= 0)
                r = dup_string(doc, "user", &s.user);
        if (r >= 0)
                r = dup_string(doc, "authorized_keys", &s.authorized_keys);
        if (r >= 0)
                r = dup_string(doc, "vm_id", &s.vm_id);
        if (r >= 0)
                r = dup_string(doc, "mode_applied_time", &s.mode_applied_time);

        v = cJSON_GetObjectItemCaseSensitive(doc, "keys");
        if (r >= 0 && v && !cJSON_IsArray(v))
                r = -EBADMSG;
        if (r >= 0 && cJSON_IsArray(v)) {
                size_t n = (size_t) cJSON_GetArraySize(v);
                s.keys = calloc(n ?: 1, sizeof *s.keys);
                if (!s.keys)
                        r = -ENOMEM;
                cJSON_ArrayForEach(e, v) {
                        if (r < 0)
                                break;
                        if (!cJSON_IsObject(e)) {
                                r = -EBADMSG;
                                break;
                        }
                        StateKey *k = &s.keys[s.n_keys++];
                        r = dup_string(e, "type", &k->type);
                        if (r >= 0)
                                r = dup_string(e, "fingerprint", &k->fingerprint);
                        if (r >= 0)
                                r = dup_string(e, "comment", &k->comment);
                        if (r >= 0)
                                r = dup_string(e, "line", &k->line);
                        if (r >= 0 && (!k->type || !k->fingerprint))
                                r = -EBADMSG;
                }
        }

        /* Fields present with the wrong type make the file invalid, as for "keys". */
        v = cJSON_GetObjectItemCaseSensitive(doc, "units");
        if (r >= 0 && v && !cJSON_IsNull(v) && !cJSON_IsArray(v))
                r = -EBADMSG;
        if (r >= 0 && cJSON_IsArray(v)) {
                size_t n = (size_t) cJSON_GetArraySize(v), i = 0;
                s.units = calloc(n + 1, sizeof *s.units);
                if (!s.units)
                        r = -ENOMEM;
                cJSON_ArrayForEach(e, v) {
                        if (r < 0)
                                break;
                        if (!cJSON_IsString(e)) {
                                r = -EBADMSG;
                                break;
                        }
                        s.units[i] = strdup(e->valuestring);
                        if (!s.units[i++])
                                r = -ENOMEM;
                }
        }

        v = cJSON_GetObjectItemCaseSensitive(doc, "image_ssh");
        if (r >= 0 && v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
                r = -EBADMSG;
        if (r >= 0 && cJSON_IsObject(v)) {
                s.image.recorded = true;
                r = dup_string(v, "service", &s.image.service);
                if (r >= 0)
                        r = dup_string(v, "socket", &s.image.socket);
                if (r >= 0)
                        r = dup_bool(v, "service_enabled", &s.image.service_enabled);
                if (r >= 0)
                        r = dup_bool(v, "socket_enabled", &s.image.socket_enabled);
        }

        if (r >= 0)
                r = dup_bool(doc, "generator_masked", &s.generator_masked); /* optional: older files lack it */

        v = cJSON_GetObjectItemCaseSensitive(doc, "last_apply");
        if (r >= 0 && v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
                r = -EBADMSG;
        if (r >= 0 && cJSON_IsObject(v)) {
                r = dup_string(v, "time", &s.last_time);
                if (r >= 0)
                        r = dup_string(v, "source", &s.last_source);
                if (r >= 0)
                        r = dup_string(v, "result", &s.last_result);
                const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, "exit");
                if (x && !cJSON_IsNumber(x))
                        r = -EBADMSG;
                else if (x)
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
        if (s->mode_applied_time)
                cJSON_AddStringToObject(doc, "mode_applied_time", s->mode_applied_time);
        if (s->user)
                cJSON_AddStringToObject(doc, "user", s->user);
        if (s->authorized_keys)
                cJSON_AddStringToObject(doc, "authorized_keys", s->authorized_keys);
        if (s->vm_id)
                cJSON_AddStringToObject(doc, "vm_id", s->vm_id);
        keys = cJSON_AddArrayToObject(doc, "keys");
        for (size_t i = 0; keys && i < s->n_keys; i++) {
                cJSON *k = cJSON_CreateObject();
                if (!k)
                        return NULL;
                cJSON_AddItemToArray(keys, k);
                cJSON_AddStringToObject(k, "type", s->keys[i].type);
                cJSON_AddStringToObject(k, "fingerprint", s->keys[i].fingerprint);
                if (s->keys[i].comment)
                        cJSON_AddStringToObject(k, "comment", s->keys[i].comment);
                if (s->keys[i].line)
                        cJSON_AddStringToObject(k, "line", s->keys[i].line);
        }
        units = cJSON_AddArrayToObject(doc, "units");
        for (char **u = s->units; units && u && *u; u++)
                cJSON_AddItemToArray(units, cJSON_CreateString(*u));
        if (s->image.recorded) {
                img = cJSON_AddObjectToObject(doc, "image_ssh");
                if (!img)
                        return NULL;
                if (s->image.service)
                        cJSON_AddStringToObject(img, "service", s->image.service);
                if (s->image.socket)
                        cJSON_AddStringToObject(img, "socket", s->image.socket);
                cJSON_AddBoolToObject(img, "service_enabled", s->image.service_enabled);
                cJSON_AddBoolToObject(img, "socket_enabled", s->image.socket_enabled);
        }
        if (s->generator_masked)
                cJSON_AddBoolToObject(doc, "generator_masked", true);
        last = cJSON_AddObjectToObject(doc, "last_apply");
        if (!last)
                return NULL;
        if (s->last_time)
                cJSON_AddStringToObject(last, "time", s->last_time);
        if (s->last_source)
                cJSON_AddStringToObject(last, "source", s->last_source);
        if (s->last_result)
                cJSON_AddStringToObject(last, "result", s->last_result);
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
                return log_error_errno(dfd, "Cannot open %s: %m", STATE_DIR);
        (void) remove_stale_temp_files(dfd, STATE_FILE);
        r = write_file_atomic(dfd, STATE_FILE, text, strlen(text), 0600, 0, 0);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s/%s: %m", STATE_DIR, STATE_FILE);
        return 0;
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
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
