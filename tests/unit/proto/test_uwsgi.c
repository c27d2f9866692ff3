#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec_check.h"
#include "proto_uwsgi.h"

/* ---- helpers ------------------------------------------------------------- */

/* Appends one var from two C strings. */
static void var(nw_buf *b, const char *key, const char *value)
{
    cr_assert_eq(uwsgi_encode_var(b, key, strlen(key), value, strlen(value)), 0);
}

/* Appends a modifier1 0 request: header, the vars block and the body. */
static void request(nw_buf *b, const nw_buf *vars, const char *body)
{
    cr_assert_eq(uwsgi_encode_header(b, 0, vars->len, 0), 0);
    add(b, nw_buf_head(vars), vars->len);
    nw_buf_appends(b, body);
}

/* Feeds in[0..len) to the uwsgi_parser as one piece, appending a normalised
 * log of the events to log: consecutive BODY chunks are merged, so any split
 * of the same input must give the same log. Returns 1 after an error. */
static int feed(void *parser, const uint8_t *in, size_t len, nw_buf *log, int *in_body)
{
    uwsgi_parser *p = parser;
    size_t off = 0;
    for (;;) {
        uwsgi_event ev;
        size_t n = uwsgi_parse(p, in + off, len - off, &ev);
        cr_assert_leq(n, len - off);
        off += n;
        if (ev.type == UWSGI_EV_NONE) {
            cr_assert_eq(off, len, "NONE but input left");
            return 0;
        }
        if (ev.type == UWSGI_EV_BODY) {
            cr_assert_gt(ev.len, 0);
            cr_assert_eq(n, ev.len, "body chunk is the bytes consumed");
            cr_assert(ev.data == in + off - n, "body is zero-copy");
            if (!*in_body)
                nw_buf_appends(log, "BODY:");
            *in_body = 1;
            add(log, ev.data, ev.len);
            continue;
        }
        if (*in_body)
            nw_buf_appends(log, "\n");
        *in_body = 0;
        switch (ev.type) {
        case UWSGI_EV_VARS:
            nw_buf_printf(log, "VARS m1=%u m2=%u body=%llu len=%zu:", ev.modifier1, ev.modifier2,
                          (unsigned long long)ev.body_len, ev.len);
            add(log, ev.data, ev.len);
            nw_buf_appends(log, "\n");
            break;
        case UWSGI_EV_BODY_END:
            nw_buf_appends(log, "BODY_END\n");
            break;
        case UWSGI_EV_ERROR:
            nw_buf_printf(log, "ERROR %s\n", ev.error);
            return 1;
        default:
            cr_assert_fail("unexpected event type %d", ev.type);
        }
    }
}

/* For codec_check.h: a fresh parser fed in, cut at cuts. */
static void run_split(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts, nw_buf *log)
{
    uwsgi_parser p;
    uwsgi_parser_init(&p);
    feed_pieces(feed, &p, in, len, cuts, ncuts, log);
    uwsgi_parser_free(&p);
}

static uwsgi_event parse1(uwsgi_parser *p, const uint8_t *in, size_t len, size_t *off)
{
    uwsgi_event ev;
    *off += uwsgi_parse(p, in + *off, len - *off, &ev);
    return ev;
}

/* ---- a full request ------------------------------------------------------ */

/* The vars block of a POST as nginx's uwsgi_params sends it (abridged),
 * written out byte by byte so the encoder is not checking itself. */
