/*
 * test_slowlog.c - where a slow or stuck handler is, through real nginx:
 * the slowlog (slowlog_timeout, slowlog) names the function a handler
 * spins in, once per request, under every worker class, and the request
 * goes on to its answer; a worker killed for `timeout` has the same stack
 * in the error log; under async a waiting coroutine's stack comes from
 * the worker; a master that may not trace says what it needs.
 * The handlers are tests/apps/classapp.c's spinner (spin_forever) and
 * napper (nap_in_coroutine).
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(slowlog, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* The text after the last "running for" in text (the last entry). */
static int entries(const char *text)
{
    return h_count_in(text, " running for ");
}

ParameterizedTestParameters(slowlog, names_the_spinning_function)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

/* A handler spins for 2.5 s past a 1 s slowlog_timeout: one entry, with
 * the request, the worker and the frames of spin_forever and its caller,
 * file:line from the app's debug info; the request still gets its answer. */
ParameterizedTest(h_wclass *wc, slowlog, names_the_spinning_function)
{
    char *slow = h_path("slow.log");
    serve_tcp(nw, ng, H_CLASS_ARGS(wc), "-w", "1", "--slowlog-timeout", "1", "--slowlog", slow,
              h_classapp("spinner"));
    h_response r = h_http(ng.port, "GET", "/spin?ms=2500", NULL, NULL, 0, 20000);
    assert_status(r, 200, nw.log);
    assert_body(r, "spun 2500 ms (2500 turns)\n");
    /* the entry is written once the thread goes on: maybe after the answer */
    h_wait_for_text(slow, " running for ", 5000);
    char *text = h_read_file(slow, NULL);
    cr_assert(text && strstr(text, "GET /spin?ms=2500 running for "),
              "-k %s: no slowlog entry for the request:\n%s\nnarwhal log:\n%s", wc->name,
              text ? text : "(no slowlog file)", h_tail(nw.log));
    cr_assert(strstr(text, " spin_forever at ") && strstr(text, "classapp.c:"),
              "-k %s: the stack does not name spin_forever with its line:\n%s", wc->name, text);
    cr_assert(strstr(text, " spinner at "), "-k %s: no caller frame:\n%s", wc->name, text);
    cr_assert_eq(entries(text), 1, "-k %s: once per request:\n%s", wc->name, text);
    pid_t w[2];
    cr_assert_eq(h_children(nw.pid, w, 2), 1);
    cr_assert(strstr(text, h_fmt("worker %d slot ", (int)w[0])), "-k %s: worker %d?\n%s", wc->name,
              (int)w[0], text);
    /* the right thread: a pool thread, the coroutine on the loop thread */
    if (strcmp(wc->name, "threads") == 0)
        cr_assert(strstr(text, " pool_thread_main at ") &&
                      !strstr(text, h_fmt("thread %d:", (int)w[0])),
                  "not the pool thread's stack:\n%s", text);
    if (strcmp(wc->name, "async") == 0)
        cr_assert(strstr(text, "(the coroutine holding the loop)") &&
                      strstr(text, " trampoline at "),
                  "not the coroutine's stack:\n%s", text);
    /* the worker lives on and serves */
    assert_status(h_get(ng.port, "/spin?ms=1"), 200, nw.log);
    cr_assert_eq(h_children(nw.pid, w, 2), 1, "the traced worker is gone:\n%s", h_tail(nw.log));
}

ParameterizedTestParameters(slowlog, timeout_kill_logs_the_stack)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

/* A handler that spins for ever past `timeout`: the master kills its
 * worker, and the error log has where it was first. */
