/*
 * test_pm.c - the process manager and the workers' limits: dynamic grows
 * under a load that rises and falls and shrinks when it falls, ondemand
 * starts with no worker and returns to none, a leaking app's workers are
 * replaced at max_worker_memory, the hard memory limit fails an
 * allocation, rlimits reach the workers, and HUP, TTIN and TTOU under
 * dynamic. Every load runs through real nginx with wrk, and wrk must see
 * no non-2xx response and no socket error: retiring a worker drops nothing.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(pm, .init = h_setup, .fini = h_teardown, .timeout = 90);

/* ---- helpers -------------------------------------------------------------------------- */

static int nchildren(pid_t master)
{
    pid_t pids[64];
    return h_children(master, pids, 64);
}

/* Polls until the master's children number between lo and hi, at most
 * timeout_ms; asserts. */
static int wait_between(const h_narwhal *nw, int lo, int hi, long timeout_ms, const char *when)
{
    long deadline = h_now_ms() + timeout_ms;
    int n;
    while (((n = nchildren(nw->pid)) < lo || n > hi) && h_now_ms() < deadline)
        h_sleep_ms(50);
    cr_assert(n >= lo && n <= hi, "%s: %d workers, not %d to %d, after %ld ms:\n%s", when, n, lo,
              hi, timeout_ms, h_tail(nw->log));
    return n;
}

/* A number of the status page's JSON: "name":N. */
static long status_number(int port, const char *name, const char *nwlog)
{
    h_response r = h_get(port, "/narwhal-status?json");
    assert_status(r, 200, nwlog);
    char *p = strstr(r.body, h_fmt("\"%s\":", name));
    cr_assert(p, "no %s in the status page: %s", name, r.body);
    return strtol(p + strlen(name) + 3, NULL, 10);
}

/* ---- dynamic ---------------------------------------------------------------------------- */

/* nginx without and with upstream keep-alive: a kept connection to a
 * worker being retired is the classic way to lose a request. */
ParameterizedTestParameters(pm, dynamic_follows_a_rising_and_falling_load)
{
    static h_snippet snippets[] = {H_SNIPPET_TCP, H_SNIPPET_KEEPALIVE};
    return cr_make_param_array(h_snippet, snippets, 2);
}

ParameterizedTest(h_snippet *snippet, pm, dynamic_follows_a_rising_and_falling_load,
                  .timeout = 90)
{
    h_narwhal nw = h_narwhal_serve("-w", "5", "--process-manager", "dynamic", "--min-spare-workers",
                                   "1", "--max-spare-workers", "2", "--start-workers", "2",
                                   "--status-path", "/narwhal-status", h_example("sleep.so"), NULL);
    h_nginx ng = h_nginx_start(*snippet, h_fmt("127.0.0.1:%d", nw.port));
    wait_between(&nw, 2, 2, 10000, "at start (start_workers)");

    /* a light load all along, so workers are retired while requests run */
    h_load light = h_load_start(ng.port, "/?ms=5", 14, 1);
    for (int cycle = 1; cycle <= 2; cycle++) {
        /* rising: 16 requests of 100 ms at once want more than 5 workers */
        h_load burst = h_load_start(ng.port, "/?ms=100", 3, 16);
        /* 5: workers; one more while a retired one finishes its kept
         * connections */
        wait_between(&nw, 5, 6, 5000, "under the burst (workers)");
        h_load_finish(&burst, nw.log);
        /* falling: idle workers retired, one a second, down to what the
         * light load and max_spare_workers keep */
        wait_between(&nw, 1, 3, 8000, "after the burst");
        cr_assert(h_count_text(nw.log, "process_manager dynamic: retiring worker") >= 2 * cycle,
                  "cycle %d: too few workers retired:\n%s", cycle, h_tail(nw.log));
    }
    h_load_finish(&light, nw.log);
    /* idle: max_spare_workers */
    wait_between(&nw, 2, 2, 8000, "idle");

    /* the burst found every worker busy at `workers`: said once per
     * episode, naming the setting */
    int warned = h_count_text(nw.log, "all 5 workers are busy (max children reached); raise "
                                      "`workers`");
    cr_assert(warned >= 1 && warned <= 2, "%d warnings for 2 bursts:\n%s", warned, h_tail(nw.log));
    cr_expect_eq(status_number(ng.port, "max_workers_reached", nw.log), warned);
    cr_expect_geq(status_number(ng.port, "workers_retired_idle", nw.log), 4);
    cr_expect_eq(status_number(ng.port, "max_workers", nw.log), 5);
    h_response r = h_get(ng.port, "/narwhal-status?json");
    cr_expect(strstr(r.body, "\"process_manager\":\"dynamic\""), "%s", r.body);
    /* a retired worker stops gracefully: it is never killed */
    cr_expect_eq(h_count_text(nw.log, "killed"), 0, "%s", h_tail(nw.log));
    if (*snippet == H_SNIPPET_KEEPALIVE)
        cr_expect_eq(h_count_text(ng.error_log, "[error]"), 0, "nginx logged errors:\n%s",
                     h_tail(ng.error_log));
}

