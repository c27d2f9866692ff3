/*
 * test_python.c - Python WSGI apps (module:callable) under narwhal, through
 * a real nginx: the seed's own deployment (a Flask app, `narwhal -c
 * gunicorn.conf app:app`, over FastCGI and uwsgi), PEP 3333 under the
 * standard library's wsgiref validator in every class, Flask and Django
 * (Debian's packages, a project made by django-admin startproject),
 * waiting and timeouts per class, a C library calling back into Python
 * under async, boot failures, --reload, --preload, max_requests recycling.
 * The apps are in tests/apps/py/.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(python, .init = h_setup, .fini = h_teardown, .timeout = 90);

static char *pydir(void)
{
    return h_fmt("%s/tests/apps/py", h_env("NARWHAL_SRCDIR"));
}

/* narwhal with -w 1, the class, the test apps' directory on sys.path, more
 * args and the app; nginx in front over FastCGI. */
#define serve_py(nw, ng, wc, ...)                                                                 \
    serve_tcp(nw, ng, "-w", "1", H_CLASS_ARGS(wc), "--pythonpath", pydir(), __VA_ARGS__)

static void assert_body_has(const h_response *r, const char *needle, const char *log)
{
    cr_assert(r->body && strstr(r->body, needle), "no \"%s\" in the body:\n%s\nnarwhal log:\n%s",
              needle, r->body ? r->body : "(none)", h_tail(log));
}

/* The SHA-256 of data as hex, by coreutils' sha256sum (an independent
 * reckoning of what the app must report). */
static void sha256_hex(const char *data, size_t n, char want[65])
{
    char *path = h_path("sha256.in"), *out = h_path("sha256.out");
    FILE *f = fopen(path, "w");
    cr_assert(f && fwrite(data, 1, n, f) == n && fclose(f) == 0);
    char *argv[] = {"/bin/sh", "-c", h_fmt("sha256sum < %s", path), NULL};
    cr_assert(h_exited_with(h_run(out, argv, NULL, 10000), 0));
    want[0] = 0;
    cr_assert_eq(sscanf(h_read_file(out, NULL), "%64s", want), 1);
}

/* The first request: it waits for the worker to import the app (Flask and
 * Django take seconds under ASan on a loaded machine), so its bound is long;
 * concurrency tests measure only after it. */
static h_response first_get(int port, const char *path, const char *log)
{
    h_response r = h_http(port, "GET", path, NULL, NULL, 0, 60000);
    assert_status(r, 200, log);
    return r;
}

/* ---- PEP 3333 under wsgiref.validate, in every class ------------------------------- */

ParameterizedTestParameters(python, pep3333_validated)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, python, pep3333_validated)
{
    serve_py(nw, ng, wc, "wsgiapps:app");

    first_get(ng.port, "/hello", nw.log);
    h_response r = h_http(ng.port, "GET", "/hello?x=1", "X-Demo: yes\r\n", NULL, 0, 10000);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "REQUEST_METHOD=GET\n", nw.log);
    assert_body_has(&r, "SCRIPT_NAME=\n", nw.log);
    assert_body_has(&r, "PATH_INFO=/hello\n", nw.log);
    assert_body_has(&r, "QUERY_STRING=x=1\n", nw.log);
    assert_body_has(&r, "wsgi.url_scheme=http\n", nw.log);
    assert_body_has(&r, "HTTP_X_DEMO=yes\n", nw.log);
    bool multi = strcmp(wc->name, "sync") != 0;
    assert_body_has(&r, h_fmt("multithread=%s multiprocess=False", multi ? "True" : "False"),
                    nw.log);

    /* a body read with read(1), readline, readlines, iteration and read(n) */
    size_t n = 300000;
    char *data = malloc(n);
    cr_assert(data);
    for (size_t i = 0; i < n; i++)
        data[i] = i % 61 == 60 ? '\n' : (char)('a' + i % 26);
    char want[65];
    sha256_hex(data, n, want);
    r = h_http(ng.port, "POST", "/pieces", "Content-Type: text/plain\r\n", data, n, 20000);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, h_fmt("%zu %s\n", n, want), nw.log);

    r = h_http(ng.port, "POST", "/readbig", "Content-Type: text/plain\r\n", "hello", 5, 10000);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "read 5 bytes, max RSS grew under 64 MiB\n", nw.log);

    r = h_get(ng.port, "/stream");
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n", nw.log);
    cr_assert(h_wait_for_text(nw.log, "close() called on the streaming response", 5000),
              "the response's close() was not called (or its print is not in the log):\n%s",
              h_tail(nw.log));

    r = h_get(ng.port, "/writer");
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "written with write()\nthen returned\n", nw.log);

    r = h_get(ng.port, "/files");
    assert_status(r, 200, nw.log);
    size_t flen = 0;
    char *file = h_read_file(h_fmt("%s/wsgiapps.py", pydir()), &flen);
    cr_assert(r.body_len == flen && memcmp(r.body, file, flen) == 0,
              "file_wrapper sent %zu bytes, the file has %zu", r.body_len, flen);

    r = h_get(ng.port, "/excinfo");
    assert_status(r, 503, nw.log);
    assert_body_has(&r, "replaced by exc_info\n", nw.log);

    r = h_get(ng.port, "/late_excinfo");
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "head is out\nre-raised as PEP 3333 says\n", nw.log);

    r = h_get(ng.port, "/errors");
    assert_status(r, 200, nw.log);
    cr_assert(h_wait_for_text(nw.log, "a line printed to stdout", 5000) &&
                  h_wait_for_text(nw.log, "a line to stderr", 5000) &&
                  h_wait_for_text(nw.log, "a line to wsgi.errors", 5000),
              "stdout, stderr and wsgi.errors lines are not all in the log:\n%s",
              h_tail(nw.log));

    /* nothing the validator said, no traceback */
    const char *log = h_read_file(nw.log, NULL);
    cr_assert(!strstr(log, "WSGIWarning") && !strstr(log, "AssertionError") &&
                  !strstr(log, "Traceback"),
              "the validator or the app complained:\n%s", h_tail(nw.log));
}

