/* conn.c - the connection core: bytes in, codec events, requests, bytes out.
 *
 * The loop reads and parses until a request's params are complete, then
 * stops watching the connection and hands it to the executor (executor.h),
 * which owns it until conn_request_finished(). So the loop only ever
 * touches idle connections and requests that have not arrived in full. */
#include "conn.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "executor.h"
#include "log.h"
#include "request.h"
#include "util.h"

#define READ_CHUNK 65536

static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents);
static void conn_on_timer(struct ev_loop *loop, ev_timer *t, int revents);

static void conn_arm_timer(nw_conn *c)
{
    const nw_settings *s = c->w->s;
    double secs;
    if (c->req) /* a request that has begun but not fully arrived */
        secs = s->timeout > 0 ? s->timeout : (s->keepalive > 0 ? s->keepalive : 30);
    else
        secs = s->keepalive > 0 ? s->keepalive : 1;
    ev_timer_stop(c->w->loop, &c->timer);
    ev_timer_set(&c->timer, secs, 0.);
    ev_timer_start(c->w->loop, &c->timer);
}

void conn_close(nw_conn *c, const char *reason)
{
    nw_worker *w = c->w;
    if (reason)
        log_info("closing connection %llu: %s", (unsigned long long)c->id, reason);
    ev_io_stop(w->loop, &c->io);
    ev_timer_stop(w->loop, &c->timer);
    if (c->fd >= 0)
        close(c->fd);
    if (c->req)
        request_free(c->req);
    fcgi_parser_free(&c->parser);
    uwsgi_parser_free(&c->uparser);
    nw_buf_free(&c->in);
    nw_buf_free(&c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    worker_conn_closed(w);
}

/* Graceful stop: an idle keep-alive connection can go (nginx retries a
 * request that meets a closed cached connection), but a connection that
 * was accepted and has not sent its first request yet is a request on its
 * way: it gets a short grace to arrive, so a reload never drops one. */
void conn_close_idle(nw_worker *w)
{
    nw_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->req || c->busy)
            continue;
        char byte;
        ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (c->served == 0 || n > 0) {
            ev_timer_stop(w->loop, &c->timer);
            ev_timer_set(&c->timer, 2., 0.);
            ev_timer_start(w->loop, &c->timer);
            continue;
        }
        conn_close(c, NULL);
    }
}

/* One read(2) into c->in: >0, 0 at EOF, -1 on error, -2 when it would block.
 * It reads into a per-thread scratch buffer and keeps only what came, so an
 * idle or stalled connection holds bytes, not a 64 KiB buffer. (Coroutines
 * share their thread's scratch: it is copied out before any yield.) */
