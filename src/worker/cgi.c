/* cgi.c - the CGI gateway (cgi.h): for one request, which program (its
 * checks in cgi_path.c), its environment, its pipes pumped through one epoll
 * fd (the process itself in cgi_proc.c), its header block (cgi_head.c)
 * made the response, and its end. */
#include "cgi.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cgi_head.h"
#include "cgi_path.h"
#include "cgi_proc.h"
#include "log.h"
#include "request.h"
#include "scoreboard.h"
#include "stream.h"
#include "util.h"

/* Bytes moved per read or write of a pipe. */
#define CGI_CHUNK 65536

typedef struct cgi_run {
    nw_request *req;
    const char *prog;     /* what runs: a resolved path */
    cgi_proc p;           /* its process and pipes */
    int ep;               /* the epoll fd its pipes are waited on with */
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
    int bad; /* its response was bad: a 502 went */
} cgi_run;

static const nw_settings *cfg;
static char *program; /* --cgi, resolved */
static char **roots;  /* --cgi-root, resolved */
static size_t nroots;
static int max_running;

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
    return cgi_proc_running();
}

static nw_slot *sb_slot;

void cgi_set_slot(nw_slot *slot)
{
    sb_slot = slot;
}

/* The scoreboard's count of running programs, after a start or a reap. */
static void publish_running(void)
{
    if (sb_slot)
        __atomic_store_n(&sb_slot->cgi_running, cgi_proc_running(), __ATOMIC_RELAXED);
}

