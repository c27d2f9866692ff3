/*
 * test_classes.c - "three ways to scale": the same handlers under the sync,
 * threads and async worker classes, through a real nginx, on loopback.
 * Correctness under every class, how much each class overlaps waiting
 * requests with one worker, the per-request timeout (a cut-off wait is a
 * 504; a handler stuck without waiting costs its worker), coroutine stack
 * overflow isolation, graceful stop with requests in flight, and the
 * gunicorn.conf seed config. See tests/e2e/README.md.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(classes, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------------------- */

/* narwhal (-w 1, the class, more args, the app) and nginx with the TCP
 * FastCGI snippet in front. */
#define serve_class(nw, ng, wc, ...)                                                        \
    serve_tcp(nw, ng, H_CLASS_ARGS(wc), __VA_ARGS__)

/* ---- correctness under every class ------------------------------------------------------ */

ParameterizedTestParameters(classes, correctness)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, classes, correctness, .timeout = 60)
{
    serve_class(nw, ng, wc, "-w", "1", h_example("echo.so"));

    h_response r = h_http(ng.port, "GET", "/echo/path?a=1&b=two", "X-Foo: bar\r\n", NULL, 0,
                          10000);
    assert_status(r, 200, nw.log);
    cr_assert(strstr(r.body, "QUERY_STRING=a=1&b=two\n"), "-k %s body:\n%s", wc->name, r.body);
    cr_assert(strstr(r.body, "REQUEST_METHOD=GET\n"), "-k %s body:\n%s", wc->name, r.body);
    cr_assert(strstr(r.body, "HTTP_X_FOO=bar\n"), "-k %s body:\n%s", wc->name, r.body);
    cr_assert(strstr(r.body, "REQUEST_URI=/echo/path?a=1&b=two\n"), "-k %s body:\n%s",
              wc->name, r.body);

    size_t n = 1 << 20;
    unsigned char *data = malloc(n);
    cr_assert(data);
    unsigned int seed = (unsigned int)getpid() * 2654435761u;
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(rand_r(&seed) >> 7);
    r = h_http(ng.port, "POST", "/upload", "Content-Type: application/octet-stream\r\n", data, n,
               30000);
    assert_status(r, 200, nw.log);
    char *eb = h_header(&r, "X-Echo-Bytes");
    cr_assert(eb && strcmp(eb, "1048576") == 0, "-k %s: X-Echo-Bytes: %s", wc->name,
              eb ? eb : "(none)");
    cr_assert_eq(r.body_len, n, "-k %s: echoed %zu bytes, sent %zu", wc->name, r.body_len, n);
    size_t first = 0;
    while (first < n && (unsigned char)r.body[first] == data[first])
        first++;
    cr_assert_eq(first, n, "-k %s: echoed body differs from byte %zu on", wc->name, first);
}

/* ---- concurrency with one worker ------------------------------------------------------------ */

enum { NCONC = 16 };

/* 16 concurrent GET /?ms=500 to sleep.so with -w 1; returns the total ms and
 * checks every answer. */
static long sixteen_sleeps(const h_wclass *wc, const char **logp)
{
    serve_class(nw, ng, wc, "-w", "1", h_example("sleep.so"));
    /* one request first, so the worker is up before the clock starts */
    assert_status(h_get(ng.port, "/?ms=1"), 200, nw.log);
    static h_bg_request b[NCONC];
    long took = h_concurrent_gets(ng.port, "/?ms=500", NCONC, 30000, b);
    for (int i = 0; i < NCONC; i++) {
        assert_status(b[i].r, 200, nw.log);
        assert_body(b[i].r, "slept 500 ms\n");
    }
    *logp = nw.log;
    return took;
}

Test(classes, concurrency_async, .timeout = 60)
{
    h_wclass wc = { "async", "1" };
    const char *log;
    long took = sixteen_sleeps(&wc, &log);
    cr_assert(took < 1500,
              "-k async -w 1: 16 concurrent 500 ms sleeps took %ld ms (expected about one "
              "sleep, < 1500 ms)\n%s",
              took, h_tail(log));
}

