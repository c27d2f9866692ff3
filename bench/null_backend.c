/* null_backend - the least work a FastCGI or uwsgi server can do behind
 * nginx: the ceiling that nginx leaves for a backend on this machine, for
 * bench/compare.sh's "x null" column.
 *
 *   cc -O2 -o null_backend bench/null_backend.c
 *   null_backend -p fastcgi -b 127.0.0.1:9000 -w 2
 *   null_backend -p uwsgi -b unix:/tmp/null.sock
 *
 * Options:
 *   -p, --protocol fastcgi|uwsgi   [fastcgi]
 *   -b, --bind HOST:PORT|[V6]:PORT|unix:PATH   (required)
 *   -w, --workers N                processes; N > 1 forks N children after
 *                                  the bind, all on the one listening socket [1]
 *   -l, --backlog N                listen(2) backlog [1024]
 *   -c, --close-mode reset|fin     how a connection ends, as narwhal's
 *                                  --close-mode: reset = FIN, then RST, for
 *                                  TCP peers on this host; fin = plain close [reset]
 *
 * Per process: one epoll loop, non-blocking accept4, and a read of what the
 * connection sent. Nothing is decoded: FastCGI records are walked by their
 * headers until the request's empty FCGI_STDIN record (only the
 * FCGI_KEEP_CONN bit of FCGI_BEGIN_REQUEST is looked at); a uwsgi request is
 * its 4-byte header plus the vars size that header gives. Then one canned
 * response goes out in one send(2), byte for byte what narwhal answers for
 * examples/hello.c:
 *
 *   FastCGI: FCGI_STDOUT "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n
 *            Hello, World!\n" (padded to 8 bytes), an empty FCGI_STDOUT and
 *            FCGI_END_REQUEST (FCGI_REQUEST_COMPLETE); the connection stays
 *            open when FCGI_KEEP_CONN asked for it, else it ends.
 *   uwsgi:   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, World!\n",
 *            then the connection ends.
 *
 * A connection ends the way narwhal ends one: the last response is sent
 * with MSG_MORE; for a TCP peer on this host (loopback or our own address)
 * under --close-mode reset, SO_LINGER {1, 0}, shutdown(SHUT_WR) and, when
 * nothing is left unsent, close(2) resets it; otherwise the plain close.
 *
 * Limits, on purpose: uwsgi requests are taken to have no body (nginx's
 * uwsgi_pass for a GET sends the header and the vars only); body bytes after
 * the vars are not read, and the connection is closed as soon as the answer
 * is sent. FastCGI bodies (FCGI_STDIN data) are skipped whole. Records for
 * request id 0 (management) and FCGI_ABORT_REQUEST are skipped unanswered.
 * Every request gets the same answer. SIGTERM or SIGINT stops it (the parent
 * stops its children and removes the unix socket). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define FCGI_HEAD "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"
#define UWSGI_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
#define BODY "Hello, World!\n"

#define FCGI_BEGIN_REQUEST 1
#define FCGI_END_REQUEST 3
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_KEEP_CONN 1

enum { P_FASTCGI, P_UWSGI };
enum { CLOSE_RESET, CLOSE_FIN };

struct conn {
    uint8_t used;
    uint8_t local;   /* TCP peer on this host: may end with a reset */
    uint8_t keep;    /* FCGI_KEEP_CONN of the last FCGI_BEGIN_REQUEST */
    uint8_t closing; /* the last response is staged: end after it */
    uint8_t watched; /* in the epoll set */
    uint8_t hlen;    /* record (or uwsgi) header bytes collected */
    uint8_t type;    /* FastCGI: the current record's type */
    uint8_t hdr[8];
    uint16_t clen; /* FastCGI: the current record's content length */
    uint32_t pos;  /* FastCGI: content + padding bytes of it consumed */
    uint32_t left; /* content + padding (FastCGI) or vars (uwsgi) bytes to come */
    char *out;     /* unsent response bytes, when send(2) took only part */
    size_t olen, ooff;
};

static int proto = P_FASTCGI, close_mode = CLOSE_RESET, listen_tcp;
static int lfd = -1, ep = -1;
static struct conn *conns;
static int nconns;
static volatile sig_atomic_t stop;
static uint8_t rbuf[65536];
static uint8_t fcgi_resp[128];
static size_t fcgi_resp_len, fcgi_end_off, fcgi_empty_off;
static const char uwsgi_resp[] = UWSGI_HEAD BODY;
/* Responses for one read, sent together. */
static uint8_t *stage;
static size_t stage_len, stage_cap;

