/* proto_fastcgi.c - FastCGI 1.0 responder codec, sans I/O. */
#include "proto_fastcgi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the parser does with a record, decided once its header is complete.
 * The decision is kept for the whole record, so the caller ending or
 * accepting a request in between two chunks cannot change where a record's
 * bytes go halfway through it. */
enum {
    KIND_SKIP,       /* content dropped, no event */
    KIND_BEGIN,      /* content assembled in body, FCGI_EV_BEGIN */
    KIND_ABORT,      /* content dropped, FCGI_EV_ABORT */
    KIND_GET_VALUES, /* content assembled in body, FCGI_EV_GET_VALUES */
    KIND_UNKNOWN,    /* content dropped, FCGI_EV_UNKNOWN_TYPE */
    KIND_PARAMS,     /* content appended to params; empty record ends the stream */
    KIND_STDIN,      /* content handed out as it comes; empty record ends the stream */
};

const char *fcgi_event_name(fcgi_ev_type type)
{
    static const char *const names[] = {
        [FCGI_EV_NONE] = "none",
        [FCGI_EV_BEGIN] = "BEGIN_REQUEST",
        [FCGI_EV_PARAMS] = "PARAMS",
        [FCGI_EV_STDIN] = "STDIN",
        [FCGI_EV_STDIN_END] = "STDIN end",
        [FCGI_EV_ABORT] = "ABORT_REQUEST",
        [FCGI_EV_GET_VALUES] = "GET_VALUES",
        [FCGI_EV_UNKNOWN_TYPE] = "unknown type",
        [FCGI_EV_ERROR] = "malformed input",
    };
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "?";
}

void fcgi_parser_init(fcgi_parser *p)
{
    memset(p, 0, sizeof *p);
}

void fcgi_parser_free(fcgi_parser *p)
{
    nw_buf_free(&p->body);
    nw_buf_free(&p->params);
}

void fcgi_parser_accept(fcgi_parser *p, uint16_t id)
{
    p->active_id = id;
    p->params_done = 0;
    p->stdin_done = 0;
    nw_buf_reset(&p->params);
}

void fcgi_parser_end(fcgi_parser *p)
{
    fcgi_parser_accept(p, 0);
}

static uint16_t get16(const uint8_t *b)
{
    return (uint16_t)(b[0] << 8 | b[1]);
}

