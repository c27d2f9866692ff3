/* request.c - the life of one request (see request.h): params in, the
 * handler run under the limits and the deadline, the response framed by
 * the connection's protocol, the body drained, the access log written. */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "executor.h"
#include "log.h"
#include "scoreboard.h"
#include "statsd.h"
#include "status.h"
#include "util.h"

/* Body bytes staged before they are encoded and sent. */
#define OUT_FLUSH_AT 65536

/* Copies one pair into pbuf as "name\0value\0" and points pv at it. pbuf
 * was sized for the whole encoded stream up front (see request_new), so it
 * never moves and the pointers stay good. */
static int collect_param(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    nw_request *r = arg;
    if (r->np == r->pcap) {
        r->pcap = r->pcap ? r->pcap * 2 : 32;
        r->pv = nw_xrealloc(r->pv, sizeof *r->pv * r->pcap * 2);
    }
    char *dst = (char *)nw_buf_head(&r->pbuf) + r->pbuf.len;
    memcpy(dst, name, nlen);
    dst[nlen] = 0;
    memcpy(dst + nlen + 1, value, vlen);
    dst[nlen + 1 + vlen] = 0;
    r->pv[2 * r->np] = dst;
    r->pv[2 * r->np + 1] = dst + nlen + 1;
    r->pbuf.len += nlen + vlen + 2;
    r->np++;
    return 0;
}

nw_request *request_new(nw_stream *st, const nw_settings *s, nw_handler *handler,
                        const sess_event *ev, const char **error)
{
    nw_request *r = nw_xcalloc(1, sizeof *r);
    r->st = st;
    r->s = s;
    r->handler = handler;
    r->id = ev->id;
    r->keep_conn = ev->keep_conn;
    r->body_done = ev->body_done;
    r->status = 200;
    r->deadline_ms = -1;
    /* Every encoded pair carries at least two length bytes, where the copy
     * carries two NULs: the copies fit in the encoded size. */
    nw_buf_reserve(&r->pbuf, ev->len ? ev->len : 1);
    if (stream_proto(st)->params(&st->sess, ev->data, ev->len, collect_param, r, error) < 0) {
        request_free(r);
        return NULL;
    }
    r->method = request_param(r, "REQUEST_METHOD");
    r->uri = request_param(r, "REQUEST_URI");
    return r;
}

void request_start(nw_request *r)
{
    clock_gettime(CLOCK_MONOTONIC, &r->start_mono);
    r->start_ms = (int64_t)r->start_mono.tv_sec * 1000 + r->start_mono.tv_nsec / 1000000;
    clock_gettime(CLOCK_REALTIME, &r->start_rt);
    r->deadline_ms = r->s->timeout > 0 ? r->start_ms + (int64_t)r->s->timeout * 1000 : -1;
}

void request_free(nw_request *r)
{
    nw_buf_free(&r->pbuf);
    nw_buf_free(&r->body);
    nw_buf_free(&r->headers);
    nw_buf_free(&r->out);
    nw_buf_free(&r->err);
    free(r->pv);
    free(r);
}

void request_take(nw_request *r, const sess_event *ev)
{
    switch (ev->type) {
    case SESS_EV_BODY:
        nw_buf_append(&r->body, ev->data, ev->len);
        break;
    case SESS_EV_BODY_END:
        r->body_done = 1;
        break;
    case SESS_EV_ABORT:
        r->aborted = 1;
        break;
    default:
        break;
    }
}

int request_pump(nw_request *r)
{
    nw_stream *st = r->st;
    if (!st->in.len)
        return 0;
    size_t before = st->in.len;
    sess_event ev;
    for (;;) {
        sess_ev_type t = stream_next(st, &ev);
        if (t == SESS_EV_NONE)
            break;
        if (t == SESS_EV_ERROR) {
            r->failed = 1;
            return -1;
        }
        request_take(r, &ev);
    }
    return st->in.len < before;
}

