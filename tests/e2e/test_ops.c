/*
 * test_ops.c - operating narwhal the way one operates gunicorn: signals to
 * the master (HUP, TTIN / TTOU, USR1, USR2 + WINCH + TERM), max_requests,
 * --reload on a rebuilt app, a worker boot failure storm, and what must
 * never stop a master that serves (crash storms, boot failures, an app
 * rewritten in place, signals during start).
 *
 * Real nginx in front of real narwhal on loopback. "Under load" means wrk
 * runs through nginx for a few seconds while the operation happens, and its
 * summary must show no non-2xx response and no socket error.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(ops, .init = h_setup, .fini = h_teardown, .timeout = 90);

/* ---- workers ------------------------------------------------------------------------ */

typedef struct workers {
    pid_t pid[32];
    int n;
} workers;

static workers children_of(pid_t master)
{
    workers w = { .n = 0 };
    w.n = h_children(master, w.pid, 32);
    if (w.n > 32)
        w.n = 32;
    return w;
}

static char *pids_str(const workers *w)
{
    char *s = h_fmt("%s", "");
    for (int i = 0; i < w->n; i++)
        s = h_fmt("%s%s%ld", s, i ? " " : "", (long)w->pid[i]);
    return s;
}

static bool has_pid(const workers *w, pid_t p)
{
    for (int i = 0; i < w->n; i++)
        if (w->pid[i] == p)
            return true;
    return false;
}

/* Waits (bounded) until master has n children; returns them. */
static workers wait_workers(const h_narwhal *nw, int n, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    workers w = { .n = 0 };
    while ((w = children_of(nw->pid)).n != n && h_now_ms() < deadline)
        h_sleep_ms(50);
    cr_assert_eq(w.n, n, "narwhal has %d workers (%s), not %d, after %ld ms:\n%s", w.n,
                 pids_str(&w), n, timeout_ms, h_tail(nw->log));
    return w;
}

/* Waits until master has n children, none of them in old. */
static workers wait_all_replaced(const h_narwhal *nw, int n, const workers *old, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    workers w = { .n = 0 };
    for (;;) {
        w = children_of(nw->pid);
        bool fresh = w.n == n;
        for (int i = 0; fresh && i < w.n; i++)
            fresh = !has_pid(old, w.pid[i]);
        if (fresh)
            return w;
        cr_assert(h_now_ms() < deadline, "workers now: %s; before: %s (want %d new ones):\n%s",
                  pids_str(&w), pids_str(old), n, h_tail(nw->log));
        h_sleep_ms(50);
    }
}

/* ---- HUP ------------------------------------------------------------------------------ */

Test(ops, hup_three_times_under_load, .timeout = 90)
{
    char *conf = h_path("narwhal.conf");
    h_write_file(conf, "workers = 2\n");
    serve_tcp(nw, ng, "-c", conf, h_example("hello.so"));
    workers first = wait_workers(&nw, 2, 10000);
    assert_status(h_get(ng.port, "/"), 200, nw.log);

    h_load l = h_load_start(ng.port, "/", 6, 8);
    h_sleep_ms(1000);
    for (int i = 1; i <= 3; i++) {
        cr_assert(kill(nw.pid, SIGHUP) == 0);
        cr_assert(h_wait_count(nw.log, "reload done: generation", i, 10000),
                  "HUP %d: no \"reload done\" line after 10 s:\n%s", i, h_tail(nw.log));
        h_sleep_ms(300);
    }
    h_load_finish(&l, nw.log);
    wait_all_replaced(&nw, 2, &first, 10000);
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");
}