static void die(const char *what)
{
    fprintf(stderr, "null_backend: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(FILE *f)
{
    fputs("usage: null_backend [-p fastcgi|uwsgi] -b HOST:PORT|unix:PATH [-w N] [-l BACKLOG]\n"
          "                    [-c reset|fin]\n",
          f);
}

static void put_header(uint8_t *h, int type, unsigned clen, unsigned pad)
{
    h[0] = 1;
    h[1] = (uint8_t)type;
    h[2] = 0;
    h[3] = 1; /* request id, patched per request */
    h[4] = (uint8_t)(clen >> 8);
    h[5] = (uint8_t)clen;
    h[6] = (uint8_t)pad;
    h[7] = 0;
}

/* The canned FastCGI answer, as narwhal's put_record lays it out: content
 * padded with zeros to a multiple of 8. */
static void build_fcgi_resp(void)
{
    static const char content[] = FCGI_HEAD BODY;
    unsigned clen = sizeof content - 1, pad = (8 - clen % 8) % 8;
    uint8_t *p = fcgi_resp;

    put_header(p, FCGI_STDOUT, clen, pad);
    memcpy(p + 8, content, clen);
    memset(p + 8 + clen, 0, pad);
    p += 8 + clen + pad;
    fcgi_empty_off = (size_t)(p - fcgi_resp);
    put_header(p, FCGI_STDOUT, 0, 0);
    p += 8;
    fcgi_end_off = (size_t)(p - fcgi_resp);
    put_header(p, FCGI_END_REQUEST, 8, 0);
    memset(p + 8, 0, 8); /* appStatus 0, FCGI_REQUEST_COMPLETE */
    p += 16;
    fcgi_resp_len = (size_t)(p - fcgi_resp);
}

static void stage_add(const void *data, size_t len)
{
    if (stage_len + len > stage_cap) {
        size_t cap = stage_cap ? stage_cap : 4096;
        while (cap < stage_len + len)
            cap *= 2;
        uint8_t *s = realloc(stage, cap);
        if (!s)
            die("realloc");
        stage = s;
        stage_cap = cap;
    }
    memcpy(stage + stage_len, data, len);
    stage_len += len;
}

static void fcgi_respond(uint16_t id)
{
    uint8_t *r;
    size_t at = stage_len;

    stage_add(fcgi_resp, fcgi_resp_len);
    r = stage + at;
    r[2] = r[fcgi_empty_off + 2] = r[fcgi_end_off + 2] = (uint8_t)(id >> 8);
    r[3] = r[fcgi_empty_off + 3] = r[fcgi_end_off + 3] = (uint8_t)id;
}

/* Moves header bytes from *p into c->hdr until it holds want of them: 1
 * once it does, 0 when the input ran out first. */
static int take_header(struct conn *c, size_t want, const uint8_t **p, size_t *n)
{
    size_t k = want - c->hlen;
    if (k > *n)
        k = *n;
    memcpy(c->hdr + c->hlen, *p, k);
    c->hlen += (uint8_t)k;
    *p += k;
    *n -= k;
    return c->hlen == want;
}

/* Walks the records in p[0..n): answers each request at its empty
 * FCGI_STDIN, decodes nothing else. */
static void fcgi_feed(struct conn *c, const uint8_t *p, size_t n)
{
    while (n && !c->closing) {
        if (c->hlen < 8) {
            if (!take_header(c, 8, &p, &n))
                break;
            c->type = c->hdr[1];
            c->clen = (uint16_t)(c->hdr[4] << 8 | c->hdr[5]);
            c->left = (uint32_t)c->clen + c->hdr[6];
            c->pos = 0;
            uint16_t id = (uint16_t)(c->hdr[2] << 8 | c->hdr[3]);
            if (c->type == FCGI_STDIN && c->clen == 0 && id != 0) {
                fcgi_respond(id);
                if (!c->keep)
                    c->closing = 1;
            }
            if (c->type == FCGI_BEGIN_REQUEST)
                c->keep = 0;
            if (!c->left)
                c->hlen = 0;
            continue;
        }
        size_t k = c->left < n ? c->left : n;
        if (c->type == FCGI_BEGIN_REQUEST && c->clen > 2 && c->pos <= 2 && 2 < c->pos + k)
            c->keep = (p[2 - c->pos] & FCGI_KEEP_CONN) != 0;
        c->pos += (uint32_t)k;
        c->left -= (uint32_t)k;
        p += k;
        n -= k;
        if (!c->left)
            c->hlen = 0;
    }
}

/* The 4-byte header gives the vars size; the request ends with the vars. */
static void uwsgi_feed(struct conn *c, const uint8_t *p, size_t n)
{
    while (n && !c->closing) {
        if (c->hlen < 4) {
            if (!take_header(c, 4, &p, &n))
                break;
            c->left = (uint32_t)(c->hdr[1] | c->hdr[2] << 8);
        } else {
            size_t k = c->left < n ? c->left : n;
            c->left -= (uint32_t)k;
            p += k;
            n -= k;
        }
        if (!c->left) {
            stage_add(uwsgi_resp, sizeof uwsgi_resp - 1);
            c->closing = 1;
        }
    }
}

static void watch(struct conn *c, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    c->watched = 1;
}

static void drop(struct conn *c, int fd)
{
    free(c->out);
    memset(c, 0, sizeof *c);
    close(fd); /* also leaves the epoll set */
}

/* After the last response: narwhal's conn_end, then close. */
static void end(struct conn *c, int fd)
{
    if (c->local && close_mode == CLOSE_RESET) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        int unsent = -1;
        if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0 &&
            !(shutdown(fd, SHUT_WR) == 0 && ioctl(fd, SIOCOUTQNSD, &unsent) == 0 && unsent == 0)) {
            lg.l_onoff = 0;
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
    }
    drop(c, fd);
}

/* Sends buf[0..len) (the connection's last bytes when closing); keeps what
 * did not go. 0: sent or kept, -1: the connection is gone. */
static int send_out(struct conn *c, int fd, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | (c->closing ? MSG_MORE : 0));
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            char *o = malloc(len);
            if (!o)
                die("malloc");
            memcpy(o, buf, len);
            c->out = o;
            c->olen = len;
            c->ooff = 0;
            watch(c, fd, EPOLLOUT);
            return 0;
        }
        drop(c, fd);
        return -1;
    }
    if (c->closing) {
        end(c, fd);
        return -1;
    }
    return 0;
}