static void build_post_vars(nw_buf *v)
{
    ADD(v, 12, 0);
    nw_buf_appends(v, "QUERY_STRING");
    ADD(v, 3, 0);
    nw_buf_appends(v, "a=1");
    ADD(v, 14, 0);
    nw_buf_appends(v, "REQUEST_METHOD");
    ADD(v, 4, 0);
    nw_buf_appends(v, "POST");
    ADD(v, 12, 0);
    nw_buf_appends(v, "CONTENT_TYPE");
    ADD(v, 10, 0);
    nw_buf_appends(v, "text/plain");
    ADD(v, 14, 0);
    nw_buf_appends(v, "CONTENT_LENGTH");
    ADD(v, 1, 0);
    nw_buf_appends(v, "5");
    ADD(v, 11, 0);
    nw_buf_appends(v, "REQUEST_URI");
    ADD(v, 8, 0);
    nw_buf_appends(v, "/x?a=1  ");
    ADD(v, 9, 0);
    nw_buf_appends(v, "HTTP_HOST");
    ADD(v, 0, 0); /* an empty value is fine */
    /* A value longer than 255 bytes, so the high byte of its length is used. */
    ADD(v, 11, 0);
    nw_buf_appends(v, "HTTP_X_LONG");
    ADD(v, 0x2c, 0x01);
    for (int i = 0; i < 300; i++)
        nw_buf_appendc(v, (char)('a' + i % 26));
}

static const char post_pairs[] = "QUERY_STRING=a=1;REQUEST_METHOD=POST;CONTENT_TYPE=text/plain;"
                                 "CONTENT_LENGTH=5;REQUEST_URI=/x?a=1  ;HTTP_HOST=;HTTP_X_LONG=";

Test(uwsgi, full_request_events)
{
    nw_buf vars = NW_BUF_INIT, in = NW_BUF_INIT;
    build_post_vars(&vars);
    cr_assert_eq(vars.len, 2 + 12 + 2 + 3 + 2 + 14 + 2 + 4 + 2 + 12 + 2 + 10 + 2 + 14 + 2 + 1 +
                               2 + 11 + 2 + 8 + 2 + 9 + 2 + 0 + 2 + 11 + 2 + 300);
    /* The header, written out: modifier1 0, the size low byte first, modifier2 0. */
    add(&in, (uint8_t[]){0, (uint8_t)vars.len, (uint8_t)(vars.len >> 8), 0}, 4);
    add(&in, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&in, "hello");
    const uint8_t *d = nw_buf_head(&in);

    uwsgi_parser p;
    uwsgi_parser_init(&p);
    size_t off = 0;

    uwsgi_event ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_VARS);
    cr_assert_eq(ev.modifier1, 0);
    cr_assert_eq(ev.modifier2, 0);
    cr_assert_eq(ev.body_len, 5);
    cr_assert_eq(off, 4 + vars.len);
    cr_assert_eq(ev.len, vars.len);
    cr_assert(memcmp(ev.data, nw_buf_head(&vars), vars.len) == 0);

    struct pairs c = {0, ""};
    const char *err = NULL;
    cr_assert_eq(uwsgi_vars_decode(ev.data, ev.len, collect_pair, &c, &err), 0);
    cr_assert_eq(c.n, 7);
    char want[1024];
    snprintf(want, sizeof want, "%s%.*s;", post_pairs, 300,
             (const char *)nw_buf_head(&vars) + vars.len - 300);
    cr_assert_str_eq(c.text, want);

    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_BODY);
    cr_assert_eq(ev.len, 5);
    cr_assert(memcmp(ev.data, "hello", 5) == 0);
    cr_assert(ev.data == d + in.len - 5, "body is zero-copy");
    cr_assert_eq(off, in.len);

    /* BODY_END needs no input. */
    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_BODY_END);
    cr_assert_eq(off, in.len);

    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_NONE);
    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_NONE);

    uwsgi_parser_free(&p);
    nw_buf_free(&in);
    nw_buf_free(&vars);
}

Test(uwsgi, full_request_split_everywhere)
{
    nw_buf vars = NW_BUF_INIT, in = NW_BUF_INIT;
    build_post_vars(&vars);
    request(&in, &vars, "hello");

    nw_buf log = NW_BUF_INIT, want = NW_BUF_INIT;
    run_whole(nw_buf_head(&in), in.len, &log);
    nw_buf_printf(&want, "VARS m1=0 m2=0 body=5 len=%zu:", vars.len);
    add(&want, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&want, "\nBODY:hello\nBODY_END\n");
    assert_same_log(&want, &log, "whole", 0);

    assert_split_invariant(nw_buf_head(&in), in.len);
    nw_buf_free(&log);
    nw_buf_free(&want);
    nw_buf_free(&in);
    nw_buf_free(&vars);
}

