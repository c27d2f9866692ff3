/*
 * proto_uwsgi.h - the uwsgi protocol (as nginx's uwsgi_pass speaks it),
 * sans I/O.
 *
 * A request is a 4-byte header (modifier1, little-endian 16-bit vars block
 * size, modifier2), the vars block (repeated: LE16 key length, key, LE16
 * value length, value) and then CONTENT_LENGTH body bytes. The response is
 * raw HTTP/1.x (status line, headers, blank line, body) ended by closing
 * the connection. One request per connection.
 *
 * Feeding the same input split at any offset yields the same events (BODY
 * data may arrive in more, smaller chunks with the same concatenation).
 */
#ifndef NW_PROTO_UWSGI_H
#define NW_PROTO_UWSGI_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define UWSGI_HEADER_LEN 4
/* The modifier1 values narwhal serves. 0: a request with a vars block (what
 * nginx sends unless uwsgi_modifier1 says otherwise). 30: the same, framed
 * the same, with PATH_INFO to lose SCRIPT_NAME's prefix (uWSGI's
 * UWSGI_MODIFIER_MANAGE_PATH_INFO, in many nginx configs written for
 * uWSGI); the codec only reports it, the uwsgi session rewrites PATH_INFO
 * (session_uwsgi.c). */
#define UWSGI_MODIFIER1_VARS 0
#define UWSGI_MODIFIER1_MANAGE_PATH_INFO 30

static inline int uwsgi_modifier1_served(uint8_t modifier1)
{
    return modifier1 == UWSGI_MODIFIER1_VARS || modifier1 == UWSGI_MODIFIER1_MANAGE_PATH_INFO;
}
/* Hard caps no setting lifts. */
#define UWSGI_MAX_VARS_COUNT 4096u
#define UWSGI_MAX_BODY ((uint64_t)1 << 40)

typedef enum {
    UWSGI_EV_NONE = 0, /* all input consumed, nothing to report */
    UWSGI_EV_VARS,     /* the whole vars block arrived and is well formed:
                          data/len is the block (decode with uwsgi_vars_decode);
                          body_len is CONTENT_LENGTH (0 if absent or empty).
                          Valid until the next uwsgi_parse call. */
    UWSGI_EV_BODY,     /* data/len (> 0): the next chunk of the body; points
                          into the caller's input */
    UWSGI_EV_BODY_END, /* the body is complete (reported right after VARS when
                          body_len is 0) */
    UWSGI_EV_ERROR,    /* malformed input: `error` says why; close the
                          connection. Sticky. */
} uwsgi_ev_type;

typedef struct uwsgi_event {
    uwsgi_ev_type type;
    uint8_t modifier1, modifier2;
    const uint8_t *data;
    size_t len;
    uint64_t body_len;
    const char *error; /* static, lowercase, no full stop */
} uwsgi_event;

/* The event's name for logs, tests and fuzzers: "vars", "body", "body end",
 * "malformed input" ("?" outside the enum). */
const char *uwsgi_event_name(uwsgi_ev_type type);

typedef struct uwsgi_parser {
    uint8_t hdr[UWSGI_HEADER_LEN];
    size_t hdr_have;
    size_t vars_len; /* from the header */
    nw_buf vars;     /* the vars block being assembled */
    uint64_t body_left;
    int state; /* private */
    uint8_t modifier1, modifier2;
    const char *error;
} uwsgi_parser;

void uwsgi_parser_init(uwsgi_parser *p);
void uwsgi_parser_free(uwsgi_parser *p);

/* Parses from in[0..len). Returns how many bytes were consumed and fills ev;
 * at most one event per call. Bytes after the body are an error ("data
 * after the request body"): one request per connection. A modifier1 other
 * than 0 and 30 is an error ("unsupported uwsgi modifier1", the event's
 * modifier1 says which). */
size_t uwsgi_parse(uwsgi_parser *p, const uint8_t *in, size_t len, uwsgi_event *ev);

/* Decodes a vars block, checking every length against the block. Calls fn for
 * each pair; stops and returns fn's value if non-zero. 0 on success, -1 on
 * malformed input with *error set. Empty keys are malformed. */
int uwsgi_vars_decode(const uint8_t *data, size_t len,
                      int (*fn)(void *arg, const char *key, size_t klen, const char *value,
                                size_t vlen),
                      void *arg, const char **error);

/* Appends one var (for tests and clients). -1 if a length exceeds 65535. */
int uwsgi_encode_var(nw_buf *out, const char *key, size_t klen, const char *value, size_t vlen);
/* Appends a request header for a vars block of vars_len bytes. -1 if > 65535. */
int uwsgi_encode_header(nw_buf *out, uint8_t modifier1, size_t vars_len, uint8_t modifier2);
/* Appends the response head: "HTTP/1.1 <status> <reason>\r\n", the header
 * lines given (already "Name: value\r\n" each), and the blank line. */
void uwsgi_encode_head(nw_buf *out, int status, const char *reason, const void *headers,
                       size_t headers_len);

#endif
