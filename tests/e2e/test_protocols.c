/*
 * test_protocols.c - "uwsgi protocol + --exec": narwhal behind nginx's
 * uwsgi_pass (every worker class, TCP and unix socket), one socket serving
 * fastcgi_pass and uwsgi_pass at once, --protocol forcing one protocol,
 * uwsgi_modifier1 30 (PATH_INFO without SCRIPT_NAME), and
 * --exec supervising an existing libfcgi program. Real nginx, real narwhal,
 * loopback, real HTTP. See tests/e2e/README.md.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(protocols, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------------------- */

/* GET with params and a header to echo.so, through nginx at port. */
static void check_echo_get(int port, const char *prefix, const char *log)
{
    char *uri = h_fmt("%s/echo/path?a=1&b=two", prefix);
    h_response r = h_http(port, "GET", uri, "X-Foo: bar\r\n", NULL, 0, 10000);
    assert_status(r, 200, log);
    cr_assert(strstr(r.body, "QUERY_STRING=a=1&b=two\n"), "GET %s body:\n%s", uri, r.body);
    cr_assert(strstr(r.body, "REQUEST_METHOD=GET\n"), "GET %s body:\n%s", uri, r.body);
    cr_assert(strstr(r.body, "HTTP_X_FOO=bar\n"), "GET %s body:\n%s", uri, r.body);
    cr_assert(strstr(r.body, h_fmt("REQUEST_URI=%s\n", uri)), "GET %s body:\n%s", uri, r.body);
}

/* An nginx passing /f/ to narwhal at port over FastCGI and /u/ over uwsgi,
 * with f_extra and u_extra (directives, may be "") in each location after
 * the include. */
static h_nginx nginx_fastcgi_and_uwsgi_with(int port, const char *f_extra, const char *u_extra)
{
    char *up = h_fmt("127.0.0.1:%d", port);
    return h_nginx_start_server(h_fmt("        location /f/ {\n"
                                      "            include fastcgi_params;\n"
                                      "%s"
                                      "            fastcgi_pass %s;\n"
                                      "        }\n"
                                      "        location /u/ {\n"
                                      "            include uwsgi_params;\n"
                                      "%s"
                                      "            uwsgi_pass %s;\n"
                                      "        }\n",
                                      f_extra, up, u_extra, up));
}

static h_nginx nginx_fastcgi_and_uwsgi(int port)
{
    return nginx_fastcgi_and_uwsgi_with(port, "", "");
}

/* POST n random bytes to echo.so; the echo must match byte for byte. */
static void check_echo_post(int port, const char *path, size_t n, const char *log)
{
    unsigned char *data = malloc(n);
    cr_assert(data);
    unsigned int seed = (unsigned int)getpid() * 2654435761u ^ (unsigned int)n;
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(rand_r(&seed) >> 7);
    h_response r =
        h_http(port, "POST", path, "Content-Type: application/octet-stream\r\n", data, n, 30000);
    assert_status(r, 200, log);
    char *eb = h_header(&r, "X-Echo-Bytes");
    char *want = h_fmt("%zu", n);
    cr_assert(eb && strcmp(eb, want) == 0, "POST %s: X-Echo-Bytes: %s, sent %zu", path,
              eb ? eb : "(none)", n);
    cr_assert_eq(r.body_len, n, "POST %s: echoed %zu bytes, sent %zu", path, r.body_len, n);
    size_t first = 0;
    while (first < n && (unsigned char)r.body[first] == data[first])
        first++;
    cr_assert_eq(first, n, "POST %s: echoed body differs from byte %zu on", path, first);
    free(data);
}

/* ---- uwsgi through nginx's uwsgi_pass, every class ----------------------------------------- */

ParameterizedTestParameters(protocols, uwsgi_echo)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, protocols, uwsgi_echo, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", H_CLASS_ARGS(wc), h_example("echo.so"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_UWSGI, h_fmt("127.0.0.1:%d", nw.port));
    check_echo_get(ng.port, "", nw.log);
    check_echo_post(ng.port, "/upload", 1 << 20, nw.log);
    check_echo_post(ng.port, "/small", 5, nw.log);
}

