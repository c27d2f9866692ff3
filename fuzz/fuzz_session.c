/*
 * fuzz_session.c - libFuzzer target for the protocol sessions
 * (src/proto/session*.c): what the worker does with a connection's bytes.
 *
 * Input: one seed byte that picks how the rest is split into chunks, one
 * byte whose value mod 3 picks the `protocol` setting (auto, fastcgi,
 * uwsgi), then the bytes a front end would send. Each REQUEST's params are
 * decoded and answered with a small response through the session's framing
 * (head, body, log, body_end, end); a request is over at its BODY_END or
 * ABORT, as the server would end it, so a kept FastCGI connection goes on
 * to the next. Properties checked (abort() on failure):
 *   - the session never claims more bytes than it was given, reports NONE
 *     only with everything consumed, and BODY chunks are never empty;
 *   - LOG and ERROR events carry a message;
 *   - the whole input at once and the chunked input give the same events
 *     (BODY chunks merged) and the same answers, byte for byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_split.h"
#include "session.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_session: check failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct run {
    nw_session s;
    nw_protocol setting;
    nw_buf in;  /* what was fed and not yet consumed */
    nw_buf out; /* the session's answers and the responses */
    nw_buf log;
    int in_body; /* the last logged event was BODY: merge the next one */
    int failed;  /* ERROR seen */
} run;

static int count_pair(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    (void)name;
    (void)value;
    *(size_t *)arg += nlen + vlen;
    return 0;
}

/* The response a handler would write, framed by the session. */
static void respond(run *r)
{
    const nw_proto *p = r->s.proto;
    nw_buf staged = NW_BUF_INIT;
    p->head(&staged, 200, "OK", "Content-Type: text/plain\r\n", 26);
    nw_buf_appends(&staged, "hi\n");
    p->body(&r->s, &r->out, nw_buf_head(&staged), staged.len);
    if (p->log)
        p->log(&r->s, &r->out, "a warning", 9);
    p->body_end(&r->s, &r->out);
    p->end(&r->s, &r->out);
    nw_buf_free(&staged);
}

static void on_event(run *r, const sess_event *ev)
{
    if (ev->type == SESS_EV_BODY) {
        CHECK(ev->len > 0);
        if (!r->in_body)
            nw_buf_appends(&r->log, "BODY:");
        r->in_body = 1;
        nw_buf_append(&r->log, ev->data, ev->len);
        return;
    }
    if (r->in_body)
        nw_buf_appends(&r->log, "\n");
    r->in_body = 0;
    switch (ev->type) {
    case SESS_EV_REQUEST: {
        size_t bytes = 0;
        const char *err = NULL;
        int rc = r->s.proto->params(&r->s, ev->data, ev->len, count_pair, &bytes, &err);
        nw_buf_printf(&r->log, "REQUEST %u keep=%d body_done=%d params=%d/%zu\n", ev->id,
                      ev->keep_conn, ev->body_done, rc, bytes);
        if (rc < 0) {
            CHECK(err != NULL);
            r->failed = 1; /* the server closes the connection */
        }
        break;
    }
    case SESS_EV_BODY_END:
    case SESS_EV_ABORT:
        nw_buf_printf(&r->log, "%s %u\n", ev->type == SESS_EV_ABORT ? "ABORT" : "BODY_END", ev->id);
        if (r->s.active) { /* the response goes out, the request is over */
            respond(r);
            session_request_over(&r->s);
        }
        break;
    case SESS_EV_LOG:
        CHECK(ev->msg && *ev->msg);
        nw_buf_printf(&r->log, "LOG %d close=%d %s\n", ev->level, ev->close_after, ev->msg);
        break;
    case SESS_EV_ERROR:
        CHECK(ev->msg && *ev->msg);
        nw_buf_printf(&r->log, "ERROR %s\n", ev->msg);
        r->failed = 1;
        break;
    default:
        CHECK(0);
    }
}

/* Feeds one chunk: appended to what is left, parsed until NONE. */
static void feed(void *arg, const uint8_t *chunk, size_t len)
{
    run *r = arg;
    if (!len)
        return;
    nw_buf_append(&r->in, chunk, len);
    while (!r->failed) {
        sess_event ev;
        size_t have = r->in.len;
        size_t used = session_parse(&r->s, r->setting, nw_buf_head(&r->in), have, &r->out, &ev);
        CHECK(used <= have);
        if (ev.type == SESS_EV_NONE) {
            CHECK(used == have);
            nw_buf_consume(&r->in, used);
            break;
        }
        on_event(r, &ev);
        nw_buf_consume(&r->in, used);
    }
}

static void run_init(run *r, nw_protocol setting)
{
    memset(r, 0, sizeof *r);
    session_init(&r->s, 4, 2);
    r->setting = setting;
}

static void run_end(run *r)
{
    if (r->in_body)
        nw_buf_appends(&r->log, "\n");
    nw_buf_appends(&r->log, "OUT:");
    if (r->out.len)
        nw_buf_append(&r->log, nw_buf_head(&r->out), r->out.len);
}

static void run_free(run *r)
{
    session_free(&r->s);
    nw_buf_free(&r->in);
    nw_buf_free(&r->out);
    nw_buf_free(&r->log);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fuzz_split split;
    fuzz_split_init(&split, data[0]);
    nw_protocol setting = (nw_protocol)(data[1] % 3);
    data += 2;
    size -= 2;

    run whole, chunked;
    run_init(&whole, setting);
    feed(&whole, data, size);
    run_end(&whole);

    run_init(&chunked, setting);
    fuzz_split_feed(&split, feed, &chunked, &chunked.failed, data, size);
    run_end(&chunked);

    fuzz_split_compare("fuzz_session", &split, &whole.log, &chunked.log);
    run_free(&whole);
    run_free(&chunked);
    return 0;
}