void cgi_kill_all(void)
{
    cgi_proc_kill_all("the graceful stop is out of time");
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

/* Reads of one pipe per round of pump(): a program that never stops
 * writing must not keep the handler from its deadline or, under async, the
 * worker from its other requests. */
#define CGI_READS_PER_ROUND 16

/* 1 when it read something, 0 when it would block (or is over). */
static int pump_err(cgi_run *c)
{
    char *buf = c->errbuf;
    int moved = 0;
    for (int k = 0; k < CGI_READS_PER_ROUND; k++) {
        ssize_t n = read(c->p.err, buf, sizeof c->errbuf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return moved;
        if (n <= 0) {
            if (c->errlen)
                err_line_end(c);
            nw_close_fd(&c->p.err);
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
    return moved;
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
    cgi_proc_kill(&c->p);
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
    for (int k = 0; k < CGI_READS_PER_ROUND; k++) {
        ssize_t n = read(c->p.out, c->outbuf, CGI_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return moved;
        if (n <= 0) {
            nw_close_fd(&c->p.out);
            if (!c->in_body && !cgi_proc_killed(&c->p))
                return c->head.len ? bad_gateway(c, "its output ended inside its header block")
                                   : bad_gateway(c, "it printed no header block");
            return 1;
        }
        if (take_out(c, c->outbuf, (size_t)n) < 0)
            return -1;
        moved = 1;
    }
    return moved;
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
        ssize_t w = write(c->p.in, c->inbuf + c->inoff, c->inlen);
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
            epoll_ctl(c->ep, EPOLL_CTL_DEL, c->p.in, NULL);
        c->in_armed = 0;
        nw_close_fd(&c->p.in);
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
    ev.data.fd = c->p.out;
    epoll_ctl(c->ep, EPOLL_CTL_ADD, c->p.out, &ev);
    ev.data.fd = c->p.err;
    epoll_ctl(c->ep, EPOLL_CTL_ADD, c->p.err, &ev);
    while (c->p.out >= 0 || c->p.err >= 0) {
        int moved = 0, r;
        if (c->p.out >= 0) {
            if ((r = pump_out(c)) < 0)
                return -1;
            moved |= r;
        }
        if (c->p.err >= 0)
            moved |= pump_err(c);
        if (c->p.in >= 0) {
            if ((r = feed_in(c)) < 0)
                return -1;
            moved |= r;
        }
        /* a round that moved goes on, after a turn for the others (async)
         * and a look at the deadline (a program that never pauses) */
        if (moved) {
            if (nw_sleep(c->req, 0) < 0)
                return -1;
            continue;
        }
        /* stdin is waited on only while a write to it would block */
        if (c->p.in >= 0 && c->inlen && !c->in_armed) {
            struct epoll_event wev = {.events = EPOLLOUT, .data.fd = c->p.in};
            epoll_ctl(c->ep, EPOLL_CTL_ADD, c->p.in, &wev);
            c->in_armed = 1;
        }
        if (!c->conn_armed && c->req->body_done) {
            struct epoll_event cev = {.events = EPOLLIN, .data.fd = c->req->st->fd};
            c->conn_armed = epoll_ctl(c->ep, EPOLL_CTL_ADD, c->req->st->fd, &cev) == 0;
        }
        if (nw_wait_fd(c->req, c->ep, NW_READ, -1) < 0 || client_gone(c))
            return -1;
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
    if (cgi_proc_turn(&c->p, max_running))
        return 0;
    if (sb_slot) /* waiting: the status page counts it */
        __atomic_add_fetch(&sb_slot->cgi_waiting, 1, __ATOMIC_RELAXED);
    /* looks again in 5 ms, then less often, up to 100 ms: a thousand
     * waiters under async would otherwise wake the worker 200,000 times a
     * second */
    int rc = 0;
    for (int ms = 5; !cgi_proc_turn(&c->p, max_running); ms = ms < 100 ? ms * 2 : 100)
        if (nw_sleep(req, ms) < 0) {
            rc = -1;
            break;
        }
    if (sb_slot)
        __atomic_sub_fetch(&sb_slot->cgi_waiting, 1, __ATOMIC_RELAXED);
    return rc;
}

int cgi_handle(nw_request *req)
{
    cgi_run *c = nw_xcalloc(1, sizeof *c);
    c->req = req;
    c->ep = -1;
    cgi_proc_init(&c->p, NULL); /* nothing to close yet */
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
    c->p.prog = c->prog;
    if (take_turn(req, c) < 0)
        goto out; /* past the deadline: a 504 */
    env_build(req, &env);
    int e = 0;
    c->ep = epoll_create1(EPOLL_CLOEXEC);
    e = c->ep < 0 ? errno : cgi_proc_start(&c->p, env.v);
    publish_running();
    if (c->ep < 0 || e != 0) {
        cgi_log(req, NW_LOG_ERROR, "cannot run %s: %s; answering 502", c->prog, strerror(e));
        answer(req, 502, "Bad Gateway");
        goto out;
    }
    c->inbuf = nw_xmalloc(CGI_CHUNK);
    c->outbuf = nw_xmalloc(CGI_CHUNK);
    int pumped = pump(c);
    nw_close_fd(&c->p.in);
    nw_close_fd(&c->p.out);
    nw_close_fd(&c->p.err);
    if (pumped == 0 && cgi_proc_killed(&c->p) && !c->bad && !c->in_body) {
        /* killed from outside its request (a graceful stop out of time)
         * before its header block */
        cgi_log(req, NW_LOG_ERROR,
                "%s (pid %d) was killed before its header block; "
                "answering 502",
                c->prog, (int)c->p.pid);
        answer(req, 502, "Bad Gateway");
    } else if (pumped == 0 && cgi_proc_killed(&c->p) && !c->bad) {
        pumped = -1; /* its response is cut short */
    }
    if (pumped < 0 && !c->bad) {
        /* the deadline, or the client gone: nothing more is wanted of it */
        int late = req->deadline_ms >= 0 && nw_now_ms() >= req->deadline_ms;
        if (!cgi_proc_killed(&c->p))
            cgi_log(req, late ? NW_LOG_ERROR : NW_LOG_INFO, "%s (pid %d): %s; killing its group",
                    c->prog, (int)c->p.pid,
                    late ? "past the request's timeout" : "the client is gone");
        cgi_proc_kill(&c->p);
        /* A response cut short must not look whole: the connection is
         * dropped without its end, so nginx and its client see it cut. */
        if (req->headers_sent && !req->failed) {
            req->failed = 1;
            req->st->broken = 1;
        }
    }
    int reap_late = 0;
    int64_t until = cgi_proc_killed(&c->p) ? nw_now_ms() + CGI_REAP_MS : req->deadline_ms;
    int st = cgi_proc_reap(&c->p, until, &reap_late);
    cgi_proc_done(&c->p); /* reaped: its pid is no longer one to kill */
    if (reap_late)
        cgi_log(req, NW_LOG_ERROR,
                "%s (pid %d) was still running past the request's timeout; killed its group",
                c->prog, (int)c->p.pid);
    if (c->err_dropped)
        cgi_log(req, NW_LOG_WARNING, "%s: %u more stderr lines not logged (at most %d a request)",
                c->prog, c->err_dropped, CGI_STDERR_LINES);
    if (WIFSIGNALED(st) && !cgi_proc_killed(&c->p))
        cgi_log(req, NW_LOG_WARNING, "%s (pid %d) was killed by signal %d", c->prog, (int)c->p.pid,
                WTERMSIG(st));
    else if (WIFEXITED(st) && WEXITSTATUS(st))
        log_info("cgi: %s (pid %d) exited with status %d", c->prog, (int)c->p.pid, WEXITSTATUS(st));
out:
    nw_close_fd(&c->ep);
    cgi_proc_done(&c->p);
    publish_running();
    env_free(&env);
    nw_buf_free(&c->head);
    free(c->inbuf);
    free(c->outbuf);
    free(script);
    free(c);
    return 0;
}
