/* SPDX-License-Identifier: MIT */
#pragma once

/* Azure IMDS client (libcurl). Fetch only: it knows nothing about what the document means. */

#include <stddef.h>
#include <stdint.h>

#define IMDS_DEFAULT_URL "http://169.254.169.254/metadata/instance?api-version=2021-08-01&extended=true"
#define IMDS_MAX_BODY ((size_t) 4 * 1024 * 1024)

/* What failed in one attempt that will be retried (for the caller's log). */
typedef struct ImdsRetry {
        unsigned requests;      /* made so far */
        long status;            /* the HTTP status, 0 when there was no answer */
        const char *what;       /* "HTTP 503", "connection refused", ... */
        const char *curl_error; /* libcurl's own error text, may be "" */
        uint64_t wait_usec;     /* until the next request */
} ImdsRetry;

typedef struct ImdsRequest {
        const char *url;
        uint64_t deadline_usec; /* overall budget for all attempts, counted from the call */
        size_t max_body;        /* 0 means IMDS_MAX_BODY */
        /* Called before each wait for a retry; may be NULL. The client itself does not log. */
        void (*on_retry)(const ImdsRetry *retry, void *userdata);
        void *userdata;
} ImdsRequest;

/* Fetches url, sending "Metadata: true", bypassing every proxy (environment ignored), never following
 * redirects. Retries connection errors, timeouts, 404, 410, 429 and 5xx with exponential backoff and
 * jitter, at most 5 requests per second, until the deadline.
 *
 * Returns 0 with the body (NUL-terminated, *ret_size excludes the NUL) on HTTP 200.
 *   -EFBIG     the body is larger than max_body (the caller treats it as an invalid document)
 *   -EPROTO    a permanent refusal: 400, 401, 403, 405, any 3xx, any other non-retryable status
 *   -ETIMEDOUT the deadline passed with only retryable failures
 *   -ENOMEM, -EINVAL
 * ret_detail (may be NULL) gets a short human description on failure, e.g. "HTTP 403 after 1 request",
 * "connection refused, 17 requests in 90.0 s"; it is set on success too ("HTTP 200 after 3 requests"). */
int imds_fetch(const ImdsRequest *req, char **ret_body, size_t *ret_size, char **ret_detail);
