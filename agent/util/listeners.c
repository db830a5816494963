/* SPDX-License-Identifier: MIT */
#include "listeners.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/vm_sockets_diag.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"

#define TCP_STATE_LISTEN 0x0A
#define UNIX_FLAG_ACCEPTCON 0x00010000u /* __SO_ACCEPTCON: the socket listens */
#define PROC_NET_MAX ((size_t) 16 * 1024 * 1024)
#define PROBE_BATCH 256 /* connections open at once (well below RLIMIT_NOFILE's soft 1024) */

void listener_list_done(ListenerList *l) {
        free(l->items);
        *l = (ListenerList) {};
}

static bool listener_known(const ListenerList *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->items[i].name, name))
                        return true;
        return false;
}

static int listener_append(ListenerList *l, const Listener *x) {
        if (listener_known(l, x->name))
                return 0;
        if (!GREEDY_REALLOC(l->items, l->n + 1))
                return -ENOMEM;
        l->items[l->n++] = *x;
        return 0;
}

/* One line of /proc/net/tcp{,6}: "  sl: LOCALADDR:PORT REMADDR:PORT ST ...". The address is printed as the
 * kernel's 32-bit words in host byte order (%08X of each __be32 read as a u32), the port as a number.
 * True for a listener. */
static bool parse_tcp_line(const char *line, int family, Listener *ret) {
        size_t addr_hex = family == AF_INET ? 8 : 32;
        unsigned port, state;
        uint32_t w[4];
        char addr[33];

        if (sscanf(line, "%*u: %32[0-9A-Fa-f]:%4x %*[0-9A-Fa-f]:%*4x %2x", addr, &port, &state) != 3 || strlen(addr) != addr_hex ||
            state != TCP_STATE_LISTEN)
                return false; /* the header, another state, or garbage */
        for (size_t k = 0; k < addr_hex / 8; k++)
                if (sscanf(addr + 8 * k, "%8x", &w[k]) != 1)
                        return false;

        Listener x = { .family = family };
        char host[INET6_ADDRSTRLEN];
        if (family == AF_INET) {
                x.addr.in = (struct sockaddr_in) { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
                memcpy(&x.addr.in.sin_addr, &w[0], 4);
                inet_ntop(AF_INET, &x.addr.in.sin_addr, host, sizeof host);
                snprintf(x.name, sizeof x.name, "%s:%u", host, port);
                if (x.addr.in.sin_addr.s_addr == htonl(INADDR_ANY))
                        x.addr.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                x.addr_len = sizeof x.addr.in;
        } else {
                x.addr.in6 = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t) port) };
                memcpy(&x.addr.in6.sin6_addr, w, 16);
                inet_ntop(AF_INET6, &x.addr.in6.sin6_addr, host, sizeof host);
                snprintf(x.name, sizeof x.name, "[%s]:%u", host, port);
                if (IN6_IS_ADDR_UNSPECIFIED(&x.addr.in6.sin6_addr))
                        x.addr.in6.sin6_addr = in6addr_loopback;
                x.addr_len = sizeof x.addr.in6;
        }
        *ret = x;
        return true;
}

/* One line of /proc/net/unix: "%pK: %08X %08X %08X %04X %02X %5lu[ PATH]" (RefCount Protocol Flags Type St
 * Inode Path). Abstract names are printed with '@' for the leading NUL. True for a listening stream socket
 * under /run/ or with an abstract name. */
static bool parse_unix_line(const char *line, int family, Listener *ret) {
        unsigned flags, type, st;
        unsigned long inode;
        int n = -1;

        if (sscanf(line, "%*[0-9a-fA-F]: %*x %*x %x %x %x %lu%n", &flags, &type, &st, &inode, &n) != 4 || n < 0)
                return false;
        if (!(flags & UNIX_FLAG_ACCEPTCON) || type != SOCK_STREAM)
                return false;
        const char *path = line + n;
        if (*path != ' ')
                return false; /* unnamed */
        path++;
        size_t plen = strlen(path);
        bool abstract = path[0] == '@';
        if (plen < 2 || plen >= sizeof ret->addr.un.sun_path)
                return false;
        if (!abstract && strncmp(path, "/run/", 5) != 0)
                return false;

        Listener x = { .family = AF_UNIX };
        x.addr.un.sun_family = AF_UNIX;
        memcpy(x.addr.un.sun_path, path, plen);
        if (abstract)
                x.addr.un.sun_path[0] = '\0';
        /* An abstract name is exactly its bytes (no terminator); a path may have one. */
        x.addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + plen + (abstract ? 0 : 1));
        snprintf(x.name, sizeof x.name, "%s", path);
        *ret = x;
        return true;
}

