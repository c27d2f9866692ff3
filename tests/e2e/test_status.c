/*
 * test_status.c - the ping and status pages narwhal answers itself
 * (status_path, ping_path), through real nginx: ping answers without the
 * app, the status counters count what the test sent (across a HUP), and the
 * JSON and OpenMetrics formats parse with python3's json module and
 * prometheus_client's OpenMetrics parser.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

TestSuite(status, .init = h_setup, .fini = h_teardown, .timeout = 60);

#define PYTHON "/usr/bin/python3"

/* Runs a python3 script with the file of text as argv[1]; its stdout (and
 * stderr). *ok: it exited 0. */
static char *python(const char *script, const char *text, bool *ok)
{
    static int n;
    if (access(PYTHON, X_OK) != 0)
        cr_skip_test("%s is not installed", PYTHON);
    n++;
    char *in = h_path("py-in-%d", n), *out = h_path("py-out-%d", n);
    h_write_file(in, text);
    char *argv[] = {PYTHON, "-c", (char *)script, in, NULL};
    int st = h_run(out, argv, NULL, 20000);
    *ok = h_exited_with(st, 0);
    char *res = h_read_file(out, NULL);
    return res ? res : "";
}

/* One number from the JSON status page: expr is a python expression on d. */
static long json_number(int port, const char *expr, const char *nwlog)
{
    h_response r = h_get(port, "/status?json");
    assert_status(r, 200, nwlog);
    bool ok;
    char *script = h_fmt("import json, sys\nd = json.load(open(sys.argv[1]))\nprint(%s)", expr);
    char *out = python(script, r.body, &ok);
    cr_assert(ok, "python3 on the JSON page: %s\npage: %s", out, r.body);
    return strtol(out, NULL, 10);
}

/* Polls until the number is want (the counts land once each response has
 * gone out), at most 3 s; returns the last value seen. */
static long wait_number(int port, const char *expr, long want, const char *nwlog)
{
    long deadline = h_now_ms() + 3000, v;
    while ((v = json_number(port, expr, nwlog)) != want && h_now_ms() < deadline)
        h_sleep_ms(50);
    return v;
}

/* A line of the text page: "name:" then the value at column 22. */
static bool has_line(const char *text, const char *name, const char *value)
{
    return strstr(text, h_fmt("\n%s:%*s%s\n", name, 21 - (int)strlen(name), "", value)) != NULL;
}

Test(status, ping_answers_without_the_app)
{
    serve_tcp(nw, ng, "--ping-path", "/ping", "--status-path", "/status", h_testapp("app"));
    h_response r = h_get(ng.port, "/ping");
    assert_status(r, 200, nw.log);
    assert_body(r, "pong\n");
    cr_assert_null(h_header(&r, "X-Pid"), "the app answered the ping:\n%s", r.head);
    char *cc = h_header(&r, "Cache-Control");
    cr_assert(cc && strcmp(cc, "no-cache") == 0, "%s", r.head);
    /* only that path: the app answers the rest */
    r = h_get(ng.port, "/ping/more");
    assert_status(r, 200, nw.log);
    assert_body(r, "testapp\n");
    r = h_get(ng.port, "/ping?x=1");
    assert_body(r, "pong\n");
}

Test(status, ping_response_is_configurable)
{
    serve_tcp(nw, ng, "--ping-path", "/health", "--ping-response", "alive", h_testapp("app"));
    h_response r = h_get(ng.port, "/health");
    assert_status(r, 200, nw.log);
    assert_body(r, "alive\n");
    /* status_path is off */
    r = h_get(ng.port, "/status");
    assert_body(r, "testapp\n");
}

