/* session_fastcgi.c - FastCGI's rules for a connection (see session.h):
 * one active request at a time (a second BEGIN is answered
 * FCGI_CANT_MPX_CONN), the responder role only (others are answered
 * FCGI_UNKNOWN_ROLE), management records answered in place, and a
 * response framed as STDOUT records with a CGI head and END_REQUEST. */
#include <stdio.h>
#include <string.h>

#include "narwhal.h"
#include "session.h"

static void fastcgi_init(nw_session *s)
{
    fcgi_parser_init(&s->p.fcgi);
}

static void fastcgi_free(nw_session *s)
{
    fcgi_parser_free(&s->p.fcgi);
}

static void fastcgi_over(nw_session *s)
{
    s->active = 0;
    s->params_done = 0;
    fcgi_parser_end(&s->p.fcgi);
}

static size_t fastcgi_held(const nw_session *s)
{
    return s->p.fcgi.params.len + s->p.fcgi.body.len;
}

static void trace(nw_session *s, const fcgi_event *fe)
{
    if (!s->trace || fe->type == FCGI_EV_NONE)
        return;
    char what[96];
    snprintf(what, sizeof what, "fastcgi %s id %u (%zu bytes)", fcgi_event_name(fe->type), fe->id,
             fe->len);
    s->trace(s->trace_arg, what);
}

static size_t log_event(nw_session *s, sess_event *ev, size_t used, int level, int close_after)
{
    ev->type = SESS_EV_LOG;
    ev->level = level;
    ev->close_after = close_after;
    ev->msg = s->msg;
    return used;
}

static size_t fastcgi_parse(nw_session *s, const uint8_t *in, size_t len, nw_buf *out,
                            sess_event *ev)
{
    fcgi_parser *p = &s->p.fcgi;
    size_t total = 0;
    memset(ev, 0, sizeof *ev);
    for (;;) {
        fcgi_event fe;
        total += fcgi_parse(p, in + total, len - total, &fe);
        trace(s, &fe);
        ev->id = fe.id;
        switch (fe.type) {
        case FCGI_EV_NONE:
            return total;
        case FCGI_EV_ERROR:
            ev->type = SESS_EV_ERROR;
            ev->msg = session_msg(s, "malformed fastcgi input: %s", fe.error);
            return total;
        case FCGI_EV_BEGIN:
            if (s->active) {
                fcgi_encode_end_request(out, fe.id, 0, FCGI_CANT_MPX_CONN);
                session_msg(s,
                            "request %u begun while request %u is active; answering "
                            "FCGI_CANT_MPX_CONN",
                            fe.id, s->req_id);
                return log_event(s, ev, total, NW_LOG_WARNING, 0);
            }
            if (fe.role != FCGI_RESPONDER) {
                fcgi_encode_end_request(out, fe.id, 0, FCGI_UNKNOWN_ROLE);
                session_msg(s,
                            "role %u is not supported (only the responder role); answering "
                            "FCGI_UNKNOWN_ROLE",
                            fe.role);
                return log_event(s, ev, total, NW_LOG_WARNING, !fe.keep_conn);
            }
            s->active = 1;
            s->params_done = 0;
            s->req_id = fe.id;
            s->req_keep_conn = fe.keep_conn;
            fcgi_parser_accept(p, fe.id);
            break;
        case FCGI_EV_PARAMS:
            s->params_done = 1;
            ev->type = SESS_EV_REQUEST;
            ev->keep_conn = s->req_keep_conn;
            ev->body_done = 0;
            ev->data = fe.data;
            ev->len = fe.len;
            return total;
        case FCGI_EV_STDIN:
        case FCGI_EV_STDIN_END:
            /* Only once the request runs: body bytes before it would have to
             * be held with no one to read them. */
            if (!s->params_done) {
                ev->type = SESS_EV_ERROR;
                ev->msg = session_msg(s, "malformed fastcgi input: stdin before the params "
                                         "ended");
                return total;
            }
            ev->type = fe.type == FCGI_EV_STDIN ? SESS_EV_BODY : SESS_EV_BODY_END;
            ev->data = fe.data;
            ev->len = fe.len;
            return total;
        case FCGI_EV_ABORT:
            if (!s->params_done) {
                /* Nothing runs yet: the request ends here. */
                fcgi_encode_end_request(out, fe.id, 0, FCGI_REQUEST_COMPLETE);
                int keep = s->req_keep_conn;
                fastcgi_over(s);
                session_msg(s, "request %u aborted by the front end", fe.id);
                return log_event(s, ev, total, NW_LOG_INFO, !keep);
            }
            ev->type = SESS_EV_ABORT;
            return total;
        case FCGI_EV_GET_VALUES:
            if (fcgi_encode_get_values_result(out, fe.data, fe.len, s->max_conns, s->max_reqs) <
                0) {
                ev->type = SESS_EV_ERROR;
                ev->msg = session_msg(s, "malformed FCGI_GET_VALUES");
                return total;
            }
            break;
        case FCGI_EV_UNKNOWN_TYPE:
            fcgi_encode_unknown_type(out, fe.type_byte);
            session_msg(s, "unknown management record type %u", fe.type_byte);
            return log_event(s, ev, total, NW_LOG_INFO, 0);
        }
    }
}

/* The CGI head: "Status: 200 OK", the headers, a blank line. */
static void fastcgi_head(nw_buf *staged, int status, const char *reason, const void *headers,
                         size_t headers_len)
{
    nw_buf_printf(staged, "Status: %d %s\r\n", status, reason);
    nw_buf_append(staged, headers, headers_len);
    nw_buf_append(staged, "\r\n", 2);
}

static void fastcgi_body(nw_session *s, nw_buf *out, const void *data, size_t len)
{
    if (len)
        fcgi_encode_stream(out, FCGI_STDOUT, s->req_id, data, len);
}

static void fastcgi_body_end(nw_session *s, nw_buf *out)
{
    fcgi_encode_stream(out, FCGI_STDOUT, s->req_id, NULL, 0);
}

static void fastcgi_end(nw_session *s, nw_buf *out)
{
    fcgi_encode_end_request(out, s->req_id, 0, FCGI_REQUEST_COMPLETE);
}

/* FastCGI's params reach the app as they came. */
static int fastcgi_params(const nw_session *s, const uint8_t *data, size_t len, sess_pair_fn fn,
                          void *arg, const char **error)
{
    (void)s;
    return fcgi_params_decode(data, len, fn, arg, error);
}

/* The front end logs STDERR lines in its own error log. */
static void fastcgi_log(nw_session *s, nw_buf *out, const char *msg, size_t len)
{
    if (len)
        fcgi_encode_stream(out, FCGI_STDERR, s->req_id, msg, len);
}

const nw_proto session_fastcgi = {
    .name = "fastcgi",
    .params_name = "fastcgi params",
    .init = fastcgi_init,
    .free = fastcgi_free,
    .over = fastcgi_over,
    .held = fastcgi_held,
    .parse = fastcgi_parse,
    .params = fastcgi_params,
    .head = fastcgi_head,
    .body = fastcgi_body,
    .body_end = fastcgi_body_end,
    .end = fastcgi_end,
    .log = fastcgi_log,
};
