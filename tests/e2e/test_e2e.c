/*
 * test_e2e.c - narwhal end to end: a real nginx (with the snippets from
 * nginx/ as shipped) in front of a real narwhal, on loopback, real HTTP.
 * See tests/e2e/README.md.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(e2e, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* ---- the harness itself -------------------------------------------------------- */

Test(e2e, harness_nginx_alone, .timeout = 30)
{
    /* nothing listens on the upstream port: nginx must still serve its own
     * location, and answer 502 for the one it cannot pass on */
    int dead = h_free_port();
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", dead));
    h_response r = h_get(ng.port, "/__harness");
    cr_assert_eq(r.status, 200, "nginx alone: %d (%s)", r.status, r.error ? r.error : "");
    assert_body(r, "nginx ok\n");
    r = h_get(ng.port, "/anything");
    assert_status(r, 502, ng.error_log);
    cr_assert(h_exited_with(h_stop(ng.pid, SIGQUIT, 10000), 0), "nginx did not stop cleanly");
    cr_assert_not(h_tcp_accepts(ng.port), "nginx still listens after it stopped");
}

/* ---- requests and responses ------------------------------------------------------ */

Test(e2e, hello, .timeout = 60)
{
    serve_tcp(nw, ng, h_example("hello.so"));
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");
    char *ct = h_header(&r, "Content-Type");
    cr_assert(ct && strncmp(ct, "text/plain", 10) == 0, "Content-Type: %s", ct ? ct : "(none)");
}

Test(e2e, echo_params, .timeout = 60)
{
    serve_tcp(nw, ng, h_example("echo.so"));
    h_response r = h_http(ng.port, "GET", "/echo/path?a=1&b=two", "X-Foo: bar\r\n", NULL, 0, 10000);
    assert_status(r, 200, nw.log);
    cr_assert(strstr(r.body, "QUERY_STRING=a=1&b=two\n"), "body:\n%s", r.body);
    cr_assert(strstr(r.body, "REQUEST_METHOD=GET\n"), "body:\n%s", r.body);
    cr_assert(strstr(r.body, "HTTP_X_FOO=bar\n"), "body:\n%s", r.body);
    cr_assert(strstr(r.body, "REQUEST_URI=/echo/path?a=1&b=two\n"), "body:\n%s", r.body);
}

Test(e2e, echo_post_1mib, .timeout = 60)
{
    serve_tcp(nw, ng, h_example("echo.so"));
    size_t n = 1 << 20;
    unsigned char *data = malloc(n);
    cr_assert(data);
    unsigned int seed = (unsigned int)getpid() * 2654435761u;
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(rand_r(&seed) >> 7);
    h_response r = h_http(ng.port, "POST", "/upload", "Content-Type: application/octet-stream\r\n",
                          data, n, 30000);
    assert_status(r, 200, nw.log);
    char *eb = h_header(&r, "X-Echo-Bytes");
    cr_assert(eb && strcmp(eb, "1048576") == 0, "X-Echo-Bytes: %s", eb ? eb : "(none)");
    cr_assert_eq(r.body_len, n, "echoed %zu bytes, sent %zu", r.body_len, n);
    size_t first = 0;
    while (first < n && (unsigned char)r.body[first] == data[first])
        first++;
    cr_assert_eq(first, n, "echoed body differs from byte %zu on", first);
}

Test(e2e, custom_status_and_headers, .timeout = 60)
{
    serve_tcp(nw, ng, h_testapp("status"));
    h_response r = h_get(ng.port, "/s?code=201");
    assert_status(r, 201, nw.log);
    assert_body(r, "status 201\n");
    char *xc = h_header(&r, "X-Custom"), *xa = h_header(&r, "X-A");
    cr_assert(xc && strcmp(xc, "hello") == 0, "X-Custom: %s\n%s", xc ? xc : "(none)", r.head);
    cr_assert(xa && strcmp(xa, "1") == 0, "X-A: %s\n%s", xa ? xa : "(none)", r.head);

    r = h_get(ng.port, "/s?code=404");
    assert_status(r, 404, nw.log);
    assert_body(r, "status 404\n");
    xc = h_header(&r, "X-Custom");
    cr_assert(xc && strcmp(xc, "hello") == 0, "X-Custom on the 404: %s", xc ? xc : "(none)");
}

Test(e2e, handler_error_is_500, .timeout = 60)
{
    serve_tcp(nw, ng, h_testapp("fail"));
    h_response r = h_get(ng.port, "/f");
    assert_status(r, 500, nw.log);
    /* the worker survives a failing handler: the next one is answered too */
    r = h_get(ng.port, "/f");
    assert_status(r, 500, nw.log);
}