static void on_writable(struct conn *c, int fd)
{
    while (c->ooff < c->olen) {
        ssize_t n = send(fd, c->out + c->ooff, c->olen - c->ooff,
                         MSG_NOSIGNAL | (c->closing ? MSG_MORE : 0));
        if (n > 0) {
            c->ooff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        drop(c, fd);
        return;
    }
    free(c->out);
    c->out = NULL;
    c->olen = c->ooff = 0;
    if (c->closing)
        end(c, fd);
    else
        watch(c, fd, EPOLLIN);
}

/* One read (the loop is level-triggered: more comes with the next event). */
static void on_readable(struct conn *c, int fd)
{
    ssize_t n;
    do
        n = read(fd, rbuf, sizeof rbuf);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!c->watched)
            watch(c, fd, EPOLLIN);
        return;
    }
    if (n <= 0) {
        drop(c, fd);
        return;
    }
    stage_len = 0;
    if (proto == P_FASTCGI)
        fcgi_feed(c, rbuf, (size_t)n);
    else
        uwsgi_feed(c, rbuf, (size_t)n);
    if (stage_len) {
        if (send_out(c, fd, stage, stage_len) < 0)
            return;
        if (c->out)
            return;
    }
    if (!c->watched)
        watch(c, fd, EPOLLIN);
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "null_backend: accept: %s\n", strerror(errno));
            return;
        }
        if (fd >= nconns) {
            close(fd);
            continue;
        }
        struct conn *c = &conns[fd];
        c->used = 1;
        /* compare.sh binds 127.0.0.1 only: every TCP peer is on this host
         * (narwhal checks, with listener_peer_kind). */
        c->local = listen_tcp;
        /* TCP_DEFER_ACCEPT: the request is usually there already. */
        on_readable(c, fd);
    }
}

