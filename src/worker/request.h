/* request.h - one request: its params, its body, its response. The app sees
 * it as the opaque nw_request of <narwhal.h>. */
#ifndef NW_REQUEST_H
#define NW_REQUEST_H

#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "narwhal.h"

typedef struct nw_conn nw_conn;

struct nw_request {
    nw_conn *conn;
    uint16_t id;
    int keep_conn;
    /* params: "name\0value\0" pairs in pbuf (sized once, never moved) */
    nw_buf pbuf;
    const char **pv; /* pv[2i] name, pv[2i+1] value, into pbuf */
    size_t np, pcap;
    /* body */
    nw_buf body;   /* received, not yet read by the app */
    int body_done; /* the empty STDIN record arrived */
    /* response */
    int status;
    nw_buf headers; /* "Name: value\r\n" lines */
    int headers_sent;
    int flushed; /* some of the response has gone out to the socket */
    nw_buf out; /* stdout payload not yet encoded */
    uint64_t body_bytes;
    int failed;  /* peer gone or protocol error: reads and writes fail */
    int aborted; /* FCGI_ABORT_REQUEST */
    int64_t start_ms;
    struct timespec start_rt;
    int64_t deadline_ms; /* -1 = none */
};

nw_request *request_new(nw_conn *c, uint16_t id, int keep_conn);
/* Marks the start of the request (its params are complete): start time and
 * deadline (`timeout`). */
void request_start(nw_request *r);
void request_free(nw_request *r);
/* Decodes the FastCGI params stream into r. 0, or -1 with *error set. */
int request_set_params(nw_request *r, const uint8_t *data, size_t len, const char **error);
/* The same for a uwsgi vars block. */
int request_set_vars(nw_request *r, const uint8_t *data, size_t len, const char **error);
/* Runs the app for r (after the limits), finishes the response, logs it.
 * The connection core calls it once params are complete. */
void request_run(nw_request *r);

#endif