Test(e2e, handler_error_after_body_keeps_200, .timeout = 60)
{
    serve_tcp(nw, ng, h_testapp("fail_late"));
    h_response r = h_get(ng.port, "/f");
    assert_status(r, 200, nw.log);
    assert_body(r, "partial\n");
}

Test(e2e, late_status_and_header_fail, .timeout = 60)
{
    serve_tcp(nw, ng, h_testapp("late_status"));
    h_response r = h_get(ng.port, "/late");
    assert_status(r, 200, nw.log);
    assert_body(r, "late=-1,-1\n");
    cr_assert_null(h_header(&r, "X-Late"), "a header added after the body went out:\n%s", r.head);
}

/* ---- workers that crash or hang ---------------------------------------------------- */

Test(e2e, worker_crash_is_502_then_served, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "1", h_testapp("crash"));
    h_response r = h_get(ng.port, "/c?x");
    assert_status(r, 200, nw.log);
    char *pid1 = h_header(&r, "X-Pid");
    cr_assert(pid1);

    r = h_get(ng.port, "/c?crash=1");
    assert_status(r, 502, nw.log);
    r = h_get(ng.port, "/c?x");
    assert_status(r, 200, nw.log);
    assert_body(r, "ok\n");
    char *pid2 = h_header(&r, "X-Pid");
    cr_assert(pid2 && strcmp(pid1, pid2) != 0, "the crashed worker %s still serves (%s)", pid1,
              pid2 ? pid2 : "?");

    const char *segv[] = {pid1, "SIGSEGV", NULL}, *sig11[] = {pid1, "signal 11", NULL};
    char *line = NULL;
    for (long end = h_now_ms() + 3000; !line && h_now_ms() < end; h_sleep_ms(50))
        line = h_find_line(nw.log, segv) ? h_find_line(nw.log, segv) : h_find_line(nw.log, sig11);
    cr_assert(line, "no error log line names worker %s and SIGSEGV / signal 11:\n%s", pid1,
              h_tail(nw.log));
    cr_assert(strstr(line, "/c?crash=1"), "the crash line does not name the request: %s", line);
    cr_assert(h_alive(nw.pid), "the master died with its worker");
}

Test(e2e, timeout_kills_stuck_worker, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "1", "-t", "2", h_testapp("stuck"));
    h_response r = h_get(ng.port, "/stuck-path?ok");
    assert_status(r, 200, nw.log);
    char *pid1 = h_header(&r, "X-Pid");
    cr_assert(pid1);

    r = h_http(ng.port, "GET", "/stuck-path?block", NULL, NULL, 0, 20000);
    cr_assert(r.status == 502 || r.status == 504,
              "a stuck request got %d (%s) after %ld ms; narwhal log:\n%s", r.status,
              r.error ? r.error : "", r.elapsed_ms, h_tail(nw.log));
    cr_assert(r.elapsed_ms >= 1500 && r.elapsed_ms <= 10000,
              "the stuck request ended after %ld ms (timeout is 2 s)", r.elapsed_ms);

    const char *needles[] = {pid1, "GET", "/stuck-path", NULL};
    char *line = h_wait_line(nw.log, needles, 3000);
    cr_assert(line, "no error log line names the worker %s, GET and /stuck-path:\n%s", pid1,
              h_tail(nw.log));

    r = h_get(ng.port, "/stuck-path?ok");
    assert_status(r, 200, nw.log);
    assert_body(r, "ok\n");
    char *pid2 = h_header(&r, "X-Pid");
    cr_assert(pid2 && strcmp(pid1, pid2) != 0, "the stuck worker %s was not replaced", pid1);
}

/* ---- signals ------------------------------------------------------------------------ */

Test(e2e, term_finishes_in_flight_request, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "1", h_testapp("slow"));
    h_bg_request b = {.port = ng.port, .path = "/slow?ms=3000"};
    h_bg_start(&b);
    /* the app logs when it starts sleeping; fall back to time if it does not */
    if (!h_wait_for_text(nw.log, "slow: sleeping", 2000))
        h_sleep_ms(300);
    long t0 = h_now_ms();
    cr_assert(kill(nw.pid, SIGTERM) == 0);
    h_bg_join(&b);
    assert_status(b.r, 200, nw.log);
    assert_body(b.r, "done\n");

    int st;
    cr_assert(h_wait_exit(nw.pid, 10000, &st), "the master still runs 10 s after TERM:\n%s",
              h_tail(nw.log));
    cr_assert(h_exited_with(st, 0), "the master %s after TERM:\n%s", h_wstatus_str(st),
              h_tail(nw.log));
    cr_assert(h_now_ms() - t0 < 10000);
    cr_assert_not(h_tcp_accepts(nw.port), "port %d still accepts after the master exited", nw.port);
}

/* A graceful stop refuses new connections at once, even while the only
 * worker is busy in a handler and still holds its copy of the listening
 * socket: otherwise they would wait in the backlog until the handler
 * returns and then be reset, and nginx, which had sent its request on one,
 * could not try another upstream in time (gunicorn #922). */
