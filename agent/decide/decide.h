/* SPDX-License-Identifier: MIT */
#pragma once

/* The decision: what one apply does, as data. Pure: no I/O, no logging, no globals.
 *
 *   observe (node/observe.c)  reads the node once into a Snapshot;
 *   decide  (this)            Snapshot → ordered Steps, exit code, result word, the state record;
 *   execute (node/execute.c)  runs the steps through the unit backend and the leaf modules, and hands each
 *                             step's result to decide_feedback(), which may change the rest of the steps
 *                             (EntraId not effective → Disabled's steps; `sshd -t` failed → no start);
 *   record                    decide_record() → state.json.
 *
 * The order of each mode (SPEC §4) is in decide.c: decide_disabled(), decide_localuser(), decide_entraid(). */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "apply/home.h"
#include "apply/sshd-config.h"
#include "decide/errors.h"
#include "plan/plan.h"
#include "policy/policy.h"
#include "state/state.h"

/* Every managed unit's state (units that do not exist have file_state "not-found"; a unit whose state
 * cannot be read has file_state "bad" and errors[i] says why, else errors[i] is NULL). */
typedef struct UnitInfoList {
        UnitInfo *units;
        char **errors;
        size_t n;
} UnitInfoList;

/* A Snapshot step that was not tried (an earlier one failed, or nothing named it). */
#define NOT_TRIED INT_MIN

/* The node as read once, and what is wanted. */
typedef struct Snapshot {
        const char *root;   /* --root, for messages ("" or NULL: the live node) */
        bool live;          /* the running node: sshd -t / sshd -T are run */
        bool from_state;    /* a repair: the policy is the state file's */
        Mode fallback_mode; /* config */
        State prev;         /* the state file (mode MODE_INVALID: none or unreadable) */
        /* What is wanted: the policy, or why there is none (fallback). */
        bool have_policy;
        Policy policy;  /* paths already checked against the admin's home (policy_check_paths) */
        int fetch_exit; /* without a policy: 65 invalid document, 69 IMDS unavailable */
        /* The admin user: looked up only with a policy naming one. Each step's result: 0, a HOME_E_* outcome
         * (home.h: HOME_E_NOT_FOUND for a missing .ssh or file), a negative errno, or NOT_TRIED. */
        int user_r; /* admin_user_lookup */
        AdminUser user;
        int home_r;      /* home_open */
        int ssh_dir_r;   /* ssh_dir_open, not creating */
        int keys_r;      /* authorized_keys_read */
        char *keys_text; /* the file as read */
        size_t keys_len;
        int home_fd, ssh_fd; /* handles for the executor (-1: none); decide() never looks at them */
        /* Units: the configured ones and the generator's sockets, and the generator itself. */
        int units_r; /* node_query_units: 0 or -errno */
        UnitInfoList units;
        GeneratorInfo gen; /* ours: the state file's generator_masked, and the mask still there */
        /* sshd's configuration */
        int sshd_r;          /* sshd_config_read: 0, an SSHD_E_* outcome (sshd-config.h), -errno */
        SshdConfigFile sshd; /* text, len (and, for the executor, the directory fd, mode, owner) */
        int legacy_dropin;   /* sshd_legacy_dropin_state: 1 present, 0 absent, -errno unknown */
} Snapshot;

typedef enum StepKind {
        STEP_SAVE_IMAGE_RECORD,    /* state.json keeps how the image had sshd before the first mask is made */
        STEP_UNIT,                 /* one unit action of the plan (plan.h) */
        STEP_REMOVE_PREVIOUS_KEYS, /* the admin changed: the previous admin's managed block goes */
        STEP_REMOVE_STALE_TEMPS,   /* a killed run's temp files next to authorized_keys */
        STEP_MAKE_SSH_DIR,         /* .ssh created (0700) or tightened before writing */
        STEP_WRITE_KEYS,           /* authorized_keys with the new managed block (or without it) */
        STEP_WRITE_SSHD_CONFIG,    /* sshd_config with EntraId's block at the top (EntraId) or without it */
        STEP_REMOVE_LEGACY_DROPIN, /* the old agent's sshd_config.d drop-in */
        STEP_CHECK_ENTRAID,        /* sshd -T must show pubkeyauthentication no */
        STEP_RESTORE_SSHD_CONFIG,  /* the check failed: sshd_config as it was (added by decide_feedback) */
        STEP_CHECK_SSHD,           /* sshd -t before sshd is started */
        _STEP_MAX,
} StepKind;