Test(classes, concurrency_threads, .timeout = 60)
{
    h_wclass wc = { "threads", "8" };
    const char *log;
    long took = sixteen_sleeps(&wc, &log);
    cr_assert(took >= 900 && took < 2500,
              "-k threads --threads 8 -w 1: 16 concurrent 500 ms sleeps took %ld ms (expected "
              "about two sleeps, 900..2500 ms)\n%s",
              took, h_tail(log));
}

Test(classes, concurrency_sync, .timeout = 60)
{
    h_wclass wc = { "sync", "1" };
    const char *log;
    long took = sixteen_sleeps(&wc, &log);
    cr_assert(took >= 7000,
              "sync -w 1: 16 concurrent 500 ms sleeps took %ld ms (expected one at a time, "
              ">= 7000 ms)\n%s",
              took, h_tail(log));
}

/* ---- sync + keep-conn: oldest request first ------------------------------------------------- */

typedef struct looper {
    int port;
    long until_ms;
    long max_ms;
    int n, bad;
    pthread_t th;
} looper;

static void *loop_gets(void *arg)
{
    looper *l = arg;
    while (h_now_ms() < l->until_ms) {
        h_response r = h_http(l->port, "GET", "/?ms=50", NULL, NULL, 0, 20000);
        if (r.status != 200)
            l->bad++;
        if (r.elapsed_ms > l->max_ms)
            l->max_ms = r.elapsed_ms;
        l->n++;
    }
    return NULL;
}

/* One sync worker holding 16 keep-conn connections from nginx, all of them
 * busy with 50 ms requests: each waits for the ones that came before it,
 * about 16 x 50 ms, never for ones that came after (served newest first,
 * some waited over 4 s). */
Test(classes, sync_keep_conn_serves_oldest_first, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", h_example("sleep.so"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_KEEPALIVE, h_fmt("127.0.0.1:%d", nw.port));
    assert_status(h_get(ng.port, "/?ms=1"), 200, nw.log);
    enum { N = 16 };
    looper l[N];
    long until = h_now_ms() + 5000;
    for (int i = 0; i < N; i++) {
        l[i] = (looper){ .port = ng.port, .until_ms = until };
        cr_assert(pthread_create(&l[i].th, NULL, loop_gets, &l[i]) == 0);
    }
    long max = 0;
    int n = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(l[i].th, NULL);
        max = l[i].max_ms > max ? l[i].max_ms : max;
        n += l[i].n;
        bad += l[i].bad;
    }
    cr_assert_eq(bad, 0, "%d of %d requests failed\n%s", bad, n, h_tail(nw.log));
    cr_assert(n >= 60, "only %d requests in 5 s (one worker, 50 ms each)\n%s", n, h_tail(nw.log));
    cr_assert(max < 2500,
              "the slowest of %d requests took %ld ms; 16 connections x 50 ms is 800 ms", n, max);
}

/* ---- upstream.so waiting on a slow service ---------------------------------------------------- */

/* A line echo service: each connection gets its own thread, which reads one
 * line, waits 300 ms and sends the line back. */
struct echo_service {
    int fd;
    int port;
};

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char line[512];
    size_t have = 0;
    long end = h_now_ms() + 5000;
    while (have < sizeof line && !memchr(line, '\n', have)) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        long left = end - h_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t n = recv(fd, line + have, sizeof line - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    h_sleep_ms(300);
    if (have)
        (void)!send(fd, line, have, MSG_NOSIGNAL);
    close(fd);
    return NULL;
}

static void *echo_accept(void *arg)
{
    struct echo_service *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else
            close(c);
    }
}

static int start_echo_service(void)
{
    static struct echo_service s;
    s.port = h_free_port();
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(s.fd >= 0, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s.port) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(s.fd, (struct sockaddr *)&sin, sizeof sin) == 0, "bind %d: %s", s.port,
              strerror(errno));
    cr_assert(listen(s.fd, 64) == 0);
    pthread_t t;
    cr_assert(pthread_create(&t, NULL, echo_accept, &s) == 0);
    pthread_detach(t);
    return s.port;
}