Test(uwsgi, get_without_body)
{
    nw_buf vars = NW_BUF_INIT, in = NW_BUF_INIT;
    var(&vars, "REQUEST_METHOD", "GET");
    var(&vars, "CONTENT_LENGTH", ""); /* nginx sends it empty for a GET */
    var(&vars, "PATH_INFO", "/");
    request(&in, &vars, "");

    uwsgi_parser p;
    uwsgi_parser_init(&p);
    size_t off = 0;
    uwsgi_event ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_VARS);
    cr_assert_eq(ev.body_len, 0);
    cr_assert_eq(off, in.len);
    ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_BODY_END);
    ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_NONE);
    uwsgi_parser_free(&p);

    assert_split_invariant(nw_buf_head(&in), in.len);
    nw_buf_free(&in);
    nw_buf_free(&vars);
}

Test(uwsgi, content_length_forms)
{
    /* Absent: no body. */
    nw_buf vars = NW_BUF_INIT, in = NW_BUF_INIT, want = NW_BUF_INIT;
    var(&vars, "PATH_INFO", "/");
    request(&in, &vars, "");
    nw_buf_printf(&want, "VARS m1=0 m2=0 body=0 len=%zu:", vars.len);
    add(&want, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&want, "\nBODY_END\n");
    nw_buf_appendc(&want, 0);
    assert_log(nw_buf_head(&in), in.len, (const char *)nw_buf_head(&want));

    /* "0", leading zeros, and exactly UWSGI_MAX_BODY are all digits in range. */
    static const struct {
        const char *cl;
        uint64_t n;
    } ok[] = {{"0", 0}, {"007", 7}, {"1099511627776", UWSGI_MAX_BODY}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        nw_buf_reset(&vars);
        nw_buf_reset(&in);
        var(&vars, "CONTENT_LENGTH", ok[i].cl);
        request(&in, &vars, "");
        uwsgi_parser p;
        uwsgi_parser_init(&p);
        uwsgi_event ev;
        cr_assert_eq(uwsgi_parse(&p, nw_buf_head(&in), in.len, &ev), in.len);
        cr_assert_eq(ev.type, UWSGI_EV_VARS, "CONTENT_LENGTH %s", ok[i].cl);
        cr_assert_eq(ev.body_len, ok[i].n, "CONTENT_LENGTH %s", ok[i].cl);
        uwsgi_parser_free(&p);
    }
    nw_buf_free(&vars);
    nw_buf_free(&in);
    nw_buf_free(&want);
}

Test(uwsgi, empty_vars_block)
{
    static const uint8_t in[] = {0, 0, 0, 0};
    assert_log(in, sizeof in, "VARS m1=0 m2=0 body=0 len=0:\nBODY_END\n");
    uwsgi_parser p;
    uwsgi_parser_init(&p);
    uwsgi_event ev;
    cr_assert_eq(uwsgi_parse(&p, in, sizeof in, &ev), 4);
    cr_assert_eq(ev.type, UWSGI_EV_VARS);
    cr_assert_not_null(ev.data);
    cr_assert_eq(ev.len, 0);
    uwsgi_parser_free(&p);
}

