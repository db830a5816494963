/* SPDX-License-Identifier: MIT */
/* imds_fetch() against a canned HTTP server forked on loopback: return codes, bodies, the body cap, retry
 * counts and the ret_detail strings. The timing/rate/proxy behaviour is covered end to end by
 * tests/integration/test_imds.py. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imds/imds.h"
#include "macro.h"
#include "unit.h"

typedef struct Server {
        pid_t pid;
        int port;
        char url[128];
} Server;

/* Answers the n-th connection with answers[min(n, count-1)] (one request per connection). A request
 * without "Metadata: true", or with X-Forwarded-For, gets a 400 instead, like real IMDS. */
static int server_start(Server *s, const char *const *answers, size_t count) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        int fd;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 16) < 0 ||
            getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        s->port = ntohs(sa.sin_port);
        snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/metadata/instance?api-version=2021-08-01", s->port);

        s->pid = fork();
        if (s->pid < 0)
                return -errno;
        if (s->pid == 0) {
                for (size_t n = 0;; n++) {
                        char req[8192];
                        size_t got = 0;
                        const char *a = answers[n < count ? n : count - 1];
                        int c = accept(fd, NULL, NULL);

                        if (c < 0)
                                _exit(1);
                        while (got < sizeof req - 1) {
                                ssize_t k = read(c, req + got, sizeof req - 1 - got);
                                if (k <= 0)
                                        break;
                                got += (size_t) k;
                                req[got] = 0;
                                if (strstr(req, "\r\n\r\n"))
                                        break;
                        }
                        req[got] = 0;
                        if (!strstr(req, "\r\nMetadata: true\r\n") || strcasestr(req, "X-Forwarded-For"))
                                a = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                        (void) !write(c, a, strlen(a));
                        close(c);
                }
        }
        close(fd);
        return 0;
}

static void server_stop(Server *s) {
        if (s->pid > 0) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, NULL, 0);
                s->pid = 0;
        }
}

static int fetch(const char *url, uint64_t deadline_usec, size_t max_body, char **body, size_t *size, char **detail) {
        ImdsRequest req = { .url = url, .deadline_usec = deadline_usec, .max_body = max_body };

        *body = NULL;
        *size = 0;
        *detail = NULL;
        return imds_fetch(&req, body, size, detail);
}

#define OK_HELLO "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"

/* The client does not log: each retry is reported to the caller, who logs it. */
typedef struct Retries {
        unsigned n;
        char what[2][64];
        long status[2];
} Retries;

static void count_retry(const ImdsRetry *t, void *userdata) {
        Retries *r = userdata;

        if (r->n < 2) {
                snprintf(r->what[r->n], sizeof r->what[0], "%s", t->what);
                r->status[r->n] = t->status;
        }
        CHECK_INTEQ(t->requests, r->n + 1, "requests so far");
        CHECK(t->wait_usec <= 5 * 1000000ULL, "a wait within the backoff cap");
        r->n++;
}

static void test_retry_callback(void) {
        const char *answers[] = {
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                OK_HELLO,
        };
        Server s = {};
        Retries seen = {};
        char *body = NULL, *detail = NULL;
        size_t size;

        CHECK(server_start(&s, answers, ELEMENTSOF(answers)) == 0, "server");
        ImdsRequest req = { .url = s.url, .deadline_usec = 10 * 1000000ULL, .on_retry = count_retry, .userdata = &seen };
        CHECK_INTEQ(imds_fetch(&req, &body, &size, &detail), 0, "return code");
        CHECK_INTEQ(seen.n, 2, "two retries reported");
        CHECK_STREQ(seen.what[0], "HTTP 503", "first");
        CHECK_INTEQ(seen.status[0], 503, "its status");
        CHECK_STREQ(seen.what[1], "HTTP 404", "second");
        free(body);
        free(detail);
        server_stop(&s);
}

static void test_ok_after_retries(void) {
        const char *answers[] = {
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                OK_HELLO,
        };
        Server s = {};
        char *body, *detail;
        size_t size;

        CHECK(server_start(&s, answers, ELEMENTSOF(answers)) == 0, "server");
        CHECK_INTEQ(fetch(s.url, 10 * 1000000ULL, 0, &body, &size, &detail), 0, "return code");
        CHECK_STREQ(body, "hello", "the 200's body, NUL-terminated");
        CHECK_INTEQ(size, 5, "size excludes the NUL");
        CHECK_STREQ(detail, "HTTP 200 after 3 requests", "detail on success");
        free(body);
        free(detail);
        server_stop(&s);
}

static void test_permanent(const char *answer, const char *want_detail) {
        const char *answers[] = { answer, OK_HELLO };
        Server s = {};
        char *body, *detail;
        size_t size;

        CHECK(server_start(&s, answers, ELEMENTSOF(answers)) == 0, "server");
        /* Must fail at once, without the retry that would get the 200. */
        CHECK_INTEQ(fetch(s.url, 10 * 1000000ULL, 0, &body, &size, &detail), -EPROTO, "return code");
        CHECK(body == NULL, "no body on failure");
        CHECK_STREQ(detail, want_detail, "detail names the status and the single request");
        free(detail);
        server_stop(&s);
}

