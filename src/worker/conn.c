/* conn.c - the connection core (see conn.h): the loop's side of each
 * connection, from accept to close. */
#include "conn.h"

#include <stdlib.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents);
static void conn_on_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void conn_task_run(nw_task *t);
static void conn_task_done(nw_task *t);

void conn_set_init(nw_conns *cs, struct ev_loop *loop, const nw_settings *s, nw_handler *handler,
                   nw_conn_hooks hooks)
{
    *cs = (nw_conns){.loop = loop, .s = s, .handler = handler, .hooks = hooks};
}

/* A request has begun (FastCGI's BEGIN_REQUEST) and is not over. */
static int conn_mid_request(const nw_conn *c)
{
    return c->req || c->st.sess.active;
}

/* A request is on its way: it has begun, or some of its bytes are
 * buffered (a record or a uwsgi vars block not yet whole). */
static int conn_arriving(const nw_conn *c)
{
    return conn_mid_request(c) || c->st.in.len > 0;
}

/* Answers (to management records, to refused requests) a connection may
 * have waiting for the socket before the core reads no more of its input:
 * a peer that sends such records and never reads what they are answered
 * with holds about this much of the worker, not all it sends. */
#define CONN_OUT_CAP 65536

/* The core reads the connection's input: not while its answers are over
 * the cap, nor once it is to close. */
static int conn_reading(const nw_conn *c)
{
    return c->st.out.len < CONN_OUT_CAP && !(c->st.close_after && !conn_mid_request(c));
}

/* Arms the connection's one timer for the first of its deadlines. A
 * request on its way has one, `timeout` from its first byte, that later
 * reads do not extend (a byte a second would keep it forever); so do
 * answers the peer does not take while the core has stopped reading; and
 * between requests the connection may idle for `keepalive`, counted from
 * now. */
static void conn_arm_timer(nw_conn *c)
{
    const nw_settings *s = c->set->s;
    int64_t now = nw_now_ms(), at;
    int64_t timeout_ms =
        (int64_t)(s->timeout > 0 ? s->timeout : (s->keepalive > 0 ? s->keepalive : 30)) * 1000;
    if (c->st.out.len && !conn_reading(c)) {
        if (!c->stuck_by)
            c->stuck_by = now + timeout_ms;
    } else {
        c->stuck_by = 0;
    }
    if (conn_arriving(c)) {
        if (!c->arrive_by)
            c->arrive_by = now + timeout_ms;
        at = c->arrive_by;
        c->expiry = "request stalled before it arrived in full";
    } else {
        c->arrive_by = 0;
        at = now + (int64_t)(s->keepalive > 0 ? s->keepalive : 1) * 1000;
        c->expiry = NULL;
    }
    if (c->stuck_by && c->stuck_by <= at) {
        at = c->stuck_by;
        c->expiry = "peer does not read what it is sent";
    }
    ev_timer_stop(c->set->loop, &c->timer);
    ev_timer_set(&c->timer, at > now ? (double)(at - now) / 1000. : 0., 0.);
    ev_timer_start(c->set->loop, &c->timer);
}

/* Has the loop watch the connection for what it waits for: input while
 * the core reads it, room in the socket while answers are waiting. */
static void conn_watch(nw_conn *c)
{
    int events = (conn_reading(c) ? EV_READ : 0) | (c->st.out.len ? EV_WRITE : 0);
    if (!ev_is_active(&c->io) || (c->io.events & (EV_READ | EV_WRITE)) != events) {
        ev_io_stop(c->set->loop, &c->io);
        ev_io_set(&c->io, c->st.fd, events);
        ev_io_start(c->set->loop, &c->io);
    }
    conn_arm_timer(c);
}

/* Closes the connection: reason (may be NULL) is logged at info level. */
static void conn_close(nw_conn *c, const char *reason)
{
    nw_conns *cs = c->set;
    if (reason)
        log_info("closing connection %llu: %s", (unsigned long long)c->st.id, reason);
    ev_io_stop(cs->loop, &c->io);
    ev_timer_stop(cs->loop, &c->timer);
    cs->pending -= c->held;
    if (c->req)
        request_free(c->req);
    stream_free(&c->st);
    if (c->prev)
        c->prev->next = c->next;
    else
        cs->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    cs->n--;
    cs->fresh -= c->fresh;
    free(c);
    cs->hooks.closed(cs->hooks.arg);
}

