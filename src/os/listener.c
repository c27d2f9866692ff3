#include "listener.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cidr.h"
#include "log.h"
#include "util.h"

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

int listener_peer_kind(int fd, const struct sockaddr_storage *peer)
{
    if (peer->ss_family != AF_INET && peer->ss_family != AF_INET6)
        return PEER_UNIX;
    if (cidr_is_loopback((const struct sockaddr *)peer))
        return PEER_TCP_LOCAL;
    /* Not loopback: local all the same when it is our own address (nginx on
     * this host connecting to the host's LAN address). */
    struct sockaddr_storage self;
    socklen_t len = sizeof self;
    if (getsockname(fd, (struct sockaddr *)&self, &len) == 0 && same_ip(&self, peer))
        return PEER_TCP_LOCAL;
    return PEER_TCP;
}

/* Is a server answering on this unix socket path? */
static int unix_path_live(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int live = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0;
    close(fd);
    return live;
}

int listener_set_perm(const nw_listener *l, const nw_sockperm *perm)
{
    if (!l->unix_path)
        return 0;
    if ((perm->uid != (uid_t)-1 || perm->gid != (gid_t)-1) &&
        chown(l->unix_path, perm->uid, perm->gid) < 0) {
        log_error("cannot chown %s: %s", l->unix_path, strerror(errno));
        return -1;
    }
    if (chmod(l->unix_path, perm->mode) < 0) {
        log_error("cannot chmod %s: %s", l->unix_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Binds fd to sun, the file made with perm's owner bits alone: until
 * listener_set_perm, no one but narwhal's own user (or root) may connect,
 * so the socket is never more open than perm. The master is one thread:
 * the umask is changed and put back around the bind. */
static int bind_unix(int fd, const struct sockaddr_un *sun, const nw_sockperm *perm)
{
    mode_t old = perm ? umask(0777 & ~(perm->mode & 0700)) : 0;
    int rc = bind(fd, (const struct sockaddr *)sun, sizeof *sun);
    if (perm)
        umask(old);
    return rc;
}

static int open_unix(nw_listener *l, const char *path, int backlog, const nw_sockperm *perm)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) {
        log_error("cannot bind %s: path too long (at most %zu bytes)", l->addr,
                  sizeof sun.sun_path - 1);
        return -1;
    }
    strcpy(sun.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_error("cannot bind %s: %s exists and is not a socket", l->addr, path);
            return -1;
        }
        if (unix_path_live(&sun)) {
            log_error("cannot bind %s: address in use (a server answers on %s)", l->addr, path);
            return -1;
        }
        if (unlink(path) < 0) {
            log_error("cannot remove stale socket %s: %s", path, strerror(errno));
            return -1;
        }
        log_info("removed stale socket %s", path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("cannot create socket for %s: %s", l->addr, strerror(errno));
        return -1;
    }
    if (bind_unix(fd, &sun, perm) < 0) {
        log_error("cannot bind %s: %s", l->addr, strerror(errno));
        close(fd);
        return -1;
    }
    l->fd = fd;
    l->unix_path = nw_xstrdup(path);
    if (perm && listener_set_perm(l, perm) < 0)
        goto fail;
    if (listen(fd, backlog) < 0) {
        log_error("cannot listen on %s: %s", l->addr, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    close(fd);
    unlink(path);
    free(l->unix_path);
    l->unix_path = NULL;
    l->fd = -1;
    return -1;
}

struct addrinfo *listener_resolve(const char *addr, int socktype, int passive, const char **why)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1]) {
        *why = "expected HOST:PORT, [IPV6]:PORT or unix:PATH";
        return NULL;
    }
    size_t hlen = (size_t)(colon - addr);
    const char *h = addr;
    if (addr[0] == '[' && hlen >= 2 && colon[-1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof host) {
        *why = "host name too long";
        return NULL;
    }
    memcpy(host, h, hlen);
    host[hlen] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = socktype,
                             .ai_flags = (passive ? AI_PASSIVE : 0) | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        *why = gai_strerror(rc);
        return NULL;
    }
    return res;
}

