/* SPDX-License-Identifier: MIT */
#include "imds.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

/* Retry policy (SPEC §2): exponential backoff with full jitter, never more than 5 requests per second. */
#define BACKOFF_BASE_USEC (250 * USEC_PER_MSEC)
#define BACKOFF_CAP_USEC (5 * USEC_PER_SEC)
#define MIN_START_GAP_USEC (200 * USEC_PER_MSEC)
/* One request may never take longer than this (nor longer than what is left of the deadline). */
#define REQUEST_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define CONNECT_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* When the backoff would carry the next attempt past the deadline, still try once this long before it. */
#define LAST_CHANCE_USEC (500 * USEC_PER_MSEC)
/* Not worth starting a request with less time than this left. */
#define MIN_REQUEST_USEC (50 * USEC_PER_MSEC)
#define MAX_DEADLINE_USEC (24 * 3600 * USEC_PER_SEC)

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void sleep_until(uint64_t when_usec) {
        struct timespec ts = {
                .tv_sec = (time_t) (when_usec / USEC_PER_SEC),
                .tv_nsec = (long) (when_usec % USEC_PER_SEC) * 1000,
        };

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

static int curl_global_initialized;

static int imds_global_init(void) {
        if (curl_global_initialized)
                return 0;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -ENOMEM;
        curl_global_initialized = 1;
        /* Releases what libcurl (and its TLS library) allocated, so leak checkers see a clean exit. */
        (void) atexit(curl_global_cleanup);
        return 0;
}

typedef struct Body {
        CURL *curl;
        char *data;
        size_t size;
        size_t allocated;
        size_t max;
        bool too_big;
        bool oom; /* our own allocation failed */
} Body;

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Body *b = userdata;
        size_t n = size * nmemb;
        long status = 0;

        /* Only a 200 answer's body is kept (and capped); other answers' bodies are read and dropped,
         * bounded by the per-request timeout. */
        (void) curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
                return n;

        if (n > b->max - b->size) {
                b->too_big = true;
                return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        if (b->size + n + 1 > b->allocated) {
                /* doubling, from 16 KiB, never beyond the cap */
                size_t want = b->allocated > 0 ? b->allocated * 2 : 16384;

                if (want < b->size + n + 1)
                        want = b->size + n + 1;
                if (want > b->max + 1)
                        want = b->max + 1;
                if (!GREEDY_REALLOC(b->data, want)) {
                        b->oom = true;
                        return 0; /* CURLE_WRITE_ERROR */
                }
                b->allocated = want;
        }
        memcpy(b->data + b->size, ptr, n);
        b->size += n;
        b->data[b->size] = 0;
        return n;
}

static void body_reset(Body *b) {
        free(b->data);
        b->data = NULL;
        b->size = b->allocated = 0;
        b->too_big = b->oom = false;
}

static void curl_easy_cleanupp(CURL **c) {
        if (*c)
                curl_easy_cleanup(*c);
}

static void curl_slist_free_allp(struct curl_slist **l) {
        if (*l)
                curl_slist_free_all(*l);
}

/* Short, key-free descriptions of what went wrong with a transfer (curl_easy_strerror() for the rest). */
static const struct {
        CURLcode cc;
        long os_errno; /* CURLE_COULDNT_CONNECT: the connect() error; 0 any other */
        const char *text;
} curl_texts[] = {
        { CURLE_COULDNT_CONNECT, ECONNREFUSED, "connection refused" },
        { CURLE_COULDNT_CONNECT, ENETUNREACH, "network unreachable" },
        { CURLE_COULDNT_CONNECT, EHOSTUNREACH, "host unreachable" },
        { CURLE_COULDNT_CONNECT, 0, "cannot connect" },
        { CURLE_OPERATION_TIMEDOUT, 0, "timed out" },
        { CURLE_GOT_NOTHING, 0, "connection closed without an answer" },
        { CURLE_PARTIAL_FILE, 0, "truncated body" },
        { CURLE_RECV_ERROR, 0, "receive error" },
        { CURLE_SEND_ERROR, 0, "send error" },
        { CURLE_COULDNT_RESOLVE_HOST, 0, "cannot resolve host" },
        /* What libcurl says for a response header over its 100 KiB limit ("Avoided giant realloc"). */
        { CURLE_OUT_OF_MEMORY, 0, "bad response (header too large)" },
};

static void describe_curl_error(CURL *curl, CURLcode cc, char *buf, size_t size) {
        long os_errno = 0;

        if (cc == CURLE_COULDNT_CONNECT)
                (void) curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
        for (size_t i = 0; i < ELEMENTSOF(curl_texts); i++)
                if (curl_texts[i].cc == cc && curl_texts[i].os_errno == os_errno) {
                        snprintf(buf, size, "%s", curl_texts[i].text);
                        return;
                }
        if (cc == CURLE_COULDNT_CONNECT)
                snprintf(buf, size, "cannot connect: %s", strerror((int) os_errno));
        else
                snprintf(buf, size, "%s", curl_easy_strerror(cc));
}

static bool status_is_retryable(long status) {
        return status == 404 || status == 410 || status == 429 || (status >= 500 && status <= 599);
}

/* What one transfer's outcome means: 0 a 200; -EAGAIN transient (connection errors, timeouts, 404, 410,
 * 429, 5xx: retry); -EPROTO a permanent refusal (400, 401, 403, 405, every 3xx, never followed, anything
 * else); -EFBIG the body is over the cap; -ENOMEM, -EINVAL a local problem, stop at once. */
static int classify(CURL *curl, CURLcode cc, const Body *body, long *ret_status, char *what, size_t what_size) {
        long status = 0;

        *ret_status = 0;
        if (cc == CURLE_WRITE_ERROR && body->too_big) {
                snprintf(what, what_size, "body larger than %zu bytes", body->max);
                return -EFBIG;
        }
        if (cc == CURLE_WRITE_ERROR && body->oom) {
                snprintf(what, what_size, "out of memory");
                return -ENOMEM;
        }
        if (cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT) {
                snprintf(what, what_size, "%s", curl_easy_strerror(cc));
                return -EINVAL;
        }
        /* CURLE_OUT_OF_MEMORY included: a header over libcurl's limit is a bad answer from the server,
         * retried like one. A real shortage of memory would end the same way, in the fallback at the deadline. */
        if (cc != CURLE_OK) {
                describe_curl_error(curl, cc, what, what_size);
                return -EAGAIN;
        }

        (void) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        *ret_status = status;
        snprintf(what, what_size, "HTTP %ld", status);
        if (status == 200)
                return 0;
        return status_is_retryable(status) ? -EAGAIN : -EPROTO;
}

static int set_detail(char **ret_detail, const char *what, unsigned requests, uint64_t elapsed_usec, bool with_time) {
        char *s;
        int n;

        if (!ret_detail)
                return 0;
        if (requests == 0)
                n = asprintf(&s, "%s", what);
        else if (with_time)
                n = asprintf(&s, "%s; %u request%s in %.1f s", what, requests, requests == 1 ? "" : "s",
                             (double) elapsed_usec / (double) USEC_PER_SEC);
        else
                n = asprintf(&s, "%s after %u request%s", what, requests, requests == 1 ? "" : "s");
        if (n < 0)
                return -ENOMEM;
        *ret_detail = s;
        return 0;
}

static int imds_easy_new(const char *url, struct curl_slist *headers, Body *body, char *errbuf, CURL **ret) {
        _cleanup_(curl_easy_cleanupp) CURL *c = NULL;
        CURLcode cc = CURLE_OK;

        c = curl_easy_init();
        if (!c)
                return -ENOMEM;

#define SETOPT(opt, val)                                    \
        do {                                                \
                if (cc == CURLE_OK)                         \
                        cc = curl_easy_setopt(c, opt, val); \
        } while (0)

        SETOPT(CURLOPT_URL, url);
        SETOPT(CURLOPT_HTTPHEADER, headers);
        SETOPT(CURLOPT_USERAGENT, "aks-ssh-access/" VERSION);
        /* Only http(s), no redirects: IMDS never redirects, a 3xx is a permanent failure. */
        SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
        /* Talk to IMDS directly, whatever http_proxy, HTTPS_PROXY, ALL_PROXY... say. */
        SETOPT(CURLOPT_PROXY, "");
        SETOPT(CURLOPT_NOPROXY, "*");
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        SETOPT(CURLOPT_WRITEFUNCTION, body_write);
        SETOPT(CURLOPT_WRITEDATA, body);
        SETOPT(CURLOPT_ERRORBUFFER, errbuf);
        SETOPT(CURLOPT_NETRC, (long) CURL_NETRC_IGNORED);
#undef SETOPT
        if (cc != CURLE_OK)
                return cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL; /* libcurl refused an option */

        *ret = TAKE_PTR(c);
        return 0;
}

/* When the next request may start: full jitter over an exponential backoff, never sooner than
 * MIN_START_GAP_USEC after the previous start. The jitter needs no cryptographic quality, and must never
 * block on the boot-time entropy pool: rand_r(). */
static uint64_t next_start(unsigned *jitter, unsigned failures, uint64_t last_start, uint64_t now) {
        uint64_t backoff = BACKOFF_BASE_USEC, wake;

        for (unsigned i = 1; i < failures && backoff < BACKOFF_CAP_USEC; i++)
                backoff *= 2;
        if (backoff > BACKOFF_CAP_USEC)
                backoff = BACKOFF_CAP_USEC;

        wake = now + (uint64_t) rand_r(jitter) % (backoff + 1); /* RAND_MAX >= 2^31 - 1 > the cap */
        if (wake < last_start + MIN_START_GAP_USEC)
                wake = last_start + MIN_START_GAP_USEC;
        return wake;
}

int imds_fetch(const ImdsRequest *req, char **ret_body, size_t *ret_size, char **ret_detail) {
        _cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
        _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
        _cleanup_(body_reset) Body body = {};
        char errbuf[CURL_ERROR_SIZE] = "", what[256] = "no request made";
        uint64_t start, deadline, budget, last_start = 0;
        unsigned requests = 0;
        int r;

        if (!req || !req->url || !*req->url || !ret_body || req->deadline_usec == 0) {
                (void) set_detail(ret_detail, "invalid request (no URL or no deadline)", 0, 0, false);
                return -EINVAL;
        }

        r = imds_global_init();
        if (r >= 0) {
                headers = curl_slist_append(NULL, "Metadata: true");
                if (!headers)
                        r = -ENOMEM;
        }
        if (r >= 0) {
                body.max = req->max_body > 0 ? req->max_body : IMDS_MAX_BODY;
                r = imds_easy_new(req->url, headers, &body, errbuf, &curl);
        }
        if (r < 0) {
                (void) set_detail(ret_detail, "cannot set up libcurl", 0, 0, false);
                return r;
        }
        body.curl = curl;

        /* Clamped so that no sum below can overflow; a day is far beyond any sensible deadline. */
        budget = req->deadline_usec < MAX_DEADLINE_USEC ? req->deadline_usec : MAX_DEADLINE_USEC;
        start = now_usec();
        deadline = start + budget;
        /* Seeded from both clocks (the monotonic one alone is alike on nodes booted together) and the pid. */
        struct timespec ts;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        unsigned jitter = (unsigned) ((uint64_t) ts.tv_sec ^ (uint64_t) ts.tv_nsec ^ start ^ ((uint64_t) getpid() << 16));

        for (;;) {
                uint64_t now = now_usec(), timeout, wake;
                curl_off_t retry_after = 0;
                CURLcode cc;
                long status;

                timeout = deadline > now ? deadline - now : 0;
                if (timeout < MIN_REQUEST_USEC && requests > 0)
                        break;
                if (timeout < 1000)
                        timeout = 1000; /* the first request always gets a (tiny) chance */
                if (timeout > REQUEST_TIMEOUT_USEC)
                        timeout = REQUEST_TIMEOUT_USEC;

                body_reset(&body);
                errbuf[0] = 0;

                (void) curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) (timeout / USEC_PER_MSEC));
                (void) curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                                        (long) ((timeout < CONNECT_TIMEOUT_USEC ? timeout : CONNECT_TIMEOUT_USEC) / USEC_PER_MSEC));

                last_start = now;
                requests++;
                cc = curl_easy_perform(curl);
                r = classify(curl, cc, &body, &status, what, sizeof what);
                if (r != -EAGAIN) {
                        /* done: the 200, or a failure that no retry can mend */
                        int k = set_detail(ret_detail, what, requests, 0, false);

                        if (r < 0)
                                return r;
                        if (k < 0 || (!body.data && !(body.data = strdup(""))))
                                return -ENOMEM;
                        if (ret_size)
                                *ret_size = body.size;
                        *ret_body = TAKE_PTR(body.data);
                        return 0;
                }

                body_reset(&body);

                if (status == 429 || status == 503)
                        (void) curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after);
                if (retry_after < 0)
                        retry_after = 0;

                now = now_usec();
                if (now >= deadline)
                        break;
                wake = next_start(&jitter, requests, last_start, now);
                if (retry_after > 0) {
                        /* The server asked us to come back later: do so if that is still within the deadline,
                         * else there is no point in waiting. */
                        uint64_t ra = (uint64_t) retry_after > budget / USEC_PER_SEC ? budget + USEC_PER_SEC
                                                                                     : (uint64_t) retry_after * USEC_PER_SEC;

                        if (now + ra + MIN_REQUEST_USEC > deadline)
                                break;
                        if (wake < now + ra)
                                wake = now + ra;
                } else if (wake + LAST_CHANCE_USEC > deadline) {
                        /* Never sleep past the deadline: if the backoff would, make one last attempt shortly
                         * before it (still within the request-rate limit). */
                        uint64_t last = deadline > LAST_CHANCE_USEC ? deadline - LAST_CHANCE_USEC : 0;

                        if (last < last_start + MIN_START_GAP_USEC)
                                last = last_start + MIN_START_GAP_USEC;
                        if (last < now)
                                last = now;
                        if (last < wake)
                                wake = last;
                }
                if (wake + MIN_REQUEST_USEC > deadline)
                        break;

                /* The caller logs each retry (the library does not). */
                if (req->on_retry)
                        req->on_retry(&(ImdsRetry) { .requests = requests,
                                                     .status = status,
                                                     .what = what,
                                                     .curl_error = errbuf,
                                                     .wait_usec = wake - now },
                                      req->userdata);
                sleep_until(wake);
        }

        r = set_detail(ret_detail, what, requests, now_usec() - start, true);
        if (r < 0)
                return r;
        return -ETIMEDOUT;
}
