/* SPDX-License-Identifier: MIT */
#include "home.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply/authorized-keys.h"
#include "fs-util.h"
#include "macro.h"

#define PASSWD_MAX ((size_t) 16 * 1024 * 1024)

/* Says why in u->error and returns code: a HOME_E_* outcome or a negative errno (then %m is its text). */
_printf_(3, 4) static int fail(AdminUser *u, int code, const char *fmt, ...) {
        va_list ap;

        errno = code < 0 ? -code : 0;
        va_start(ap, fmt);
        vsnprintf(u->error, sizeof u->error, fmt, ap);
        va_end(ap);
        return code;
}

void admin_user_done(AdminUser *u) {
        if (!u)
                return;
        free(u->name);
        free(u->home);
        free(u->real_home);
        *u = (AdminUser) {};
}

int admin_user_lookup(int root_fd, const char *name, AdminUser *ret) {
        struct passwd *pw = NULL;
        _cleanup_free_ char *passwd = NULL;
        size_t passwd_len = 0;
        _cleanup_fclose_ FILE *f = NULL;

        ret->error[0] = '\0';
        if (!name || !*name || strchr(name, '/') || strchr(name, ':'))
                return -EINVAL;

        if (root_fd == AT_FDCWD) {
                errno = 0;
                pw = getpwnam(name);
                if (!pw)
                        return errno > 0 && errno != ENOENT && errno != ESRCH ? -errno : HOME_E_NO_USER;
        } else {
                _cleanup_close_ int fd = open_in_root(root_fd, "/etc/passwd", O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
                if (fd < 0)
                        return fd == -ENOENT ? HOME_E_NO_USER : fd;
                /* A regular file, capped: a FIFO or device in the image must not hang or spin the run. */
                int r = read_regular_fd(fd, PASSWD_MAX, &passwd, &passwd_len);
                if (r == -EBADFD)
                        return fail(ret, HOME_E_UNSAFE, "refusing to read /etc/passwd of the root: not a regular file");
                if (r == -EFBIG)
                        return fail(ret, r, "refusing to read /etc/passwd of the root: larger than %zu bytes", PASSWD_MAX);
                if (r < 0)
                        return r;
                f = passwd_len > 0 ? fmemopen(passwd, passwd_len, "r") : NULL;
                if (!f)
                        return passwd_len > 0 ? -errno : HOME_E_NO_USER;
                while ((pw = fgetpwent(f)))
                        if (streq(pw->pw_name, name))
                                break;
                if (!pw)
                        return HOME_E_NO_USER;
        }

        if (!pw->pw_dir || pw->pw_dir[0] != '/')
                return fail(ret, HOME_E_UNSAFE, "user %s has no absolute home directory in the passwd database", name);

        AdminUser u = {
                .name = strdup(pw->pw_name),
                .uid = pw->pw_uid,
                .gid = pw->pw_gid,
                .home = strdup(pw->pw_dir),
        };
        if (!u.name || !u.home) {
                admin_user_done(&u);
                return -ENOMEM;
        }
        *ret = u;
        return 0;
}

static bool writable_by_others(const struct stat *st) {
        return (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

/* Homes the agent never creates .ssh in: the root directory, shared top-level directories, and the system
 * trees (root's home included: the admin is never uid 0). A passwd entry pointing there is a broken or
 * hostile image, not a user's home. */
static bool system_directory(const char *real) {
        static const char *const exact[] = {
                "/",         "/home", "/var", "/var/lib", "/var/cache", "/var/log", "/var/spool", "/var/tmp",
                "/var/mail", "/tmp",  "/opt", "/srv",     "/mnt",       "/media",   "/snap",      "/nonexistent",
        };
        static const char *const trees[] = {
                "/etc",
                "/usr",
                "/bin",
                "/sbin",
                "/lib",
                "/lib32",
                "/lib64",
                "/libx32",
                "/boot",
                "/dev",
                "/proc",
                "/sys",
                "/run",
                "/root",
                "/var/run",
                "/var/lib/aks-ssh-access",
                "/var/lib/systemd",
        };

        for (size_t i = 0; i < ELEMENTSOF(exact); i++)
                if (streq(real, exact[i]))
                        return true;
        for (size_t i = 0; i < ELEMENTSOF(trees); i++) {
                size_t n = strlen(trees[i]);
                if (strncmp(real, trees[i], n) == 0 && (real[n] == '\0' || real[n] == '/'))
                        return true;
        }
        return false;
}

int home_open(int root_fd, AdminUser *u, int *ret_fd) {
        _cleanup_close_ int resolved = -1, dfd = -1;
        _cleanup_free_ char *real = NULL, *copy = NULL;
        struct stat st;
        char *comp, *save = NULL;

        /* Resolve like sshd (realpath), symlinks above the home allowed but kept inside the root. */
        resolved = open_in_root_realpath(root_fd, u->home, O_PATH | O_DIRECTORY, &real);
        if (resolved < 0)
                return fail(u,
                            resolved == -ENOENT                                  ? HOME_E_NOT_FOUND
                                    : resolved == -ENOTDIR || resolved == -ELOOP ? HOME_E_UNSAFE
                                                                                 : resolved,
                            "cannot open home directory %s: %s", u->home, strerror(-resolved));

        if (system_directory(real))
                return fail(u, HOME_E_UNSAFE, "refusing to use home %s: it is a system directory, not a user's home", real);

        /* Walk the real path again without following anything, checking every component. */
        dfd = root_fd == AT_FDCWD ? open("/", O_PATH | O_DIRECTORY | O_CLOEXEC) : openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        copy = strdup(real);
        if (!copy)
                return -ENOMEM;
        for (comp = strtok_r(copy, "/", &save);; comp = strtok_r(NULL, "/", &save)) {
                if (fstat(dfd, &st) < 0)
                        return -errno;
                if (!comp)
                        break; /* dfd is the home: checked below */
                if (st.st_uid != 0 || writable_by_others(&st))
                        return fail(u, HOME_E_UNSAFE,
                                    "refusing to use home %s: a directory above it is %s (must be root-owned and not group/world writable)",
                                    real, st.st_uid != 0 ? "not owned by root" : "group/world writable");
                int nfd = openat(dfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0)
                        return fail(u, errno == ENOTDIR || errno == ELOOP ? HOME_E_UNSAFE : -errno,
                                    "refusing to use home %s: component %s changed while checking it: %s", real, comp, strerror(errno));
                close(dfd);
                dfd = nfd;
        }

        if (st.st_uid != 0 && st.st_uid != u->uid)
                return fail(u, HOME_E_UNSAFE, "refusing to use home %s: owned by uid %u, not by %s or root", real, (unsigned) st.st_uid,
                            u->name);
        if (writable_by_others(&st))
                return fail(u, HOME_E_UNSAFE, "refusing to use home %s: it is group/world writable (mode %04o)", real, st.st_mode & 07777);

        /* Re-open as a real directory fd (O_PATH fds cannot be used for mkdirat/readdir). */
        int hfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (hfd < 0)
                return fail(u, -errno, "cannot open home %s: %m", real);

        free(u->real_home);
        u->real_home = TAKE_PTR(real);
        *ret_fd = hfd;
        return 0;
}

static int check_owned(const struct stat *st, AdminUser *u, const char *what) {
        if (st->st_uid != 0 && st->st_uid != u->uid)
                return fail(u, HOME_E_UNSAFE, "refusing to use %s/%s: owned by uid %u, not by the user or root", u->real_home, what,
                            (unsigned) st->st_uid);
        if (writable_by_others(st))
                return fail(u, HOME_E_UNSAFE, "refusing to use %s/%s: group/world writable (mode %04o)", u->real_home, what,
                            st->st_mode & 07777);
        return 0;
}

/* mkdirat() cannot hand back what it made, and the user owns the home: between mkdirat and openat they can
 * rename any directory of theirs (or a root-owned one that sits in their home) to ".ssh". So the agent creates
 * .ssh with mode 0000, a mode umask cannot change and that nothing but this code ever gives a directory, and
 * decides from the opened fd alone: a root-owned, empty directory of mode 0000 is one the agent made (in this
 * run, or in a run killed before it finished), and only that one is chowned and chmodded. */
#define SSH_DIR_CREATE_MODE 0000

static int dir_is_empty(int fd) {
        _cleanup_close_ int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        int r = 1;

        if (dfd < 0)
                return -errno;
        d = fdopendir(dfd);
        if (!d)
                return -errno;
        dfd = -1;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
                        r = 0;
                        break;
                }
        closedir(d);
        return r;
}

static bool made_by_agent(int fd, const struct stat *st) {
        return S_ISDIR(st->st_mode) && st->st_uid == geteuid() && (st->st_mode & 07777) == SSH_DIR_CREATE_MODE &&
                dir_is_empty(fd) == 1; /* not st_nlink: btrfs directories always have 1 */
}

int ssh_dir_tighten(int ssh_fd, AdminUser *u, bool writing) {
        struct stat st;

        if (!writing || fstat(ssh_fd, &st) < 0)
                return 0;
        /* A .ssh the agent made in a run killed before it handed it over: finish that now. */
        if (made_by_agent(ssh_fd, &st)) {
                if (fchown(ssh_fd, u->uid, u->gid) < 0 || fchmod(ssh_fd, 0700) < 0)
                        return fail(u, errno == EPERM ? HOME_E_IMMUTABLE : -errno, "cannot set owner/mode of %s/.ssh: %s", u->real_home,
                                    strerror(errno));
                return 0;
        }
        /* Only the user's own .ssh: a root-owned one at 0700 would lock the user out of it. */
        if (st.st_uid != u->uid || (st.st_mode & 07777) == 0700)
                return 0;
        /* EPERM here is an immutable directory: "cannot create" (73), not an unsafe path (77). */
        if (fchmod(ssh_fd, 0700) < 0)
                return fail(u, errno == EPERM ? HOME_E_IMMUTABLE : -errno, "cannot set mode of %s/.ssh: %s", u->real_home, strerror(errno));
        return 0;
}

int ssh_dir_open(int home_fd, AdminUser *u, bool create, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        bool created = false;
        int r;

        fd = openat(home_fd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
                if (mkdirat(home_fd, ".ssh", SSH_DIR_CREATE_MODE) < 0) {
                        if (errno != EEXIST)
                                return fail(u, -errno, "cannot create %s/.ssh: %m", u->real_home);
                        /* Someone else made it in between: an existing .ssh, checked as such below. */
                } else
                        created = true;
                fd = openat(home_fd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
                if (errno == ENOENT && !create)
                        return fail(u, HOME_E_NOT_FOUND, "%s/.ssh does not exist", u->real_home);
                if (errno == ENOENT && !created) /* made by someone else, and gone again */
                        return fail(u, HOME_E_IMMUTABLE, "cannot create %s/.ssh: it vanished while being created", u->real_home);
                if (errno == ENOENT)
                        return fail(u, HOME_E_UNSAFE, "refusing to use %s/.ssh: it vanished while being created", u->real_home);
                if (errno == ELOOP || errno == ENOTDIR) {
                        if (fstatat(home_fd, ".ssh", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                                return fail(u, HOME_E_UNSAFE, "refusing to use %s/.ssh: it is a symlink", u->real_home);
                        return fail(u, HOME_E_UNSAFE, "refusing to use %s/.ssh: it is not a directory", u->real_home);
                }
                return fail(u, -errno, "cannot open %s/.ssh: %m", u->real_home);
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (create && made_by_agent(fd, &st)) {
                /* Ours (from the fd, not the name): hand it to the user. */
                if (fchown(fd, u->uid, u->gid) < 0 || fchmod(fd, 0700) < 0)
                        return fail(u, -errno, "cannot set owner/mode of %s/.ssh: %m", u->real_home);
                if (fsync(home_fd) < 0)
                        return fail(u, -errno, "cannot sync %s: %m", u->real_home);
        } else if (created)
                /* mkdirat succeeded, yet what is at .ssh now is not that directory: it was swapped. */
                return fail(u, HOME_E_UNSAFE, "refusing to use %s/.ssh: it was replaced while being created", u->real_home);
        else {
                r = check_owned(&st, u, ".ssh");
                if (r != 0)
                        return r;
                r = ssh_dir_tighten(fd, u, create);
                if (r != 0)
                        return r;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int authorized_keys_read(int ssh_fd, AdminUser *u, char **ret_text, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        fd = openat(ssh_fd, "authorized_keys", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return fail(u, HOME_E_NOT_FOUND, "%s/.ssh/authorized_keys does not exist", u->real_home);
                if (errno == ELOOP)
                        return fail(u, HOME_E_UNSAFE, "refusing to use %s/.ssh/authorized_keys: it is a symlink", u->real_home);
                return fail(u, -errno, "cannot open %s/.ssh/authorized_keys: %m", u->real_home);
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return fail(u, HOME_E_UNSAFE, "refusing to use %s/.ssh/authorized_keys: not a regular file", u->real_home);
        if (st.st_nlink != 1)
                return fail(u, HOME_E_UNSAFE, "refusing to use %s/.ssh/authorized_keys: it has %lu hard links", u->real_home,
                            (unsigned long) st.st_nlink);
        r = check_owned(&st, u, ".ssh/authorized_keys");
        if (r != 0)
                return r;
        r = read_full_fd(fd, AUTHORIZED_KEYS_MAX, ret_text, ret_len);
        if (r < 0)
                return fail(u, r, "cannot read %s/.ssh/authorized_keys: %m", u->real_home);
        return 0;
}

int authorized_keys_write(int ssh_fd, AdminUser *u, const char *text, size_t len) {
        int r = write_file_atomic(ssh_fd, "authorized_keys", text, len, 0600, u->uid, u->gid);
        /* ENOENT through a directory fd: the .ssh we hold was removed (replaced by a rename) meanwhile.
         * Nothing was written anywhere else: "cannot create" (73). The paths were checked already, so EPERM
         * is an immutable/append-only file or directory (or an LSM): "cannot create" too, not unsafe (77). */
        if (r == -ENOENT)
                return fail(u, HOME_E_IMMUTABLE, "cannot write %s/.ssh/authorized_keys: .ssh was removed while writing", u->real_home);
        if (r < 0)
                return fail(u, r == -EPERM ? HOME_E_IMMUTABLE : r, "cannot write %s/.ssh/authorized_keys: %s", u->real_home, strerror(-r));
        return 0;
}

int authorized_keys_remove_managed(int root_fd, const char *name, AdminUser *u, bool *ret_removed) {
        _cleanup_close_ int home_fd = -1, ssh_fd = -1;
        _cleanup_free_ char *text = NULL, *merged = NULL;
        size_t len, merged_len;
        bool removed = false;
        int r;

        r = admin_user_lookup(root_fd, name, u);
        if (r != 0)
                return r;
        if (u->uid == 0)
                return fail(u, HOME_E_ROOT, "%s has uid 0", name); /* never rewrite a uid-0 user's file for a document */
        r = home_open(root_fd, u, &home_fd);
        if (r == 0)
                r = ssh_dir_open(home_fd, u, false, &ssh_fd);
        if (r == 0)
                r = authorized_keys_read(ssh_fd, u, &text, &len);
        if (r == HOME_E_NOT_FOUND)
                r = 0; /* no home, .ssh or file: no block to remove */
        else if (r == 0) {
                (void) remove_stale_temp_files(ssh_fd, "authorized_keys");
                r = authorized_keys_merge(text, len, NULL, 0, &merged, &merged_len);
                if (r == AK_E_DAMAGED)
                        r = HOME_E_DAMAGED;
                if (r == 0 && (merged_len != len || memcmp(merged, text, len) != 0)) {
                        r = authorized_keys_write(ssh_fd, u, merged, merged_len);
                        removed = r == 0;
                }
        }
        if (r == 0)
                *ret_removed = removed;
        return r;
}