Test(e2e, term_refuses_new_connections_at_once, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "1", h_testapp("slow"));
    h_bg_request b = {.port = ng.port, .path = "/slow?ms=3000"};
    h_bg_start(&b);
    if (!h_wait_for_text(nw.log, "slow: sleeping", 2000))
        h_sleep_ms(300);
    cr_assert(kill(nw.pid, SIGTERM) == 0);
    cr_assert(h_wait_for_text(nw.log, "graceful stop", 5000), "%s", h_tail(nw.log));
    long deadline = h_now_ms() + 1000;
    while (h_tcp_accepts(nw.port) && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_assert_not(h_tcp_accepts(nw.port),
                  "port %d still accepts connections 1 s after TERM (the worker is busy):\n%s",
                  nw.port, h_tail(nw.log));
    /* the request in flight is not cut short */
    h_bg_join(&b);
    assert_status(b.r, 200, nw.log);
    assert_body(b.r, "done\n");
    int st;
    cr_assert(h_wait_exit(nw.pid, 10000, &st), "%s", h_tail(nw.log));
    cr_assert(h_exited_with(st, 0), "the master %s after TERM:\n%s", h_wstatus_str(st),
              h_tail(nw.log));
}

Test(e2e, graceful_timeout_bounds_term, .timeout = 60)
{
    /* a request longer than --graceful-timeout does not hold the master up */
    serve_tcp(nw, ng, "-w", "1", "--graceful-timeout", "1", h_testapp("slow"));
    h_bg_request b = {.port = ng.port, .path = "/slow?ms=8000"};
    h_bg_start(&b);
    if (!h_wait_for_text(nw.log, "slow: sleeping", 2000))
        h_sleep_ms(300);
    long t0 = h_now_ms();
    cr_assert(kill(nw.pid, SIGTERM) == 0);
    int st;
    bool exited = h_wait_exit(nw.pid, 6000, &st);
    long took = h_now_ms() - t0;
    h_bg_join(&b);
    cr_assert(exited, "the master still runs 6 s after TERM with --graceful-timeout 1:\n%s",
              h_tail(nw.log));
    cr_assert(took >= 800, "the master exited %ld ms after TERM, before the graceful timeout",
              took);
    cr_assert_neq(b.r.status, 200, "the 8 s request completed although the grace was 1 s");
}

Test(e2e, workers_are_supervised, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "3", h_example("hello.so"));
    pid_t kids[8];
    int n = h_wait_children(nw.pid, kids, 8, 3, 10000);
    cr_assert_eq(n, 3, "-w 3 gave %d workers:\n%s", n, h_tail(nw.log));

    /* a worker killed from outside is replaced */
    pid_t victim = kids[1];
    cr_assert(kill(victim, SIGKILL) == 0);
    bool replaced = false;
    for (long end = h_now_ms() + 10000; !replaced && h_now_ms() < end; h_sleep_ms(50)) {
        n = h_children(nw.pid, kids, 8);
        replaced = n == 3;
        for (int i = 0; i < n && i < 8; i++)
            replaced = replaced && kids[i] != victim;
    }
    cr_assert(replaced, "the killed worker %ld was not replaced (%d workers):\n%s", (long)victim, n,
              h_tail(nw.log));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
}

/* The uid and gid a process runs as (from /proc), -1 if unknown. */
static void proc_ids(pid_t pid, long *uid, long *gid)
{
    char *status = h_read_file(h_fmt("/proc/%ld/status", (long)pid), NULL);
    *uid = *gid = -1;
    const char *u = status ? strstr(status, "\nUid:") : NULL;
    const char *g = status ? strstr(status, "\nGid:") : NULL;
    if (u)
        *uid = strtol(u + 5, NULL, 10);
    if (g)
        *gid = strtol(g + 5, NULL, 10);
    free(status);
}