Test(uwsgi, modifier2_reported)
{
    nw_buf vars = NW_BUF_INIT, in = NW_BUF_INIT;
    var(&vars, "CONTENT_LENGTH", "2");
    cr_assert_eq(uwsgi_encode_header(&in, 0, vars.len, 0xa5), 0);
    add(&in, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&in, "ok");

    uwsgi_parser p;
    uwsgi_parser_init(&p);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        uwsgi_event ev = parse1(&p, nw_buf_head(&in), in.len, &off);
        cr_assert_eq(ev.type, i == 0 ? UWSGI_EV_VARS : i == 1 ? UWSGI_EV_BODY : UWSGI_EV_BODY_END);
        cr_assert_eq(ev.modifier1, 0);
        cr_assert_eq(ev.modifier2, 0xa5);
    }
    uwsgi_parser_free(&p);
    nw_buf_free(&vars);
    nw_buf_free(&in);
}

/* modifier1 30 (nginx's `uwsgi_modifier1 30;`, uWSGI's "strip SCRIPT_NAME
 * from PATH_INFO") frames a request as 0 does; the codec reports it and
 * hands out the vars block as it came (the session rewrites PATH_INFO). */
Test(uwsgi, modifier1_30_is_served)
{
    nw_buf vars = NW_BUF_INIT, in = NW_BUF_INIT, log = NW_BUF_INIT, want = NW_BUF_INIT;
    var(&vars, "SCRIPT_NAME", "/app");
    var(&vars, "PATH_INFO", "/app/x");
    var(&vars, "CONTENT_LENGTH", "2");
    cr_assert_eq(uwsgi_encode_header(&in, 30, vars.len, 0), 0);
    add(&in, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&in, "ok");
    run_whole(nw_buf_head(&in), in.len, &log);
    nw_buf_printf(&want, "VARS m1=30 m2=0 body=2 len=%zu:", vars.len);
    add(&want, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&want, "\nBODY:ok\nBODY_END\n");
    assert_same_log(&want, &log, "modifier1 30", 0);
    assert_split_invariant(nw_buf_head(&in), in.len);
    nw_buf_free(&vars);
    nw_buf_free(&in);
    nw_buf_free(&log);
    nw_buf_free(&want);
}

/* ---- errors -------------------------------------------------------------- */

/* The vars block is reported only once it is known good: an error must be
 * the first and only event. */
static void assert_vars_error(const nw_buf *vars, const char *why)
{
    nw_buf in = NW_BUF_INIT, log = NW_BUF_INIT, want = NW_BUF_INIT;
    request(&in, vars, "");
    run_whole(nw_buf_head(&in), in.len, &log);
    nw_buf_printf(&want, "ERROR %s\n", why);
    assert_same_log(&want, &log, why, 0);
    assert_split_invariant(nw_buf_head(&in), in.len);
    nw_buf_free(&in);
    nw_buf_free(&log);
    nw_buf_free(&want);
}

Test(uwsgi, error_bad_modifier1_is_sticky)
{
    static const uint8_t in[] = {5, 2, 0, 0, 1, 0};
    uwsgi_parser p;
    uwsgi_parser_init(&p);
    uwsgi_event ev;
    cr_assert_eq(uwsgi_parse(&p, in, sizeof in, &ev), 4, "fails at the end of the header");
    cr_assert_eq(ev.type, UWSGI_EV_ERROR);
    cr_assert_str_eq(ev.error, "unsupported uwsgi modifier1");
    cr_assert_eq(ev.modifier1, 5, "the event names the modifier1");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(uwsgi_parse(&p, in + 4, 2, &ev), 0);
        cr_assert_eq(ev.type, UWSGI_EV_ERROR);
        cr_assert_str_eq(ev.error, "unsupported uwsgi modifier1");
        cr_assert_eq(uwsgi_parse(&p, NULL, 0, &ev), 0);
        cr_assert_eq(ev.type, UWSGI_EV_ERROR);
    }
    uwsgi_parser_free(&p);
    assert_error(in, sizeof in, "unsupported uwsgi modifier1");
    static const uint8_t m255[] = {255, 0, 0, 0};
    assert_error(m255, sizeof m255, "unsupported uwsgi modifier1");
}

