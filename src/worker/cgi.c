/* cgi.c - CGI programs run per request (cgi.h): which program, its
 * environment, its start, its pipes pumped through one epoll fd, its
 * response parsed, its end. */
#include "cgi.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cgi_head.h"
#include "cgi_path.h"
#include "log.h"
#include "request.h"
#include "stream.h"
#include "util.h"
#include "wait.h"

extern char **environ;

/* Bytes moved per read or write of a pipe. */
#define CGI_CHUNK 65536
/* How long a killed program gets to be reaped before the handler gives up
 * waiting in a yielding wait and blocks in waitpid. */
#define CGI_REAP_MS 5000

typedef struct cgi_run {
    nw_request *req;
    const char *prog; /* what runs: a resolved path */
    pid_t pid;
    int pidfd;            /* -1: none (an old kernel): reaping polls */
    int in, out, err, ep; /* our ends of its pipes, the epoll fd; -1 = closed */
    int in_armed;         /* in is in the epoll set (a write would block) */
    int conn_armed;       /* the connection is in the epoll set */
    char *inbuf, *outbuf; /* CGI_CHUNK each */
    size_t inoff, inlen;  /* body bytes read, not yet written to stdin */
    int body_eof;         /* nw_read said the body is over */
    int in_body;          /* its header block is over: stdout is body */
    int discard;          /* a local redirect: its body goes nowhere */
    nw_buf head;          /* its header block, until the blank line */
    size_t head_scan;     /* where to look for the blank line from */
    char errline[CGI_STDERR_LINE + 1];
    char errbuf[4096];
    size_t errlen;
    int errcut; /* the current stderr line was cut */
    unsigned err_lines, err_dropped;
    int killed;                  /* SIGKILL went to its group */
    int bad;                     /* its response was bad: a 502 went */
    int listed;                  /* in the running list (its group may be killed) */
    struct cgi_run *prev, *next; /* the worker's running programs */
} cgi_run;

static const nw_settings *cfg;
static char *program; /* --cgi, resolved */
static char **roots;  /* --cgi-root, resolved */
static size_t nroots;
static int max_running;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cgi_run *running_list;
static int nrunning;

/* ---- logging: narwhal's error log and the front end's, tagged -------------- */

