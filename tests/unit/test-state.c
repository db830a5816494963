/* SPDX-License-Identifier: MIT */
/* The state file's text form: state_format() → state_parse() keeps every field; bad text is -EBADMSG. */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "state/state.h"
#include "unit.h"

static void check_same(const State *a, const State *b, const char *why) {
        CHECK_INTEQ(b->mode, a->mode, why);
#define SAME_STR(f)                                              \
        do {                                                     \
                if (a->f)                                        \
                        CHECK_STREQ(b->f, a->f, #f);             \
                else                                             \
                        CHECK(b->f == NULL, #f " stays absent"); \
        } while (0)
        SAME_STR(user);
        SAME_STR(authorized_keys);
        SAME_STR(vm_id);
        SAME_STR(last_time);
        SAME_STR(last_source);
        SAME_STR(last_result);
        SAME_STR(mode_applied_time);
        SAME_STR(image.service);
        SAME_STR(image.socket);
#undef SAME_STR
        CHECK_INTEQ(b->last_exit, a->last_exit, "last_exit");
        CHECK(b->image.recorded == a->image.recorded, "image.recorded");
        CHECK(b->image.service_enabled == a->image.service_enabled, "image.service_enabled");
        CHECK(b->image.socket_enabled == a->image.socket_enabled, "image.socket_enabled");
        CHECK_INTEQ(b->n_keys, a->n_keys, "n_keys");
        for (size_t i = 0; i < a->n_keys && i < b->n_keys; i++) {
                CHECK_STREQ(b->keys[i].type, a->keys[i].type, "key type");
                CHECK_STREQ(b->keys[i].fingerprint, a->keys[i].fingerprint, "key fingerprint");
                if (a->keys[i].comment)
                        CHECK_STREQ(b->keys[i].comment, a->keys[i].comment, "key comment");
                else
                        CHECK(b->keys[i].comment == NULL, "no comment stays absent");
                if (a->keys[i].line)
                        CHECK_STREQ(b->keys[i].line, a->keys[i].line, "key line (for repair)");
                else
                        CHECK(b->keys[i].line == NULL, "no line (an older state file) stays absent");
        }
        {
                size_t na = 0, nb = 0;
                while (a->units && a->units[na])
                        na++;
                while (b->units && b->units[nb])
                        nb++;
                CHECK_INTEQ(nb, na, "units count");
                for (size_t i = 0; i < na && i < nb; i++)
                        CHECK_STREQ(b->units[i], a->units[i], "unit");
        }
}

static void round_trip(const State *s, const char *why) {
        _cleanup_free_ char *text = state_format(s), *text2 = NULL;
        State t = { .mode = MODE_INVALID };

        CHECK(text != NULL, why);
        if (!text)
                return;
        CHECK(strlen(text) > 0 && text[strlen(text) - 1] == '\n', "text ends in a newline");
        CHECK_INTEQ(state_parse(text, strlen(text), &t), 0, why);
        check_same(s, &t, why);
        text2 = state_format(&t);
        CHECK_STREQ(text2, text, "format(parse(format(s))) == format(s)");
        state_done(&t);
        CHECK(t.user == NULL && t.keys == NULL && t.mode == MODE_INVALID, "state_done clears");
}

static void test_round_trip(void) {
        StateKey keys[] = {
                { (char *) "ssh-ed25519", (char *) "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", (char *) "alice@laptop",
                  (char *) "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop" },
                { (char *) "ssh-rsa", (char *) "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0", NULL, NULL /* an older state file */ },
                { (char *) "sk-ssh-ed25519@openssh.com", (char *) "SHA256:x", (char *) "quote \" backslash \\ tab \t é", NULL },
        };
        char *units[] = { (char *) "ssh.service", (char *) "sshd.service", (char *) "ssh.socket", NULL };
        State full = {
                .mode = MODE_LOCALUSER,
                .user = (char *) "azureuser",
                .authorized_keys = (char *) "/home/azureuser/.ssh/authorized_keys",
                .keys = keys,
                .n_keys = ELEMENTSOF(keys),
                .units = units,
                .image = { .recorded = true,
                           .service = (char *) "ssh.service",
                           .socket = (char *) "ssh.socket",
                           .service_enabled = true,
                           .socket_enabled = false },
                .vm_id = (char *) "0b9d4f5e-1111-2222-3333-444455556666",
                .last_time = (char *) "2026-11-25T14:00:00Z",
                .last_source = (char *) "imds",
                .last_result = (char *) "rejected-entries",
                .last_exit = 65,
                .mode_applied_time = (char *) "2026-11-25T13:59:59Z",
        };
        round_trip(&full, "every field");

        full.mode = MODE_DISABLED;
        full.image.service_enabled = false;
        full.image.socket_enabled = true;
        full.last_exit = 0;
        round_trip(&full, "Disabled, flipped booleans");

        full.mode = MODE_ENTRAID;
        full.last_exit = 77;
        round_trip(&full, "EntraId");

        {
                State minimal = { .mode = MODE_DISABLED };
                round_trip(&minimal, "only a mode");
        }
        {
                State no_socket = { .mode = MODE_LOCALUSER, .image = { .recorded = true, .service = (char *) "sshd.service" } };
                round_trip(&no_socket, "record with service only");
        }
}

static void check_bad(const char *text, const char *why) {
        State s = { .mode = MODE_INVALID };
        int r = state_parse(text, strlen(text), &s);
        CHECK_INTEQ(r, -EBADMSG, why);
        if (r >= 0)
                state_done(&s);
        CHECK(s.user == NULL && s.keys == NULL && s.units == NULL, "nothing handed out on failure");
}

static void test_invalid(void) {
        static const char nul[] = "{\"mode\":\"Disabled\"}\0";

        /* not JSON */
        check_bad("", "empty");
        check_bad("state", "not JSON");
        check_bad("{\"mode\":\"Disabled\"", "truncated (a crash mid-write must not be trusted)");
        check_bad("{\"mode\":\"Disabled\"} {}", "trailing garbage");
        /* not an object */
        check_bad("[]", "an array");
        check_bad("\"Disabled\"", "a string");
        check_bad("null", "null");
        /* an embedded NUL */
        {
                State s = { .mode = MODE_INVALID };
                CHECK_INTEQ(state_parse(nul, sizeof nul - 1, &s), -EBADMSG, "NUL byte");
        }
        /* the mode is what the fallback re-asserts: it must be there and valid */
        check_bad("{}", "no mode");
        check_bad("{\"mode\":\"Open\"}", "unknown mode");
        check_bad("{\"mode\":\"invalid\"}", "the invalid marker is not a mode");
        check_bad("{\"mode\":1}", "mode a number");
        check_bad("{\"mode\":null}", "mode null");
        /* wrong types of the other fields */
        check_bad("{\"mode\":\"Disabled\",\"user\":5}", "user a number");
        check_bad("{\"mode\":\"Disabled\",\"user\":[]}", "user an array");
        check_bad("{\"mode\":\"Disabled\",\"authorized_keys\":true}", "authorized_keys a bool");
        check_bad("{\"mode\":\"Disabled\",\"vm_id\":{}}", "vm_id an object");
        check_bad("{\"mode\":\"Disabled\",\"mode_applied_time\":1}", "mode_applied_time a number");
        check_bad("{\"mode\":\"Disabled\",\"keys\":{}}", "keys an object");
        check_bad("{\"mode\":\"Disabled\",\"keys\":\"x\"}", "keys a string");
        check_bad("{\"mode\":\"Disabled\",\"keys\":[\"ssh-ed25519\"]}", "a key not an object");
        check_bad("{\"mode\":\"Disabled\",\"keys\":[{\"fingerprint\":\"SHA256:x\"}]}", "a key without type");
        check_bad("{\"mode\":\"Disabled\",\"keys\":[{\"type\":\"ssh-ed25519\"}]}", "a key without fingerprint");
        check_bad("{\"mode\":\"Disabled\",\"keys\":[{\"type\":1,\"fingerprint\":\"SHA256:x\"}]}", "key type a number");
        check_bad("{\"mode\":\"Disabled\",\"keys\":[{\"type\":\"t\",\"fingerprint\":\"f\",\"comment\":2}]}", "key comment a number");
        check_bad("{\"mode\":\"Disabled\",\"keys\":[{\"type\":\"t\",\"fingerprint\":\"f\",\"line\":[]}]}", "key line not a string");
        check_bad("{\"mode\":\"Disabled\",\"keys\":[{\"type\":\"t\",\"fingerprint\":\"f\"},3]}", "second key not an object");
        check_bad("{\"mode\":\"Disabled\",\"units\":[\"ssh.service\",5]}", "a unit not a string");
        check_bad("{\"mode\":\"Disabled\",\"units\":\"ssh.service\"}", "units a string, not an array");
        check_bad("{\"mode\":\"Disabled\",\"image_ssh\":\"ssh.service\"}", "image_ssh a string, not an object");
        check_bad("{\"mode\":\"Disabled\",\"image_ssh\":{\"service\":\"ssh.service\",\"service_enabled\":\"yes\"}}",
                  "image service_enabled a string, not a bool");
        check_bad("{\"mode\":\"Disabled\",\"last_apply\":[]}", "last_apply an array, not an object");
        check_bad("{\"mode\":\"Disabled\",\"last_apply\":{\"exit\":\"65\"}}", "last_apply exit a string, not a number");
        check_bad("{\"mode\":\"Disabled\",\"image_ssh\":{\"service\":5}}", "image service a number");
        check_bad("{\"mode\":\"Disabled\",\"image_ssh\":{\"service\":\"ssh.service\",\"socket\":[]}}", "image socket an array");
        check_bad("{\"mode\":\"Disabled\",\"last_apply\":{\"time\":5}}", "last_apply time a number");
        check_bad("{\"mode\":\"Disabled\",\"last_apply\":{\"source\":false}}", "last_apply source a bool");
        check_bad("{\"mode\":\"Disabled\",\"last_apply\":{\"result\":{}}}", "last_apply result an object");

        /* sanity: the base of the cases above parses, null means absent, mode any case */
        {
                State s = { .mode = MODE_INVALID };
                const char *t = "{\"mode\":\"localuser\",\"user\":null,\"keys\":[],\"units\":[],"
                                "\"last_apply\":{\"time\":\"2026-01-01T00:00:00Z\",\"exit\":69}}";
                CHECK_INTEQ(state_parse(t, strlen(t), &s), 0, "valid base");
                CHECK_INTEQ(s.mode, MODE_LOCALUSER, "mode any case");
                CHECK(s.user == NULL, "null user = absent");
                CHECK_INTEQ(s.n_keys, 0, "no keys");
                CHECK(s.units && !s.units[0], "empty units");
                CHECK(!s.image.recorded, "no image record");
                CHECK_STREQ(s.last_time, "2026-01-01T00:00:00Z", "last time");
                CHECK_INTEQ(s.last_exit, 69, "last exit");
                state_done(&s);
        }
}

/* Another process holds the lock for hold_ms, then exits; the result of lock_acquire() meanwhile. */
static int lock_while_held(int root_fd, const char *path, int hold_ms) {
        int fd = openat(root_fd, path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), pipefd[2], r, lock = -1;
        char c;

        if (fd < 0 || pipe(pipefd) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid == 0) {
                if (flock(fd, LOCK_EX) < 0 || write(pipefd[1], "x", 1) != 1)
                        _exit(1);
                usleep(hold_ms * 1000);
                _exit(0);
        }
        close(fd);
        close(pipefd[1]);
        if (read(pipefd[0], &c, 1) != 1)
                return -EIO;
        close(pipefd[0]);
        r = lock_acquire(root_fd, &lock);
        if (lock >= 0)
                close(lock);
        waitpid(pid, NULL, 0);
        return r;
}

/* A killed run's child that has not exec'd yet holds the lock for an instant: the next run waits for it; a
 * run that keeps holding it makes the next one give up (75). */
static void test_lock(void) {
        char root[] = "/tmp/test-state.XXXXXX", cmd[64];
        int root_fd;

        if (!mkdtemp(root) || (root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 || mkdirat(root_fd, "run", 0755) < 0) {
                CHECK(false, "scratch root");
                return;
        }
        CHECK_INTEQ(lock_while_held(root_fd, "run/aks-ssh-access.lock", 100), 0, "held for an instant: taken after it");
        CHECK_INTEQ(lock_while_held(root_fd, "run/aks-ssh-access.lock", 2000), -EWOULDBLOCK, "held on: another run");
        close(root_fd);
        snprintf(cmd, sizeof cmd, "rm -rf %s", root);
        CHECK_INTEQ(system(cmd), 0, "scratch root removed");
}

int main(void) {
        test_round_trip();
        test_invalid();
        test_lock();
        return unit_finish();
}
