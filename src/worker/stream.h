/* stream.h - a connection's bytes: its socket, what was read and not yet
 * parsed, what was encoded and not yet written, and the protocol session
 * between them. Reads and writes wait through wait.h, so the same calls
 * serve the loop, a pool thread and a coroutine. Below the request and the
 * connection core; knows neither. */
#ifndef NW_STREAM_H
#define NW_STREAM_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "session.h"
#include "settings.h"

typedef struct nw_stream {
    int fd;
    uint64_t id; /* the connection's number in logs */
    int peer;    /* PEER_* (listener.h) */
    const nw_settings *s;
    nw_session sess;
    nw_buf in;       /* read, not yet parsed */
    nw_buf out;      /* encoded, not yet written */
    int broken;      /* peer gone or protocol error: close when possible */
    int last_flush;  /* the response being flushed is the connection's last */
    int closing;     /* the connection ends after the response in progress
                        (the worker is stopping); set by the core, read by
                        the request's thread: atomic */
    int close_after; /* the session asked: close once out is written */
    /* The session's messages this second (stream_next logs a few). */
    int64_t log_since;
    unsigned log_count;
    unsigned long long log_dropped; /* not logged since the last summary */
    int log_dropped_level;
} nw_stream;

/* Sets up a stream for an accepted, non-blocking fd (owned from now on). */
void stream_init(nw_stream *st, int fd, uint64_t id, int peer, const nw_settings *s);
/* Closes the fd and frees the buffers and the session. */
void stream_free(nw_stream *st);

/* One read(2) into st->in: >0 bytes, 0 at EOF, -1 on error, -2 when it
 * would block. */
ssize_t stream_read(nw_stream *st);
/* Reads more into st->in, waiting until deadline_ms (-1 = none). >0 bytes,
 * 0 at EOF, -1 on error or timeout. */
ssize_t stream_fill_wait(nw_stream *st, int64_t deadline_ms);
/* Writes what the socket takes of st->out now: 0 when all of it went, 1
 * when some is left (wait for room), -1 when the peer is gone (logged at
 * info; the stream is broken and its output dropped). */
int stream_write(nw_stream *st);
/* Writes st->out fully, waiting until deadline_ms. 0, or -1 when the peer
 * is gone or the deadline passed (logged at info; the stream is broken and
 * its output dropped). */
int stream_flush_wait(nw_stream *st, int64_t deadline_ms);

/* The next event of the buffered input (session.h), consuming what it
 * parsed. LOG events are logged here (a few a second per connection, then
 * a count) and not returned (one that asks to close sets close_after); an
 * ERROR is logged and breaks the stream. Returns the event's type
 * (SESS_EV_NONE: parse more input first). */
sess_ev_type stream_next(nw_stream *st, sess_event *ev);
/* The session's protocol, once the first byte settled it. */
static inline const nw_proto *stream_proto(const nw_stream *st)
{
    return st->sess.proto;
}

/* The connection's last response is written: end it the cheap way where
 * that is safe (close_mode = reset, a TCP peer on this host). Call just
 * before stream_free. */
void stream_end(nw_stream *st);

#endif
