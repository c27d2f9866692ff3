/* conn.h - one FastCGI connection inside a worker: reads bytes, feeds the
 * codec, runs requests, writes responses, keeps the connection alive
 * between requests (FCGI_KEEP_CONN) until `keepalive` seconds of idleness. */
#ifndef NW_CONN_H
#define NW_CONN_H

#include <ev.h>
#include <stdint.h>

#include "buf.h"
#include "proto_fastcgi.h"
#include "proto_uwsgi.h"
#include "worker.h"

enum { CONN_PROTO_UNKNOWN = 0, CONN_PROTO_FASTCGI, CONN_PROTO_UWSGI };

struct nw_conn {
    nw_worker *w;
    uint64_t id;
    int fd;
    ev_io io;
    ev_timer timer; /* idle (keepalive) or stalled-request deadline */
    int proto;      /* CONN_PROTO_*: settled by the first byte under auto */
    fcgi_parser parser;
    uwsgi_parser uparser;
    nw_buf in;          /* read, not yet parsed */
    nw_buf out;         /* encoded, not yet written */
    nw_request *req;    /* the active request, if any */
    int busy;           /* req is being run by the executor: hands off */
    uint64_t served;    /* requests completed on this connection */
    nw_conn *qnext;     /* executor: queue link (threads, sync) */
    struct nw_coro *co; /* async: the request's coroutine */
    ev_io co_io;        /* async: what the coroutine waits on */
    ev_timer co_timer;
    int co_result;
    int close_after; /* close once out is flushed and no request is active */
    int broken;      /* peer gone or protocol error: close when possible */
    int peer;        /* PEER_* (listener.h) */
    int last_flush;  /* the response being flushed is the connection's last */
    nw_conn *prev, *next;
};

/* Takes ownership of an accepted, non-blocking fd and starts serving it. */
void conn_start(nw_worker *w, int fd, int peer);
/* Closes the connection: reason (may be NULL) is logged at info level. */
void conn_close(nw_conn *c, const char *reason);
/* Closes idle connections (graceful stop). */
void conn_close_idle(nw_worker *w);

/* Called on the loop thread by the executor when c->req is over: frees it,
 * then keeps the connection alive or closes it. */
void conn_request_finished(nw_conn *c);

/* For the request module: */
/* Reads more input into c->in, waiting (executor) until deadline_ms.
 * >0 bytes, 0 at EOF, -1 on error or timeout. */
ssize_t conn_fill_wait(nw_conn *c, int64_t deadline_ms);
/* Parses buffered input while a request is active (body, aborts, management
 * records). 0 ok, -1 protocol error (logged, connection broken). */
int conn_parse_more(nw_conn *c);
/* Writes c->out fully, waiting (executor) until deadline_ms. 0 / -1 when the
 * peer is gone (logged at info; connection broken). */
int conn_flush_wait(nw_conn *c, int64_t deadline_ms);

#endif
