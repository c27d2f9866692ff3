/* session.h - a protocol's rules for one connection, behind one interface.
 *
 * The codecs (proto_fastcgi.h, proto_uwsgi.h) turn bytes into records; a
 * session decides what the records mean for a server: which request is
 * active, what a management record is answered with, when a request's
 * params are complete, how a response is framed. The connection core and
 * the request see only this interface (nginx gives each upstream protocol
 * its callbacks the same way), so neither asks which protocol it speaks.
 *
 * Like the codecs, a session does no I/O and does not log: answers are
 * appended to the caller's output buffer, and what is worth logging comes
 * back as an event for the caller to log with its own context. */
#ifndef NW_SESSION_H
#define NW_SESSION_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "buf.h"
#include "settings.h"
#include "proto_fastcgi.h"
#include "proto_uwsgi.h"

typedef enum {
    SESS_EV_NONE = 0, /* all input consumed: wait for more */
    SESS_EV_REQUEST,  /* a request's params are complete: id, keep_conn,
                         body_done, and data/len, the encoded params (decode
                         with proto->params; valid until the next parse) */
    SESS_EV_BODY,     /* data/len (> 0): the next chunk of the active
                         request's body; points into the caller's input */
    SESS_EV_BODY_END, /* the active request's body is complete */
    SESS_EV_ABORT,    /* the front end aborted the active request (id) */
    SESS_EV_LOG,      /* something worth logging (level, msg); the session
                         has answered it already. close_after: end the
                         connection once the output is written */
    SESS_EV_ERROR,    /* malformed input: msg says why; close the connection.
                         Every later parse reports it again. */
} sess_ev_type;

typedef struct sess_event {
    sess_ev_type type;
    uint16_t id;
    int keep_conn;   /* REQUEST: the connection serves another request after */
    int body_done;   /* REQUEST: there is no body to come */
    int close_after; /* LOG */
    int level;       /* LOG: NW_LOG_* */
    const uint8_t *data;
    size_t len;
    const char *msg; /* LOG, ERROR: the session's own buffer, lowercase, no
                        full stop; valid until the next parse */
} sess_event;

typedef struct nw_session nw_session;

/* Decodes name/value pairs: fn(arg, name, nlen, value, vlen) for each. */
typedef int (*sess_pair_fn)(void *arg, const char *name, size_t nlen, const char *value,
                            size_t vlen);

/* One protocol. Every function that takes `out` appends the bytes to send. */
typedef struct nw_proto {
    const char *name;            /* "fastcgi", "uwsgi" */
    const char *params_name;     /* for messages: "fastcgi params", "uwsgi vars" */
    void (*init)(nw_session *s); /* the protocol's parser state */
    void (*free)(nw_session *s);
    void (*over)(nw_session *s); /* the active request is over */
    /* Bytes the parser holds of a request on its way (params, vars). */
    size_t (*held)(const nw_session *s);
    /* Parses from in[0..len): how many bytes were consumed, at most one event
     * in ev. Answers management records into out. */
    size_t (*parse)(nw_session *s, const uint8_t *in, size_t len, nw_buf *out, sess_event *ev);
    /* Decodes a REQUEST event's params as the app is to see them (uwsgi's
     * modifier1 30 takes SCRIPT_NAME off PATH_INFO), from the session's state
     * of the request: call it before the next parse. 0, or -1 with *error
     * set. */
    int (*params)(const nw_session *s, const uint8_t *data, size_t len, sess_pair_fn fn, void *arg,
                  const char **error);
    /* The response head as the protocol frames it (a CGI head or an HTTP
     * one), into staged body bytes; headers are "Name: value\r\n" lines. */
    void (*head)(nw_buf *staged, int status, const char *reason, const void *headers,
                 size_t headers_len);
    /* Response body bytes (len may be 0: nothing is appended). */
    void (*body)(nw_session *s, nw_buf *out, const void *data, size_t len);
    /* The response body is over. */
    void (*body_end)(nw_session *s, nw_buf *out);
    /* The request is complete (after body_end, once its input is drained). */
    void (*end)(nw_session *s, nw_buf *out);
    /* A message for the front end's error log, where the protocol carries
     * one (FastCGI's STDERR); NULL where it does not. */
    void (*log)(nw_session *s, nw_buf *out, const char *msg, size_t len);
} nw_proto;

extern const nw_proto session_fastcgi;
extern const nw_proto session_uwsgi;

struct nw_session {
    const nw_proto *proto; /* NULL until the first byte settled it */
    union {
        fcgi_parser fcgi;
        uwsgi_parser uwsgi;
    } p;
    int active;                   /* a request was accepted and is not over */
    int params_done;              /* ... and its params are complete */
    int input_over;               /* the protocol reads nothing more on this connection
                                     (uwsgi, after the body): what comes is dropped */
    uint16_t req_id;              /* the active request's id */
    int req_keep_conn;            /* the active request's FCGI_KEEP_CONN */
    unsigned max_conns, max_reqs; /* FCGI_GET_VALUES answers */
    /* --spew: called with each wire event ("fastcgi PARAMS id 1 (23
     * bytes)"), NULL = off. */
    void (*trace)(void *arg, const char *what);
    void *trace_arg;
    char msg[256];
};

/* Sets up an undecided session: max_conns and max_reqs are what the whole
 * server takes at once (FCGI_GET_VALUES). */
void session_init(nw_session *s, unsigned max_conns, unsigned max_reqs);
void session_free(nw_session *s);
/* Settles the protocol from the first byte of input, under the `protocol`
 * setting (nw_protocol): FastCGI's version byte is 1, nginx's uwsgi
 * modifier1 is 0 (or 30, `uwsgi_modifier1 30`). 0, or -1 with s->msg
 * saying why. */
int session_detect(nw_session *s, nw_protocol setting, uint8_t first);
/* Parses in[0..len) (detecting the protocol on the first byte if it is not
 * settled): bytes consumed, one event. */
size_t session_parse(nw_session *s, nw_protocol setting, const uint8_t *in, size_t len, nw_buf *out,
                     sess_event *ev);
/* Bytes the session holds of a request that has not arrived in full (0
 * before the protocol is settled). */
size_t session_held(const nw_session *s);
/* The active request is over (whatever became of it): the next one may
 * begin. */
void session_request_over(nw_session *s);

/* For the protocol files: formats s->msg. (Inline, so that they call
 * nothing in session.c, which calls them.) */
static inline const char *session_msg(nw_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline const char *session_msg(nw_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
    return s->msg;
}

#endif