static void cgi_log(nw_request *req, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cgi_log(nw_request *req, int level, const char *fmt, ...)
{
    nw_buf line = NW_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    nw_buf_vprintf(&line, fmt, ap);
    va_end(ap);
    const char *uri = req->uri ? req->uri : "-";
    log_msg(level, "cgi: %.*s [" REQ_URI_FMT "]", (int)line.len, (const char *)nw_buf_head(&line),
            uri);
    if (level >= NW_LOG_WARNING)
        request_log_to_peer(req, (const char *)nw_buf_head(&line), line.len);
    nw_buf_free(&line);
}

/* ---- setup ----------------------------------------------------------------- */

int cgi_setup(const nw_settings *s, char *err, size_t errlen)
{
    cfg = s;
    max_running = s->cgi_max_running;
    if (s->cgi) {
        program = realpath(s->cgi, NULL);
        if (!program || access(program, X_OK) < 0) {
            snprintf(err, errlen, "cgi: cannot run %s: %s", s->cgi, strerror(errno));
            return -1;
        }
    }
    roots = nw_xcalloc(s->cgi_root.n + 1, sizeof *roots);
    for (size_t i = 0; i < s->cgi_root.n; i++) {
        char *r = realpath(s->cgi_root.v[i], NULL);
        if (!r) {
            snprintf(err, errlen, "cgi_root: %s: %s", s->cgi_root.v[i], strerror(errno));
            return -1;
        }
        roots[nroots++] = r;
    }
    return 0;
}

int cgi_running(void)
{
    pthread_mutex_lock(&lock);
    int n = nrunning;
    pthread_mutex_unlock(&lock);
    return n;
}

void cgi_kill_all(void)
{
    pthread_mutex_lock(&lock);
    for (cgi_run *c = running_list; c; c = c->next)
        if (c->pid > 0 && !c->killed) { /* started, not yet reaped */
            log_warning("cgi: killing %s (pid %d) and its process group: the graceful stop is "
                        "out of time",
                        c->prog, (int)c->pid);
            kill(-c->pid, SIGKILL);
            c->killed = 1;
        }
    pthread_mutex_unlock(&lock);
}

/* ---- which program ---------------------------------------------------------- */

/* How long the param value v (a string in the request's params) really
 * is: a NUL inside it ends the string early, and the params keep lengths
 * only as the layout of their buffer ("name\0value\0" pairs in a row). */
static size_t param_len(const nw_request *req, const char *v)
{
    for (size_t i = 0; i < req->np; i++) {
        if (req->pv[2 * i + 1] != v)
            continue;
        const char *end = i + 1 < req->np ? req->pv[2 * (i + 1)]
                                          : (const char *)nw_buf_head(&req->pbuf) + req->pbuf.len;
        return (size_t)(end - v) - 1;
    }
    return strlen(v);
}

/* ---- its environment --------------------------------------------------------- */

typedef struct env_vec {
    char **v;
    size_t n, cap;
} env_vec;

static void env_add(env_vec *e, char *kv)
{
    if (e->n + 2 > e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->v = nw_xrealloc(e->v, e->cap * sizeof *e->v);
    }
    e->v[e->n++] = kv;
    e->v[e->n] = NULL;
}

static int env_has(const env_vec *e, const char *name, size_t n)
{
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->v[i], name, n) == 0 && e->v[i][n] == '=')
            return 1;
    return 0;
}

static void env_set(env_vec *e, const char *name, const char *value)
{
    char *kv;
    if (asprintf(&kv, "%s=%s", name, value) < 0)
        abort();
    env_add(e, kv);
}

typedef struct env_ctx {
    nw_request *req;
    env_vec *e;
} env_ctx;

/* One param into the environment: the last of a repeated name only (the
 * one nw_param returns), no name an environment cannot hold, and no
 * HTTP_PROXY (a client's "Proxy:" header: httpoxy, CVE-2016-5385). */
static int env_param(const char *name, const char *value, void *arg)
{
    env_ctx *x = arg;
    if (!*name || strchr(name, '=') || strcmp(name, "HTTP_PROXY") == 0)
        return 0;
    if (nw_param(x->req, name) != value)
        return 0;
    env_set(x->e, name, value);
    return 0;
}

/* RFC 3875's variables from the params (the front end's fastcgi_params
 * give them), GATEWAY_INTERFACE and PATH when they do not, then raw_env
 * (set last, so it wins). */
static void env_build(nw_request *req, env_vec *e)
{
    env_ctx x = {req, e};
    nw_param_each(req, env_param, &x);
    if (!env_has(e, "GATEWAY_INTERFACE", 17))
        env_set(e, "GATEWAY_INTERFACE", "CGI/1.1");
    if (!env_has(e, "PATH", 4)) {
        const char *path = getenv("PATH");
        env_set(e, "PATH", path ? path : "/usr/local/bin:/usr/bin:/bin");
    }
    for (size_t i = 0; i < cfg->raw_env.n; i++)
        env_add(e, nw_xstrdup(cfg->raw_env.v[i]));
}

