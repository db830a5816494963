/* SPDX-License-Identifier: MIT */
#pragma once

/* sshd configuration: the EntraId drop-in and the `sshd -t` check before sshd is started. */

#include <stdbool.h>

#define SSHD_DROPIN_DIR "/etc/ssh/sshd_config.d"
#define SSHD_DROPIN_NAME "50-aks-ssh-access.conf"
#define SSHD_DROPIN_TEXT                                                                        \
        "# Written by aks-ssh-access for the EntraId SSH access mode; removed in other modes.\n" \
        "# Public-key authentication is off outside Match blocks.\n"                             \
        "PubkeyAuthentication no\n"
#define SSHD_CONFIG "/etc/ssh/sshd_config"
#define SSHD_BINARY "/usr/sbin/sshd"

/* 1 if the drop-in is present with exactly our text, 0 if absent, -EEXIST if present with other text. */
int sshd_dropin_state(int root_fd);

/* Whether the drop-in state (from sshd_dropin_state()) is right: exactly ours when wanted (EntraId), else
 * absent: a changed file at our name is ours to replace or remove. */
static inline bool sshd_dropin_in_sync(bool wanted, int state) {
        return wanted ? state == 1 : state == 0;
}

/* Install / remove (1 = changed, 0 = already so). */
int sshd_dropin_install(int root_fd);
int sshd_dropin_remove(int root_fd);

/* Runs `sshd -t` on the live node. with_dropin: checks the configuration as it will be with the EntraId
 * drop-in in place, before installing it. 0 ok, -EBADMSG the check failed (logged with sshd's message),
 * -ENOENT no sshd binary. */
int sshd_config_check(bool with_dropin);