Test(ops, hup_with_broken_config_keeps_serving, .timeout = 60)
{
    char *conf = h_path("narwhal.conf");
    h_write_file(conf, "workers = 2\n");
    serve_tcp(nw, ng, "-c", conf, h_example("hello.so"));
    workers before = wait_workers(&nw, 2, 10000);
    assert_status(h_get(ng.port, "/"), 200, nw.log);

    h_write_file(conf, "workers = 2\ntimeout = not-a-number\n");
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log,
                              "the configuration does not load; the current workers go on serving",
                              5000),
              "no line about the broken configuration:\n%s", h_tail(nw.log));
    h_sleep_ms(500);
    for (int i = 0; i < 5; i++) {
        h_response r = h_get(ng.port, "/");
        assert_status(r, 200, nw.log);
        assert_body(r, "Hello, World!\n");
    }
    workers after = children_of(nw.pid);
    bool same = after.n == before.n;
    for (int i = 0; same && i < after.n; i++)
        same = has_pid(&before, after.pid[i]);
    cr_assert(same, "workers changed on a broken config: %s -> %s", pids_str(&before),
              pids_str(&after));
    cr_assert(h_alive(nw.pid));

    /* fixed again, HUP works again */
    h_write_file(conf, "workers = 2\n");
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done: generation", 10000),
              "no reload after the config was fixed:\n%s", h_tail(nw.log));
    assert_status(h_get(ng.port, "/"), 200, nw.log);
}

/* ---- TTIN / TTOU ------------------------------------------------------------------------- */

Test(ops, ttin_ttou, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "2", h_example("hello.so"));
    wait_workers(&nw, 2, 10000);

    cr_assert(kill(nw.pid, SIGTTIN) == 0);
    wait_workers(&nw, 3, 10000);
    assert_status(h_get(ng.port, "/"), 200, nw.log);

    /* one at a time: two identical signals sent at once may merge into one */
    cr_assert(kill(nw.pid, SIGTTOU) == 0);
    wait_workers(&nw, 2, 10000);
    cr_assert(kill(nw.pid, SIGTTOU) == 0);
    wait_workers(&nw, 1, 10000);
    assert_status(h_get(ng.port, "/"), 200, nw.log);

    /* never fewer than one */
    cr_assert(kill(nw.pid, SIGTTOU) == 0);
    h_sleep_ms(2000);
    workers w = wait_workers(&nw, 1, 100);
    cr_assert(h_alive(w.pid[0]));
    cr_assert_eq(h_count_text(nw.log, "SIGTTOU: 0 workers"), 0, "TTOU went to 0:\n%s",
                 h_tail(nw.log));
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");
}

/* ---- USR1 ------------------------------------------------------------------------------- */

Test(ops, usr1_reopens_logs, .timeout = 60)
{
    char *elog = h_path("error.log"), *alog = h_path("access.log");
    char *elog1 = h_fmt("%s.1", elog), *alog1 = h_fmt("%s.1", alog);
    serve_tcp(nw, ng, "-w", "2", "--error-logfile", elog, "--access-logfile", alog,
              h_testapp("log"));
    wait_workers(&nw, 2, 10000);
    for (int i = 0; i < 3; i++)
        assert_status(h_get(ng.port, h_fmt("/before-%d", i)), 200, elog);
    cr_assert(h_wait_count(alog, "/before-", 3, 3000), "access log:\n%s", h_tail(alog));
    cr_assert(h_wait_count(elog, "testapp log line", 3, 3000), "error log:\n%s", h_tail(elog));

    /* what logrotate does: rename, then USR1 */
    cr_assert(rename(elog, elog1) == 0 && rename(alog, alog1) == 0);
    char *e_old = h_read_file(elog1, NULL), *a_old = h_read_file(alog1, NULL);
    cr_assert(kill(nw.pid, SIGUSR1) == 0);
    cr_assert(h_wait_for_text(elog, "SIGUSR1: logs reopened", 5000),
              "no new error log with the reopen line; old one:\n%s", h_tail(elog1));
    /* the master has signalled the workers when it logs that line; give
     * them a moment to turn their (idle) loops */
    h_sleep_ms(300);

    for (int i = 0; i < 10; i++)
        assert_status(h_get(ng.port, h_fmt("/after-%d", i)), 200, elog);
    cr_assert(h_wait_count(alog, "/after-", 10, 3000), "new access log:\n%s\nold:\n%s",
              h_tail(alog), h_tail(alog1));
    cr_assert(h_wait_count(elog, "testapp log line", 10, 3000),
              "the workers' lines are not in the new error log:\n%s\nold:\n%s", h_tail(elog),
              h_tail(elog1));
    /* nothing at all went to the old files after the signal */
    cr_assert_str_eq(h_read_file(alog1, NULL), a_old, "the old access log got new lines:\n%s",
                     h_tail(alog1));
    cr_assert_str_eq(h_read_file(elog1, NULL), e_old, "the old error log got new lines:\n%s",
                     h_tail(elog1));
}