/* Under threads, spare is counted in idle threads: four requests on two
 * workers of four threads leave four threads idle, a whole worker's worth,
 * so no third worker is spawned, however the requests spread (counted as
 * "workers running nothing", two workers with a request each would have
 * none spare and get a third). */
Test(pm, dynamic_counts_spare_threads, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "3", "-k", "threads", "--threads", "4", "--process-manager",
              "dynamic", "--min-spare-workers", "1", "--max-spare-workers", "2", "--start-workers",
              "2", h_example("sleep.so"));
    wait_between(&nw, 2, 2, 10000, "at start");
    h_bg_request b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (h_bg_request){.port = ng.port, .path = "/?ms=2500"};
        h_bg_start(&b[i]);
        h_sleep_ms(100);
    }
    long until = h_now_ms() + 2000;
    while (h_now_ms() < until) {
        cr_assert_leq(nchildren(nw.pid), 2, "a third worker with 4 threads idle:\n%s",
                      h_tail(nw.log));
        h_sleep_ms(50);
    }
    for (int i = 0; i < 4; i++) {
        h_bg_join(&b[i]);
        assert_status(b[i].r, 200, nw.log);
    }
    cr_expect_eq(h_count_text(nw.log, "spawning"), 0, "%s", h_tail(nw.log));
}

/* HUP under dynamic starts as many new workers as run (within the new
 * bounds) and drops nothing; TTIN/TTOU move `workers`, the most it runs,
 * and a TTOU below the running count retires the idle ones. */
Test(pm, dynamic_reload_ttin_ttou, .timeout = 60)
{
    char *conf = h_path("narwhal.conf");
    h_write_file(conf, "workers = 4\nprocess_manager = 'dynamic'\nmin_spare_workers = 1\n"
                       "max_spare_workers = 3\nstart_workers = 3\n");
    serve_tcp(nw, ng, "-c", conf, "--status-path", "/narwhal-status", h_example("sleep.so"));
    wait_between(&nw, 3, 3, 10000, "at start");
    h_load l = h_load_start(ng.port, "/?ms=10", 5, 1);
    h_sleep_ms(1000);
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done: generation 1", 10000), "no reload:\n%s",
              h_tail(nw.log));
    cr_expect(h_find_line(nw.log, (const char *const[]){"SIGHUP: starting 3 new workers", NULL}),
              "the new generation is not the size of the old one:\n%s", h_tail(nw.log));
    h_load_finish(&l, nw.log);

    cr_assert(kill(nw.pid, SIGTTIN) == 0);
    cr_assert(h_wait_for_text(nw.log, "SIGTTIN: workers = 5, the most process_manager dynamic runs",
                              5000),
              "%s", h_tail(nw.log));
    cr_expect_eq(status_number(ng.port, "max_workers", nw.log), 5);
    /* three TTOU, one at a time (identical signals may merge): workers = 2 */
    for (int i = 4; i >= 2; i--) {
        cr_assert(kill(nw.pid, SIGTTOU) == 0);
        cr_assert(h_wait_for_text(nw.log, h_fmt("SIGTTOU: workers = %d,", i), 5000), "%s",
                  h_tail(nw.log));
    }
    wait_between(&nw, 2, 2, 8000, "after TTOU to 2");
    assert_status(h_get(ng.port, "/?ms=1"), 200, nw.log);
}

/* ---- ondemand -------------------------------------------------------------------------- */

Test(pm, ondemand_starts_with_none_and_returns_to_none, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "3", "--process-manager", "ondemand", "--worker-idle-timeout", "1",
              h_example("sleep.so"));
    h_sleep_ms(500);
    cr_assert_eq(nchildren(nw.pid), 0, "ondemand started a worker with nothing to do:\n%s",
                 h_tail(nw.log));

    /* the first request waits for a worker to be spawned and boot */
    h_response r = h_get(ng.port, "/?ms=0");
    assert_status(r, 200, nw.log);
    cr_log_info("ondemand: first request answered in %ld ms (cold)", r.elapsed_ms);
    wait_between(&nw, 1, 1, 2000, "after one request");
    wait_between(&nw, 0, 0, 5000, "worker_idle_timeout after one request");

    /* a burst grows it to `workers`, nothing lost */
    h_load l = h_load_start(ng.port, "/?ms=50", 4, 6);
    wait_between(&nw, 3, 3, 5000, "under the burst");
    h_load_finish(&l, nw.log);
    cr_expect_eq(h_count_text(nw.log, "all 3 workers are busy (max children reached)"), 1, "%s",
                 h_tail(nw.log));
    wait_between(&nw, 0, 0, 6000, "idle again");
    r = h_get(ng.port, "/?ms=0");
    assert_status(r, 200, nw.log);
    cr_log_info("ondemand: cold request after returning to none: %ld ms", r.elapsed_ms);
}

