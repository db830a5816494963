/* SPDX-License-Identifier: MIT */
#pragma once

/* Logging: to the journal with structured fields when run by systemd, else to stderr.
 * Never pass key material here: fingerprints only. */

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

/* MESSAGE_IDs of the events an operator searches for (journalctl MESSAGE_ID=...); see units/aks-ssh-access.catalog. */
#define MID_MODE_APPLIED "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e10"
#define MID_ALREADY_IN_SYNC "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e11"
#define MID_KEYS_WRITTEN "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e12"
#define MID_KEY_REJECTED "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e13"
#define MID_IMDS_UNAVAILABLE "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e14"
#define MID_DOCUMENT_INVALID "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e15"
#define MID_FALLBACK_APPLIED "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e16"
#define MID_UNSAFE_PATH "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e17"
#define MID_USER_MISSING "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e18"
#define MID_UNIT_FAILED "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e19"
#define MID_SSHD_CONFIG_BAD "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e1a"
#define MID_DRIFT "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e1b"
#define MID_IMDS_RETRY "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e1c"
#define MID_DRIFT_REPAIRED "5f0a8a3c6e0b4c1f9a0e8d7b2c4a6e1d"

typedef enum LogTarget {
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
} LogTarget;

/* Picks the journal when JOURNAL_STREAM says our stderr is connected to it (i.e. run by systemd). */
void log_open(void);
LogTarget log_get_target(void);
void log_set_max_level(int level);

/* Logs and returns -abs(error) (or 0 if error is 0), so callers can write
 *   return log_error_errno(r, "Failed to ...: %m");
 * %m expands to strerror(abs(error)). message_id may be NULL. Extra journal fields can be passed in
 * `fields` as a NULL-terminated list of "KEY=value" strings (may be NULL). */
int log_internal(int level, int error, const char *message_id, const char *const *fields, const char *fmt, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...) log_internal(level, error, NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, 0, NULL, NULL, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, NULL, NULL, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_internal(LOG_ERR, 0, NULL, NULL, __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_DEBUG, e, NULL, NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, e, NULL, NULL, __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_ERR, e, NULL, NULL, __VA_ARGS__)
/* With a MESSAGE_ID (and optional extra fields). */
#define log_event(level, mid, fields, ...) log_internal(level, 0, mid, fields, __VA_ARGS__)
#define log_event_errno(level, e, mid, fields, ...) log_internal(level, e, mid, fields, __VA_ARGS__)

int log_oom(void);