static void test_body_cap(void) {
        const char *answers[] = {
                "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n0123456789A",
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
        };
        Server s = {};
        char *body, *detail;
        size_t size;

        CHECK(server_start(&s, answers, ELEMENTSOF(answers)) == 0, "server");
        /* 11 bytes with a cap of 10: too big, not retried (the next answer would fit). */
        CHECK_INTEQ(fetch(s.url, 10 * 1000000ULL, 10, &body, &size, &detail), -EFBIG, "return code");
        CHECK(body == NULL, "no body on -EFBIG");
        CHECK_STREQ(detail, "body larger than 10 bytes after 1 request", "detail of -EFBIG");
        free(detail);
        /* Exactly the cap is fine. */
        CHECK_INTEQ(fetch(s.url, 10 * 1000000ULL, 10, &body, &size, &detail), 0, "return code");
        CHECK_STREQ(body, "0123456789", "body at the cap");
        CHECK_INTEQ(size, 10, "size at the cap");
        free(body);
        free(detail);
        server_stop(&s);
}

static void test_metadata_header_and_proxies(void) {
        const char *answers[] = { OK_HELLO };
        const char *vars[] = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy" };
        Server s = {};
        char *body, *detail;
        size_t size;

        for (size_t i = 0; i < ELEMENTSOF(vars); i++)
                setenv(vars[i], "http://127.0.0.1:9", 1);
        unsetenv("no_proxy");
        unsetenv("NO_PROXY");
        CHECK(server_start(&s, answers, ELEMENTSOF(answers)) == 0, "server");
        /* The server answers 400 without "Metadata: true"; a proxy at port 9 would refuse the connection. */
        CHECK_INTEQ(fetch(s.url, 5 * 1000000ULL, 0, &body, &size, &detail), 0, "return code");
        CHECK_STREQ(detail, "HTTP 200 after 1 request", "direct, with the header, first time");
        free(body);
        free(detail);
        server_stop(&s);
        for (size_t i = 0; i < ELEMENTSOF(vars); i++)
                unsetenv(vars[i]);
}

static void test_connection_refused(void) {
        Server s = {};
        const char *answers[] = { OK_HELLO };
        char *body, *detail;
        size_t size;
        char url[128];

        /* A port that was just free: start and kill a server to learn one. */
        CHECK(server_start(&s, answers, 1) == 0, "server");
        server_stop(&s);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/metadata/instance", s.port);

        CHECK_INTEQ(fetch(url, 1000000ULL, 0, &body, &size, &detail), -ETIMEDOUT, "return code");
        CHECK(body == NULL, "no body on failure");
        CHECK(detail && strncmp(detail, "connection refused; ", 20) == 0, detail ? detail : "(null)");
        CHECK(detail && strstr(detail, " requests in ") && strcmp(detail + strlen(detail) - 2, " s") == 0,
              "detail counts requests and time");
        free(detail);
}

static void test_invalid_arguments(void) {
        char *body = NULL, *detail = NULL;
        size_t size = 0;
        ImdsRequest req = { .url = "http://127.0.0.1:9/", .deadline_usec = 0 };

        /* A zero deadline is a caller bug, not "try forever". */
        CHECK_INTEQ(imds_fetch(&req, &body, &size, &detail), -EINVAL, "return code");
        CHECK_STREQ(detail, "invalid request (no URL or no deadline)", "detail of -EINVAL");
        free(detail);
        detail = NULL;
        req = (ImdsRequest) { .url = NULL, .deadline_usec = 1000000 };
        CHECK_INTEQ(imds_fetch(&req, &body, &size, &detail), -EINVAL, "return code");
        free(detail);
        detail = NULL;
        CHECK_INTEQ(imds_fetch(NULL, &body, &size, &detail), -EINVAL, "return code");
        free(detail);
        detail = NULL;
        /* Only http and https: anything else is refused without a retry. */
        CHECK_INTEQ(fetch("file:///etc/passwd", 1000000ULL, 0, &body, &size, &detail), -EINVAL, "return code");
        CHECK(body == NULL, "no body");
        free(detail);
        CHECK_INTEQ(fetch("gopher://127.0.0.1:9/", 1000000ULL, 0, &body, &size, &detail), -EINVAL, "return code");
        free(detail);
}

int main(void) {
        test_ok_after_retries();
        test_retry_callback();
        test_permanent("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "HTTP 403 after 1 request");
        test_permanent("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "HTTP 400 after 1 request");
        test_permanent("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:9/x\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n",
                       "HTTP 302 after 1 request");
        test_permanent("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", "HTTP 204 after 1 request");
        test_body_cap();
        test_metadata_header_and_proxies();
        test_connection_refused();
        test_invalid_arguments();
        return unit_finish();
}