/* Appends what parse_line finds in each line of the text; lines that do not parse are skipped. */
static int parse_lines(const char *text, size_t len, int family, bool (*parse_line)(const char *, int, Listener *), ListenerList *l) {
        _cleanup_free_ char *copy = strndup(text, len);
        char *p = copy, *line;

        if (!copy)
                return -ENOMEM;
        while ((line = strsep(&p, "\n"))) {
                Listener x;
                if (parse_line(line, family, &x) && listener_append(l, &x) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int listeners_parse_tcp(const char *text, size_t len, int family, ListenerList *l) {
        if (family != AF_INET && family != AF_INET6)
                return -EINVAL;
        return parse_lines(text, len, family, parse_tcp_line, l);
}

int listeners_parse_unix(const char *text, size_t len, ListenerList *l) {
        return parse_lines(text, len, AF_UNIX, parse_unix_line, l);
}

/* Appends a listening AF_VSOCK socket on (cid, port) (from sock_diag). */
static int listeners_add_vsock(ListenerList *l, uint32_t cid, uint32_t port) {
        Listener x = { .family = AF_VSOCK };

        x.addr.vm = (struct sockaddr_vm) {
                .svm_family = AF_VSOCK,
                .svm_port = port,
                /* A listener on "any" is reached locally through the loopback transport. */
                .svm_cid = cid == VMADDR_CID_ANY ? VMADDR_CID_LOCAL : cid,
        };
        x.addr_len = sizeof x.addr.vm;
        if (cid == VMADDR_CID_ANY)
                snprintf(x.name, sizeof x.name, "vsock:any:%u", port);
        else
                snprintf(x.name, sizeof x.name, "vsock:%u:%u", cid, port);
        return listener_append(l, &x);
}

int listeners_parse_vsock_diag(const void *buf, size_t len, ListenerList *l) {
        size_t n = len;

        for (const struct nlmsghdr *h = buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
                if (h->nlmsg_type == NLMSG_DONE)
                        return 1;
                if (h->nlmsg_type == NLMSG_ERROR)
                        return -EOPNOTSUPP; /* ENOENT: no vsock_diag in this kernel */
                if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct vsock_diag_msg)))
                        continue;
                const struct vsock_diag_msg *m = NLMSG_DATA(h);
                if (m->vdiag_family != AF_VSOCK || m->vdiag_state != TCP_STATE_LISTEN || m->vdiag_type != SOCK_STREAM)
                        continue;
                if (listeners_add_vsock(l, m->vdiag_src_cid, m->vdiag_src_port) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* AF_VSOCK has no /proc file: ask sock_diag (module vsock_diag) for the listening stream sockets.
 * Returns 0 (vsock checked), -EOPNOTSUPP when the kernel cannot answer, -ENOMEM. */
static int read_vsock(ListenerList *l) {
        _cleanup_close_ int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        struct {
                struct nlmsghdr nlh;
                struct vsock_diag_req req;
        } msg = {
                .nlh = { .nlmsg_len = sizeof msg,
                         .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                         .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                         .nlmsg_seq = 1 },
                .req = { .sdiag_family = AF_VSOCK, .vdiag_states = 1u << TCP_STATE_LISTEN },
        };
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        long buf[8192 / sizeof(long)];

        if (fd < 0)
                return -EOPNOTSUPP; /* no netlink here (a sandbox without AF_NETLINK) */
        struct timeval tv = { .tv_sec = 1 };
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (sendto(fd, &msg, sizeof msg, 0, (struct sockaddr *) &kernel, sizeof kernel) < 0)
                return -EOPNOTSUPP;
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -EOPNOTSUPP;
                int r = listeners_parse_vsock_diag(buf, (size_t) n, l);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
}

static int read_proc_file(const char *dir, const char *name, char **ret, size_t *ret_len) {
        char path[4096];
        _cleanup_close_ int fd = -1;

        if ((size_t) snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* /proc files have size 0: read them as a stream. */
        return read_full_stream(fd, PROC_NET_MAX, ret, ret_len);
}

int listeners_read(const char *proc_net_dir, ListenerList *ret) {
        static const struct {
                const char *name;
                int family;
        } files[] = {
                { "tcp", AF_INET },
                { "tcp6", AF_INET6 },
                { "unix", AF_UNIX },
        };
        ListenerList l = {};
        size_t found = 0;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *text = NULL;
                size_t len;

                r = read_proc_file(proc_net_dir, files[i].name, &text, &len);
                if (r == -ENOENT)
                        continue; /* no IPv6 in this kernel, or no /proc at all */
                if (r < 0)
                        goto fail;
                found++;
                r = files[i].family == AF_UNIX ? listeners_parse_unix(text, len, &l) : listeners_parse_tcp(text, len, files[i].family, &l);
                if (r < 0)
                        goto fail;
        }
        if (found == 0) {
                r = -ENOENT;
                goto fail;
        }
        r = read_vsock(&l);
        if (r == -ENOMEM)
                goto fail;
        l.vsock_checked = r >= 0;
        *ret = l;
        return 0;
fail:
        listener_list_done(&l);
        return r;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

typedef struct Probe {
        int fd;
        bool connecting;
        size_t got;
        char buf[sizeof(((Listener *) 0)->banner)];
} Probe;

static void probe_finish(Listener *x, Probe *p) {
        size_t n = 0;

        x->ssh = p->got >= 4 && memcmp(p->buf, "SSH-", 4) == 0;
        for (; n < p->got && n + 1 < sizeof x->banner && p->buf[n] != '\r' && p->buf[n] != '\n'; n++)
                x->banner[n] = (p->buf[n] < 0x20 || p->buf[n] >= 0x7f) ? '?' : p->buf[n];
        x->banner[n] = '\0';
        if (p->fd >= 0)
                close(p->fd);
        p->fd = -1;
}

/* A connect error that says the socket is gone (nothing can answer there), as opposed to one that says it
 * could not be tried (EACCES/EPERM from permissions, a sandbox or an IP filter, ENODEV/ENETUNREACH: no
 * vsock loopback transport, no route). */
static bool nobody_listens(int err) {
        return err == ECONNREFUSED || err == ENOENT || err == ECONNRESET;
}

/* One batch: connect all, then poll until each has sent a line (or 4 bytes that are not "SSH-"), closed,
 * failed, or the deadline passed. */
static int probe_batch(Listener *xs, size_t n, uint64_t deadline) {
        Probe ps[PROBE_BATCH];
        struct pollfd pfd[PROBE_BATCH];
        size_t open_count = 0;

        for (size_t i = 0; i < n; i++) {
                Probe *p = &ps[i];
                *p = (Probe) { .fd = socket(xs[i].family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) };
                if (p->fd < 0)
                        continue; /* family not usable here (sandbox, no IPv6/vsock): not checked */
                if (connect(p->fd, &xs[i].addr.sa, xs[i].addr_len) < 0) {
                        if (errno != EINPROGRESS && errno != EAGAIN) {
                                xs[i].probed = nobody_listens(errno);
                                probe_finish(&xs[i], p);
                                continue;
                        }
                        p->connecting = true;
                } else
                        xs[i].probed = true; /* connected at once (AF_UNIX) */
                open_count++;
        }
        while (open_count > 0) {
                uint64_t t = now_usec();
                size_t k = 0;
                if (t >= deadline)
                        break;
                for (size_t i = 0; i < n; i++)
                        if (ps[i].fd >= 0)
                                pfd[k++] = (struct pollfd) { .fd = ps[i].fd, .events = ps[i].connecting ? POLLOUT : POLLIN };
                int timeout_ms = (int) ((deadline - t + 999) / 1000);
                int r = poll(pfd, k, timeout_ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        break;
                k = 0;
                for (size_t i = 0; i < n; i++) {
                        Probe *p = &ps[i];
                        if (p->fd < 0)
                                continue;
                        short re = pfd[k++].revents;
                        if (!re)
                                continue;
                        if (p->connecting) {
                                int err = 0;
                                socklen_t el = sizeof err;
                                if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
                                        xs[i].probed = nobody_listens(err);
                                        probe_finish(&xs[i], p);
                                        open_count--;
                                } else {
                                        p->connecting = false;
                                        xs[i].probed = true; /* connected: what it sends decides */
                                }
                                continue;
                        }
                        ssize_t got = read(p->fd, p->buf + p->got, sizeof p->buf - p->got);
                        if (got < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        if (got > 0)
                                p->got += (size_t) got;
                        xs[i].probed = true;
                        /* Done once it closed, failed, filled the buffer, sent a line, or sent 4 bytes
                         * that cannot start an SSH version line. */
                        if (got <= 0 || p->got == sizeof p->buf || memchr(p->buf, '\n', p->got) ||
                            (p->got >= 4 && memcmp(p->buf, "SSH-", 4) != 0)) {
                                probe_finish(&xs[i], p);
                                open_count--;
                        }
                }
        }
        for (size_t i = 0; i < n; i++)
                if (ps[i].fd >= 0)
                        probe_finish(&xs[i], &ps[i]); /* timed out: whatever it sent so far decides */
        return 0;
}

int listeners_probe(ListenerList *l, uint64_t timeout_usec) {
        int r;

        for (size_t i = 0; i < l->n; i += PROBE_BATCH) {
                size_t n = l->n - i < PROBE_BATCH ? l->n - i : PROBE_BATCH;
                /* Each batch gets the whole timeout: most nodes have one batch; a node with hundreds of
                 * listeners pays one timeout per 256. */
                r = probe_batch(l->items + i, n, now_usec() + timeout_usec);
                if (r < 0)
                        return r;
        }
        return (int) listeners_count_ssh(l);
}

const Listener *listeners_first_ssh(const ListenerList *l) {
        for (size_t i = 0; i < l->n; i++)
                if (l->items[i].ssh)
                        return &l->items[i];
        return NULL;
}

size_t listeners_count_ssh(const ListenerList *l) {
        size_t c = 0;
        for (size_t i = 0; i < l->n; i++)
                c += l->items[i].ssh;
        return c;
}