typedef struct Step {
        StepKind kind;
        UnitActionKind action; /* STEP_UNIT */
        const char *unit;      /* STEP_UNIT: the unit (into the snapshot's strings), NULL for daemon-reload */
} Step;

/* Something found wrong; the caller logs it (once) with the table's MESSAGE_ID. */
typedef struct Problem {
        Part part;
        int code;
        size_t unit; /* PART_UNIT_BROKEN: index into the snapshot's units */
} Problem;

/* How many rejected publicKeys entries are named one by one (log, --dry-run); the rest are counted. */
#define REJECTED_NAMED_MAX 10

typedef struct Decision {
        Mode mode;
        bool fallback;
        const char *source; /* "imds", "file", "fallback" (set by the caller) */
        int exit;           /* the most severe (exit_code_worse) */
        const char *result; /* its result word; NULL: "ok" */
        Problem *problems;
        size_t n_problems;
        Step *steps;
        size_t n_steps;
        UnitPlan plan;     /* the unit part (ssh_unit/off_unit for the executor) */
        ImageRecord image; /* how the image had sshd: kept, or taken now */
        bool gen_ours;     /* the generator mask is the agent's (state.json generator_masked) */
        /* The key part */
        bool key_part;      /* done (not blocked, not a fallback) */
        bool admin_changed; /* the previous admin's block goes */
        bool refused_root;  /* the admin has uid 0: never recorded */
        int prev_admin;     /* after execution: 1 their block is gone, -1 removing it failed */
        bool keys_change;
        char *keys_new;
        size_t keys_new_len;
        /* sshd's configuration */
        bool sshd_change;
        char *sshd_new;
        size_t sshd_new_len;
        bool sshd_written;    /* feedback: STEP_WRITE_SSHD_CONFIG succeeded (and was not restored) */
        char *entraid_failed; /* why EntraId could not be made effective */
        bool units_failed;    /* feedback: a unit action failed (the first one counts) */
        size_t n_broken;      /* managed units whose state could not be read */
} Decision;

void decision_done(Decision *d);

/* snapshot → decision. -ENOMEM only. */
int decide(const Snapshot *s, Decision *ret);

/* Only the unit part for a mode and an image record: what verify compares (no steps: in sync). */
int decide_units(Mode mode, const Snapshot *s, const ImageRecord *image, UnitPlan *ret);

/* verify (SPEC §6): the decision for the recorded state (s->prev, and the policy it records: s->policy,
 * s->from_state) must yield no step that changes the node (the image record, stale temp files and the sshd
 * checks do not count). Returns 0 in sync, 1 drift, 2 unknown (or -ENOMEM); *ret_what: the one line saying
 * what, the first difference in the order units, sshd's configuration, keys. */
int decide_verify(const Snapshot *s, char **ret_what);

/* Step i ran with result r (negative errno, or a positive part-specific code; reason: a one-line
 * explanation when the step gives one, e.g. sshd -T's). Updates exit/result, later steps, the record. */
int decide_feedback(const Snapshot *s, Decision *d, size_t i, int r, const char *reason);

/* The admin's key files as observed: 0 when they can be read (a missing .ssh or file reads as empty), else the
 * first failed step's result, and *ret_part the part it belongs to (PART_USER, PART_HOME, PART_SSH_DIR or
 * PART_KEYS_READ). */
int snapshot_keys_result(const Snapshot *s, Part *ret_part);

/* The first problem of that part, or NULL. */
const Problem *decision_find_problem(const Decision *d, Part part);

/* Records a failure: the most severe one decides the exit code and the result word. */
void decision_fail(Decision *d, Part part, int code);

/* The state record to write after the steps ran. now: RFC 3339. -ENOMEM only. */
int decide_record(const Snapshot *s, const Decision *d, const char *now, State *ret);

const char *step_kind_to_string(StepKind k);
/* An SSHD_E_* outcome (or a negative errno) as a phrase: "missing", "a symlink", "not a regular file", ... */
const char *sshd_read_error_to_string(int e);