Test(uwsgi, error_var_length_beyond_block)
{
    nw_buf v = NW_BUF_INIT;
    /* Key length 9 with 8 key bytes left in the block. */
    ADD(&v, 9, 0, 'P', 'A', 'T', 'H', '_', 'I', 'N', 'F');
    assert_vars_error(&v, "uwsgi var length beyond block");
    /* A good pair, then a value length of 0x0100 with 3 bytes left. */
    nw_buf_reset(&v);
    var(&v, "A", "b");
    ADD(&v, 1, 0, 'K', 0x00, 0x01, 'x', 'y', 'z');
    assert_vars_error(&v, "uwsgi var length beyond block");
    /* 0xffff lengths, read little-endian, are far beyond. */
    nw_buf_reset(&v);
    ADD(&v, 0xff, 0xff, 'k');
    assert_vars_error(&v, "uwsgi var length beyond block");
    nw_buf_free(&v);
}

Test(uwsgi, error_truncated_pair_at_end)
{
    nw_buf v = NW_BUF_INIT;
    /* A good pair, then one byte of a key length. */
    var(&v, "REQUEST_METHOD", "GET");
    ADD(&v, 4);
    assert_vars_error(&v, "truncated uwsgi var length");
    /* A key with no value length. */
    nw_buf_reset(&v);
    var(&v, "REQUEST_METHOD", "GET");
    ADD(&v, 4, 0, 'H', 'O', 'S', 'T');
    assert_vars_error(&v, "truncated uwsgi var length");
    /* A key with half a value length. */
    ADD(&v, 0);
    assert_vars_error(&v, "truncated uwsgi var length");
    nw_buf_free(&v);
}

Test(uwsgi, error_empty_key)
{
    nw_buf v = NW_BUF_INIT;
    var(&v, "REQUEST_METHOD", "GET");
    ADD(&v, 0, 0, 1, 0, 'v');
    assert_vars_error(&v, "empty uwsgi var key");
    nw_buf_free(&v);
}