ParameterizedTestParameters(protocols, empty_post_body)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

/* A POST with Content-Length: 0 reaches the app as CONTENT_LENGTH=0 and its
 * nw_read must see the end of the body at once, over either protocol (the
 * FastCGI location first, as the control). */
ParameterizedTest(h_wclass *wc, protocols, empty_post_body, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", H_CLASS_ARGS(wc), h_example("echo.so"), NULL);
    h_nginx ng = nginx_fastcgi_and_uwsgi(nw.port);
    const char *paths[] = {"/f/empty", "/u/empty"};
    for (int i = 0; i < 2; i++) {
        h_response r = h_http(ng.port, "POST", paths[i],
                              "Content-Type: application/octet-stream\r\n", "", 0, 5000);
        cr_assert_eq(r.status, 200,
                     "-k %s: POST %s with Content-Length: 0 got %d (%s) after %ld ms; "
                     "narwhal log:\n%s",
                     wc->name, paths[i], r.status, r.error ? r.error : "no error", r.elapsed_ms,
                     h_tail(nw.log));
        char *eb = h_header(&r, "X-Echo-Bytes");
        cr_assert(eb && strcmp(eb, "0") == 0, "POST %s: X-Echo-Bytes: %s", paths[i],
                  eb ? eb : "(none)");
        cr_assert_eq(r.body_len, 0, "POST %s: %zu bytes echoed", paths[i], r.body_len);
    }
}

ParameterizedTestParameters(protocols, uwsgi_status_and_headers)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, protocols, uwsgi_status_and_headers, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", H_CLASS_ARGS(wc), h_testapp("status"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_UWSGI, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = h_get(ng.port, "/s?code=201");
    assert_status(r, 201, nw.log);
    assert_body(r, "status 201\n");
    char *xc = h_header(&r, "X-Custom"), *xa = h_header(&r, "X-A");
    cr_assert(xc && strcmp(xc, "hello") == 0, "-k %s: X-Custom: %s\n%s", wc->name,
              xc ? xc : "(none)", r.head);
    cr_assert(xa && strcmp(xa, "1") == 0, "-k %s: X-A: %s\n%s", wc->name, xa ? xa : "(none)",
              r.head);
    r = h_get(ng.port, "/s?code=404");
    assert_status(r, 404, nw.log);
    assert_body(r, "status 404\n");
}

/* ---- one socket, both protocols -----------------------------------------------------------------
 */

Test(protocols, fastcgi_and_uwsgi_on_one_socket, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "2", h_example("echo.so"), NULL);
    h_nginx ng =
        nginx_fastcgi_and_uwsgi_with(nw.port, "            fastcgi_param NW_VIA fastcgi;\n",
                                     "            uwsgi_param NW_VIA uwsgi;\n");

    /* each location reaches the app over its own protocol (the extra param
     * shows which one carried the request) */
    check_echo_get(ng.port, "/f", nw.log);
    check_echo_get(ng.port, "/u", nw.log);
    h_response r = h_get(ng.port, "/f/x?k=v");
    assert_status(r, 200, nw.log);
    cr_assert(strstr(r.body, "NW_VIA=fastcgi\n"), "/f/ body:\n%s", r.body);
    r = h_get(ng.port, "/u/x?k=v");
    assert_status(r, 200, nw.log);
    cr_assert(strstr(r.body, "NW_VIA=uwsgi\n"), "/u/ body:\n%s", r.body);
    check_echo_post(ng.port, "/f/post", 300000, nw.log);
    check_echo_post(ng.port, "/u/post", 300000, nw.log);

    /* and at the same time, interleaved */
    enum { N = 12 };
    h_bg_request b[N];
    for (int i = 0; i < N; i++) {
        b[i] = (h_bg_request){.port = ng.port, .path = h_fmt("/%c/i?n=%d", i % 2 ? 'u' : 'f', i)};
        h_bg_start(&b[i]);
    }
    for (int i = 0; i < N; i++)
        h_bg_join(&b[i]);
    for (int i = 0; i < N; i++) {
        assert_status(b[i].r, 200, nw.log);
        cr_assert(strstr(b[i].r.body, h_fmt("QUERY_STRING=n=%d\n", i)) &&
                      strstr(b[i].r.body, i % 2 ? "NW_VIA=uwsgi\n" : "NW_VIA=fastcgi\n"),
                  "%s body:\n%s", b[i].path, b[i].r.body);
    }
}