/* ---- max_requests --------------------------------------------------------------------------- */

Test(ops, max_requests_under_load, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "2", "--max-requests", "50", "--max-requests-jitter", "10",
              h_example("hello.so"));
    workers first = wait_workers(&nw, 2, 10000);
    h_load l = h_load_start(ng.port, "/", 4, 8);
    h_load_finish(&l, nw.log);
    cr_assert(h_count_text(nw.log, "max_requests reached") >= 2,
              "no worker stopped for max_requests:\n%s", h_tail(nw.log));
    wait_all_replaced(&nw, 2, &first, 10000);
    assert_status(h_get(ng.port, "/"), 200, nw.log);
}

/* Recycling and reloads behind nginx's upstream keep-alive leave nginx's
 * error log clean: a stopping worker's kept connections end with their next
 * response (its tail and the FIN together: nginx does not cache a
 * connection it saw end), or after a second idle, never while nginx may be
 * sending into them ("upstream prematurely closed connection", dozens of
 * lines per reload before). */
Test(ops, recycling_behind_keepalive_leaves_nginx_log_clean, .timeout = 90)
{
    h_narwhal nw = h_narwhal_serve("-w", "2", "--max-requests", "300", "--max-requests-jitter",
                                   "50", h_example("hello.so"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_KEEPALIVE, h_fmt("127.0.0.1:%d", nw.port));
    h_load l = h_load_start(ng.port, "/", 6, 8);
    h_sleep_ms(1500);
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    /* the reload happens under the load, not after it */
    cr_assert(h_wait_for_text(nw.log, "reload done", 4000), "no reload under load:\n%s",
              h_tail(nw.log));
    h_load_finish(&l, nw.log);
    cr_assert(h_count_text(nw.log, "max_requests reached") >= 4,
              "not enough recycling to tell:\n%s", h_tail(nw.log));
    cr_assert_eq(h_count_text(ng.error_log, "[error]"), 0, "nginx logged errors:\n%s",
                 h_tail(ng.error_log));
}

/* ---- USR2 + WINCH + TERM --------------------------------------------------------------------- */

Test(ops, usr2_winch_term_upgrade_under_load, .timeout = 90)
{
    char *pidfile = h_path("nw.pid"), *pidfile2 = h_fmt("%s.2", pidfile);
    char *app = h_classapp("whoami");
    serve_tcp(nw, ng, "-w", "2", "-p", pidfile, app);
    workers old_workers = wait_workers(&nw, 2, 10000);
    pid_t old = nw.pid;
    cr_assert_eq(h_read_pidfile(pidfile), old);

    h_load l = h_load_start(ng.port, "/", 8, 8);
    h_sleep_ms(1000);
    cr_assert(kill(old, SIGUSR2) == 0);
    cr_assert(h_wait_for_text(nw.log, "SIGUSR2: started new master", 5000), "%s",
              h_tail(nw.log));
    pid_t newm = 0;
    for (long end = h_now_ms() + 10000; !newm && h_now_ms() < end; h_sleep_ms(50))
        newm = h_read_pidfile(pidfile2);
    cr_assert(newm > 0 && newm != old, "no new master in %s:\n%s", pidfile2, h_tail(nw.log));
    h_adopt(newm); /* stopped at teardown; it outlives the old master's group */
    h_narwhal nm = { .pid = newm, .port = nw.port, .log = nw.log };
    workers new_workers = wait_workers(&nm, 2, 10000);

    /* WINCH: the old master stops its workers (its only child left is the
     * new master) */
    cr_assert(kill(old, SIGWINCH) == 0);
    workers w = { .n = 0 };
    for (long end = h_now_ms() + 10000; h_now_ms() < end; h_sleep_ms(50))
        if ((w = children_of(old)).n == 1)
            break;
    cr_assert(w.n == 1 && w.pid[0] == newm, "the old master's children after WINCH: %s:\n%s",
              pids_str(&w), h_tail(nw.log));
    cr_assert(h_alive(old), "the old master exited on WINCH");

    int st;
    cr_assert(kill(old, SIGTERM) == 0);
    cr_assert(h_wait_exit(old, 15000, &st), "the old master still runs 15 s after TERM:\n%s",
              h_tail(nw.log));
    cr_assert(h_exited_with(st, 0), "the old master %s", h_wstatus_str(st));

    cr_assert(h_wait_for_text(nw.log, "pidfile is now", 5000), "%s", h_tail(nw.log));
    cr_assert_eq(h_read_pidfile(pidfile), newm, "%s does not name the new master %ld", pidfile,
                 (long)newm);
    cr_assert_not(h_exists(pidfile2), "%s is still there", pidfile2);

    h_load_finish(&l, nw.log);
    for (int i = 0; i < 5; i++) {
        h_response r = h_get(ng.port, "/");
        assert_status(r, 200, nw.log);
        long pid = r.body ? strtol(r.body + (strncmp(r.body, "pid ", 4) ? 0 : 4), NULL, 10) : 0;
        workers now = children_of(newm);
        cr_assert(has_pid(&now, (pid_t)pid) && !has_pid(&old_workers, (pid_t)pid),
                  "answered by pid %ld; the new master's workers: %s (at start: %s)", pid,
                  pids_str(&now), pids_str(&new_workers));
    }
    cr_assert(h_alive(newm));
}

/* ---- --reload ------------------------------------------------------------------------------ */


/* Compiles code (C against narwhal.h) into the shared object out. */
static void build_app(const char *code, const char *out)
{
    static int n;
    char *src = h_path("build-%d.c", ++n), *cclog = h_path("build-%d.log", n);
    h_write_file(src, code);
    char *cc[] = { "/usr/bin/cc", "-shared", "-fPIC",
                   h_fmt("-I%s/include", h_env("NARWHAL_SRCDIR")), "-o", (char *)out, src, NULL };
    int st = h_run(cclog, cc, NULL, 60000);
    cr_assert(h_exited_with(st, 0), "cc %s:\n%s", h_wstatus_str(st), h_tail(cclog));
}

Test(ops, reload_on_rebuilt_app, .timeout = 90)
{
    char *dir = h_path("app");
    cr_assert(mkdir(dir, 0755) == 0);
    char *app = h_fmt("%s/app.so", dir);
    h_copy_file(h_example("hello.so"), app);
    serve_tcp(nw, ng, "-w", "1", "--reload", app);
    wait_workers(&nw, 1, 10000);
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");

    /* a new build, written elsewhere and renamed over the app */
    char *tmp = h_fmt("%s/app.so.tmp", dir);
    build_app("#include <narwhal.h>\n"
              "int app(nw_request *req)\n"
              "{\n"
              "    nw_add_header(req, \"Content-Type\", \"text/plain\");\n"
              "    nw_printf(req, \"Version two\\n\");\n"
              "    return 0;\n"
              "}\n",
              tmp);
    cr_assert(rename(tmp, app) == 0);
    long t0 = h_now_ms();
    bool two = false;
    while (!two && h_now_ms() - t0 < 5000) {
        r = h_http(ng.port, "GET", "/", NULL, NULL, 0, 5000);
        assert_status(r, 200, nw.log);
        two = strcmp(r.body, "Version two\n") == 0;
        if (!two) {
            assert_body(r, "Hello, World!\n");
            h_sleep_ms(100);
        }
    }
    cr_assert(two, "the rebuilt app is not served 5 s after it was renamed in:\n%s",
              h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "reload done", 5000), "%s", h_tail(nw.log));

    /* a broken build: the new workers cannot load it, the old ones serve */
    int done = h_count_text(nw.log, "reload done");
    char *bad = h_fmt("%s/app.so.bad", dir);
    h_write_file(bad, "this is not a shared object\n");
    cr_assert(rename(bad, app) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload failed", 10000),
              "no \"reload failed\" after a broken app was renamed in:\n%s", h_tail(nw.log));
    for (int i = 0; i < 5; i++) {
        r = h_get(ng.port, "/");
        assert_status(r, 200, nw.log);
        assert_body(r, "Version two\n");
        h_sleep_ms(100);
    }
    cr_assert_eq(h_count_text(nw.log, "reload done"), done, "a broken app was put in service");
    cr_assert(h_alive(nw.pid));
}