Test(classes, upstream_async_overlaps_waits, .timeout = 60)
{
    int svc = start_echo_service();
    h_wclass wc = { "async", "1" };
    serve_class(nw, ng, &wc, "-w", "1", h_example("upstream.so"));
    h_response r = h_get(ng.port, h_fmt("/?port=%d&msg=warmup", svc));
    assert_status(r, 200, nw.log);
    assert_body(r, "upstream said: warmup\n");

    enum { N = 10 };
    h_bg_request b[N];
    long t0 = h_now_ms();
    for (int i = 0; i < N; i++) {
        b[i] = (h_bg_request){ .port = ng.port,
                               .path = h_fmt("/?port=%d&msg=hello-%d", svc, i),
                               .timeout_ms = 20000 };
        h_bg_start(&b[i]);
    }
    for (int i = 0; i < N; i++)
        h_bg_join(&b[i]);
    long took = h_now_ms() - t0;
    for (int i = 0; i < N; i++) {
        assert_status(b[i].r, 200, nw.log);
        assert_body(b[i].r, h_fmt("upstream said: hello-%d\n", i));
    }
    cr_assert(took < 1500,
              "-k async -w 1: 10 requests each waiting 300 ms on the service took %ld ms "
              "(expected < 1500)\n%s",
              took, h_tail(nw.log));
}

/* ---- the per-request timeout -------------------------------------------------------------------- */

ParameterizedTestParameters(classes, timeout_cuts_wait_504)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

/* A handler waiting in nw_sleep past -t is cut off: 504 from narwhal, and
 * the worker lives on (no kill, same pid, serves the next request). */
ParameterizedTest(h_wclass *wc, classes, timeout_cuts_wait_504, .timeout = 60)
{
    serve_class(nw, ng, wc, "-w", "1", "-t", "2", h_example("sleep.so"));
    assert_status(h_get(ng.port, "/?ms=10"), 200, nw.log);
    pid_t before[4];
    int n = h_wait_children(nw.pid, before, 4, 1, 10000);
    cr_assert_eq(n, 1, "-w 1 gave %d workers:\n%s", n, h_tail(nw.log));

    h_response r = h_http(ng.port, "GET", "/?ms=10000", NULL, NULL, 0, 20000);
    assert_status(r, 504, nw.log);
    cr_assert(r.elapsed_ms >= 1900 && r.elapsed_ms <= 6000,
              "-k %s -t 2: the 504 came after %ld ms (expected about 2 s)", wc->name,
              r.elapsed_ms);
    cr_assert(r.body && strstr(r.body, "Gateway Timeout"),
              "-k %s: the 504 is not narwhal's (body \"%s\")", wc->name, r.body ? r.body : "");
    cr_assert(h_wait_for_text(nw.log, "passed its 2s timeout", 3000),
              "-k %s: no \"passed its 2s timeout\" in the log:\n%s", wc->name, h_tail(nw.log));

    r = h_get(ng.port, "/?ms=10");
    assert_status(r, 200, nw.log);
    assert_body(r, "slept 10 ms\n");
    /* past the time the master would have killed a stuck worker */
    h_sleep_ms(2000);
    cr_assert_eq(h_count_text(nw.log, "killing it"), 0,
                 "-k %s: a cut-off wait cost the worker:\n%s", wc->name, h_tail(nw.log));
    pid_t after[4];
    n = h_children(nw.pid, after, 4);
    cr_assert(n == 1 && after[0] == before[0],
              "-k %s: the worker was %ld, now %d worker(s), first %ld:\n%s", wc->name,
              (long)before[0], n, n ? (long)after[0] : 0L, h_tail(nw.log));
}

/* A threads-class handler stuck in sleep(3) (not a narwhal wait) cannot be
 * cut off: the master kills the whole worker after the deadline. */
