/*
 * codec_check.h - what the codec tests (test_fastcgi.c, test_uwsgi.c) share:
 * byte builders, callbacks for the pair decoders, and the split invariant.
 *
 * The split invariant: a parser fed the same input whole, cut in two at any
 * offset, or byte by byte, reports the same events. Each test file turns its
 * parser's events into a normalised text log (consecutive data chunks merged,
 * so the log does not depend on the cuts) and defines
 *
 *     static void run_split(const uint8_t *in, size_t len, const size_t *cuts,
 *                           size_t ncuts, nw_buf *log);
 *
 * which feeds in[0..len), cut at the sorted cuts, to a fresh parser and
 * appends that log to log; feed_pieces below does the cutting. The helpers
 * here compare the logs.
 */
#ifndef NW_TEST_CODEC_CHECK_H
#define NW_TEST_CODEC_CHECK_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void run_split(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts, nw_buf *log);

/* ---- building input ------------------------------------------------------ */

static inline void add(nw_buf *b, const void *p, size_t n)
{
    nw_buf_append(b, p, n);
}

#define ADD(b, ...)                                                                                \
    do {                                                                                           \
        static const uint8_t bytes_[] = {__VA_ARGS__};                                             \
        add((b), bytes_, sizeof bytes_);                                                           \
    } while (0)

/* ---- the split invariant ------------------------------------------------- */

/* Feeds in[0..len) to parser as one piece, appending the normalised log of
 * its events to log; *in_stream says whether the last thing logged was a data
 * chunk that the next one continues. Returns 1 after an error. */
typedef int codec_feed_fn(void *parser, const uint8_t *in, size_t len, nw_buf *log, int *in_stream);

/* For run_split: feeds in to parser cut at the given points (sorted, within
 * [0, len]), stopping at an error, and ends an open data line. */
static inline void feed_pieces(codec_feed_fn *feed, void *parser, const uint8_t *in, size_t len,
                               const size_t *cuts, size_t ncuts, nw_buf *log)
{
    int in_stream = 0;
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (feed(parser, in + start, end - start, log, &in_stream))
            break;
        start = end;
    }
    if (in_stream)
        nw_buf_appends(log, "\n");
}

static inline void run_whole(const uint8_t *in, size_t len, nw_buf *log)
{
    run_split(in, len, NULL, 0, log);
}

static inline void assert_same_log(const nw_buf *a, const nw_buf *b, const char *what, size_t at)
{
    cr_assert_eq(a->len, b->len, "%s at %zu: log length %zu vs %zu", what, at, a->len, b->len);
    cr_assert(memcmp(nw_buf_head(a), nw_buf_head(b), a->len) == 0, "%s at %zu: logs differ", what,
              at);
}

/* Every split of in into two pieces, and byte by byte, gives the same log
 * as the whole input at once. */
static inline void assert_split_invariant(const uint8_t *in, size_t len)
{
    nw_buf whole = NW_BUF_INIT;
    run_whole(in, len, &whole);
    for (size_t cut = 0; cut <= len; cut++) {
        nw_buf log = NW_BUF_INIT;
        run_split(in, len, &cut, 1, &log);
        assert_same_log(&whole, &log, "split", cut);
        nw_buf_free(&log);
    }
    size_t *cuts = nw_xmalloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    nw_buf log = NW_BUF_INIT;
    run_split(in, len, cuts, len ? len - 1 : 0, &log);
    assert_same_log(&whole, &log, "byte by byte", 0);
    nw_buf_free(&log);
    free(cuts);
    nw_buf_free(&whole);
}

/* The whole input logs exactly want, and so does every split of it. */
static inline void assert_log(const uint8_t *in, size_t len, const char *want)
{
    nw_buf log = NW_BUF_INIT;
    run_whole(in, len, &log);
    nw_buf_appendc(&log, 0);
    cr_assert_str_eq((const char *)nw_buf_head(&log), want);
    nw_buf_free(&log);
    assert_split_invariant(in, len);
}

/* The input ends in the error why (the last event), however it is split. */
static inline void assert_error(const uint8_t *in, size_t len, const char *why)
{
    nw_buf log = NW_BUF_INIT;
    run_whole(in, len, &log);
    nw_buf want = NW_BUF_INIT;
    nw_buf_printf(&want, "ERROR %s\n", why);
    /* The error is the last event. */
    cr_assert_geq(log.len, want.len, "no error for %s", why);
    cr_assert(memcmp(nw_buf_head(&log) + log.len - want.len, nw_buf_head(&want), want.len) == 0,
              "wrong error for %s", why);
    assert_split_invariant(in, len);
    nw_buf_free(&want);
    nw_buf_free(&log);
}

/* ---- callbacks for the pair decoders ------------------------------------- */

/* Collects "name=value;" for every pair. */
struct pairs {
    int n;
    char text[1024];
};

static inline int collect_pair(void *arg, const char *name, size_t nlen, const char *value,
                               size_t vlen)
{
    struct pairs *c = arg;
    size_t used = strlen(c->text);
    snprintf(c->text + used, sizeof c->text - used, "%.*s=%.*s;", (int)nlen, name, (int)vlen,
             value);
    c->n++;
    return 0;
}

/* Counts the pairs in the int at arg. */
static inline int count_pair(void *arg, const char *name, size_t nlen, const char *value,
                             size_t vlen)
{
    (*(int *)arg)++;
    return 0;
}

/* Counts too, and stops the decoder (returning 7) at the second pair. */
static inline int stop_at_second(void *arg, const char *name, size_t nlen, const char *value,
                                 size_t vlen)
{
    return ++*(int *)arg == 2 ? 7 : 0;
}

#endif