/* `cp` onto the app (truncate, then write in chunks) while it serves: the
 * running workers map a private copy, so none dies (it was SIGBUS for every
 * worker, then boot failures stopped the master); --reload then serves the
 * new build once the file is whole. */
Test(ops, app_rewritten_in_place_keeps_serving, .timeout = 90)
{
    char *dir = h_path("app");
    cr_assert(mkdir(dir, 0755) == 0);
    char *app = h_fmt("%s/app.so", dir);
    h_copy_file(h_example("hello.so"), app);
    serve_tcp(nw, ng, "-w", "2", "--reload", app);
    wait_workers(&nw, 2, 10000);
    assert_status(h_get(ng.port, "/"), 200, nw.log);

    char *v2 = h_path("v2.so");
    build_app("#include <narwhal.h>\n"
              "int app(nw_request *req)\n"
              "{\n"
              "    nw_printf(req, \"Version two\\n\");\n"
              "    return 0;\n"
              "}\n",
              v2);
    size_t len;
    char *data = h_read_file(v2, &len);
    cr_assert(data && len > 4096);

    int fd = open(app, O_WRONLY | O_TRUNC);
    cr_assert(fd >= 0, "%s: %s", app, strerror(errno));
    for (size_t off = 0; off < len; off += 2048) {
        size_t n = len - off < 2048 ? len - off : 2048;
        cr_assert(write(fd, data + off, n) == (ssize_t)n);
        for (int i = 0; i < 2; i++) {
            h_response r = h_get(ng.port, "/");
            assert_status(r, 200, nw.log);
        }
        h_sleep_ms(50);
    }
    cr_assert(close(fd) == 0);

    bool two = false;
    for (long end = h_now_ms() + 15000; !two && h_now_ms() < end; h_sleep_ms(100)) {
        h_response r = h_get(ng.port, "/");
        assert_status(r, 200, nw.log);
        two = strcmp(r.body, "Version two\n") == 0;
    }
    cr_assert(two, "the rewritten app is not served:\n%s", h_tail(nw.log));
    cr_assert(h_alive(nw.pid));
    cr_assert_eq(h_count_text(nw.log, "SIGBUS"), 0, "%s", h_tail(nw.log));
    cr_assert_eq(h_count_text(nw.log, "died from"), 0, "%s", h_tail(nw.log));
}

