/* SPDX-License-Identifier: MIT */
#pragma once

/* Unit states shared by the planner's and the decision's tests: a Debian/Ubuntu node (ssh.service with its
 * sshd.service alias, ssh.socket, no sshd.socket) as the backends report it: name, file state, active state,
 * canonical name. */

#include "plan/plan.h"

/* The image's default, booted: ssh.service enabled and running. */
static const UnitInfo debian[] = {
        { "ssh.service", "enabled", "active", "ssh.service" },
        { "sshd.service", "alias", "active", "ssh.service" },
        { "ssh.socket", "disabled", "inactive", "ssh.socket" },
        { "sshd.socket", "not-found", "inactive", "sshd.socket" },
};

/* After Disabled: everything masked and stopped (the alias masked under its own name). */
static const UnitInfo debian_masked[] = {
        { "ssh.service", "masked", "inactive", "ssh.service" },
        { "sshd.service", "masked", "inactive", "sshd.service" },
        { "ssh.socket", "masked", "inactive", "ssh.socket" },
        { "sshd.socket", "not-found", "inactive", "sshd.socket" },
};
