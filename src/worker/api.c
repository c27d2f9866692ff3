/* api.c - the app API of <narwhal.h>: exactly the symbols of
 * src/narwhal.sym. Each function checks its arguments against the
 * header's contract and leaves the work to the request (request.h), its
 * stream (stream.h) and the wait primitive (wait.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "coro.h"
#include "log.h"
#include "narwhal.h"
#include "request.h"
#include "scoreboard.h"
#include "util.h"
#include "wait.h"

/* A request's calls belong to the thread its handler runs on: its buffers
 * are that thread's, unlocked. A call from a thread the app made is refused
 * (logged once per request) instead of racing the handler's own calls. */
static int foreign(const nw_request *req, const char *fn)
{
    if (!req->owner_set || pthread_equal(req->owner, pthread_self()))
        return 0;
    nw_request *r = (nw_request *)req;
    if (!__atomic_exchange_n(&r->foreign_warned, 1, __ATOMIC_RELAXED))
        log_error("%s called from a thread that is not the request's handler's; refused (a "
                  "request's calls belong to its handler's thread; nw_log(NULL, ...) works from "
                  "any)",
                  fn);
    return 1;
}

/* ---- request side ----------------------------------------------------------- */

const char *nw_param(const nw_request *req, const char *name)
{
    if (!req || !name || foreign(req, "nw_param"))
        return NULL;
    return request_param(req, name);
}

int nw_param_each(const nw_request *req, int (*fn)(const char *name, const char *value, void *arg),
                  void *arg)
{
    if (!req || !fn || foreign(req, "nw_param_each"))
        return -1;
    for (size_t i = 0; i < req->np; i++) {
        int rc = fn(req->pv[2 * i], req->pv[2 * i + 1], arg);
        if (rc)
            return rc;
    }
    return 0;
}

ssize_t nw_read(nw_request *req, void *buf, size_t len)
{
    if (!req || (!buf && len) || foreign(req, "nw_read"))
        return -1;
    for (;;) {
        if (req->failed || req->aborted)
            return -1;
        if (req->body.len) {
            size_t n = req->body.len < len ? req->body.len : len;
            memcpy(buf, nw_buf_head(&req->body), n);
            nw_buf_consume(&req->body, n);
            return (ssize_t)n;
        }
        if (req->body_done || len == 0)
            return 0;
        int pumped = request_pump(req);
        if (pumped < 0)
            return -1;
        if (pumped)
            continue;
        request_flush_before_wait(req);
        ssize_t n = stream_fill_wait(req->st, req->deadline_ms);
        if (n <= 0) {
            log_info("request %u: %s while reading the body", req->id,
                     n == 0 ? "peer closed the connection" : "read failed");
            req->failed = 1;
            req->st->broken = 1;
            return -1;
        }
    }
}

/* ---- response side ---------------------------------------------------------- */

int nw_set_status(nw_request *req, int status)
{
    /* A final status only: nginx hands a 1xx from the head to its client as
     * if it were the response (and the client then waits for the real one),
     * and 600 and above are not HTTP. */
    if (!req || foreign(req, "nw_set_status") || req->headers_sent || status < 200 || status > 599)
        return -1;
    req->status = status;
    return 0;
}

/* RFC 9110 5.6.2: a field name is a token, 1*tchar. */
static int header_name_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int alnum =
            (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
        if (!alnum && !strchr("!#$%&'*+-.^_`|~", ch))
            return 0;
    }
    return 1;
}

/* RFC 9110 5.5: a field value is visible ASCII, obs-text (0x80-0xff), space
 * and tab. Any other control byte is refused, not only CR and LF: a BEL, an
 * ESC or a DEL would reach the client as it is. */
