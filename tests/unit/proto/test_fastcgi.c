#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec_check.h"
#include "proto_fastcgi.h"

/* ---- helpers ------------------------------------------------------------- */

/* Feeds in[0..len) to the fcgi_parser as one piece, appending a normalised
 * log of the events to log: consecutive STDIN chunks are merged, so any split
 * of the same input must give the same log. Accepts the first BEGIN (as the
 * caller would) while no request is active. Returns 1 after an error. */
static int feed(void *parser, const uint8_t *in, size_t len, nw_buf *log, int *in_stdin)
{
    fcgi_parser *p = parser;
    size_t off = 0;
    for (;;) {
        fcgi_event ev;
        size_t n = fcgi_parse(p, in + off, len - off, &ev);
        cr_assert_leq(n, len - off);
        off += n;
        if (ev.type == FCGI_EV_NONE) {
            cr_assert_eq(off, len, "NONE but input left");
            return 0;
        }
        if (ev.type == FCGI_EV_STDIN) {
            cr_assert_gt(ev.len, 0);
            cr_assert_gt(n, 0);
            if (!*in_stdin)
                nw_buf_printf(log, "STDIN %u:", ev.id);
            *in_stdin = 1;
            add(log, ev.data, ev.len);
            continue;
        }
        if (*in_stdin)
            nw_buf_appends(log, "\n");
        *in_stdin = 0;
        switch (ev.type) {
        case FCGI_EV_BEGIN:
            nw_buf_printf(log, "BEGIN %u role=%u keep=%d\n", ev.id, ev.role, ev.keep_conn);
            if (!p->active_id)
                fcgi_parser_accept(p, ev.id);
            break;
        case FCGI_EV_PARAMS:
            nw_buf_printf(log, "PARAMS %u len=%zu:", ev.id, ev.len);
            add(log, ev.data, ev.len);
            nw_buf_appends(log, "\n");
            break;
        case FCGI_EV_STDIN_END:
            nw_buf_printf(log, "STDIN_END %u\n", ev.id);
            break;
        case FCGI_EV_ABORT:
            nw_buf_printf(log, "ABORT %u\n", ev.id);
            break;
        case FCGI_EV_GET_VALUES:
            nw_buf_printf(log, "GET_VALUES len=%zu:", ev.len);
            add(log, ev.data, ev.len);
            nw_buf_appends(log, "\n");
            break;
        case FCGI_EV_UNKNOWN_TYPE:
            nw_buf_printf(log, "UNKNOWN_TYPE %u\n", ev.type_byte);
            break;
        case FCGI_EV_ERROR:
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
    fcgi_parser p;
    fcgi_parser_init(&p);
    feed_pieces(feed, &p, in, len, cuts, ncuts, log);
    fcgi_parser_free(&p);
}

static fcgi_event parse1(fcgi_parser *p, const uint8_t *in, size_t len, size_t *off)
{
    fcgi_event ev;
    *off += fcgi_parse(p, in + *off, len - *off, &ev);
    return ev;
}

/* ---- a full request ------------------------------------------------------ */

/* The params stream of the full request: a 1-byte pair, a pair with a
 * 4-byte value length (200 bytes), and another 1-byte pair. */
static void build_params_stream(nw_buf *s)
{
    ADD(s, 0x0e, 0x04);
    nw_buf_appends(s, "REQUEST_METHODPOST");
    ADD(s, 0x0b, 0x80, 0x00, 0x00, 0xc8);
    nw_buf_appends(s, "HTTP_X_LONG");
    for (int i = 0; i < 200; i++)
        nw_buf_appendc(s, (char)('a' + i % 26));
    ADD(s, 0x0c, 0x03);
    nw_buf_appends(s, "QUERY_STRINGa=1");
}

static void build_request(nw_buf *b, nw_buf *params)
{
    build_params_stream(params);
    cr_assert_eq(params->len, 20 + 216 + 17);
    const uint8_t *ps = nw_buf_head(params);

    /* BEGIN_REQUEST id 1, responder, keep_conn. */
    ADD(b, 1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0);
    /* PARAMS: the first record ends 3 bytes into the second pair's 4-byte
     * value length. */
    ADD(b, 1, 4, 0, 1, 0, 23, 1, 0);
    add(b, ps, 23);
    ADD(b, 0);
    ADD(b, 1, 4, 0, 1, 0, 230, 2, 0);
    add(b, ps + 23, 230);
    ADD(b, 0, 0);
    ADD(b, 1, 4, 0, 1, 0, 0, 0, 0);
    /* STDIN "hello " and "world", padded, then the empty record. */
    ADD(b, 1, 5, 0, 1, 0, 6, 2, 0);
    nw_buf_appends(b, "hello ");
    ADD(b, 0, 0);
    ADD(b, 1, 5, 0, 1, 0, 5, 3, 0);
    nw_buf_appends(b, "world");
    ADD(b, 0, 0, 0);
    ADD(b, 1, 5, 0, 1, 0, 0, 0, 0);
}

Test(fastcgi, full_request_events)
{
    nw_buf in = NW_BUF_INIT, params = NW_BUF_INIT;
    build_request(&in, &params);
    const uint8_t *d = nw_buf_head(&in);
    fcgi_parser p;
    fcgi_parser_init(&p);
    size_t off = 0;

    fcgi_event ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_BEGIN);
    cr_assert_eq(ev.id, 1);
    cr_assert_eq(ev.role, FCGI_RESPONDER);
    cr_assert_eq(ev.keep_conn, 1);
    cr_assert_eq(off, 16);
    fcgi_parser_accept(&p, 1);

    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_PARAMS);
    cr_assert_eq(ev.id, 1);
    cr_assert_eq(ev.len, params.len);
    cr_assert(memcmp(ev.data, nw_buf_head(&params), params.len) == 0);

    struct pairs c = {0, ""};
    const char *err = NULL;
    cr_assert_eq(fcgi_params_decode(ev.data, ev.len, collect_pair, &c, &err), 0);
    cr_assert_eq(c.n, 3);
    char want[512];
    snprintf(want, sizeof want, "REQUEST_METHOD=POST;HTTP_X_LONG=%.*s;QUERY_STRING=a=1;", 200,
             (const char *)nw_buf_head(&params) + 20 + 16);
    cr_assert_str_eq(c.text, want);

    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_STDIN);
    cr_assert_eq(ev.len, 6);
    cr_assert(memcmp(ev.data, "hello ", 6) == 0);
    cr_assert(ev.data >= d && ev.data < d + in.len, "stdin is zero-copy");

    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_STDIN);
    cr_assert_eq(ev.len, 5);
    cr_assert(memcmp(ev.data, "world", 5) == 0);

    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_STDIN_END);
    cr_assert_eq(ev.id, 1);
    cr_assert_eq(off, in.len);

    ev = parse1(&p, d, in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_NONE);

    fcgi_parser_free(&p);
    nw_buf_free(&in);
    nw_buf_free(&params);
}