/* ---- a param sent twice: the last one wins --------------------------------------------------- */

Test(protocols, repeated_param_last_value_wins, .timeout = 60)
{
    /* configs written for php-fpm and uWSGI override a param by repeating it
     * after the include; nginx then sends both values, in order */
    h_narwhal nw = h_narwhal_serve("-w", "1", h_testapp("param"), NULL);
    h_nginx ng = nginx_fastcgi_and_uwsgi_with(
        nw.port, "            fastcgi_param DOCUMENT_ROOT /override;\n",
        "            uwsgi_param DOCUMENT_ROOT /override;\n");
    const char *paths[] = {"/f/x?DOCUMENT_ROOT", "/u/x?DOCUMENT_ROOT"};
    for (int i = 0; i < 2; i++) {
        h_response r = h_get(ng.port, paths[i]);
        assert_status(r, 200, nw.log);
        /* nw_param: the last value; nw_param_each: both, in wire order (the
         * include's first) */
        const char *each = strstr(r.body, "\neach ");
        cr_assert(strncmp(r.body, "param /override\n", 16) == 0 && each &&
                      strncmp(each, "\neach /override\n", 16) != 0 &&
                      strstr(each + 1, "\neach /override\n"),
                  "%s body:\n%s", paths[i], r.body);
    }
}

/* ---- how connections end (close_mode) ----------------------------------------------------------
 */

/* The default close_mode (reset) ends each same-host connection with FIN
 * then RST: nginx, over either protocol, reads every response whole and logs
 * no error. (Whether the reset came in time to spare the TIME_WAIT entry is
 * a race nginx wins when it is idle; test_hostile checks the reset with a
 * client that cannot win it.) */
Test(protocols, reset_close_through_nginx_is_clean, .timeout = 90)
{
    h_narwhal nw = h_narwhal_serve("-w", "2", h_example("echo.so"), NULL);
    h_nginx ng = nginx_fastcgi_and_uwsgi(nw.port);
    for (int i = 0; i < 100; i++) {
        char *path = h_fmt("/%c/seq?n=%d", i % 2 ? 'u' : 'f', i);
        h_response r = h_get(ng.port, path);
        assert_status(r, 200, ng.error_log);
        cr_assert(strstr(r.body, h_fmt("QUERY_STRING=n=%d\n", i)), "%s body:\n%s", path, r.body);
    }
    enum { N = 16 };
    h_bg_request b[N];
    for (int i = 0; i < N; i++) {
        b[i] = (h_bg_request){.port = ng.port, .path = h_fmt("/%c/bg?n=%d", i % 2 ? 'u' : 'f', i)};
        h_bg_start(&b[i]);
    }
    for (int i = 0; i < N; i++) {
        h_bg_join(&b[i]);
        assert_status(b[i].r, 200, ng.error_log);
        cr_assert(strstr(b[i].r.body, h_fmt("QUERY_STRING=n=%d\n", i)), "%s body:\n%s", b[i].path,
                  b[i].r.body);
    }
    /* responses larger than the socket buffers end with a plain close */
    check_echo_post(ng.port, "/f/big", 3 << 20, nw.log);
    check_echo_post(ng.port, "/u/big", 3 << 20, nw.log);
    check_echo_post(ng.port, "/f/mid", 100000, nw.log);
    check_echo_post(ng.port, "/u/mid", 100000, nw.log);
    cr_assert_eq(h_count_text(ng.error_log, "[error]"), 0, "nginx logged errors:\n%s",
                 h_tail(ng.error_log));
    cr_assert_eq(h_count_text(ng.error_log, "[crit]"), 0, "nginx:\n%s", h_tail(ng.error_log));
}

