/* Unit tests for src/worker/request.c: params from a session's REQUEST
 * event, and gunicorn's request limits, checked before the app sees a
 * request. */
#include <criterion/criterion.h>
#include <string.h>

#include "buf.h"
#include "proto_fastcgi.h"
#include "request.h"
#include "settings.h"
#include "stream.h"

static nw_stream st;
static nw_settings s;
static nw_buf params;

static void setup(void)
{
    memset(&s, 0, sizeof s);
    /* gunicorn's defaults */
    s.limit_request_line = 4094;
    s.limit_request_fields = 100;
    s.limit_request_field_size = 8190;
    stream_init(&st, -1, 1, 0, &s);
    cr_assert_eq(session_detect(&st.sess, NW_PROTO_FASTCGI, 1), 0);
    params = (nw_buf)NW_BUF_INIT;
}

static void teardown(void)
{
    stream_free(&st);
    nw_buf_free(&params);
}

TestSuite(request, .init = setup, .fini = teardown);

static void pair(const char *name, const char *value)
{
    fcgi_encode_pair(&params, name, strlen(name), value, strlen(value));
}

static nw_request *make(void)
{
    sess_event ev = {.type = SESS_EV_REQUEST,
                     .id = 3,
                     .keep_conn = 1,
                     .data = nw_buf_head(&params),
                     .len = params.len};
    const char *err = NULL;
    nw_request *r = request_new(&st, &s, NULL, &ev, &err);
    cr_assert_not_null(r, "request_new: %s", err ? err : "?");
    return r;
}

static void request_line(const char *uri)
{
    pair("REQUEST_METHOD", "GET");
    pair("REQUEST_URI", uri);
    pair("SERVER_PROTOCOL", "HTTP/1.1");
}

/* The params so far make a request that the limits answer with status
 * (0 = let through) and the reason why. */
static void expect(int status, const char *why)
{
    nw_request *r = make();
    const char *got = NULL;
    cr_assert_eq(request_check_limits(r, &s, &got), status, "want %d (%s)", status,
                 why ? why : "through");
    if (why)
        cr_assert_str_eq(got, why);
    else
        cr_assert_null(got);
    request_free(r);
}

Test(request, uwsgi_vars_last_value_wins)
{
    stream_free(&st);
    stream_init(&st, -1, 1, 0, &s);
    cr_assert_eq(session_detect(&st.sess, NW_PROTO_UWSGI, 0), 0);
    static const uint8_t vars[] = {1, 0, 'D', 1, 0, 'a', 1, 0, 'D', 1, 0, 'b'};
    sess_event ev = {.type = SESS_EV_REQUEST, .data = vars, .len = sizeof vars};
    const char *err = NULL;
    nw_request *r = request_new(&st, &s, NULL, &ev, &err);
    cr_assert_not_null(r);
    cr_assert_eq(r->np, 2);
    cr_assert_str_eq(request_param(r, "D"), "b");
    cr_assert_str_eq(r->pv[1], "a", "every pair is kept in wire order");
    request_free(r);
}

Test(request, params_are_decoded_in_order)
{
    pair("A", "1");
    pair("EMPTY", "");
    pair("A", "2");
    nw_request *r = make();
    cr_assert_eq(r->id, 3);
    cr_assert_eq(r->keep_conn, 1);
    cr_assert_eq(r->np, 3);
    cr_assert_str_eq(request_param(r, "A"), "2", "the last value wins");
    cr_assert_str_eq(request_param(r, "EMPTY"), "");
    cr_assert_null(request_param(r, "B"));
    cr_assert_str_eq(r->pv[4], "A");
    cr_assert_str_eq(r->pv[5], "2");
    request_free(r);
}

Test(request, malformed_params_are_refused)
{
    static const uint8_t bad[] = {5, 1, 'A'}; /* a name longer than the stream */
    sess_event ev = {.type = SESS_EV_REQUEST, .id = 1, .data = bad, .len = sizeof bad};
    const char *err = NULL;
    cr_assert_null(request_new(&st, &s, NULL, &ev, &err));
    cr_assert_not_null(err);
}

Test(request, within_the_limits)
{
    request_line("/");
    pair("HTTP_HOST", "example.com");
    expect(0, NULL);
}

Test(request, request_line_limit)
{
    /* "GET " + uri + " HTTP/1.1" = 3 + 1 + len + 1 + 8 */
    char uri[4096];
    memset(uri, 'a', sizeof uri);
    uri[0] = '/';
    uri[4094 - 13] = 0; /* exactly 4094: through */
    request_line(uri);
    expect(0, NULL);
    nw_buf_reset(&params);
    uri[4094 - 13] = 'a';
    uri[4094 - 12] = 0; /* one more */
    request_line(uri);
    expect(414, "request line longer than limit_request_line");
    s.limit_request_line = 0; /* unlimited */
    expect(0, NULL);
}

Test(request, field_count_limit)
{
    s.limit_request_fields = 3;
    request_line("/");
    pair("HTTP_A", "1");
    pair("HTTP_B", "1");
    pair("HTTP_C", "1");
    pair("CONTENT_TYPE", "x"); /* not a header field of the count */
    expect(0, NULL);
    pair("HTTP_D", "1");
    expect(431, "more headers than limit_request_fields");
    s.limit_request_fields = 0;
    expect(0, NULL);
}

Test(request, field_size_limit)
{
    /* name (without HTTP_) + value */
    s.limit_request_field_size = 10;
    request_line("/");
    pair("HTTP_ABCDE", "12345");
    expect(0, NULL); /* exactly the limit */
    pair("HTTP_XY", "123456789");
    expect(431, "a header longer than limit_request_field_size");
}