/* Is sig blocked in process pid (/proc/PID/status SigBlk)? */
static bool sig_blocked(pid_t pid, int sig)
{
    char *text = h_read_file(h_fmt("/proc/%ld/status", (long)pid), NULL);
    char *line = text ? strstr(text, "\nSigBlk:") : NULL;
    return line && (strtoull(line + 8, NULL, 16) >> (sig - 1)) & 1;
}

/* A HUP that arrives while the master starts (here: during a slow preload,
 * before the pidfile is written) waits for the master's loop instead of
 * killing it (the signals were blocked only after the pidfile was
 * written). */
Test(ops, hup_during_start_does_not_kill, .timeout = 60)
{
    char *so = h_path("slow.so");
    build_app("#include <narwhal.h>\n#include <unistd.h>\n"
              "__attribute__((constructor)) static void slow(void) { usleep(1500000); }\n"
              "int app(nw_request *req) { nw_printf(req, \"up\\n\"); return 0; }\n",
              so);
    char *pidfile = h_path("nw.pid");
    int port = h_free_port();
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", port), "-p", pidfile, "--preload",
                                   so, NULL);
    /* after exec, once the signals are blocked, or half a second in (well
     * inside the preload) */
    char *bin = realpath(h_env("NARWHAL_BIN"), NULL);
    long t0 = h_now_ms();
    for (;;) {
        char exe[4096];
        ssize_t n = readlink(h_fmt("/proc/%ld/exe", (long)nw.pid), exe, sizeof exe - 1);
        bool execd = n > 0 && (exe[n] = 0, strcmp(exe, bin) == 0);
        if ((execd && sig_blocked(nw.pid, SIGHUP)) || h_now_ms() - t0 > 500)
            break;
        h_sleep_ms(5);
    }
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    for (long end = h_now_ms() + 10000; h_alive(nw.pid) && h_now_ms() < end; h_sleep_ms(50))
        if (h_read_pidfile(pidfile) == nw.pid)
            break;
    cr_assert(h_alive(nw.pid), "a HUP during start killed the master:\n%s", h_tail(nw.log));
    cr_assert_eq(h_read_pidfile(pidfile), nw.pid);
    cr_assert(h_wait_listen(nw.pid, port, 10000), "narwhal does not listen:\n%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "SIGHUP", 5000), "the HUP was lost:\n%s", h_tail(nw.log));
}