/* The last value wins, as in php-fpm's environment and uWSGI's environ: a
 * config overrides a param by repeating it after the include. */
const char *request_param(const nw_request *r, const char *name)
{
    /* From the end, telling names apart by their length (free: the value
     * follows the name) and first byte before comparing them. */
    size_t n = strlen(name);
    for (size_t i = r->np; i-- > 0;) {
        const char *k = r->pv[2 * i], *v = r->pv[2 * i + 1];
        if ((size_t)(v - k) == n + 1 && k[0] == name[0] && memcmp(k, name, n) == 0)
            return v;
    }
    return NULL;
}

/* ---- the response ----------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

void request_add_header(nw_request *r, const char *name, const char *value)
{
    nw_buf_printf(&r->headers, "%s: %s\r\n", name, value);
}

/* The response head, into the staged body (still empty: body bytes are
 * only staged after it). */
static void emit_head(nw_request *r)
{
    stream_proto(r->st)->head(&r->out, r->status, reason_phrase(r->status),
                              nw_buf_head(&r->headers), r->headers.len);
    r->headers_sent = 1;
}

/* Encodes the staged body into the stream's output. */
static void encode_staged(nw_request *r)
{
    nw_stream *st = r->st;
    stream_proto(st)->body(&st->sess, &st->out, nw_buf_head(&r->out), r->out.len);
    nw_buf_reset(&r->out);
}

/* Encodes the queued messages for the front end's error log, as one record.
 * Only once the head has gone: ahead of it, nginx holds them with the
 * header it is waiting for, and too many make it answer 502. */
static void encode_err(nw_request *r)
{
    nw_stream *st = r->st;
    if (!r->headers_sent || (!r->err.len && !r->err_dropped))
        return;
    if (r->err_dropped)
        nw_buf_printf(&r->err, "%s(%u more in narwhal's error log)", r->err.len ? "; " : "",
                      r->err_dropped);
    stream_proto(st)->log(&st->sess, &st->out, (const char *)nw_buf_head(&r->err), r->err.len);
    nw_buf_reset(&r->err);
    r->err_dropped = 0;
}

/* Encodes the staged body and sends it. */
static int flush_out(nw_request *r)
{
    encode_staged(r);
    encode_err(r);
    r->flushed |= r->st->out.len > 0;
    if (stream_flush_wait(r->st, r->deadline_ms) < 0) {
        r->failed = 1;
        return -1;
    }
    return 0;
}

/* A handler that streams (write, wait, write) is seen as it goes, while one
 * that writes and returns still sends its whole response in one go. */
void request_flush_before_wait(nw_request *r)
{
    if (!r->failed && !r->aborted &&
        (r->out.len || r->st->out.len || (r->headers_sent && r->err.len)))
        flush_out(r);
}

int request_write(nw_request *r, const void *buf, size_t len)
{
    if (!r->headers_sent)
        emit_head(r);
    nw_buf_append(&r->out, buf, len);
    r->body_bytes += len;
    if (r->out.len >= OUT_FLUSH_AT && flush_out(r) < 0)
        return -1;
    return 0;
}

void request_log_to_peer(nw_request *r, const char *msg, size_t len)
{
    if (r->failed || !stream_proto(r->st)->log || !len)
        return;
    size_t before = r->err.len;
    /* Escaping only lengthens it: what cannot fit is not copied at all. */
    if (before + (before ? 2 : 0) + len > REQUEST_ERR_QUEUE) {
        r->err_dropped++;
        return;
    }
    if (before)
        nw_buf_append(&r->err, "; ", 2);
    log_append_escaped(&r->err, msg, len);
    if (r->err.len > REQUEST_ERR_QUEUE) {
        r->err.len = before;
        r->err_dropped++;
    }
}

/* ---- running a request ------------------------------------------------------- */