static void loop(int nworkers)
{
    struct epoll_event evs[256];

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    /* Several processes on one socket: wake one of them, not all. */
    struct epoll_event lev = {.events = EPOLLIN | (nworkers > 1 ? EPOLLEXCLUSIVE : 0),
                              .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die("epoll_ctl");
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                on_accept();
                continue;
            }
            struct conn *c = &conns[fd];
            if (!c->used)
                continue;
            if (c->out)
                on_writable(c, fd);
            else
                on_readable(c, fd);
        }
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int open_listener(const char *addr, int backlog, char **unix_path)
{
    int fd;
    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        const char *path = addr + 5;
        struct stat st;
        if (!*path || strlen(path) >= sizeof sun.sun_path) {
            fprintf(stderr, "null_backend: bad unix socket path '%s'\n", path);
            exit(2);
        }
        strcpy(sun.sun_path, path);
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket");
        mode_t old = umask(0); /* as narwhal's default --umask 0 */
        if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
            die(addr);
        umask(old);
        *unix_path = strdup(path);
    } else {
        char host[256];
        const char *colon = strrchr(addr, ':');
        size_t hlen = colon ? (size_t)(colon - addr) : 0;
        const char *h = addr;
        if (!colon || !hlen || !colon[1] || hlen >= sizeof host) {
            fprintf(stderr, "null_backend: -b wants HOST:PORT, [V6]:PORT or unix:PATH\n");
            exit(2);
        }
        if (addr[0] == '[' && hlen >= 2 && colon[-1] == ']') {
            h++;
            hlen -= 2;
        }
        memcpy(host, h, hlen);
        host[hlen] = 0;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res;
        int rc = getaddrinfo(host, colon + 1, &hints, &res);
        if (rc) {
            fprintf(stderr, "null_backend: %s: %s\n", addr, gai_strerror(rc));
            exit(2);
        }
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket");
        int one = 1, secs = 5;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        /* As narwhal: wake only once the request has arrived. */
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs);
        if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
            die(addr);
        freeaddrinfo(res);
        listen_tcp = 1;
    }
    if (listen(fd, backlog) < 0)
        die("listen");
    return fd;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"protocol", required_argument, NULL, 'p'},
                                             {"bind", required_argument, NULL, 'b'},
                                             {"workers", required_argument, NULL, 'w'},
                                             {"backlog", required_argument, NULL, 'l'},
                                             {"close-mode", required_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *bind_addr = NULL;
    char *unix_path = NULL;
    int nworkers = 1, backlog = 1024, opt;

    while ((opt = getopt_long(argc, argv, "p:b:w:l:c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            if (strcmp(optarg, "fastcgi") == 0)
                proto = P_FASTCGI;
            else if (strcmp(optarg, "uwsgi") == 0)
                proto = P_UWSGI;
            else {
                fprintf(stderr, "null_backend: -p: fastcgi or uwsgi\n");
                return 2;
            }
            break;
        case 'b':
            bind_addr = optarg;
            break;
        case 'w':
            nworkers = atoi(optarg);
            break;
        case 'l':
            backlog = atoi(optarg);
            break;
        case 'c':
            if (strcmp(optarg, "reset") == 0)
                close_mode = CLOSE_RESET;
            else if (strcmp(optarg, "fin") == 0)
                close_mode = CLOSE_FIN;
            else {
                fprintf(stderr, "null_backend: -c: reset or fin\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!bind_addr || optind != argc || nworkers < 1 || nworkers > 256 || backlog < 1) {
        usage(stderr);
        return 2;
    }
    build_fcgi_resp();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        if (rl.rlim_cur < want) {
            rl.rlim_cur = want;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
        nconns = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
    } else {
        nconns = 1024;
    }
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns)
        die("calloc");

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: wakes epoll_wait */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lfd = open_listener(bind_addr, backlog, &unix_path);
    fprintf(stderr, "null_backend: %s on %s, %d process%s, close-mode %s\n",
            proto == P_FASTCGI ? "fastcgi" : "uwsgi", bind_addr, nworkers, nworkers > 1 ? "es" : "",
            close_mode == CLOSE_RESET ? "reset" : "fin");

    if (nworkers == 1) {
        loop(1);
    } else {
        pid_t *kids = calloc((size_t)nworkers, sizeof *kids);
        pid_t parent = getpid();
        int live = 0, rc = 0;
        if (!kids)
            die("calloc");
        for (int i = 0; i < nworkers; i++) {
            pid_t pid = fork();
            if (pid < 0)
                die("fork");
            if (pid == 0) {
                signal(SIGTERM, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent)
                    _exit(0);
                if (!stop)
                    loop(nworkers);
                _exit(0);
            }
            kids[i] = pid;
            live++;
        }
        int stopping = 0;
        while (live) {
            int st;
            pid_t pid = wait(&st);
            if (pid < 0) {
                if (errno != EINTR)
                    break;
            } else {
                live--;
                for (int i = 0; i < nworkers; i++)
                    if (kids[i] == pid)
                        kids[i] = 0;
                if (!stop && !stopping) {
                    fprintf(stderr, "null_backend: worker %d ended (status %d); stopping\n",
                            (int)pid, st);
                    rc = 1;
                    stop = 1;
                }
            }
            if (stop && !stopping) {
                stopping = 1;
                for (int i = 0; i < nworkers; i++)
                    if (kids[i])
                        kill(kids[i], SIGTERM);
            }
        }
        if (unix_path)
            unlink(unix_path);
        return rc;
    }
    if (unix_path)
        unlink(unix_path);
    return 0;
}
