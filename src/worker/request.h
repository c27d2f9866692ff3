/* request.h - the life of one request: its params, its body, its response,
 * and running the app's handler for it. The app sees it as the opaque
 * nw_request of <narwhal.h> (whose functions are in api.c). A request talks
 * to its connection's stream only (stream.h), never to the connection core
 * above it. */
#ifndef NW_REQUEST_H
#define NW_REQUEST_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "narwhal.h"
#include "session.h"
#include "settings.h"
#include "stream.h"

/* A request named in the error log: its method and at most 1 KiB of its
 * URI (a URI can be as long as the params, up to a megabyte). */
#define REQ_URI_FMT "%.1024s"
#define REQ_FMT "%.16s " REQ_URI_FMT

struct nw_request {
    nw_stream *st; /* the connection's bytes (borrowed) */
    const nw_settings *s;
    nw_handler *handler;
    uint16_t id;
    int keep_conn;
    /* params: "name\0value\0" pairs in pbuf (sized once, never moved) */
    nw_buf pbuf;
    const char **pv; /* pv[2i] name, pv[2i+1] value, into pbuf (the value
                        follows its name's NUL: the name's length is
                        pv[2i+1] - pv[2i] - 1) */
    size_t np, pcap;
    const char *method, *uri; /* REQUEST_METHOD, REQUEST_URI, or NULL:
                                 looked up once, asked for many times */
    /* body */
    nw_buf body;   /* received, not yet read by the app */
    int body_done; /* the whole body arrived */
    /* response */
    int status;
    nw_buf headers; /* "Name: value\r\n" lines */
    int headers_sent;
    int flushed;          /* some of the response has gone out to the socket */
    nw_buf out;           /* body bytes (and the head) not yet encoded */
    nw_buf err;           /* messages for the front end's error log, not yet sent */
    unsigned err_dropped; /* ... and how many did not fit */
    uint64_t body_bytes;
    int failed;  /* peer gone or protocol error: reads and writes fail */
    int aborted; /* the front end aborted it */
    int64_t start_ms;          /* nw_now_ms() when it began */
    struct timespec start_mono; /* the same, to the microsecond: its duration */
    struct timespec start_rt;   /* the wall clock then: the access log's time */
    int64_t deadline_ms; /* -1 = none */
    /* The thread the handler runs on (set by request_run): the app API
     * refuses calls from any other (api.c). */
    pthread_t owner;
    int owner_set;
    int foreign_warned; /* a call from another thread was logged */
};

/* A request from the session's REQUEST event: decodes its params. NULL on
 * malformed params, with *error set (static). */
nw_request *request_new(nw_stream *st, const nw_settings *s, nw_handler *handler,
                        const sess_event *ev, const char **error);
/* Marks the start of the request (it is about to run): start time and
 * deadline (`timeout`). */
void request_start(nw_request *r);
void request_free(nw_request *r);
/* Applies a BODY, BODY_END or ABORT event to the request. */
void request_take(nw_request *r, const sess_event *ev);
/* Parses the connection's buffered input into the request (body, aborts):
 * 1 when that moved it on, 0 when more input is needed, -1 on a protocol
 * error (the request is failed). */
int request_pump(nw_request *r);

/* gunicorn's request limits (limit_request_line, limit_request_fields,
 * limit_request_field_size), checked before the app sees the request: the
 * refusal status (414, 431) with *why set, or 0. */
int request_check_limits(const nw_request *r, const nw_settings *s, const char **why);
/* Runs the app for r (after the limits), finishes the response, logs it.
 * On whatever thread or coroutine the executor chose. */
void request_run(nw_request *r);

/* The response, for the app API (api.c). */
/* The last value of name (nginx sends a repeated param in config order),
 * or NULL. */
const char *request_param(const nw_request *r, const char *name);
/* Adds a header line (the caller validated it). */
void request_add_header(nw_request *r, const char *name, const char *value);
/* Stages body bytes (the head first, if it has not gone); sends what is
 * staged once it is large. 0, or -1 when the peer is gone. */
int request_write(nw_request *r, const void *buf, size_t len);
/* Before the handler waits, what it wrote goes out. */
void request_flush_before_wait(nw_request *r);
/* A message for the front end's error log, where the protocol has one:
 * escaped (no control bytes: nothing can forge a line there), queued, and
 * sent after the response head, merged into one record per flush. At most
 * REQUEST_ERR_QUEUE bytes wait (nginx cuts an error log line at 2 KiB, and
 * its context follows the message); what does not fit is counted and the
 * count goes out instead ("(N more in narwhal's error log)"). */
#define REQUEST_ERR_QUEUE 1024
void request_log_to_peer(nw_request *r, const char *msg, size_t len);

#endif