/* limit_pending_bytes: counts what the connection holds of a request on
 * its way (its unparsed input, the params the session is assembling) into
 * the worker's total; the connection that would take the total past the
 * limit is closed. The refusals are logged once a second at most. Returns
 * -1 when the connection was closed. */
static int conn_account(nw_conn *c)
{
    nw_conns *cs = c->set;
    size_t held = c->busy ? 0 : c->st.in.len + session_held(&c->st.sess);
    cs->pending = cs->pending - c->held + held;
    c->held = held;
    size_t limit = (size_t)cs->s->limit_pending_bytes;
    if (!limit || cs->pending <= limit || !held)
        return 0;
    cs->pending_refused++;
    int64_t now = nw_now_ms();
    if (now - cs->pending_logged_ms >= 1000) {
        log_warning("connection %llu: the worker would hold more than limit_pending_bytes (%zu) "
                    "for requests not yet arrived in full; closing it (%u refused since the last "
                    "report)",
                    (unsigned long long)c->st.id, limit, cs->pending_refused);
        cs->pending_logged_ms = now;
        cs->pending_refused = 0;
    }
    conn_close(c, NULL);
    return -1;
}

/* How long a kept connection of a stopping worker may idle before it is
 * closed. nginx hands out its most recently used cached connection first:
 * one that has had no request for this long is at the bottom of its cache,
 * where nginx is least likely to pick it in the moment its FIN is on the
 * way (nginx would log the request it sent into the close, and retry it). */
#define STOP_IDLE_SECS 1.

/* Graceful stop, without a request sent into a closing connection: a kept
 * connection serves what comes on it and ends with its next response (the
 * response and the FIN leave together, and nginx does not cache a
 * connection it saw end), or is closed once it has idled STOP_IDLE_SECS. A
 * connection that was accepted and has not sent its first request yet is a
 * request on its way: it gets two seconds to do so, so a reload never drops
 * one. */
void conn_set_stopping(nw_conns *cs)
{
    cs->stopping = 1;
    for (nw_conn *c = cs->head; c; c = c->next) {
        __atomic_store_n(&c->st.closing, 1, __ATOMIC_RELAXED);
        if (conn_arriving(c) || c->busy) /* it has its deadline */
            continue;
        ev_timer_stop(cs->loop, &c->timer);
        ev_timer_set(&c->timer, c->served == 0 ? 2. : STOP_IDLE_SECS, 0.);
        ev_timer_start(cs->loop, &c->timer);
        c->expiry = NULL;
    }
}

/* The request's params are complete: the executor owns the connection
 * until the request is over (conn_task_done). */
static void conn_dispatch(nw_conn *c)
{
    nw_conns *cs = c->set;
    ev_timer_stop(cs->loop, &c->timer);
    ev_io_stop(cs->loop, &c->io);
    c->arrive_by = c->stuck_by = 0;
    c->busy = 1;
    cs->pending -= c->held; /* the request holds it now */
    c->held = 0;
    cs->fresh -= c->fresh;
    c->fresh = 0;
    request_start(c->req);
    cs->hooks.request_begun(cs->hooks.arg);
    if (cs->stopping || cs->last_ones)
        c->st.closing = 1; /* before the task is handed over */
    c->task.method = c->req->method;
    c->task.uri = c->req->uri;
    c->task.start_ms = c->req->start_ms;
    if (cs->s->spew)
        log_debug("spew: connection %llu: request " REQ_FMT " dispatched",
                  (unsigned long long)c->st.id, c->task.method ? c->task.method : "-",
                  c->task.uri ? c->task.uri : "-");
    executor_post(&c->task);
}

/* Parses what is buffered: dispatches a complete request, answers what the
 * session answers, and otherwise waits for more. The answers go out
 * through the loop, as the socket takes them: a peer that does not read
 * them never blocks the worker. Returns -1 when the connection was
 * closed. */