Test(uwsgi, error_bad_content_length)
{
    static const char *const bad[] = {
        "-1", "12a", "99999999999999999999", "+5", " 5", "5 ", "1099511627777", "0x10",
        "18446744073709551616", /* 2^64: would wrap to 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nw_buf v = NW_BUF_INIT;
        var(&v, "REQUEST_METHOD", "POST");
        var(&v, "CONTENT_LENGTH", bad[i]);
        assert_vars_error(&v, "bad CONTENT_LENGTH");
        nw_buf_free(&v);
    }
}

Test(uwsgi, error_duplicate_content_length)
{
    nw_buf v = NW_BUF_INIT;
    var(&v, "CONTENT_LENGTH", "5");
    var(&v, "CONTENT_LENGTH", "0");
    assert_vars_error(&v, "duplicate CONTENT_LENGTH");
    nw_buf_free(&v);
}

Test(uwsgi, content_length_key_is_exact)
{
    /* Only the exact key counts: these leave body_len 0, and their values
     * are not checked. */
    nw_buf v = NW_BUF_INIT, in = NW_BUF_INIT;
    var(&v, "content_length", "5");
    var(&v, "CONTENT_LENGTH_", "x");
    var(&v, "HTTP_CONTENT_LENGTH", "-1");
    request(&in, &v, "");
    uwsgi_parser p;
    uwsgi_parser_init(&p);
    uwsgi_event ev;
    uwsgi_parse(&p, nw_buf_head(&in), in.len, &ev);
    cr_assert_eq(ev.type, UWSGI_EV_VARS);
    cr_assert_eq(ev.body_len, 0);
    uwsgi_parser_free(&p);
    nw_buf_free(&v);
    nw_buf_free(&in);
}

Test(uwsgi, error_data_after_body)
{
    nw_buf vars = NW_BUF_INIT, in = NW_BUF_INIT;
    var(&vars, "CONTENT_LENGTH", "5");
    request(&in, &vars, "helloX");
    nw_buf want = NW_BUF_INIT;
    nw_buf_printf(&want, "VARS m1=0 m2=0 body=5 len=%zu:", vars.len);
    add(&want, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&want, "\nBODY:hello\nBODY_END\nERROR data after the request body\n");
    nw_buf_appendc(&want, 0);
    assert_log(nw_buf_head(&in), in.len, (const char *)nw_buf_head(&want));

    /* Without a body: a second request on the same connection. */
    nw_buf_reset(&vars);
    nw_buf_reset(&in);
    nw_buf_reset(&want);
    var(&vars, "PATH_INFO", "/");
    request(&in, &vars, "");
    request(&in, &vars, "");
    nw_buf_printf(&want, "VARS m1=0 m2=0 body=0 len=%zu:", vars.len);
    add(&want, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&want, "\nBODY_END\nERROR data after the request body\n");
    nw_buf_appendc(&want, 0);
    assert_log(nw_buf_head(&in), in.len, (const char *)nw_buf_head(&want));

    /* Sticky, and the extra byte is not consumed. */
    uwsgi_parser p;
    uwsgi_parser_init(&p);
    size_t off = 0;
    cr_assert_eq(parse1(&p, nw_buf_head(&in), in.len, &off).type, UWSGI_EV_VARS);
    cr_assert_eq(parse1(&p, nw_buf_head(&in), in.len, &off).type, UWSGI_EV_BODY_END);
    size_t at = off;
    for (int i = 0; i < 2; i++) {
        uwsgi_event ev = parse1(&p, nw_buf_head(&in), in.len, &off);
        cr_assert_eq(ev.type, UWSGI_EV_ERROR);
        cr_assert_str_eq(ev.error, "data after the request body");
        cr_assert_eq(off, at);
    }
    uwsgi_parser_free(&p);
    nw_buf_free(&vars);
    nw_buf_free(&in);
    nw_buf_free(&want);
}

Test(uwsgi, vars_error_is_sticky)
{
    nw_buf v = NW_BUF_INIT, in = NW_BUF_INIT;
    ADD(&v, 0, 0, 0, 0);
    request(&in, &v, "more");
    uwsgi_parser p;
    uwsgi_parser_init(&p);
    size_t off = 0;
    uwsgi_event ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_ERROR);
    cr_assert_str_eq(ev.error, "empty uwsgi var key");
    cr_assert_eq(off, 4 + v.len);
    for (int i = 0; i < 2; i++) {
        ev = parse1(&p, nw_buf_head(&in), in.len, &off);
        cr_assert_eq(ev.type, UWSGI_EV_ERROR);
        cr_assert_str_eq(ev.error, "empty uwsgi var key");
        cr_assert_eq(off, 4 + v.len);
    }
    uwsgi_parser_free(&p);
    nw_buf_free(&v);
    nw_buf_free(&in);
}

/* ---- uwsgi_vars_decode --------------------------------------------------- */

static void assert_decode_error(const uint8_t *d, size_t len, const char *why)
{
    int n = 0;
    const char *err = NULL;
    cr_assert_eq(uwsgi_vars_decode(d, len, count_pair, &n, &err), -1, "accepted: %s", why);
    cr_assert_not_null(err);
    cr_assert_str_eq(err, why);
}

