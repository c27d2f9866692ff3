/* listener.h - the listening sockets, bound once by the master.
 *
 * Addresses: "HOST:PORT", "[IPV6]:PORT", "unix:PATH". Unix sockets: a path
 * where a live server answers is refused ("in use"); a stale socket file is
 * replaced; the file gets the owner, group and mode of an nw_sockperm. */
#ifndef NW_LISTENER_H
#define NW_LISTENER_H

#include <sys/socket.h>
#include <netdb.h>
#include <sys/types.h>

typedef struct nw_listener {
    int fd;          /* non-blocking, close-on-exec; -1 when closed */
    char *addr;      /* as configured, owned */
    char *unix_path; /* owned; NULL for TCP */
    int systemd;     /* adopted from systemd's LISTEN_FDS: systemd holds it too,
                        so a stop must not shut it down */
} nw_listener;

/* What a unix socket file is given: owner and group ((uid_t)-1 / (gid_t)-1
 * keep narwhal's) and mode (socket_owner, socket_group, socket_mode). */
typedef struct nw_sockperm {
    uid_t uid;
    gid_t gid;
    mode_t mode;
} nw_sockperm;

/* Binds and listens on addr. Logs the reason and returns -1 on failure
 * (`cannot bind 127.0.0.1:5000: Address already in use`). A unix socket is
 * never more open than perm says, at any moment: it is made with perm's
 * owner bits alone (the umask at bind), then given perm's owner and group,
 * then perm's mode, and only then listens. perm NULL: the mode the process
 * umask gives, owner unchanged. */
int listener_open(nw_listener *l, const char *addr, int backlog, const nw_sockperm *perm);

/* Resolves "HOST:PORT" or "[IPV6]:PORT" for a socket of socktype (passive:
 * to bind). The list (freeaddrinfo), or NULL with *why set (static or
 * gai_strerror's). */
struct addrinfo *listener_resolve(const char *addr, int socktype, int passive, const char **why);
/* Listening sockets handed over at start: by a narwhal master being
 * upgraded (USR2: NARWHAL_FD="3,4", taken only when narwhal_parent is
 * non-zero, i.e. NARWHAL_PARENT named this process's parent) or by systemd
 * socket activation (LISTEN_FDS with LISTEN_PID = this process). Takes only
 * fds that are listening sockets, each once; any other fd named is left
 * alone (not closed, not changed) with a warning. Fills fds (at most max),
 * returns how many, and clears those variables so children do not see
 * them. */
int listener_inherited(int *fds, int max, pid_t narwhal_parent);
/* If one of fds[0..n) is a socket bound to addr, takes it into l (applying
 * this configuration's backlog and, to a unix socket's file, perm unless
 * NULL: an upgraded master or systemd's socket keeps narwhal's owner and
 * mode; l->systemd set when listener_inherited took it from LISTEN_FDS),
 * sets that entry to -1 and returns 0; -1 when none matches. */
int listener_adopt(nw_listener *l, const char *addr, int backlog, int *fds, int n,
                   const nw_sockperm *perm);

/* What an accepted connection's peer is, from accept(2)'s address. */
enum { PEER_UNIX = 0, PEER_TCP, PEER_TCP_LOCAL };
/* PEER_TCP_LOCAL: a loopback address, or one of this host's own (same
 * address as our end), so the traffic never leaves the machine. */
int listener_peer_kind(int fd, const struct sockaddr_storage *peer);

/* Gives a unix socket's file perm's owner, group and mode (chown, then
 * chmod); nothing for TCP. 0, or -1 logged. */
int listener_set_perm(const nw_listener *l, const nw_sockperm *perm);
/* Closes the socket; unlinks a unix socket's path when unlink_path. */
void listener_close(nw_listener *l, int unlink_path);
/* Connections waiting in l's accept queue and the queue's size, what `ss
 * -l` shows: TCP_INFO for TCP, sock_diag for unix sockets; -1/-1 when the
 * kernel does not tell (a closed listener, no sock_diag, a seccomp
 * filter). A few syscalls, none of which waits. */
void listener_queue(const nw_listener *l, int *queue, int *backlog);

#endif
