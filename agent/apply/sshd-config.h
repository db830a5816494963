/* SPDX-License-Identifier: MIT */
#pragma once

/* sshd configuration for the EntraId mode, and the `sshd -t` / `sshd -T` checks before sshd is started.
 *
 * sshd takes the first value it reads for a keyword (outside Match blocks), so EntraId's setting goes at
 * the very top of the main sshd_config, as a delimited block:
 *
 *   # BEGIN aks-ssh-access EntraId ...
 *   PubkeyAuthentication no
 *   # END aks-ssh-access EntraId
 *
 * It then wins over whatever follows: an Include of sshd_config.d (and its drop-ins, whatever their names)
 * or an explicit `PubkeyAuthentication yes` further down. Match blocks (the aadsshlogin block) still apply
 * on top of it. Inserting puts the block's bytes before the image's bytes; removing it gives the image's
 * bytes back exactly. Older versions of the agent wrote a drop-in (SSHD_LEGACY_DROPIN_*), which sshd reads
 * after anything earlier in sshd_config; it is removed wherever found. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SSHD_CONFIG_DIR "/etc/ssh"
#define SSHD_CONFIG_NAME "sshd_config"
#define SSHD_CONFIG SSHD_CONFIG_DIR "/" SSHD_CONFIG_NAME
#define SSHD_BINARY "/usr/sbin/sshd"

#define SSHD_BLOCK_BEGIN "# BEGIN aks-ssh-access EntraId (public-key authentication off outside Match blocks; removed in other modes)"
#define SSHD_BLOCK_END "# END aks-ssh-access EntraId"
#define SSHD_BLOCK_TEXT SSHD_BLOCK_BEGIN "\nPubkeyAuthentication no\n" SSHD_BLOCK_END "\n"
/* Marker lines are recognised by these prefixes, so a hand-edited marker is still ours. */
#define SSHD_BLOCK_BEGIN_PREFIX "# BEGIN aks-ssh-access"
#define SSHD_BLOCK_END_PREFIX "# END aks-ssh-access"

/* The largest sshd_config the agent reads (Debian's is 3 KiB). */
#define SSHD_CONFIG_MAX (1024 * 1024)

/* Outcomes the caller must handle (dbus-broker's split): 0 success, a positive SSHD_E_* below, or a negative
 * errno for an unexpected failure, passed up unchanged. Nothing here logs. */
enum {
        SSHD_E_NOT_FOUND = 1, /* sshd_config (or /etc/ssh) does not exist */
        SSHD_E_SYMLINK,       /* sshd_config is a symlink: never followed */
        SSHD_E_NOT_REGULAR,   /* sshd_config is a FIFO, directory, device or socket */
        SSHD_E_TOO_LARGE,     /* sshd_config is larger than SSHD_CONFIG_MAX */
        SSHD_E_NO_SSHD,       /* no SSHD_BINARY to run the checks with */
        SSHD_E_REJECTED,      /* sshd -t (or -T) refuses the configuration */
        SSHD_E_NOT_EFFECTIVE, /* sshd -T does not show `pubkeyauthentication no` */
};

#define SSHD_LEGACY_DROPIN_DIR "/etc/ssh/sshd_config.d"
#define SSHD_LEGACY_DROPIN_NAME "50-aks-ssh-access.conf"

/* --- Pure text functions (no I/O) --- */

typedef enum SshdBlockState {
        SSHD_BLOCK_ABSENT,  /* no marker line at all */
        SSHD_BLOCK_OURS,    /* exactly SSHD_BLOCK_TEXT at offset 0, and no other marker line */
        SSHD_BLOCK_DAMAGED, /* marker lines, but not exactly that: hand-edited, moved, doubled, orphaned */
} SshdBlockState;

SshdBlockState sshd_block_state(const char *text, size_t len);
const char *sshd_block_state_to_string(SshdBlockState s);

/* The text without the block: every complete BEGIN..END block (marker lines inclusive) and every orphaned
 * marker line is dropped; all other bytes are kept exactly. Applied to the output of sshd_block_insert(),
 * gives its input's bytes back (when that input had no marker lines). The result is NUL-terminated. */
int sshd_block_strip(const char *text, size_t len, char **ret, size_t *ret_len);

/* SSHD_BLOCK_TEXT followed by sshd_block_strip(text). NUL-terminated. */
int sshd_block_insert(const char *text, size_t len, char **ret, size_t *ret_len);

/* --- The file --- */

typedef struct SshdConfigFile {
        int dir_fd; /* /etc/ssh inside the root */
        char *text; /* the bytes as read (NUL-terminated) */
        size_t len;
        mode_t mode; /* its permission bits and owner, kept on write */
        uid_t uid;
        gid_t gid;
} SshdConfigFile;

void sshd_config_file_done(SshdConfigFile *f);

/* Reads <root>/etc/ssh/sshd_config: the directory resolved inside the root, the file itself never
 * followed. SSHD_E_NOT_FOUND, SSHD_E_SYMLINK, SSHD_E_NOT_REGULAR, SSHD_E_TOO_LARGE. */
int sshd_config_read(int root_fd, SshdConfigFile *ret);

/* Replaces the file's contents atomically (temp file in the same directory, fsync, rename, fsync of the
 * directory), keeping the mode and owner it had when read. The old file stays intact on failure. */
int sshd_config_write(SshdConfigFile *f, const char *text, size_t len);

/* The legacy drop-in: 1 present (any contents), 0 absent (also when sshd_config.d is not a directory:
 * nothing of ours can be in it), negative errno when that cannot be told. */
int sshd_legacy_dropin_state(int root_fd);
/* 1 removed, 0 was absent. */
int sshd_legacy_dropin_remove(int root_fd);

/* --- sshd itself, on the live node --- */

/* `sshd -t`. 0 ok, SSHD_E_REJECTED, SSHD_E_NO_SSHD, a negative errno when sshd could not be run.
 * *ret_reason (may be NULL) gets "sshd configuration check failed: <sshd's first line>" (or why it could
 * not run), to be freed by the caller. */
int sshd_config_check(char **ret_reason);

/* EntraId's effectiveness check: `sshd -t`, then `sshd -T -C user=<user>,host=localhost,addr=127.0.0.1,
 * laddr=127.0.0.1,lport=22` must print `pubkeyauthentication no`. 0 effective; SSHD_E_NOT_EFFECTIVE,
 * SSHD_E_REJECTED, SSHD_E_NO_SSHD; a negative errno when sshd could not be run. *ret_reason (may be NULL)
 * gets a one-line reason (also for SSHD_E_NO_SSHD) to be freed by the caller. */
int sshd_check_entraid(const char *user, char **ret_reason);
