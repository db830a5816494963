/* SPDX-License-Identifier: MIT */
/* The floor the agent's four libraries set by themselves: a program that links libcurl, libsystemd, cJSON and
 * libsodium (linked with --no-as-needed, so all four are loaded even though only libcurl is called), does one
 * HTTP GET of the IMDS document and writes it to a file atomically (temp file, fsync, rename, fsync of the
 * directory — what the agent does for authorized_keys).
 *
 *   floor URL DEST [all|default|nothing|none]   curl_global_init() flags (default: "default", as the agent)
 *   floor --load-only                           load the libraries and exit (what loading alone costs)
 *
 * Built with -DFLOOR_SOCKET (floor-socket): no libcurl at all; the GET is a plain HTTP/1.1 request over a TCP
 * socket (what an in-tree IMDS client would do: IMDS is plain http on a link-local address), linked with the
 * other three libraries only. URL must then be http://IPV4:PORT/PATH.
 *
 * Exit 0 on HTTP 200 and a written file, 1 otherwise. Built by tests/bench/bench.mk in several link variants. */

#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FLOOR_SOCKET
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#else
#include <curl/curl.h>
#endif

typedef struct Buf {
        char *p;
        size_t len;
} Buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Buf *b = userdata;
        size_t n = size * nmemb;
        char *np = realloc(b->p, b->len + n);

        if (!np)
                return 0;
        memcpy(np + b->len, ptr, n);
        b->p = np;
        b->len += n;
        return n;
}

static int write_atomic(const char *dest, const char *data, size_t len) {
        char tmp[4096], dir[4096];
        int fd, dfd;

        if ((size_t) snprintf(tmp, sizeof tmp, "%s.floor-tmp", dest) >= sizeof tmp)
                return -1;
        snprintf(dir, sizeof dir, "%s", dest);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -1;
        for (size_t off = 0; off < len;) {
                ssize_t w = write(fd, data + off, len - off);
                if (w <= 0) {
                        close(fd);
                        return -1;
                }
                off += (size_t) w;
        }
        if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, dest) < 0)
                return -1;
        dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -1;
        if (fsync(dfd) < 0) {
                close(dfd);
                return -1;
        }
        return close(dfd);
}

#ifdef FLOOR_SOCKET
/* GET http://IPV4:PORT/PATH with Connection: close; the body after the header, if the status is 200. */
static int socket_get(const char *url, Buf *body) {
        char host[64], req[8192], buf[65536];
        const char *p = url + strlen("http://"), *path;
        struct sockaddr_in sa = { .sin_family = AF_INET };
        Buf all = {};
        ssize_t n;
        int fd, port = 80;

        if (strncmp(url, "http://", 7) != 0 || !(path = strchr(p, '/')) || (size_t) (path - p) >= sizeof host)
                return -1;
        memcpy(host, p, (size_t) (path - p));
        host[path - p] = 0;
        char *colon = strchr(host, ':');
        if (colon) {
                *colon = 0;
                port = atoi(colon + 1);
        }
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                return -1;
        sa.sin_port = htons((uint16_t) port);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -1;
        int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nMetadata: true\r\nConnection: close\r\n\r\n", path, host);
        if (write(fd, req, (size_t) len) != len)
                return -1;
        while ((n = read(fd, buf, sizeof buf)) > 0)
                if (on_data(buf, 1, (size_t) n, &all) != (size_t) n)
                        return -1;
        close(fd);
        if (!all.p || all.len < 12 || strncmp(all.p + 9, "200", 3) != 0)
                return -1;
        for (size_t i = 0; i + 4 <= all.len; i++)
                if (memcmp(all.p + i, "\r\n\r\n", 4) == 0) {
                        body->len = all.len - i - 4;
                        body->p = malloc(body->len + 1);
                        if (!body->p)
                                return -1;
                        memcpy(body->p, all.p + i + 4, body->len);
                        free(all.p);
                        return 0;
                }
        return -1;
}

int main(int argc, char *argv[]) {
        Buf body = {};
        int ok;

        if (argc == 2 && strcmp(argv[1], "--load-only") == 0)
                return 0;
        if (argc != 3) {
                fprintf(stderr, "usage: floor-socket URL DEST | floor-socket --load-only\n");
                return 2;
        }
        ok = socket_get(argv[1], &body) == 0 && write_atomic(argv[2], body.p ? body.p : "", body.len) == 0;
        if (!ok)
                fprintf(stderr, "floor-socket: GET %s failed\n", argv[1]);
        free(body.p);
        return ok ? 0 : 1;
}
#else
int main(int argc, char *argv[]) {
        struct curl_slist *headers = NULL;
        Buf body = {};
        long status = 0, flags = CURL_GLOBAL_DEFAULT;
        CURL *c;
        CURLcode cc;
        int ok;

        if (argc == 2 && strcmp(argv[1], "--load-only") == 0)
                return 0;
        if (argc < 3 || argc > 4) {
                fprintf(stderr, "usage: floor URL DEST [all|default|nothing|none] | floor --load-only\n");
                return 2;
        }
        if (argc == 4) {
                if (strcmp(argv[3], "all") == 0)
                        flags = CURL_GLOBAL_ALL;
                else if (strcmp(argv[3], "nothing") == 0)
                        flags = CURL_GLOBAL_NOTHING;
                else if (strcmp(argv[3], "none") == 0)
                        flags = -1; /* no explicit curl_global_init(): curl_easy_init() does it */
        }
        if (flags >= 0 && curl_global_init(flags) != CURLE_OK)
                return 1;

        c = curl_easy_init();
        if (!c)
                return 1;
        headers = curl_slist_append(NULL, "Metadata: true");
        curl_easy_setopt(c, CURLOPT_URL, argv[1]);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_PROXY, "");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        cc = curl_easy_perform(c);
        if (cc == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        ok = cc == CURLE_OK && status == 200 && write_atomic(argv[2], body.p ? body.p : "", body.len) == 0;
        if (!ok)
                fprintf(stderr, "floor: GET %s: %s, HTTP %ld\n", argv[1], curl_easy_strerror(cc), status);
        curl_easy_cleanup(c);
        curl_slist_free_all(headers);
        free(body.p);
        if (flags >= 0)
                curl_global_cleanup();
        return ok ? 0 : 1;
}
#endif
