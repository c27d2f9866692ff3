/* Unit tests for the protocol sessions (src/proto/session*.c): what a
 * connection's records mean for the server, byte-exact, and the split
 * invariant over the session's events and answers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "codec_check.h"
#include "narwhal.h"
#include "session.h"

/* ---- helpers ------------------------------------------------------------- */

static nw_protocol setting = NW_PROTO_AUTO;

/* Logs the session's events; REQUEST accepts nothing more (the server would
 * dispatch), so a test that wants the body goes on feeding. */
static int feed(void *arg, const uint8_t *in, size_t len, nw_buf *log, int *in_stream)
{
    nw_session *s = arg;
    nw_buf *out = s->trace_arg; /* the answers, kept beside the session */
    size_t off = 0;
    for (;;) {
        sess_event ev;
        size_t n = session_parse(s, setting, in + off, len - off, out, &ev);
        cr_assert_leq(n, len - off);
        off += n;
        if (ev.type == SESS_EV_NONE) {
            cr_assert_eq(off, len, "NONE but input left");
            return 0;
        }
        if (ev.type == SESS_EV_BODY) {
            cr_assert_gt(ev.len, 0);
            if (!*in_stream)
                nw_buf_printf(log, "BODY:");
            *in_stream = 1;
            add(log, ev.data, ev.len);
            continue;
        }
        if (*in_stream)
            nw_buf_appends(log, "\n");
        *in_stream = 0;
        switch (ev.type) {
        case SESS_EV_REQUEST:
            nw_buf_printf(log, "REQUEST %u keep=%d body_done=%d:", ev.id, ev.keep_conn,
                          ev.body_done);
            const char *err = NULL;
            struct pairs pairs = {0};
            cr_assert_eq(s->proto->params(s, ev.data, ev.len, collect_pair, &pairs, &err), 0);
            nw_buf_printf(log, "%s\n", pairs.text);
            break;
        case SESS_EV_BODY_END:
            nw_buf_appends(log, "BODY_END\n");
            break;
        case SESS_EV_ABORT:
            nw_buf_printf(log, "ABORT %u\n", ev.id);
            break;
        case SESS_EV_LOG:
            nw_buf_printf(log, "LOG %d close=%d %s\n", ev.level, ev.close_after, ev.msg);
            break;
        case SESS_EV_ERROR:
            nw_buf_printf(log, "ERROR %s\n", ev.msg);
            return 1;
        default:
            cr_assert_fail("unexpected event %d", ev.type);
        }
    }
}

static void run_split(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts, nw_buf *log)
{
    nw_session s;
    nw_buf out = NW_BUF_INIT;
    session_init(&s, 8, 2);
    s.trace_arg = &out; /* no trace function: only a place for the answers */
    feed_pieces(feed, &s, in, len, cuts, ncuts, log);
    if (out.len) {
        nw_buf_appends(log, "OUT:");
        for (size_t i = 0; i < out.len; i++)
            nw_buf_printf(log, "%02x", nw_buf_head(&out)[i]);
        nw_buf_appends(log, "\n");
    }
    nw_buf_free(&out);
    session_free(&s);
}

/* A FastCGI record, written out byte by byte. */
static void rec(nw_buf *b, uint8_t type, uint16_t id, const void *content, size_t len)
{
    uint8_t h[8] = {1, type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(len >> 8), (uint8_t)len,
                    0, 0};
    add(b, h, 8);
    add(b, content, len);
}

static void begin(nw_buf *b, uint16_t id, uint16_t role, int keep)
{
    uint8_t c[8] = {(uint8_t)(role >> 8), (uint8_t)role, (uint8_t)(keep ? 1 : 0), 0, 0, 0, 0, 0};
    rec(b, FCGI_BEGIN_REQUEST, id, c, 8);
}

/* PARAMS with A=1 and B=two, then the empty PARAMS record. */
static void params(nw_buf *b, uint16_t id)
{
    static const uint8_t p[] = {1, 1, 'A', '1', 1, 3, 'B', 't', 'w', 'o'};
    rec(b, FCGI_PARAMS, id, p, sizeof p);
    rec(b, FCGI_PARAMS, id, NULL, 0);
}

/* Feeds BEGIN + PARAMS for id to s: the REQUEST event must come, with
 * nothing answered. */