Test(e2e, user_and_group_drop_privileges_in_workers, .timeout = 60)
{
    if (getuid() != 0)
        cr_skip_test("needs root to switch users");
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");
    if (!pw || !gr)
        cr_skip_test("no user nobody / group nogroup here");
    /* The app where nobody can read it: a 0755 directory outside the test's
     * private one. */
    char dir[] = "/tmp/nw-e2e-app-XXXXXX";
    cr_assert(mkdtemp(dir) != NULL);
    cr_assert(chmod(dir, 0755) == 0);
    char *app = h_fmt("%s/hello.so", dir);
    size_t len;
    char *so = h_read_file(h_example("hello.so"), &len);
    cr_assert(so != NULL);
    FILE *f = fopen(app, "wb");
    cr_assert(f && fwrite(so, 1, len, f) == len && fclose(f) == 0);
    free(so);
    chmod(app, 0755);

    serve_tcp(nw, ng, "-w", "1", "-u", "nobody", "-g", "nogroup", app);
    pid_t kids[2];
    int n = h_wait_children(nw.pid, kids, 2, 1, 10000);
    cr_assert_eq(n, 1, "no worker:\n%s", h_tail(nw.log));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
    long uid, gid, muid, mgid;
    proc_ids(kids[0], &uid, &gid);
    proc_ids(nw.pid, &muid, &mgid);
    cr_expect_eq(uid, (long)pw->pw_uid, "worker runs as uid %ld, not nobody (%ld)", uid,
                 (long)pw->pw_uid);
    cr_expect_eq(gid, (long)gr->gr_gid, "worker runs as gid %ld, not nogroup (%ld)", gid,
                 (long)gr->gr_gid);
    cr_expect_eq(muid, 0, "the master should stay root (it binds and reopens logs)");
    h_stop(nw.pid, SIGTERM, 10000);
    unlink(app);
    rmdir(dir);
}

Test(e2e, int_stops_quickly, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "2", h_example("hello.so"));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
    int st = h_stop(nw.pid, SIGINT, 5000);
    cr_assert(st >= 0, "the master still runs 5 s after INT:\n%s", h_tail(nw.log));
    cr_assert_not(h_tcp_accepts(nw.port), "port %d still accepts after INT", nw.port);
}

/* ---- worker classes ------------------------------------------------------------------- */

/* The same handlers under the other executors (sync is everywhere else). */

ParameterizedTestParameters(e2e, worker_class_serves)
{
    static h_wclass classes[] = {{"threads", "4"}, {"async", "1"}};
    return cr_make_param_array(h_wclass, classes, 2);
}

ParameterizedTest(h_wclass *wc, e2e, worker_class_serves, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "1", H_CLASS_ARGS(wc), h_example("echo.so"));
    h_response r = h_get(ng.port, "/e?k=v");
    assert_status(r, 200, nw.log);
    cr_assert(strstr(r.body, "QUERY_STRING=k=v\n"), "-k %s body:\n%s", wc->name, r.body);
    size_t n = 300000;
    char *data = malloc(n);
    cr_assert(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 7 + i / 251);
    r = h_http(ng.port, "POST", "/e", "Content-Type: application/octet-stream\r\n", data, n, 30000);
    assert_status(r, 200, nw.log);
    cr_assert(r.body_len == n && memcmp(r.body, data, n) == 0,
              "-k %s: echoed %zu bytes of %zu, or different ones", wc->name, r.body_len, n);
}

struct counted_request {
    h_bg_request b;
    const char *log;
    int started; /* "slow: sleeping" lines in the log when this one finished */
};

static void *counted_get(void *arg)
{
    struct counted_request *c = arg;
    h_bg_run(&c->b);
    c->started = h_count_text(c->log, "slow: sleeping");
    return NULL;
}

ParameterizedTestParameters(e2e, worker_class_overlaps_requests)
{
    static h_wclass classes[] = {{"threads", "4"}, {"async", "1"}};
    return cr_make_param_array(h_wclass, classes, 2);
}

/* One worker, four requests that each wait 2 s in nw_sleep: under threads
 * and async all four are in their handlers before the first one ends (under
 * sync, one at a time). Checked through the app's log lines, not the clock. */
ParameterizedTest(h_wclass *wc, e2e, worker_class_overlaps_requests, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "1", H_CLASS_ARGS(wc), h_testapp("slow"));
    enum { N = 4 };
    struct counted_request c[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        c[i] = (struct counted_request){.b = {.port = ng.port, .path = "/slow?ms=2000"},
                                        .log = nw.log};
        cr_assert(pthread_create(&t[i], NULL, counted_get, &c[i]) == 0);
    }
    int least = N;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_status(c[i].b.r, 200, nw.log);
        assert_body(c[i].b.r, "done\n");
        if (c[i].started < least)
            least = c[i].started;
    }
    cr_assert_eq(least, N, "-k %s: only %d of %d requests had started when one ended:\n%s",
                 wc->name, least, N, h_tail(nw.log));
}

/* ---- keep-alive ----------------------------------------------------------------------- */