static void env_free(env_vec *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

/* ---- its start and end ---------------------------------------------------------- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Starts c->prog with its pipes, in a process group of its own, in its own
 * directory, with a clean signal state and no fd of the worker's but 0-2.
 * 0, or an errno. */
static int spawn(cgi_run *c, char **envp)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    int rc = 0;
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        rc = errno;
        goto out;
    }
    char *dir = nw_xstrdup(c->prog);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    if (slash)
        posix_spawn_file_actions_addchdir_np(&fa, dir);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)c->prog, NULL};
    pid_t pid = -1;
    rc = posix_spawn(&pid, c->prog, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(dir);
    if (rc)
        goto out;
    pthread_mutex_lock(&lock); /* cgi_kill_all reads it */
    c->pid = pid;
    pthread_mutex_unlock(&lock);
    c->pidfd = pidfd_open(pid, 0);
    c->in = pin[1], pin[1] = -1;
    c->out = pout[0], pout[0] = -1;
    c->err = perr[0], perr[0] = -1;
    fcntl(c->in, F_SETFL, O_NONBLOCK);
    fcntl(c->out, F_SETFL, O_NONBLOCK);
    fcntl(c->err, F_SETFL, O_NONBLOCK);
out:
    for (int i = 0; i < 2; i++) {
        close_fd(&pin[i]);
        close_fd(&pout[i]);
        close_fd(&perr[i]);
    }
    return rc;
}

static void kill_group(cgi_run *c)
{
    pthread_mutex_lock(&lock);
    if (c->pid > 0 && !c->killed)
        kill(-c->pid, SIGKILL);
    c->killed = 1;
    pthread_mutex_unlock(&lock);
}

/* Waits for the program to exit, until deadline_ms (-1 = none); past it
 * its group is killed. Returns its wait status. */
static int reap(cgi_run *c, int64_t deadline_ms)
{
    int st = 0;
    for (;;) {
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid || (r < 0 && errno != EINTR))
            return st;
        if (r < 0)
            continue;
        if (deadline_ms >= 0 && nw_now_ms() >= deadline_ms) {
            if (!c->killed)
                cgi_log(c->req, NW_LOG_ERROR,
                        "%s (pid %d) still running past the request's timeout; killing its group",
                        c->prog, (int)c->pid);
            if (c->killed) { /* not gone within CGI_REAP_MS of SIGKILL: block */
                while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
                    ;
                return st;
            }
            kill_group(c);
            deadline_ms = nw_now_ms() + CGI_REAP_MS;
        }
        int64_t until = deadline_ms;
        if (c->pidfd < 0) { /* no pidfd: look again in 10 ms */
            int64_t soon = nw_now_ms() + 10;
            until = until < 0 || soon < until ? soon : until;
        }
        wait_fd(c->pidfd, NW_READ, until);
    }
}

/* ---- its stderr -------------------------------------------------------------- */

static void err_line_end(cgi_run *c)
{
    if (c->err_lines >= CGI_STDERR_LINES) {
        c->err_dropped++;
    } else {
        c->err_lines++;
        cgi_log(c->req, NW_LOG_WARNING, "%s: %.*s%s", c->prog, (int)c->errlen, c->errline,
                c->errcut ? " [cut]" : "");
    }
    c->errlen = 0;
    c->errcut = 0;
}

/* 1 when it read something, 0 when it would block (or is over). */
static int pump_err(cgi_run *c)
{
    char *buf = c->errbuf;
    int moved = 0;
    for (;;) {
        ssize_t n = read(c->err, buf, sizeof c->errbuf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return moved;
        if (n <= 0) {
            if (c->errlen)
                err_line_end(c);
            close_fd(&c->err);
            return 1;
        }
        moved = 1;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                err_line_end(c);
            } else if (c->errlen < CGI_STDERR_LINE) {
                c->errline[c->errlen++] = buf[i];
            } else {
                c->errcut = 1;
            }
        }
    }
}

/* ---- its stdout: the header block, then the body ------------------------------ */

/* A response the program got wrong: the client gets a 502 (if nothing has
 * gone yet), the program's group is killed. -1. */
