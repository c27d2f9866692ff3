/* proto_uwsgi.c - the uwsgi protocol (as nginx's uwsgi_pass speaks it), sans I/O. */
#include "proto_uwsgi.h"

#include <string.h>

/* Where the parser is in the one request a connection carries. */
enum {
    ST_HEADER,   /* assembling the 4-byte header */
    ST_VARS,     /* assembling the vars block */
    ST_BODY,     /* handing out body bytes */
    ST_BODY_END, /* the body is complete; BODY_END not reported yet */
    ST_DONE,     /* BODY_END reported: any further byte is an error */
};

const char *uwsgi_event_name(uwsgi_ev_type type)
{
    static const char *const names[] = {
        [UWSGI_EV_NONE] = "none",         [UWSGI_EV_VARS] = "vars",
        [UWSGI_EV_BODY] = "body",         [UWSGI_EV_BODY_END] = "body end",
        [UWSGI_EV_ERROR] = "malformed input",
    };
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "?";
}

void uwsgi_parser_init(uwsgi_parser *p)
{
    memset(p, 0, sizeof *p);
    p->state = ST_HEADER;
}

void uwsgi_parser_free(uwsgi_parser *p)
{
    nw_buf_free(&p->vars);
}

static uint16_t get16le(const uint8_t *b)
{
    return (uint16_t)(b[0] | b[1] << 8);
}

static void put16le(uint8_t *b, uint16_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

/* Once the header is known, every event carries its modifiers. */
static void ev_reset(const uwsgi_parser *p, uwsgi_event *ev, uwsgi_ev_type type)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->modifier1 = p->modifier1;
    ev->modifier2 = p->modifier2;
}

static void fail(uwsgi_parser *p, uwsgi_event *ev, const char *why)
{
    p->error = why;
    ev_reset(p, ev, UWSGI_EV_ERROR);
    ev->error = why;
}

struct vars_scan {
    const char *cl; /* CONTENT_LENGTH's value, NULL if absent */
    size_t cl_len;
    int cl_count;
};

static int scan_var(void *arg, const char *key, size_t klen, const char *value, size_t vlen)
{
    static const char name[] = "CONTENT_LENGTH";
    struct vars_scan *s = arg;

    if (klen == sizeof name - 1 && memcmp(key, name, klen) == 0) {
        s->cl = value;
        s->cl_len = vlen;
        s->cl_count++;
    }
    return 0;
}

/* Digits only: a sign, a space or an overflow is refused rather than read
 * the way strtoull would, since the body length decides where the request
 * ends. The running value stays <= UWSGI_MAX_BODY, so v * 10 + 9 cannot
 * wrap. */
static int parse_content_length(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UWSGI_MAX_BODY)
            return -1;
    }
    *out = v;
    return 0;
}

/* The vars block is complete: checks it whole and reports it. */
static void end_vars(uwsgi_parser *p, uwsgi_event *ev)
{
    const uint8_t *d = p->vars.len ? nw_buf_head(&p->vars) : (const uint8_t *)"";
    struct vars_scan s = {NULL, 0, 0};
    const char *why = NULL;
    uint64_t body_len = 0;

    if (uwsgi_vars_decode(d, p->vars.len, scan_var, &s, &why) < 0) {
        fail(p, ev, why);
        return;
    }
    /* Two lengths could mean two different requests to two readers. */
    if (s.cl_count > 1) {
        fail(p, ev, "duplicate CONTENT_LENGTH");
        return;
    }
    if (s.cl && parse_content_length(s.cl, s.cl_len, &body_len) < 0) {
        fail(p, ev, "bad CONTENT_LENGTH");
        return;
    }
    p->body_left = body_len;
    p->state = body_len ? ST_BODY : ST_BODY_END;
    ev_reset(p, ev, UWSGI_EV_VARS);
    ev->data = d;
    ev->len = p->vars.len;
    ev->body_len = body_len;
}

