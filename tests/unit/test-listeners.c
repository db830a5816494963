/* SPDX-License-Identifier: MIT */
/* The listener parsers on the kernel's exact formats (net/ipv4/tcp_ipv4.c get_tcp4_sock, net/ipv6/tcp_ipv6.c
 * get_tcp6_sock, net/unix/af_unix.c unix_seq_show), and the probe on real sockets of this process. */

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/vm_sockets_diag.h>

#include "listeners.h"
#include "macro.h"
#include "unit.h"

static const char TCP4[] =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        /* 0.0.0.0:22 listening */
        "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1219 1 00000000e52c5b22 100 0 0 10 0\n"
        /* 127.0.0.1:39233 listening */
        "   1: 0100007F:9941 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 40972 1 00000000a07e50f7 100 0 0 10 0\n"
        /* an established connection 10.224.0.4:22 <- 10.224.0.9:51000: not a listener */
        "   2: 0400E00A:0016 0900E00A:C738 01 00000000:00000000 02:000A7D4B 00000000     0        0 51234 2 0000000012345678 20 4 30 10 -1\n"
        /* the same 0.0.0.0:22 again (an SO_REUSEPORT group): listed once */
        "   3: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1220 1 00000000e52c5b23 100 0 0 10 0\n"
        /* truncated garbage: skipped */
        "   4: 0100007F:99\n"
        "not a line at all\n";

static const char TCP6[] =
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        /* [::]:22 */
        "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1221 1 0000000000000000 100 0 0 10 0\n"
        /* [::1]:2222 */
        "   1: 00000000000000000000000001000000:08AE 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1222 1 0000000000000000 100 0 0 10 0\n"
        /* TIME_WAIT: not a listener */
        "   2: 00000000000000000000000001000000:08AE 00000000000000000000000001000000:D431 06 00000000:00000000 03:00000F2D 00000000     0        0 0 3 0000000000000000\n";

static const char UNIX[] = "Num       RefCount Protocol Flags    Type St Inode Path\n"
                           /* the generator's sshd-unix-local.socket: listening stream under /run */
                           "0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/ssh-unix-local/socket\n"
                           /* listening, abstract */
                           "0000000000000000: 00000002 00000000 00010000 0001 01 23457 @/containerd-shim/abc.sock@\n"
                           /* listening but outside /run: not probed */
                           "0000000000000000: 00000002 00000000 00010000 0001 01 23458 /var/lib/kubelet/device-plugins/kubelet.sock\n"
                           /* a connected stream under /run (no ACCEPTCON): not a listener */
                           "0000000000000000: 00000003 00000000 00000000 0001 03 23459 /run/systemd/journal/stdout\n"
                           /* a listening datagram socket... cannot listen; a SEQPACKET one (type 5) is not sshd's */
                           "0000000000000000: 00000002 00000000 00010000 0005 01 23460 /run/udev/control\n"
                           /* datagram under /run */
                           "0000000000000000: 00000002 00000000 00000000 0002 01 23461 /run/systemd/notify\n"
                           /* unnamed listener */
                           "0000000000000000: 00000002 00000000 00010000 0001 01 23462\n"
                           /* "/runx/": not under /run/ */
                           "0000000000000000: 00000002 00000000 00010000 0001 01 23463 /runx/sock\n";

static void test_parse_tcp(void) {
        ListenerList l = {};

        CHECK_INTEQ(listeners_parse_tcp(TCP4, strlen(TCP4), AF_INET, &l), 0, "tcp parses");
        CHECK_INTEQ(l.n, 2, "two IPv4 listeners: established ones, duplicates and garbage are not");
        if (l.n == 2) {
                CHECK_STREQ(l.items[0].name, "0.0.0.0:22", "named as listed");
                CHECK_INTEQ(ntohl(l.items[0].addr.in.sin_addr.s_addr), INADDR_LOOPBACK, "a wildcard is probed on loopback");
                CHECK_INTEQ(ntohs(l.items[0].addr.in.sin_port), 22, "port in host order in the text");
                CHECK_STREQ(l.items[1].name, "127.0.0.1:39233", "little-endian words");
        }
        CHECK_INTEQ(listeners_parse_tcp(TCP6, strlen(TCP6), AF_INET6, &l), 0, "tcp6 parses");
        CHECK_INTEQ(l.n, 4, "two IPv6 listeners added");
        if (l.n == 4) {
                CHECK_STREQ(l.items[2].name, "[::]:22", "IPv6 wildcard");
                CHECK(IN6_IS_ADDR_LOOPBACK(&l.items[2].addr.in6.sin6_addr), "an IPv6 wildcard is probed on ::1");
                CHECK_STREQ(l.items[3].name, "[::1]:2222", "IPv6 loopback, words in host order");
                CHECK_INTEQ(ntohs(l.items[3].addr.in6.sin6_port), 2222, "IPv6 port");
        }
        CHECK_INTEQ(listeners_parse_tcp(TCP4, strlen(TCP4), AF_UNIX, &l), -EINVAL, "only the two TCP families");
        listener_list_done(&l);

        /* Text cut at any byte never reads past its end (ASan checks) and never yields a wrong listener. */
        for (size_t n = 0; n < sizeof TCP4 - 1; n++) {
                ListenerList c = {};
                CHECK_INTEQ(listeners_parse_tcp(TCP4, n, AF_INET, &c), 0, "prefix parses");
                for (size_t i = 0; i < c.n; i++)
                        if (!streq(c.items[i].name, "0.0.0.0:22") && !streq(c.items[i].name, "127.0.0.1:39233"))
                                CHECK(false, c.items[i].name);
                listener_list_done(&c);
        }
}