static void start_request(nw_session *s, uint16_t id, int keep)
{
    nw_buf in = NW_BUF_INIT, out = NW_BUF_INIT;
    begin(&in, id, FCGI_RESPONDER, keep);
    params(&in, id);
    sess_event ev;
    size_t used = session_parse(s, NW_PROTO_AUTO, nw_buf_head(&in), in.len, &out, &ev);
    cr_assert_eq(ev.type, SESS_EV_REQUEST);
    cr_assert_eq(ev.id, id);
    cr_assert_eq(used, in.len);
    cr_assert_eq(out.len, 0, "nothing answered");
    nw_buf_free(&in);
    nw_buf_free(&out);
}

/* The input a test builds; the suites' fixtures empty and free it. */
static nw_buf b = NW_BUF_INIT;

static void fresh(void)
{
    nw_buf_reset(&b);
}

static void done(void) {}

TestSuite(session_fastcgi, .init = fresh, .fini = done);
TestSuite(session_uwsgi, .init = fresh, .fini = done);

#define CHECK(want) assert_log(nw_buf_head(&b), b.len, want)
#define CHECK_ERROR(why) assert_error(nw_buf_head(&b), b.len, why)

/* ---- FastCGI ------------------------------------------------------------- */

Test(session_fastcgi, request_then_body)
{
    begin(&b, 1, FCGI_RESPONDER, 1);
    params(&b, 1);
    rec(&b, FCGI_STDIN, 1, "hello", 5);
    rec(&b, FCGI_STDIN, 1, NULL, 0);
    CHECK("REQUEST 1 keep=1 body_done=0:A=1;B=two;\n"
          "BODY:hello\n"
          "BODY_END\n");
}

Test(session_fastcgi, second_begin_is_cant_mpx_conn)
{
    begin(&b, 1, FCGI_RESPONDER, 0);
    begin(&b, 2, FCGI_RESPONDER, 0);
    params(&b, 1);
    /* END_REQUEST for id 2: app status 0, protocol status 1 */
    CHECK("LOG 2 close=0 request 2 begun while request 1 is active; answering "
          "FCGI_CANT_MPX_CONN\n"
          "REQUEST 1 keep=0 body_done=0:A=1;B=two;\n"
          "OUT:0103000200080000"
          "0000000001000000\n");
}

Test(session_fastcgi, other_roles_are_unknown_role)
{
    begin(&b, 3, FCGI_AUTHORIZER, 0);
    CHECK("LOG 2 close=1 role 2 is not supported (only the responder role); answering "
          "FCGI_UNKNOWN_ROLE\n"
          "OUT:0103000300080000"
          "0000000003000000\n");
    nw_buf_reset(&b);
    begin(&b, 3, FCGI_FILTER, 1); /* keep_conn: the connection stays */
    CHECK("LOG 2 close=0 role 3 is not supported (only the responder role); answering "
          "FCGI_UNKNOWN_ROLE\n"
          "OUT:0103000300080000"
          "0000000003000000\n");
}

Test(session_fastcgi, get_values_answered_for_the_server)
{
    static const uint8_t q[] = {14,  0,   'F', 'C', 'G', 'I', '_', 'M', 'A', 'X', '_',
                                'C', 'O', 'N', 'N', 'S', 13,  0,   'F', 'C', 'G', 'I',
                                '_', 'M', 'A', 'X', '_', 'R', 'E', 'Q', 'S'};
    rec(&b, FCGI_GET_VALUES, 0, q, sizeof q);
    /* GET_VALUES_RESULT (type 10), 33 bytes of content and 7 of padding:
     * FCGI_MAX_CONNS=8, FCGI_MAX_REQS=2 (workers x what each takes) */
    CHECK("OUT:010a000000210700"
          "0e01"
          "464347495f4d41585f434f4e4e53"
          "38"
          "0d01"
          "464347495f4d41585f52455153"
          "32"
          "00000000000000\n");
}

Test(session_fastcgi, unknown_management_type)
{
    rec(&b, 42, 0, "x", 1);
    CHECK("LOG 1 close=0 unknown management record type 42\n"
          "OUT:010b000000080000"
          "2a00000000000000\n");
}

Test(session_fastcgi, stdin_before_the_params_end_is_refused)
{
    /* Body bytes with no one to read them yet would be held without bound. */
    begin(&b, 1, FCGI_RESPONDER, 1);
    rec(&b, FCGI_STDIN, 1, "early", 5);
    CHECK_ERROR("malformed fastcgi input: stdin before the params ended");
}

Test(session_fastcgi, abort_before_the_params_ends_the_request)
{
    begin(&b, 1, FCGI_RESPONDER, 1);
    rec(&b, FCGI_ABORT_REQUEST, 1, NULL, 0);
    begin(&b, 2, FCGI_RESPONDER, 0); /* a new request may begin */
    params(&b, 2);
    CHECK("LOG 1 close=0 request 1 aborted by the front end\n"
          "REQUEST 2 keep=0 body_done=0:A=1;B=two;\n"
          "OUT:0103000100080000"
          "0000000000000000\n");
}