size_t uwsgi_parse(uwsgi_parser *p, const uint8_t *in, size_t len, uwsgi_event *ev)
{
    size_t pos = 0;

    if (p->error) {
        fail(p, ev, p->error);
        return 0;
    }
    /* Reported even with no input: it needs none. */
    if (p->state == ST_BODY_END) {
        p->state = ST_DONE;
        ev_reset(p, ev, UWSGI_EV_BODY_END);
        return 0;
    }
    while (pos < len) {
        size_t avail = len - pos;

        if (p->state == ST_HEADER) {
            size_t n = UWSGI_HEADER_LEN - p->hdr_have;
            if (n > avail)
                n = avail;
            memcpy(p->hdr + p->hdr_have, in + pos, n);
            p->hdr_have += n;
            pos += n;
            if (p->hdr_have < UWSGI_HEADER_LEN)
                break;
            p->modifier1 = p->hdr[0];
            p->vars_len = get16le(p->hdr + 1);
            p->modifier2 = p->hdr[3];
            if (!uwsgi_modifier1_served(p->modifier1)) {
                fail(p, ev, "unsupported uwsgi modifier1");
                return pos;
            }
            nw_buf_reset(&p->vars);
            p->state = ST_VARS;
            if (!p->vars_len) {
                end_vars(p, ev);
                return pos;
            }
        } else if (p->state == ST_VARS) {
            size_t n = p->vars_len - p->vars.len;
            if (n > avail)
                n = avail;
            nw_buf_append(&p->vars, in + pos, n);
            pos += n;
            if (p->vars.len == p->vars_len) {
                end_vars(p, ev);
                return pos;
            }
        } else if (p->state == ST_BODY) {
            size_t n = (uint64_t)avail < p->body_left ? avail : (size_t)p->body_left;
            p->body_left -= n;
            if (!p->body_left)
                p->state = ST_BODY_END;
            ev_reset(p, ev, UWSGI_EV_BODY);
            ev->data = in + pos;
            ev->len = n;
            return pos + n;
        } else {
            /* ST_DONE: one request per connection. */
            fail(p, ev, "data after the request body");
            return pos;
        }
    }
    ev_reset(p, ev, UWSGI_EV_NONE);
    return pos;
}

int uwsgi_vars_decode(const uint8_t *data, size_t len,
                      int (*fn)(void *arg, const char *key, size_t klen, const char *value,
                                size_t vlen),
                      void *arg, const char **error)
{
    size_t pos = 0, count = 0;

    while (pos < len) {
        if (++count > UWSGI_MAX_VARS_COUNT) {
            *error = "too many uwsgi vars";
            return -1;
        }
        /* pos < len here and pos only grows by checked amounts, so none of
         * the subtractions below can wrap. */
        if (len - pos < 2) {
            *error = "truncated uwsgi var length";
            return -1;
        }
        size_t klen = get16le(data + pos);
        pos += 2;
        if (klen == 0) {
            *error = "empty uwsgi var key";
            return -1;
        }
        if (klen > len - pos) {
            *error = "uwsgi var length beyond block";
            return -1;
        }
        const char *key = (const char *)data + pos;
        pos += klen;
        if (len - pos < 2) {
            *error = "truncated uwsgi var length";
            return -1;
        }
        size_t vlen = get16le(data + pos);
        pos += 2;
        if (vlen > len - pos) {
            *error = "uwsgi var length beyond block";
            return -1;
        }
        const char *value = (const char *)data + pos;
        pos += vlen;
        int rc = fn(arg, key, klen, value, vlen);
        if (rc)
            return rc;
    }
    return 0;
}

int uwsgi_encode_var(nw_buf *out, const char *key, size_t klen, const char *value, size_t vlen)
{
    uint8_t b[2];

    if (klen > 0xffff || vlen > 0xffff)
        return -1;
    put16le(b, (uint16_t)klen);
    nw_buf_append(out, b, sizeof b);
    nw_buf_append(out, key, klen);
    put16le(b, (uint16_t)vlen);
    nw_buf_append(out, b, sizeof b);
    nw_buf_append(out, value, vlen);
    return 0;
}

int uwsgi_encode_header(nw_buf *out, uint8_t modifier1, size_t vars_len, uint8_t modifier2)
{
    uint8_t h[UWSGI_HEADER_LEN];

    if (vars_len > 0xffff)
        return -1;
    h[0] = modifier1;
    put16le(h + 1, (uint16_t)vars_len);
    h[3] = modifier2;
    nw_buf_append(out, h, sizeof h);
    return 0;
}

void uwsgi_encode_head(nw_buf *out, int status, const char *reason, const void *headers,
                       size_t headers_len)
{
    nw_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
    nw_buf_append(out, headers, headers_len);
    nw_buf_appends(out, "\r\n");
}