Test(e2e, keepalive_upstream_reuses_connections, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("--log-level", "debug", "-w", "1", h_example("hello.so"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_KEEPALIVE, h_fmt("127.0.0.1:%d", nw.port));
    /* The first request opens nginx's kept connection (the harness's own
     * readiness probe was an accept too). */
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    int before = h_count_text(nw.log, "accepted connection");
    cr_assert(before >= 1, "no \"accepted connection\" debug line to count:\n%s", h_tail(nw.log));
    for (int i = 0; i < 20; i++) {
        r = h_get(ng.port, "/");
        assert_status(r, 200, nw.log);
        assert_body(r, "Hello, World!\n");
    }
    int more = h_count_text(nw.log, "accepted connection") - before;
    cr_assert(more <= 1, "20 requests over a keepalive upstream made %d new connections:\n%s", more,
              h_tail(nw.log));
}

Test(e2e, keepalive_idle_connection_closed_by_narwhal, .timeout = 60)
{
    /* --keep-alive 1: narwhal drops the kept connection after 1 s idle;
     * nginx notices, and the next request opens a new one and succeeds */
    h_narwhal nw = h_narwhal_serve("--log-level", "debug", "-w", "1", "--keep-alive", "1",
                                   h_example("hello.so"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_KEEPALIVE, h_fmt("127.0.0.1:%d", nw.port));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
    assert_status(h_get(ng.port, "/"), 200, nw.log);
    int before = h_count_text(nw.log, "accepted connection");
    h_sleep_ms(2500);
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");
    int more = h_count_text(nw.log, "accepted connection") - before;
    cr_assert_eq(more, 1, "after the idle timeout the request made %d new connections:\n%s", more,
                 h_tail(nw.log));
}

Test(e2e, no_keep_conn_closes_each_connection, .timeout = 60)
{
    /* The control for the test above: without fastcgi_keep_conn, every
     * request is its own connection (and the count above means something). */
    serve_tcp(nw, ng, "--log-level", "debug", "-w", "1", h_example("hello.so"));
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    int before = h_count_text(nw.log, "accepted connection");
    for (int i = 0; i < 5; i++)
        assert_status(h_get(ng.port, "/"), 200, nw.log);
    int more = 0;
    for (long end = h_now_ms() + 2000; h_now_ms() < end && more < 5; h_sleep_ms(20))
        more = h_count_text(nw.log, "accepted connection") - before;
    cr_assert_eq(more, 5, "5 requests without keep-conn made %d connections:\n%s", more,
                 h_tail(nw.log));
}

/* ---- unix socket ---------------------------------------------------------------------- */

static h_narwhal serve_unix(const char *sock)
{
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("unix:%s", sock), h_example("hello.so"), NULL);
    if (!h_wait_unix(sock, 10000))
        cr_assert_fail("narwhal does not accept on %s:\n%s", sock, h_tail(nw.log));
    return nw;
}

/* The rollback of an upgrade: USR2, then TERM to the new master. The old
 * master goes on serving, so the socket file it serves on stays (the new
 * master removed it as it exited). */
Test(e2e, unix_socket_survives_a_rolled_back_upgrade, .timeout = 60)
{
    char *sock = h_path("nw.sock"), *pidfile = h_path("nw.pid");
    h_narwhal nw =
        h_narwhal_spawn("-b", h_fmt("unix:%s", sock), "-p", pidfile, h_example("hello.so"), NULL);
    cr_assert(h_wait_unix(sock, 10000), "%s", h_tail(nw.log));
    h_nginx ng = h_nginx_start(H_SNIPPET_UNIX, h_fmt("unix:%s", sock));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
    cr_assert(kill(nw.pid, SIGUSR2) == 0);
    pid_t newm = 0;
    for (long end = h_now_ms() + 10000; newm <= 0 && h_now_ms() < end; h_sleep_ms(50))
        newm = h_read_pidfile(h_fmt("%s.2", pidfile));
    cr_assert(newm > 0, "no new master:\n%s", h_tail(nw.log));
    h_adopt(newm);
    cr_assert(h_wait_for_text(nw.log, "booting worker", 10000), "%s", h_tail(nw.log));
    cr_assert(h_stop(newm, SIGTERM, 10000) >= 0, "the new master does not stop");
    struct stat sst;
    cr_assert(stat(sock, &sst) == 0 && S_ISSOCK(sst.st_mode),
              "the new master removed %s while the old one serves on it:\n%s", sock,
              h_tail(nw.log));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
}

Test(e2e, unix_socket, .timeout = 60)
{
    char *sock = h_path("nw.sock");
    h_narwhal nw = serve_unix(sock);
    h_nginx ng = h_nginx_start(H_SNIPPET_UNIX, h_fmt("unix:%s", sock));
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");
    struct stat st;
    cr_assert(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode), "%s is not a socket", sock);

    /* a second narwhal on the live path fails and leaves the socket alone */
    h_narwhal second = h_narwhal_spawn("-b", h_fmt("unix:%s", sock), h_example("hello.so"), NULL);
    int ws;
    cr_assert(h_wait_exit(second.pid, 10000, &ws), "a second narwhal on a live socket runs:\n%s",
              h_tail(second.log));
    cr_assert(h_exited_with(ws, 1), "the second narwhal %s:\n%s", h_wstatus_str(ws),
              h_tail(second.log));
    cr_assert(h_wait_for_text(second.log, "in use", 10), "no \"in use\" in:\n%s",
              h_tail(second.log));
    assert_status(h_get(ng.port, "/"), 200, nw.log);

    /* a stale socket file (its owner SIGKILLed) is replaced at the next start */
    h_kill_group(nw.pid);
    cr_assert(h_exists(sock), "the socket file vanished with a SIGKILLed narwhal");
    cr_assert_not(h_unix_accepts(sock));
    h_narwhal third = serve_unix(sock);
    r = h_get(ng.port, "/");
    assert_status(r, 200, third.log);
    assert_body(r, "Hello, World!\n");
}