static int bad_gateway(cgi_run *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad_gateway(cgi_run *c, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    cgi_log(c->req, NW_LOG_ERROR, "%s: %s; answering 502", c->prog, why);
    kill_group(c);
    c->bad = 1;
    nw_buf_reset(&c->req->headers); /* the fields it printed before the bad one */
    nw_set_status(c->req, 502);
    nw_add_header(c->req, "Content-Type", "text/plain");
    nw_write(c->req, "Bad Gateway\n", 12);
    return -1;
}

static int add_field(void *arg, const char *name, const char *value)
{
    return nw_add_header(arg, name, value);
}

/* The header block, c->head[0..end): its fields into the response, then
 * what a Location means (RFC 3875 6.2.2-6.2.4). 0, or -1 (answered 502). */
static int head_done(cgi_run *c, size_t end)
{
    cgi_head h;
    char why[256];
    if (cgi_head_parse((char *)nw_buf_head(&c->head), end, &h, add_field, c->req, why, sizeof why) <
        0)
        return bad_gateway(c, "%s", why);
    if (h.status) {
        nw_set_status(c->req, h.status);
    } else if (h.location && h.location[0] == '/') {
        /* A local redirect: the server answers as for that path. nginx
         * does, told through X-Accel-Redirect; the body is not sent. */
        nw_add_header(c->req, "X-Accel-Redirect", h.location);
        c->discard = 1;
    } else if (h.location) {
        nw_set_status(c->req, 302); /* a client redirect */
    }
    return 0;
}

/* Takes n bytes of stdout: 0, or -1 (the client is gone, or the program's
 * response was bad). */
static int take_out(cgi_run *c, const char *buf, size_t n)
{
    if (c->in_body)
        return c->discard || nw_write(c->req, buf, n) >= 0 ? 0 : -1;
    nw_buf_append(&c->head, buf, n);
    size_t len = c->head.len,
           end = cgi_head_end((const char *)nw_buf_head(&c->head), len, &c->head_scan);
    if (!end && len > CGI_HEADER_MAX)
        return bad_gateway(c, "no end of its header block in %d bytes", CGI_HEADER_MAX);
    if (!end)
        return 0;
    if (end > CGI_HEADER_MAX)
        return bad_gateway(c, "a header block longer than %d bytes", CGI_HEADER_MAX);
    if (head_done(c, end) < 0)
        return -1;
    c->in_body = 1;
    int rc = 0;
    if (len > end && !c->discard)
        rc = nw_write(c->req, (const char *)nw_buf_head(&c->head) + end, len - end) < 0 ? -1 : 0;
    nw_buf_free(&c->head);
    return rc;
}

/* 1 when it moved something, 0 when it would block; -1 to stop. */
static int pump_out(cgi_run *c)
{
    int moved = 0;
    for (;;) {
        ssize_t n = read(c->out, c->outbuf, CGI_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return moved;
        if (n <= 0) {
            close_fd(&c->out);
            if (!c->in_body && !c->killed)
                return c->head.len ? bad_gateway(c, "its output ended inside its header block")
                                   : bad_gateway(c, "it printed no header block");
            return 1;
        }
        if (take_out(c, c->outbuf, (size_t)n) < 0)
            return -1;
        moved = 1;
    }
}

/* ---- its stdin: the request body ---------------------------------------------- */

/* 1 when it moved something, 0 when it would block; -1 to stop (the
 * client is gone, or the deadline passed). */
static int feed_in(cgi_run *c)
{
    int moved = 0;
    if (!c->inlen && !c->body_eof) {
        ssize_t n = nw_read(c->req, c->inbuf, CGI_CHUNK);
        if (n < 0)
            return -1;
        if (n == 0)
            c->body_eof = 1;
        c->inoff = 0;
        c->inlen = (size_t)n;
        moved = 1;
    }
    while (c->inlen) {
        ssize_t w = write(c->in, c->inbuf + c->inoff, c->inlen);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return moved;
        if (w < 0) {
            /* EPIPE: it reads no more; what is left of the body is not
             * for it (the request drains it) */
            c->inlen = 0;
            c->body_eof = 1;
            break;
        }
        c->inoff += (size_t)w;
        c->inlen -= (size_t)w;
        moved = 1;
    }
    if (c->body_eof && !c->inlen) {
        if (c->in_armed)
            epoll_ctl(c->ep, EPOLL_CTL_DEL, c->in, NULL);
        c->in_armed = 0;
        close_fd(&c->in);
        return 1;
    }
    return moved;
}

/* ---- the client ------------------------------------------------------------------ */

/* Whether the front end gave up on the request (closed the connection, as
 * nginx does at its fastcgi_read_timeout or when its client goes, or sent
 * an ABORT) while the program runs. Looked at only once the whole body is
 * in: what comes after it is an abort or the end, never data to hold. */
static int client_gone(cgi_run *c)
{
    nw_request *req = c->req;
    if (req->failed || req->aborted)
        return 1;
    if (!c->conn_armed)
        return 0;
    ssize_t n = stream_read(req->st);
    if (n == -2)
        return 0;
    if (n > 0)
        return request_pump(req) < 0 || req->aborted;
    req->failed = 1; /* EOF or an error: nobody to answer */
    req->st->broken = 1;
    return 1;
}

/* Until its stdout and stderr are over: 0, or -1 (stop: the deadline, the
 * client gone, or a bad response, answered). */
static int pump(cgi_run *c)
{
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = c->out;
    epoll_ctl(c->ep, EPOLL_CTL_ADD, c->out, &ev);
    ev.data.fd = c->err;
    epoll_ctl(c->ep, EPOLL_CTL_ADD, c->err, &ev);
    while (c->out >= 0 || c->err >= 0) {
        int moved = 0, r;
        if (c->out >= 0) {
            if ((r = pump_out(c)) < 0)
                return -1;
            moved |= r;
        }
        if (c->err >= 0)
            moved |= pump_err(c);
        if (c->in >= 0) {
            if ((r = feed_in(c)) < 0)
                return -1;
            moved |= r;
        }
        if (moved)
            continue;
        /* stdin is waited on only while a write to it would block */
        if (c->in >= 0 && c->inlen && !c->in_armed) {
            struct epoll_event wev = {.events = EPOLLOUT, .data.fd = c->in};
            epoll_ctl(c->ep, EPOLL_CTL_ADD, c->in, &wev);
            c->in_armed = 1;
        }
        if (!c->conn_armed && c->req->body_done) {
            struct epoll_event cev = {.events = EPOLLIN, .data.fd = c->req->st->fd};
            c->conn_armed = epoll_ctl(c->ep, EPOLL_CTL_ADD, c->req->st->fd, &cev) == 0;
        }
        if (nw_wait_fd(c->req, c->ep, NW_READ, -1) < 0 || client_gone(c))
            return -1;
        if (c->in_armed) {
            epoll_ctl(c->ep, EPOLL_CTL_DEL, c->in, NULL);
            c->in_armed = 0;
        }
    }
    return 0;
}

/* ---- one request -------------------------------------------------------------- */

static void answer(nw_request *req, int status, const char *text)
{
    nw_set_status(req, status);
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "%s\n", text);
}

/* cgi_max_running: a turn to start a program, or -1 at the deadline. */
static int take_turn(nw_request *req, cgi_run *c)
{
    for (;;) {
        pthread_mutex_lock(&lock);
        if (!max_running || nrunning < max_running) {
            nrunning++;
            c->next = running_list;
            if (running_list)
                running_list->prev = c;
            running_list = c;
            c->listed = 1;
            pthread_mutex_unlock(&lock);
            return 0;
        }
        pthread_mutex_unlock(&lock);
        if (nw_sleep(req, 5) < 0)
            return -1;
    }
}

static void give_turn(cgi_run *c)
{
    if (!c->listed)
        return;
    pthread_mutex_lock(&lock);
    c->listed = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        running_list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nrunning--;
    pthread_mutex_unlock(&lock);
}

int cgi_handle(nw_request *req)
{
    cgi_run *c = nw_xcalloc(1, sizeof *c);
    c->req = req;
    c->pid = -1;
    c->pidfd = c->in = c->out = c->err = c->ep = -1;
    char *script = NULL;
    env_vec env = {0};
    if (!program) {
        char *why = nw_xmalloc(PATH_MAX + 64);
        const char *sf = nw_param(req, "SCRIPT_FILENAME");
        int status = cgi_path_check(sf, sf ? param_len(req, sf) : 0, roots, nroots, &script, why,
                                    PATH_MAX + 64);
        if (status) {
            cgi_log(req, NW_LOG_WARNING, "refused SCRIPT_FILENAME %.1024s with %d: %s",
                    sf ? sf : "-", status, why);
            answer(req, status, status == 404 ? "Not Found" : "Forbidden");
        }
        free(why);
        if (status)
            goto out;
    }
    c->prog = program ? program : script;
    if (take_turn(req, c) < 0)
        goto out; /* past the deadline: a 504 */
    env_build(req, &env);
    int e = 0;
    c->ep = epoll_create1(EPOLL_CLOEXEC);
    if (c->ep < 0 || (e = spawn(c, env.v)) != 0) {
        if (c->ep < 0)
            e = errno;
        cgi_log(req, NW_LOG_ERROR, "cannot run %s: %s; answering 502", c->prog, strerror(e));
        answer(req, 502, "Bad Gateway");
        goto out;
    }
    c->inbuf = nw_xmalloc(CGI_CHUNK);
    c->outbuf = nw_xmalloc(CGI_CHUNK);
    int pumped = pump(c);
    close_fd(&c->in);
    close_fd(&c->out);
    close_fd(&c->err);
    if (pumped == 0 && c->killed && !c->bad && !c->in_body) {
        /* killed from outside its request (a graceful stop out of time)
         * before its header block */
        cgi_log(req, NW_LOG_ERROR,
                "%s (pid %d) was killed before its header block; "
                "answering 502",
                c->prog, (int)c->pid);
        answer(req, 502, "Bad Gateway");
    } else if (pumped == 0 && c->killed && !c->bad) {
        pumped = -1; /* its response is cut short */
    }
    if (pumped < 0 && !c->bad) {
        /* the deadline, or the client gone: nothing more is wanted of it */
        int late = req->deadline_ms >= 0 && nw_now_ms() >= req->deadline_ms;
        if (!c->killed)
            cgi_log(req, late ? NW_LOG_ERROR : NW_LOG_INFO, "%s (pid %d): %s; killing its group",
                    c->prog, (int)c->pid,
                    late ? "past the request's timeout" : "the client is gone");
        kill_group(c);
        /* A response cut short must not look whole: the connection is
         * dropped without its end, so nginx and its client see it cut. */
        if (req->headers_sent && !req->failed) {
            req->failed = 1;
            req->st->broken = 1;
        }
    }
    int st = reap(c, c->killed ? nw_now_ms() + CGI_REAP_MS : req->deadline_ms);
    give_turn(c); /* reaped: its pid is no longer one to kill */
    if (c->err_dropped)
        cgi_log(req, NW_LOG_WARNING, "%s: %u more stderr lines not logged (at most %d a request)",
                c->prog, c->err_dropped, CGI_STDERR_LINES);
    if (WIFSIGNALED(st) && !c->killed)
        cgi_log(req, NW_LOG_WARNING, "%s (pid %d) was killed by signal %d", c->prog, (int)c->pid,
                WTERMSIG(st));
    else if (WIFEXITED(st) && WEXITSTATUS(st))
        log_info("cgi: %s (pid %d) exited with status %d", c->prog, (int)c->pid, WEXITSTATUS(st));
out:
    close_fd(&c->pidfd);
    close_fd(&c->ep);
    give_turn(c);
    env_free(&env);
    nw_buf_free(&c->head);
    free(c->inbuf);
    free(c->outbuf);
    free(script);
    free(c);
    return 0;
}