Test(fastcgi, full_request_split_everywhere)
{
    nw_buf in = NW_BUF_INIT, params = NW_BUF_INIT;
    build_request(&in, &params);

    nw_buf log = NW_BUF_INIT, want = NW_BUF_INIT;
    run_whole(nw_buf_head(&in), in.len, &log);
    nw_buf_appends(&want, "BEGIN 1 role=1 keep=1\n");
    nw_buf_printf(&want, "PARAMS 1 len=%zu:", params.len);
    add(&want, nw_buf_head(&params), params.len);
    nw_buf_appends(&want, "\nSTDIN 1:hello world\nSTDIN_END 1\n");
    assert_same_log(&want, &log, "whole", 0);

    assert_split_invariant(nw_buf_head(&in), in.len);
    nw_buf_free(&log);
    nw_buf_free(&want);
    nw_buf_free(&in);
    nw_buf_free(&params);
}

/* ---- padding, management, abort, other ids ------------------------------- */

Test(fastcgi, padding_on_every_kind_of_record)
{
    nw_buf in = NW_BUF_INIT;
    /* BEGIN with 8 bytes of padding, empty PARAMS padded, 1-byte STDIN with
     * 7 bytes of padding, empty STDIN with 255 bytes of padding. */
    ADD(&in, 1, 1, 0, 7, 0, 8, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0);
    ADD(&in, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee);
    ADD(&in, 1, 4, 0, 7, 0, 0, 3, 0, 1, 2, 3);
    ADD(&in, 1, 5, 0, 7, 0, 1, 7, 0, 'x', 9, 9, 9, 9, 9, 9, 9);
    ADD(&in, 1, 5, 0, 7, 0, 0, 255, 0);
    for (int i = 0; i < 255; i++)
        nw_buf_appendc(&in, 1); /* would be a bad version if read as a header */
    assert_log(nw_buf_head(&in), in.len,
               "BEGIN 7 role=1 keep=0\nPARAMS 7 len=0:\nSTDIN 7:x\nSTDIN_END 7\n");
    nw_buf_free(&in);
}