/* ---- pidfile and daemon ----------------------------------------------------------------- */

Test(e2e, pidfile, .timeout = 60)
{
    char *pidfile = h_path("nw.pid");
    h_narwhal nw = h_narwhal_serve("-p", pidfile, h_example("hello.so"), NULL);
    pid_t pid = 0;
    for (long end = h_now_ms() + 5000; !pid && h_now_ms() < end; h_sleep_ms(20))
        pid = h_read_pidfile(pidfile);
    cr_assert_eq(pid, nw.pid, "the pidfile names %ld, the master is %ld", (long)pid, (long)nw.pid);

    h_narwhal again = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", h_free_port()), "-p", pidfile,
                                      h_example("hello.so"), NULL);
    int ws;
    cr_assert(h_wait_exit(again.pid, 10000, &ws), "a second narwhal with a live pidfile runs");
    cr_assert(h_exited_with(ws, 1), "the second narwhal %s:\n%s", h_wstatus_str(ws),
              h_tail(again.log));
    cr_assert(h_wait_for_text(again.log, pidfile, 10) || h_wait_for_text(again.log, "pidfile", 10),
              "the message does not mention the pidfile:\n%s", h_tail(again.log));
    cr_assert_eq(h_read_pidfile(pidfile), nw.pid, "the failed start touched the pidfile");
    cr_assert(h_alive(nw.pid));

    cr_assert(h_exited_with(h_stop(nw.pid, SIGTERM, 10000), 0), "TERM:\n%s", h_tail(nw.log));
    cr_assert_not(h_exists(pidfile), "the pidfile is still there after exit");
}

Test(e2e, daemon, .timeout = 60)
{
    char *pidfile = h_path("nw.pid"), *errlog = h_path("daemon-error.log");
    int port = h_free_port();
    h_narwhal launcher = h_narwhal_spawn("-D", "-p", pidfile, "-b", h_fmt("127.0.0.1:%d", port),
                                         "--error-logfile", errlog, h_example("hello.so"), NULL);
    int ws;
    cr_assert(h_wait_exit(launcher.pid, 10000, &ws), "narwhal -D did not return");
    cr_assert(h_exited_with(ws, 0), "narwhal -D %s:\n%s\n%s", h_wstatus_str(ws),
              h_tail(launcher.log), h_tail(errlog));

    pid_t pid = 0;
    for (long end = h_now_ms() + 5000; !pid && h_now_ms() < end; h_sleep_ms(20))
        pid = h_read_pidfile(pidfile);
    cr_assert(pid > 0, "no pidfile from the daemon:\n%s", h_tail(errlog));
    h_adopt(pid);
    cr_assert(pid != launcher.pid && h_alive(pid), "the pidfile names %ld (launcher %ld)",
              (long)pid, (long)launcher.pid);

    cr_assert(h_wait_listen(pid, port, 10000), "the daemon does not listen:\n%s", h_tail(errlog));
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", port));
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, errlog);
    assert_body(r, "Hello, World!\n");

    cr_assert(kill(pid, SIGTERM) == 0);
    cr_assert(h_wait_gone(pidfile, 10000), "the pidfile outlived TERM by 10 s");
    cr_assert(h_wait_exit(pid, 10000, NULL), "the daemon runs 10 s after TERM");
}

/* ---- settings --------------------------------------------------------------------------- */

Test(e2e, bad_config_file_value, .timeout = 60)
{
    int port = h_free_port();
    char *conf = h_path("bad.conf");
    h_write_file(conf, h_fmt("# a config with a bad value on line 3\n"
                             "bind = '127.0.0.1:%d'\n"
                             "workers = abc\n",
                             port));
    h_narwhal nw = h_narwhal_spawn("-c", conf, h_example("hello.so"), NULL);
    int ws;
    cr_assert(h_wait_exit(nw.pid, 10000, &ws), "narwhal runs with a bad config:\n%s",
              h_tail(nw.log));
    cr_assert(h_exited_with(ws, 1), "narwhal %s:\n%s", h_wstatus_str(ws), h_tail(nw.log));
    char *text = h_read_file(nw.log, NULL);
    cr_assert(strstr(text, h_fmt("%s:3:", conf)) || strstr(text, ":3:"), "no FILE:3: in:\n%s",
              text);
    cr_assert(strstr(text, "workers"), "the setting is not named:\n%s", text);
    cr_assert_not(h_tcp_accepts(port), "something listens on the configured port");
}

