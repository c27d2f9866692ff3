/*
 * proto_fastcgi.h - FastCGI 1.0 responder codec, sans I/O.
 *
 * The parser takes bytes and produces events; the encoder functions take
 * response calls and append bytes to a buffer. Nothing here touches a file
 * descriptor, allocates outside the parser's own params buffer, or logs:
 * errors come back as a static reason string for the caller to log.
 *
 * Feeding the same input split at any offset yields the same events (STDIN
 * data may arrive in more, smaller chunks, with the same concatenation).
 */
#ifndef NW_PROTO_FASTCGI_H
#define NW_PROTO_FASTCGI_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Record types and constants from the FastCGI 1.0 specification. */
enum {
    FCGI_VERSION_1 = 1,
    FCGI_HEADER_LEN = 8,
    FCGI_BEGIN_REQUEST = 1,
    FCGI_ABORT_REQUEST = 2,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_STDERR = 7,
    FCGI_DATA = 8,
    FCGI_GET_VALUES = 9,
    FCGI_GET_VALUES_RESULT = 10,
    FCGI_UNKNOWN_TYPE = 11,
    FCGI_KEEP_CONN = 1,
    FCGI_RESPONDER = 1,
    FCGI_AUTHORIZER = 2,
    FCGI_FILTER = 3,
    FCGI_REQUEST_COMPLETE = 0,
    FCGI_CANT_MPX_CONN = 1,
    FCGI_OVERLOADED = 2,
    FCGI_UNKNOWN_ROLE = 3,
};

/* Hard protocol caps that no setting lifts. A peer that exceeds them is cut
 * off (FCGI_EV_ERROR). */
#define FCGI_MAX_PARAMS_BYTES (1u << 20) /* whole params stream of one request */
#define FCGI_MAX_PARAMS_COUNT 4096u      /* name-value pairs in one request */

typedef enum {
    FCGI_EV_NONE = 0,     /* all input consumed, nothing to report */
    FCGI_EV_BEGIN,        /* BEGIN_REQUEST: id, role, keep_conn. Reported for
                             every BEGIN_REQUEST, even while another request is
                             active (the caller answers FCGI_CANT_MPX_CONN) or
                             with a role other than responder (the caller
                             answers FCGI_UNKNOWN_ROLE). */
    FCGI_EV_PARAMS,       /* the empty PARAMS record arrived: data/len is the
                             whole params stream (decode with fcgi_params_decode);
                             valid until the next fcgi_parse call */
    FCGI_EV_STDIN,        /* data/len (> 0): the next chunk of the body; points
                             into the caller's input */
    FCGI_EV_STDIN_END,    /* the empty STDIN record */
    FCGI_EV_ABORT,        /* ABORT_REQUEST for request `id` */
    FCGI_EV_GET_VALUES,   /* management GET_VALUES: data/len is the record's
                             content (name-value pairs with empty values) */
    FCGI_EV_UNKNOWN_TYPE, /* a management record (id 0) of unknown type `type`:
                             answer with fcgi_encode_unknown_type */
    FCGI_EV_ERROR,        /* malformed input: `error` says why; the connection
                             must be closed. Every later call reports it again. */
} fcgi_ev_type;

typedef struct fcgi_event {
    fcgi_ev_type type;
    uint16_t id;       /* request id of the record */
    uint16_t role;     /* BEGIN */
    int keep_conn;     /* BEGIN: FCGI_KEEP_CONN flag set */
    uint8_t type_byte; /* UNKNOWN_TYPE: the record type received */
    const uint8_t *data;
    size_t len;
    const char *error; /* ERROR: static, lowercase, no full stop */
} fcgi_event;

/* The event's name for logs, tests and fuzzers: "BEGIN_REQUEST", "PARAMS",
 * "STDIN", "STDIN end", ... ("?" for a value outside the enum). */
const char *fcgi_event_name(fcgi_ev_type type);

/* Parser state. Zero it with fcgi_parser_init; release with fcgi_parser_free. */
typedef struct fcgi_parser {
    uint8_t hdr[FCGI_HEADER_LEN]; /* the record header being assembled */
    size_t hdr_have;
    uint8_t type;
    uint16_t id;
    size_t content_left; /* content bytes of the current record still to come */
    size_t padding_left;
    size_t content_len; /* of the current record */
    uint8_t kind;       /* what to do with the current record, decided from its header */
    nw_buf body;        /* content of BEGIN/ABORT/GET_VALUES records being assembled */
    nw_buf params;      /* the params stream of the active request */
    uint16_t active_id; /* request id of the last BEGIN accepted as active, 0 = none */
    int params_done;
    int stdin_done;
    const char *error;
} fcgi_parser;

void fcgi_parser_init(fcgi_parser *p);
void fcgi_parser_free(fcgi_parser *p);

/* The caller tells the parser which request is active: after answering a
 * BEGIN with the request it accepted (fcgi_parser_accept), and when that
 * request ended (fcgi_parser_end). Records for any other id are ignored as
 * the spec says (except BEGIN, always reported). PARAMS and STDIN records for
 * the active id after their stream ended are an error. */
void fcgi_parser_accept(fcgi_parser *p, uint16_t id);
void fcgi_parser_end(fcgi_parser *p);

/* Parses from in[0..len). Returns how many bytes were consumed and fills ev.
 * Call again with the rest until it returns with ev->type == FCGI_EV_NONE
 * and everything consumed. At most one event per call. */
size_t fcgi_parse(fcgi_parser *p, const uint8_t *in, size_t len, fcgi_event *ev);

/* Decodes a name-value pair stream (FastCGI 1- and 4-byte lengths), checking
 * every length against the remaining bytes without integer overflow. Calls
 * fn for each pair; stops and returns fn's value if non-zero. Returns 0 on
 * success, -1 on malformed input with *error set (static string). Lengths
 * above FCGI_MAX_PARAMS_BYTES or more than FCGI_MAX_PARAMS_COUNT pairs are
 * malformed. */
int fcgi_params_decode(const uint8_t *data, size_t len,
                       int (*fn)(void *arg, const char *name, size_t nlen, const char *value,
                                 size_t vlen),
                       void *arg, const char **error);

/* Encoders: append whole records to out. */
/* Appends one name-value pair in FastCGI encoding (1- or 4-byte lengths). */
void fcgi_encode_pair(nw_buf *out, const char *name, size_t nlen, const char *value, size_t vlen);
/* STDOUT (or STDERR) stream data, split into records of at most 65535 bytes,
 * padded to a multiple of 8. len 0 appends the empty end-of-stream record. */
void fcgi_encode_stream(nw_buf *out, uint8_t type, uint16_t id, const void *data, size_t len);
void fcgi_encode_end_request(nw_buf *out, uint16_t id, uint32_t app_status,
                             uint8_t protocol_status);
void fcgi_encode_unknown_type(nw_buf *out, uint8_t type);
/* Answers a GET_VALUES query (its content in q/qlen) with the values narwhal
 * knows: FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS ("0"). Unknown
 * names are left out, as the spec says. Returns -1 if q is malformed. */
int fcgi_encode_get_values_result(nw_buf *out, const uint8_t *q, size_t qlen, unsigned max_conns,
                                  unsigned max_reqs);

#endif