Test(status, counts_what_was_sent_across_a_hup)
{
    char *conf = h_path("narwhal.conf");
    h_write_file(conf, "workers = 2\nstatus_path = \"/status\"\n");
    serve_tcp(nw, ng, "-c", conf, h_testapp("status"));
    /* The status page's own requests are 2xx: count 4xx and 3xx, which
     * only the test's requests make. */
    long c4 = json_number(ng.port, "d['requests_by_status']['4xx']", nw.log);
    long c3 = json_number(ng.port, "d['requests_by_status']['3xx']", nw.log);
    long acc = json_number(ng.port, "d['accepted_conn']", nw.log);
    cr_assert_eq(json_number(ng.port, "d['generation']", nw.log), 0);
    for (int i = 0; i < 7; i++)
        assert_status(h_get(ng.port, "/x?code=404"), 404, nw.log);
    for (int i = 0; i < 5; i++)
        assert_status(h_get(ng.port, "/x?code=302"), 302, nw.log);
    long v = wait_number(ng.port, "d['requests_by_status']['4xx']", c4 + 7, nw.log);
    cr_assert_eq(v, c4 + 7, "4xx went from %ld to %ld after 7", c4, v);
    v = json_number(ng.port, "d['requests_by_status']['3xx']", nw.log);
    cr_assert_eq(v, c3 + 5, "3xx went from %ld to %ld after 5", c3, v);
    v = json_number(ng.port, "d['accepted_conn']", nw.log);
    cr_assert_geq(v, acc + 12, "accepted went from %ld to %ld after 12", acc, v);

    /* HUP: new workers, the same totals */
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done: generation", 10000), "no reload:\n%s",
              h_tail(nw.log));
    for (int i = 0; i < 3; i++)
        assert_status(h_get(ng.port, "/x?code=404"), 404, nw.log);
    v = wait_number(ng.port, "d['requests_by_status']['4xx']", c4 + 10, nw.log);
    cr_assert_eq(v, c4 + 10, "4xx went from %ld to %ld after 10, one HUP between", c4, v);
    cr_assert_eq(json_number(ng.port, "d['generation']", nw.log), 1);
    cr_assert_eq(wait_number(ng.port, "d['total_slots']", 2, nw.log), 2, "two sync workers");

    /* the text page says the same */
    h_response r = h_get(ng.port, "/status");
    assert_status(r, 200, nw.log);
    char *ct = h_header(&r, "Content-Type"), *cc = h_header(&r, "Cache-Control");
    cr_assert(ct && strncmp(ct, "text/plain", 10) == 0, "%s", r.head);
    cr_assert(cc && strcmp(cc, "no-cache") == 0, "%s", r.head);
    cr_assert(has_line(r.body, "requests 4xx", h_fmt("%ld", c4 + 10)), "%s", r.body);
    cr_assert(has_line(r.body, "generation", "1"), "%s", r.body);
}

Test(status, json_full_parses_and_lists_the_slots)
{
    serve_tcp(nw, ng, "-w", "2", "-k", "threads", "--threads", "3", "--status-path", "/status",
              h_testapp("app"));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
    cr_assert_eq(wait_number(ng.port, "d['total_slots']", 6, nw.log), 6, "both workers ready");
    h_response r = h_get(ng.port, "/status?json&full");
    assert_status(r, 200, nw.log);
    char *ct = h_header(&r, "Content-Type");
    cr_assert(ct && strcmp(ct, "application/json") == 0, "%s", r.head);
    bool ok;
    /* 2 workers x 3 threads; this request is the one running; the TCP
     * listener's queue is read (0 waiting, the backlog from listen) */
    char *out =
        python("import json, sys\n"
               "d = json.load(open(sys.argv[1]))\n"
               "s = d['slots']\n"
               "assert len(s) == 6, len(s)\n"
               "run = [x for x in s if x['state'] == 'Running']\n"
               "assert len(run) == 1 and run[0]['request_uri'] == '/status?json&full', run\n"
               "assert d['total_slots'] == 6 and d['active_slots'] == 1, d\n"
               "assert d['listen_queue'] == 0 and d['listen_queue_len'] > 0, d\n"
               "assert d['requests_by_status']['2xx'] >= 1, d\n"
               "print('ok')\n",
               r.body, &ok);
    cr_assert(ok, "%s\npage: %s", out, r.body);
}

Test(status, openmetrics_parses)
{
    serve_tcp(nw, ng, "--status-path", "/status", h_testapp("status"));
    assert_status(h_get(ng.port, "/x?code=404"), 404, nw.log);
    h_response r = h_get(ng.port, "/status?openmetrics&full");
    assert_status(r, 200, nw.log);
    char *ct = h_header(&r, "Content-Type");
    cr_assert(ct && strcmp(ct, "application/openmetrics-text; version=1.0.0; charset=utf-8") == 0,
              "%s", r.head);
    bool ok;
    char *have = python("import prometheus_client.openmetrics.parser", "", &ok);
    if (!ok)
        cr_skip_test("python3 has no prometheus_client (apt-get install "
                     "python3-prometheus-client): the OpenMetrics page is not parsed: %s",
                     have);
    char *out = python(
        "import sys\n"
        "from prometheus_client.openmetrics.parser import text_string_to_metric_families\n"
        "fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}\n"
        "req = fams['narwhal_requests']\n"
        "assert req.type == 'counter', req.type\n"
        "by = {s.labels['status']: s.value for s in req.samples if s.name.endswith('_total')}\n"
        "assert by['4xx'] == 1, by\n"
        "h = fams['narwhal_request_duration_seconds']\n"
        "assert h.type == 'histogram' and h.unit == 'seconds', (h.type, h.unit)\n"
        "for n in ('narwhal_slots', 'narwhal_listen_queue', 'narwhal_slot_requests',\n"
        "          'narwhal_uptime_seconds', 'narwhal_accepted_connections'):\n"
        "    assert n in fams, n\n"
        "print('ok')\n",
        r.body, &ok);
    cr_assert(ok, "%s\npage:\n%s", out, r.body);
}

