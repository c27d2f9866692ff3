/*
 * fuzz_fastcgi.c - libFuzzer target for proto_fastcgi.
 *
 * Input: one seed byte that picks how the rest is split into chunks, then
 * the bytes a web server would send. The target plays the server's part the
 * way conn.c does (accepts a responder BEGIN while no request is active, ends
 * the request at its STDIN_END or ABORT), decodes every PARAMS stream and
 * answers every GET_VALUES. Properties checked (abort() on failure):
 *   - the parser never claims more bytes than it was given, reports NONE
 *     only with everything consumed, and STDIN chunks are never empty;
 *   - the whole input at once and the chunked input give the same events
 *     (STDIN chunks merged);
 *   - a GET_VALUES answer is one well-formed GET_VALUES_RESULT record whose
 *     content decodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_split.h"
#include "proto_fastcgi.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_fastcgi: check failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* One run over the input: the parser, the emulated server and the log of
 * events that both runs must agree on. */
typedef struct run {
    fcgi_parser p;
    nw_buf log;
    int in_stdin; /* the last logged event was STDIN: merge the next one */
    int active;   /* the emulated server has a request */
    int failed;   /* ERROR seen: the connection is closed */
} run;

static int touch_pair(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    nw_buf *log = arg;
    /* Read every byte the decoder hands out, so ASan sees any overrun. */
    nw_buf_printf(log, "[%zu:%zu]", nlen, vlen);
    nw_buf_append(log, name, nlen);
    nw_buf_append(log, value, vlen);
    return 0;
}

static int check_value_pair(void *arg, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    (void)arg;
    CHECK(nlen > 0 && vlen > 0 && vlen < 16);
    CHECK((nlen == 14 && !memcmp(name, "FCGI_MAX_CONNS", 14)) ||
          (nlen == 13 && !memcmp(name, "FCGI_MAX_REQS", 13)) ||
          (nlen == 15 && !memcmp(name, "FCGI_MPXS_CONNS", 15)));
    for (size_t i = 0; i < vlen; i++)
        CHECK(value[i] >= '0' && value[i] <= '9');
    return 0;
}

static void answer_get_values(nw_buf *log, const uint8_t *q, size_t qlen)
{
    nw_buf out = NW_BUF_INIT;
    const char *error = NULL;
    int rc = fcgi_encode_get_values_result(&out, q, qlen, 1000, 1000);

    nw_buf_printf(log, "GET_VALUES len=%zu rc=%d\n", qlen, rc);
    if (rc == 0) {
        const uint8_t *h = nw_buf_head(&out);
        CHECK(out.len >= FCGI_HEADER_LEN);
        size_t clen = (size_t)h[4] << 8 | h[5];
        CHECK(h[0] == FCGI_VERSION_1 && h[1] == FCGI_GET_VALUES_RESULT && h[2] == 0 && h[3] == 0);
        CHECK(out.len == FCGI_HEADER_LEN + clen + h[6] && (clen + h[6]) % 8 == 0);
        CHECK(fcgi_params_decode(h + FCGI_HEADER_LEN, clen, check_value_pair, NULL, &error) == 0);
    } else {
        CHECK(fcgi_params_decode(q, qlen, touch_pair, &out, &error) < 0 && error);
    }
    nw_buf_free(&out);
}

/* Logs one event and does what the server would. */
static void on_event(run *r, const fcgi_event *ev)
{
    fcgi_parser *p = &r->p;
    nw_buf *log = &r->log;

    if (ev->type == FCGI_EV_STDIN) {
        CHECK(ev->len > 0);
        if (!r->in_stdin)
            nw_buf_printf(log, "STDIN %u:", ev->id);
        r->in_stdin = 1;
        nw_buf_append(log, ev->data, ev->len);
        return;
    }
    if (r->in_stdin)
        nw_buf_appendc(log, '\n');
    r->in_stdin = 0;

    switch (ev->type) {
    case FCGI_EV_BEGIN:
        nw_buf_printf(log, "BEGIN %u role=%u keep=%d\n", ev->id, ev->role, ev->keep_conn);
        CHECK(ev->id != 0);
        if (!r->active && ev->role == FCGI_RESPONDER) {
            fcgi_parser_accept(p, ev->id);
            r->active = 1;
        }
        break;
    case FCGI_EV_PARAMS: {
        const char *error = NULL;
        nw_buf_printf(log, "PARAMS %u len=%zu:", ev->id, ev->len);
        nw_buf_append(log, ev->data, ev->len);
        int rc = fcgi_params_decode(ev->data, ev->len, touch_pair, log, &error);
        CHECK(rc == 0 || (rc == -1 && error));
        nw_buf_printf(log, " decode=%d %s\n", rc, rc ? error : "");
        break;
    }
    case FCGI_EV_STDIN_END:
        nw_buf_printf(log, "STDIN_END %u\n", ev->id);
        CHECK(r->active && ev->id == p->active_id);
        fcgi_parser_end(p);
        r->active = 0;
        break;
    case FCGI_EV_ABORT:
        nw_buf_printf(log, "ABORT %u\n", ev->id);
        CHECK(r->active && ev->id == p->active_id);
        fcgi_parser_end(p);
        r->active = 0;
        break;
    case FCGI_EV_GET_VALUES:
        answer_get_values(log, ev->data, ev->len);
        break;
    case FCGI_EV_UNKNOWN_TYPE: {
        nw_buf out = NW_BUF_INIT;
        nw_buf_printf(log, "UNKNOWN_TYPE %u\n", ev->type_byte);
        fcgi_encode_unknown_type(&out, ev->type_byte);
        CHECK(out.len == 16);
        nw_buf_free(&out);
        break;
    }
    case FCGI_EV_ERROR:
        CHECK(ev->error != NULL);
        nw_buf_printf(log, "ERROR %s\n", ev->error);
        r->failed = 1;
        break;
    default:
        CHECK(0);
    }
}

/* Feeds in[0..len) to the run until the parser has consumed it all (or
 * failed). */
static void feed(void *arg, const uint8_t *in, size_t len)
{
    run *r = arg;
    size_t off = 0;

    while (!r->failed) {
        fcgi_event ev;
        size_t n = fcgi_parse(&r->p, in + off, len - off, &ev);
        CHECK(n <= len - off);
        off += n;
        if (ev.type == FCGI_EV_NONE) {
            CHECK(off == len);
            return;
        }
        on_event(r, &ev);
    }
}

static void run_init(run *r)
{
    memset(r, 0, sizeof *r);
    fcgi_parser_init(&r->p);
}

static void run_free(run *r)
{
    fcgi_parser_free(&r->p);
    nw_buf_free(&r->log);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run whole, chunked;
    fuzz_split split;

    if (size < 1)
        return 0;
    fuzz_split_init(&split, data[0]);
    data++;
    size--;

    run_init(&whole);
    feed(&whole, data, size);

    run_init(&chunked);
    fuzz_split_feed(&split, feed, &chunked, &chunked.failed, data, size);
    if (chunked.in_stdin)
        nw_buf_appendc(&chunked.log, '\n');
    if (whole.in_stdin)
        nw_buf_appendc(&whole.log, '\n');

    fuzz_split_compare("fuzz_fastcgi", &split, &whole.log, &chunked.log);
    run_free(&whole);
    run_free(&chunked);
    return 0;
}