Test(classes, timeout_kills_stuck_thread_worker, .timeout = 60)
{
    h_wclass wc = { "threads", "8" };
    serve_class(nw, ng, &wc, "-w", "1", "-t", "2", h_testapp("stuck"));
    h_response r = h_get(ng.port, "/?ok");
    assert_status(r, 200, nw.log);
    char *pid1 = h_header(&r, "X-Pid");
    cr_assert(pid1, "no X-Pid:\n%s", r.head);

    r = h_http(ng.port, "GET", "/?block", NULL, NULL, 0, 20000);
    cr_assert(r.status == 502 || r.status == 504,
              "a stuck request under -k threads got %d (%s) after %ld ms; narwhal log:\n%s",
              r.status, r.error ? r.error : "", r.elapsed_ms, h_tail(nw.log));
    cr_assert(r.elapsed_ms >= 1500 && r.elapsed_ms <= 10000,
              "the stuck request ended after %ld ms (timeout is 2 s)", r.elapsed_ms);
    const char *needles[] = { "timed out after", "/?block", pid1, NULL };
    char *line = h_wait_line(nw.log, needles, 3000);
    cr_assert(line, "no log line with \"timed out after\", /?block and worker %s:\n%s", pid1,
              h_tail(nw.log));

    r = h_get(ng.port, "/?ok");
    assert_status(r, 200, nw.log);
    assert_body(r, "ok\n");
    char *pid2 = h_header(&r, "X-Pid");
    cr_assert(pid2 && strcmp(pid1, pid2) != 0, "the stuck worker %s was not replaced", pid1);
}

/* An async handler spinning on the CPU blocks the worker's loop: the master
 * kills the worker, and a new one serves. */
Test(classes, timeout_kills_spinning_async_worker, .timeout = 60)
{
    h_wclass wc = { "async", "1" };
    serve_class(nw, ng, &wc, "-w", "1", "-t", "2", h_classapp("spin"));
    h_response r = h_get(ng.port, "/?ms=1");
    assert_status(r, 200, nw.log);
    assert_body(r, "spun 1 ms\n");
    pid_t before[4];
    cr_assert_eq(h_wait_children(nw.pid, before, 4, 1, 10000), 1);

    r = h_http(ng.port, "GET", "/?ms=60000", NULL, NULL, 0, 30000);
    cr_assert(r.status == 502 || r.status == 504,
              "a 60 s spin under -k async -t 2 got %d (%s) after %ld ms; narwhal log:\n%s",
              r.status, r.error ? r.error : "", r.elapsed_ms, h_tail(nw.log));
    cr_assert(r.elapsed_ms <= 15000, "the spinning request ended after %ld ms", r.elapsed_ms);
    cr_assert(h_wait_for_text(nw.log, "killing it", 5000),
              "no \"killing it\" in the log:\n%s", h_tail(nw.log));
    char pidstr[32];
    snprintf(pidstr, sizeof pidstr, "%ld", (long)before[0]);
    /* the worker and the request (by the "timed out" or the "silent" check,
     * whichever sees it first) */
    const char *needles[] = { pidstr, "GET /?ms=60000", "killing it", NULL };
    cr_assert(h_find_line(nw.log, needles),
              "the kill line does not name worker %s and its request:\n%s", pidstr,
              h_tail(nw.log));

    r = h_get(ng.port, "/?ms=1");
    assert_status(r, 200, nw.log);
    assert_body(r, "spun 1 ms\n");
    cr_assert(h_alive(nw.pid), "the master died");
}

/* ---- coroutine stack overflow ------------------------------------------------------------------- */

Test(classes, stack_overflow_is_isolated, .timeout = 60)
{
    h_wclass wc = { "async", "1" };
    serve_class(nw, ng, &wc, "-w", "1", "--coroutine-stack-size", "64", h_classapp("overflow"));
    h_response r = h_get(ng.port, "/?depth=4");
    assert_status(r, 200, nw.log);
    cr_assert(r.body && strncmp(r.body, "survived", 8) == 0, "body: %s", r.body);
    pid_t before[4];
    cr_assert_eq(h_wait_children(nw.pid, before, 4, 1, 10000), 1);

    r = h_get(ng.port, "/?depth=0");
    assert_status(r, 502, nw.log);
    cr_assert(h_wait_for_text(nw.log, "SIGSEGV", 5000),
              "no SIGSEGV in the log after an unbounded recursion:\n%s", h_tail(nw.log));
    char pidstr[32];
    snprintf(pidstr, sizeof pidstr, "%ld", (long)before[0]);
    const char *needles[] = { pidstr, "died from SIGSEGV", NULL };
    cr_assert(h_find_line(nw.log, needles), "no \"worker %s died from SIGSEGV\" line:\n%s", pidstr,
              h_tail(nw.log));

    r = h_get(ng.port, "/?depth=4");
    assert_status(r, 200, nw.log);
    cr_assert(r.body && strncmp(r.body, "survived", 8) == 0, "body: %s", r.body);
    pid_t after[4];
    int n = h_wait_children(nw.pid, after, 4, 1, 10000);
    cr_assert(n == 1 && after[0] != before[0], "the overflowed worker %ld was not replaced",
              (long)before[0]);
    cr_assert(h_alive(nw.pid), "the master died");
}