/* -c and --chdir given as relative paths still name the same files on HUP
 * and USR2, after the master has changed directory. */
Test(ops, relative_config_and_chdir_survive_hup_and_usr2, .timeout = 90)
{
    cr_assert(chdir(h_dir()) == 0);
    cr_assert(mkdir("sub", 0755) == 0);
    h_write_file(h_path("narwhal.conf"), "workers = 2\n");
    char *pidfile = h_path("nw.pid"), *pidfile2 = h_fmt("%s.2", pidfile);
    h_narwhal nw = h_narwhal_serve("-c", "narwhal.conf", "--chdir", "sub", "-p", pidfile,
                                   h_example("hello.so"), NULL);
    wait_workers(&nw, 2, 10000);
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done", 10000), "HUP did not reload:\n%s",
              h_tail(nw.log));
    cr_assert_eq(h_count_text(nw.log, "does not load"), 0, "%s", h_tail(nw.log));

    cr_assert(kill(nw.pid, SIGUSR2) == 0);
    pid_t newm = 0;
    for (long end = h_now_ms() + 10000; !newm && h_now_ms() < end; h_sleep_ms(50))
        newm = h_read_pidfile(pidfile2);
    cr_assert(newm > 0 && newm != nw.pid, "no new master in %s:\n%s", pidfile2, h_tail(nw.log));
    h_adopt(newm);
    h_narwhal nm = { .pid = newm, .port = nw.port, .log = nw.log };
    wait_workers(&nm, 2, 10000);
    cr_assert(h_alive(newm), "%s", h_tail(nw.log));
    char cwd[4096];
    ssize_t n = readlink(h_fmt("/proc/%ld/cwd", (long)newm), cwd, sizeof cwd - 1);
    cr_assert(n > 0);
    cwd[n] = 0;
    char *want = realpath(h_path("sub"), NULL);
    cr_assert_str_eq(cwd, want, "the new master runs in %s, not %s", cwd, want);
}

/* ---- boot failure storm ------------------------------------------------------------------- */

Test(ops, boot_failure_storm_stops_master, .timeout = 60)
{
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("127.0.0.1:%d", h_free_port()), "-w", "2",
                                   h_env("NARWHAL_BOOTFAIL"), NULL);
    int st;
    long t0 = h_now_ms();
    cr_assert(h_wait_exit(nw.pid, 20000, &st), "narwhal still runs 20 s into a boot storm:\n%s",
              h_tail(nw.log));
    cr_assert(st >= 0 && !h_exited_with(st, 0), "narwhal %s after a boot storm",
              h_wstatus_str(st));
    cr_assert(h_now_ms() - t0 < 20000);
    cr_assert(h_count_text(nw.log, "failed to boot 5 times in a row") == 1,
              "no \"failed to boot 5 times in a row\":\n%s", h_tail(nw.log));
}