/* ---- the seed's deployment: Flask, gunicorn.conf unchanged but for paths -------------- */

/* The seed's gunicorn.conf with its bind, pid file and logs pointed into
 * the test's directory (everything else as written: 4 gevent workers, 2000
 * connections, threads = 2, loglevel warning). */
static char *seed_copy(int port)
{
    char *text = h_read_file(h_fmt("%s/tests/unit/core/data/gunicorn.conf", h_env("NARWHAL_SRCDIR")),
                             NULL);
    cr_assert(text);
    const char *from[] = {"127.0.0.1:5000", "/var/run/gunicorn.pid", "/var/log/gunicorn_acess.log",
                          "/var/log/gunicorn_error.log"};
    const char *to[] = {h_fmt("127.0.0.1:%d", port), h_path("gunicorn.pid"), h_path("access.log"),
                        h_path("error.log")};
    for (int i = 0; i < 4; i++) {
        char *at = strstr(text, from[i]);
        cr_assert(at, "the seed's gunicorn.conf has no %s", from[i]);
        text = h_fmt("%.*s%s%s", (int)(at - text), text, to[i], at + strlen(from[i]));
    }
    char *path = h_path("gunicorn.conf");
    h_write_file(path, text);
    return path;
}

static void seed_deployment(h_snippet snippet)
{
    int port = h_free_port();
    char *conf = seed_copy(port);
    h_copy_file(h_fmt("%s/flaskapp.py", pydir()), h_path("app.py"));
    h_narwhal nw = h_narwhal_spawn("-c", conf, "--chdir", h_dir(), "app:app", NULL);
    nw.port = port;
    char *elog = h_path("error.log");
    if (!h_wait_listen(nw.pid, port, 15000))
        cr_assert_fail("narwhal -c gunicorn.conf app:app does not listen:\n%s\n%s", h_tail(nw.log),
                       h_tail(elog));
    h_nginx ng = h_nginx_start(snippet, h_fmt("127.0.0.1:%d", port));
    h_response r = first_get(ng.port, "/", elog);
    assert_status(r, 200, elog);
    assert_body_has(&r, "Hello from Flask in pid ", elog);
    pid_t kids[8];
    int n = h_wait_children(nw.pid, kids, 8, 4, 15000);
    cr_assert_eq(n, 4, "the seed's workers = 4 gave %d workers:\n%s", n, h_tail(elog));
    /* gevent's 2000 connections: many at once, on waiting views */
    for (int i = 0; i < 8; i++) /* every worker has imported the app */
        first_get(ng.port, "/", elog);
    h_bg_request b[40];
    long ms = h_concurrent_gets(ng.port, "/sleep?s=1", 40, 30000, b);
    for (int i = 0; i < 40; i++)
        assert_status(b[i].r, 200, elog);
    /* 4 workers taking one request at a time would need 10 s; 7 at a time, 6 s */
    cr_assert(ms < 3500, "40 requests that wait 1 s through narwhal.sleep took %ld ms on 4 "
                         "async workers", ms);
    cr_assert(h_wait_for_text(h_path("access.log"), "\"GET / HTTP/1.1\" 200 ", 5000),
              "no access log line:\n%s", h_tail(h_path("access.log")));
    int st = h_stop(nw.pid, SIGTERM, 15000);
    cr_assert(h_exited_with(st, 0), "narwhal %s after TERM:\n%s", h_wstatus_str(st), h_tail(elog));
}

