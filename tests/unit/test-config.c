/* SPDX-License-Identifier: MIT */
/* Settings files (SPEC §6/§7): defaults, `key = value` syntax, every key, every invalid value. */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "policy/config.h"
#include "unit.h"

static int parse(Config *c, const char *text) {
        return config_parse_text(c, text, strlen(text), "test.conf");
}

static void check_units(char **got, const char *const *want, size_t n, const char *why) {
        CHECK_INTEQ(strv_length(got), n, why);
        for (size_t i = 0; i < n && i < strv_length(got); i++)
                CHECK_STREQ(got[i], want[i], why);
}

static void check_defaults(const Config *c, const char *why) {
        static const char *const units[] = { "ssh.service", "sshd.service", "ssh.socket", "sshd.socket" };
        CHECK_STREQ(c->imds_url, "http://169.254.169.254/metadata/instance?api-version=2021-08-01&extended=true", why);
        CHECK_STREQ(c->mode_tag, "aks-managed-ssh-access", why);
        CHECK_INTEQ(c->deadline_s, 90, why);
        CHECK_INTEQ(c->fallback_mode, MODE_DISABLED, why);
        check_units(c->units, units, ELEMENTSOF(units), why);
}

static void test_defaults(void) {
        Config c;

        CHECK_INTEQ(config_init(&c), 0, "config_init");
        check_defaults(&c, "defaults per SPEC");
        CHECK_INTEQ(parse(&c, ""), 0, "empty text");
        CHECK_INTEQ(parse(&c, "# only a comment\n; another\n\n   \n\t# indented comment\n"), 0, "comments only");
        check_defaults(&c, "comments change nothing");
        config_done(&c);
        CHECK(c.imds_url == NULL && c.units == NULL, "config_done clears");
}

static void test_keys(void) {
        Config c;

        CHECK_INTEQ(config_init(&c), 0, "config_init");
        CHECK_INTEQ(parse(&c,
                          "imds_url = http://127.0.0.1:8080/metadata/instance?api-version=2021-08-01\n"
                          "mode_tag=my-tag\n"
                          "  deadline_s   =   30   \n"
                          "fallback_mode = LocalUser\n"
                          "units = ssh.service, ssh.socket\tfoo.service\n"),
                    0, "every key");
        CHECK_STREQ(c.imds_url, "http://127.0.0.1:8080/metadata/instance?api-version=2021-08-01", "imds_url");
        CHECK_STREQ(c.mode_tag, "my-tag", "mode_tag without spaces around =");
        CHECK_INTEQ(c.deadline_s, 30, "deadline_s with blanks around");
        CHECK_INTEQ(c.fallback_mode, MODE_LOCALUSER, "fallback_mode");
        {
                static const char *const u[] = { "ssh.service", "ssh.socket", "foo.service" };
                check_units(c.units, u, ELEMENTSOF(u), "units split at commas, spaces and tabs");
        }

        /* quotes around the value are removed, inner spaces kept */
        CHECK_INTEQ(parse(&c, "mode_tag = \"tag with spaces\"\nunits = 'sshd.service sshd.socket'\n"), 0, "quoted values");
        CHECK_STREQ(c.mode_tag, "tag with spaces", "double quotes");
        {
                static const char *const u[] = { "sshd.service", "sshd.socket" };
                check_units(c.units, u, ELEMENTSOF(u), "single quotes");
        }
        /* later lines override earlier ones; CRLF line ends; no final newline */
        CHECK_INTEQ(parse(&c, "deadline_s = 5\r\ndeadline_s = 3600\r\nfallback_mode = disabled"), 0, "override, CRLF");
        /* 3600 is still a valid value, but clamped below the unit's TimeoutStartSec (issue 11: a deadline
         * longer than systemd lets the unit live means the fallback never runs) */
        CHECK_INTEQ(c.deadline_s, DEADLINE_MAX_S, "last value wins, clamped to DEADLINE_MAX_S");
        CHECK_INTEQ(DEADLINE_MAX_S, 120, "120 s");
        CHECK(DEADLINE_MAX_S + 30 <= UNIT_TIMEOUT_START_S, "30 s of the unit's start timeout left for the fallback");
        CHECK_INTEQ(parse(&c, "deadline_s = 120"), 0, "120 accepted");
        CHECK_INTEQ(c.deadline_s, 120, "120 kept");
        CHECK_INTEQ(parse(&c, "deadline_s = 121"), 0, "121 accepted");
        CHECK_INTEQ(c.deadline_s, 120, "121 clamped");
        CHECK_INTEQ(c.fallback_mode, MODE_DISABLED, "fallback_mode any case");
        CHECK_INTEQ(parse(&c, "deadline_s = 1\nfallback_mode = ENTRAID\nimds_url = https://x.example/\n"), 0, "bounds");
        CHECK_INTEQ(c.deadline_s, 1, "1 is the minimum");
        CHECK_INTEQ(c.fallback_mode, MODE_ENTRAID, "EntraId fallback");
        CHECK_STREQ(c.imds_url, "https://x.example/", "https url");
        config_done(&c);
}