static void test_parse_unix(void) {
        ListenerList l = {};

        CHECK_INTEQ(listeners_parse_unix(UNIX, strlen(UNIX), &l), 0, "unix parses");
        CHECK_INTEQ(l.n, 2, "the /run listener and the abstract one");
        if (l.n == 2) {
                CHECK_STREQ(l.items[0].name, "/run/ssh-unix-local/socket", "path");
                CHECK_STREQ(l.items[0].addr.un.sun_path, "/run/ssh-unix-local/socket", "connect address");
                CHECK_INTEQ(l.items[0].addr_len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/ssh-unix-local/socket") + 1,
                            "path length with its NUL");
                CHECK_STREQ(l.items[1].name, "@/containerd-shim/abc.sock@", "abstract, as listed");
                CHECK(l.items[1].addr.un.sun_path[0] == '\0', "abstract address starts with NUL");
                CHECK_INTEQ(l.items[1].addr_len, offsetof(struct sockaddr_un, sun_path) + strlen("@/containerd-shim/abc.sock@"),
                            "abstract length is exactly its bytes");
        }
        listener_list_done(&l);
}

/* A server thread: accepts one connection on fd and sends `greeting`, then closes. */
typedef struct Server {
        int fd;
        const char *greeting;
        bool sent; /* checked by the main thread (the counters are not thread-safe) */
} Server;

static void *serve(void *arg) {
        Server *s = arg;
        int c = accept(s->fd, NULL, NULL);
        if (c >= 0) {
                if (s->greeting)
                        s->sent = write(c, s->greeting, strlen(s->greeting)) == (ssize_t) strlen(s->greeting);
                else {
                        /* silent: hold the connection past the probe's timeout */
                        struct pollfd p = { .fd = c, .events = POLLIN };
                        (void) poll(&p, 1, 2000);
                }
                close(c);
        }
        return NULL;
}

static int listen_loopback(uint16_t *ret_port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) < 0 || listen(fd, 4) < 0 ||
            getsockname(fd, (struct sockaddr *) &a, &al) < 0)
                return -1;
        *ret_port = ntohs(a.sin_port);
        return fd;
}

