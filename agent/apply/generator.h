/* SPDX-License-Identifier: MIT */
#pragma once

/* systemd's ssh generator (systemd >= 256, systemd-ssh-generator): is it in the tree, is it masked, and
 * masking it with /etc/systemd/system-generators/systemd-ssh-generator -> /dev/null. Paths inside the root
 * (root_fd AT_FDCWD: the live node). Library code: returns negative errno, does not log. */

#include "plan/plan.h"

#define GENERATOR_MASK_DIR "/etc/systemd/system-generators"

/* present/masked from the tree; ours is left as the caller set it. */
int generator_query(int root_fd, GeneratorInfo *gen);

/* 1 made, 0 already masked. */
int generator_mask(int root_fd);
/* Removes only a symlink to /dev/null: 1 removed, 0 not there. */
int generator_unmask(int root_fd);

/* The generator's socket names to manage: the four fixed ones and every sshd-extra-N.socket in the
 * generator output directories of the tree (/run/systemd/generator*). A NULL-terminated strv. */
int generator_socket_names(int root_fd, char ***ret);