ParameterizedTest(h_wclass *wc, slowlog, timeout_kill_logs_the_stack)
{
    serve_tcp(nw, ng, H_CLASS_ARGS(wc), "-w", "1", "-t", "1", h_classapp("spinner"));
    pid_t w[2];
    cr_assert_eq(h_wait_children(nw.pid, w, 2, 1, 10000), 1);
    h_response r = h_http(ng.port, "GET", "/spin", NULL, NULL, 0, 20000);
    cr_assert(r.status == 502 || r.status == 504, "-k %s: got %d (%s)\n%s", wc->name, r.status,
              r.error ? r.error : "", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "killed (", 5000), "no kill:\n%s", h_tail(nw.log));
    const char *where[] = {h_fmt("worker %d thread ", (int)w[0]), "was at: ", " spin_forever at ",
                           NULL};
    cr_assert(h_find_line(nw.log, where), "-k %s: the kill does not say where it was:\n%s",
              wc->name, h_tail(nw.log));
    /* the stack comes before the kill */
    char *log = h_read_file(nw.log, NULL);
    char *stack = strstr(log, " spin_forever at "), *kill = strstr(log, "killed (");
    cr_assert(stack && kill && stack < kill, "the stack after the kill:\n%s", h_tail(nw.log));
}

/* Under async a request whose coroutine waits (nw_sleep) past
 * slowlog_timeout is logged by the worker from the context the coroutine
 * saved: its frames up to the handler, the loop untouched. */
Test(slowlog, async_waiting_coroutine)
{
    char *slow = h_path("slow.log");
    serve_tcp(nw, ng, "-k", "async", "-w", "1", "--slowlog-timeout", "1", "--slowlog", slow,
              h_classapp("napper"));
    h_bg_request b = {.port = ng.port, .path = "/nap?ms=2500"};
    h_bg_start(&b);
    /* the loop is free: other requests are served meanwhile */
    h_sleep_ms(300);
    assert_status(h_get(ng.port, "/nap?ms=1"), 200, nw.log);
    h_bg_join(&b);
    assert_status(b.r, 200, nw.log);
    h_wait_for_text(slow, " running for ", 5000);
    char *text = h_read_file(slow, NULL);
    cr_assert(text && strstr(text, "coroutine (waiting): GET /nap?ms=2500 running for "),
              "no entry for the waiting request:\n%s\nnarwhal log:\n%s",
              text ? text : "(no slowlog file)", h_tail(nw.log));
    cr_assert(strstr(text, " nap_in_coroutine at ") && strstr(text, " napper at ") &&
                  strstr(text, " nw_sleep at "),
              "the coroutine's frames are not there:\n%s", text);
    cr_assert_eq(entries(text), 1, "once per request:\n%s", text);
}

/* Without CAP_SYS_PTRACE (dropped from the bounding set, as a container
 * does) a master cannot trace workers that run as another user: the entry
 * and the error log say what it needs, and the request is served. */
Test(slowlog, refused_ptrace_says_what_it_needs)
{
    const char *setpriv = "/usr/bin/setpriv";
    if (geteuid() != 0)
        cr_skip_test("needs root (user = nobody)");
    if (access(setpriv, X_OK) != 0)
        cr_skip_test("%s is not installed (util-linux)", setpriv);
    char *slow = h_path("slow.log"), *log = h_path("nw.log");
    int port = h_free_port();
    char *argv[] = {(char *)setpriv,
                    "--bounding-set",
                    "-sys_ptrace",
                    (char *)h_env("NARWHAL_BIN"),
                    "-b",
                    h_fmt("127.0.0.1:%d", port),
                    "-w",
                    "1",
                    "--user",
                    "nobody",
                    "--slowlog-timeout",
                    "1",
                    "--slowlog",
                    slow,
                    h_classapp("spinner"),
                    NULL};
    pid_t pid = h_spawn(log, argv, NULL);
    cr_assert(h_wait_listen(pid, port, 10000), "narwhal does not listen:\n%s", h_tail(log));
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", port));
    h_response r = h_http(ng.port, "GET", "/spin?ms=2500", NULL, NULL, 0, 20000);
    assert_status(r, 200, log);
    h_wait_for_text(slow, " running for ", 5000);
    char *text = h_read_file(slow, NULL);
    cr_assert(text && strstr(text, "GET /spin?ms=2500 running for ") &&
                  strstr(text, "(no stack: ptrace refused: the master lacks CAP_SYS_PTRACE") &&
                  strstr(text, "--cap-add SYS_PTRACE"),
              "the entry does not say what is needed:\n%s\nnarwhal log:\n%s",
              text ? text : "(no slowlog file)", h_tail(log));
    cr_assert(!strstr(text, "Operation not permitted"), "%s", text);
    const char *warn[] = {"[WARNING] cannot read the stacks of slow requests", "CAP_SYS_PTRACE",
                          NULL};
    cr_assert(h_find_line(log, warn), "the error log does not say it:\n%s", h_tail(log));
}