Test(session_fastcgi, abort_of_a_running_request_is_an_event)
{
    begin(&b, 5, FCGI_RESPONDER, 1);
    params(&b, 5);
    rec(&b, FCGI_ABORT_REQUEST, 7, NULL, 0); /* not the active one: ignored */
    rec(&b, FCGI_ABORT_REQUEST, 5, NULL, 0);
    CHECK("REQUEST 5 keep=1 body_done=0:A=1;B=two;\n"
          "ABORT 5\n");
}

Test(session_fastcgi, request_over_lets_the_next_begin)
{
    nw_session s;
    session_init(&s, 1, 1);
    start_request(&s, 1, 1);
    cr_assert_eq(s.active, 1);
    session_request_over(&s);
    cr_assert_eq(s.active, 0);
    start_request(&s, 1, 1); /* the same id again, after the first ended */
    session_free(&s);
}

Test(session_fastcgi, response_framing)
{
    nw_session s;
    nw_buf staged = NW_BUF_INIT, out = NW_BUF_INIT;
    session_init(&s, 1, 1);
    start_request(&s, 0x0102, 0);
    const nw_proto *p = s.proto;
    cr_assert_eq(p, &session_fastcgi);
    cr_assert_str_eq(p->params_name, "fastcgi params");

    p->head(&staged, 404, "Not Found", "X-A: b\r\n", 8);
    nw_buf_appendc(&staged, 0);
    cr_assert_str_eq((char *)nw_buf_head(&staged), "Status: 404 Not Found\r\nX-A: b\r\n\r\n");

    p->body(&s, &out, "hi", 2);
    p->body(&s, &out, "", 0); /* nothing: an empty record would end the stream */
    p->log(&s, &out, "oops", 4);
    p->body_end(&s, &out);
    p->end(&s, &out);
    static const uint8_t want[] = {
        1, 6, 1, 2, 0, 2, 6, 0, 'h', 'i', 0,   0,   0, 0, 0, 0, /* STDOUT "hi", 6 padding */
        1, 7, 1, 2, 0, 4, 4, 0, 'o', 'o', 'p', 's', 0, 0, 0, 0, /* STDERR "oops" */
        1, 6, 1, 2, 0, 0, 0, 0,                                 /* empty STDOUT */
        1, 3, 1, 2, 0, 8, 0, 0, 0,   0,   0,   0,   0, 0, 0, 0, /* END_REQUEST, complete */
    };
    cr_assert_eq(out.len, sizeof want);
    cr_assert_arr_eq(nw_buf_head(&out), want, sizeof want);
    nw_buf_free(&staged);
    nw_buf_free(&out);
    session_free(&s);
}

Test(session_fastcgi, split_invariant)
{
    rec(&b, FCGI_GET_VALUES, 0,
        (const uint8_t[]){13, 0, 'F', 'C', 'G', 'I', '_', 'M', 'A', 'X', '_', 'R', 'E', 'Q', 'S'},
        15);
    begin(&b, 1, FCGI_RESPONDER, 1);
    begin(&b, 2, FCGI_RESPONDER, 1);
    params(&b, 1);
    rec(&b, FCGI_STDIN, 1, "some body bytes", 15);
    rec(&b, FCGI_STDIN, 1, NULL, 0);
    assert_split_invariant(nw_buf_head(&b), b.len);
}

/* ---- detection ------------------------------------------------------------ */

Test(session, first_byte_decides)
{
    static const uint8_t junk[] = {0x47, 0x45, 0x54, 0x20}; /* "GET " */
    assert_error(junk, sizeof junk,
                 "first byte 0x47 is neither FastCGI (version 1) nor uwsgi (modifier1 0 or 30)");
    static const struct {
        nw_protocol setting;
        uint8_t first;
        const nw_proto *want;
    } cases[] = {
        {NW_PROTO_AUTO, 1, &session_fastcgi},
        {NW_PROTO_AUTO, 0, &session_uwsgi},
        {NW_PROTO_AUTO, 30, &session_uwsgi}, /* nginx's uwsgi_modifier1 30 */
        /* A fixed protocol takes any first byte (its codec judges it). */
        {NW_PROTO_UWSGI, 1, &session_uwsgi},
        {NW_PROTO_FASTCGI, 0x47, &session_fastcgi},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nw_session s;
        session_init(&s, 1, 1);
        cr_assert_eq(session_detect(&s, cases[i].setting, cases[i].first), 0);
        cr_assert_eq(s.proto, cases[i].want, "case %zu", i);
        session_free(&s);
    }
}

