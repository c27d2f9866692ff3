/* session_uwsgi.c - the uwsgi protocol's rules for a connection (see
 * session.h): one request per connection, no management records, and a
 * response that is raw HTTP ended by closing the connection. */
#include <stdio.h>
#include <string.h>

#include "narwhal.h"
#include "session.h"

static void uwsgi_sess_init(nw_session *s)
{
    uwsgi_parser_init(&s->p.uwsgi);
}

static void uwsgi_sess_free(nw_session *s)
{
    uwsgi_parser_free(&s->p.uwsgi);
}

static size_t uwsgi_sess_held(const nw_session *s)
{
    return s->p.uwsgi.vars.len;
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
    memset(ev, 0, sizeof *ev);
    /* One request per connection: bytes after the body do not undo it (the
     * connection closes after the response anyway). Said once. */
    if (s->input_over) {
        if (len && s->input_over == 1) {
            s->input_over = 2;
            ev->type = SESS_EV_LOG;
            ev->level = NW_LOG_INFO;
            ev->msg = session_msg(s, "bytes after the uwsgi request body ignored");
        }
        return len;
    }
    uwsgi_event ue;
    size_t used = uwsgi_parse(&s->p.uwsgi, in, len, &ue);
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
        /* The codec refuses a modifier1 as soon as the header is in, and
         * names none; nginx's uwsgi_modifier1 is where it came from. */
        if (!uwsgi_modifier1_served(ue.modifier1))
            ev->msg = session_msg(s,
                                  "unsupported uwsgi modifier1 %u (narwhal serves 0, and 30: "
                                  "PATH_INFO without SCRIPT_NAME)",
                                  ue.modifier1);
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
        s->input_over = 1;
        ev->type = SESS_EV_BODY_END;
        break;
    }
    return used;
}

/* modifier1 30 is uWSGI's UWSGI_MODIFIER_MANAGE_PATH_INFO. nginx configs
 * written for uWSGI mount an app under a prefix with `uwsgi_param
 * SCRIPT_NAME /app; uwsgi_modifier1 30;`: nginx's PATH_INFO ($document_uri)
 * still begins with /app, and the server is to take it off. uWSGI does it
 * in its Python plugin once the environ is built (plugins/python/
 * wsgi_subhandler.c: PATH_INFO becomes PATH_INFO + strlen(SCRIPT_NAME),
 * without looking). Here PATH_INFO loses SCRIPT_NAME only where SCRIPT_NAME
 * is a prefix of it, byte for byte, and is left as it came otherwise;
 * SCRIPT_NAME stays. The last SCRIPT_NAME counts (the one nw_param
 * returns: a config repeats a param to override it), and every PATH_INFO
 * is rewritten.
 *
 * Why here: the codec hands out the vars block as it came (it frames, it
 * does not interpret), and the request never asks which protocol it speaks;
 * what modifier1 means is the uwsgi session's business, and the params hook
 * is where the app's view of the vars is made. A rewrite only shortens a
 * value, so the request's copy, sized from the encoded block, still fits. */
struct strip_ctx {
    sess_pair_fn fn;
    void *arg;
    const char *script; /* SCRIPT_NAME's value, NULL if none */
    size_t script_len;
};

static int name_is(const char *name, size_t nlen, const char *want)
{
    return nlen == strlen(want) && memcmp(name, want, nlen) == 0;
}

static int find_script_name(void *arg, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    struct strip_ctx *c = arg;
    if (name_is(name, nlen, "SCRIPT_NAME")) {
        c->script = value;
        c->script_len = vlen;
    }
    return 0;
}

static int strip_script_name(void *arg, const char *name, size_t nlen, const char *value,
                             size_t vlen)
{
    struct strip_ctx *c = arg;
    if (c->script_len && name_is(name, nlen, "PATH_INFO") && vlen >= c->script_len &&
        memcmp(value, c->script, c->script_len) == 0) {
        value += c->script_len;
        vlen -= c->script_len;
    }
    return c->fn(c->arg, name, nlen, value, vlen);
}

static int uwsgi_sess_params(const nw_session *s, const uint8_t *data, size_t len, sess_pair_fn fn,
                             void *arg, const char **error)
{
    if (s->p.uwsgi.modifier1 != UWSGI_MODIFIER1_MANAGE_PATH_INFO)
        return uwsgi_vars_decode(data, len, fn, arg, error);
    /* SCRIPT_NAME may come after PATH_INFO (nginx's uwsgi_params sends
     * PATH_INFO, a uwsgi_param after the include comes later): find it
     * first. */
    struct strip_ctx c = {fn, arg, NULL, 0};
    int rc = uwsgi_vars_decode(data, len, find_script_name, &c, error);
    if (rc)
        return rc;
    return uwsgi_vars_decode(data, len, strip_script_name, &c, error);
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
    .held = uwsgi_sess_held,
    .parse = uwsgi_sess_parse,
    .params = uwsgi_sess_params,
    .head = uwsgi_head,
    .body = uwsgi_body,
    .body_end = uwsgi_nothing,
    .end = uwsgi_nothing,
    .log = NULL,
};
