/* SPDX-License-Identifier: MIT */
/* Bench-only experiment, linked into a variant of the agent with -Wl,--wrap=curl_global_init: the agent's
 * curl_global_init(CURL_GLOBAL_DEFAULT) becomes curl_global_init(CURL_GLOBAL_NOTHING), to measure what the
 * SSL/Win32 part of libcurl's global init costs for a plain-http IMDS fetch. Not part of the agent. */

#include <curl/curl.h>

CURLcode __real_curl_global_init(long flags);
CURLcode __wrap_curl_global_init(long flags);

CURLcode __wrap_curl_global_init(long flags) {
        (void) flags;
        return __real_curl_global_init(CURL_GLOBAL_NOTHING);
}
