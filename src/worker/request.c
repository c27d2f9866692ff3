/* request.c - the app API (<narwhal.h>) and the life of one request. */
#include "request.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conn.h"
#include "executor.h"
#include "log.h"
#include "proto_fastcgi.h"
#include "util.h"
#include "worker.h"

static void flush_before_wait(nw_request *req);

/* Body bytes staged before they are encoded and sent. */
#define OUT_FLUSH_AT 65536

nw_request *request_new(nw_conn *c, uint16_t id, int keep_conn)
{
    nw_request *r = nw_xcalloc(1, sizeof *r);
    r->conn = c;
    r->id = id;
    r->keep_conn = keep_conn;
    r->status = 200;
    r->deadline_ms = -1;
    return r;
}

void request_start(nw_request *r)
{
    const nw_settings *s = r->conn->w->s;
    r->start_ms = nw_now_ms();
    clock_gettime(CLOCK_REALTIME, &r->start_rt);
    r->deadline_ms = s->timeout > 0 ? r->start_ms + (int64_t)s->timeout * 1000 : -1;
}

void request_free(nw_request *r)
{
    nw_buf_free(&r->pbuf);
    nw_buf_free(&r->body);
    nw_buf_free(&r->headers);
    nw_buf_free(&r->out);
    free(r->pv);
    free(r);
}

/* Copies one pair into pbuf as "name\0value\0" and points pv at it. pbuf
 * was sized for the whole encoded stream up front (see reserve_params), so
 * it never moves and the pointers stay good. */
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

/* Every encoded pair carries at least two length bytes, where the copy
 * carries two NULs: the copies fit in the encoded size. */
static void reserve_params(nw_request *r, size_t encoded_len)
{
    nw_buf_reserve(&r->pbuf, encoded_len ? encoded_len : 1);
}

int request_set_params(nw_request *r, const uint8_t *data, size_t len, const char **error)
{
    reserve_params(r, len);
    return fcgi_params_decode(data, len, collect_param, r, error);
}

int request_set_vars(nw_request *r, const uint8_t *data, size_t len, const char **error)
{
    reserve_params(r, len);
    return uwsgi_vars_decode(data, len, collect_param, r, error);
}

/* Response bytes onto the wire, in the connection's protocol. */
static void encode_stdout(nw_request *r, const void *data, size_t len)
{
    nw_conn *c = r->conn;
    if (c->proto == CONN_PROTO_UWSGI)
        nw_buf_append(&c->out, data, len);
    else if (len)
        fcgi_encode_stream(&c->out, FCGI_STDOUT, r->id, data, len);
}

/* ---- the app API: request side ------------------------------------------ */

const char *nw_param(const nw_request *req, const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->np; i++)
        if (strcmp(req->pv[2 * i], name) == 0)
            return req->pv[2 * i + 1];
    return NULL;
}

int nw_param_each(const nw_request *req, int (*fn)(const char *name, const char *value, void *arg),
                  void *arg)
{
    if (!req || !fn)
        return -1;
    for (size_t i = 0; i < req->np; i++) {
        int rc = fn(req->pv[2 * i], req->pv[2 * i + 1], arg);
        if (rc)
            return rc;
    }
    return 0;
}

/* Parses the connection's buffered input into the request (body, aborts):
 * 1 when that moved it on, 0 when more input is needed, -1 on a protocol
 * error (the request is failed). */
static int parse_buffered(nw_conn *c)
{
    if (!c->in.len)
        return 0;
    size_t before = c->in.len;
    if (conn_parse_more(c) < 0)
        return -1;
    return c->in.len < before;
}

ssize_t nw_read(nw_request *req, void *buf, size_t len)
{
    if (!req || (!buf && len))
        return -1;
    nw_conn *c = req->conn;
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
        int parsed = parse_buffered(c);
        if (parsed < 0)
            return -1;
        if (parsed)
            continue;
        flush_before_wait(req);
        ssize_t n = conn_fill_wait(c, req->deadline_ms);
        if (n <= 0) {
            log_info("request %u: %s while reading the body", req->id,
                     n == 0 ? "peer closed the connection" : "read failed");
            req->failed = 1;
            c->broken = 1;
            return -1;
        }
    }
}

/* ---- the app API: response side ------------------------------------------ */

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

int nw_set_status(nw_request *req, int status)
{
    if (!req || req->headers_sent || status < 100 || status > 999)
        return -1;
    req->status = status;
    return 0;
}

static int header_token_ok(const char *s, int is_name)
{
    if (!s || (is_name && !*s))
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n' || ch == 0)
            return 0;
        if (is_name && (ch == ':' || ch <= ' ' || ch >= 0x7f))
            return 0;
    }
    return 1;
}