static void put16(uint8_t *b, uint16_t v)
{
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static void ev_reset(fcgi_event *ev, uint16_t id)
{
    memset(ev, 0, sizeof *ev);
    ev->id = id;
}

static int fail(fcgi_parser *p, fcgi_event *ev, const char *why)
{
    p->error = why;
    ev_reset(ev, p->id);
    ev->type = FCGI_EV_ERROR;
    ev->error = why;
    return -1;
}

/* Decides what to do with the record whose header is in p->hdr. Returns -1
 * (with ev filled) if the header alone makes the input malformed. */
static int start_record(fcgi_parser *p, fcgi_event *ev)
{
    const uint8_t *h = p->hdr;

    if (h[0] != FCGI_VERSION_1)
        return fail(p, ev, "bad fastcgi version byte");
    p->type = h[1];
    p->id = get16(h + 2);
    p->content_len = get16(h + 4);
    p->content_left = p->content_len;
    p->padding_left = h[6];
    p->kind = KIND_SKIP;
    nw_buf_reset(&p->body);

    if (p->id == 0) {
        /* Management records. */
        if (p->type == FCGI_BEGIN_REQUEST)
            return fail(p, ev, "begin request with request id 0");
        p->kind = p->type == FCGI_GET_VALUES ? KIND_GET_VALUES : KIND_UNKNOWN;
        return 0;
    }

    int active = p->id == p->active_id;
    switch (p->type) {
    case FCGI_BEGIN_REQUEST:
        if (p->content_len != 8)
            return fail(p, ev, "begin request content length is not 8");
        p->kind = KIND_BEGIN;
        break;
    case FCGI_ABORT_REQUEST:
        if (active)
            p->kind = KIND_ABORT;
        break;
    case FCGI_PARAMS:
        if (!active)
            break;
        if (p->params_done)
            return fail(p, ev, "params after end of stream");
        if (p->content_len > FCGI_MAX_PARAMS_BYTES - p->params.len)
            return fail(p, ev, "params stream too long");
        p->kind = KIND_PARAMS;
        break;
    case FCGI_STDIN:
        if (!active)
            break;
        if (p->stdin_done)
            return fail(p, ev, "stdin after end of stream");
        p->kind = KIND_STDIN;
        break;
    case FCGI_END_REQUEST:
    case FCGI_STDOUT:
    case FCGI_STDERR:
    case FCGI_GET_VALUES_RESULT:
    case FCGI_UNKNOWN_TYPE:
        /* Only the application sends these. */
        return fail(p, ev, "unexpected record type from web server");
    default:
        /* FCGI_DATA (filter role only), and GET_VALUES or unknown types with
         * a request id: nothing a responder acts on. */
        break;
    }
    return 0;
}

/* The current record's content is complete. Returns 1 if ev was filled. */
static int end_content(fcgi_parser *p, fcgi_event *ev)
{
    const uint8_t *b = p->body.len ? nw_buf_head(&p->body) : (const uint8_t *)"";

    ev_reset(ev, p->id);
    switch (p->kind) {
    case KIND_BEGIN:
        /* start_record made sure the content is 8 bytes. */
        ev->type = FCGI_EV_BEGIN;
        ev->role = get16(b);
        ev->keep_conn = (b[2] & FCGI_KEEP_CONN) != 0;
        return 1;
    case KIND_ABORT:
        ev->type = FCGI_EV_ABORT;
        return 1;
    case KIND_GET_VALUES:
        ev->type = FCGI_EV_GET_VALUES;
        ev->data = b;
        ev->len = p->body.len;
        return 1;
    case KIND_UNKNOWN:
        ev->type = FCGI_EV_UNKNOWN_TYPE;
        ev->type_byte = p->type;
        return 1;
    case KIND_PARAMS:
        if (p->content_len)
            return 0;
        p->params_done = 1;
        ev->type = FCGI_EV_PARAMS;
        ev->data = p->params.len ? nw_buf_head(&p->params) : (const uint8_t *)"";
        ev->len = p->params.len;
        return 1;
    case KIND_STDIN:
        if (p->content_len)
            return 0;
        p->stdin_done = 1;
        ev->type = FCGI_EV_STDIN_END;
        return 1;
    default:
        return 0;
    }
}

size_t fcgi_parse(fcgi_parser *p, const uint8_t *in, size_t len, fcgi_event *ev)
{
    size_t pos = 0;

    if (p->error) {
        fail(p, ev, p->error);
        return 0;
    }
    while (pos < len) {
        size_t avail = len - pos;

        if (p->content_left) {
            size_t n = avail < p->content_left ? avail : p->content_left;
            const uint8_t *at = in + pos;
            pos += n;
            p->content_left -= n;
            if (p->kind == KIND_BEGIN || p->kind == KIND_GET_VALUES)
                nw_buf_append(&p->body, at, n);
            else if (p->kind == KIND_PARAMS)
                nw_buf_append(&p->params, at, n);
            if (p->kind == KIND_STDIN) {
                ev_reset(ev, p->id);
                ev->type = FCGI_EV_STDIN;
                ev->data = at;
                ev->len = n;
                return pos;
            }
            if (!p->content_left && end_content(p, ev))
                return pos;
        } else if (p->padding_left) {
            size_t n = avail < p->padding_left ? avail : p->padding_left;
            pos += n;
            p->padding_left -= n;
        } else {
            size_t n = FCGI_HEADER_LEN - p->hdr_have;
            if (n > avail)
                n = avail;
            memcpy(p->hdr + p->hdr_have, in + pos, n);
            p->hdr_have += n;
            pos += n;
            if (p->hdr_have < FCGI_HEADER_LEN)
                break;
            p->hdr_have = 0;
            if (start_record(p, ev) < 0)
                return pos;
            if (!p->content_left && end_content(p, ev))
                return pos;
        }
    }
    ev_reset(ev, 0);
    ev->type = FCGI_EV_NONE;
    return pos;
}

/* Reads one FastCGI length (1 byte if the high bit is clear, else 4 bytes
 * with the high bit masked off) at data[*pos]. */
static int read_len(const uint8_t *data, size_t len, size_t *pos, size_t *out, const char **error)
{
    if (*pos >= len) {
        *error = "truncated param length";
        return -1;
    }
    const uint8_t *b = data + *pos;
    uint32_t v;
    if (!(b[0] & 0x80)) {
        v = b[0];
        *pos += 1;
    } else {
        if (len - *pos < 4) {
            *error = "truncated param length";
            return -1;
        }
        v = (uint32_t)(b[0] & 0x7f) << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        *pos += 4;
    }
    if (v > FCGI_MAX_PARAMS_BYTES) {
        *error = "param length too large";
        return -1;
    }
    *out = v;
    return 0;
}

int fcgi_params_decode(const uint8_t *data, size_t len,
                       int (*fn)(void *arg, const char *name, size_t nlen, const char *value,
                                 size_t vlen),
                       void *arg, const char **error)
{
    size_t pos = 0, count = 0;

    while (pos < len) {
        size_t nlen, vlen;
        if (++count > FCGI_MAX_PARAMS_COUNT) {
            *error = "too many params";
            return -1;
        }
        if (read_len(data, len, &pos, &nlen, error) < 0 ||
            read_len(data, len, &pos, &vlen, error) < 0)
            return -1;
        if (nlen == 0) {
            *error = "empty param name";
            return -1;
        }
        /* pos <= len here, so the subtraction cannot wrap. */
        if (nlen > len - pos || vlen > len - pos - nlen) {
            *error = "param length beyond data";
            return -1;
        }
        const char *name = (const char *)data + pos;
        const char *value = name + nlen;
        pos += nlen + vlen;
        int rc = fn(arg, name, nlen, value, vlen);
        if (rc)
            return rc;
    }
    return 0;
}

static void put_len(nw_buf *out, size_t n)
{
    if (n > 0x7fffffff)
        abort(); /* cannot be encoded; a caller bug */
    if (n < 0x80) {
        nw_buf_appendc(out, (char)n);
        return;
    }
    uint8_t b[4] = {(uint8_t)(n >> 24 | 0x80), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    nw_buf_append(out, b, sizeof b);
}

void fcgi_encode_pair(nw_buf *out, const char *name, size_t nlen, const char *value, size_t vlen)
{
    put_len(out, nlen);
    put_len(out, vlen);
    nw_buf_append(out, name, nlen);
    nw_buf_append(out, value, vlen);
}

/* Appends one record, its content padded to a multiple of 8 with zeros. */
static void put_record(nw_buf *out, uint8_t type, uint16_t id, const void *content, uint16_t clen)
{
    uint8_t pad = (uint8_t)((8 - clen % 8) % 8);
    uint8_t *h = nw_buf_reserve(out, FCGI_HEADER_LEN + (size_t)clen + pad);

    h[0] = FCGI_VERSION_1;
    h[1] = type;
    put16(h + 2, id);
    put16(h + 4, clen);
    h[6] = pad;
    h[7] = 0;
    if (clen)
        memcpy(h + FCGI_HEADER_LEN, content, clen);
    memset(h + FCGI_HEADER_LEN + clen, 0, pad);
    out->len += FCGI_HEADER_LEN + (size_t)clen + pad;
}

void fcgi_encode_stream(nw_buf *out, uint8_t type, uint16_t id, const void *data, size_t len)
{
    const uint8_t *d = data;

    if (!len) {
        put_record(out, type, id, NULL, 0);
        return;
    }
    while (len) {
        uint16_t n = len > 0xffff ? 0xffff : (uint16_t)len;
        put_record(out, type, id, d, n);
        d += n;
        len -= n;
    }
}

void fcgi_encode_end_request(nw_buf *out, uint16_t id, uint32_t app_status, uint8_t protocol_status)
{
    uint8_t b[8] = {(uint8_t)(app_status >> 24),
                    (uint8_t)(app_status >> 16),
                    (uint8_t)(app_status >> 8),
                    (uint8_t)app_status,
                    protocol_status,
                    0,
                    0,
                    0};
    put_record(out, FCGI_END_REQUEST, id, b, sizeof b);
}

void fcgi_encode_unknown_type(nw_buf *out, uint8_t type)
{
    uint8_t b[8] = {type, 0, 0, 0, 0, 0, 0, 0};
    put_record(out, FCGI_UNKNOWN_TYPE, 0, b, sizeof b);
}

struct values_ctx {
    nw_buf *out;
    unsigned max_conns, max_reqs;
    unsigned seen; /* bit per known name, so each is answered once */
};

static int values_pair(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    static const char *const names[] = {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"};
    struct values_ctx *c = arg;
    char num[16];

    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i]) != nlen || memcmp(names[i], name, nlen) != 0)
            continue;
        if (c->seen & 1u << i)
            return 0;
        c->seen |= 1u << i;
        unsigned v = i == 0 ? c->max_conns : i == 1 ? c->max_reqs : 0;
        int n = snprintf(num, sizeof num, "%u", v);
        fcgi_encode_pair(c->out, name, nlen, num, (size_t)n);
        return 0;
    }
    return 0;
}

int fcgi_encode_get_values_result(nw_buf *out, const uint8_t *q, size_t qlen, unsigned max_conns,
                                  unsigned max_reqs)
{
    nw_buf body = NW_BUF_INIT;
    struct values_ctx c = {&body, max_conns, max_reqs, 0};
    const char *error;

    if (fcgi_params_decode(q, qlen, values_pair, &c, &error) < 0) {
        nw_buf_free(&body);
        return -1;
    }
    /* At most three short pairs: far below the 65535 content limit. */
    put_record(out, FCGI_GET_VALUES_RESULT, 0, body.len ? nw_buf_head(&body) : NULL,
               (uint16_t)body.len);
    nw_buf_free(&body);
    return 0;
}