/* A language host's tracer (nw_set_trace_hook; classapp's with
 * CLASSAPP_TRACE_HOOK set): after the C stack, its lines go to the
 * slowlog, and to the error log before the timeout kill. */
Test(slowlog, language_hook_follows_the_c_stack)
{
    char *slow = h_path("slow.log");
    serve_tcp(nw, ng, "-w", "1", "-t", "1", "--slowlog-timeout", "1", "--slowlog", slow, "-e",
              "CLASSAPP_TRACE_HOOK=1", h_classapp("spinner"));
    h_response r = h_http(ng.port, "GET", "/spin", NULL, NULL, 0, 20000);
    cr_assert(r.status == 502 || r.status == 504, "got %d (%s)\n%s", r.status,
              r.error ? r.error : "", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "killed (", 5000), "no kill:\n%s", h_tail(nw.log));
    char *text = h_read_file(slow, NULL);
    const char *hook = "classapp trace hook: language-level frames here\n";
    cr_assert(text && strstr(text, " spin_forever at ") && strstr(text, hook) &&
                  strstr(text, " spin_forever at ") < strstr(text, hook),
              "the slowlog has no hook lines after the stack:\n%s", text ? text : "(none)");
    /* before the kill: the stack, the hook's line, then the kill */
    char *log = h_read_file(nw.log, NULL);
    char *stack = strstr(log, "was at: "), *line = stack ? strstr(stack, hook) : NULL;
    char *kill = line ? strstr(line, "killed (") : NULL;
    cr_assert(stack && line && kill, "the error log has no hook line between stack and kill:\n%s",
              h_tail(nw.log));
}

ParameterizedTestParameters(slowlog, python_view_in_time_sleep)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

/* A Python view stuck in time.sleep (tests/apps/py/wsgiapps.py's sleepy):
 * the entry has the C stack and then the Python frames, the view's among
 * them, from the Python host's trace hook. */
ParameterizedTest(h_wclass *wc, slowlog, python_view_in_time_sleep)
{
    char *host = h_fmt("%s/src/python/python.so", h_env("NARWHAL_BUILDDIR"));
    if (!h_exists(host))
        cr_skip_test("no Python host (%s): built --without-python", host);
    char *slow = h_path("slow.log");
    serve_tcp(nw, ng, H_CLASS_ARGS(wc), "-w", "1", "--slowlog-timeout", "1", "--slowlog", slow,
              "--pythonpath", h_fmt("%s/tests/apps/py", h_env("NARWHAL_SRCDIR")),
              "wsgiapps:sleepy");
    h_response r = h_http(ng.port, "GET", "/?how=time&s=2.5", NULL, NULL, 0, 20000);
    assert_status(r, 200, nw.log);
    /* the Python frames come from the worker, after the master's entry */
    h_wait_for_text(slow, "wsgiapps.py", 5000);
    char *text = h_read_file(slow, NULL);
    cr_assert(text && strstr(text, "GET /?how=time&s=2.5 running for "),
              "-k %s: no entry:\n%s\nnarwhal log:\n%s", wc->name, text ? text : "(none)",
              h_tail(nw.log));
    cr_assert(strstr(text, "wsgiapps.py\", line ") && strstr(text, " in _sleepy\n"),
              "-k %s: no Python frame of the view:\n%s\nnarwhal log:\n%s", wc->name, text,
              h_tail(nw.log));
    cr_assert(strstr(text, " running for ") < strstr(text, " in _sleepy\n"),
              "the Python frames before the entry:\n%s", text);
}
