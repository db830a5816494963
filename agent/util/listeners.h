/* SPDX-License-Identifier: MIT */
#pragma once

/* What listens on the node, and which of it answers as sshd (an `SSH-` banner): listening TCP sockets
 * (/proc/net/tcp, tcp6), listening AF_UNIX stream sockets (/proc/net/unix: paths under /run and abstract
 * names) and, where the kernel has vsock_diag, listening AF_VSOCK sockets (sock_diag netlink). Used by
 * verify/status in Disabled ("nothing answers as sshd") and by the metrics.
 *
 * The parsers are pure (fixed text in, list out) so the unit tests drive them with the kernel's formats;
 * the probe connects to every listener at once, non-blocking, and waits one short timeout for all. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <linux/vm_sockets.h>

#define LISTENERS_PROBE_TIMEOUT_USEC (300 * 1000ULL)

typedef struct Listener {
        int family; /* AF_INET, AF_INET6, AF_UNIX, AF_VSOCK */
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
                struct sockaddr_un un;
                struct sockaddr_vm vm;
        } addr; /* where the probe connects (a wildcard listener: loopback / VMADDR_CID_LOCAL) */
        socklen_t addr_len;
        char name[128]; /* as listed: "0.0.0.0:22", "[::1]:2222", "/run/ssh-unix-local/socket", "@name", "vsock:any:22" */
        /* probe outcome */
        bool ssh;        /* answered with "SSH-" */
        bool probed;     /* reached: connected, or refused as nothing listens any more ("ssh" is then
                              * meaningful); false: could not be checked (no socket of that family here,
                              * EACCES/EPERM, no vsock loopback transport, still connecting at the timeout) */
        char banner[64]; /* the first line it sent, control characters replaced by '?' */
} Listener;

typedef struct ListenerList {
        Listener *items;
        size_t n;
        bool vsock_checked; /* false: the kernel has no vsock_diag (or refused the query) */
} ListenerList;

void listener_list_done(ListenerList *l);

/* Appends the listening sockets of one /proc/net/tcp (family AF_INET) or tcp6 (AF_INET6) text. Lines that
 * do not parse are skipped; duplicates (SO_REUSEPORT groups, the same address in several lines) are kept
 * once. Returns 0 or -ENOMEM. */
int listeners_parse_tcp(const char *text, size_t len, int family, ListenerList *l);

/* Appends the listening AF_UNIX stream sockets of a /proc/net/unix text whose path is under /run/ or that
 * are abstract ('@'). Returns 0 or -ENOMEM. */
int listeners_parse_unix(const char *text, size_t len, ListenerList *l);

/* Appends the listening AF_VSOCK stream sockets of one sock_diag answer (netlink messages with struct
 * vsock_diag_msg, linux/vm_sockets_diag.h). Returns 1 at NLMSG_DONE, 0 when more messages follow,
 * -EOPNOTSUPP for an NLMSG_ERROR (no vsock_diag), -ENOMEM. */
int listeners_parse_vsock_diag(const void *buf, size_t len, ListenerList *l);

/* Reads proc_net_dir's tcp, tcp6 and unix files (missing files are fine: no such family) and asks
 * sock_diag for AF_VSOCK listeners. Returns -ENOENT if proc_net_dir has none of the files (no /proc: an
 * offline image tree), 0 otherwise. */
int listeners_read(const char *proc_net_dir, ListenerList *ret);

/* Connects to every listener in parallel (non-blocking) and waits at most timeout_usec in all for each to
 * send its first bytes; sets ssh/probed/banner. Returns the number that answered as sshd, or -errno. */
int listeners_probe(ListenerList *l, uint64_t timeout_usec);

/* The first listener that answered as sshd, or NULL. */
const Listener *listeners_first_ssh(const ListenerList *l);
size_t listeners_count_ssh(const ListenerList *l);