/* ---- --preload and --spew ------------------------------------------------------------------ */

Test(ops, preload_serves_and_hup_keeps_master_app, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "2", "--preload", h_example("hello.so"));
    workers first = wait_workers(&nw, 2, 10000);
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");
    /* HUP replaces the workers, with the app as the master loaded it */
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done: generation", 10000), "%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "preload_app: the app stays as the master loaded it", 100),
              "no preload_app warning on HUP:\n%s", h_tail(nw.log));
    wait_all_replaced(&nw, 2, &first, 10000);
    r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    assert_body(r, "Hello, World!\n");
}

Test(ops, spew_logs_protocol_records, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "1", "--spew", h_example("hello.so"));
    wait_workers(&nw, 1, 10000);
    h_response r = h_get(ng.port, "/spewed?x=1");
    assert_status(r, 200, nw.log);
    const char *want[] = { "spew: connection", "fastcgi BEGIN_REQUEST", "fastcgi PARAMS",
                           " -> ", "request GET /spewed?x=1 dispatched",
                           "request finished (status 200" };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert(h_wait_for_text(nw.log, want[i], 3000), "no \"%s\" with --spew:\n%s", want[i],
                  h_tail(nw.log));
}

/* ---- once a generation serves, only an operator's signal stops the master ---------------- */

/* A URL that crashes its worker must not stop the server: a crash storm
 * backs off the respawns, the master stays. */
Test(ops, crash_storm_backs_off_and_keeps_serving, .timeout = 90)
{
    serve_tcp(nw, ng, "-w", "2", h_testapp("crash"));
    wait_workers(&nw, 2, 10000);
    for (int i = 0; i < 24; i++) {
        h_response r = h_http(ng.port, "GET", "/c?crash=1", NULL, NULL, 0, 15000);
        cr_assert(r.status == 502 || r.status == 504, "crash %d got %d (%s):\n%s", i, r.status,
                  r.error ? r.error : "", h_tail(nw.log));
    }
    cr_assert(h_wait_for_text(nw.log, "crash storm; respawning in", 5000),
              "no backoff logged:\n%s", h_tail(nw.log));
    cr_assert(h_alive(nw.pid), "the master stopped in a crash storm:\n%s", h_tail(nw.log));
    h_response r = h_http(ng.port, "GET", "/c?x", NULL, NULL, 0, 15000);
    assert_status(r, 200, nw.log);
    assert_body(r, "ok\n");
    cr_assert(h_alive(nw.pid));
    cr_assert_eq(h_count_text(nw.log, "stopping"), 0, "%s", h_tail(nw.log));
}

/* Workers retired by a reload get graceful_timeout, then SIGKILL. */
Test(ops, retired_worker_killed_after_graceful_timeout, .timeout = 60)
{
    serve_tcp(nw, ng, "-w", "1", "--graceful-timeout", "1", h_testapp("slow"));
    workers old = wait_workers(&nw, 1, 10000);
    h_bg_request b = { .port = ng.port, .path = "/slow?ms=10000" };
    h_bg_start(&b);
    cr_assert(h_wait_for_text(nw.log, "slow: sleeping", 5000), "%s", h_tail(nw.log));
    long t0 = h_now_ms();
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done", 10000), "%s", h_tail(nw.log));
    while (h_alive(old.pid[0]) && h_now_ms() - t0 < 5000)
        h_sleep_ms(50);
    cr_assert_not(h_alive(old.pid[0]),
                  "the retired worker %ld still runs %ld ms after HUP (graceful_timeout 1 s):\n%s",
                  (long)old.pid[0], h_now_ms() - t0, h_tail(nw.log));
    const char *needles[] = { h_fmt("worker %ld still running", (long)old.pid[0]), "killing it",
                              NULL };
    cr_assert(h_wait_line(nw.log, needles, 2000), "the kill is not logged:\n%s", h_tail(nw.log));
    h_bg_join(&b);
    assert_status(h_get(ng.port, "/slow?ms=1"), 200, nw.log);
}