int nw_add_header(nw_request *req, const char *name, const char *value)
{
    if (!req || req->headers_sent || !header_token_ok(name, 1) || !header_token_ok(value, 0))
        return -1;
    /* "Status" would fight nw_set_status over the status line. */
    if (strcasecmp(name, "Status") == 0)
        return -1;
    nw_buf_printf(&req->headers, "%s: %s\r\n", name, value);
    return 0;
}

/* The CGI response head, into the staged stdout. */
/* The response head, into the staged stdout (still empty: body bytes are
 * only staged after it). */
static void emit_head(nw_request *req)
{
    /* FastCGI carries a CGI head; uwsgi a raw HTTP one. */
    nw_buf_printf(&req->out, "%s %d %s\r\n",
                  req->conn->proto == CONN_PROTO_UWSGI ? "HTTP/1.1" : "Status:", req->status,
                  reason_phrase(req->status));
    nw_buf_append(&req->out, nw_buf_head(&req->headers), req->headers.len);
    nw_buf_append(&req->out, "\r\n", 2);
    req->headers_sent = 1;
}

/* Encodes the staged stdout into the connection's buffer and sends it. */
static int flush_out(nw_request *req)
{
    nw_conn *c = req->conn;
    encode_stdout(req, nw_buf_head(&req->out), req->out.len);
    nw_buf_reset(&req->out);
    req->flushed |= c->out.len > 0;
    if (conn_flush_wait(c, req->deadline_ms) < 0) {
        req->failed = 1;
        return -1;
    }
    return 0;
}

/* Before the handler waits, what it wrote goes out: a handler that streams
 * (write, wait, write) is seen as it goes, while one that writes and returns
 * still sends its whole response in one go. */
static void flush_before_wait(nw_request *req)
{
    if (!req->failed && !req->aborted && (req->out.len || req->conn->out.len))
        flush_out(req);
}

ssize_t nw_write(nw_request *req, const void *buf, size_t len)
{
    if (!req || (!buf && len) || req->failed || req->aborted)
        return -1;
    if (!req->headers_sent)
        emit_head(req);
    nw_buf_append(&req->out, buf, len);
    req->body_bytes += len;
    if (req->out.len >= OUT_FLUSH_AT && flush_out(req) < 0)
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

/* ---- the app API: waiting and logging -------------------------------------- */

static int64_t wait_deadline(const nw_request *req, int timeout_ms)
{
    int64_t d = timeout_ms >= 0 ? nw_now_ms() + timeout_ms : -1;
    if (req->deadline_ms >= 0 && (d < 0 || req->deadline_ms < d))
        d = req->deadline_ms;
    return d;
}

int nw_wait_fd(nw_request *req, int fd, int events, int timeout_ms)
{
    if (!req || fd < 0 || !(events & (NW_READ | NW_WRITE)))
        return -1;
    flush_before_wait(req);
    int64_t d = wait_deadline(req, timeout_ms);
    int r = executor_wait_fd(req->conn->w, fd, events, d);
    if (r == 0 && req->deadline_ms >= 0 && nw_now_ms() >= req->deadline_ms)
        return -1;
    return r;
}

int nw_sleep(nw_request *req, int ms)
{
    if (ms < 0)
        return -1;
    int64_t until = nw_now_ms() + ms;
    nw_worker *w = req ? req->conn->w : NULL;
    if (req)
        flush_before_wait(req);
    if (req && req->deadline_ms >= 0 && req->deadline_ms < until) {
        executor_wait_fd(w, -1, 0, req->deadline_ms);
        return -1;
    }
    if (!w) {
        usleep((useconds_t)ms * 1000);
        return 0;
    }
    executor_wait_fd(w, -1, 0, until);
    return 0;
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
    if (req) {
        const char *uri = nw_param(req, "REQUEST_URI");
        log_msg(level, "app: %s [%s]", msg, uri ? uri : "-");
        /* The front end logs STDERR lines in its own error log. */
        if (level >= NW_LOG_WARNING && !req->failed && req->conn->proto == CONN_PROTO_FASTCGI) {
            nw_conn *c = req->conn;
            size_t n = strlen(msg);
            fcgi_encode_stream(&c->out, FCGI_STDERR, req->id, msg, n);
        }
    } else {
        log_msg(level, "app: %s", msg);
    }
    nw_buf_free(&line);
}

/* ---- running a request --------------------------------------------------- */

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
    return nw_param(ctx, name);
}