static int open_tcp(nw_listener *l, const char *addr, int backlog)
{
    const char *why = NULL;
    struct addrinfo *res = listener_resolve(addr, SOCK_STREAM, 1, &why);
    if (!res) {
        log_error("cannot bind %s: %s", addr, why);
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        /* Wake a worker only once the front end has sent its request: saves
         * an empty read and a trip through the event loop per connection. */
        int secs = 5;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        log_error("cannot bind %s: %s", addr, strerror(err));
        return -1;
    }
    l->fd = fd;
    return 0;
}

int listener_open(nw_listener *l, const char *addr, int backlog, const nw_sockperm *perm)
{
    l->fd = -1;
    l->unix_path = NULL;
    l->systemd = 0;
    l->addr = nw_xstrdup(addr);
    int rc = strncmp(addr, "unix:", 5) == 0 ? open_unix(l, addr + 5, backlog, perm)
                                            : open_tcp(l, addr, backlog);
    if (rc < 0) {
        free(l->addr);
        l->addr = NULL;
    }
    return rc;
}

void listener_close(nw_listener *l, int unlink_path)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (unlink_path && l->unix_path)
        unlink(l->unix_path);
    free(l->unix_path);
    free(l->addr);
    l->unix_path = l->addr = NULL;
}

/* May fd, handed over as fds[0..n) were, be taken as a listening socket?
 * Only a socket that listens, and only once: anything else (the error log,
 * a fd named twice) stays as it is, unclosed. */
static int takeable(int fd, const int *fds, int n, const char *from)
{
    struct stat st;
    int acc = 0;
    socklen_t len = sizeof acc;
    for (int i = 0; i < n; i++)
        if (fds[i] == fd) {
            log_warning("%s names fd %d twice; taking it once", from, fd);
            return 0;
        }
    if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
        log_warning("%s: fd %d is not a listening socket; leaving it alone", from, fd);
        return 0;
    }
    return 1;
}

/* The fds listener_inherited took from LISTEN_FDS, for listener_adopt. */
static int systemd_fds[64];
static int nsystemd;

int listener_inherited(int *fds, int max, pid_t narwhal_parent)
{
    int n = 0;
    const char *nfd = getenv("NARWHAL_FD");
    if (nfd && !narwhal_parent)
        log_warning("NARWHAL_FD is set but NARWHAL_PARENT does not name this process's parent; "
                    "ignoring it");
    if (nfd && narwhal_parent) {
        char *copy = nw_xstrdup(nfd);
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && n < max;
             t = strtok_r(NULL, ",", &save)) {
            char *end;
            long fd = strtol(t, &end, 10);
            if (*end || fd < 0 || fd > 65535)
                continue;
            if (takeable((int)fd, fds, n, "NARWHAL_FD"))
                fds[n++] = (int)fd;
        }
        free(copy);
    }
    unsetenv("NARWHAL_FD");
    const char *lpid = getenv("LISTEN_PID"), *lfds = getenv("LISTEN_FDS");
    if (lpid && lfds && strtol(lpid, NULL, 10) == (long)getpid()) {
        long k = strtol(lfds, NULL, 10);
        /* no more than the caller takes: each fd that is not a listening
         * socket is a log line */
        for (long i = 0; i < k && i < max && n < max; i++)
            if (takeable(3 + (int)i, fds, n, "LISTEN_FDS")) {
                fds[n++] = 3 + (int)i; /* SD_LISTEN_FDS_START */
                if (nsystemd < (int)(sizeof systemd_fds / sizeof *systemd_fds))
                    systemd_fds[nsystemd++] = 3 + (int)i;
            }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    for (int i = 0; i < n; i++) {
        nw_set_cloexec(fds[i], 1);
        nw_set_nonblock(fds[i]);
    }
    return n;
}

/* Does the socket fd listen on addr? */
static int bound_to(int fd, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (strncmp(addr, "unix:", 5) == 0) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
        return ss.ss_family == AF_UNIX && strcmp(sun->sun_path, addr + 5) == 0;
    }
    const char *why;
    struct addrinfo *res = listener_resolve(addr, SOCK_STREAM, 1, &why);
    if (!res)
        return 0;
    int match = 0;
    for (struct addrinfo *ai = res; ai && !match; ai = ai->ai_next) {
        if (ai->ai_family != ss.ss_family)
            continue;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *x = (const void *)&ss, *y = (const void *)ai->ai_addr;
            match = x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *x = (const void *)&ss, *y = (const void *)ai->ai_addr;
            match = x->sin6_port == y->sin6_port &&
                    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
        }
    }
    freeaddrinfo(res);
    return match;
}