/* ---- uwsgi ---------------------------------------------------------------- */

/* header + vars A=1 (and CONTENT_LENGTH when cl is not NULL) */
static void uwsgi_request(nw_buf *to, const char *cl)
{
    nw_buf v = NW_BUF_INIT;
    ADD(&v, 1, 0, 'A', 1, 0, '1');
    if (cl) {
        ADD(&v, 14, 0);
        nw_buf_appends(&v, "CONTENT_LENGTH");
        uint8_t n[2] = {(uint8_t)strlen(cl), 0};
        add(&v, n, 2);
        nw_buf_appends(&v, cl);
    }
    uint8_t h[4] = {0, (uint8_t)v.len, (uint8_t)(v.len >> 8), 0};
    add(to, h, 4);
    add(to, nw_buf_head(&v), v.len);
    nw_buf_free(&v);
}

Test(session_uwsgi, request_without_body)
{
    uwsgi_request(&b, NULL);
    CHECK("REQUEST 0 keep=0 body_done=1:A=1;\n"
          "BODY_END\n");
}

Test(session_uwsgi, request_with_body)
{
    uwsgi_request(&b, "5");
    nw_buf_appends(&b, "abcde");
    CHECK("REQUEST 0 keep=0 body_done=0:A=1;CONTENT_LENGTH=5;\n"
          "BODY:abcde\n"
          "BODY_END\n");
    assert_split_invariant(nw_buf_head(&b), b.len);
}

Test(session_uwsgi, bytes_after_the_body_are_dropped)
{
    /* They used to be a protocol error that failed the request the handler
     * was reading; the connection closes after the response anyway. */
    uwsgi_request(&b, "5");
    nw_buf_appends(&b, "helloEXTRA");
    CHECK("REQUEST 0 keep=0 body_done=0:A=1;CONTENT_LENGTH=5;\n"
          "BODY:hello\n"
          "BODY_END\n"
          "LOG 1 close=0 bytes after the uwsgi request body ignored\n");
}

Test(session_uwsgi, bad_modifier_is_named)
{
    static const uint8_t in[] = {0, 0, 0, 0}; /* an empty vars block is fine ... */
    add(&b, in, sizeof in);
    CHECK("REQUEST 0 keep=0 body_done=1:\n"
          "BODY_END\n");
    nw_buf_reset(&b);
    static const uint8_t mod5[] = {5, 0, 0, 0};
    setting = NW_PROTO_UWSGI;
    add(&b, mod5, sizeof mod5);
    CHECK_ERROR("unsupported uwsgi modifier1 5 (narwhal serves 0, and 30: PATH_INFO without "
                "SCRIPT_NAME)");
    setting = NW_PROTO_AUTO;
}

/* A uwsgi request with modifier1 m1 and the vars "K=V" pairs, no body. */
static void uwsgi_m1(nw_buf *to, uint8_t m1, const char *const kv[])
{
    nw_buf v = NW_BUF_INIT;
    for (size_t i = 0; kv[i]; i += 2)
        cr_assert_eq(uwsgi_encode_var(&v, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1])), 0);
    cr_assert_eq(uwsgi_encode_header(to, m1, v.len, 0), 0);
    add(to, nw_buf_head(&v), v.len);
    nw_buf_free(&v);
}

/* nginx's `uwsgi_modifier1 30;` (uWSGI's UWSGI_MODIFIER_MANAGE_PATH_INFO):
 * PATH_INFO loses SCRIPT_NAME where SCRIPT_NAME is its prefix, wherever
 * the two come in the block; otherwise it is left as it came. */