Test(fastcgi, get_values_and_answer)
{
    nw_buf in = NW_BUF_INIT, q = NW_BUF_INIT;
    ADD(&q, 14, 0);
    nw_buf_appends(&q, "FCGI_MAX_CONNS");
    ADD(&q, 13, 0);
    nw_buf_appends(&q, "FCGI_MAX_REQS");
    ADD(&q, 9, 0);
    nw_buf_appends(&q, "FCGI_NOPE");
    ADD(&q, 15, 0);
    nw_buf_appends(&q, "FCGI_MPXS_CONNS");
    cr_assert_eq(q.len, 59);
    ADD(&in, 1, 9, 0, 0, 0, 59, 5, 0);
    add(&in, nw_buf_head(&q), q.len);
    ADD(&in, 0, 0, 0, 0, 0);

    fcgi_parser p;
    fcgi_parser_init(&p);
    size_t off = 0;
    fcgi_event ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_GET_VALUES);
    cr_assert_eq(ev.id, 0);
    cr_assert_eq(ev.len, 59);
    cr_assert(memcmp(ev.data, nw_buf_head(&q), 59) == 0);

    nw_buf out = NW_BUF_INIT;
    cr_assert_eq(fcgi_encode_get_values_result(&out, ev.data, ev.len, 10, 50), 0);
    static const uint8_t want[] = {
        1, 10, 0, 0, 0, 53, 3, 0,
        14, 2, 'F', 'C', 'G', 'I', '_', 'M', 'A', 'X', '_', 'C', 'O', 'N', 'N', 'S', '1', '0',
        13, 2, 'F', 'C', 'G', 'I', '_', 'M', 'A', 'X', '_', 'R', 'E', 'Q', 'S', '5', '0',
        15, 1, 'F', 'C', 'G', 'I', '_', 'M', 'P', 'X', 'S', '_', 'C', 'O', 'N', 'N', 'S', '0',
        0, 0, 0,
    };
    cr_assert_eq(out.len, sizeof want);
    cr_assert(memcmp(nw_buf_head(&out), want, sizeof want) == 0);

    ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_NONE);
    cr_assert_eq(off, in.len);
    assert_split_invariant(nw_buf_head(&in), in.len);

    /* A malformed query is refused; an empty one gets an empty answer. */
    static const uint8_t bad[] = {0x80, 0, 0};
    cr_assert_eq(fcgi_encode_get_values_result(&out, bad, sizeof bad, 10, 50), -1);
    nw_buf_reset(&out);
    cr_assert_eq(fcgi_encode_get_values_result(&out, NULL, 0, 10, 50), 0);
    static const uint8_t empty[] = {1, 10, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(out.len, sizeof empty);
    cr_assert(memcmp(nw_buf_head(&out), empty, sizeof empty) == 0);

    fcgi_parser_free(&p);
    nw_buf_free(&out);
    nw_buf_free(&in);
    nw_buf_free(&q);
}