static const char *resp_header(void *ctx, const char *name)
{
    /* Only the access log asks, once per atom: a scan is fine. */
    static __thread char value[1024];
    nw_request *r = ctx;
    size_t nlen = strlen(name);
    const char *p = (const char *)nw_buf_head(&r->headers), *end = p + r->headers.len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nlen + 1 && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (v < eol && *v == ' ')
                v++;
            snprintf(value, sizeof value, "%.*s", (int)(eol - v), v);
            return value;
        }
        p = eol + 2;
    }
    return NULL;
}

static const char *param_cb(void *ctx, const char *name)
{
    return request_param(ctx, name);
}

/* This worker's pid, asked once: getpid() is a system call, and the
 * access log wants it for every request. request_run runs in workers only,
 * which never fork again to run one. */
static pid_t worker_pid(void)
{
    static pid_t pid;
    pid_t p = __atomic_load_n(&pid, __ATOMIC_RELAXED);
    if (!p) {
        p = getpid();
        __atomic_store_n(&pid, p, __ATOMIC_RELAXED);
    }
    return p;
}

/* status: what the client got; us: how long the request took. */
static void log_request(nw_request *r, int status, uint64_t us)
{
    if (!log_access_enabled())
        return;
    access_entry e = {
        .param = param_cb,
        .resp_header = resp_header,
        .ctx = r,
        .status = status,
        .body_bytes = r->body_bytes,
        .start = r->start_rt,
        .duration_us = us,
        .pid = worker_pid(),
    };
    log_access(&e);
}

int request_check_limits(const nw_request *r, const nw_settings *s, const char **why)
{
    if (s->limit_request_line > 0) {
        const char *m = r->method, *u = r->uri, *p = request_param(r, "SERVER_PROTOCOL");
        size_t line = (m ? strlen(m) : 0) + 1 + (u ? strlen(u) : 0) + 1 + (p ? strlen(p) : 0);
        if (line > (size_t)s->limit_request_line) {
            *why = "request line longer than limit_request_line";
            return 414;
        }
    }
    size_t fields = 0;
    for (size_t i = 0; i < r->np; i++) {
        const char *n = r->pv[2 * i];
        if (strncmp(n, "HTTP_", 5) != 0)
            continue;
        fields++;
        if (s->limit_request_field_size > 0 &&
            strlen(n + 5) + strlen(r->pv[2 * i + 1]) > (size_t)s->limit_request_field_size) {
            *why = "a header longer than limit_request_field_size";
            return 431;
        }
    }
    if (s->limit_request_fields > 0 && fields > (size_t)s->limit_request_fields) {
        *why = "more headers than limit_request_fields";
        return 431;
    }
    return 0;
}

/* The body the handler did not read may still be on its way: read it and
 * drop it, so that the connection does not end with unread input (closing
 * it would send a reset, and nginx, still writing the body, would answer
 * 502 instead of the response). Only while none of the response has gone
 * out: once it has, nginx stops sending the body and waits for the end of
 * the response, so then only what has already arrived is read. Within the
 * request's deadline, best effort: what does not come in time is left. */
static void drain_body(nw_request *r)
{
    int64_t until = r->flushed ? 0 : r->deadline_ms;
    while (!r->body_done) {
        nw_buf_reset(&r->body);
        int pumped = request_pump(r);
        if (pumped < 0)
            break;
        if (!pumped && stream_fill_wait(r->st, until) <= 0)
            break;
    }
    nw_buf_reset(&r->body);
}

/* A page narwhal answers itself (status.h), never cached by the front end. */
static void respond_status(nw_request *r, status_page page)
{
    nw_buf body = {0};
    const char *ctype = "text/plain";
    status_answer(page, r->s, param_cb, r, &body, &ctype);
    request_add_header(r, "Content-Type", ctype);
    request_add_header(r, "Cache-Control", "no-cache");
    request_write(r, nw_buf_head(&body), body.len);
    nw_buf_free(&body);
}

static void respond_plain(nw_request *r, int status, const char *body)
{
    nw_buf_reset(&r->headers);
    nw_buf_reset(&r->out);
    r->body_bytes = 0;
    r->headers_sent = 0;
    r->status = status;
    request_add_header(r, "Content-Type", "text/plain");
    request_write(r, body, strlen(body));
}

