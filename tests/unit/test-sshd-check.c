/* SPDX-License-Identifier: MIT */
/* EntraId's live check (sshd_check_entraid) with the real /usr/sbin/sshd: in a private mount namespace a
 * tmpfs is mounted over /etc/ssh, so sshd reads exactly the configuration each case writes.
 * Needs root and mount namespaces; without them the checks are skipped (and said so). */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/sshd-config.h"
#include "fs-util.h"
#include "macro.h"
#include "unit.h"

static const char aad_match[] =
        /* \? : the pattern's ?? would otherwise be read as trigraphs. */
        "Match User *@*,\?\?\?\?\?\?\?\?-\?\?\?\?-\?\?\?\?-\?\?\?\?-\?\?\?\?\?\?\?\?\?\?\?\?\t# Added by aadsshlogin installer\n"
        "    AuthenticationMethods publickey\n"
        "    PubkeyAuthentication yes\n"
        "    AuthorizedKeysCommand /usr/sbin/aad_certhandler %u %k\n"
        "    AuthorizedKeysCommandUser root\n";

static char *debian_stock;

static void write_config(const char *a, const char *b, const char *c) {
        FILE *f = fopen(SSHD_CONFIG, "w");

        if (!f) {
                perror(SSHD_CONFIG);
                exit(1);
        }
        fputs(a, f);
        fputs(b, f);
        fputs(c, f);
        fclose(f);
}

static void check(const char *a, const char *b, const char *c, int want, const char *want_reason, const char *why) {
        _cleanup_free_ char *reason = NULL;
        int r;

        write_config(a, b, c);
        r = sshd_check_entraid("azureuser", &reason);
        CHECK_INTEQ(r, want, why);
        if (want_reason)
                CHECK(reason && strstr(reason, want_reason), reason ? reason : "(no reason)");
        else
                CHECK(!reason, "no reason when effective");
}

static int setup(void) {
        size_t len;
        int fd;

        if (geteuid() != 0 || access(SSHD_BINARY, X_OK) < 0)
                return -EPERM;
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        fd = open("/usr/share/openssh/sshd_config", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                (void) read_full_fd(fd, SSHD_CONFIG_MAX, &debian_stock, &len);
                close(fd);
        }
        if (!debian_stock)
                debian_stock = strdup("Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n");
        /* A tmpfs over /etc/ssh, in this namespace only: nothing to clean up, the host's is never touched. */
        if (mount("tmpfs", SSHD_CONFIG_DIR, "tmpfs", 0, "mode=0755") < 0)
                return -errno;
        if (system("ssh-keygen -q -t ed25519 -N '' -f " SSHD_CONFIG_DIR "/ssh_host_ed25519_key </dev/null >/dev/null && "
                   "mkdir " SSHD_CONFIG_DIR "/sshd_config.d") != 0)
                return -EIO;
        return 0;
}

int main(void) {
        int r = setup();

        if (r < 0) {
                printf("skipped: needs root, mount namespaces and %s (%s)\n", SSHD_BINARY, strerror(-r));
                free(debian_stock);
                return unit_finish();
        }

        check(SSHD_BLOCK_TEXT, debian_stock, aad_match, 0, NULL, "Debian's stock file with the block on top");
        check("", debian_stock, aad_match, SSHD_E_NOT_EFFECTIVE, "sshd -T says pubkeyauthentication yes",
              "without the block sshd's default (yes) is what the admin gets");
        check(SSHD_BLOCK_TEXT, "PubkeyAuthentication yes\n", "", 0, NULL, "a later explicit yes loses to the block");
        /* Match blocks do override the top: one that catches the admin makes EntraId ineffective. */
        check(SSHD_BLOCK_TEXT, debian_stock, "Match User azureuser\n    PubkeyAuthentication yes\n", SSHD_E_NOT_EFFECTIVE,
              "sshd -T says pubkeyauthentication yes", "a Match block for the admin re-enables it: not effective");
        check(SSHD_BLOCK_TEXT, "", "Match all\n    PubkeyAuthentication yes\n", SSHD_E_NOT_EFFECTIVE, "pubkeyauthentication yes",
              "Match all re-enables it for everyone");
        /* Match LocalPort / LocalAddress / Address / Host need those in the test specification, else sshd -T
         * refuses to run: the check gives them all. */
        check(SSHD_BLOCK_TEXT, debian_stock,
              "Match LocalPort 2222\n    X11Forwarding no\nMatch LocalAddress 10.0.0.1\n    X11Forwarding no\n"
              "Match Address 10.0.0.0/8 Host *.example\n    X11Forwarding no\n",
              0, NULL, "Match criteria of every kind are evaluated, not refused");
        check(SSHD_BLOCK_TEXT, "NoSuchOption yes\n", "", SSHD_E_REJECTED,
              "sshd -t refuses the configuration: ", "a configuration sshd refuses is not effective");
        check(SSHD_BLOCK_TEXT, "Include /etc/ssh/sshd_config.d/*.conf\n", "", 0, NULL, "an Include of an empty directory");

        /* sshd -t alone (before starting sshd in LocalUser) */
        write_config("NoSuchOption yes\n", "", "");
        CHECK_INTEQ(sshd_config_check(NULL), SSHD_E_REJECTED, "sshd -t refuses an unknown keyword");
        write_config(debian_stock, "", "");
        CHECK_INTEQ(sshd_config_check(NULL), 0, "sshd -t accepts Debian's stock file");

        free(debian_stock);
        return unit_finish();
}