int listener_adopt(nw_listener *l, const char *addr, int backlog, int *fds, int n,
                   const nw_sockperm *perm)
{
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0 || !bound_to(fds[i], addr))
            continue;
        /* listen(2) again only resizes the queue: nothing waiting is lost. */
        if (listen(fds[i], backlog) < 0)
            log_warning("cannot apply backlog %d to the inherited %s: %s", backlog, addr,
                        strerror(errno));
        l->fd = fds[i];
        l->addr = nw_xstrdup(addr);
        l->unix_path = strncmp(addr, "unix:", 5) == 0 ? nw_xstrdup(addr + 5) : NULL;
        l->systemd = 0;
        for (int k = 0; k < nsystemd; k++)
            l->systemd |= systemd_fds[k] == fds[i];
        fds[i] = -1;
        /* systemd makes its sockets 0666 unless told otherwise: narwhal's
         * settings hold whoever bound the socket (a failure is logged; the
         * socket still serves, as it did before narwhal took it). */
        if (perm)
            listener_set_perm(l, perm);
        return 0;
    }
    return -1;
}

/* ---- the accept queue ------------------------------------------------------------- */

/* A unix listener's accept queue, from sock_diag (what `ss -xl` shows):
 * one request for the socket's inode with UDIAG_SHOW_RQLEN, whose answer
 * has the queue length (udiag_rqueue) and the backlog (udiag_wqueue). The
 * kernel answers within send(), so the read does not wait. -1/-1 when it
 * cannot tell (no sock_diag, a seccomp filter). */
static void unix_queue(int fd, int *queue, int *backlog)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return;
    struct {
        struct nlmsghdr h;
        struct unix_diag_req r;
    } req = {.h = {.nlmsg_len = sizeof req,
                   .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                   .nlmsg_flags = NLM_F_REQUEST},
             .r = {.sdiag_family = AF_UNIX,
                   .udiag_states = ~0u,
                   .udiag_ino = (unsigned)st.st_ino,
                   .udiag_show = UDIAG_SHOW_RQLEN,
                   .udiag_cookie = {~0u, ~0u}}};
    union {
        struct nlmsghdr h;
        char b[1024];
    } ans;
    ssize_t n = -1;
    if (send(nl, &req, sizeof req, 0) == (ssize_t)sizeof req)
        n = recv(nl, &ans, sizeof ans, MSG_DONTWAIT);
    close(nl);
    if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct unix_diag_msg)) || !NLMSG_OK(&ans.h, (size_t)n) ||
        ans.h.nlmsg_type != SOCK_DIAG_BY_FAMILY)
        return;
    struct unix_diag_msg *m = NLMSG_DATA(&ans.h);
    if (m->udiag_ino != (unsigned)st.st_ino)
        return;
    int len = (int)ans.h.nlmsg_len - (int)NLMSG_LENGTH(sizeof *m);
    for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == UNIX_DIAG_RQLEN && RTA_PAYLOAD(a) >= sizeof(struct unix_diag_rqlen)) {
            struct unix_diag_rqlen *r = RTA_DATA(a);
            *queue = (int)r->udiag_rqueue;
            *backlog = (int)r->udiag_wqueue;
        }
    }
}

/* TCP from TCP_INFO: for a listening socket Linux reports the queue
 * length in tcpi_unacked and the backlog in tcpi_sacked (what `ss -l`
 * shows as Recv-Q and Send-Q); unix sockets have no such option, so
 * sock_diag. */
void listener_queue(const nw_listener *l, int *queue, int *backlog)
{
    *queue = *backlog = -1;
    int domain = 0;
    socklen_t dlen = sizeof domain;
    if (l->fd < 0 || getsockopt(l->fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) < 0)
        return;
    if (domain == AF_UNIX) {
        unix_queue(l->fd, queue, backlog);
        return;
    }
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_LISTEN) {
        *queue = (int)ti.tcpi_unacked;
        *backlog = (int)ti.tcpi_sacked;
    }
}