void request_run(nw_request *r)
{
    nw_stream *st = r->st;
    const nw_proto *proto = stream_proto(st);
    const nw_settings *s = r->s;
    const char *method = r->method, *uri = r->uri;
    /* for the error log: a refused URI can be as long as the params */
    const char *m = method ? method : "-", *u = uri ? uri : "-";

    r->owner = pthread_self();
    r->owner_set = 1;
    nw_tslot *t = executor_tslot();
    if (t)
        scoreboard_request_begin(t, method, uri, r->start_ms);
    /* counted in the worker's slot whatever the class (async: its shared
     * request slot, which the executor marks itself) */
    nw_tslot *counted = t ? t : executor_shared_tslot();
    scoreboard_count_enter(counted);

    const char *why = NULL;
    int refuse = request_check_limits(r, s, &why);
    status_page page = refuse ? STATUS_NONE : status_match(s, param_cb, r);
    int timed_out = 0;
    if (refuse) {
        log_warning("refused " REQ_FMT " with %d: %s", m, u, refuse, why);
        respond_plain(r, refuse,
                      refuse == 414 ? "URI Too Long\n" : "Request Header Fields Too Large\n");
    } else if (page != STATUS_NONE) {
        respond_status(r, page);
    } else {
        int rc = r->handler(r);
        if (!r->headers_sent && r->deadline_ms >= 0 && nw_now_ms() >= r->deadline_ms) {
            /* Its waits were cut off at the deadline: whatever it returned,
             * the client learns the truth. */
            log_error(REQ_FMT " passed its %ds timeout; answering 504", m, u, s->timeout);
            respond_plain(r, 504, "Gateway Timeout\n");
            timed_out = 1;
        } else if (rc != 0) {
            if (!r->headers_sent) {
                log_error("handler returned %d for " REQ_FMT "; answering 500", rc, m, u);
                respond_plain(r, 500, "Internal Server Error\n");
            } else {
                log_error("handler returned %d for " REQ_FMT " after the response began; ending "
                          "it as it is",
                          rc, m, u);
            }
        }
    }
    if (!r->failed && !r->aborted) {
        if (!r->headers_sent)
            emit_head(r);
        encode_staged(r);
        encode_err(r);
        proto->body_end(&st->sess, &st->out);
        drain_body(r);
    }
    /* The handler is done: what is left is bounded by the drain deadline,
     * not the master's watch. */
    if (t)
        scoreboard_request_end(t);
    if (!r->failed) {
        proto->end(&st->sess, &st->out);
        /* The rest of the response gets a fresh `timeout` to drain. */
        int64_t drain = s->timeout > 0 ? nw_now_ms() + (int64_t)s->timeout * 1000 : -1;
        /* The connection closes after it: its tail and the FIN leave
         * together, so nginx sees the end before it could cache the
         * connection and send another request into the close. */
        st->last_flush = !r->keep_conn || __atomic_load_n(&st->closing, __ATOMIC_RELAXED);
        if (stream_flush_wait(st, drain) < 0)
            r->failed = 1;
    }
    /* on the monotonic clock: a wall clock set back mid-request makes no
     * negative or hour-long durations */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t us = (uint64_t)((int64_t)(now.tv_sec - r->start_mono.tv_sec) * 1000000 +
                             (now.tv_nsec - r->start_mono.tv_nsec) / 1000);
    /* What the client got: a request that failed (the peer went away, a
     * protocol error) or that the front end aborted got no complete
     * response, whatever status the handler had set: 499, nginx's status
     * for a client that went away. The access log, the status page and
     * statsD all say so. */
    int status = r->failed || r->aborted ? 499 : r->status;
    scoreboard_count_leave(counted, status, us, timed_out);
    log_request(r, status, us);
    if (statsd_enabled())
        statsd_request(status, (double)us / 1000.);
}
