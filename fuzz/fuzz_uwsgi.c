/*
 * fuzz_uwsgi.c - libFuzzer target for proto_uwsgi.
 *
 * Input: one seed byte that picks how the rest is split into chunks, then
 * the bytes nginx's uwsgi_pass would send. Every VARS block is decoded.
 * Properties checked (abort() on failure):
 *   - the parser never claims more bytes than it was given, reports NONE
 *     only with everything consumed, and BODY chunks are never empty;
 *   - VARS carries the CONTENT_LENGTH its block holds, and the body bytes
 *     add up to it when BODY_END comes;
 *   - the whole input at once and the chunked input give the same events
 *     (BODY chunks merged).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_split.h"
#include "proto_uwsgi.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_uwsgi: check failed: %s (line %d)\n", #cond, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct run {
    uwsgi_parser p;
    nw_buf log;
    int in_body;       /* the last logged event was BODY: merge the next one */
    int done;          /* BODY_END seen */
    int failed;        /* ERROR seen */
    uint64_t body_len; /* from VARS */
    uint64_t body_got;
} run;

struct scan {
    nw_buf *log;
    const char *cl;
    size_t cl_len;
};

static int touch_var(void *arg, const char *key, size_t klen, const char *value, size_t vlen)
{
    struct scan *s = arg;
    CHECK(klen > 0);
    nw_buf_printf(s->log, "[%zu:%zu]", klen, vlen);
    nw_buf_append(s->log, key, klen);
    nw_buf_append(s->log, value, vlen);
    if (klen == 14 && !memcmp(key, "CONTENT_LENGTH", 14)) {
        s->cl = value;
        s->cl_len = vlen;
    }
    return 0;
}

static void on_event(run *r, const uwsgi_event *ev)
{
    nw_buf *log = &r->log;

    if (ev->type == UWSGI_EV_BODY) {
        CHECK(ev->len > 0);
        CHECK(!r->done);
        if (!r->in_body)
            nw_buf_appends(log, "BODY:");
        r->in_body = 1;
        r->body_got += ev->len;
        CHECK(r->body_got <= r->body_len);
        nw_buf_append(log, ev->data, ev->len);
        return;
    }
    if (r->in_body)
        nw_buf_appendc(log, '\n');
    r->in_body = 0;

    switch (ev->type) {
    case UWSGI_EV_VARS: {
        struct scan s = {log, NULL, 0};
        const char *error = NULL;
        nw_buf_printf(log, "VARS m1=%u m2=%u len=%zu body=%llu:", ev->modifier1, ev->modifier2,
                      ev->len, (unsigned long long)ev->body_len);
        /* The parser only reports a block it could decode. */
        CHECK(uwsgi_vars_decode(ev->data, ev->len, touch_var, &s, &error) == 0);
        CHECK(uwsgi_modifier1_served(ev->modifier1));
        CHECK(ev->body_len <= UWSGI_MAX_BODY);
        uint64_t want = 0;
        for (size_t i = 0; s.cl && i < s.cl_len; i++) {
            CHECK(s.cl[i] >= '0' && s.cl[i] <= '9');
            want = want * 10 + (uint64_t)(s.cl[i] - '0');
        }
        CHECK(want == ev->body_len);
        r->body_len = ev->body_len;
        nw_buf_appendc(log, '\n');
        break;
    }
    case UWSGI_EV_BODY_END:
        CHECK(r->body_got == r->body_len);
        nw_buf_appends(log, "BODY_END\n");
        r->done = 1;
        break;
    case UWSGI_EV_ERROR:
        CHECK(ev->error != NULL);
        nw_buf_printf(log, "ERROR %s\n", ev->error);
        r->failed = 1;
        break;
    default:
        CHECK(0);
    }
}

/* Feeds in[0..len) to the run until the parser has consumed it all (or
 * stopped). After BODY_END it keeps going: further bytes must be an error. */
static void feed(void *arg, const uint8_t *in, size_t len)
{
    run *r = arg;
    size_t off = 0;

    if (r->failed) {
        /* sticky, and logged once */
        uwsgi_event ev;
        CHECK(uwsgi_parse(&r->p, in, len, &ev) == 0 && ev.type == UWSGI_EV_ERROR && ev.error);
        return;
    }
    for (;;) {
        uwsgi_event ev;
        size_t n = uwsgi_parse(&r->p, in + off, len - off, &ev);
        CHECK(n <= len - off);
        off += n;
        if (ev.type == UWSGI_EV_NONE) {
            CHECK(off == len);
            return;
        }
        on_event(r, &ev);
        if (ev.type == UWSGI_EV_ERROR)
            return;
    }
}

static void run_init(run *r)
{
    memset(r, 0, sizeof *r);
    uwsgi_parser_init(&r->p);
}

static void run_free(run *r)
{
    uwsgi_parser_free(&r->p);
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
    /* The last chunk may have ended right after VARS or the last body byte:
     * BODY_END needs no input. */
    feed(&chunked, (const uint8_t *)"", 0);
    feed(&whole, (const uint8_t *)"", 0);
    if (whole.in_body)
        nw_buf_appendc(&whole.log, '\n');
    if (chunked.in_body)
        nw_buf_appendc(&chunked.log, '\n');

    fuzz_split_compare("fuzz_uwsgi", &split, &whole.log, &chunked.log);
    run_free(&whole);
    run_free(&chunked);
    return 0;
}