/* TTIN stops at half the scoreboard, so a reload always has room for its
 * new generation (TTIN to every slot blocked every later reload). */
Test(ops, ttin_is_bounded_so_reload_fits, .timeout = 120)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", h_example("hello.so"), NULL);
    wait_workers(&nw, 1, 10000);
    int sent = 0;
    for (; sent < 300 && h_count_text(nw.log, "SIGTTIN: refused") == 0; sent++) {
        cr_assert(kill(nw.pid, SIGTTIN) == 0);
        /* one at a time: signals sent together may merge */
        cr_assert(h_wait_count(nw.log, "SIGTTIN: ", sent + 1, 5000), "TTIN %d not seen:\n%s",
                  sent + 1, h_tail(nw.log));
    }
    cr_assert(h_count_text(nw.log, "SIGTTIN: refused") > 0, "%d TTINs all taken:\n%s", sent,
              h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "the most this master runs (half of its", 100));
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done", 60000), "the reload never finished:\n%s",
              h_tail(nw.log));
    wait_workers(&nw, 1, 30000);
}

/* --exec: the configured stop signal is an expected death on a reload */
Test(ops, exec_retirement_by_stop_signal_is_info, .timeout = 60)
{
    char *prog = h_path("sleeper.sh");
    h_write_file(prog, "#!/bin/sh\nexec sleep 1000\n");
    cr_assert(chmod(prog, 0755) == 0);
    h_narwhal nw = h_narwhal_serve("-w", "1", "--exec", prog, NULL);
    workers old = wait_workers(&nw, 1, 10000);
    cr_assert(kill(nw.pid, SIGHUP) == 0);
    cr_assert(h_wait_for_text(nw.log, "reload done", 15000), "%s", h_tail(nw.log));
    const char *needles[] = { h_fmt("worker %ld ", (long)old.pid[0]), "SIGUSR1", NULL };
    char *line = h_wait_line(nw.log, needles, 10000);
    cr_assert(line, "the old child's end is not logged:\n%s", h_tail(nw.log));
    cr_assert(strstr(line, "[INFO]") && !strstr(line, "died"),
              "the stop signal is logged as a failure: %s", line);
}

/* Once a generation has served, workers that cannot boot (here: the app
 * file replaced by garbage, then a worker killed) are retried with backoff;
 * the master does not stop and the worker left goes on serving. */
Test(ops, boot_failures_after_serving_back_off, .timeout = 90)
{
    char *app = h_path("app.so");
    h_copy_file(h_example("hello.so"), app);
    serve_tcp(nw, ng, "-w", "2", app);
    workers w = wait_workers(&nw, 2, 10000);
    assert_status(h_get(ng.port, "/"), 200, nw.log);
    char *bad = h_path("app.so.bad");
    h_write_file(bad, "this is not a shared object\n");
    cr_assert(rename(bad, app) == 0);
    cr_assert(kill(w.pid[0], SIGKILL) == 0);
    cr_assert(h_wait_for_text(nw.log, "failed to boot 5 times in a row; the running workers go on",
                              30000),
              "no backoff after 5 boot failures:\n%s", h_tail(nw.log));
    cr_assert(h_alive(nw.pid), "the master stopped:\n%s", h_tail(nw.log));
    for (int i = 0; i < 5; i++) {
        h_response r = h_get(ng.port, "/");
        assert_status(r, 200, nw.log);
        assert_body(r, "Hello, World!\n");
    }
    /* a good app again: the next try boots */
    h_copy_file(h_example("hello.so"), h_path("app.so.good"));
    cr_assert(rename(h_path("app.so.good"), app) == 0);
    wait_workers(&nw, 2, 30000);
    cr_assert(h_alive(nw.pid));
}