/* A handler that never reads a large body: once it returns, the rest of the
 * body is read and dropped before the response goes out, so nginx, still
 * sending it, neither fails (502) nor loses the answer. Over both protocols,
 * in every class. */
ParameterizedTestParameters(protocols, unread_body_is_drained)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, protocols, unread_body_is_drained, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", H_CLASS_ARGS(wc), h_example("hello.so"), NULL);
    h_nginx ng = nginx_fastcgi_and_uwsgi(nw.port);
    size_t n = 6u << 20;
    char *data = malloc(n);
    cr_assert(data);
    memset(data, 'b', n);
    const char *paths[] = {"/f/upload", "/u/upload"};
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 2; i++) {
            h_response r = h_http(ng.port, "POST", paths[i], NULL, data, n, 30000);
            assert_status(r, 200, ng.error_log);
            assert_body(r, "Hello, World!\n");
        }
    }
    free(data);
    cr_assert_eq(h_count_text(ng.error_log, "[error]"), 0, "nginx logged errors:\n%s",
                 h_tail(ng.error_log));
}

/* Once a response has begun, nginx stops sending the body and waits for
 * the rest of the response: a handler that streamed before returning must
 * not wait for a body that will not come (classapp:stream writes, waits
 * 1.5 s, writes). */
Test(protocols, unread_body_after_streaming_is_not_waited_for, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", h_classapp("stream"), NULL);
    h_nginx ng = nginx_fastcgi_and_uwsgi(nw.port);
    size_t n = 6u << 20;
    char *data = malloc(n);
    cr_assert(data);
    memset(data, 's', n);
    const char *paths[] = {"/f/upload", "/u/upload"};
    for (int i = 0; i < 2; i++) {
        h_response r = h_http(ng.port, "POST", paths[i], NULL, data, n, 30000);
        assert_status(r, 200, nw.log);
        assert_body(r, "first\nsecond\n");
        cr_assert(r.elapsed_ms < 6000, "%s took %ld ms (the handler takes 1.5 s)", paths[i],
                  r.elapsed_ms);
    }
    free(data);
    cr_assert_eq(h_count_text(ng.error_log, "[error]"), 0, "nginx logged errors:\n%s",
                 h_tail(ng.error_log));
}

/* ---- uwsgi on a unix socket
 * ----------------------------------------------------------------------- */

Test(protocols, uwsgi_unix_socket, .timeout = 60)
{
    char *sock = h_path("nw.sock");
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("unix:%s", sock), h_example("echo.so"), NULL);
    if (!h_wait_unix(sock, 10000))
        cr_assert_fail("narwhal does not accept on %s:\n%s", sock, h_tail(nw.log));
    h_nginx ng = h_nginx_start(H_SNIPPET_UWSGI_UNIX, h_fmt("unix:%s", sock));
    check_echo_get(ng.port, "", nw.log);
    check_echo_post(ng.port, "/upload", 200000, nw.log);
    struct stat st;
    cr_assert(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode), "%s is not a socket", sock);
}

/* ---- --protocol
 * ----------------------------------------------------------------------------------- */