/* Each invalid line → -EINVAL, the setting unchanged, and the valid line after it still applied. */
static void check_invalid(const char *line, const char *why) {
        Config c;
        _cleanup_free_ char *text = NULL;

        CHECK_INTEQ(config_init(&c), 0, "config_init");
        if (asprintf(&text, "deadline_s = 42\n%s\nmode_tag = after\n", line) < 0)
                abort();
        CHECK_INTEQ(parse(&c, text), -EINVAL, why);
        CHECK_STREQ(c.mode_tag, "after", "a valid line after the broken one still applies");
        if (strncmp(line, "deadline_s", 10) != 0)
                CHECK_INTEQ(c.deadline_s, 42, "a valid line before the broken one applies");
        else
                CHECK_INTEQ(c.deadline_s, 42, "the invalid deadline leaves the previous value");
        {
                static const char *const units[] = { "ssh.service", "sshd.service", "ssh.socket", "sshd.socket" };
                CHECK_STREQ(c.imds_url, "http://169.254.169.254/metadata/instance?api-version=2021-08-01&extended=true",
                            "imds_url unchanged");
                CHECK_INTEQ(c.fallback_mode, MODE_DISABLED, "fallback_mode unchanged");
                check_units(c.units, units, ELEMENTSOF(units), "units unchanged");
        }
        config_done(&c);
}

static void test_invalid(void) {
        /* 0 would mean "give up before trying" */
        check_invalid("deadline_s = 0", "deadline 0");
        /* not a number */
        check_invalid("deadline_s = abc", "deadline abc");
        /* above one hour */
        check_invalid("deadline_s = 99999", "deadline 99999");
        check_invalid("deadline_s = 3601", "deadline 3601");
        /* trailing junk after the number */
        check_invalid("deadline_s = 30s", "deadline with unit suffix");
        /* negative wraps in strtoul: must not become a huge deadline */
        check_invalid("deadline_s = -1", "deadline -1");
        /* empty value */
        check_invalid("deadline_s =", "deadline empty");
        /* modes are the three names only */
        check_invalid("fallback_mode = bogus", "fallback_mode bogus");
        check_invalid("fallback_mode = ", "fallback_mode empty");
        /* a unit name with a slash could point outside the unit directories */
        check_invalid("units = ../../etc/passwd.service", "unit with slash");
        check_invalid("units = ssh.service /lib/systemd/system/ssh.socket", "second unit with slash");
        /* only services and sockets are managed */
        check_invalid("units = ssh", "unit without suffix");
        check_invalid("units = ssh.target", "a target");
        check_invalid("units = .service", "suffix only");
        check_invalid("units = .hidden.service", "leading dot");
        check_invalid("units = ", "no units at all");
        check_invalid("units = ,, ,", "only separators");
        /* only http(s) for IMDS */
        check_invalid("imds_url = ftp://169.254.169.254/", "ftp url");
        check_invalid("imds_url = 169.254.169.254", "url without scheme");
        /* an empty tag name matches nothing sensible */
        check_invalid("mode_tag = ", "empty mode_tag");
        check_invalid("mode_tag = \"\"", "empty quoted mode_tag");
        /* unknown keys are errors (typos must not pass silently) */
        check_invalid("deadline = 30", "unknown key");
        check_invalid("Deadline_S = 30", "keys are case-sensitive");
        /* no '=' at all */
        check_invalid("deadline_s 30", "missing =");
        /* '=' with no key */
        check_invalid("= 30", "missing key");

        /* a NUL byte in the file: rejected */
        {
                Config c;
                static const char text[] = "deadline_s = 42\nmode_tag = a\0b\n";
                CHECK_INTEQ(config_init(&c), 0, "config_init");
                CHECK_INTEQ(config_parse_text(&c, text, sizeof text - 1, "nul.conf"), -EINVAL, "NUL byte");
                CHECK(strcmp(c.mode_tag, "a") != 0, "the line with the NUL is not applied truncated");
                config_done(&c);
        }
}