/* A handler with one 272 KiB frame on the default 256 KiB stack, whose
 * low end it writes (classapp.c, bigframe): the worker must die on the
 * guard (and be replaced), not write into the stack below. Two sleeping
 * requests first leave two stacks on the free list, the one mapped first
 * (higher) on top, so the big frame runs on a stack with another one mapped
 * right below it: the case where the write used to land without a fault. */
Test(classes, stack_large_frame_is_isolated, .timeout = 60)
{
    h_wclass wc = {"async", "1"};
    serve_class(nw, ng, &wc, "-w", "1", h_classapp("bigframe"));
    assert_status(h_get(ng.port, "/?ms=1"), 200, nw.log);
    pid_t before[4];
    cr_assert_eq(h_wait_children(nw.pid, before, 4, 1, 10000), 1);

    h_bg_request first = {.port = ng.port, .path = "/?ms=600", .timeout_ms = 10000};
    h_bg_request second = {.port = ng.port, .path = "/?ms=100", .timeout_ms = 10000};
    h_bg_start(&first);
    h_sleep_ms(200);
    h_bg_start(&second);
    h_bg_join(&second);
    h_bg_join(&first);
    assert_status(first.r, 200, nw.log);
    assert_status(second.r, 200, nw.log);

    h_response r = h_get(ng.port, "/");
    cr_assert_neq(r.status, 200,
                  "the 272 KiB frame's handler answered 200 (%s): its write below the stack did "
                  "not fault\n%s",
                  r.body ? r.body : "", h_tail(nw.log));
    assert_status(r, 502, nw.log);
    char pidstr[32];
    snprintf(pidstr, sizeof pidstr, "%ld", (long)before[0]);
    const char *needles[] = {pidstr, "died from SIGSEGV", NULL};
    cr_assert(h_wait_line(nw.log, needles, 5000), "no \"worker %s died from SIGSEGV\" line:\n%s",
              pidstr, h_tail(nw.log));

    /* replaced, and the next requests are served as before */
    pid_t after[4];
    long end = h_now_ms() + 10000;
    int n;
    while ((n = h_children(nw.pid, after, 4)) != 1 || after[0] == before[0]) {
        cr_assert(h_now_ms() < end, "the worker %ld was not replaced", (long)before[0]);
        h_sleep_ms(50);
    }
    for (int i = 0; i < 3; i++) {
        r = h_get(ng.port, "/?ms=1");
        assert_status(r, 200, nw.log);
        assert_body(r, "slept 1 ms\n");
    }
    cr_assert(h_alive(nw.pid), "the master died");
}

/* ---- graceful stop with requests in flight -------------------------------------------------------- */

ParameterizedTestParameters(classes, term_finishes_in_flight)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

/* 4 requests in their handlers (1.5 s each) when the master gets TERM: all
 * four finish with 200, the master exits 0. Sync needs a worker per
 * request (-w 4); threads and async hold all four in one worker. */