/* A unix listener's queue comes from sock_diag: nothing waits, and its
 * size is the backlog narwhal asked for. */
Test(status, unix_listener_queue)
{
    char *sock = h_path("nw.sock");
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("unix:%s", sock), "--backlog", "50", "--status-path",
                                   "/status", h_testapp("app"), NULL);
    cr_assert(h_wait_unix(sock, 10000), "narwhal does not listen:\n%s", h_tail(nw.log));
    h_nginx ng = h_nginx_start(H_SNIPPET_UNIX, h_fmt("unix:%s", sock));
    h_response r = h_get(ng.port, "/status");
    assert_status(r, 200, nw.log);
    cr_assert(has_line(r.body, "listen queue", "0"), "%s", r.body);
    cr_assert(has_line(r.body, "listen queue len", "50"), "%s", r.body);
}

/* A connection to the unix socket at path that sends nothing: it waits in
 * the accept queue until the worker takes it. */
static int unix_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect %s", path);
    return fd;
}

/* The only worker blocked in a handler: connections wait in the accept
 * queues, four from nginx on the TCP listener and three on the unix one.
 * Nobody can answer the page then; the master looks at the queues, and the
 * page shows the most that waited, per listener and in all, once the
 * worker is free again (and nothing waits by then). */
Test(status, listen_queue_max_grows_when_every_worker_is_blocked)
{
    char *sock = h_path("nw.sock");
    h_narwhal nw = h_narwhal_serve("-b", h_fmt("unix:%s", sock), "-w", "1", "--status-path",
                                   "/status", h_classapp("napper"), NULL);
    cr_assert(h_wait_unix(sock, 10000), "no unix listener:\n%s", h_tail(nw.log));
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    /* what waited while the worker booted (the harness's own connects, a
     * slow boot under the sanitizers): the block must add to it */
    long t0 = json_number(ng.port, "d['listeners'][0]['max_queue']", nw.log);
    long u0 = json_number(ng.port, "d['listeners'][1]['max_queue']", nw.log);
    h_bg_request block = {.port = ng.port, .path = "/nap?ms=3000"}, b[4];
    h_bg_start(&block);
    h_sleep_ms(500); /* the worker is in the handler: it accepts nothing */
    for (int i = 0; i < 4; i++) {
        b[i] = (h_bg_request){.port = ng.port, .path = "/nap?ms=1"};
        h_bg_start(&b[i]);
    }
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = unix_connect(sock);
    h_bg_join(&block);
    for (int i = 0; i < 4; i++) {
        h_bg_join(&b[i]);
        assert_status(b[i].r, 200, nw.log);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    h_response r = h_get(ng.port, "/status?json");
    assert_status(r, 200, nw.log);
    bool ok;
    char *out = python(h_fmt("import json, sys\n"
                             "d = json.load(open(sys.argv[1]))\n"
                             "by = {l['address']: l for l in d['listeners']}\n"
                             "t, u = by['127.0.0.1:%d'], by['unix:%s']\n"
                             "assert t['max_queue'] >= max(4, %ld + 1), (t, %ld)\n"
                             "assert u['max_queue'] >= max(3, %ld + 1), (u, %ld)\n"
                             "assert d['max_listen_queue'] >= 7, d\n"
                             "assert t['queue'] == 0, t\n"
                             "print('ok')\n",
                             nw.port, sock, t0, t0, u0, u0),
                       r.body, &ok);
    cr_assert(ok, "%s\npage: %s\nnarwhal log:\n%s", out, r.body, h_tail(nw.log));
    r = h_get(ng.port, "/status");
    cr_assert(strstr(r.body, "\nmax listen queue:"), "%s", r.body);
}

/* ---- statsD, as gunicorn sends it ----------------------------------------------------- */

/* A statsD server of the test's own: a UDP socket on 127.0.0.1. */
static int udp_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Appends to all (of size) what arrives on fd within 100 ms. */
static void receive_some(int fd, char *all, size_t size)
{
    size_t n = strlen(all);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (n < size - 1 && poll(&p, 1, 100) > 0) {
        ssize_t k = recv(fd, all + n, size - 1 - n, 0);
        if (k > 0)
            all[n + (size_t)k] = 0;
    }
}

Test(status, statsd_gets_gunicorns_metrics)
{
    int port;
    int fd = udp_listener(&port);
    serve_tcp(nw, ng, "--statsd-host", h_fmt("127.0.0.1:%d", port), "--statsd-prefix", "svc.app.",
              h_testapp("manylogs"));
    for (int i = 0; i < 3; i++)
        assert_status(h_get(ng.port, "/m?n=1"), 200, nw.log);
    /* every request's lines and the master's gauge, flushed once a second */
    static char got[65536];
    for (long end = h_now_ms() + 10000;
         h_now_ms() < end && (h_count_in(got, "svc.app.gunicorn.requests:1|c\n") < 3 ||
                              h_count_in(got, "svc.app.gunicorn.log.warning:1|c\n") < 6 ||
                              !strstr(got, "svc.app.gunicorn.workers:"));)
        receive_some(fd, got, sizeof got);
    close(fd);
    /* one line per request and metric, batched into datagrams */
    cr_assert_eq(h_count_in(got, "svc.app.gunicorn.requests:1|c\n"), 3, "%s", got);
    cr_assert_eq(h_count_in(got, "svc.app.gunicorn.request.status.200:1|c\n"), 3, "%s", got);
    cr_assert_eq(h_count_in(got, "svc.app.gunicorn.request.duration:"), 3, "%s", got);
    cr_assert(strstr(got, "|ms\n"), "%s", got);
    /* each request logs two warnings */
    cr_assert_geq(h_count_in(got, "svc.app.gunicorn.log.warning:1|c\n"), 6, "%s", got);
    /* the master's gauge */
    cr_assert(strstr(got, "svc.app.gunicorn.workers:") && strstr(got, "|g\n"), "%s", got);
}

/* ---- the page for a person (?html), in a real browser ---------------------------------- */

/* Debian's chromium, headless, with the flags this machine's closed network
 * wants; the DOM after the page's scripts ran for budget_ms of virtual time. */
static char *browser_dom(const char *url, long budget_ms)
{
    /* the browser itself: Debian's launcher script only adds flags */
    const char *chromium = "/usr/lib/chromium/chromium";
    if (access(chromium, X_OK) != 0)
        cr_skip_test("%s is not installed (apt-get install chromium)", chromium);
    char *out = h_path("dom.html");
    char *argv[] = {(char *)chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    h_fmt("--user-data-dir=%s", h_path("chromium")),
                    h_fmt("--virtual-time-budget=%ld", budget_ms),
                    "--dump-dom",
                    (char *)url,
                    NULL};
    pid_t pid = h_spawn(out, argv, NULL);
    int st;
    cr_assert(h_wait_exit(pid, 60000, &st), "chromium still runs after 60 s");
    char *dom = h_read_file(out, NULL);
    cr_assert(dom && strstr(dom, "</html>"), "chromium gave no page (%s):\n%s", h_wstatus_str(st),
              dom ? dom : "");
    return dom;
}

/* data-NAME="N" in text: N, or -1. */
static long data_attr(const char *text, const char *name)
{
    const char *p = strstr(text, h_fmt("data-%s=\"", name));
    return p ? strtol(p + strlen(name) + 7, NULL, 10) : -1;
}

Test(status, html_page_draws_in_a_real_browser, .timeout = 120)
{
    h_narwhal nw = h_narwhal_serve("-w", "2", "-k", "threads", "--threads", "4", "--status-path",
                                   "/status", "-t", "120", h_testapp("slow"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    /* a server at work: three requests that take their time, longer than a
     * cold Chromium on a loaded machine takes to start (15 s was not);
     * the quick stop below ends them */
    h_bg_request b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = (h_bg_request){.port = ng.port, .path = "/slow?ms=60000", .timeout_ms = 90000};
        h_bg_start(&b[i]);
    }
    /* running before the browser starts (a cold Chromium takes a while);
     * the status request itself is the fourth */
    long running = 0;
    for (long end = h_now_ms() + 10000; running < 4 && h_now_ms() < end; h_sleep_ms(100))
        running = json_number(ng.port, "d['active_slots']", nw.log);
    cr_assert_geq(running, 4, "the slow requests are not running:\n%s", h_tail(nw.log));
    char *dom = browser_dom(h_fmt("http://127.0.0.1:%d/status?html", ng.port), 5000);
    /* the page polled ?json&full and drew what it read */
    cr_assert_geq(data_attr(dom, "polls"), 2, "%.3000s", dom);
    cr_assert_geq(data_attr(dom, "points"), 2, "the chart drew no points:\n%.3000s", dom);
    cr_assert(strstr(dom, "<tr class=\"slot Running\">"), "no running slot in the table:\n%.3000s",
              dom);
    cr_assert(strstr(dom, "/slow?ms=60000"), "the running requests' URI is not shown:\n%.3000s",
              dom);
    cr_assert(strstr(dom, "id=\"n-requests\""), "no summary:\n%.3000s", dom);
    cr_assert(strstr(dom, "<p id=\"err\"></p>"), "the page could not read ?json:\n%.3000s", dom);
    h_stop(nw.pid, SIGQUIT, 10000); /* the slow requests end with their workers */
    for (int i = 0; i < 3; i++)
        h_bg_join(&b[i]);
}

/* ---- a real Prometheus scrapes the page ---------------------------------------------- */

Test(status, prometheus_scrapes_through_nginx, .timeout = 120)
{
    const char *prometheus = "/usr/bin/prometheus";
    if (access(prometheus, X_OK) != 0)
        cr_skip_test("%s is not installed (apt-get install prometheus)", prometheus);
    serve_tcp(nw, ng, "-w", "2", "--status-path", "/status", h_testapp("status"));
    for (int i = 0; i < 4; i++)
        assert_status(h_get(ng.port, "/x?code=404"), 404, nw.log);
    /* Prometheus on a loopback port of the test's own, scraping ?openmetrics
     * through nginx every second */
    int pport = h_free_port();
    char *conf = h_path("prometheus.yml");
    h_write_file(conf, h_fmt("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                             "scrape_configs:\n"
                             "  - job_name: narwhal\n"
                             "    metrics_path: /status\n"
                             "    params: {openmetrics: ['1']}\n"
                             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n",
                             ng.port));
    char *argv[] = {(char *)prometheus, h_fmt("--config.file=%s", conf),
                    h_fmt("--web.listen-address=127.0.0.1:%d", pport),
                    h_fmt("--storage.tsdb.path=%s", h_path("prometheus-data")), NULL};
    h_spawn(h_path("prometheus.log"), argv, NULL);
    /* its HTTP API answers the series once a scrape has been stored */
    const char *query = "/api/v1/query?query=narwhal_requests_total%7Bstatus%3D%224xx%22%7D";
    h_response r = {0};
    for (long end = h_now_ms() + 30000; h_now_ms() < end; h_sleep_ms(500)) {
        r = h_get(pport, query);
        if (r.status == 200 && r.body && strstr(r.body, "\"value\""))
            break;
    }
    cr_assert(r.status == 200 && r.body && strstr(r.body, "\"value\""),
              "Prometheus has no narwhal series after 30 s: %s\n%s", r.body ? r.body : "",
              h_tail(h_path("prometheus.log")));
    cr_assert(strstr(r.body, "\"job\":\"narwhal\"") && strstr(r.body, "\"4\"]"),
              "4xx should be 4: %s", r.body);
}

/* Under async many requests share one request slot, and every one of them
 * counts: running, and then served. */
Test(status, async_requests_are_counted)
{
    serve_tcp(nw, ng, "-w", "1", "-k", "async", "--status-path", "/status", h_testapp("slow"));
    h_bg_request b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = (h_bg_request){.port = ng.port, .path = "/slow?ms=3000&status=404"};
        h_bg_start(&b[i]);
    }
    /* the status request itself runs too */
    long active = wait_number(ng.port, "d['active_slots']", 4, nw.log);
    cr_assert_eq(active, 4, "3 sleeping requests and this one: %ld", active);
    cr_assert_geq(json_number(ng.port, "d['max_active_slots']", nw.log), 4);
    for (int i = 0; i < 3; i++) {
        h_bg_join(&b[i]);
        assert_status(b[i].r, 404, nw.log);
    }
    /* 4xx: the status page's own requests are 2xx and would count too */
    long done = json_number(ng.port, "d['requests_by_status']['4xx']", nw.log);
    cr_assert_eq(done, 3, "the 3 served requests: %ld", done);
}