Test(fastcgi, unknown_management_type)
{
    nw_buf in = NW_BUF_INIT;
    ADD(&in, 1, 42, 0, 0, 0, 3, 5, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0);
    ADD(&in, 1, FCGI_ABORT_REQUEST, 0, 0, 0, 0, 0, 0);
    assert_log(nw_buf_head(&in), in.len, "UNKNOWN_TYPE 42\nUNKNOWN_TYPE 2\n");

    nw_buf out = NW_BUF_INIT;
    fcgi_encode_unknown_type(&out, 42);
    static const uint8_t want[] = {1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(out.len, sizeof want);
    cr_assert(memcmp(nw_buf_head(&out), want, sizeof want) == 0);
    nw_buf_free(&out);
    nw_buf_free(&in);
}

Test(fastcgi, abort_active_request_only)
{
    nw_buf in = NW_BUF_INIT;
    ADD(&in, 1, 1, 0x01, 0x02, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0);
    ADD(&in, 1, 2, 0, 9, 0, 0, 0, 0);       /* abort for another id: ignored */
    ADD(&in, 1, 2, 0x01, 0x02, 0, 0, 0, 0); /* abort for the active one */
    assert_log(nw_buf_head(&in), in.len, "BEGIN 258 role=1 keep=0\nABORT 258\n");
    nw_buf_free(&in);
}

Test(fastcgi, second_begin_reported_and_other_ids_ignored)
{
    nw_buf in = NW_BUF_INIT;
    ADD(&in, 1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0);
    /* A second BEGIN (authorizer) while 1 is active: reported, not accepted. */
    ADD(&in, 1, 1, 0, 2, 0, 8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0);
    /* Records for id 2 and for never-begun id 3: ignored. */
    ADD(&in, 1, 4, 0, 2, 0, 3, 5, 0, 1, 0, 'z', 0, 0, 0, 0, 0);
    ADD(&in, 1, 4, 0, 2, 0, 0, 0, 0);
    ADD(&in, 1, 5, 0, 3, 0, 2, 0, 0, 'n', 'o');
    ADD(&in, 1, 5, 0, 2, 0, 0, 0, 0);
    /* FCGI_DATA for the active id: ignored. */
    ADD(&in, 1, 8, 0, 1, 0, 4, 4, 0, 'd', 'a', 't', 'a', 0, 0, 0, 0);
    ADD(&in, 1, 4, 0, 1, 0, 0, 0, 0);
    ADD(&in, 1, 5, 0, 1, 0, 2, 6, 0, 'o', 'k', 0, 0, 0, 0, 0, 0);
    ADD(&in, 1, 5, 0, 1, 0, 0, 0, 0);
    assert_log(nw_buf_head(&in), in.len,
               "BEGIN 1 role=1 keep=1\n"
               "BEGIN 2 role=2 keep=0\n"
               "PARAMS 1 len=0:\n"
               "STDIN 1:ok\n"
               "STDIN_END 1\n");
    nw_buf_free(&in);
}

Test(fastcgi, next_request_after_end)
{
    fcgi_parser p;
    fcgi_parser_init(&p);
    static const uint8_t req[] = {
        1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, /* BEGIN 1 */
        1, 4, 0, 1, 0, 0, 0, 0,                         /* PARAMS end */
        1, 5, 0, 1, 0, 0, 0, 0,                         /* STDIN end */
    };
    for (int round = 0; round < 2; round++) {
        size_t off = 0;
        fcgi_event ev = parse1(&p, req, sizeof req, &off);
        cr_assert_eq(ev.type, FCGI_EV_BEGIN);
        fcgi_parser_accept(&p, ev.id);
        cr_assert_eq(parse1(&p, req, sizeof req, &off).type, FCGI_EV_PARAMS);
        cr_assert_eq(parse1(&p, req, sizeof req, &off).type, FCGI_EV_STDIN_END);
        cr_assert_eq(parse1(&p, req, sizeof req, &off).type, FCGI_EV_NONE);
        fcgi_parser_end(&p);
    }
    fcgi_parser_free(&p);
}

/* ---- errors -------------------------------------------------------------- */

Test(fastcgi, error_bad_version_is_sticky)
{
    static const uint8_t in[] = {2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
    fcgi_parser p;
    fcgi_parser_init(&p);
    fcgi_event ev;
    fcgi_parse(&p, in, sizeof in, &ev);
    cr_assert_eq(ev.type, FCGI_EV_ERROR);
    cr_assert_str_eq(ev.error, "bad fastcgi version byte");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(fcgi_parse(&p, in + 8, 8, &ev), 0);
        cr_assert_eq(ev.type, FCGI_EV_ERROR);
        cr_assert_str_eq(ev.error, "bad fastcgi version byte");
    }
    fcgi_parser_free(&p);
    assert_error(in, sizeof in, "bad fastcgi version byte");
}

Test(fastcgi, error_begin)
{
    static const uint8_t short_begin[] = {1, 1, 0, 1, 0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    assert_error(short_begin, sizeof short_begin, "begin request content length is not 8");
    static const uint8_t id0[] = {1, 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    assert_error(id0, sizeof id0, "begin request with request id 0");
}

Test(fastcgi, error_stream_after_end)
{
    static const uint8_t stdin_again[] = {
        1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 5, 0, 1, 0, 1, 7, 0,
        'a', 0, 0, 0, 0, 0, 0, 0, 1, 5, 0, 1, 0, 0, 0, 0, 1, 5, 0, 1, 0, 1, 7, 0,
        'b', 0, 0, 0, 0, 0, 0, 0,
    };
    assert_error(stdin_again, sizeof stdin_again, "stdin after end of stream");
    static const uint8_t params_again[] = {
        1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
        1, 4, 0, 1, 0, 0, 0, 0, 1, 4, 0, 1, 0, 0, 0, 0,
    };
    assert_error(params_again, sizeof params_again, "params after end of stream");
}

Test(fastcgi, error_app_side_record_type)
{
    static const uint8_t in[] = {1, 6, 0, 1, 0, 0, 0, 0};
    assert_error(in, sizeof in, "unexpected record type from web server");
}

Test(fastcgi, error_params_stream_too_long)
{
    nw_buf in = NW_BUF_INIT;
    ADD(&in, 1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0);
    /* 16 full records fit in FCGI_MAX_PARAMS_BYTES; the 17th does not. */
    for (int i = 0; i < 17; i++) {
        ADD(&in, 1, 4, 0, 1, 0xff, 0xff, 1, 0);
        memset(nw_buf_reserve(&in, 65536), 0, 65536);
        in.len += 65536;
    }
    fcgi_parser p;
    fcgi_parser_init(&p);
    size_t off = 0;
    fcgi_event ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_BEGIN);
    fcgi_parser_accept(&p, 1);
    ev = parse1(&p, nw_buf_head(&in), in.len, &off);
    cr_assert_eq(ev.type, FCGI_EV_ERROR);
    cr_assert_str_eq(ev.error, "params stream too long");
    cr_assert_eq(off, 16 + 16 * (8 + 65536) + 8, "fails at the 17th header");
    cr_assert_eq(p.params.len, 16 * 65535);
    fcgi_parser_free(&p);
    nw_buf_free(&in);
}

/* ---- fcgi_params_decode -------------------------------------------------- */

static void assert_decode_error(const uint8_t *d, size_t len, const char *why)
{
    int n = 0;
    const char *err = NULL;
    cr_assert_eq(fcgi_params_decode(d, len, count_pair, &n, &err), -1, "accepted: %s", why);
    cr_assert_not_null(err);
    cr_assert_str_eq(err, why);
}

Test(fastcgi, decode_huge_lengths)
{
    /* CVE-2025-23016: a 0x7fffffff length must not wrap a bounds check. */
    static const uint8_t name_7fffffff[] = {0xff, 0xff, 0xff, 0xff, 0x01, 'a', 'b'};
    assert_decode_error(name_7fffffff, sizeof name_7fffffff, "param length too large");
    static const uint8_t value_7fffffff[] = {0x01, 0xff, 0xff, 0xff, 0xff, 'a', 'b'};
    assert_decode_error(value_7fffffff, sizeof value_7fffffff, "param length too large");
    /* 0x80000000 | 0x7fffffff in both: same, masked to 31 bits. */
    static const uint8_t both[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_decode_error(both, sizeof both, "param length too large");
    /* Exactly the cap passes the cap check and fails the bounds check. */
    static const uint8_t at_cap[] = {0x80, 0x10, 0x00, 0x00, 0x00, 'a'};
    assert_decode_error(at_cap, sizeof at_cap, "param length beyond data");
    static const uint8_t over_cap[] = {0x80, 0x10, 0x00, 0x01, 0x00, 'a'};
    assert_decode_error(over_cap, sizeof over_cap, "param length too large");
}

Test(fastcgi, decode_truncated_and_short)
{
    static const uint8_t trunc4[] = {0x01, 0x80, 0x00, 0x00};
    assert_decode_error(trunc4, sizeof trunc4, "truncated param length");
    static const uint8_t no_value_len[] = {0x01};
    assert_decode_error(no_value_len, sizeof no_value_len, "truncated param length");
    static const uint8_t name_beyond[] = {0x05, 0x00, 'a', 'b', 'c', 'd'};
    assert_decode_error(name_beyond, sizeof name_beyond, "param length beyond data");
    static const uint8_t value_beyond[] = {0x01, 0x05, 'a', 'b', 'c', 'd', 'e'};
    assert_decode_error(value_beyond, sizeof value_beyond, "param length beyond data");
    static const uint8_t empty_name[] = {0x00, 0x01, 'v'};
    assert_decode_error(empty_name, sizeof empty_name, "empty param name");
    /* A good pair followed by a bad one: the good one is still reported. */
    static const uint8_t good_then_bad[] = {0x01, 0x01, 'k', 'v', 0x01};
    int n = 0;
    const char *err = NULL;
    cr_assert_eq(fcgi_params_decode(good_then_bad, sizeof good_then_bad, count_pair, &n, &err), -1);
    cr_assert_eq(n, 1);
}

Test(fastcgi, decode_pair_count_limit)
{
    nw_buf b = NW_BUF_INIT;
    for (unsigned i = 0; i < FCGI_MAX_PARAMS_COUNT; i++)
        ADD(&b, 0x01, 0x00, 'a');
    int n = 0;
    const char *err = NULL;
    cr_assert_eq(fcgi_params_decode(nw_buf_head(&b), b.len, count_pair, &n, &err), 0);
    cr_assert_eq(n, FCGI_MAX_PARAMS_COUNT);
    ADD(&b, 0x01, 0x00, 'a');
    assert_decode_error(nw_buf_head(&b), b.len, "too many params");
    nw_buf_free(&b);
}

Test(fastcgi, decode_callback_stops)
{
    static const uint8_t d[] = {1, 0, 'a', 1, 0, 'b', 1, 0, 'c'};
    int n = 0;
    const char *err = NULL;
    cr_assert_eq(fcgi_params_decode(d, sizeof d, stop_at_second, &n, &err), 7);
    cr_assert_eq(n, 2);
    cr_assert_eq(fcgi_params_decode(d, 0, count_pair, &n, &err), 0);
}

/* ---- encoders ------------------------------------------------------------ */

Test(fastcgi, encode_stream_large)
{
    size_t len = 70000;
    uint8_t *data = nw_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    nw_buf out = NW_BUF_INIT;
    fcgi_encode_stream(&out, FCGI_STDOUT, 1, data, len);
    const uint8_t *o = nw_buf_head(&out);
    cr_assert_eq(out.len, 8 + 65535 + 1 + 8 + 4465 + 7);

    static const uint8_t h1[] = {1, 6, 0, 1, 0xff, 0xff, 1, 0};
    cr_assert(memcmp(o, h1, 8) == 0);
    cr_assert(memcmp(o + 8, data, 65535) == 0);
    cr_assert_eq(o[8 + 65535], 0);
    o += 8 + 65535 + 1;
    static const uint8_t h2[] = {1, 6, 0, 1, 0x11, 0x71, 7, 0}; /* 4465 bytes */
    cr_assert(memcmp(o, h2, 8) == 0);
    cr_assert(memcmp(o + 8, data + 65535, 4465) == 0);
    static const uint8_t zeros[7] = {0};
    cr_assert(memcmp(o + 8 + 4465, zeros, 7) == 0);

    nw_buf_reset(&out);
    fcgi_encode_stream(&out, FCGI_STDERR, 0x1234, "abcdefgh", 8);
    static const uint8_t exact8[] = {1, 7, 0x12, 0x34, 0, 8, 0, 0,
                                     'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'};
    cr_assert_eq(out.len, sizeof exact8);
    cr_assert(memcmp(nw_buf_head(&out), exact8, sizeof exact8) == 0);
    nw_buf_free(&out);
    free(data);
}

Test(fastcgi, encode_empty_stream_and_end_request)
{
    nw_buf out = NW_BUF_INIT;
    fcgi_encode_stream(&out, FCGI_STDOUT, 1, NULL, 0);
    fcgi_encode_end_request(&out, 1, 0x01020304, FCGI_REQUEST_COMPLETE);
    fcgi_encode_end_request(&out, 0xabcd, 0, FCGI_CANT_MPX_CONN);
    static const uint8_t want[] = {
        1, 6, 0, 1, 0, 0, 0, 0,
        1, 3, 0, 1, 0, 8, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0,
        1, 3, 0xab, 0xcd, 0, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    };
    cr_assert_eq(out.len, sizeof want);
    cr_assert(memcmp(nw_buf_head(&out), want, sizeof want) == 0);
    nw_buf_free(&out);
}

Test(fastcgi, encode_pair_roundtrip)
{
    nw_buf out = NW_BUF_INIT;
    char big[300];
    memset(big, 'v', sizeof big);
    fcgi_encode_pair(&out, "K", 1, "val", 3);
    fcgi_encode_pair(&out, "BIG", 3, big, sizeof big);
    static const uint8_t head[] = {1, 3, 'K', 'v', 'a', 'l', 3, 0x80, 0x00, 0x01, 0x2c, 'B', 'I',
                                   'G'};
    cr_assert_eq(out.len, sizeof head + sizeof big);
    cr_assert(memcmp(nw_buf_head(&out), head, sizeof head) == 0);
    int n = 0;
    const char *err = NULL;
    cr_assert_eq(fcgi_params_decode(nw_buf_head(&out), out.len, count_pair, &n, &err), 0);
    cr_assert_eq(n, 2);
    nw_buf_free(&out);
}