Test(uwsgi, decode_lengths_checked)
{
    static const uint8_t one_byte[] = {1};
    assert_decode_error(one_byte, sizeof one_byte, "truncated uwsgi var length");
    static const uint8_t key_beyond[] = {3, 0, 'a', 'b'};
    assert_decode_error(key_beyond, sizeof key_beyond, "uwsgi var length beyond block");
    static const uint8_t value_beyond[] = {1, 0, 'a', 2, 0, 'b'};
    assert_decode_error(value_beyond, sizeof value_beyond, "uwsgi var length beyond block");
    static const uint8_t no_value_len[] = {1, 0, 'a'};
    assert_decode_error(no_value_len, sizeof no_value_len, "truncated uwsgi var length");
    static const uint8_t empty_key[] = {0, 0, 0, 0};
    assert_decode_error(empty_key, sizeof empty_key, "empty uwsgi var key");
    /* Big-endian reading would make this key 256 bytes long. */
    static const uint8_t le[] = {1, 0, 'k', 1, 0, 'v'};
    struct pairs c = {0, ""};
    const char *err = NULL;
    cr_assert_eq(uwsgi_vars_decode(le, sizeof le, collect_pair, &c, &err), 0);
    cr_assert_str_eq(c.text, "k=v;");
    /* A good pair followed by a bad one: the good one is still reported. */
    static const uint8_t good_then_bad[] = {1, 0, 'k', 1, 0, 'v', 1};
    int n = 0;
    cr_assert_eq(uwsgi_vars_decode(good_then_bad, sizeof good_then_bad, count_pair, &n, &err), -1);
    cr_assert_eq(n, 1);
}

Test(uwsgi, decode_pair_count_limit)
{
    nw_buf b = NW_BUF_INIT;
    for (unsigned i = 0; i < UWSGI_MAX_VARS_COUNT; i++)
        ADD(&b, 1, 0, 'a', 0, 0);
    int n = 0;
    const char *err = NULL;
    cr_assert_eq(uwsgi_vars_decode(nw_buf_head(&b), b.len, count_pair, &n, &err), 0);
    cr_assert_eq(n, UWSGI_MAX_VARS_COUNT);
    ADD(&b, 1, 0, 'a', 0, 0);
    assert_decode_error(nw_buf_head(&b), b.len, "too many uwsgi vars");
    nw_buf_free(&b);
}

Test(uwsgi, parser_pair_count_limit)
{
    /* 4097 five-byte pairs fit in one 65535-byte block: the parser refuses them. */
    nw_buf v = NW_BUF_INIT;
    for (unsigned i = 0; i <= UWSGI_MAX_VARS_COUNT; i++)
        ADD(&v, 1, 0, 'a', 0, 0);
    cr_assert_leq(v.len, 0xffff);
    nw_buf in = NW_BUF_INIT;
    request(&in, &v, "");
    uwsgi_parser p;
    uwsgi_parser_init(&p);
    uwsgi_event ev;
    cr_assert_eq(uwsgi_parse(&p, nw_buf_head(&in), in.len, &ev), in.len);
    cr_assert_eq(ev.type, UWSGI_EV_ERROR);
    cr_assert_str_eq(ev.error, "too many uwsgi vars");
    uwsgi_parser_free(&p);
    nw_buf_free(&v);
    nw_buf_free(&in);
}

Test(uwsgi, decode_callback_stops)
{
    static const uint8_t d[] = {1, 0, 'a', 0, 0, 1, 0, 'b', 0, 0, 1, 0, 'c', 0, 0};
    int n = 0;
    const char *err = NULL;
    cr_assert_eq(uwsgi_vars_decode(d, sizeof d, stop_at_second, &n, &err), 7);
    cr_assert_eq(n, 2);
    /* Stopping early skips the check of the rest, as the contract says. */
    static const uint8_t then_bad[] = {1, 0, 'a', 0, 0, 1, 0, 'b', 0, 0, 9};
    n = 0;
    cr_assert_eq(uwsgi_vars_decode(then_bad, sizeof then_bad, stop_at_second, &n, &err), 7);
    n = 0;
    cr_assert_eq(uwsgi_vars_decode(d, 0, count_pair, &n, &err), 0);
    cr_assert_eq(n, 0);
}

/* ---- encoders ------------------------------------------------------------ */