ParameterizedTest(h_wclass *wc, classes, term_finishes_in_flight, .timeout = 60)
{
    bool sync = strcmp(wc->name, "sync") == 0;
    serve_class(nw, ng, wc, "-w", sync ? "4" : "1", h_testapp("slow"));
    pid_t kids[8];
    int want = sync ? 4 : 1;
    cr_assert_eq(h_wait_children(nw.pid, kids, 8, want, 10000), want, "workers:\n%s",
                 h_tail(nw.log));

    enum { N = 4 };
    h_bg_request b[N];
    for (int i = 0; i < N; i++) {
        b[i] = (h_bg_request){ .port = ng.port, .path = "/slow?ms=1500", .timeout_ms = 20000 };
        h_bg_start(&b[i]);
    }
    /* all four in their handlers (the app logs as it starts sleeping) */
    long end = h_now_ms() + 5000;
    while (h_count_text(nw.log, "slow: sleeping") < N && h_now_ms() < end)
        h_sleep_ms(20);
    int started = h_count_text(nw.log, "slow: sleeping");
    h_sleep_ms(300);
    long t0 = h_now_ms();
    cr_assert(kill(nw.pid, SIGTERM) == 0);
    for (int i = 0; i < N; i++)
        h_bg_join(&b[i]);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(b[i].r.status, 200,
                     "-k %s: in-flight request %d got %d (%s) after TERM (%d of %d had "
                     "started before TERM); log:\n%s",
                     wc->name, i, b[i].r.status, b[i].r.error ? b[i].r.error : "", started, N,
                     h_tail(nw.log));
        assert_body(b[i].r, "done\n");
    }
    int st;
    cr_assert(h_wait_exit(nw.pid, 10000, &st), "-k %s: the master runs 10 s after TERM:\n%s",
              wc->name, h_tail(nw.log));
    cr_assert(h_exited_with(st, 0), "-k %s: the master %s after TERM:\n%s", wc->name,
              h_wstatus_str(st), h_tail(nw.log));
    cr_assert(h_now_ms() - t0 < 10000);
    cr_assert_not(h_tcp_accepts(nw.port), "port %d still accepts after the master exited",
                  nw.port);
}

/* ---- the seed config: a plain gunicorn.conf ------------------------------------------------------- */

static char *seed_conf(void)
{
    return h_fmt("%s/tests/unit/core/data/gunicorn.conf", h_env("NARWHAL_SRCDIR"));
}

Test(classes, seed_config_checks, .timeout = 60)
{
    char *out = h_path("check.out");
    char *argv[] = { (char *)h_env("NARWHAL_BIN"), "-c", seed_conf(), "--check-config",
                     h_example("hello.so"), NULL };
    int st = h_run(out, argv, NULL, 15000);
    cr_assert(h_exited_with(st, 0), "--check-config with the seed gunicorn.conf %s:\n%s",
              h_wstatus_str(st), h_tail(out));

    /* and it means what gunicorn means by it */
    char *pout = h_path("print.out");
    char *pargv[] = { (char *)h_env("NARWHAL_BIN"), "-c", seed_conf(), "--print-config",
                      h_example("hello.so"), NULL };
    st = h_run(pout, pargv, NULL, 15000);
    cr_assert(h_exited_with(st, 0), "--print-config %s:\n%s", h_wstatus_str(st), h_tail(pout));
    char *text = h_read_file(pout, NULL);
    cr_assert(text && strstr(text, "\nworkers = 4\n") && strstr(text, "\nthreads = 2\n") &&
                  strstr(text, "\nworker_class = async\n") &&
                  strstr(text, "\nworker_connections = 2000\n"),
              "the seed's values are not in --print-config:\n%s", text ? text : "");
}

