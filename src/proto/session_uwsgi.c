/* session_uwsgi.c - the uwsgi protocol's rules for a connection (see
 * session.h): one request per connection, no management records, and a
 * response that is raw HTTP ended by closing the connection. */
#include <stdio.h>
#include <string.h>

#include "session.h"

static void uwsgi_sess_init(nw_session *s)
{
    uwsgi_parser_init(&s->p.uwsgi);
}

static void uwsgi_sess_free(nw_session *s)
{
    uwsgi_parser_free(&s->p.uwsgi);
}

/* One request per connection: what follows its body is an error anyway. */
static void uwsgi_sess_over(nw_session *s)
{
    s->active = 0;
}

static size_t uwsgi_sess_parse(nw_session *s, const uint8_t *in, size_t len, nw_buf *out,
                               sess_event *ev)
{
    (void)out;
    uwsgi_event ue;
    size_t used = uwsgi_parse(&s->p.uwsgi, in, len, &ue);
    memset(ev, 0, sizeof *ev);
    if (s->trace && ue.type != UWSGI_EV_NONE) {
        char what[64];
        snprintf(what, sizeof what, "uwsgi %s (%zu bytes)", uwsgi_event_name(ue.type), ue.len);
        s->trace(s->trace_arg, what);
    }
    switch (ue.type) {
    case UWSGI_EV_NONE:
        break;
    case UWSGI_EV_ERROR:
        ev->type = SESS_EV_ERROR;
        if (ue.modifier1 != UWSGI_MODIFIER1_VARS)
            ev->msg =
                session_msg(s, "malformed uwsgi input: %s (modifier1 %u)", ue.error, ue.modifier1);
        else
            ev->msg = session_msg(s, "malformed uwsgi input: %s", ue.error);
        break;
    case UWSGI_EV_VARS:
        s->active = 1;
        s->params_done = 1;
        ev->type = SESS_EV_REQUEST;
        ev->keep_conn = 0; /* the response ends with the connection */
        /* No body: it is complete now (the parser's BODY_END would only come
         * on the next call, after the request is dispatched). */
        ev->body_done = ue.body_len == 0;
        ev->data = ue.data;
        ev->len = ue.len;
        break;
    case UWSGI_EV_BODY:
        ev->type = SESS_EV_BODY;
        ev->data = ue.data;
        ev->len = ue.len;
        break;
    case UWSGI_EV_BODY_END:
        ev->type = SESS_EV_BODY_END;
        break;
    }
    return used;
}

static void uwsgi_head(nw_buf *staged, int status, const char *reason, const void *headers,
                       size_t headers_len)
{
    uwsgi_encode_head(staged, status, reason, headers, headers_len);
}

static void uwsgi_body(nw_session *s, nw_buf *out, const void *data, size_t len)
{
    (void)s;
    nw_buf_append(out, data, len);
}

/* The body ends with the connection. */
static void uwsgi_nothing(nw_session *s, nw_buf *out)
{
    (void)s;
    (void)out;
}

const nw_proto session_uwsgi = {
    .name = "uwsgi",
    .params_name = "uwsgi vars",
    .init = uwsgi_sess_init,
    .free = uwsgi_sess_free,
    .over = uwsgi_sess_over,
    .parse = uwsgi_sess_parse,
    .params = uwsgi_vars_decode,
    .head = uwsgi_head,
    .body = uwsgi_body,
    .body_end = uwsgi_nothing,
    .end = uwsgi_nothing,
    .log = NULL,
};