Test(protocols, protocol_fastcgi_refuses_uwsgi, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", "--protocol", "fastcgi", h_example("hello.so"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_UWSGI, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = h_get(ng.port, "/");
    assert_status(r, 502, nw.log);
    cr_assert(h_wait_for_text(nw.log, "malformed fastcgi input", 5000) ||
                  h_wait_for_text(nw.log, "bad fastcgi version", 10),
              "--protocol fastcgi: nothing about the uwsgi connection in the log:\n%s",
              h_tail(nw.log));
    /* FastCGI still works on that socket */
    h_nginx fng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    r = h_get(fng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");
    cr_assert(h_alive(nw.pid));
}

Test(protocols, protocol_uwsgi_serves_uwsgi_only, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", "--protocol", "uwsgi", h_example("echo.so"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_UWSGI, h_fmt("127.0.0.1:%d", nw.port));
    check_echo_get(ng.port, "", nw.log);
    check_echo_post(ng.port, "/upload", 100000, nw.log);
    /* a FastCGI connection is not served by a uwsgi-only socket */
    h_nginx fng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = h_get(fng.port, "/");
    cr_assert(r.status == 502 || r.status == 504 || r.status == 400,
              "--protocol uwsgi answered a FastCGI request with %d (%s):\n%s", r.status,
              r.error ? r.error : "", r.body ? r.body : "");
    cr_assert_neq(r.status, 200);
    /* and uwsgi still works after it */
    check_echo_get(ng.port, "", nw.log);
}

/* ---- uwsgi_modifier1 30 (nginx configs written for uWSGI)
 * ------------------------------------------ */

/* An app mounted under /app the way uWSGI's docs do it (`uwsgi_param
 * SCRIPT_NAME /app; uwsgi_modifier1 30;`) is served, with PATH_INFO
 * arriving without /app (it was a 502 for every request), under --protocol
 * auto (the first byte, 30, says uwsgi) and --protocol uwsgi alike. A
 * modifier1 narwhal does not serve is refused with a log line naming it. */
Test(protocols, uwsgi_modifier1_30, .timeout = 60)
{
    static const char *const protocols[] = {"auto", "uwsgi"};
    for (size_t i = 0; i < 2; i++) {
        const char *proto = protocols[i];
        h_narwhal nw = h_narwhal_serve("-w", "1", "--protocol", proto, h_example("echo.so"), NULL);
        char *up = h_fmt("127.0.0.1:%d", nw.port);
        h_nginx ng = h_nginx_start_server(h_fmt("        location /app/ {\n"
                                                "            include uwsgi_params;\n"
                                                "            uwsgi_param SCRIPT_NAME /app;\n"
                                                "            uwsgi_modifier1 30;\n"
                                                "            uwsgi_pass %s;\n"
                                                "        }\n"
                                                "        location /m5/ {\n"
                                                "            include uwsgi_params;\n"
                                                "            uwsgi_modifier1 5;\n"
                                                "            uwsgi_pass %s;\n"
                                                "        }\n",
                                                up, up));
        h_response r = h_get(ng.port, "/app/echo/path?a=1");
        cr_assert_eq(r.status, 200, "--protocol %s, uwsgi_modifier1 30: %d (%s)\n%s", proto,
                     r.status, r.error ? r.error : "", h_tail(nw.log));
        cr_assert(strstr(r.body, "\nPATH_INFO=/echo/path\n"), "--protocol %s body:\n%s", proto,
                  r.body);
        cr_assert(strstr(r.body, "\nSCRIPT_NAME=/app\n"), "--protocol %s body:\n%s", proto, r.body);
        cr_assert(strstr(r.body, "\nREQUEST_URI=/app/echo/path?a=1\n"), "--protocol %s body:\n%s",
                  proto, r.body);
        check_echo_post(ng.port, "/app/upload", 100000, nw.log);

        r = h_get(ng.port, "/m5/x");
        assert_status(r, 502, nw.log);
        const char *named =
            strcmp(proto, "auto") == 0 ? "first byte 0x05" : "unsupported uwsgi modifier1 5 ";
        cr_assert(h_wait_for_text(nw.log, named, 5000),
                  "--protocol %s: no \"%s\" in the log after uwsgi_modifier1 5:\n%s", proto, named,
                  h_tail(nw.log));
        cr_assert(h_alive(nw.pid));
        h_stop(ng.pid, SIGQUIT, 10000);
        h_stop(nw.pid, SIGTERM, 10000);
    }
}

/* ---- --exec: an existing libfcgi program ------------------------------------------------------------ */

static const char *fcgi_hello(void)
{
    const char *p = getenv("NARWHAL_FCGI_HELLO");
    if (!p || !*p || access(p, X_OK) != 0)
        cr_skip_test("examples/fcgi_hello was not built (libfcgi missing)");
    return p;
}

/* The pid in "Hello from libfcgi, pid N, uri ..." (0 if none). */
static long body_pid(const h_response *r)
{
    const char *p = r->body ? strstr(r->body, "pid ") : NULL;
    return p ? strtol(p + 4, NULL, 10) : 0;
}

static bool in_list(long pid, const pid_t *list, int n)
{
    for (int i = 0; i < n; i++)
        if (list[i] == pid)
            return true;
    return false;
}

Test(protocols, exec_supervises_fcgi_program, .timeout = 90)
{
    const char *prog = fcgi_hello();
    h_narwhal nw = h_narwhal_serve("-w", "2", "--exec", prog, NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));

    pid_t kids[8];
    int n = h_wait_children(nw.pid, kids, 8, 2, 10000);
    cr_assert_eq(n, 2, "-w 2 --exec gave %d children:\n%s", n, h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "as pid", 5000), "no \"started ... as pid\":\n%s",
              h_tail(nw.log));

    /* Both children serve. Who accepts is up to the kernel (libfcgi children
     * block in accept on one socket, the one that just answered can win the
     * next connection again), so keep asking, at least 20 requests and for
     * at most 10 s, until both have answered. */
    long seen[2] = {0, 0};
    int asked = 0;
    for (long end = h_now_ms() + 10000; asked < 20 || (!seen[1] && h_now_ms() < end); asked++) {
        int i = asked;
        h_response r = h_get(ng.port, h_fmt("/hello/%d", i));
        assert_status(r, 200, nw.log);
        cr_assert(r.body && strncmp(r.body, "Hello from libfcgi, pid ", 24) == 0 &&
                      strstr(r.body, h_fmt(", uri /hello/%d\n", i)),
                  "body: %s", r.body ? r.body : "");
        long pid = body_pid(&r);
        cr_assert(in_list(pid, kids, n), "pid %ld in the answer is not a child of the master", pid);
        if (!seen[0] || seen[0] == pid)
            seen[0] = pid;
        else
            seen[1] = pid;
    }
    cr_assert(seen[0] && seen[1], "%d requests in 10 s were all answered by pid %ld (2 children)",
              asked, seen[0]);

    /* a child that dies is started again */
    int started = h_count_text(nw.log, "as pid");
    pid_t victim = kids[0];
    cr_assert(kill(victim, SIGKILL) == 0);
    bool replaced = false;
    for (long end = h_now_ms() + 10000; !replaced && h_now_ms() < end; h_sleep_ms(50)) {
        n = h_children(nw.pid, kids, 8);
        replaced = n == 2 && !in_list(victim, kids, n) && h_count_text(nw.log, "as pid") > started;
    }
    cr_assert(replaced, "the killed child %ld was not replaced (%d children):\n%s", (long)victim, n,
              h_tail(nw.log));
    /* both ready (their USR1 handler in place: a TERM of the master before
     * that stops a child by the signal's default action, not by its handler) */
    for (int i = 0; i < n; i++)
        cr_assert(h_wait_for_text(nw.log, h_fmt("fcgi_hello %ld ready", (long)kids[i]), 10000),
                  "child %ld never said it was ready:\n%s", (long)kids[i], h_tail(nw.log));
    const char *text = h_read_file(nw.log, NULL);
    cr_assert(strstr(text, h_fmt("started %s as pid %ld", prog, (long)kids[0])) ||
                  strstr(text, h_fmt("started %s as pid %ld", prog, (long)kids[1])),
              "no \"started %s as pid\" line for the new child:\n%s", prog, h_tail(nw.log));
    for (int i = 0; i < 10; i++) {
        h_response r = h_get(ng.port, "/after");
        assert_status(r, 200, nw.log);
        long pid = body_pid(&r);
        cr_assert(pid != victim && in_list(pid, kids, n), "answered by pid %ld", pid);
    }

    /* graceful stop: the children get USR1, finish and exit by themselves;
     * the new child first has to be up (its handler installed: a slow start,
     * as under the sanitizers, could otherwise still be in libfcgi's init) */
    for (int i = 0; i < n; i++)
        cr_assert(h_wait_for_text(nw.log, h_fmt("fcgi_hello %ld ready", (long)kids[i]), 10000),
                  "child %ld never said it was ready:\n%s", (long)kids[i], h_tail(nw.log));
    int st = h_stop(nw.pid, SIGTERM, 10000);
    cr_assert(h_exited_with(st, 0), "the --exec master %s after TERM:\n%s", h_wstatus_str(st),
              h_tail(nw.log));
    int exiting = 0;
    for (int i = 0; i < n; i++)
        exiting += h_count_text(nw.log, h_fmt("fcgi_hello %ld exiting", (long)kids[i])) > 0;
    cr_assert_eq(exiting, 2, "%d of 2 children said \"fcgi_hello PID exiting\" (USR1):\n%s",
                 exiting, h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "[stderr ", 10), "the child's stderr is not tagged:\n%s",
              h_tail(nw.log));
    for (int i = 0; i < n; i++)
        cr_assert_not(h_alive(kids[i]), "child %ld outlived the master", (long)kids[i]);
    cr_assert_not(h_tcp_accepts(nw.port), "port %d still accepts", nw.port);
}