static int conn_process(nw_conn *c)
{
    nw_conns *cs = c->set;
    for (;;) {
        sess_event ev;
        sess_ev_type t = stream_next(&c->st, &ev);
        if (t == SESS_EV_NONE)
            break;
        if (t == SESS_EV_ERROR) {
            conn_close(c, NULL);
            return -1;
        }
        if (t == SESS_EV_REQUEST) {
            const char *err = NULL;
            c->req = request_new(&c->st, cs->s, cs->handler, &ev, &err);
            if (!c->req) {
                log_warning("connection %llu: malformed %s: %s; closing",
                            (unsigned long long)c->st.id, stream_proto(&c->st)->params_name, err);
                conn_close(c, NULL);
                return -1;
            }
            /* Answers still waiting go out first, with the response. */
            conn_dispatch(c);
            return 0;
        }
        /* Body or abort records for a request that is not active: the
         * session lets none through, and there is nothing to apply them
         * to. */
    }
    /* Management answers and protocol refusals. */
    if (c->st.out.len && stream_write(&c->st) < 0) {
        conn_close(c, NULL);
        return -1;
    }
    if (c->st.close_after && !conn_mid_request(c) && !c->st.out.len) {
        conn_close(c, NULL);
        return -1;
    }
    if (conn_account(c) < 0)
        return -1;
    /* Wait for more: only now does the loop need to watch the connection. */
    conn_watch(c);
    return 0;
}

static void conn_task_run(nw_task *t)
{
    nw_conn *c = (nw_conn *)((char *)t - offsetof(nw_conn, task));
    request_run(c->req);
}

/* On the loop thread: the request is over; keep the connection or close
 * it. */
static void conn_task_done(nw_task *t)
{
    nw_conn *c = (nw_conn *)((char *)t - offsetof(nw_conn, task));
    nw_conns *cs = c->set;
    nw_request *req = c->req;
    c->req = NULL;
    session_request_over(&c->st.sess);
    int keep = req->keep_conn && !req->failed;
    int ended = c->st.last_flush && !req->failed && !c->st.broken;
    c->st.last_flush = 0;
    if (cs->s->spew)
        log_debug("spew: connection %llu: request finished (status %d, %llu body bytes)%s",
                  (unsigned long long)c->st.id, req->status, (unsigned long long)req->body_bytes,
                  req->failed ? ", failed" : "");
    request_free(req);
    c->served++;
    /* Between requests a connection keeps no buffers of its own. */
    if (!c->st.in.len)
        nw_buf_free(&c->st.in);
    if (!c->st.out.len)
        nw_buf_free(&c->st.out);
    /* Still busy while the owner counts the request: reaching max_requests
     * starts a graceful stop, which closes idle connections, and this one
     * is decided here, not there. */
    cs->hooks.request_done(cs->hooks.arg);
    c->busy = 0;
    /* closing: the worker stops (conn_set_stopping marks every connection,
     * conn_dispatch every request dispatched after) or max_requests is
     * near. */
    if (c->st.broken || !keep || c->st.closing || cs->s->keepalive == 0) {
        if (ended)
            stream_end(&c->st);
        conn_close(c, NULL);
        return;
    }
    conn_process(c);
}

static void conn_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    nw_conn *c = io->data;
    (void)loop;
    if (revents & EV_READ) {
        ssize_t n = stream_read(&c->st);
        if (n == -2 && !ev_is_active(&c->io)) { /* the first try, from conn_start */
            conn_watch(c);
            return;
        }
        if (n == -2 && !(revents & EV_WRITE))
            return;
        if (n == 0 && c->st.out.len && !conn_mid_request(c)) {
            /* The peer is done sending: what it was answered still goes. */
            c->st.close_after = 1;
        } else if (n == 0 || n == -1) {
            if (conn_mid_request(c))
                conn_close(c, n == 0 ? "peer closed the connection mid-request"
                                     : "read error mid-request");
            else
                conn_close(c, NULL);
            return;
        }
    }
    conn_process(c);
}

static void conn_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    nw_conn *c = t->data;
    (void)loop;
    (void)revents;
    conn_close(c, c->expiry);
}

void conn_start(nw_conns *cs, int fd, int peer)
{
    nw_conn *c = nw_xcalloc(1, sizeof *c);
    c->set = cs;
    stream_init(&c->st, fd, ++cs->next_id, peer, cs->s);
    c->task.run = conn_task_run;
    c->task.done = conn_task_done;
    c->next = cs->head;
    if (cs->head)
        cs->head->prev = c;
    cs->head = c;
    cs->n++;
    c->fresh = 1;
    cs->fresh++;
    cs->hooks.opened(cs->hooks.arg);
    log_debug("accepted connection %llu", (unsigned long long)c->st.id);
    ev_io_init(&c->io, conn_on_io, fd, EV_READ);
    c->io.data = c;
    ev_init(&c->timer, conn_on_timer);
    c->timer.data = c;
    /* nginx writes the request right after connecting: read it now, and
     * register with the loop (conn_process) only if it has to wait. */
    conn_on_io(cs->loop, &c->io, EV_READ);
}