Test(python, seed_deployment_fastcgi)
{
    seed_deployment(H_SNIPPET_TCP);
}

Test(python, seed_deployment_uwsgi)
{
    seed_deployment(H_SNIPPET_UWSGI);
}

/* ---- Flask: forms, JSON, a 10 MB upload, an exception page, per class ---------------- */

ParameterizedTestParameters(python, flask)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, python, flask)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", H_CLASS_ARGS(wc), "--pythonpath", pydir(),
                                   "flaskapp:app", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = first_get(ng.port, "/", nw.log);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "Hello from Flask", nw.log);

    const char *form = "name=narwhal&lang=C%2B%2B";
    r = h_http(ng.port, "POST", "/form", "Content-Type: application/x-www-form-urlencoded\r\n",
               form, strlen(form), 10000);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "name=narwhal lang=C++\n", nw.log);

    const char *json = "{\"items\": [1, 2, 3], \"who\": \"narwhal\"}";
    r = h_http(ng.port, "POST", "/json", "Content-Type: application/json\r\n", json, strlen(json),
               10000);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "\"n\":3", nw.log);

    size_t n = 10 << 20;
    char *data = malloc(n);
    cr_assert(data);
    unsigned int seed = 12345;
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(rand_r(&seed) >> 5);
    char want[65];
    sha256_hex(data, n, want);
    r = h_http(ng.port, "POST", "/upload", "Content-Type: application/octet-stream\r\n", data, n,
               60000);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, h_fmt("%zu %s\n", n, want), nw.log);
    free(data);

    r = h_get(ng.port, "/boom");
    assert_status(r, 500, nw.log);
    cr_assert(h_wait_for_text(nw.log, "ValueError: boom from a Flask view", 5000),
              "the view's exception is not in the log:\n%s", h_tail(nw.log));
    r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
}

/* ---- Django: a project from django-admin startproject, one view ------------------------ */

Test(python, django_project)
{
    char *out = h_path("startproject.out");
    char *argv[] = {"/bin/sh", "-c",
                    h_fmt("cd %s && django-admin startproject mysite", h_dir()), NULL};
    int st = h_run(out, argv, NULL, 30000);
    cr_assert(h_exited_with(st, 0), "django-admin startproject %s:\n%s", h_wstatus_str(st),
              h_tail(out));
    char *urls = h_path("mysite/mysite/urls.py");
    char *text = h_read_file(urls, NULL);
    cr_assert(text);
    h_write_file(urls,
                 h_fmt("%s\n"
                       "from django.http import HttpResponse\n"
                       "from django.views.decorators.csrf import csrf_exempt\n"
                       "@csrf_exempt\n"
                       "def hello(request):\n"
                       "    if request.method == 'POST':\n"
                       "        return HttpResponse('posted %%s\\n' %% request.POST['name'])\n"
                       "    return HttpResponse('Hello from Django, path %%s\\n' %% "
                       "request.path)\n"
                       "def boom(request):\n"
                       "    raise RuntimeError('boom from a Django view')\n"
                       "urlpatterns += [path('hello/', hello), path('boom/', boom)]\n",
                       text));
    /* as its deployment docs say: the project's directory on the path */
    h_narwhal nw = h_narwhal_serve("-w", "2", "-k", "threads", "--threads", "4", "--pythonpath",
                                   h_path("mysite"), "mysite.wsgi:application", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_UWSGI, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = first_get(ng.port, "/hello/", nw.log);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "Hello from Django, path /hello/\n", nw.log);
    const char *form = "name=narwhal";
    r = h_http(ng.port, "POST", "/hello/", "Content-Type: application/x-www-form-urlencoded\r\n",
               form, strlen(form), 10000);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, "posted narwhal\n", nw.log);
    r = h_get(ng.port, "/boom/");
    assert_status(r, 500, nw.log);
    cr_assert(h_wait_for_text(nw.log, "boom from a Django view", 5000),
              "the view's exception is not in the log:\n%s", h_tail(nw.log));
    r = h_get(ng.port, "/missing/");
    assert_status(r, 404, nw.log);
}