static int header_value_ok(const char *s)
{
    if (!s)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

int nw_add_header(nw_request *req, const char *name, const char *value)
{
    if (!req || foreign(req, "nw_add_header") || req->headers_sent || !header_name_ok(name) ||
        !header_value_ok(value))
        return -1;
    /* "Status" would fight nw_set_status over the status line. */
    if (strcasecmp(name, "Status") == 0)
        return -1;
    request_add_header(req, name, value);
    return 0;
}

ssize_t nw_write(nw_request *req, const void *buf, size_t len)
{
    if (!req || (!buf && len) || foreign(req, "nw_write") || req->failed || req->aborted)
        return -1;
    if (request_write(req, buf, len) < 0)
        return -1;
    return (ssize_t)len;
}

int nw_printf(nw_request *req, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return nw_write(req, small, (size_t)n) < 0 ? -1 : n;
    char *big = nw_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ssize_t w = nw_write(req, big, (size_t)n);
    free(big);
    return w < 0 ? -1 : n;
}

/* ---- waiting and logging ------------------------------------------------------ */

static int64_t wait_deadline(const nw_request *req, int timeout_ms)
{
    int64_t d = timeout_ms >= 0 ? nw_now_ms() + timeout_ms : -1;
    if (req->deadline_ms >= 0 && (d < 0 || req->deadline_ms < d))
        d = req->deadline_ms;
    return d;
}

int nw_wait_fd(nw_request *req, int fd, int events, int timeout_ms)
{
    if (!req || fd < 0 || !(events & (NW_READ | NW_WRITE)) || foreign(req, "nw_wait_fd"))
        return -1;
    /* The app's fd, unlike the connection's, may be closed. In a coroutine
     * the wait hands it to libev, which takes it on trust (its epoll
     * backend asserts when the kernel refuses it, killing the worker and
     * every request in it); poll(2) on a thread answers POLLNVAL: -1 either
     * way. */
    if (coro_current() && fcntl(fd, F_GETFD) < 0)
        return -1;
    request_flush_before_wait(req);
    int64_t d = wait_deadline(req, timeout_ms);
    int r = wait_fd(fd, events, d);
    if (r == 0 && req->deadline_ms >= 0 && nw_now_ms() >= req->deadline_ms)
        return -1;
    return r;
}

int nw_sleep(nw_request *req, int ms)
{
    if (ms < 0)
        return -1;
    int64_t until = nw_now_ms() + ms;
    if (req && foreign(req, "nw_sleep"))
        return -1;
    if (req)
        request_flush_before_wait(req);
    if (req && req->deadline_ms >= 0 && req->deadline_ms < until) {
        wait_fd(-1, 0, req->deadline_ms);
        return -1;
    }
    /* without a request too (a hook): a coroutine yields, a thread polls;
     * (usleep's 32-bit microseconds wrapped past 71 minutes) */
    wait_fd(-1, 0, until);
    return 0;
}

long nw_time_left(const nw_request *req)
{
    if (!req || req->deadline_ms < 0)
        return -1;
    int64_t left = req->deadline_ms - nw_now_ms();
    return left > 0 ? (long)left : 0;
}

void nw_log(nw_request *req, int level, const char *fmt, ...)
{
    if (level < NW_LOG_DEBUG)
        level = NW_LOG_DEBUG;
    if (level > NW_LOG_CRITICAL)
        level = NW_LOG_CRITICAL;
    nw_buf line = NW_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    nw_buf_vprintf(&line, fmt, ap);
    va_end(ap);
    nw_buf_appendc(&line, 0);
    const char *msg = (const char *)nw_buf_head(&line);
    if (req && foreign(req, "nw_log"))
        req = NULL; /* still logged, in narwhal's log only */
    if (req) {
        const char *uri = req->uri;
        log_msg(level, "app: %s [" REQ_URI_FMT "]", msg, uri ? uri : "-");
        if (level >= NW_LOG_WARNING)
            request_log_to_peer(req, msg, strlen(msg));
    } else {
        log_msg(level, "app: %s", msg);
    }
    nw_buf_free(&line);
}

/* ---- language hosts ------------------------------------------------------------ */

static void (*trace_hook)(int fd);

/* SB_TRACE_SIGNAL from the master (only: anyone else's does nothing), on
 * the thread whose C stack it has just written. */
static void on_trace_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)uc;
    int saved = errno;
    void (*fn)(int) = __atomic_load_n(&trace_hook, __ATOMIC_ACQUIRE);
    if (fn && si->si_code == SI_QUEUE && si->si_pid == getppid())
        fn(si->si_value.sival_int == 1 ? log_error_fd() : log_slowlog_fd());
    errno = saved;
}

int nw_set_trace_hook(void (*fn)(int fd))
{
    static int installed;
    if (fn && !installed) {
        struct sigaction sa = {.sa_sigaction = on_trace_signal,
                               .sa_flags = SA_SIGINFO | SA_RESTART};
        sigemptyset(&sa.sa_mask);
        if (sigaction(SB_TRACE_SIGNAL, &sa, NULL) < 0)
            return -1;
        installed = 1;
    }
    __atomic_store_n(&trace_hook, fn, __ATOMIC_RELEASE);
    /* the master asks only workers that say they have one */
    const nw_scoreboard *sb = scoreboard_shared();
    int i = sb ? scoreboard_find(sb, getpid()) : -1;
    if (i >= 0)
        __atomic_store_n(&sb->slots[i].trace_hook, fn != NULL, __ATOMIC_RELAXED);
    return 0;
}