static void log_request(nw_request *r)
{
    if (!log_access_enabled())
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t us = (int64_t)(now.tv_sec - r->start_rt.tv_sec) * 1000000 +
                 (now.tv_nsec - r->start_rt.tv_nsec) / 1000;
    access_entry e = {
        .param = param_cb,
        .resp_header = resp_header,
        .ctx = r,
        .status = r->status,
        .body_bytes = r->body_bytes,
        .start = r->start_rt,
        .duration_us = us > 0 ? (uint64_t)us : 0,
        .pid = getpid(),
    };
    log_access(&e);
}

/* gunicorn's request limits, checked before the app sees the request.
 * Returns the refusal status or 0. */
static int check_limits(nw_request *r, const nw_settings *s, const char **why)
{
    if (s->limit_request_line > 0) {
        const char *m = nw_param(r, "REQUEST_METHOD"), *u = nw_param(r, "REQUEST_URI"),
                   *p = nw_param(r, "SERVER_PROTOCOL");
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
    nw_conn *c = r->conn;
    int64_t until = r->flushed ? 0 : r->deadline_ms;
    while (!r->body_done) {
        nw_buf_reset(&r->body);
        int parsed = parse_buffered(c);
        if (parsed < 0)
            break;
        if (!parsed && conn_fill_wait(c, until) <= 0)
            break;
    }
    nw_buf_reset(&r->body);
}

static void respond_plain(nw_request *r, int status, const char *body)
{
    nw_buf_reset(&r->headers);
    nw_buf_reset(&r->out);
    r->body_bytes = 0;
    r->headers_sent = 0;
    r->status = status;
    nw_add_header(r, "Content-Type", "text/plain");
    nw_write(r, body, strlen(body));
}

void request_run(nw_request *r)
{
    nw_conn *c = r->conn;
    nw_worker *w = c->w;
    const nw_settings *s = w->s;
    const char *method = nw_param(r, "REQUEST_METHOD"), *uri = nw_param(r, "REQUEST_URI");

    nw_tslot *t = executor_tslot(w);
    if (t)
        scoreboard_tslot_begin(t, method, uri, r->start_ms);

    const char *why = NULL;
    int refuse = check_limits(r, s, &why);
    if (refuse) {
        log_warning("refused %s %s with %d: %s", method ? method : "-", uri ? uri : "-", refuse,
                    why);
        respond_plain(r, refuse,
                      refuse == 414 ? "URI Too Long\n" : "Request Header Fields Too Large\n");
    } else {
        int rc = w->app.handler(r);
        if (!r->headers_sent && r->deadline_ms >= 0 && nw_now_ms() >= r->deadline_ms) {
            /* Its waits were cut off at the deadline: whatever it returned,
             * the client learns the truth. */
            log_error("%s %s passed its %ds timeout; answering 504", method ? method : "-",
                      uri ? uri : "-", s->timeout);
            respond_plain(r, 504, "Gateway Timeout\n");
        } else if (rc != 0) {
            if (!r->headers_sent) {
                log_error("handler returned %d for %s %s; answering 500", rc, method ? method : "-",
                          uri ? uri : "-");
                respond_plain(r, 500, "Internal Server Error\n");
            } else {
                log_error("handler returned %d for %s %s after the response began; ending it "
                          "as it is",
                          rc, method ? method : "-", uri ? uri : "-");
            }
        }
    }
    if (!r->failed && !r->aborted) {
        if (!r->headers_sent)
            emit_head(r);
        encode_stdout(r, nw_buf_head(&r->out), r->out.len);
        nw_buf_reset(&r->out);
        if (c->proto == CONN_PROTO_FASTCGI)
            fcgi_encode_stream(&c->out, FCGI_STDOUT, r->id, NULL, 0);
    }
    if (!r->failed && !r->aborted)
        drain_body(r);
    /* The handler is done: what is left is bounded by the drain deadline,
     * not the master's watch. */
    if (t)
        scoreboard_tslot_end(t);
    if (!r->failed) {
        /* uwsgi ends the response by closing the connection (keep_conn 0). */
        if (c->proto == CONN_PROTO_FASTCGI)
            fcgi_encode_end_request(&c->out, r->id, 0, FCGI_REQUEST_COMPLETE);
        /* The rest of the response gets a fresh `timeout` to drain. */
        int64_t drain = s->timeout > 0 ? nw_now_ms() + (int64_t)s->timeout * 1000 : -1;
        c->last_flush = !r->keep_conn; /* the connection closes after it */
        if (conn_flush_wait(c, drain) < 0)
            r->failed = 1;
    }
    log_request(r);
}