/* ---- waiting: each class overlaps what it can ------------------------------------------- */

Test(python, threads_overlap_time_sleep)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", "-k", "threads", "--threads", "8", "--pythonpath",
                                   pydir(), "wsgiapps:sleepy", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_bg_request b[8];
    first_get(ng.port, "/?how=none", nw.log);
    long ms = h_concurrent_gets(ng.port, "/?how=time&s=0.5", 8, 20000, b);
    for (int i = 0; i < 8; i++)
        assert_status(b[i].r, 200, nw.log);
    /* one at a time would be 4 s, two at a time 2 s: the GIL is let go in time.sleep */
    cr_assert(ms < 1800, "8 time.sleep(0.5) on 8 threads of one worker took %ld ms", ms);
}

Test(python, async_overlaps_narwhal_sleep)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", "-k", "async", "--pythonpath", pydir(),
                                   "wsgiapps:sleepy", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_bg_request b[20];
    first_get(ng.port, "/?how=none", nw.log);
    long ms = h_concurrent_gets(ng.port, "/?how=narwhal&s=0.5", 20, 20000, b);
    for (int i = 0; i < 20; i++)
        assert_status(b[i].r, 200, nw.log);
    /* one at a time would be 10 s, four at a time 2.5 s */
    cr_assert(ms < 1800, "20 narwhal.sleep(0.5) on one async worker took %ld ms", ms);
}

/* A C library (libc's qsort through ctypes) calls back into Python, and the
 * callback waits through narwhal: other coroutines run inside it, and each
 * PyGILState_Ensure finds its own coroutine's state (no deadlock). */
Test(python, async_ctypes_callbacks_neither_deadlock_nor_mix)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", "-k", "async", "-t", "20", "--pythonpath",
                                   pydir(), "wsgiapps:ctypes_app", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_bg_request b[6];
    first_get(ng.port, "/", nw.log);
    h_concurrent_gets(ng.port, "/", 6, 20000, b);
    for (int i = 0; i < 6; i++) {
        assert_status(b[i].r, 200, nw.log);
        assert_body_has(&b[i].r, "sorted [1, 2, 3, 4, 5, 6]\n", nw.log);
    }
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
}

/* ---- timeouts: Timeout raised in the handler, its finally runs, the others go on --------- */

ParameterizedTestParameters(python, timeout_raises_in_the_handler)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, python, timeout_raises_in_the_handler)
{
    serve_py(nw, ng, wc, "-t", "2", "wsgiapps:sleepy");
    pid_t kids[2];
    cr_assert_eq(h_wait_children(nw.pid, kids, 2, 1, 10000), 1);

    /* a handler running Python past its deadline (no wait to cut) */
    h_bg_request spin = {.port = ng.port, .path = "/?how=spin"};
    h_bg_start(&spin);
    h_sleep_ms(300);
    if (strcmp(wc->name, "sync") != 0) { /* the others of its worker go on meanwhile */
        h_response r = h_get(ng.port, "/?how=narwhal&s=0.1");
        assert_status(r, 200, nw.log);
    }
    h_bg_join(&spin);
    assert_status(spin.r, 504, nw.log);
    cr_assert(h_wait_for_text(nw.log, "spin's finally ran", 5000),
              "the handler's finally block did not run (or print):\n%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "narwhal.Timeout", 5000), "no narwhal.Timeout logged:\n%s",
              h_tail(nw.log));

    /* a wait cut off at the deadline raises it too */
    h_response r = h_get(ng.port, "/?how=narwhal&s=10");
    assert_status(r, 504, nw.log);

    /* and the worker lives on: the same pid answers */
    r = h_get(ng.port, "/?how=none");
    assert_status(r, 200, nw.log);
    assert_body_has(&r, h_fmt("pid %ld ", (long)kids[0]), nw.log);
    cr_assert(!h_count_text(nw.log, "killing it"), "a worker was killed:\n%s", h_tail(nw.log));
}

/* ---- boot failures, bad specs ------------------------------------------------------------ */

