/* SPDX-License-Identifier: MIT */
/* home: the outcome codes (HOME_E_*) and the reason in AdminUser.error for each kind of refusal, in a real
 * scratch root. home.c does not log; its callers map the codes to exit codes (67, 73, 77), so each code here
 * is the one contract they rely on. Needs root (files owned by the admin's uid); skipped otherwise. */

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/authorized-keys.h"
#include "apply/home.h"
#include "macro.h"
#include "unit.h"

#define UID 1000

static char root[256] = "/tmp/test-home.XXXXXX";
static int root_fd = -1;

static const char *at(const char *rel) {
        static char buf[4][512];
        static int slot;
        char *b = buf[slot++ % 4];
        snprintf(b, 512, "%s/%s", root, rel);
        return b;
}

static void put(const char *rel, const char *text, mode_t mode, uid_t uid) {
        FILE *f = fopen(at(rel), "w");
        if (!f)
                abort();
        fputs(text, f);
        fclose(f);
        if (chmod(at(rel), mode) < 0 || chown(at(rel), uid, uid) < 0)
                abort();
}

static void dir(const char *rel, mode_t mode, uid_t uid) {
        if ((mkdir(at(rel), mode) < 0 && errno != EEXIST) || chmod(at(rel), mode) < 0 || chown(at(rel), uid, uid) < 0)
                abort();
}

/* A clean home: /home/azureuser (0755, the user's), no .ssh. */
static void reset(void) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s/home/azureuser'", root);
        if (system(cmd) != 0)
                abort();
        dir("home/azureuser", 0755, UID);
}

/* Looks the user up and opens the home; the test's precondition, not under test. */
static int open_home(AdminUser *u) {
        int fd = -1;
        if (admin_user_lookup(root_fd, "azureuser", u) != 0 || home_open(root_fd, u, &fd) != 0)
                abort();
        return fd;
}

/* The outcome of reading authorized_keys of the current home, with the reason. */
static int read_keys(AdminUser *u) {
        _cleanup_close_ int home_fd = open_home(u), ssh_fd = -1;
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = ssh_dir_open(home_fd, u, false, &ssh_fd);

        return r != 0 ? r : authorized_keys_read(ssh_fd, u, &text, &len);
}