/* drift and metrics_dir (SPEC §6/§7): defaults, every valid value, invalid ones refused. */
static void test_drift_and_metrics_dir(void) {
        Config c;

        CHECK_INTEQ(config_init(&c), 0, "init");
        CHECK(!c.drift_repair && !c.metrics_dir, "defaults: report, the node-exporter directory when it exists");
        CHECK_INTEQ(parse(&c, "drift = repair\nmetrics_dir = /srv/metrics\n"), 0, "valid");
        CHECK(c.drift_repair, "repair");
        CHECK_STREQ(c.metrics_dir, "/srv/metrics", "absolute directory");
        CHECK_INTEQ(parse(&c, "drift = report\nmetrics_dir = off\n"), 0, "valid");
        CHECK(!c.drift_repair, "report");
        CHECK_STREQ(c.metrics_dir, "off", "off");
        /* Refused: a relative directory (it would depend on the cwd), an empty one, an unknown drift word. */
        CHECK_INTEQ(parse(&c, "metrics_dir = srv/metrics\n"), -EINVAL, "relative");
        CHECK_INTEQ(parse(&c, "metrics_dir =\n"), -EINVAL, "empty");
        CHECK_INTEQ(parse(&c, "drift = Repair\n"), -EINVAL, "values are exact words");
        CHECK_STREQ(c.metrics_dir, "off", "unchanged by refused lines");
        CHECK(!c.drift_repair, "unchanged by refused lines");
        config_done(&c);
}

/* The loader does not log: what it finds is noted, in order, for the caller to log once. */
static void test_notes(void) {
        Config c;

        CHECK_INTEQ(config_init(&c), 0, "init");
        CHECK_INTEQ(parse(&c, "deadline_s = 121\ndeadline = 3\nunits = x\nno equals sign\n"), -EINVAL, "three bad lines");
        CHECK_INTEQ(c.n_notes, 4, "the clamp warning and one note per bad line");
        if (c.n_notes == 4) {
                CHECK_INTEQ(c.notes[0].level, LOG_WARNING, "the clamp is a warning");
                CHECK(strncmp(c.notes[0].text, "deadline_s = 121 is more than 120 s ", 36) == 0, c.notes[0].text);
                CHECK_INTEQ(c.notes[1].level, LOG_ERR, "an unknown key is an error");
                CHECK_INTEQ(c.notes[1].error, EINVAL, "with its errno");
                CHECK_STREQ(c.notes[1].text, "test.conf:2: unknown setting \"deadline\".", "origin:line");
                CHECK_STREQ(c.notes[2].text, "test.conf:3: invalid value for units.", "bad value");
                CHECK_STREQ(c.notes[3].text, "test.conf:4: expected `key = value`.", "no =");
        }
        config_done(&c);
        CHECK(c.notes == NULL && c.n_notes == 0, "config_done frees the notes");

        /* A missing --config FILE: -ENOENT and one note naming it (SPEC §6: one line on stderr). */
        CHECK_INTEQ(config_init(&c), 0, "init");
        CHECK_INTEQ(config_load(&c, AT_FDCWD, "/nonexistent/aks.conf"), -ENOENT, "missing explicit file");
        CHECK(c.n_notes >= 1 &&
                      streq(c.notes[c.n_notes - 1].text, "Cannot open configuration /nonexistent/aks.conf: No such file or directory"),
              "named in the last note");
        config_done(&c);
}

int main(void) {
        log_set_max_level(LOG_CRIT); /* nothing here should log; keep the output readable if something does */
        test_notes();
        test_drift_and_metrics_dir();
        test_defaults();
        test_keys();
        test_invalid();
        return unit_finish();
}