Test(python, import_error_is_a_boot_failure)
{
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", h_free_port()), "--pythonpath",
                                   pydir(), "broken:app", NULL);
    int st;
    cr_assert(h_wait_exit(nw.pid, 30000, &st), "narwhal with an app that cannot import runs on");
    cr_assert(h_exited_with(st, 1), "narwhal %s:\n%s", h_wstatus_str(st), h_tail(nw.log));
    const char *log = h_read_file(nw.log, NULL);
    cr_assert(strstr(log, "cannot load app broken:app: ModuleNotFoundError: No module named "
                          "'this_module_does_not_exist'") &&
                  strstr(log, "Traceback (most recent call last):") &&
                  strstr(log, "broken.py\", line 2"),
              "no clear message and traceback:\n%s", h_tail(nw.log));
}

Test(python, missing_callable_and_bad_specs)
{
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", h_free_port()), "--pythonpath",
                                   pydir(), "wsgiapps:nothing_here", NULL);
    int st;
    cr_assert(h_wait_exit(nw.pid, 30000, &st));
    cr_assert(h_exited_with(st, 1), "narwhal %s:\n%s", h_wstatus_str(st), h_tail(nw.log));
    cr_assert(h_count_text(nw.log, "has no 'nothing_here'"), "no clear message:\n%s",
              h_tail(nw.log));

    char *out = h_path("bad.out");
    char *argv[] = {(char *)h_env("NARWHAL_BIN"), "app:two words", NULL};
    st = h_run(out, argv, NULL, 10000);
    cr_assert(h_exited_with(st, 1), "a bad APP %s", h_wstatus_str(st));
    cr_assert(h_count_text(out, "is neither a shared object") &&
                  h_count_text(out, "module:callable"),
              "the error does not say which forms exist:\n%s", h_tail(out));
}

/* ---- preload: imported once in the master, forked ------------------------------------------ */

Test(python, preload_imports_in_the_master)
{
    h_narwhal nw = h_narwhal_serve("-w", "2", "--preload", "--pythonpath", pydir(),
                                   "flaskapp:app", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = first_get(ng.port, "/", nw.log);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, h_fmt("(imported in %ld)", (long)nw.pid), nw.log);
    for (int i = 0; i < 20; i++)
        assert_status(h_get(ng.port, "/sleep?s=0"), 200, nw.log);
}

/* ---- --reload: the app's module, any module it imports; one that no longer imports keeps the old --- */

static void write_live(const char *mod, const char *helper, const char *version,
                       const char *helper_text)
{
    h_write_file(mod, h_fmt("import livehelper\n"
                            "def app(e, sr):\n"
                            "    sr('200 OK', [('Content-Type', 'text/plain')])\n"
                            "    return [('%s, ' + livehelper.TEXT + '\\n').encode()]\n",
                            version));
    if (helper_text)
        h_write_file(helper, helper_text);
}

static bool wait_body(int port, const char *needle, const char *log)
{
    for (long end = h_now_ms() + 15000; h_now_ms() < end; h_sleep_ms(100)) {
        h_response r = h_get(port, "/");
        assert_status(r, 200, log);
        if (r.body && strstr(r.body, needle))
            return true;
    }
    return false;
}

