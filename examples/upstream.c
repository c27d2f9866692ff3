/* upstream - talks to a local TCP service and waits on it with nw_wait_fd,
 * the way a handler waits on a database: under -k async the wait yields, so
 * one worker holds many such requests at once.
 *
 * GET /?port=N&msg=TEXT connects to 127.0.0.1:N, sends TEXT and a newline,
 * and answers with the first line the service sends back. */
#include <narwhal.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *arg(const char *q, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    for (const char *p = q; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            p += n + 1;
            size_t k = strcspn(p, "&");
            if (k >= len)
                k = len - 1;
            memcpy(out, p, k);
            out[k] = 0;
            return out;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return NULL;
}

static int fail(nw_request *req, int status, const char *why)
{
    nw_set_status(req, status);
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "%s\n", why);
    return 0;
}

int app(nw_request *req)
{
    char port[16], msg[256];
    const char *q = nw_param(req, "QUERY_STRING");
    if (!arg(q, "port", port, sizeof port))
        return fail(req, 400, "usage: /?port=N&msg=TEXT");
    if (!arg(q, "msg", msg, sizeof msg))
        strcpy(msg, "ping");

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS) {
        close(fd);
        return fail(req, 502, "cannot connect to the service");
    }
    /* Wait for the connection, send, wait for the answer: each wait yields
     * under -k async. */
    char line[512];
    size_t have = 0;
    int ok = nw_wait_fd(req, fd, NW_WRITE, 5000) > 0;
    if (ok) {
        size_t n = strlen(msg);
        msg[n++] = '\n';
        ok = send(fd, msg, n, MSG_NOSIGNAL) == (ssize_t)n;
    }
    while (ok && have < sizeof line - 1) {
        if (nw_wait_fd(req, fd, NW_READ, 5000) <= 0) {
            ok = 0;
            break;
        }
        ssize_t n = recv(fd, line + have, sizeof line - 1 - have, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        if (memchr(line, '\n', have))
            break;
    }
    close(fd);
    if (!ok)
        return fail(req, 504, "the service did not answer");
    line[have] = 0;
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "upstream said: %s", line);
    return 0;
}
