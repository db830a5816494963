/* SPDX-License-Identifier: MIT */
/* The metrics file's whole text for fixed inputs (Prometheus text exposition format, node-exporter's
 * textfile collector), label escaping, and the RFC 3339 time the state file records. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "state/metrics.h"
#include "unit.h"

static void test_full(void) {
        MetricsInput m = {
                .mode = MODE_DISABLED,
                .managed_keys = 0,
                .have_last_apply = true,
                .last_apply_time = 1764600000,
                .last_apply_exit = 69,
                .last_apply_source = "fallback",
                .last_apply_result = "imds-unavailable",
                .fallback = true,
                .verify = 1,
                .sshd_answering = 2,
        };
        _cleanup_free_ char *t = metrics_format(&m);
        CHECK_STREQ(
                t,
                "# HELP aks_ssh_access_info aks-ssh-access agent version.\n"
                "# TYPE aks_ssh_access_info gauge\n"
                "aks_ssh_access_info{version=\"" VERSION "\"} 1\n"
                "# HELP aks_ssh_access_mode SSH access mode last applied: 1 for that mode, 0 for the others (all 0: nothing applied yet).\n"
                "# TYPE aks_ssh_access_mode gauge\n"
                "aks_ssh_access_mode{mode=\"Disabled\"} 1\n"
                "aks_ssh_access_mode{mode=\"EntraId\"} 0\n"
                "aks_ssh_access_mode{mode=\"LocalUser\"} 0\n"
                "# HELP aks_ssh_access_managed_keys Keys in the admin user's managed authorized_keys block, as last applied.\n"
                "# TYPE aks_ssh_access_managed_keys gauge\n"
                "aks_ssh_access_managed_keys 0\n"
                "# HELP aks_ssh_access_fallback 1 when the applied mode is the fallback (IMDS unavailable or its document invalid).\n"
                "# TYPE aks_ssh_access_fallback gauge\n"
                "aks_ssh_access_fallback 1\n"
                "# HELP aks_ssh_access_last_apply_timestamp_seconds When apply last ran (Unix time).\n"
                "# TYPE aks_ssh_access_last_apply_timestamp_seconds gauge\n"
                "aks_ssh_access_last_apply_timestamp_seconds 1764600000\n"
                "# HELP aks_ssh_access_last_apply_exit_code Exit code of the last apply (0 ok; see aks-ssh-access(8)).\n"
                "# TYPE aks_ssh_access_last_apply_exit_code gauge\n"
                "aks_ssh_access_last_apply_exit_code 69\n"
                "# HELP aks_ssh_access_last_apply_success 1 when the last apply exited 0.\n"
                "# TYPE aks_ssh_access_last_apply_success gauge\n"
                "aks_ssh_access_last_apply_success 0\n"
                "# HELP aks_ssh_access_last_apply_info Source and result of the last apply.\n"
                "# TYPE aks_ssh_access_last_apply_info gauge\n"
                "aks_ssh_access_last_apply_info{source=\"fallback\",result=\"imds-unavailable\"} 1\n"
                "# HELP aks_ssh_access_in_sync 1 when verify found the node matching the last applied state, else 0.\n"
                "# TYPE aks_ssh_access_in_sync gauge\n"
                "aks_ssh_access_in_sync 0\n"
                "# HELP aks_ssh_access_verify_result Outcome of the last verify: 1 for that outcome, 0 for the others.\n"
                "# TYPE aks_ssh_access_verify_result gauge\n"
                "aks_ssh_access_verify_result{result=\"in_sync\"} 0\n"
                "aks_ssh_access_verify_result{result=\"drift\"} 1\n"
                "aks_ssh_access_verify_result{result=\"unknown\"} 0\n"
                "# HELP aks_ssh_access_sshd_answering_sockets Listening sockets (TCP, AF_UNIX, AF_VSOCK) that answered with an SSH banner.\n"
                "# TYPE aks_ssh_access_sshd_answering_sockets gauge\n"
                "aks_ssh_access_sshd_answering_sockets 2\n"
                "# HELP aks_ssh_access_sshd_listening_in_disabled 1 when the mode is Disabled and something answers as sshd (the promise is broken).\n"
                "# TYPE aks_ssh_access_sshd_listening_in_disabled gauge\n"
                "aks_ssh_access_sshd_listening_in_disabled 1\n",
                "every metric, exactly");
}

static void test_nothing_applied(void) {
        MetricsInput m = { .mode = MODE_INVALID, .verify = 2, .sshd_answering = -1, .last_apply_time = -1 };
        _cleanup_free_ char *t = metrics_format(&m);

        CHECK(t &&
                      strstr(t,
                             "aks_ssh_access_mode{mode=\"Disabled\"} 0\naks_ssh_access_mode{mode=\"EntraId\"} 0\n"
                             "aks_ssh_access_mode{mode=\"LocalUser\"} 0\n"),
              "every mode 0");
        CHECK(t && !strstr(t, "managed_keys") && !strstr(t, "last_apply") && !strstr(t, "fallback"), "nothing about an apply");
        CHECK(t && strstr(t, "aks_ssh_access_verify_result{result=\"unknown\"} 1\n"), "verify: unknown");
        CHECK(t && !strstr(t, "sshd_"), "listeners not measured: absent, not 0");
}

static void test_labels_escaped(void) {
        MetricsInput m = { .mode = MODE_LOCALUSER,
                           .have_last_apply = true,
                           .last_apply_time = -1,
                           .last_apply_source = "a\"b",
                           .last_apply_result = "c\\d\ne",
                           .verify = -1,
                           .sshd_answering = -1 };
        _cleanup_free_ char *t = metrics_format(&m);

        CHECK(t && strstr(t, "aks_ssh_access_last_apply_info{source=\"a\\\"b\",result=\"c\\\\d\\ne\"} 1\n"),
              "quote, backslash, newline escaped");
        CHECK(t && !strstr(t, "timestamp"), "an unknown time is left out");
        CHECK(t && !strstr(t, "in_sync"), "apply measures no verify outcome");
}

static void test_time(void) {
        CHECK_INTEQ(metrics_parse_time("2026-12-01T21:00:00Z"), 1796158800, "RFC 3339 UTC");
        CHECK_INTEQ(metrics_parse_time("1970-01-01T00:00:00Z"), 0, "epoch");
        CHECK_INTEQ(metrics_parse_time("2026-12-01T21:00:00+01:00"), -1, "only the form the agent writes");
        CHECK_INTEQ(metrics_parse_time("2026-12-01"), -1, "date only");
        CHECK_INTEQ(metrics_parse_time(NULL), -1, "absent");
}

int main(void) {
        test_full();
        test_nothing_applied();
        test_labels_escaped();
        test_time();
        return unit_finish();
}
