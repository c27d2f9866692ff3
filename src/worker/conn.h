/* conn.h - the connection core: a worker's connections on its event loop.
 *
 * A connection is read and parsed on the loop until a request's params are
 * complete; then the loop stops watching it and posts the request to the
 * executor as a task, and gets the connection back when the task is done:
 * the loop only ever touches idle connections and requests that have not
 * arrived in full. A request on its way must arrive in full within
 * `timeout` of its first byte; between requests a connection is kept
 * (FastCGI's FCGI_KEEP_CONN) for `keepalive` seconds of idleness. FastCGI
 * and uwsgi alike: the protocol is the stream's session's business.
 *
 * The core tells its owner (the worker) what happens through the hooks it
 * was given; it never calls up. */
#ifndef NW_CONN_H
#define NW_CONN_H

#include <ev.h>
#include <stdint.h>

#include "executor.h"
#include "narwhal.h"
#include "request.h"
#include "settings.h"
#include "stream.h"

typedef struct nw_conn nw_conn;

/* What the core tells its owner, on the loop thread. */
typedef struct nw_conn_hooks {
    void (*opened)(void *arg);        /* a connection was accepted */
    void (*closed)(void *arg);        /* ... and is gone */
    void (*request_begun)(void *arg); /* a request was posted to the executor */
    void (*request_done)(void *arg);  /* ... and is over */
    void *arg;
} nw_conn_hooks;

/* A worker's connections. */
typedef struct nw_conns {
    struct ev_loop *loop;
    const nw_settings *s;
    nw_handler *handler; /* the app's */
    nw_conn_hooks hooks;
    nw_conn *head; /* every open connection */
    int n;
    int fresh; /* of them, accepted and no request dispatched yet */
    uint64_t next_id;
    int stopping;  /* the owner's graceful stop: no connection is kept */
    int last_ones; /* the owner stops after the requests in progress: each
                      ends its connection */
    /* limit_pending_bytes: what all connections hold of requests on their
     * way, and the refusals not yet logged */
    size_t pending;
    int64_t pending_logged_ms;
    unsigned pending_refused;
} nw_conns;

struct nw_conn {
    nw_conns *set;
    nw_stream st;
    ev_io io;
    ev_timer timer;     /* idle (keepalive) or stalled-request deadline */
    int64_t arrive_by;  /* ms: the request on its way is due, 0 = none */
    int64_t stuck_by;   /* ms: answers the peer does not read are due, 0 = none */
    const char *expiry; /* why the timer closes the connection (NULL: idle) */
    nw_request *req;    /* the active request, if any */
    int busy;           /* req is with the executor: hands off */
    int fresh;          /* counted in set->fresh */
    uint64_t served;    /* requests completed on this connection */
    size_t held;        /* of a request on its way: counted in set->pending */
    nw_task task;       /* what the executor runs: req */
    nw_conn *prev, *next;
};

void conn_set_init(nw_conns *cs, struct ev_loop *loop, const nw_settings *s, nw_handler *handler,
                   nw_conn_hooks hooks);
/* Takes ownership of an accepted, non-blocking fd and starts serving it. */
void conn_start(nw_conns *cs, int fd, int peer);
/* Graceful stop: no connection is kept past its next response, and one
 * that stays idle is closed after a second (fresh ones get two to send
 * their first request). */
void conn_set_stopping(nw_conns *cs);

#endif