Test(classes, seed_config_serves_with_cli_overrides, .timeout = 60)
{
    int port = h_free_port();
    char *pidfile = h_path("pid"), *alog = h_path("a.log"), *elog = h_path("e.log");
    h_narwhal nw = h_narwhal_spawn("-c", seed_conf(), "-b", h_fmt("127.0.0.1:%d", port), "-p",
                                   pidfile, "--access-logfile", alog, "--error-logfile", elog,
                                   h_example("hello.so"), NULL);
    nw.port = port;
    if (!h_wait_listen(nw.pid, port, 10000)) {
        int st;
        bool gone = h_wait_exit(nw.pid, 0, &st);
        cr_assert_fail("narwhal with the seed config does not listen on the CLI's bind (%s):\n"
                       "%s\nerror log:\n%s",
                       gone ? h_wstatus_str(st) : "still running", h_tail(nw.log), h_tail(elog));
    }
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", port));
    h_response r = h_get(ng.port, "/seed");
    assert_status(r, 200, elog);
    assert_body(r, "Hello, World!\n");

    pid_t kids[16];
    int n = h_wait_children(nw.pid, kids, 16, 4, 10000);
    cr_assert_eq(n, 4, "the seed's workers = 4 gave %d workers:\n%s", n, h_tail(elog));

    pid_t pid = 0;
    for (long end = h_now_ms() + 5000; !pid && h_now_ms() < end; h_sleep_ms(20))
        pid = h_read_pidfile(pidfile);
    cr_assert_eq(pid, nw.pid, "-p %s names %ld, the master is %ld", pidfile, (long)pid,
                 (long)nw.pid);
    cr_assert(h_wait_for_text(alog, "\"GET /seed HTTP/1.1\" 200 ", 5000),
              "no access log line in the CLI's --access-logfile:\n%s", h_tail(alog));
    cr_assert(h_exists(elog), "the CLI's --error-logfile %s was not created", elog);

    /* the same command line, printed: the file's class and counts, the
     * CLI's bind and files */
    char *pout = h_path("print.out");
    char *pargv[] = { (char *)h_env("NARWHAL_BIN"), "-c", seed_conf(), "-b",
                      h_fmt("127.0.0.1:%d", port), "-p", pidfile, "--access-logfile", alog,
                      "--error-logfile", elog, "--print-config", h_example("hello.so"), NULL };
    int st = h_run(pout, pargv, NULL, 15000);
    char *text = h_read_file(pout, NULL);
    cr_assert(h_exited_with(st, 0) && text && strstr(text, "\nworker_class = async\n") &&
                  strstr(text, "\nworkers = 4\n") &&
                  strstr(text, h_fmt("\nbind = {\"127.0.0.1:%d\"}\n", port)) &&
                  strstr(text, h_fmt("\npidfile = \"%s\"\n", pidfile)) &&
                  !strstr(text, "/var/log/gunicorn"),
              "--print-config with the overrides (%s):\n%s", h_wstatus_str(st),
              text ? text : "");

    cr_assert(h_exited_with(h_stop(nw.pid, SIGTERM, 10000), 0), "TERM:\n%s", h_tail(elog));
}

/* ---- streaming -------------------------------------------------------------------- */

/* What a handler writes before it waits reaches the client before the wait
 * ends (nginx with fastcgi_buffering off): classapp:stream writes "first",
 * sleeps 1.5 s, writes "second". */
ParameterizedTestParameters(classes, streaming_reaches_client_before_wait_ends)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, classes, streaming_reaches_client_before_wait_ends, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", H_CLASS_ARGS(wc),
                                   h_classapp("stream"), NULL);
    h_nginx ng = h_nginx_start_server(h_fmt("        location / {\n"
                                            "            include fastcgi_params;\n"
                                            "            fastcgi_buffering off;\n"
                                            "            fastcgi_pass 127.0.0.1:%d;\n"
                                            "        }\n",
                                            nw.port));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ng.port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const char *req = "GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    long t0 = h_now_ms(), first_ms = -1;
    char buf[8192];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = 0;
        if (first_ms < 0 && strstr(buf, "first\n"))
            first_ms = h_now_ms() - t0;
        if (have >= sizeof buf - 1)
            break;
    }
    long total_ms = h_now_ms() - t0;
    close(fd);
    cr_assert(strstr(buf, "200 OK") != NULL, "-k %s: response: %s", wc->name, buf);
    cr_assert(first_ms >= 0, "-k %s: no \"first\" line: %s", wc->name, buf);
    cr_expect(first_ms < 1000, "-k %s: \"first\" arrived after %ld ms, not before the 1.5 s wait",
              wc->name, first_ms);
    cr_expect(strstr(buf, "second\n") != NULL, "-k %s: no \"second\" line: %s", wc->name, buf);
    cr_expect(total_ms >= 1400, "-k %s: the whole response took only %ld ms", wc->name, total_ms);
}