Test(session_uwsgi, modifier1_30_strips_script_name_from_path_info)
{
    static const struct {
        const char *const kv[7];
        const char *want;
    } cases[] = {
        {{"SCRIPT_NAME", "/app", "PATH_INFO", "/app/x/y", NULL},
         "REQUEST 0 keep=0 body_done=1:SCRIPT_NAME=/app;PATH_INFO=/x/y;\n"},
        /* nginx's uwsgi_params sends PATH_INFO first, a SCRIPT_NAME added
         * after the include comes later */
        {{"PATH_INFO", "/app/x", "A", "1", "SCRIPT_NAME", "/app", NULL},
         "REQUEST 0 keep=0 body_done=1:PATH_INFO=/x;A=1;SCRIPT_NAME=/app;\n"},
        {{"SCRIPT_NAME", "/app", "PATH_INFO", "/app", NULL},
         "REQUEST 0 keep=0 body_done=1:SCRIPT_NAME=/app;PATH_INFO=;\n"},
        /* not a prefix: as it came */
        {{"SCRIPT_NAME", "/app", "PATH_INFO", "/other/x", NULL},
         "REQUEST 0 keep=0 body_done=1:SCRIPT_NAME=/app;PATH_INFO=/other/x;\n"},
        {{"SCRIPT_NAME", "/app/x/y/z", "PATH_INFO", "/app/x", NULL},
         "REQUEST 0 keep=0 body_done=1:SCRIPT_NAME=/app/x/y/z;PATH_INFO=/app/x;\n"},
        /* a SCRIPT_NAME repeated to override it: the last one counts, as in
         * nw_param */
        {{"SCRIPT_NAME", "/other", "PATH_INFO", "/app/x", "SCRIPT_NAME", "/app", NULL},
         "REQUEST 0 keep=0 body_done=1:SCRIPT_NAME=/other;PATH_INFO=/x;SCRIPT_NAME=/app;\n"},
        {{"SCRIPT_NAME", "", "PATH_INFO", "/x", NULL},
         "REQUEST 0 keep=0 body_done=1:SCRIPT_NAME=;PATH_INFO=/x;\n"},
        {{"PATH_INFO", "/app/x", NULL}, "REQUEST 0 keep=0 body_done=1:PATH_INFO=/app/x;\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nw_buf_reset(&b);
        uwsgi_m1(&b, 30, cases[i].kv);
        nw_buf want = NW_BUF_INIT;
        nw_buf_printf(&want, "%sBODY_END\n", cases[i].want);
        nw_buf_appendc(&want, 0);
        CHECK((const char *)nw_buf_head(&want));
        nw_buf_free(&want);
    }
    /* modifier1 0 leaves PATH_INFO alone */
    nw_buf_reset(&b);
    uwsgi_m1(&b, 0, (const char *const[]){"SCRIPT_NAME", "/app", "PATH_INFO", "/app/x", NULL});
    CHECK("REQUEST 0 keep=0 body_done=1:SCRIPT_NAME=/app;PATH_INFO=/app/x;\n"
          "BODY_END\n");
    /* and so does --protocol uwsgi: the same rules */
    nw_buf_reset(&b);
    setting = NW_PROTO_UWSGI;
    uwsgi_m1(&b, 30, (const char *const[]){"SCRIPT_NAME", "/app", "PATH_INFO", "/app/x", NULL});
    CHECK("REQUEST 0 keep=0 body_done=1:SCRIPT_NAME=/app;PATH_INFO=/x;\n"
          "BODY_END\n");
    setting = NW_PROTO_AUTO;
}

Test(session_uwsgi, response_framing)
{
    const nw_proto *p = &session_uwsgi;
    nw_session s;
    nw_buf staged = NW_BUF_INIT, out = NW_BUF_INIT;
    session_init(&s, 1, 1);
    cr_assert_str_eq(p->params_name, "uwsgi vars");
    p->head(&staged, 200, "OK", "X-A: b\r\n", 8);
    nw_buf_appendc(&staged, 0);
    cr_assert_str_eq((char *)nw_buf_head(&staged), "HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n");
    p->body(&s, &out, "raw", 3);
    p->body_end(&s, &out);
    p->end(&s, &out);
    cr_assert_eq(out.len, 3);
    cr_assert_arr_eq(nw_buf_head(&out), "raw", 3);
    cr_assert_null(p->log, "uwsgi carries no error stream");
    nw_buf_free(&staged);
    nw_buf_free(&out);
}

/* ---- the codecs name their events once ------------------------------------ */

Test(session, event_names_come_from_the_codecs)
{
    cr_assert_str_eq(fcgi_event_name(FCGI_EV_BEGIN), "BEGIN_REQUEST");
    cr_assert_str_eq(fcgi_event_name(FCGI_EV_STDIN_END), "STDIN end");
    cr_assert_str_eq(fcgi_event_name(FCGI_EV_ERROR), "malformed input");
    cr_assert_str_eq(fcgi_event_name((fcgi_ev_type)99), "?");
    cr_assert_str_eq(uwsgi_event_name(UWSGI_EV_VARS), "vars");
    cr_assert_str_eq(uwsgi_event_name(UWSGI_EV_BODY_END), "body end");
    cr_assert_str_eq(uwsgi_event_name((uwsgi_ev_type)99), "?");
}