Test(e2e, bad_cli_value, .timeout = 60)
{
    int port = h_free_port();
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", port), "--timeout", "-5",
                                   h_example("hello.so"), NULL);
    int ws;
    cr_assert(h_wait_exit(nw.pid, 10000, &ws), "narwhal runs with --timeout -5");
    cr_assert(h_exited_with(ws, 1), "narwhal %s:\n%s", h_wstatus_str(ws), h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "--timeout", 10), "--timeout is not named:\n%s",
              h_tail(nw.log));
    cr_assert_not(h_tcp_accepts(port));
}

Test(e2e, config_file_settings_apply, .timeout = 60)
{
    int port = h_free_port();
    char *conf = h_path("good.conf");
    h_write_file(conf, h_fmt("bind = '127.0.0.1:%d'\nworkers = 2\n", port));
    h_narwhal nw = h_narwhal_spawn("-c", conf, h_example("hello.so"), NULL);
    cr_assert(h_wait_listen(nw.pid, port, 10000),
              "narwhal does not listen on the config's bind:\n%s", h_tail(nw.log));
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", port));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
}

/* ---- an independent FastCGI peer ----------------------------------------------------------- */

Test(e2e, cgi_fcgi_peer, .timeout = 60)
{
    const char *cgi = getenv("NARWHAL_CGI_FCGI");
    if (!cgi || !*cgi)
        cr_skip_test("cgi-fcgi (libfcgi) is not installed");
    h_narwhal nw = h_narwhal_serve(h_example("hello.so"), NULL);
    char *out = h_path("cgi-fcgi.out");
    char *argv[] = {(char *)cgi, "-bind", "-connect", h_fmt("127.0.0.1:%d", nw.port), NULL};
    char *env[] = {"REQUEST_METHOD=GET",
                   "SCRIPT_NAME=/",
                   "REQUEST_URI=/",
                   "QUERY_STRING=",
                   "SERVER_PROTOCOL=HTTP/1.1",
                   "SERVER_NAME=localhost",
                   "SERVER_PORT=80",
                   "REMOTE_ADDR=127.0.0.1",
                   "CONTENT_LENGTH=",
                   NULL};
    int ws = h_run(out, argv, env, 15000);
    char *text = h_read_file(out, NULL);
    cr_assert(h_exited_with(ws, 0), "cgi-fcgi %s:\n%s\nnarwhal log:\n%s", h_wstatus_str(ws),
              text ? text : "", h_tail(nw.log));
    cr_assert(text && (strstr(text, "Status: 200") || strstr(text, "Content-Type: text/plain")),
              "cgi-fcgi output:\n%s", text ? text : "");
    cr_assert(strstr(text, "\r\n\r\nHello, World!\n") || strstr(text, "\n\nHello, World!\n"),
              "cgi-fcgi output:\n%s", text);
}

/* ---- the app's environment ------------------------------------------------------------------ */

Test(e2e, env_option, .timeout = 60)
{
    serve_tcp(nw, ng, "-e", "NW_TEST_VAR=hello", h_testapp("env"));
    h_response r = h_get(ng.port, "/env?NW_TEST_VAR");
    assert_status(r, 200, nw.log);
    assert_body(r, "hello\n");
}

Test(e2e, chdir_option, .timeout = 60)
{
    char *dir = h_path("work dir");
    cr_assert(mkdir(dir, 0755) == 0);
    char real[PATH_MAX];
    cr_assert(realpath(dir, real));
    serve_tcp(nw, ng, "--chdir", dir, h_testapp("cwd"));
    h_response r = h_get(ng.port, "/cwd");
    assert_status(r, 200, nw.log);
    assert_body(r, h_fmt("%s\n", real));
}

/* ---- boot failures --------------------------------------------------------------------------- */

Test(e2e, worker_boot_failure_stops_master, .timeout = 60)
{
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", h_free_port()),
                                   h_env("NARWHAL_BOOTFAIL"), NULL);
    int ws;
    cr_assert(h_wait_exit(nw.pid, 25000, &ws), "narwhal keeps running with a failing app:\n%s",
              h_tail(nw.log));
    cr_assert(!h_exited_with(ws, 0) && ws >= 0, "narwhal %s with a failing app", h_wstatus_str(ws));
    /* narwhal's own words, not the app's ("bootfail: refusing to boot ...") */
    char *text = h_read_file(nw.log, NULL);
    bool said = false;
    for (char *line = strtok(text, "\n"); line && !said; line = strtok(NULL, "\n"))
        said = strcasestr(line, "boot") && !strstr(line, "bootfail:") &&
               strncmp(line, "# harness:", 10) != 0;
    cr_assert(said, "narwhal does not say a worker failed to boot:\n%s", h_tail(nw.log));
}

