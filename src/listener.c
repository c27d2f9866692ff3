#include "listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

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

static int open_unix(nw_listener *l, const char *path, int backlog)
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
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, backlog) < 0) {
        log_error("cannot bind %s: %s", l->addr, strerror(errno));
        close(fd);
        return -1;
    }
    l->fd = fd;
    l->unix_path = nw_xstrdup(path);
    return 0;
}

static int open_tcp(nw_listener *l, const char *addr, int backlog)
{
    char host[256];
    const char *port;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1]) {
        log_error("cannot bind %s: expected HOST:PORT, [IPV6]:PORT or unix:PATH", addr);
        return -1;
    }
    size_t hlen = (size_t)(colon - addr);
    const char *h = addr;
    if (addr[0] == '[' && colon[-1] == ']') {
        h = addr + 1;
        hlen -= 2;
    }
    if (hlen >= sizeof host) {
        log_error("cannot bind %s: host name too long", addr);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = 0;
    port = colon + 1;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        log_error("cannot bind %s: %s", addr, gai_strerror(rc));
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

int listener_open(nw_listener *l, const char *addr, int backlog)
{
    l->fd = -1;
    l->unix_path = NULL;
    l->addr = nw_xstrdup(addr);
    int rc = strncmp(addr, "unix:", 5) == 0 ? open_unix(l, addr + 5, backlog)
                                             : open_tcp(l, addr, backlog);
    if (rc < 0) {
        free(l->addr);
        l->addr = NULL;
    }
    return rc;
}

int listener_chown(const nw_listener *l, uid_t uid, gid_t gid)
{
    if (!l->unix_path)
        return 0;
    if (chown(l->unix_path, uid, gid) < 0) {
        log_error("cannot chown %s: %s", l->unix_path, strerror(errno));
        return -1;
    }
    return 0;
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