/* ---- memory ----------------------------------------------------------------------------- */

/* examples/leak keeps 256 KiB per request. Under max_worker_memory its
 * workers are replaced once past it (after their request, never during),
 * and no worker's RSS goes far past the limit. The limit is set from a
 * worker's own RSS (sanitizer builds start far bigger) with a HUP. */
Test(pm, leaking_workers_are_replaced_and_nothing_is_dropped, .timeout = 60)
{
    char *conf = h_path("narwhal.conf");
    h_write_file(conf, "workers = 2\n");
    serve_tcp(nw, ng, "-c", conf, "--status-path", "/narwhal-status", h_example("leak.so"));
    assert_status(h_get(ng.port, "/?kib=1"), 200, nw.log);
    pid_t pids[8];
    cr_assert_eq(h_wait_children(nw.pid, pids, 8, 2, 5000), 2);
    long base = h_rss_kib(pids[0]) > h_rss_kib(pids[1]) ? h_rss_kib(pids[0]) : h_rss_kib(pids[1]);
    long limit_mib = base / 1024 + 24;
    h_write_file(conf, h_fmt("workers = 2\nmax_worker_memory = %ld\n", limit_mib));
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done", 10000), "%s", h_tail(nw.log));

    h_load l = h_load_start(ng.port, "/?kib=256", 4, 4);
    long most = 0, deadline = h_now_ms() + 4000;
    while (h_now_ms() < deadline) {
        int n = h_children(nw.pid, pids, 8);
        for (int i = 0; i < n && i < 8; i++) {
            long kib = h_rss_kib(pids[i]);
            most = kib > most ? kib : most;
        }
        h_sleep_ms(20);
    }
    long requests = h_load_finish(&l, nw.log);
    int replaced = h_count_text(nw.log, "is over max_worker_memory");
    cr_log_info("max_worker_memory %ld MiB: %ld requests, %d workers replaced, most RSS seen %ld "
                "KiB",
                limit_mib, requests, replaced, most);
    cr_assert_geq(replaced, 2, "%ld requests of 256 KiB replaced %d workers:\n%s", requests,
                  replaced, h_tail(nw.log));
    /* a request's 256 KiB past the limit, and the time a look takes */
    cr_assert_leq(most, limit_mib * 1024 + 4096, "a worker reached %ld KiB over a %ld MiB limit",
                  most, limit_mib);
    cr_expect_geq(status_number(ng.port, "workers_over_memory", nw.log), replaced);
    cr_expect_eq(h_count_text(nw.log, "killed"), 0, "%s", h_tail(nw.log));
}

/* worker_memory_hard_limit: the allocation fails inside the handler, which
 * answers; the worker lives on. */
Test(pm, hard_memory_limit_fails_the_allocation_not_the_worker)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer reserves terabytes of address space: RLIMIT_AS cannot be set");
#endif
    serve_tcp(nw, ng, "-w", "1", "--worker-memory-hard-limit", "256", h_example("leak.so"));
    h_response r = h_get(ng.port, "/?mib=16");
    assert_status(r, 200, nw.log);
    char *pid = strstr(r.body, " in ");
    cr_assert(pid, "%s", r.body);
    r = h_get(ng.port, "/?mib=512");
    assert_status(r, 503, nw.log);
    assert_body(r, "cannot allocate 512 MiB\n");
    r = h_get(ng.port, "/?mib=16");
    assert_status(r, 200, nw.log);
    cr_expect(strstr(r.body, pid), "another worker answered: %s, before%s", r.body, pid);
}

/* ---- resource limits ----------------------------------------------------------------- */

Test(pm, rlimits_reach_the_workers)
{
    serve_tcp(nw, ng, "-w", "1", "--rlimit-nofile", "256", "--rlimit-core", "0",
              "--worker-memory-hard-limit",
#if defined(__SANITIZE_ADDRESS__)
              "0",
#else
              "4096",
#endif
              h_testapp("rlimits"));
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    cr_expect(strstr(r.body, "nofile=256/"), "%s", r.body);
    cr_expect(strstr(r.body, "core=0/"), "%s", r.body);
#if !defined(__SANITIZE_ADDRESS__)
    cr_expect(strstr(r.body, "as=4294967296/4294967296 "), "%s", r.body);
#endif
    /* 1000 connections do not fit in 256 files: said at start */
    cr_expect(h_find_line(nw.log, (const char *const[]){"worker_connections = 1000 does not fit",
                                                         "rlimit_nofile", NULL}),
              "%s", h_tail(nw.log));
}