static ssize_t conn_read(nw_conn *c)
{
    static __thread uint8_t scratch[READ_CHUNK];
    for (;;) {
        ssize_t n = read(c->fd, scratch, sizeof scratch);
        if (n > 0) {
            nw_buf_append(&c->in, scratch, (size_t)n);
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -2;
        return -1;
    }
}

ssize_t conn_fill_wait(nw_conn *c, int64_t deadline_ms)
{
    for (;;) {
        ssize_t n = conn_read(c);
        if (n != -2)
            return n;
        int r = executor_wait_fd(c->w, c->fd, NW_READ, deadline_ms);
        if (r <= 0)
            return -1;
    }
}

int conn_flush_wait(nw_conn *c, int64_t deadline_ms)
{
    while (c->out.len) {
        /* MSG_MORE on a connection's last response: its tail waits for the
         * close and goes out in one segment with the FIN (conn_end). */
        ssize_t n = send(c->fd, nw_buf_head(&c->out), c->out.len,
                         MSG_NOSIGNAL | (c->last_flush ? MSG_MORE : 0));
        if (n > 0) {
            if (c->w->s->spew)
                log_debug("spew: connection %llu -> %zd bytes", (unsigned long long)c->id, n);
            nw_buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = executor_wait_fd(c->w, c->fd, NW_WRITE, deadline_ms);
            if (r > 0)
                continue;
            log_info("connection %llu: %s while sending the response", (unsigned long long)c->id,
                     r == 0 ? "timed out" : "wait failed");
        } else {
            log_info("connection %llu: peer gone while sending the response: %s",
                     (unsigned long long)c->id, strerror(errno));
        }
        c->broken = 1;
        nw_buf_reset(&c->out);
        return -1;
    }
    return 0;
}

/* FCGI_GET_VALUES: what the whole server takes at once (every worker
 * answers for all of them: the front end cannot tell them apart). */
static unsigned server_max_conns(const nw_settings *s)
{
    return (unsigned)s->workers * (unsigned)s->worker_connections;
}

static unsigned server_max_reqs(const nw_settings *s)
{
    unsigned per_worker = s->worker_class == NW_CLASS_SYNC      ? 1u
                          : s->worker_class == NW_CLASS_THREADS ? (unsigned)s->threads
                                                                : (unsigned)s->worker_connections;
    return (unsigned)s->workers * per_worker;
}

/* For --spew. */
static const char *const fcgi_event_names[] = {
    "none",          "BEGIN_REQUEST", "PARAMS",       "STDIN",           "STDIN end",
    "ABORT_REQUEST", "GET_VALUES",    "unknown type", "malformed input",
};
static const char *const uwsgi_event_names[] = {"none", "vars", "body", "body end",
                                                "malformed input"};

/* The uwsgi side of conn_parse: one request per connection. */
static int conn_parse_uwsgi(nw_conn *c)
{
    for (;;) {
        uwsgi_event ev;
        size_t used = uwsgi_parse(&c->uparser, nw_buf_head(&c->in), c->in.len, &ev);
        nw_buf_consume(&c->in, used);
        if (c->w->s->spew && ev.type != UWSGI_EV_NONE)
            log_debug("spew: connection %llu <- uwsgi %s (%zu bytes)", (unsigned long long)c->id,
                      uwsgi_event_names[ev.type], ev.len);
        switch (ev.type) {
        case UWSGI_EV_NONE:
            return 0;
        case UWSGI_EV_ERROR:
            if (ev.modifier1 != UWSGI_MODIFIER1_VARS)
                log_warning("connection %llu: malformed uwsgi input: %s (modifier1 %u); closing",
                            (unsigned long long)c->id, ev.error, ev.modifier1);
            else
                log_warning("connection %llu: malformed uwsgi input: %s; closing",
                            (unsigned long long)c->id, ev.error);
            c->broken = 1;
            return -1;
        case UWSGI_EV_VARS: {
            const char *err = NULL;
            c->req = request_new(c, 0, 0);
            /* No body: it is complete now (the parser's BODY_END would only
             * come on the next call, after the dispatch). */
            c->req->body_done = ev.body_len == 0;
            if (request_set_vars(c->req, ev.data, ev.len, &err) < 0) {
                log_warning("connection %llu: malformed uwsgi vars: %s; closing",
                            (unsigned long long)c->id, err);
                c->broken = 1;
                return -1;
            }
            return 1;
        }
        case UWSGI_EV_BODY:
            if (c->req)
                nw_buf_append(&c->req->body, ev.data, ev.len);
            break;
        case UWSGI_EV_BODY_END:
            if (c->req)
                c->req->body_done = 1;
            break;
        }
    }
}

/* Settles the connection's protocol from its first byte: FastCGI's version
 * byte is 1, nginx's uwsgi modifier1 is 0. -1 (logged) if it is neither or
 * not the configured one. */
static int conn_detect(nw_conn *c)
{
    uint8_t first = nw_buf_head(&c->in)[0];
    int setting = c->w->s->protocol;
    if (setting == NW_PROTO_FASTCGI || (setting == NW_PROTO_AUTO && first == FCGI_VERSION_1)) {
        c->proto = CONN_PROTO_FASTCGI;
        fcgi_parser_init(&c->parser);
    } else if (setting == NW_PROTO_UWSGI || (setting == NW_PROTO_AUTO && first == 0)) {
        c->proto = CONN_PROTO_UWSGI;
        uwsgi_parser_init(&c->uparser);
    } else {
        log_warning("connection %llu: first byte 0x%02x is neither FastCGI (version 1) nor "
                    "uwsgi (modifier1 0); closing",
                    (unsigned long long)c->id, first);
        c->broken = 1;
        return -1;
    }
    return 0;
}

/* Parses c->in. Returns 1 when the active request's params are complete
 * (dispatch it), 0 when everything was consumed, -1 on a protocol error
 * (logged; the connection must be closed). */
static int conn_parse(nw_conn *c)
{
    if (c->proto == CONN_PROTO_UNKNOWN) {
        if (!c->in.len)
            return 0;
        if (conn_detect(c) < 0)
            return -1;
    }
    if (c->proto == CONN_PROTO_UWSGI)
        return conn_parse_uwsgi(c);
    const nw_settings *s = c->w->s;
    for (;;) {
        fcgi_event ev;
        size_t used = fcgi_parse(&c->parser, nw_buf_head(&c->in), c->in.len, &ev);
        nw_buf_consume(&c->in, used);
        if (c->w->s->spew && ev.type != FCGI_EV_NONE)
            log_debug("spew: connection %llu <- fastcgi %s id %u (%zu bytes)",
                      (unsigned long long)c->id, fcgi_event_names[ev.type], ev.id, ev.len);
        switch (ev.type) {
        case FCGI_EV_NONE:
            return 0;
        case FCGI_EV_ERROR:
            log_warning("connection %llu: malformed fastcgi input: %s; closing",
                        (unsigned long long)c->id, ev.error);
            c->broken = 1;
            return -1;
        case FCGI_EV_BEGIN:
            if (c->req) {
                log_warning("connection %llu: request %u begun while request %u is active; "
                            "answering FCGI_CANT_MPX_CONN",
                            (unsigned long long)c->id, ev.id, c->req->id);
                fcgi_encode_end_request(&c->out, ev.id, 0, FCGI_CANT_MPX_CONN);
            } else if (ev.role != FCGI_RESPONDER) {
                log_warning("connection %llu: role %u is not supported (only the responder "
                            "role); answering FCGI_UNKNOWN_ROLE",
                            (unsigned long long)c->id, ev.role);
                fcgi_encode_end_request(&c->out, ev.id, 0, FCGI_UNKNOWN_ROLE);
                if (!ev.keep_conn)
                    c->close_after = 1;
            } else {
                c->req = request_new(c, ev.id, ev.keep_conn);
                fcgi_parser_accept(&c->parser, ev.id);
            }
            break;
        case FCGI_EV_PARAMS: {
            if (!c->req)
                break;
            const char *err = NULL;
            if (request_set_params(c->req, ev.data, ev.len, &err) < 0) {
                log_warning("connection %llu: malformed fastcgi params: %s; closing",
                            (unsigned long long)c->id, err);
                c->broken = 1;
                return -1;
            }
            return 1;
        }
        case FCGI_EV_STDIN:
            if (c->req)
                nw_buf_append(&c->req->body, ev.data, ev.len);
            break;
        case FCGI_EV_STDIN_END:
            if (c->req)
                c->req->body_done = 1;
            break;
        case FCGI_EV_ABORT:
            if (c->req && c->req->id == ev.id) {
                log_info("connection %llu: request %u aborted by the front end",
                         (unsigned long long)c->id, ev.id);
                c->req->aborted = 1;
            }
            break;
        case FCGI_EV_GET_VALUES:
            if (fcgi_encode_get_values_result(&c->out, ev.data, ev.len, server_max_conns(s),
                                              server_max_reqs(s)) < 0) {
                log_warning("connection %llu: malformed FCGI_GET_VALUES; closing",
                            (unsigned long long)c->id);
                c->broken = 1;
                return -1;
            }
            break;
        case FCGI_EV_UNKNOWN_TYPE:
            log_info("connection %llu: unknown management record type %u",
                     (unsigned long long)c->id, ev.type_byte);
            fcgi_encode_unknown_type(&c->out, ev.type_byte);
            break;
        }
    }
}

int conn_parse_more(nw_conn *c)
{
    int r = conn_parse(c);
    if (r < 0 && c->req)
        c->req->failed = 1;
    return r < 0 ? -1 : 0;
}

/* Runs every request that is complete in c->in. Returns -1 when the
 * connection was closed. */
static int conn_process(nw_conn *c)
{
    for (;;) {
        int r = conn_parse(c);
        if (r < 0) {
            conn_close(c, NULL);
            return -1;
        }
        if (r == 0)
            break;
        /* The executor owns the connection until the request is over. */
        ev_timer_stop(c->w->loop, &c->timer);
        ev_io_stop(c->w->loop, &c->io);
        c->busy = 1;
        request_start(c->req);
        worker_request_begun(c->w);
        if (c->w->s->spew)
            log_debug("spew: connection %llu: request %s %s dispatched", (unsigned long long)c->id,
                      nw_param(c->req, "REQUEST_METHOD"), nw_param(c->req, "REQUEST_URI"));
        executor_dispatch(c);
        return 0;
    }
    /* Management answers and protocol refusals. */
    if (c->out.len && conn_flush_wait(c, nw_now_ms() + 5000) < 0) {
        conn_close(c, NULL);
        return -1;
    }
    if (c->close_after && !c->req) {
        conn_close(c, NULL);
        return -1;
    }
    /* Wait for more: only now does the loop need to watch the connection. */
    ev_io_start(c->w->loop, &c->io);
    conn_arm_timer(c);
    return 0;
}

/* The connection's last response is written (its tail held back with
 * MSG_MORE) and the connection ends. close(2) alone sends that tail and the
 * FIN in one segment; the peer reads the response, then end-of-file, and
 * closes its end, and whichever FIN came first leaves a TIME_WAIT entry.
 * On loopback that close is most of what a request costs nginx in the
 * kernel (NOTES.md, "Ending connections"). So for a TCP peer on this host,
 * under close_mode = reset, the FIN goes first (shutdown) and, once nothing
 * is left unsent, a reset follows (SO_LINGER 0): the peer has the response
 * and the FIN in its receive queue ahead of the reset, so its reads return
 * the whole response and then 0, never an error; its close(2) then sends
 * nothing, and no side keeps a TIME_WAIT entry. Only on the same host,
 * where a segment handed to the kernel is not lost in transit; anywhere
 * else a reset could overtake a retransmission. */
static void conn_end(nw_conn *c)
{
    if (c->peer != PEER_TCP_LOCAL || c->w->s->close_mode != NW_CLOSE_RESET)
        return;
    /* The peer may close as soon as it sees the FIN, and its FIN reaching
     * this end first puts it in TIME_WAIT after all (harmless: that is the
     * plain close), so the reset is made ready first and follows at once. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
        return;
    int unsent = -1;
    if (shutdown(c->fd, SHUT_WR) == 0 && ioctl(c->fd, SIOCOUTQNSD, &unsent) == 0 && unsent == 0)
        return;
    /* Not all of it went out (the peer's window is full): a plain close
     * finishes sending. */
    lg.l_onoff = 0;
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

void conn_request_finished(nw_conn *c)
{
    nw_request *req = c->req;
    c->req = NULL;
    if (c->proto == CONN_PROTO_FASTCGI)
        fcgi_parser_end(&c->parser);
    int keep = req->keep_conn && !req->failed;
    int ended = c->last_flush && !req->failed && !c->broken;
    c->last_flush = 0;
    if (c->w->s->spew)
        log_debug("spew: connection %llu: request finished (status %d, %llu body bytes)%s",
                  (unsigned long long)c->id, req->status, (unsigned long long)req->body_bytes,
                  req->failed ? ", failed" : "");
    request_free(req);
    c->served++;
    /* Between requests a connection keeps no buffers of its own. */
    if (!c->in.len)
        nw_buf_free(&c->in);
    if (!c->out.len)
        nw_buf_free(&c->out);
    /* Still busy while the worker counts the request: reaching max_requests
     * starts a graceful stop, which closes idle connections, and this one
     * is decided here, not there. */
    worker_request_done(c->w);
    c->busy = 0;
    if (c->broken || !keep || c->w->stopping || c->w->s->keepalive == 0) {
        if (ended)
            conn_end(c);
        conn_close(c, NULL);
        return;
    }
    conn_process(c);
}

static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    nw_conn *c = io->data;
    (void)loop;
    (void)revents;
    ssize_t n = conn_read(c);
    if (n == -2) {
        if (!ev_is_active(&c->io)) { /* the first try, from conn_start */
            ev_io_start(c->w->loop, &c->io);
            conn_arm_timer(c);
        }
        return;
    }
    if (n <= 0) {
        if (c->req)
            conn_close(c, n == 0 ? "peer closed the connection mid-request"
                                 : "read error mid-request");
        else
            conn_close(c, NULL);
        return;
    }
    conn_process(c);
}

static void conn_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    nw_conn *c = t->data;
    (void)loop;
    (void)revents;
    conn_close(c, c->req ? "request stalled before it arrived in full" : NULL);
}

void conn_start(nw_worker *w, int fd, int peer)
{
    nw_conn *c = nw_xcalloc(1, sizeof *c);
    c->w = w;
    c->fd = fd;
    c->peer = peer;
    c->id = ++w->next_conn_id;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    worker_conn_opened(w);
    log_debug("accepted connection %llu", (unsigned long long)c->id);
    ev_io_init(&c->io, conn_on_io, fd, EV_READ);
    c->io.data = c;
    ev_init(&c->timer, conn_on_timer);
    c->timer.data = c;
    /* nginx writes the request right after connecting: read it now, and
     * register with the loop (conn_process) only if it has to wait. */
    conn_on_io(w->loop, &c->io, EV_READ);
}