Test(python, reload_on_module_edit)
{
    char *mod = h_path("live.py"), *helper = h_path("livehelper.py");
    write_live(mod, helper, "version one", "TEXT = 'helper one'\n");
    h_narwhal nw = h_narwhal_serve("-w", "2", "--reload", "--chdir", h_dir(), "live:app", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    first_get(ng.port, "/", nw.log);
    cr_assert(wait_body(ng.port, "version one, helper one", nw.log), "%s", h_tail(nw.log));

    /* the app's own module (the master watches it) */
    h_sleep_ms(1100); /* another mtime */
    write_live(mod, helper, "version two", NULL);
    cr_assert(wait_body(ng.port, "version two, helper one", nw.log),
              "the edit of the app's module was not served:\n%s", h_tail(nw.log));

    /* a module it imports (the workers see it): one reload for both workers */
    h_sleep_ms(1100);
    h_write_file(helper, "TEXT = 'helper two'\n");
    cr_assert(wait_body(ng.port, "version two, helper two", nw.log),
              "the edit of an imported module was not served:\n%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "livehelper.py changed; asking the master", 5000),
              "%s", h_tail(nw.log));

    /* a module that no longer imports: the old workers keep serving */
    h_sleep_ms(1100);
    h_write_file(helper, "TEXT = 'helper three'  +\n");
    cr_assert(h_wait_for_text(nw.log, "SyntaxError", 15000),
              "the broken module's traceback is not logged:\n%s", h_tail(nw.log));
    for (int i = 0; i < 10; i++) {
        h_response r = h_get(ng.port, "/");
        assert_status(r, 200, nw.log);
        assert_body_has(&r, "version two, helper two", nw.log);
        h_sleep_ms(100);
    }
    /* two workers saw each change: each change made one reload */
    int n = h_count_text(nw.log, "reload: a module of the app (worker ");
    cr_assert_eq(n, 2, "%d reloads for two changes of an imported module:\n%s", n,
                 h_tail(nw.log));
}

/* ---- max_requests recycling under load drops nothing --------------------------------------- */

Test(python, max_requests_recycling_under_load)
{
    h_narwhal nw = h_narwhal_serve("-w", "2", "--max-requests", "25", "--pythonpath", pydir(),
                                   "wsgiapps:app", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    first_get(ng.port, "/hello", nw.log);
    int failed = 0, total = 0;
    for (int round = 0; round < 30; round++) {
        h_bg_request b[8];
        h_concurrent_gets(ng.port, "/hello", 8, 20000, b);
        for (int i = 0; i < 8; i++, total++)
            failed += b[i].r.status != 200;
    }
    cr_assert_eq(failed, 0, "%d of %d requests failed while workers recycled:\n%s", failed, total,
                 h_tail(nw.log));
    cr_assert(h_count_text(nw.log, "max_requests") >= 4,
              "workers did not recycle (max_requests 25, %d requests):\n%s", total,
              h_tail(nw.log));
}

/* ---- virtualenv: a venv's packages, without activating it ------------------------------- */

Test(python, virtualenv_packages_without_activation)
{
    char *venv = h_path("venv");
    char *out = h_path("venv.out");
    char *argv[] = {"/usr/bin/python3", "-m", "venv", "--without-pip", venv, NULL};
    int st = h_run(out, argv, NULL, 30000);
    cr_assert(h_exited_with(st, 0), "python3 -m venv %s:\n%s", h_wstatus_str(st), h_tail(out));
    /* a package only the venv has, in its site-packages (lib/python3.X) */
    char *shargv[] = {"/bin/sh", "-c",
                      h_fmt("for d in %s/lib/python3.*/site-packages; do mkdir -p $d/venvonly && "
                            "echo 'WHERE = \"in the venv\"' > $d/venvonly/__init__.py; done",
                            venv),
                      NULL};
    cr_assert(h_exited_with(h_run(out, shargv, NULL, 10000), 0), "%s", h_tail(out));
    h_write_file(h_path("v.py"),
                 "import sys\n"
                 "def app(e, sr):\n"
                 "    import venvonly\n"
                 "    try:\n"
                 "        import flask\n"
                 "        f = 'the system flask'\n"
                 "    except ImportError:\n"
                 "        f = 'no system packages'\n"
                 "    sr('200 OK', [('Content-Type', 'text/plain')])\n"
                 "    return [('%s, %s, prefix %s\\n' % (venvonly.WHERE, f, sys.prefix)).encode()]\n");
    h_narwhal nw = h_narwhal_serve("-w", "1", "--chdir", h_dir(), "--virtualenv", venv, "v:app",
                                   NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = first_get(ng.port, "/", nw.log);
    assert_status(r, 200, nw.log);
    assert_body_has(&r, h_fmt("in the venv, no system packages, prefix %s\n", venv), nw.log);
}

/* ---- a slow import is not a request: `timeout` does not kill a booting worker ---------- */

Test(python, slow_import_outlives_timeout)
{
    h_write_file(h_path("slowimport.py"),
                 "import time\n"
                 "time.sleep(4)  # a large app's imports\n"
                 "def app(e, sr):\n"
                 "    sr('200 OK', [('Content-Type', 'text/plain')])\n"
                 "    return [b'imported at last\\n']\n");
    h_narwhal nw = h_narwhal_serve("-w", "1", "-t", "1", "--chdir", h_dir(), "slowimport:app",
                                   NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = first_get(ng.port, "/", nw.log);
    assert_body_has(&r, "imported at last\n", nw.log);
    cr_assert(!h_count_text(nw.log, "killing it"), "a booting worker was killed:\n%s",
              h_tail(nw.log));
}