Test(uwsgi, encode_header_little_endian)
{
    nw_buf out = NW_BUF_INIT;
    cr_assert_eq(uwsgi_encode_header(&out, 0, 0x1234, 0), 0);
    cr_assert_eq(uwsgi_encode_header(&out, 5, 0xffff, 0xab), 0);
    cr_assert_eq(uwsgi_encode_header(&out, 0, 0, 0), 0);
    static const uint8_t want[] = {0, 0x34, 0x12, 0, 5, 0xff, 0xff, 0xab, 0, 0, 0, 0};
    cr_assert_eq(out.len, sizeof want);
    cr_assert(memcmp(nw_buf_head(&out), want, sizeof want) == 0);
    cr_assert_eq(uwsgi_encode_header(&out, 0, 0x10000, 0), -1);
    cr_assert_eq(out.len, sizeof want, "nothing appended on failure");
    nw_buf_free(&out);
}

Test(uwsgi, encode_var)
{
    nw_buf out = NW_BUF_INIT;
    cr_assert_eq(uwsgi_encode_var(&out, "KEY", 3, "value", 5), 0);
    cr_assert_eq(uwsgi_encode_var(&out, "E", 1, "", 0), 0);
    static const uint8_t want[] = {3, 0, 'K', 'E', 'Y', 5, 0, 'v', 'a', 'l', 'u', 'e',
                                   1, 0, 'E', 0, 0};
    cr_assert_eq(out.len, sizeof want);
    cr_assert(memcmp(nw_buf_head(&out), want, sizeof want) == 0);

    /* 65535 is the largest length; the high byte goes second. */
    char *big = nw_xcalloc(0x10000, 1);
    memset(big, 'x', 0x10000);
    nw_buf_reset(&out);
    cr_assert_eq(uwsgi_encode_var(&out, "B", 1, big, 0xffff), 0);
    cr_assert_eq(out.len, 2 + 1 + 2 + 0xffff);
    static const uint8_t head[] = {1, 0, 'B', 0xff, 0xff};
    cr_assert(memcmp(nw_buf_head(&out), head, sizeof head) == 0);
    nw_buf_reset(&out);
    cr_assert_eq(uwsgi_encode_var(&out, "B", 1, big, 0x10000), -1);
    cr_assert_eq(uwsgi_encode_var(&out, big, 0x10000, "v", 1), -1);
    cr_assert_eq(out.len, 0, "nothing appended on failure");
    free(big);
    nw_buf_free(&out);
}

Test(uwsgi, encode_head)
{
    nw_buf out = NW_BUF_INIT;
    static const char hdrs[] = "Content-Type: text/plain\r\nX-A: b\r\n";
    uwsgi_encode_head(&out, 200, "OK", hdrs, sizeof hdrs - 1);
    static const char want[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\n";
    cr_assert_eq(out.len, sizeof want - 1);
    cr_assert(memcmp(nw_buf_head(&out), want, sizeof want - 1) == 0);

    nw_buf_reset(&out);
    uwsgi_encode_head(&out, 404, "Not Found", NULL, 0);
    static const char want404[] = "HTTP/1.1 404 Not Found\r\n\r\n";
    cr_assert_eq(out.len, sizeof want404 - 1);
    cr_assert(memcmp(nw_buf_head(&out), want404, sizeof want404 - 1) == 0);
    nw_buf_free(&out);
}

Test(uwsgi, encoders_roundtrip_through_parser)
{
    nw_buf vars = NW_BUF_INIT, in = NW_BUF_INIT;
    var(&vars, "REQUEST_METHOD", "PUT");
    var(&vars, "CONTENT_LENGTH", "11");
    request(&in, &vars, "hello world");

    uwsgi_parser p;
    uwsgi_parser_init(&p);
    size_t off = 0;
    uwsgi_event ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, UWSGI_EV_VARS);
    cr_assert_eq(ev.body_len, 11);
    struct pairs c = {0, ""};
    const char *err = NULL;
    cr_assert_eq(uwsgi_vars_decode(ev.data, ev.len, collect_pair, &c, &err), 0);
    cr_assert_str_eq(c.text, "REQUEST_METHOD=PUT;CONTENT_LENGTH=11;");
    uwsgi_parser_free(&p);
    assert_split_invariant(nw_buf_head(&in), in.len);
    nw_buf_free(&vars);
    nw_buf_free(&in);
}
