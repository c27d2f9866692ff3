/* Unit tests for src/core/settings*.c: defaults, every converter's errors, the
 * config file (with libconfuse), precedence, --print-config round trip. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "narwhal.h"
#include "settings.h"

/* ---- helpers ------------------------------------------------------------------ */

static char tmpdir[64];
static int nfiles;

static void setup(void)
{
    unsetenv("WEB_CONCURRENCY");
    strcpy(tmpdir, "/tmp/nw-settings-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    nfiles = 0;
}

static void teardown(void)
{
    char path[128];
    for (int i = 0; i < nfiles; i++) {
        snprintf(path, sizeof path, "%s/%d.conf", tmpdir, i);
        unlink(path);
    }
    rmdir(tmpdir);
}

TestSuite(settings, .init = setup, .fini = teardown);

/* Writes text to a new file in the test's temp dir; returns its path (static
 * storage, one per call up to 8). */
static const char *conf(const char *text)
{
    static char paths[8][128];
    char *p = paths[nfiles % 8];
    snprintf(p, 128, "%s/%d.conf", tmpdir, nfiles);
    nfiles++;
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

struct run {
    int rc;
    char *out, *err;
    size_t outlen, errlen;
    nw_settings s;
};

/* Runs settings_load with env_args and the NULL-terminated argv after
 * "narwhal"; captures out and err. */
static void run(struct run *r, const char *env, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    const char *a;

    argv[argc++] = "narwhal";
    va_start(ap, env);
    while ((a = va_arg(ap, const char *)) != NULL)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    FILE *out = open_memstream(&r->out, &r->outlen);
    FILE *err = open_memstream(&r->err, &r->errlen);
    r->rc = settings_load(&r->s, argc, argv, env, out, err);
    fclose(out);
    fclose(err);
}

static void done(struct run *r)
{
    settings_free(&r->s);
    free(r->out);
    free(r->err);
}

/* Expects failure with exactly one message line. */
static void expect_error(const char *env, const char *want, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    const char *a;
    struct run r;

    argv[argc++] = "narwhal";
    va_start(ap, want);
    while ((a = va_arg(ap, const char *)) != NULL)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    FILE *out = open_memstream(&r.out, &r.outlen);
    FILE *err = open_memstream(&r.err, &r.errlen);
    r.rc = settings_load(&r.s, argc, argv, env, out, err);
    fclose(out);
    fclose(err);
    cr_expect_eq(r.rc, 1, "rc %d for %s", r.rc, want);
    cr_expect_str_eq(r.err, want);
    done(&r);
}

static const char *seed_path(void)
{
    static char path[PATH_MAX];
    const char *src = getenv("NARWHAL_SRCDIR");
    cr_assert_not_null(src, "NARWHAL_SRCDIR must name the source dir");
    snprintf(path, sizeof path, "%s/tests/unit/core/data/gunicorn.conf", src);
    return path;
}

/* ---- defaults -------------------------------------------------------------------- */

Test(settings, defaults)
{
    struct run r;
    run(&r, NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_empty(r.err);
    nw_settings *s = &r.s;
    cr_expect_null(s->config);
    cr_assert_eq(s->bind.n, 1);
    cr_expect_str_eq(s->bind.v[0], "127.0.0.1:5000");
    cr_expect_eq(s->workers, 1);
    cr_expect_eq(s->backlog, 2048);
    cr_expect_null(s->pidfile);
    cr_expect_null(s->accesslog);
    cr_expect_str_eq(s->access_log_format, NW_ACCESS_LOG_FORMAT);
    cr_expect_str_eq(s->errorlog, "-");
    cr_expect_eq(s->loglevel, NW_LOG_INFO);
    cr_expect_eq(s->timeout, 30);
    cr_expect_eq(s->graceful_timeout, 30);
    cr_expect_eq(s->keepalive, 75);
    cr_expect_not(s->daemon);
    cr_expect_null(s->chdir);
    cr_expect_eq(s->raw_env.n, 0);
    cr_expect_null(s->user);
    cr_expect_null(s->group);
    cr_expect_eq(s->umask, 022);
    cr_expect_not(s->check_config);
    cr_expect_not(s->print_config);
    cr_expect_null(s->app);
    cr_expect_eq(s->worker_class, NW_CLASS_SYNC);
    cr_expect_eq(s->threads, 1);
    cr_expect_eq(s->worker_connections, 1000);
    cr_expect_eq(s->coroutine_stack_size, 256);
    cr_expect_eq(s->protocol, NW_PROTO_AUTO);
    cr_expect_eq(s->limit_request_line, 4094);
    cr_expect_eq(s->limit_request_fields, 100);
    cr_expect_eq(s->limit_request_field_size, 8190);
    cr_expect_eq(s->max_requests, 0);
    cr_expect_eq(s->max_requests_jitter, 0);
    cr_expect_not(s->reload);
    cr_expect_not(s->spew);
    cr_expect_not(s->preload_app);
    done(&r);
}

Test(settings, web_concurrency)
{
    struct run r;
    setenv("WEB_CONCURRENCY", "3", 1);
    run(&r, NULL, NULL);
    cr_expect_eq(r.s.workers, 3);
    done(&r);
    run(&r, NULL, "-w", "5", NULL);
    cr_expect_eq(r.s.workers, 5);
    done(&r);
    const char *bad[] = {"abc", "0", "-2", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("WEB_CONCURRENCY", bad[i], 1);
        run(&r, NULL, NULL);
        cr_expect_eq(r.rc, 0);
        cr_expect_eq(r.s.workers, 1, "WEB_CONCURRENCY=%s", bad[i]);
        done(&r);
    }
}

Test(settings, free_zeroes_and_is_idempotent)
{
    struct run r;
    run(&r, NULL, "-b", "unix:/a", "-e", "A=1", "app.so", NULL);
    settings_free(&r.s);
    cr_expect_null(r.s.bind.v);
    cr_expect_eq(r.s.bind.n, 0);
    cr_expect_null(r.s.app);
    settings_free(&r.s);
    done(&r);
}

/* ---- every type's errors --------------------------------------------------------------- */

Test(settings, int_errors)
{
    expect_error(NULL, "narwhal: --timeout: '-5' must be at least 0\n", "--timeout", "-5", NULL);
    expect_error(NULL, "narwhal: -t: '-5' must be at least 0\n", "-t", "-5", NULL);
    expect_error(NULL, "narwhal: -w: 'abc' is not an integer\n", "-w", "abc", NULL);
    expect_error(NULL, "narwhal: --workers: '0' must be at least 1\n", "--workers=0", NULL);
    expect_error(NULL, "narwhal: --workers: '4x' is not an integer\n", "--workers", "4x", NULL);
    expect_error(NULL, "narwhal: --workers: '' is not an integer\n", "--workers", "", NULL);
    expect_error(NULL, "narwhal: --limit-request-line: '8191' must be at most 8190\n",
                 "--limit-request-line", "8191", NULL);
    expect_error(NULL, "narwhal: --limit-request-fields: '32769' must be at most 32768\n",
                 "--limit-request-fields", "32769", NULL);
    expect_error(NULL, "narwhal: --coroutine-stack-size: '8' must be at least 16\n",
                 "--coroutine-stack-size", "8", NULL);
    expect_error(NULL, "narwhal: --backlog: '99999999999999999999' must be at most 2147483647\n",
                 "--backlog", "99999999999999999999", NULL);
}

/* Values that overflowed where they are used (UBSan: workers * 4 in the
 * arbiter, jitter + 1 in the worker) are refused at their bounds. */
Test(settings, int_bounds_keep_arithmetic_in_range)
{
    expect_error(NULL, "narwhal: -w: '2147483647' must be at most 1024\n", "-w", "2147483647",
                 NULL);
    expect_error(NULL, "narwhal: --workers: '1025' must be at most 1024\n", "--workers", "1025",
                 NULL);
    expect_error(NULL, "narwhal: --threads: '1025' must be at most 1024\n", "--threads", "1025",
                 NULL);
    expect_error(NULL, "narwhal: --max-requests-jitter: '2147483647' must be at most 1000000000\n",
                 "--max-requests-jitter", "2147483647", NULL);
    expect_error(NULL, "narwhal: --max-requests: '2147483647' must be at most 1000000000\n",
                 "--max-requests", "2147483647", NULL);
    struct run r;
    run(&r, NULL, "-w", "1024", "--threads", "1024", "--max-requests", "1000000000",
        "--max-requests-jitter", "1000000000", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_eq(r.s.workers, 1024);
    cr_expect_eq(r.s.threads, 1024);
    done(&r);
}

Test(settings, int_ranges_accept_edges)
{
    struct run r;
    run(&r, NULL, "--limit-request-line", "0", "--limit-request-fields", "32768", "-t", "0",
        "--keep-alive", "0", "--graceful-timeout", "5", "--max-requests", "1000",
        "--max-requests-jitter", "50", "--limit-request-field-size", "0", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_eq(r.s.limit_request_line, 0);
    cr_expect_eq(r.s.limit_request_fields, 32768);
    cr_expect_eq(r.s.timeout, 0);
    cr_expect_eq(r.s.keepalive, 0);
    cr_expect_eq(r.s.graceful_timeout, 5);
    cr_expect_eq(r.s.max_requests, 1000);
    cr_expect_eq(r.s.max_requests_jitter, 50);
    cr_expect_eq(r.s.limit_request_field_size, 0);
    done(&r);
}

Test(settings, bool_values_in_file)
{
    const char *yes[] = {"true", "True", "TRUE", "yes", "on", "1", "'true'", "\"Yes\""};
    const char *no[] = {"false", "False", "no", "Off", "0", "'false'"};
    char text[64];
    struct run r;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        snprintf(text, sizeof text, "daemon = %s\n", yes[i]);
        run(&r, NULL, "-c", conf(text), NULL);
        cr_expect_eq(r.rc, 0, "%s: %s", yes[i], r.err);
        cr_expect(r.s.daemon, "%s", yes[i]);
        done(&r);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        snprintf(text, sizeof text, "daemon = %s\n", no[i]);
        run(&r, NULL, "-D", "-c", conf(text), NULL); /* the CLI's -D wins */
        cr_expect_eq(r.rc, 0, "%s: %s", no[i], r.err);
        cr_expect(r.s.daemon);
        done(&r);
        run(&r, NULL, "-c", conf(text), NULL);
        cr_expect_not(r.s.daemon, "%s", no[i]);
        done(&r);
    }
}

Test(settings, bool_errors)
{
    char want[256];
    const char *p = conf("# comment\n\ndaemon = maybe\n");
    snprintf(want, sizeof want, "narwhal: %s:3: daemon: 'maybe' is not a boolean (true or false)\n",
             p);
    expect_error(NULL, want, "-c", p, NULL);
    expect_error(NULL, "narwhal: --daemon: takes no value\n", "--daemon=yes", NULL);
}

Test(settings, enums)
{
    struct run r;
    run(&r, NULL, "--log-level", "WARNING", "-k", "gevent", "--protocol", "uwsgi", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_eq(r.s.loglevel, NW_LOG_WARNING);
    cr_expect_eq(r.s.worker_class, NW_CLASS_ASYNC);
    cr_expect_eq(r.s.protocol, NW_PROTO_UWSGI);
    done(&r);

    struct {
        const char *in;
        nw_worker_class want;
    } classes[] = {{"sync", NW_CLASS_SYNC},       {"threads", NW_CLASS_THREADS},
                   {"gthread", NW_CLASS_THREADS}, {"async", NW_CLASS_ASYNC},
                   {"eventlet", NW_CLASS_ASYNC},  {"Gevent", NW_CLASS_ASYNC}};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        run(&r, NULL, "--worker-class", classes[i].in, NULL);
        cr_expect_eq(r.s.worker_class, classes[i].want, "%s", classes[i].in);
        done(&r);
    }
    const char *levels[] = {"debug", "info", "warning", "error", "critical"};
    for (int i = 0; i < 5; i++) {
        run(&r, NULL, "--log-level", levels[i], NULL);
        cr_expect_eq(r.s.loglevel, i);
        cr_expect_str_eq(settings_loglevel_name(i), levels[i]);
        done(&r);
    }
    cr_expect_str_eq(settings_worker_class_name(NW_CLASS_THREADS), "threads");
    cr_expect_str_eq(settings_worker_class_name(NW_CLASS_ASYNC), "async");

    expect_error(NULL, "narwhal: --worker-class: 'tornado' is not one of sync, threads, async\n",
                 "--worker-class", "tornado", NULL);
    expect_error(NULL,
                 "narwhal: --log-level: 'loud' is not one of debug, info, warning, error, "
                 "critical\n",
                 "--log-level", "loud", NULL);
    expect_error(NULL, "narwhal: --protocol: 'http' is not one of auto, fastcgi, uwsgi\n",
                 "--protocol", "http", NULL);
}

Test(settings, umask)
{
    struct {
        const char *in;
        int want;
    } ok[] = {{"0o22", 022}, {"0O27", 027},  {"022", 022}, {"18", 18},
              {"0", 0},      {"0777", 0777}, {"0o0", 0}};
    struct run r;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        run(&r, NULL, "-m", ok[i].in, NULL);
        cr_expect_eq(r.rc, 0, "%s: %s", ok[i].in, r.err);
        cr_expect_eq(r.s.umask, ok[i].want, "%s", ok[i].in);
        done(&r);
    }
    expect_error(NULL, "narwhal: --umask: '0o1000' must be at most 0777\n", "--umask", "0o1000",
                 NULL);
    expect_error(NULL, "narwhal: -m: '512' must be at most 0777\n", "-m", "512", NULL);
    expect_error(NULL, "narwhal: -m: '-1' must be at least 0\n", "-m", "-1", NULL);
    expect_error(NULL, "narwhal: -m: '0o' is not an octal mode\n", "-m", "0o", NULL);
    expect_error(NULL, "narwhal: -m: '0o8' is not an octal mode\n", "-m", "0o8", NULL);
    expect_error(NULL, "narwhal: -m: '089' is not a mode (0o22, 022 or 18)\n", "-m", "089", NULL);
    expect_error(NULL, "narwhal: -m: 'rwx' is not a mode (0o22, 022 or 18)\n", "-m", "rwx", NULL);
}

Test(settings, bind_forms)
{
    struct run r;
    run(&r, NULL, "-b", "127.0.0.1:8000", "-b", "[::1]:8001", "-b", "unix:/run/nw.sock", "-b",
        "localhost:1", "--bind", "my-host.example.com:65535", "-b", "[fe80::1%eth0]:80", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(r.s.bind.n, 6);
    cr_expect_str_eq(r.s.bind.v[0], "127.0.0.1:8000");
    cr_expect_str_eq(r.s.bind.v[1], "[::1]:8001");
    cr_expect_str_eq(r.s.bind.v[2], "unix:/run/nw.sock");
    cr_expect_str_eq(r.s.bind.v[5], "[fe80::1%eth0]:80");
    done(&r);

    expect_error(NULL, "narwhal: -b: 'localhost' is not HOST:PORT, [IPV6]:PORT or unix:PATH\n",
                 "-b", "localhost", NULL);
    expect_error(NULL, "narwhal: -b: ':5000' is not HOST:PORT, [IPV6]:PORT or unix:PATH\n", "-b",
                 ":5000", NULL);
    expect_error(NULL, "narwhal: -b: 'h:0': port must be 1 to 65535\n", "-b", "h:0", NULL);
    expect_error(NULL, "narwhal: -b: 'h:65536': port must be 1 to 65535\n", "-b", "h:65536", NULL);
    expect_error(NULL, "narwhal: -b: 'h:http' has no valid port (HOST:PORT)\n", "-b", "h:http",
                 NULL);
    expect_error(NULL, "narwhal: -b: 'h:' has no valid port (HOST:PORT)\n", "-b", "h:", NULL);
    expect_error(NULL,
                 "narwhal: --bind: '::1:5000': put an IPv6 address in brackets ([::1]:5000)\n",
                 "--bind", "::1:5000", NULL);
    expect_error(NULL, "narwhal: -b: '[::1]' is not [IPV6]:PORT\n", "-b", "[::1]", NULL);
    expect_error(NULL, "narwhal: -b: '[]:80' is not [IPV6]:PORT\n", "-b", "[]:80", NULL);
    expect_error(NULL, "narwhal: -b: 'unix:' has an empty path\n", "-b", "unix:", NULL);
    expect_error(NULL, "narwhal: -b: 'a b:80' has an invalid host name\n", "-b", "a b:80", NULL);
}

Test(settings, raw_env)
{
    struct run r;
    run(&r, NULL, "-e", "A=1", "--env", "B=x=y", "-e", "C=", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(r.s.raw_env.n, 3);
    cr_expect_str_eq(r.s.raw_env.v[1], "B=x=y");
    cr_expect_str_eq(r.s.raw_env.v[2], "C=");
    done(&r);
    expect_error(NULL, "narwhal: -e: 'FOO' is not KEY=VALUE\n", "-e", "FOO", NULL);
    expect_error(NULL, "narwhal: --env: '=x' is not KEY=VALUE\n", "--env", "=x", NULL);
}

Test(settings, strings)
{
    struct run r;
    run(&r, NULL, "-p", "/run/nw.pid", "--access-logfile", "-", "--chdir", "/srv", "-u", "www",
        "-g", "33", "--access-logformat", "%(h)s %(s)s", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_eq(r.s.pidfile, "/run/nw.pid");
    cr_expect_str_eq(r.s.accesslog, "-");
    cr_expect_str_eq(r.s.chdir, "/srv");
    cr_expect_str_eq(r.s.user, "www");
    cr_expect_str_eq(r.s.group, "33");
    cr_expect_str_eq(r.s.access_log_format, "%(h)s %(s)s");
    done(&r);
    expect_error(NULL, "narwhal: --pid: must not be empty\n", "--pid", "", NULL);
    expect_error(NULL, "narwhal: --chdir: must not be empty\n", "--chdir=", NULL);
}

Test(settings, access_log_format_is_compiled)
{
    struct run r;
    char msg[256] = "";
    access_format *f = access_format_compile("%(zz)s", msg, sizeof msg);
    cr_assert_null(f);
    run(&r, NULL, "--access-logformat", "%(zz)s", NULL);
    cr_expect_eq(r.rc, 1);
    char want[400];
    snprintf(want, sizeof want, "narwhal: --access-logformat: %s\n", msg);
    cr_expect_str_eq(r.err, want);
    done(&r);
}

Test(settings, development_flags)
{
    struct run r;
    run(&r, NULL, "--reload", "--spew", NULL);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(r.s.reload);
    cr_expect(r.s.spew);
    done(&r);
    run(&r, NULL, "--preload", NULL);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(r.s.preload_app);
    done(&r);
    /* ... but not together: settings_finish refuses the pair. */
    run(&r, NULL, "--reload", "--preload", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char *msg = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&msg, &len);
    cr_expect_eq(settings_finish(&r.s, err), -1);
    fclose(err);
    cr_expect(strstr(msg, "reload: cannot be combined with preload_app") != NULL, "%s", msg);
    free(msg);
    done(&r);
    /* threads > 1 turns sync into threads, as in gunicorn */
    run(&r, NULL, "--threads", "4", NULL);
    cr_assert_eq(settings_finish(&r.s, stderr), 0);
    cr_expect_eq(r.s.worker_class, NW_CLASS_THREADS);
    done(&r);
    run(&r, NULL, "-c", conf("reload = false\nspew = no\npreload_app = False\n"), NULL);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    done(&r);
}

/* ---- the process manager and memory limits ----------------------------------------- */

/* settings_finish on argv; its message (or "") in *msg, freed by the caller. */
static int finish(struct run *r, char **msg, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    const char *a;
    argv[argc++] = "narwhal";
    va_start(ap, msg);
    while ((a = va_arg(ap, const char *)) != NULL)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    FILE *out = open_memstream(&r->out, &r->outlen);
    FILE *err = open_memstream(&r->err, &r->errlen);
    r->rc = settings_load(&r->s, argc, argv, NULL, out, err);
    fclose(out);
    fclose(err);
    cr_assert_eq(r->rc, 0, "%s", r->err);
    size_t len;
    FILE *f = open_memstream(msg, &len);
    int rc = settings_finish(&r->s, f);
    fclose(f);
    return rc;
}

Test(settings, process_manager_bounds)
{
    struct run r;
    char *msg;
    /* defaults: static; dynamic's bounds give way to workers */
    cr_expect_eq(finish(&r, &msg, NULL), 0, "%s", msg);
    cr_expect_eq(r.s.process_manager, NW_PM_STATIC);
    cr_expect_eq(r.s.worker_idle_timeout, 10);
    cr_expect_eq(r.s.max_spawn_rate, 32);
    cr_expect_eq(r.s.rlimit_core, -1);
    free(msg);
    done(&r);
    cr_expect_eq(finish(&r, &msg, "--process-manager", "dynamic", "-w", "2", NULL), 0, "%s", msg);
    cr_expect_eq(r.s.max_spare_workers, 2);
    cr_expect_eq(r.s.min_spare_workers, 1);
    cr_expect_eq(r.s.start_workers, 1, "php-fpm's midpoint, rounded down");
    free(msg);
    done(&r);
    cr_expect_eq(finish(&r, &msg, "--process-manager", "dynamic", "-w", "10", "--min-spare-workers",
                        "2", "--max-spare-workers", "6", NULL),
                 0, "%s", msg);
    cr_expect_eq(r.s.start_workers, 4);
    free(msg);
    done(&r);
    /* bounds set that cannot hold are refused, naming both */
    static const char *const bad[][7] = {
        {"-w", "4", "--max-spare-workers", "5", "--min-spare-workers", "1",
         "max_spare_workers (5) must not exceed workers (4)"},
        {"-w", "8", "--max-spare-workers", "2", "--min-spare-workers", "3",
         "min_spare_workers (3) must not exceed max_spare_workers (2)"},
        {"-w", "2", "--start-workers", "3", "--min-spare-workers", "1",
         "start_workers (3) must not exceed workers (2)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(finish(&r, &msg, "--process-manager", "dynamic", bad[i][0], bad[i][1],
                            bad[i][2], bad[i][3], bad[i][4], bad[i][5], NULL),
                     -1, "accepted: %s", bad[i][6]);
        cr_expect(strstr(msg, bad[i][6]) && strstr(msg, "process_manager = dynamic"), "%s", msg);
        free(msg);
        done(&r);
    }
    /* only dynamic has spare bounds to check */
    cr_expect_eq(finish(&r, &msg, "--process-manager", "ondemand", "-w", "2", "--max-spare-workers",
                        "5", NULL),
                 0, "%s", msg);
    free(msg);
    done(&r);
    /* the hard limit must leave room for the graceful one */
    cr_expect_eq(finish(&r, &msg, "--max-worker-memory", "100", "--worker-memory-hard-limit", "100",
                        NULL),
                 -1);
    cr_expect(strstr(msg, "worker_memory_hard_limit (100 MiB) must be above max_worker_memory"),
              "%s", msg);
    free(msg);
    done(&r);
    expect_error(NULL,
                 "narwhal: --process-manager: 'elastic' is not one of static, dynamic, ondemand\n",
                 "--process-manager", "elastic", NULL);
    expect_error(NULL, "narwhal: --rlimit-core: '-2' must be at least -1\n", "--rlimit-core", "-2",
                 NULL);
    /* --exec runs `workers` copies: no process manager */
    cr_expect_eq(finish(&r, &msg, "--exec", "/bin/true", "--process-manager", "ondemand", NULL), -1);
    cr_expect(strstr(msg, "narwhal: exec: process_manager"), "%s", msg);
    free(msg);
    done(&r);
}

/* ---- command line -------------------------------------------------------------------- */

Test(settings, unknown_options)
{
    expect_error(NULL, "narwhal: unknown option '--bogus'\n", "--bogus", NULL);
    expect_error(NULL, "narwhal: unknown option '--bogus'\n", "--bogus=1", NULL);
    expect_error(NULL, "narwhal: unknown option '-x'\n", "-x", NULL);
    expect_error(NULL, "narwhal: unknown option '-x'\n", "--daemon", "-Dx", NULL);
    expect_error(NULL, "narwhal: --timeout: requires a value\n", "--timeout", NULL);
    expect_error(NULL, "narwhal: -w: requires a value\n", "-w", NULL);
    expect_error("--nope", "narwhal: NARWHAL_CMD_ARGS: unknown option '--nope'\n", NULL);
}

Test(settings, flag_named_as_typed)
{
    expect_error(NULL, "narwhal: --log-file: must not be empty\n", "--log-file", "", NULL);
    expect_error(NULL, "narwhal: --error-logfile: must not be empty\n", "--error-logfile", "",
                 NULL);
    expect_error(NULL, "narwhal: -w: '0' must be at least 1\n", "-Dw0", NULL);
    expect_error(NULL, "narwhal: -t: 'x' is not an integer\n", "-tx", NULL);
}

Test(settings, help_and_version)
{
    struct run r;
    run(&r, NULL, "--help", NULL);
    cr_expect_eq(r.rc, 2);
    cr_expect_str_empty(r.err);
    const char *flags[] = {"--bind",
                           "--workers",
                           "--worker-class",
                           "--threads",
                           "--worker-connections",
                           "--backlog",
                           "--coroutine-stack-size",
                           "-p, --pid",
                           "--access-logfile",
                           "--access-logformat",
                           "--log-file",
                           "--log-level",
                           "-t, --timeout",
                           "--keep-alive",
                           "-D, --daemon",
                           "--chdir",
                           "-e, --env",
                           "-u, --user",
                           "-g, --group",
                           "-m, --umask",
                           "--check-config",
                           "--print-config",
                           "--limit-request-line",
                           "--max-requests-jitter",
                           "--protocol",
                           "--reload",
                           "--spew",
                           "--preload",
                           "-c, --config",
                           "-h, --help",
                           "-v, --version"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        cr_expect(strstr(r.out, flags[i]), "--help lacks %s", flags[i]);
    done(&r);

    FILE *f = open_memstream(&r.out, &r.outlen);
    settings_usage(f);
    fclose(f);
    cr_expect(strstr(r.out, "usage: narwhal"));
    free(r.out);

    run(&r, NULL, "-v", NULL);
    cr_expect_eq(r.rc, 2);
    cr_expect_str_eq(r.out, "narwhal " PACKAGE_VERSION "\n");
    done(&r);
    run(&r, NULL, "--version", "--help", NULL); /* the first one wins */
    cr_expect_eq(r.rc, 2);
    cr_expect_str_eq(r.out, "narwhal " PACKAGE_VERSION "\n");
    done(&r);
    /* --help does not need a readable config */
    run(&r, NULL, "-c", "/nonexistent/narwhal.conf", "-h", NULL);
    cr_expect_eq(r.rc, 2);
    done(&r);
}

Test(settings, positional_app)
{
    struct run r;
    run(&r, NULL, "-w", "2", "./hello.so:app", "--timeout", "3", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_eq(r.s.app, "./hello.so:app");
    cr_expect_eq(r.s.timeout, 3);
    done(&r);
    run(&r, NULL, "-w", "2", "--", "-odd.so", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_eq(r.s.app, "-odd.so");
    done(&r);
    expect_error(NULL, "narwhal: unexpected argument 'b.so' (APP is already 'a.so')\n", "a.so",
                 "b.so", NULL);
    expect_error(NULL, "narwhal: unexpected argument 'b.so' (APP is already 'a.so')\n", "a.so",
                 "--", "b.so", NULL);
    run(&r, NULL, "--check-config", "--print-config", NULL);
    cr_expect(r.s.check_config);
    cr_expect(r.s.print_config);
    done(&r);
}

/* ---- config file ---------------------------------------------------------------------- */

Test(settings, seed_gunicorn_conf)
{
    struct run r;
    const char *path = seed_path();
    run(&r, NULL, "-c", path, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_empty(r.err);
    cr_expect_str_eq(r.s.config, path);
    cr_expect_eq(r.s.workers, 4);
    cr_expect_eq(r.s.threads, 2);
    cr_assert_eq(r.s.bind.n, 1);
    cr_expect_str_eq(r.s.bind.v[0], "127.0.0.1:5000");
    cr_expect_not(r.s.daemon);
    cr_expect_eq(r.s.worker_class, NW_CLASS_ASYNC);
    cr_expect_eq(r.s.worker_connections, 2000);
    cr_expect_str_eq(r.s.pidfile, "/var/run/gunicorn.pid");
    cr_expect_str_eq(r.s.accesslog, "/var/log/gunicorn_acess.log");
    cr_expect_str_eq(r.s.errorlog, "/var/log/gunicorn_error.log");
    cr_expect_eq(r.s.loglevel, NW_LOG_WARNING);
    /* untouched keys keep their defaults */
    cr_expect_eq(r.s.timeout, 30);
    cr_expect_eq(r.s.keepalive, 75);
    done(&r);
}

Test(settings, file_syntax)
{
    struct run r;
    /* quoting styles, unquoted values, comments of every kind, UTF-8 */
    run(&r, NULL, "-c",
        conf("# 中文注释\n"
             "workers = 3 # trailing\n"
             "// c++ style\n"
             "/* multi\n   line 注释 */\n"
             "timeout = '7'\n"
             "chdir = \"/srv/a b\"\n"
             "pidfile = /run/x.pid\n"
             "user = 'it\\'s'\n"
             "group = \"has # hash\"\n"
             "bind = {\"127.0.0.1:1\", 'unix:/tmp/s'}\n"
             "bind += \"[::1]:2\"\n"
             "access_log_format = '%(h)s \"%(r)s\"'\n"
             "raw_env = {\"A=${NW_SURELY_UNSET:-dflt}\"}\n"
             "app = 'a.so:main'\n"),
        NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_eq(r.s.workers, 3);
    cr_expect_eq(r.s.timeout, 7);
    cr_expect_str_eq(r.s.chdir, "/srv/a b");
    cr_expect_str_eq(r.s.pidfile, "/run/x.pid");
    cr_expect_str_eq(r.s.user, "it's");
    cr_expect_str_eq(r.s.group, "has # hash");
    cr_assert_eq(r.s.bind.n, 3);
    cr_expect_str_eq(r.s.bind.v[0], "127.0.0.1:1");
    cr_expect_str_eq(r.s.bind.v[1], "unix:/tmp/s");
    cr_expect_str_eq(r.s.bind.v[2], "[::1]:2");
    cr_expect_str_eq(r.s.access_log_format, "%(h)s \"%(r)s\"");
    cr_expect_str_eq(r.s.raw_env.v[0], "A=dflt"); /* libconfuse expands ${} in "" */
    cr_expect_str_eq(r.s.app, "a.so:main");
    done(&r);

    run(&r, NULL, "-c", conf("wsgi_app = 'b.so'\n"), NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_eq(r.s.app, "b.so");
    done(&r);

    run(&r, NULL, "-c", conf(""), NULL); /* an empty file is fine */
    cr_expect_eq(r.rc, 0, "%s", r.err);
    done(&r);
    run(&r, NULL, "-c", conf("# only a comment"), NULL);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    done(&r);
}

/* libconfuse 3.3 counts lines wrongly after comments; ours must be exact. */
Test(settings, file_errors_name_file_and_line)
{
    char want[256];
    const char *p = conf("# 设置\n# 两行注释\nworkers = 4\n/* a\nb */\n\ntimeout = soon\n");
    snprintf(want, sizeof want, "narwhal: %s:7: timeout: 'soon' is not an integer\n", p);
    expect_error(NULL, want, "-c", p, NULL);

    p = conf("bind = {\"127.0.0.1:1\",\n"
             "        \"nope\"}\n");
    snprintf(want, sizeof want,
             "narwhal: %s:2: bind: 'nope' is not HOST:PORT, [IPV6]:PORT or unix:PATH\n", p);
    expect_error(NULL, want, "-c", p, NULL);

    p = conf("workers = 2\n# x\nworker_class = 'tornado'\n");
    snprintf(want, sizeof want,
             "narwhal: %s:3: worker_class: 'tornado' is not one of sync, threads, async\n", p);
    expect_error(NULL, want, "-c", p, NULL);

    p = conf("wsgi_app = ''\n");
    snprintf(want, sizeof want, "narwhal: %s:1: wsgi_app: must not be empty\n", p);
    expect_error(NULL, want, "-c", p, NULL);

    /* every bad value is reported, not only the first */
    p = conf("workers = x\nthreads = y\n");
    snprintf(want, sizeof want,
             "narwhal: %s:1: workers: 'x' is not an integer\n"
             "narwhal: %s:2: threads: 'y' is not an integer\n",
             p, p);
    expect_error(NULL, want, "-c", p, NULL);
}

Test(settings, file_unknown_key_and_syntax_errors)
{
    char want[256];
    const char *p = conf("# 注释\nworkers = 2\n\nworkerz = 3\n");
    snprintf(want, sizeof want, "narwhal: %s:4: unknown setting 'workerz'\n", p);
    expect_error(NULL, want, "-c", p, NULL);

    p = conf("# 注释\nconfig = 'x'\n"); /* CLI-only settings are not keys */
    snprintf(want, sizeof want, "narwhal: %s:2: unknown setting 'config'\n", p);
    expect_error(NULL, want, "-c", p, NULL);

    p = conf("# c\nworkers 4\n");
    snprintf(want, sizeof want, "narwhal: %s:2: missing equal sign after option 'workers'\n", p);
    expect_error(NULL, want, "-c", p, NULL);

    p = conf("workers += 4\n");
    snprintf(want, sizeof want, "narwhal: %s:1: attempt to append to non-list option 'workers'\n",
             p);
    expect_error(NULL, want, "-c", p, NULL);

    expect_error(NULL,
                 "narwhal: cannot read /nonexistent/narwhal.conf: No such file or directory\n",
                 "-c", "/nonexistent/narwhal.conf", NULL);
}

Test(settings, file_later_assignment_wins)
{
    struct run r;
    run(&r, NULL, "-c",
        conf("workers = x\nworkers = 5\nbind = 'a:1'\nbind = {'b:2', 'c:3'}\nraw_env = {'A=1'}\n"
             "raw_env = {}\n"),
        NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_eq(r.s.workers, 5);
    cr_assert_eq(r.s.bind.n, 2);
    cr_expect_str_eq(r.s.bind.v[0], "b:2");
    cr_expect_eq(r.s.raw_env.n, 0);
    done(&r);

    expect_error(NULL, "narwhal: bind: no address to listen on\n", "-c", conf("bind = {}\n"), NULL);
}

/* ---- precedence ---------------------------------------------------------------------- */

Test(settings, precedence)
{
    struct run r;
    const char *p = conf("workers = 2\ntimeout = 10\nthreads = 3\nloglevel = 'error'\n");

    run(&r, NULL, "-c", p, NULL);
    cr_expect_eq(r.s.workers, 2);
    done(&r);
    run(&r, "-w 3 --timeout 11", "-c", p, NULL);
    cr_expect_eq(r.s.workers, 3);
    cr_expect_eq(r.s.timeout, 11);
    cr_expect_eq(r.s.threads, 3);
    done(&r);
    run(&r, "-w 3 --timeout 11", "-c", p, "--workers", "4", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_eq(r.s.workers, 4);  /* CLI */
    cr_expect_eq(r.s.timeout, 11); /* env */
    cr_expect_eq(r.s.threads, 3);  /* file */
    cr_expect_eq(r.s.loglevel, NW_LOG_ERROR);
    cr_expect_eq(r.s.backlog, 2048); /* default */
    done(&r);

    /* WEB_CONCURRENCY is only a default */
    setenv("WEB_CONCURRENCY", "9", 1);
    run(&r, NULL, "-c", p, NULL);
    cr_expect_eq(r.s.workers, 2);
    done(&r);
}

Test(settings, config_path_from_env_args)
{
    struct run r;
    const char *a = conf("workers = 6\n");
    const char *b = conf("workers = 7\n");
    char env[256];
    snprintf(env, sizeof env, "-c %s", a);
    run(&r, env, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_eq(r.s.workers, 6);
    cr_expect_str_eq(r.s.config, a);
    done(&r);
    run(&r, env, "--config", b, NULL); /* argv's -c wins */
    cr_expect_eq(r.s.workers, 7);
    cr_expect_str_eq(r.s.config, b);
    done(&r);
}

Test(settings, lists_replace_across_sources_accumulate_within)
{
    struct run r;
    const char *p = conf("bind = {'a:1', 'b:2'}\nraw_env = {'F=1'}\n");

    run(&r, NULL, "-c", p, NULL);
    cr_assert_eq(r.s.bind.n, 2);
    done(&r);
    run(&r, "-b c:3 -b d:4", "-c", p, NULL);
    cr_assert_eq(r.s.bind.n, 2);
    cr_expect_str_eq(r.s.bind.v[0], "c:3");
    cr_expect_str_eq(r.s.bind.v[1], "d:4");
    cr_assert_eq(r.s.raw_env.n, 1); /* untouched by env: the file's */
    cr_expect_str_eq(r.s.raw_env.v[0], "F=1");
    done(&r);
    run(&r, "-b c:3 -b d:4", "-c", p, "-b", "e:5", "-e", "G=2", "-e", "H=3", NULL);
    cr_assert_eq(r.s.bind.n, 1);
    cr_expect_str_eq(r.s.bind.v[0], "e:5");
    cr_assert_eq(r.s.raw_env.n, 2);
    cr_expect_str_eq(r.s.raw_env.v[0], "G=2");
    cr_expect_str_eq(r.s.raw_env.v[1], "H=3");
    done(&r);
    /* the default is replaced, not appended to */
    run(&r, NULL, "-b", "unix:/x", NULL);
    cr_assert_eq(r.s.bind.n, 1);
    cr_expect_str_eq(r.s.bind.v[0], "unix:/x");
    done(&r);
}

Test(settings, aliases)
{
    struct run r;
    run(&r, NULL, "--log-file", "/tmp/e.log", "-k", "gevent", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_eq(r.s.errorlog, "/tmp/e.log");
    cr_expect_eq(r.s.worker_class, NW_CLASS_ASYNC);
    done(&r);
    run(&r, NULL, "--error-logfile", "/tmp/f.log", "-k", "gthread", NULL);
    cr_expect_str_eq(r.s.errorlog, "/tmp/f.log");
    cr_expect_eq(r.s.worker_class, NW_CLASS_THREADS);
    done(&r);
}

/* ---- NARWHAL_CMD_ARGS ---------------------------------------------------------------------- */

Test(settings, env_args_quoting)
{
    struct run r;
    run(&r,
        "  --access-logformat '%(h)s \"%(r)s\"'\t-e \"A=b c\" -e B=\\ d "
        "--chdir \"/tmp/q\\\"t\\\\\"  -u ''x'y' -g \"\" app.so ",
        NULL);
    cr_expect_eq(r.rc, 1); /* -g "" is an empty word, and empty is rejected */
    cr_expect_str_eq(r.err, "narwhal: NARWHAL_CMD_ARGS: -g: must not be empty\n");
    done(&r);

    run(&r,
        "  --access-logformat '%(h)s \"%(r)s\"'\t-e \"A=b c\" -e B=\\ d "
        "--chdir \"/tmp/q\\\"t\\\\\"  -u ''x'y' app.so ",
        NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_str_eq(r.s.access_log_format, "%(h)s \"%(r)s\"");
    cr_assert_eq(r.s.raw_env.n, 2);
    cr_expect_str_eq(r.s.raw_env.v[0], "A=b c");
    cr_expect_str_eq(r.s.raw_env.v[1], "B= d");
    cr_expect_str_eq(r.s.chdir, "/tmp/q\"t\\");
    cr_expect_str_eq(r.s.user, "xy");
    cr_expect_str_eq(r.s.app, "app.so");
    done(&r);

    run(&r, "--threads 2 'a.so", NULL);
    cr_expect_eq(r.rc, 1);
    cr_expect_str_eq(r.err, "narwhal: NARWHAL_CMD_ARGS: unterminated single quote\n");
    done(&r);
    run(&r, "\"x", NULL);
    cr_expect_str_eq(r.err, "narwhal: NARWHAL_CMD_ARGS: unterminated double quote\n");
    done(&r);
    run(&r, "   ", NULL);
    cr_expect_eq(r.rc, 0);
    done(&r);

    expect_error("--timeout=-1", "narwhal: NARWHAL_CMD_ARGS: --timeout: '-1' must be at least 0\n",
                 NULL);
    /* the command line's APP wins over the env's */
    run(&r, "env.so", "cli.so", NULL);
    cr_expect_str_eq(r.s.app, "cli.so");
    done(&r);
}

/* ---- --print-config --------------------------------------------------------------------- */

static void expect_same_list(const nw_strlist *a, const nw_strlist *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s", what);
    for (size_t i = 0; i < a->n; i++)
        cr_expect_str_eq(a->v[i], b->v[i], "%s[%zu]", what, i);
}

static void expect_same_str(const char *a, const char *b, const char *what)
{
    if (!a || !b)
        cr_expect_eq(a, b, "%s", what);
    else
        cr_expect_str_eq(a, b, "%s", what);
}

static void expect_same(const nw_settings *a, const nw_settings *b)
{
    expect_same_list(&a->bind, &b->bind, "bind");
    cr_expect_eq(a->workers, b->workers);
    cr_expect_eq(a->backlog, b->backlog);
    expect_same_str(a->pidfile, b->pidfile, "pidfile");
    expect_same_str(a->accesslog, b->accesslog, "accesslog");
    expect_same_str(a->access_log_format, b->access_log_format, "access_log_format");
    expect_same_str(a->errorlog, b->errorlog, "errorlog");
    cr_expect_eq(a->loglevel, b->loglevel);
    cr_expect_eq(a->timeout, b->timeout);
    cr_expect_eq(a->graceful_timeout, b->graceful_timeout);
    cr_expect_eq(a->keepalive, b->keepalive);
    cr_expect_eq(a->daemon, b->daemon);
    expect_same_str(a->chdir, b->chdir, "chdir");
    expect_same_list(&a->raw_env, &b->raw_env, "raw_env");
    expect_same_str(a->user, b->user, "user");
    expect_same_str(a->group, b->group, "group");
    cr_expect_eq(a->umask, b->umask);
    expect_same_str(a->app, b->app, "app");
    cr_expect_eq(a->worker_class, b->worker_class);
    cr_expect_eq(a->threads, b->threads);
    cr_expect_eq(a->worker_connections, b->worker_connections);
    cr_expect_eq(a->coroutine_stack_size, b->coroutine_stack_size);
    cr_expect_eq(a->protocol, b->protocol);
    cr_expect_eq(a->limit_request_line, b->limit_request_line);
    cr_expect_eq(a->limit_request_fields, b->limit_request_fields);
    cr_expect_eq(a->limit_request_field_size, b->limit_request_field_size);
    cr_expect_eq(a->max_requests, b->max_requests);
    cr_expect_eq(a->max_requests_jitter, b->max_requests_jitter);
    cr_expect_eq(a->reload, b->reload);
    cr_expect_eq(a->spew, b->spew);
    cr_expect_eq(a->preload_app, b->preload_app);
    cr_expect_eq(a->process_manager, b->process_manager);
    cr_expect_eq(a->min_spare_workers, b->min_spare_workers);
    cr_expect_eq(a->max_spare_workers, b->max_spare_workers);
    cr_expect_eq(a->start_workers, b->start_workers);
    cr_expect_eq(a->worker_idle_timeout, b->worker_idle_timeout);
    cr_expect_eq(a->max_spawn_rate, b->max_spawn_rate);
    cr_expect_eq(a->max_worker_memory, b->max_worker_memory);
    cr_expect_eq(a->worker_memory_hard_limit, b->worker_memory_hard_limit);
    cr_expect_eq(a->rlimit_nofile, b->rlimit_nofile);
    cr_expect_eq(a->rlimit_core, b->rlimit_core);
}

static void round_trip(struct run *a)
{
    struct run b;
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    settings_print(&a->s, f);
    fclose(f);
    run(&b, NULL, "-c", conf(text), NULL);
    cr_assert_eq(b.rc, 0, "%s\n--- printed:\n%s", b.err, text);
    expect_same(&a->s, &b.s);
    free(text);
    done(&b);
}

Test(settings, print_config_round_trip)
{
    struct run a;
    run(&a, NULL, "-b", "127.0.0.1:8000", "-b", "[::1]:8001", "-b", "unix:/run/a b\"c$x.sock", "-w",
        "7", "--backlog", "64", "-p", "/run/nw.pid", "--access-logfile", "-", "--access-logformat",
        "%(h)s \"%(r)s\" ${HOME} \\ %({x-y}i)s\ttab", "--log-file", "/var/log/n 中文.log",
        "--log-level", "critical", "-t", "0", "--graceful-timeout", "9", "--keep-alive", "5", "-D",
        "--chdir", "/srv/#not a comment", "-e", "A=1", "-e", "B='q'", "-e", "NL=a\nb", "-u",
        "nobody", "-g", "nogroup", "-m", "0o27", "-k", "eventlet", "--threads", "4",
        "--worker-connections", "3", "--coroutine-stack-size", "64", "--protocol", "fastcgi",
        "--limit-request-line", "100", "--limit-request-fields", "9", "--limit-request-field-size",
        "77", "--max-requests", "1000", "--max-requests-jitter", "10", "./app.so:entry", NULL);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    round_trip(&a);
    done(&a);

    run(&a, NULL, "--process-manager", "dynamic", "--min-spare-workers", "2",
        "--max-spare-workers", "5", "--start-workers", "4", "--worker-idle-timeout", "7",
        "--max-spawn-rate", "8", "--max-worker-memory", "100", "--worker-memory-hard-limit", "400",
        "--rlimit-nofile", "4096", "--rlimit-core", "0", NULL);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    round_trip(&a);
    done(&a);

    run(&a, NULL, NULL); /* defaults: unset strings, empty raw_env */
    cr_assert_eq(a.rc, 0, "%s", a.err);
    round_trip(&a);
    done(&a);

    run(&a, NULL, "-c", seed_path(), NULL);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    round_trip(&a);
    done(&a);
}

Test(settings, print_config_format)
{
    struct run a;
    char *text;
    size_t len;
    run(&a, NULL, "-b", "a:1", "-b", "unix:/s", "-m", "022", "-k", "gevent", "x.so", NULL);
    FILE *f = open_memstream(&text, &len);
    settings_print(&a.s, f);
    fclose(f);
    cr_expect(strstr(text, "\nbind = {\"a:1\", \"unix:/s\"}\n"), "%s", text);
    cr_expect(strstr(text, "\numask = 0o22\n"), "%s", text);
    cr_expect(strstr(text, "\nworker_class = async\n"), "%s", text);
    cr_expect(strstr(text, "\nloglevel = info\n"), "%s", text);
    cr_expect(strstr(text, "\ndaemon = false\n"), "%s", text);
    cr_expect(strstr(text, "\nworkers = 1\n"), "%s", text);
    cr_expect(strstr(text, "\napp = \"x.so\"\n"), "%s", text);
    cr_expect(strstr(text, "\n# pidfile = (not set)\n"), "%s", text);
    cr_expect_null(strstr(text, "check_config"));
    free(text);
    done(&a);
}

/* ---- the rules the table's rows carry ---------------------------------------------------- */

Test(settings, is_default_compares_values_with_the_table)
{
    static const char *const names[] = {
        "bind",
        "workers",
        "timeout",
        "worker_class",
        "pidfile",
        "daemon",
        "access_log_format",
        "exec_stop_signal",
        "raw_env",
        "umask",
        "app",
        "coroutine_stack_size",
    };
    struct run r;
    run(&r, NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_expect(settings_is_default(&r.s, names[i]), "%s is not default", names[i]);
    done(&r);

    /* a default given explicitly is still the default */
    run(&r, NULL, "--timeout", "30", "-b", "127.0.0.1:5000", "-k", "SYNC", "-m", "0o22", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_expect(settings_is_default(&r.s, names[i]), "%s is not default", names[i]);
    done(&r);

    run(&r, NULL, "--timeout", "31", "-b", "127.0.0.1:5000", "-b", "unix:/tmp/x", "-k", "gthread",
        "-p", "/tmp/p", "--exec-stop-signal", "TERM", "x.so", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_not(settings_is_default(&r.s, "timeout"));
    cr_expect_not(settings_is_default(&r.s, "bind"));
    cr_expect_not(settings_is_default(&r.s, "worker_class"));
    cr_expect_not(settings_is_default(&r.s, "pidfile"));
    cr_expect_not(settings_is_default(&r.s, "exec_stop_signal"));
    cr_expect_not(settings_is_default(&r.s, "app"));
    cr_expect(settings_is_default(&r.s, "backlog"));
    done(&r);

    /* workers compares with the table's 1, not with $WEB_CONCURRENCY */
    setenv("WEB_CONCURRENCY", "3", 1);
    run(&r, NULL, NULL);
    unsetenv("WEB_CONCURRENCY");
    cr_assert_eq(r.s.workers, 3);
    cr_expect_not(settings_is_default(&r.s, "workers"));
    done(&r);
}

Test(settings, restart_changes_are_the_restart_rows_that_differ)
{
    struct run a, b;
    const char *name;
    size_t pos = 0;
    run(&a, NULL, "-w", "2", "-b", "127.0.0.1:6000", NULL);
    run(&b, NULL, "-w", "4", "-b", "127.0.0.1:6001", "--umask", "077", "--timeout", "5", "-D",
        NULL);
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(b.rc, 0, "%s", b.err);
    /* in table order; workers and timeout a reload does change */
    const char *want[] = {"bind", "daemon", "umask"};
    for (size_t i = 0; i < 3; i++) {
        name = settings_next_restart_change(&a.s, &b.s, &pos);
        cr_assert_not_null(name, "no change %zu (%s)", i, want[i]);
        cr_expect_str_eq(name, want[i]);
    }
    cr_expect_null(settings_next_restart_change(&a.s, &b.s, &pos));
    pos = 0;
    cr_expect_null(settings_next_restart_change(&a.s, &a.s, &pos));
    done(&a);
    done(&b);
}

/* With --exec, every setting that shapes narwhal's own workers must stay at
 * its default; given its default explicitly, it is fine. */
Test(settings, exec_refuses_worker_settings_unless_default)
{
    static const char *const refused[][2] = {
        {"-k", "async"},
        {"--threads", "2"},
        {"--worker-connections", "5"},
        {"--coroutine-stack-size", "64"},
        {"--protocol", "uwsgi"},
        {"--close-mode", "fin"},
        {"--keep-alive", "3"},
        {"--access-logfile", "-"},
        {"--timeout", "5"},
        {"--limit-request-line", "10"},
        {"--limit-request-fields", "10"},
        {"--limit-request-field-size", "10"},
        {"--max-requests", "3"},
        {"--max-requests-jitter", "3"},
    };
    struct run r;
    char *msg;
    size_t len;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        run(&r, NULL, "--exec", "/bin/true", refused[i][0], refused[i][1], NULL);
        cr_assert_eq(r.rc, 0, "%s", r.err);
        FILE *err = open_memstream(&msg, &len);
        cr_expect_eq(settings_finish(&r.s, err), -1, "%s %s accepted", refused[i][0],
                     refused[i][1]);
        fclose(err);
        cr_expect(strncmp(msg, "narwhal: exec: ", 15) == 0, "%s", msg);
        free(msg);
        done(&r);
    }
    run(&r, NULL, "--exec", "/bin/true", "--timeout", "30", "--keep-alive", "75", "-k", "sync",
        "--threads", "1", "--protocol", "auto", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect_eq(settings_finish(&r.s, stderr), 0);
    done(&r);
}

/* Settings that mean nothing in their combination are logged, not refused. */
Test(settings, warn_no_effect_names_each_setting)
{
    char path[128], text[4096] = "";
    snprintf(path, sizeof path, "%s/warn.log", tmpdir);
    cr_assert_eq(log_open(path, NULL), 0);
    struct run r;
    run(&r, NULL, "-k", "async", "--threads", "2", "--exec-stop-signal", "TERM",
        "--max-requests-jitter", "5", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    settings_warn_no_effect(&r.s);
    done(&r);
    run(&r, NULL, "--coroutine-stack-size", "64", NULL);
    settings_warn_no_effect(&r.s);
    done(&r);
    run(&r, NULL, "--statsd-prefix", "app", "--ping-response", "ok", NULL);
    settings_warn_no_effect(&r.s);
    done(&r);
    /* the same with what they need: nothing to say */
    run(&r, NULL, "--statsd-prefix", "app", "--statsd-host", "127.0.0.1:8125", "--ping-response",
        "ok", "--ping-path", "/ping", NULL);
    settings_warn_no_effect(&r.s);
    done(&r);
    run(&r, NULL, NULL); /* the defaults: nothing to say */
    settings_warn_no_effect(&r.s);
    done(&r);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    cr_expect(strstr(text, "threads = 2 has no effect with the async worker class"), "%s", text);
    cr_expect(strstr(text, "exec_stop_signal has no effect without --exec"), "%s", text);
    cr_expect(strstr(text, "max_requests_jitter has no effect while max_requests is 0"), "%s",
              text);
    cr_expect(strstr(text, "coroutine_stack_size has no effect with the sync worker class"), "%s",
              text);
    cr_expect(strstr(text, "statsd_prefix has no effect without statsd_host"), "%s", text);
    cr_expect(strstr(text, "ping_response has no effect without ping_path"), "%s", text);
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    cr_expect_eq(lines, 6, "%s", text);
}

/* The warnings of the settings that came with CGI, Python apps, the
 * slowlog, the process manager and the lock-down: each where it applies
 * nowhere, and none where what it needs is given. */
Test(settings, warn_no_effect_names_each_newer_setting)
{
    char path[128], text[8192] = "";
    snprintf(path, sizeof path, "%s/warn2.log", tmpdir);
    cr_assert_eq(log_open(path, NULL), 0);
    static const char *const runs[][12] = {
        /* each says one thing */
        {"--cgi-max-running", "2"},
        {"--cgi", "/bin/true", "--preload"},
        {"--pythonpath", "/srv", "./x.so"},
        {"--slowlog", "/tmp/slow.log"},
        {"--min-spare-workers", "2"},
        {"--worker-idle-timeout", "5"},
        {"--max-spawn-rate", "4"},
        {"-b", "unix:/tmp/x.sock", "--allowed-clients", "127.0.0.1"},
        {"--socket-mode", "0600"},
        {"--exec", "/bin/true", "--statsd-host", "127.0.0.1:8125"},
        /* with what they need: nothing to say */
        {"--cgi", "/bin/true", "--cgi-max-running", "2"},
        {"--pythonpath", "/srv", "app:app"},
        {"--slowlog", "/tmp/slow.log", "--slowlog-timeout", "5"},
        {"--process-manager", "dynamic", "--min-spare-workers", "1", "--max-spawn-rate", "4"},
        {"--process-manager", "ondemand", "--worker-idle-timeout", "5"},
        {"-b", "unix:/tmp/x.sock", "-b", "127.0.0.1:5000", "--allowed-clients", "127.0.0.1",
         "--socket-mode", "0600"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        char *argv[16] = {"narwhal"};
        int argc = 1;
        for (int k = 0; runs[i][k]; k++)
            argv[argc++] = (char *)runs[i][k];
        nw_settings s;
        char errbuf[1024] = "";
        FILE *err = fmemopen(errbuf, sizeof errbuf, "w");
        int rc = settings_load(&s, argc, argv, NULL, stdout, err);
        if (rc == 0)
            rc = settings_finish(&s, err);
        fclose(err);
        cr_assert_eq(rc, 0, "run %zu: %s", i, errbuf);
        settings_warn_no_effect(&s);
        settings_free(&s);
    }
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    static const char *const said[] = {
        "cgi_max_running has no effect without --cgi or --cgi-root",
        "preload_app has no effect with --cgi or --cgi-root",
        "pythonpath has no effect: the app is not a Python app",
        "slowlog has no effect while slowlog_timeout is 0",
        "min_spare_workers has no effect unless process_manager = dynamic",
        "worker_idle_timeout has no effect unless process_manager = ondemand",
        "max_spawn_rate has no effect with process_manager = static",
        "allowed_clients has no effect: every bind is a unix socket",
        "socket_mode has no effect without a unix: bind",
        "statsd_host sends only gunicorn.workers with --exec",
    };
    for (size_t i = 0; i < sizeof said / sizeof *said; i++)
        cr_expect(strstr(text, said[i]), "no \"%s\" in:\n%s", said[i], text);
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    cr_expect_eq(lines, (int)(sizeof said / sizeof *said), "%s", text);
}

Test(settings, statsd_prefix_keeps_the_wire_format)
{
    /* "name:value|type": a prefix with ':' or '|' would forge the value */
    expect_error(NULL,
                 "narwhal: --statsd-prefix: 'a:1|c' holds ':', which statsD's format does not "
                 "allow\n",
                 "--statsd-prefix", "a:1|c", NULL);
    expect_error(NULL,
                 "narwhal: --statsd-prefix: 'a|b' holds '|', which statsD's format does not "
                 "allow\n",
                 "--statsd-prefix", "a|b", NULL);
}