Test(e2e, missing_app_fails, .timeout = 60)
{
    char *app = h_path("no-such-app.so");
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", h_free_port()), app, NULL);
    int ws;
    cr_assert(h_wait_exit(nw.pid, 25000, &ws), "narwhal runs without its app:\n%s", h_tail(nw.log));
    cr_assert(!h_exited_with(ws, 0) && ws >= 0, "narwhal %s without its app", h_wstatus_str(ws));
    char *text = h_read_file(nw.log, NULL);
    cr_assert(strstr(text, "cannot load") || strstr(text, "cannot open shared object") ||
                  strstr(text, "No such file"),
              "no load error in:\n%s", text);
}

/* ---- logs ---------------------------------------------------------------------------------------
 */

Test(e2e, access_log, .timeout = 60)
{
    char *alog = h_path("access.log");
    serve_tcp(nw, ng, "--access-logfile", alog, h_example("hello.so"));
    assert_status(h_get(ng.port, "/path?x=1"), 200, nw.log);
    cr_assert(h_wait_for_text(alog, "\"GET /path?x=1 HTTP/1.1\" 200 ", 5000),
              "no access log line for the request:\n%s", h_tail(alog));
}

Test(e2e, app_log_reaches_error_log, .timeout = 60)
{
    serve_tcp(nw, ng, h_testapp("log"));
    h_response r = h_get(ng.port, "/log");
    assert_status(r, 200, nw.log);
    assert_body(r, "ok\n");
    cr_assert(h_wait_for_text(nw.log, "testapp log line", 5000), "not in narwhal's log:\n%s",
              h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "[WARNING]", 10) || h_wait_for_text(nw.log, "[warning]", 10),
              "no [WARNING] level in:\n%s", h_tail(nw.log));
}

Test(e2e, many_warnings_before_the_head_still_answer, .timeout = 60)
{
    /* Each warning used to be a STDERR record ahead of the response head: at
     * ~200 of them nginx found the header too big and answered 502. Now they
     * follow the head, merged, at most REQUEST_ERR_QUEUE bytes of them. */
    serve_tcp(nw, ng, h_testapp("manylogs"));
    h_response r = h_get(ng.port, "/many?n=300");
    assert_status(r, 200, nw.log);
    cr_assert_str_eq(r.body, "ok\n");
    cr_assert(h_wait_for_text(ng.error_log, "more in narwhal's error log", 5000),
              "no count of the warnings left out in nginx's error log:\n%s", h_tail(ng.error_log));
    cr_assert(h_wait_for_text(ng.error_log, "warning 0 of a handler", 100),
              "the first warnings are not in nginx's error log:\n%s", h_tail(ng.error_log));
    /* narwhal's own log has every one */
    cr_assert(h_wait_for_text(nw.log, "warning 299 of a handler", 5000), "%s", h_tail(nw.log));
}

Test(e2e, app_warning_cannot_forge_nginx_log_lines, .timeout = 60)
{
    serve_tcp(nw, ng, h_testapp("manylogs"));
    assert_status(h_get(ng.port, "/many?n=0"), 200, nw.log);
    cr_assert(
        h_wait_for_text(ng.error_log, "value\\x0a2026/11/30 00:00:00 [emerg] 1#1: forged", 5000),
        "the message is not in nginx's error log, escaped:\n%s", h_tail(ng.error_log));
    cr_assert(!h_wait_for_text(ng.error_log, "\n2026/11/30 00:00:00 [emerg]", 100),
              "a forged line in nginx's error log:\n%s", h_tail(ng.error_log));
}

Test(e2e, api_from_an_app_thread_is_refused, .timeout = 60)
{
    /* A request's calls belong to its handler's thread: from another they
     * raced the handler's buffers (nginx got a 502). Now they fail, logged
     * once; nw_log still reaches narwhal's own log. */
    serve_tcp(nw, ng, h_testapp("thread"));
    h_response r = h_get(ng.port, "/thread");
    assert_status(r, 200, nw.log);
    assert_body(r, "write -1 status -1\n");
    cr_assert(
        h_wait_for_text(nw.log, "called from a thread that is not the request's handler's", 5000),
        "%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "logged from an app thread", 5000), "%s", h_tail(nw.log));
}

Test(e2e, app_warning_reaches_nginx, .timeout = 60)
{
    serve_tcp(nw, ng, h_testapp("log"));
    assert_status(h_get(ng.port, "/log"), 200, nw.log);
    /* nginx logs FastCGI STDERR as "FastCGI sent in stderr: ..." */
    cr_assert(h_wait_for_text(ng.error_log, "testapp log line", 5000),
              "not in nginx's error log:\n%s", h_tail(ng.error_log));
}