static bool set_immutable(const char *rel, bool on) {
        _cleanup_close_ int fd = open(at(rel), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        int flags = 0;

        if (fd < 0 || ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                return false;
        flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        return ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
}

static void check_keys(int want, const char *want_error, const char *why) {
        _cleanup_(admin_user_done) AdminUser u = {};
        int r = read_keys(&u);

        CHECK_INTEQ(r, want, why);
        CHECK(strstr(u.error, want_error), u.error);
}

static void test_lookup(void) {
        _cleanup_(admin_user_done) AdminUser u = {};

        CHECK_INTEQ(admin_user_lookup(root_fd, "nobody-here", &u), HOME_E_NO_USER, "no passwd entry");
        CHECK_INTEQ(admin_user_lookup(root_fd, "relhome", &u), HOME_E_UNSAFE, "a relative home is refused");
        CHECK(strstr(u.error, "no absolute home directory"), u.error);
        CHECK_INTEQ(admin_user_lookup(root_fd, "a/b", &u), -EINVAL, "a name with a slash is not a user name");
        CHECK_INTEQ(admin_user_lookup(root_fd, "azureuser", &u), 0, "found");
        CHECK_INTEQ(u.uid, UID, "its uid");
        CHECK_STREQ(u.home, "/home/azureuser", "its home, as in passwd");
        CHECK_STREQ(u.error, "", "no reason on success");
}

static void test_home(void) {
        _cleanup_(admin_user_done) AdminUser u = {};
        int fd = -1;

        CHECK_INTEQ(admin_user_lookup(root_fd, "gone", &u), 0, "user with a missing home");
        CHECK_INTEQ(home_open(root_fd, &u, &fd), HOME_E_NOT_FOUND, "a missing home is not found, not unsafe");
        admin_user_done(&u);

        CHECK_INTEQ(admin_user_lookup(root_fd, "sys", &u), 0, "user whose home is /etc");
        CHECK_INTEQ(home_open(root_fd, &u, &fd), HOME_E_UNSAFE, "a system directory is never a home");
        CHECK(strstr(u.error, "system directory"), u.error);
        admin_user_done(&u);

        CHECK_INTEQ(admin_user_lookup(root_fd, "azureuser", &u), 0, "the admin");
        chmod(at("home/azureuser"), 0775);
        CHECK_INTEQ(home_open(root_fd, &u, &fd), HOME_E_UNSAFE, "a group-writable home must be refused");
        CHECK(strstr(u.error, "group/world writable"), u.error);
        chmod(at("home/azureuser"), 0755);
        dir("home", 0755, UID);
        CHECK_INTEQ(home_open(root_fd, &u, &fd), HOME_E_UNSAFE, "a component above the home not owned by root");
        CHECK(strstr(u.error, "not owned by root"), u.error);
        dir("home", 0755, 0);
        CHECK_INTEQ(home_open(root_fd, &u, &fd), 0, "a safe home opens");
        CHECK_STREQ(u.real_home, "/home/azureuser", "its real path inside the root");
        close(fd);
}

static void test_ssh_dir_and_file(void) {
        reset();
        check_keys(HOME_E_NOT_FOUND, "does not exist", "no .ssh yet: not found");

        if (symlink("/etc", at("home/azureuser/.ssh")) < 0)
                abort();
        check_keys(HOME_E_UNSAFE, "symlink", ".ssh as a symlink must be refused");
        reset();
        put("home/azureuser/.ssh", "x\n", 0600, UID);
        check_keys(HOME_E_UNSAFE, "not a directory", ".ssh as a file must be refused");
        reset();
        dir("home/azureuser/.ssh", 0700, 1001);
        check_keys(HOME_E_UNSAFE, "owned by uid 1001", "another user's .ssh must be refused");

        reset();
        dir("home/azureuser/.ssh", 0700, UID);
        check_keys(HOME_E_NOT_FOUND, "does not exist", "no authorized_keys: not found");
        if (symlink("/etc/passwd", at("home/azureuser/.ssh/authorized_keys")) < 0)
                abort();
        check_keys(HOME_E_UNSAFE, "symlink", "authorized_keys as a symlink must be refused");
        unlink(at("home/azureuser/.ssh/authorized_keys"));
        if (mkfifo(at("home/azureuser/.ssh/authorized_keys"), 0600) < 0)
                abort();
        check_keys(HOME_E_UNSAFE, "not a regular file", "a FIFO must be refused (and never block)");
        unlink(at("home/azureuser/.ssh/authorized_keys"));
        put("home/azureuser/keys.bak", "k\n", 0600, UID);
        if (link(at("home/azureuser/keys.bak"), at("home/azureuser/.ssh/authorized_keys")) < 0)
                abort();
        check_keys(HOME_E_UNSAFE, "hard links", "a hard-linked authorized_keys must be refused");
        unlink(at("home/azureuser/.ssh/authorized_keys"));
        put("home/azureuser/.ssh/authorized_keys", "k\n", 0620, UID);
        check_keys(HOME_E_UNSAFE, "group/world writable", "a group-writable authorized_keys must be refused");
        chmod(at("home/azureuser/.ssh/authorized_keys"), 0600);
        check_keys(0, "", "a safe file reads");
}

static void test_create_and_write(void) {
        _cleanup_(admin_user_done) AdminUser u = {};
        _cleanup_close_ int home_fd = -1, ssh_fd = -1;
        struct stat st;

        reset();
        home_fd = open_home(&u);
        CHECK_INTEQ(ssh_dir_open(home_fd, &u, true, &ssh_fd), 0, "created");
        CHECK(fstat(ssh_fd, &st) == 0 && st.st_uid == UID && (st.st_mode & 07777) == 0700, "handed to the user, 0700");
        CHECK_INTEQ(authorized_keys_write(ssh_fd, &u, "k\n", 2), 0, "written");
        CHECK(stat(at("home/azureuser/.ssh/authorized_keys"), &st) == 0 && st.st_uid == UID && (st.st_mode & 07777) == 0600,
              "the file is the user's, 0600");

        /* chattr +i: EPERM even for root. "Cannot create" (73), not "unsafe" (77): HOME_E_IMMUTABLE. */
        if (!set_immutable("home/azureuser/.ssh", true)) {
                printf("skipped: no immutable attribute on this file system\n");
                return;
        }
        CHECK_INTEQ(authorized_keys_write(ssh_fd, &u, "k2\n", 3), HOME_E_IMMUTABLE, "an immutable .ssh is not unsafe");
        CHECK(strstr(u.error, "Operation not permitted"), u.error);
        chmod(at("home/azureuser/.ssh"), 0755); /* refused: immutable */
        set_immutable("home/azureuser/.ssh", false);
        chmod(at("home/azureuser/.ssh"), 0750);
        set_immutable("home/azureuser/.ssh", true);
        CHECK_INTEQ(ssh_dir_tighten(ssh_fd, &u, true), HOME_E_IMMUTABLE, "tightening an immutable .ssh");
        set_immutable("home/azureuser/.ssh", false);
        CHECK_INTEQ(ssh_dir_tighten(ssh_fd, &u, true), 0, "tightened");
        CHECK(fstat(ssh_fd, &st) == 0 && (st.st_mode & 07777) == 0700, "0700 now");
}

static void test_remove_managed(void) {
        _cleanup_(admin_user_done) AdminUser u = {}, r = {};
        bool removed = true;

        CHECK_INTEQ(authorized_keys_remove_managed(root_fd, "nobody-here", &u, &removed), HOME_E_NO_USER, "no such user");
        admin_user_done(&u);
        CHECK_INTEQ(authorized_keys_remove_managed(root_fd, "root", &u, &removed), HOME_E_ROOT, "uid 0 is never touched");
        admin_user_done(&u);
        reset();
        CHECK_INTEQ(authorized_keys_remove_managed(root_fd, "azureuser", &u, &removed), 0, "no .ssh: nothing to remove");
        CHECK(!removed, "nothing removed");
        admin_user_done(&u);

        dir("home/azureuser/.ssh", 0700, UID);
        put("home/azureuser/.ssh/authorized_keys", "own\n" AK_BEGIN "\nmanaged\n" AK_END "\n", 0600, UID);
        if (set_immutable("home/azureuser/.ssh/authorized_keys", true)) {
                /* The previous admin's immutable file: "cannot create" (73) like the admin's own, not unsafe. */
                CHECK_INTEQ(authorized_keys_remove_managed(root_fd, "azureuser", &u, &removed), HOME_E_IMMUTABLE,
                            "an immutable file of the previous admin is not an unsafe path");
                admin_user_done(&u);
                set_immutable("home/azureuser/.ssh/authorized_keys", false);
        }
        CHECK_INTEQ(authorized_keys_remove_managed(root_fd, "azureuser", &u, &removed), 0, "removed");
        CHECK(removed, "the block went");
        CHECK_INTEQ(read_keys(&r), 0, "still readable");
        admin_user_done(&u);
        CHECK_INTEQ(authorized_keys_remove_managed(root_fd, "azureuser", &u, &removed), 0, "again");
        CHECK(!removed, "nothing left to remove");

        put("home/azureuser/.ssh/authorized_keys", "own\n" AK_BEGIN "\nmanaged\n", 0600, UID);
        admin_user_done(&u);
        CHECK_INTEQ(authorized_keys_remove_managed(root_fd, "azureuser", &u, &removed), HOME_E_DAMAGED, "a damaged block is left");
}

int main(void) {
        if (geteuid() != 0) {
                printf("skipped: needs root (files owned by another uid)\n");
                return unit_finish();
        }
        if (!mkdtemp(root))
                return 1;
        root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        dir("etc", 0755, 0);
        dir("home", 0755, 0);
        put("etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n"
            "azureuser:x:1000:1000::/home/azureuser:/bin/bash\n"
            "relhome:x:1002:1002::home/relhome:/bin/bash\n"
            "gone:x:1003:1003::/home/gone:/bin/bash\n"
            "sys:x:1004:1004::/etc:/bin/bash\n",
            0644, 0);
        dir("home/azureuser", 0755, UID);

        test_lookup();
        test_home();
        test_ssh_dir_and_file();
        test_create_and_write();
        test_remove_managed();

        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        CHECK_INTEQ(system(cmd), 0, "scratch root removed");
        return unit_finish();
}