static void test_probe(void) {
        Server srv[3] = { { .greeting = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n" },
                          { .greeting = "HTTP/1.0 400 Bad\r\n" },
                          { .greeting = NULL } };
        pthread_t th[3];
        uint16_t port[3];
        char text[2048];
        size_t len = 0;
        ListenerList l = {};

        len += (size_t) snprintf(text + len, sizeof text - len, "  sl  local_address rem_address   st\n");
        for (int i = 0; i < 3; i++) {
                srv[i].fd = listen_loopback(&port[i]);
                CHECK(srv[i].fd >= 0, "listen on loopback");
                if (srv[i].fd < 0)
                        return;
                pthread_create(&th[i], NULL, serve, &srv[i]);
                len += (size_t) snprintf(text + len, sizeof text - len,
                                         "   %d: 0100007F:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n", i,
                                         port[i]);
        }
        /* A port nothing listens on any more: refused, not sshd. */
        uint16_t dead_port;
        int dead = listen_loopback(&dead_port);
        close(dead);
        len += (size_t) snprintf(text + len, sizeof text - len,
                                 "   3: 0100007F:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n", dead_port);

        CHECK_INTEQ(listeners_parse_tcp(text, len, AF_INET, &l), 0, "parse");
        CHECK_INTEQ(l.n, 4, "four listeners");
        CHECK_INTEQ(listeners_probe(&l, LISTENERS_PROBE_TIMEOUT_USEC), 1, "exactly the SSH server answers as sshd");
        if (l.n == 4) {
                CHECK(l.items[0].ssh, "SSH- banner");
                CHECK_STREQ(l.items[0].banner, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", "banner, first line without CR");
                CHECK(!l.items[1].ssh, "an HTTP answer is not sshd");
                CHECK_STREQ(l.items[1].banner, "HTTP/1.0 400 Bad", "what it said");
                CHECK(!l.items[2].ssh && l.items[2].probed, "a silent server is reached and is not sshd");
                CHECK(l.items[0].probed && l.items[1].probed, "the others were reached");
                CHECK(!l.items[3].ssh && l.items[3].probed, "refused: probed, not sshd");
                CHECK(listeners_first_ssh(&l) == &l.items[0], "first");
        }
        listener_list_done(&l);
        for (int i = 0; i < 3; i++) {
                pthread_join(th[i], NULL);
                CHECK(srv[i].sent == (srv[i].greeting != NULL), "the server sent its greeting");
                close(srv[i].fd);
        }
}

/* A sock_diag answer as the kernel's vsock_diag builds it (net/vmw_vsock/diag.c sk_diag_fill). */
typedef struct VsockMsg {
        struct nlmsghdr h;
        struct vsock_diag_msg m;
} VsockMsg;

static VsockMsg vsock_msg(uint8_t type, uint8_t state, uint32_t cid, uint32_t port) {
        return (VsockMsg) {
                .h = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct vsock_diag_msg)), .nlmsg_type = SOCK_DIAG_BY_FAMILY },
                .m = { .vdiag_family = AF_VSOCK, .vdiag_type = type, .vdiag_state = state, .vdiag_src_cid = cid, .vdiag_src_port = port },
        };
}

static void test_parse_vsock_diag(void) {
        VsockMsg batch[4] = {
                vsock_msg(SOCK_STREAM, 10 /* TCP_LISTEN */, VMADDR_CID_ANY, 22), /* sshd-vsock.socket */
                vsock_msg(SOCK_STREAM, 1 /* established */, 3, 1024),            /* not a listener */
                vsock_msg(SOCK_SEQPACKET, 10, VMADDR_CID_ANY, 5000),             /* not a stream */
                vsock_msg(SOCK_STREAM, 10, 3, 2222),                             /* bound to the guest's CID */
        };
        struct {
                struct nlmsghdr h;
                int status;
        } done = { .h = { .nlmsg_len = NLMSG_LENGTH(sizeof(int)), .nlmsg_type = NLMSG_DONE } };
        struct {
                struct nlmsghdr h;
                struct nlmsgerr e;
        } error = {
                .h = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct nlmsgerr)), .nlmsg_type = NLMSG_ERROR },
                .e = { .error = -ENOENT },
        };
        ListenerList l = {};

        CHECK_INTEQ(listeners_parse_vsock_diag(batch, sizeof batch, &l), 0, "more to come");
        CHECK_INTEQ(l.n, 2, "the two listening streams");
        if (l.n == 2) {
                CHECK_STREQ(l.items[0].name, "vsock:any:22", "any CID");
                CHECK_INTEQ(l.items[0].addr.vm.svm_cid, VMADDR_CID_LOCAL, "probed through the loopback transport");
                CHECK_INTEQ(l.items[0].addr.vm.svm_port, 22, "port");
                CHECK_STREQ(l.items[1].name, "vsock:3:2222", "a fixed CID");
                CHECK_INTEQ(l.items[1].addr.vm.svm_cid, 3, "connected where it listens");
        }
        CHECK_INTEQ(listeners_parse_vsock_diag(&done, sizeof done, &l), 1, "NLMSG_DONE ends the dump");
        CHECK_INTEQ(listeners_parse_vsock_diag(&error, sizeof error, &l), -EOPNOTSUPP, "no vsock_diag: not checkable");
        /* A message cut short is not read past its end (ASan checks). */
        CHECK_INTEQ(listeners_parse_vsock_diag(batch, sizeof batch[0] - 1, &l), 0, "truncated");
        CHECK_INTEQ(l.n, 2, "nothing from a truncated message");
        listener_list_done(&l);
}

static void test_read_missing(void) {
        ListenerList l = {};
        CHECK_INTEQ(listeners_read("/nonexistent/proc/net", &l), -ENOENT, "no /proc: not checkable");
        CHECK_INTEQ(listeners_read("/proc/self/net", &l), 0, "this machine's /proc");
        listener_list_done(&l);
}

int main(void) {
        test_parse_tcp();
        test_parse_unix();
        test_parse_vsock_diag();
        test_probe();
        test_read_missing();
        return unit_finish();
}
