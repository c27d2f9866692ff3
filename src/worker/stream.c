/* stream.c - a connection's bytes (see stream.h). */
#include "stream.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "narwhal.h"
#include "util.h"
#include "wait.h"

#define READ_CHUNK 65536

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

static void spew_wire(void *arg, const char *what)
{
    nw_stream *st = arg;
    log_debug("spew: connection %llu <- %s", (unsigned long long)st->id, what);
}

/* The session's messages: a peer can make one per 16 bytes it sends, so a
 * connection logs a few a second and counts the rest, then says how many
 * it left out. */
#define LOG_BURST 5

static void stream_log_dropped(nw_stream *st)
{
    if (st->log_dropped)
        log_msg(st->log_dropped_level, "connection %llu: %llu more messages like these not logged",
                (unsigned long long)st->id, (unsigned long long)st->log_dropped);
    st->log_dropped = 0;
    st->log_dropped_level = 0;
}

static void stream_log(nw_stream *st, int level, const char *msg)
{
    int64_t now = nw_now_ms();
    if (now - st->log_since >= 1000) {
        stream_log_dropped(st);
        st->log_since = now;
        st->log_count = 0;
    }
    if (st->log_count < LOG_BURST) {
        st->log_count++;
        log_msg(level, "connection %llu: %s", (unsigned long long)st->id, msg);
        return;
    }
    st->log_dropped++;
    if (level > st->log_dropped_level)
        st->log_dropped_level = level;
}

void stream_init(nw_stream *st, int fd, uint64_t id, int peer, const nw_settings *s)
{
    memset(st, 0, sizeof *st);
    st->fd = fd;
    st->id = id;
    st->peer = peer;
    st->s = s;
    session_init(&st->sess, server_max_conns(s), server_max_reqs(s));
    if (s->spew) {
        st->sess.trace = spew_wire;
        st->sess.trace_arg = st;
    }
}

void stream_free(nw_stream *st)
{
    stream_log_dropped(st);
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    session_free(&st->sess);
    nw_buf_free(&st->in);
    nw_buf_free(&st->out);
}

/* It reads into a per-thread scratch buffer and keeps only what came, so an
 * idle or stalled connection holds bytes, not a 64 KiB buffer. (Coroutines
 * share their thread's scratch: it is copied out before any yield.) */
ssize_t stream_read(nw_stream *st)
{
    static __thread uint8_t scratch[READ_CHUNK];
    for (;;) {
        ssize_t n = read(st->fd, scratch, sizeof scratch);
        if (n > 0) {
            nw_buf_append(&st->in, scratch, (size_t)n);
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

ssize_t stream_fill_wait(nw_stream *st, int64_t deadline_ms)
{
    for (;;) {
        ssize_t n = stream_read(st);
        if (n != -2)
            return n;
        if (wait_fd(st->fd, NW_READ, deadline_ms) <= 0)
            return -1;
    }
}

/* The peer is gone or too slow: what was to go is dropped. */
static int stream_broken(nw_stream *st)
{
    st->broken = 1;
    nw_buf_reset(&st->out);
    return -1;
}

int stream_write(nw_stream *st)
{
    while (st->out.len) {
        /* MSG_MORE on a connection's last response: its tail waits for the
         * close and goes out in one segment with the FIN (stream_end). */
        ssize_t n = send(st->fd, nw_buf_head(&st->out), st->out.len,
                         MSG_NOSIGNAL | (st->last_flush ? MSG_MORE : 0));
        if (n > 0) {
            if (st->s->spew)
                log_debug("spew: connection %llu -> %zd bytes", (unsigned long long)st->id, n);
            nw_buf_consume(&st->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        log_info("connection %llu: peer gone while sending the response: %s",
                 (unsigned long long)st->id, strerror(errno));
        return stream_broken(st);
    }
    return 0;
}

int stream_flush_wait(nw_stream *st, int64_t deadline_ms)
{
    int r;
    while ((r = stream_write(st)) > 0) {
        int w = wait_fd(st->fd, NW_WRITE, deadline_ms);
        if (w > 0)
            continue;
        log_info("connection %llu: %s while sending the response", (unsigned long long)st->id,
                 w == 0 ? "timed out" : "wait failed");
        return stream_broken(st);
    }
    return r;
}

sess_ev_type stream_next(nw_stream *st, sess_event *ev)
{
    for (;;) {
        size_t used = session_parse(&st->sess, st->s->protocol, nw_buf_head(&st->in), st->in.len,
                                    &st->out, ev);
        /* Event data points into the input: consuming does not move it. */
        nw_buf_consume(&st->in, used);
        switch (ev->type) {
        case SESS_EV_LOG:
            stream_log(st, ev->level, ev->msg);
            st->close_after |= ev->close_after;
            continue;
        case SESS_EV_ERROR:
            log_warning("connection %llu: %s; closing", (unsigned long long)st->id, ev->msg);
            st->broken = 1;
            break;
        case SESS_EV_ABORT: {
            /* A peer can repeat it: rate-limited like the session's own. */
            char msg[64];
            snprintf(msg, sizeof msg, "request %u aborted by the front end", ev->id);
            stream_log(st, NW_LOG_INFO, msg);
            break;
        }
        default:
            break;
        }
        return ev->type;
    }
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
void stream_end(nw_stream *st)
{
    if (st->peer != PEER_TCP_LOCAL || st->s->close_mode != NW_CLOSE_RESET)
        return;
    /* The peer may close as soon as it sees the FIN, and its FIN reaching
     * this end first puts it in TIME_WAIT after all (harmless: that is the
     * plain close), so the reset is made ready first and follows at once. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(st->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
        return;
    int unsent = -1;
    if (shutdown(st->fd, SHUT_WR) == 0 && ioctl(st->fd, SIOCOUTQNSD, &unsent) == 0 && unsent == 0)
        return;
    /* Not all of it went out (the peer's window is full): a plain close
     * finishes sending. */
    lg.l_onoff = 0;
    setsockopt(st->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}