/* Settings that shape narwhal's own workers cannot apply to a program it
 * only supervises: refused before anything is bound. */
Test(protocols, exec_refuses_settings_that_cannot_apply, .timeout = 60)
{
    const char *refused[][3] = {
        {"-k", "threads", NULL},
        {"--threads", "2", NULL},
        {"--access-logfile", NULL, NULL}, /* value filled in below */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        int port = h_free_port();
        const char *val = refused[i][1] ? refused[i][1] : h_path("access-%zu.log", i);
        h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", port), "--exec", "/bin/true",
                                       refused[i][0], val, NULL);
        int ws;
        cr_assert(h_wait_exit(nw.pid, 10000, &ws), "--exec with %s %s keeps running:\n%s",
                  refused[i][0], val, h_tail(nw.log));
        cr_assert(h_exited_with(ws, 1), "--exec with %s %s: narwhal %s:\n%s", refused[i][0], val,
                  h_wstatus_str(ws), h_tail(nw.log));
        cr_assert(h_wait_for_text(nw.log, "narwhal: exec:", 10),
                  "--exec with %s %s: no \"narwhal: exec:\" message:\n%s", refused[i][0], val,
                  h_tail(nw.log));
        cr_assert_not(h_tcp_accepts(port), "something listens on %d", port);
    }
    /* the order on the command line does not matter */
    const char *prog = getenv("NARWHAL_FCGI_HELLO");
    if (!prog || access(prog, X_OK) != 0)
        prog = "/bin/true";
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", h_free_port()), "--exec", prog, "-k",
                                   "threads", NULL);
    int ws;
    cr_assert(h_wait_exit(nw.pid, 10000, &ws), "--exec PROG -k threads keeps running:\n%s",
              h_tail(nw.log));
    cr_assert(h_exited_with(ws, 1), "--exec PROG -k threads: %s:\n%s", h_wstatus_str(ws),
              h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "narwhal: exec:", 10), "no \"narwhal: exec:\":\n%s",
              h_tail(nw.log));
}

Test(protocols, exec_nonexistent_program, .timeout = 60)
{
    int port = h_free_port();
    h_narwhal nw =
        h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", port), "--exec", "/nonexistent", NULL);
    int ws;
    cr_assert(h_wait_exit(nw.pid, 10000, &ws), "--exec /nonexistent keeps running:\n%s",
              h_tail(nw.log));
    cr_assert(h_exited_with(ws, 1), "--exec /nonexistent: narwhal %s:\n%s", h_wstatus_str(ws),
              h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "narwhal: exec:", 10) &&
                  h_wait_for_text(nw.log, "/nonexistent", 10),
              "the message does not name the program:\n%s", h_tail(nw.log));
    cr_assert_not(h_tcp_accepts(port), "something listens on %d", port);
}
