/*
 * test_procs.c - the processes narwhal starts and what they inherit: the
 * signal mask and dispositions of programs an app starts, the identity of
 * workers and --exec children under `user` / `group`, the parent-death
 * signal after the drop, the log files a worker must reopen, what the
 * master does with --exec programs' output and orphans, and --reload on a
 * path whose directory is replaced.
 *
 * The tests run as root (they change uid); each skips otherwise.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(procs, .init = h_setup, .fini = h_teardown, .timeout = 60);

static void need_root(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (changes uid)");
}

/* The value of field (e.g. "SigBlk") in /proc/<pid>/status, or NULL. */
static char *status_field(pid_t pid, const char *field)
{
    char *text = h_read_file(h_fmt("/proc/%d/status", (int)pid), NULL);
    if (!text)
        return NULL;
    char *key = h_fmt("\n%s:", field);
    char *p = strstr(text, key);
    if (!p)
        return NULL;
    p += strlen(key);
    p += strspn(p, " \t");
    int n = (int)strcspn(p, "\n");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--; /* Groups: ends in a space */
    return h_fmt("%.*s", n, p);
}

/* A program an app started must begin with nothing blocked and nothing
 * ignored: a TERM, INT or HUP reaches it, and SIGPIPE is the default. */
static void assert_clean_signals(pid_t pid, const char *nwlog)
{
    /* until it has exec'd it is a copy of the worker, with its handlers */
    long t0 = h_now_ms();
    char *comm;
    while (!((comm = h_read_file(h_fmt("/proc/%d/comm", (int)pid), NULL)) &&
             strcmp(comm, "sleep\n") == 0) &&
           h_now_ms() - t0 < 5000)
        h_sleep_ms(10);
    cr_assert(comm && strcmp(comm, "sleep\n") == 0, "pid %d did not exec sleep\n%s", (int)pid,
              h_tail(nwlog));
    char *blk = status_field(pid, "SigBlk"), *ign = status_field(pid, "SigIgn");
    cr_assert(blk && ign, "no /proc/%d/status", (int)pid);
    /* Signals 32 and 33 are glibc's own (thread cancellation, setxid): no
     * program can set them through libc, so what the environment gave
     * (make check's drivers ignore 32) stays. Everything else is narwhal's. */
    unsigned long long reserved = (1ULL << 31) | (1ULL << 32);
    unsigned long long b = strtoull(blk, NULL, 16) & ~reserved,
                       g = strtoull(ign, NULL, 16) & ~reserved;
    cr_assert_eq(b, 0, "pid %d started by the app has SigBlk %s\n%s", (int)pid, blk, h_tail(nwlog));
    cr_assert_eq(g, 0, "pid %d started by the app has SigIgn %s\n%s", (int)pid, ign, h_tail(nwlog));
    cr_assert(kill(pid, SIGTERM) == 0);
    t0 = h_now_ms();
    while (h_alive(pid) && h_now_ms() - t0 < 3000)
        h_sleep_ms(20);
    cr_assert(!h_alive(pid), "pid %d started by the app survives SIGTERM", (int)pid);
}

/* ---- the signals of programs an app starts (12.6) ------------------------------------ */

Test(procs, program_started_from_worker_init_has_clean_signals)
{
    char *pids = h_path("spawned");
    h_narwhal nw = h_narwhal_serve("-w", "1", "--env", h_fmt("TESTAPP_SPAWN=%s", pids),
                                   h_testapp("app"), NULL);
    cr_assert(h_wait_for_text(pids, "\n", 10000), "nw_worker_init did not start its program:\n%s",
              h_tail(nw.log));
    pid_t pid = (pid_t)atoi(h_read_file(pids, NULL));
    cr_assert(pid > 0);
    assert_clean_signals(pid, nw.log);
}

Test(procs, program_started_from_threads_handler_has_clean_signals)
{
    h_narwhal nw =
        h_narwhal_serve("-w", "1", "-k", "threads", "--threads", "4", h_classapp("spawn"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = h_get(ng.port, "/");
    assert_status(r, 200, nw.log);
    cr_assert(r.body && strncmp(r.body, "pid ", 4) == 0, "body: %s", r.body ? r.body : "");
    assert_clean_signals((pid_t)atoi(r.body + 4), nw.log);
}

/* ---- user and group (12.7) ----------------------------------------------------------- */

Test(procs, numeric_user_without_passwd_entry_needs_group)
{
    need_root();
    char *log = h_path("nw.log");
    char *argv[] = {(char *)h_env("NARWHAL_BIN"),
                    "-b",
                    h_fmt("127.0.0.1:%d", h_free_port()),
                    "--user",
                    "54321",
                    h_testapp("app"),
                    NULL};
    int st = h_run(log, argv, NULL, 10000);
    cr_assert(h_exited_with(st, 1),
              "--user 54321 (no passwd entry, no group): %s, not a refusal; workers would "
              "keep gid 0:\n%s",
              h_wstatus_str(st), h_tail(log));
    cr_assert(h_wait_for_text(log, "set group", 1000), "%s", h_tail(log));
}

/* The worker (or --exec child) pid runs as uid with gid and no other group. */
static void assert_identity(pid_t pid, uid_t uid, gid_t gid, const char *nwlog)
{
    char *u = status_field(pid, "Uid"), *g = status_field(pid, "Gid"),
         *groups = status_field(pid, "Groups");
    cr_assert(u && g && groups, "no /proc/%d/status", (int)pid);
    char *want_u =
        h_fmt("%u\t%u\t%u\t%u", (unsigned)uid, (unsigned)uid, (unsigned)uid, (unsigned)uid);
    char *want_g =
        h_fmt("%u\t%u\t%u\t%u", (unsigned)gid, (unsigned)gid, (unsigned)gid, (unsigned)gid);
    cr_assert_str_eq(u, want_u, "pid %d: Uid %s\n%s", (int)pid, u, h_tail(nwlog));
    cr_assert_str_eq(g, want_g, "pid %d: Gid %s\n%s", (int)pid, g, h_tail(nwlog));
    cr_assert_str_eq(groups, h_fmt("%u", (unsigned)gid), "pid %d: Groups %s\n%s", (int)pid, groups,
                     h_tail(nwlog));
}

/* A numeric user with a passwd entry gets that entry's group, never 0. */
Test(procs, numeric_user_gets_its_passwd_group)
{
    need_root();
    struct passwd *pw = getpwuid(65534);
    if (!pw)
        cr_skip_test("no passwd entry for uid 65534");
    gid_t gid = pw->pw_gid;
    h_narwhal nw = h_narwhal_serve("-w", "1", "--user", "65534", h_testapp("app"), NULL);
    pid_t kid;
    cr_assert_eq(h_wait_children(nw.pid, &kid, 1, 1, 10000), 1, "%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "booting worker", 10000), "%s", h_tail(nw.log));
    assert_identity(kid, 65534, gid, nw.log);
}

Test(procs, exec_child_gets_user_group_and_no_other_group)
{
    need_root();
    struct passwd *pw = getpwuid(65534);
    if (!pw)
        cr_skip_test("no passwd entry for uid 65534");
    gid_t gid = pw->pw_gid;
    h_narwhal nw =
        h_narwhal_serve("-w", "1", "--user", "65534", "--exec", h_env("NARWHAL_FCGI_HELLO"), NULL);
    pid_t kid;
    cr_assert_eq(h_wait_children(nw.pid, &kid, 1, 1, 10000), 1, "%s", h_tail(nw.log));
    /* after the exec: the child runs the program, not narwhal */
    long t0 = h_now_ms();
    char *exe = NULL;
    while (h_now_ms() - t0 < 5000) {
        char buf[4096];
        ssize_t n = readlink(h_fmt("/proc/%d/exe", (int)kid), buf, sizeof buf - 1);
        if (n > 0 && (buf[n] = 0, strstr(buf, "fcgi_hello"))) {
            exe = buf;
            break;
        }
        h_sleep_ms(20);
    }
    cr_assert(exe, "the --exec child did not exec:\n%s", h_tail(nw.log));
    assert_identity(kid, 65534, gid, nw.log);
}

/* ---- the parent-death signal (12.8) --------------------------------------------------- */

/* The worker must get SIGTERM the moment the master dies, also after it
 * changed uid (which clears the parent-death signal). Without it, it only
 * notices at its next heartbeat ("the master is gone"). */
Test(procs, worker_gets_parent_death_signal_after_user_change)
{
    need_root();
    h_narwhal nw = h_narwhal_serve("-w", "1", "--user", "65534", h_testapp("app"), NULL);
    pid_t kid;
    cr_assert_eq(h_wait_children(nw.pid, &kid, 1, 1, 10000), 1, "%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "booting worker", 10000), "%s", h_tail(nw.log));
    h_sleep_ms(200);
    cr_assert(kill(nw.pid, SIGKILL) == 0);
    cr_assert(h_wait_for_text(nw.log, "worker stopping", 5000), "the worker did not stop:\n%s",
              h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "worker stopping: SIGTERM", 100),
              "the worker stopped without the parent-death signal:\n%s", h_tail(nw.log));
}

/* ---- logs the workers reopen (12.9) --------------------------------------------------- */

Test(procs, workers_with_user_reopen_rotated_logs)
{
    need_root();
    /* the worker opens the files by name: it needs to reach them */
    cr_assert(chmod(h_dir(), 0755) == 0);
    char *elog = h_path("error.log"), *alog = h_path("access.log");
    serve_tcp(nw, ng, "-w", "1", "--user", "65534", "--error-logfile", elog, "--access-logfile",
              alog, h_testapp("log"));
    pid_t kid;
    cr_assert_eq(h_wait_children(nw.pid, &kid, 1, 1, 10000), 1, "%s", h_tail(elog));
    assert_status(h_get(ng.port, "/before"), 200, elog);
    cr_assert(h_wait_count(alog, "/before", 1, 3000), "access log:\n%s", h_tail(alog));

    cr_assert(rename(elog, h_fmt("%s.1", elog)) == 0 && rename(alog, h_fmt("%s.1", alog)) == 0);
    cr_assert(kill(nw.pid, SIGUSR1) == 0);
    cr_assert(h_wait_for_text(elog, "SIGUSR1: logs reopened", 5000), "no new error log");
    h_sleep_ms(300);
    for (int i = 0; i < 5; i++)
        assert_status(h_get(ng.port, h_fmt("/after-%d", i)), 200, elog);
    cr_assert(h_wait_count(alog, "/after-", 5, 3000),
              "the worker's requests are not in the new access log:\n%s\nerror log:\n%s",
              h_tail(alog), h_tail(elog));
    cr_assert(h_wait_count(elog, "testapp log line", 5, 3000), "new error log:\n%s", h_tail(elog));
    cr_assert_eq(h_count_text(elog, "Permission denied"), 0, "%s", h_tail(elog));
}

/* ---- --exec programs' output (13.6) ----------------------------------------------------- */

static long rss_kb(pid_t pid)
{
    char *v = status_field(pid, "VmRSS");
    return v ? atol(v) : -1;
}

/* Copies that write to stderr without pause and without a newline: the
 * master keeps a bounded buffer, logs the line cut once, and drops the
 * rest, instead of growing and spinning. */
Test(procs, exec_output_without_newlines_is_bounded)
{
    h_narwhal nw = h_narwhal_serve("-w", "2", "--exec", "/bin/sh", "--", "-c",
                                   "printf 'hello\\n' >&2; tr '\\0' x < /dev/zero >&2", NULL);
    pid_t kids[4];
    cr_assert_eq(h_wait_children(nw.pid, kids, 4, 2, 10000), 2, "%s", h_tail(nw.log));
    long start = rss_kb(nw.pid), peak = start;
    for (int i = 0; i < 30; i++) {
        h_sleep_ms(100);
        long r = rss_kb(nw.pid);
        peak = r > peak ? r : peak;
    }
    struct stat st;
    cr_assert(stat(nw.log, &st) == 0);
    cr_assert_lt(peak - start, 8 * 1024, "the master grew from %ld to %ld kB", start, peak);
    cr_assert_lt(st.st_size, 256 * 1024, "the log grew to %lld bytes in 3 s",
                 (long long)st.st_size);
    cr_assert_eq(h_count_text(nw.log, "] hello"), 2, "%s", h_tail(nw.log));
    cr_assert_eq(h_count_text(nw.log, "[cut: line longer than 4096 bytes]"), 2, "%s",
                 h_tail(nw.log));
    cr_assert(h_alive(nw.pid));
}

/* ---- --exec programs that daemonize (13.9) ---------------------------------------------- */

/* A program that forks and exits leaves its child behind. The master
 * adopts it (it is a child subreaper), says so and stops it, rather than
 * leaving one orphan per attempt. */
Test(procs, exec_program_that_daemonizes_leaves_no_orphan)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", "--exec", "/bin/sh", "--", "-c",
                                   "sleep 60 & echo daemon $!; exit 0", NULL);
    const char *const started[] = {"] daemon ", NULL};
    char *line = h_wait_line(nw.log, started, 10000);
    cr_assert(line, "the program did not start:\n%s", h_tail(nw.log));
    pid_t orphan = (pid_t)atoi(strstr(line, "] daemon ") + 9);
    cr_assert(orphan > 0, "%s", line);
    long t0 = h_now_ms();
    while (h_alive(orphan) && h_now_ms() - t0 < 5000)
        h_sleep_ms(50);
    cr_assert(!h_alive(orphan), "the orphan %d still runs 5 s later:\n%s", (int)orphan,
              h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, h_fmt("adopted pid %d (", (int)orphan), 1000), "%s",
              h_tail(nw.log));
}

/* ---- --reload on paths, not inodes (13.10) ---------------------------------------------- */

/* GETs / until the body is want, at most timeout_ms. */
static void wait_body(const h_nginx *ng, const char *want, const char *nwlog, long timeout_ms)
{
    long t0 = h_now_ms();
    h_response r;
    do {
        r = h_http(ng->port, "GET", "/", NULL, NULL, 0, 5000);
        assert_status(r, 200, nwlog);
        if (strcmp(r.body, want) == 0)
            return;
        h_sleep_ms(100);
    } while (h_now_ms() - t0 < timeout_ms);
    cr_assert_fail("still \"%s\", not \"%s\", %ld ms after the deploy:\n%s", r.body, want,
                   timeout_ms, h_tail(nwlog));
}

/* Two releases side by side, deploy/r1 (hello.so) and deploy/r2 (the test
 * app), each an app.so, and deploy/current a symlink to r1. */
typedef struct releases {
    char *r2, *current;
} releases;

static releases make_releases(void)
{
    char *dir = h_path("deploy");
    cr_assert(mkdir(dir, 0755) == 0);
    char *r1 = h_fmt("%s/r1", dir), *r2 = h_fmt("%s/r2", dir);
    cr_assert(mkdir(r1, 0755) == 0 && mkdir(r2, 0755) == 0);
    h_copy_file(h_example("hello.so"), h_fmt("%s/app.so", r1));
    h_copy_file(h_env("NARWHAL_TESTAPP"), h_fmt("%s/app.so", r2));
    releases r = {.r2 = r2, .current = h_fmt("%s/current", dir)};
    cr_assert(symlink("r1", r.current) == 0);
    return r;
}

/* The deploy: current swapped atomically to r2 (ln -sfn r2 current.tmp &&
 * mv -T current.tmp current). */
static void swap_to_r2(const releases *r)
{
    char *tmp = h_fmt("%s.tmp", r->current);
    cr_assert(symlink("r2", tmp) == 0 && rename(tmp, r->current) == 0);
}

/* The usual deploy: releases side by side, a `current` symlink swapped
 * atomically (ln -sfn r2 current.tmp && mv -T current.tmp current); then a
 * directory replaced (mv r2 r2.old; mkdir r2). Each is a new app. */
Test(procs, reload_follows_symlink_swap_and_replaced_directory, .timeout = 90)
{
    releases rel = make_releases();
    char *r2 = rel.r2, *current = rel.current;
    serve_tcp(nw, ng, "-w", "1", "--reload", h_fmt("%s/app.so", current));
    wait_body(&ng, "Hello, World!\n", nw.log, 10000);

    swap_to_r2(&rel);
    wait_body(&ng, "testapp\n", nw.log, 5000);
    cr_assert(h_wait_for_text(nw.log, "reload done", 5000), "%s", h_tail(nw.log));

    cr_assert(rename(r2, h_fmt("%s.old", r2)) == 0 && mkdir(r2, 0755) == 0);
    char *next = h_fmt("%s/app.so.tmp", r2);
    h_copy_file(h_example("hello.so"), next);
    cr_assert(rename(next, h_fmt("%s/app.so", r2)) == 0);
    wait_body(&ng, "Hello, World!\n", nw.log, 5000);
}

/* The usual deploy again, with the app named relative to a --chdir that is
 * the release symlink: the watch follows the symlink, not the release it
 * pointed at when narwhal started (getcwd() would have resolved it). */
Test(procs, reload_follows_symlink_swap_under_chdir, .timeout = 90)
{
    releases rel = make_releases();
    char *current = rel.current;
    serve_tcp(nw, ng, "-w", "1", "--reload", "--chdir", current, "app.so");
    wait_body(&ng, "Hello, World!\n", nw.log, 10000);
    cr_assert(h_wait_for_text(nw.log, h_fmt("watching %s/app.so", current), 5000), "%s",
              h_tail(nw.log));

    swap_to_r2(&rel);
    wait_body(&ng, "testapp\n", nw.log, 5000);
}

/* A reload that changes the app path watches the new path. */
Test(procs, reload_watches_the_app_path_the_config_names_now, .timeout = 90)
{
    char *dir = h_path("apps");
    cr_assert(mkdir(dir, 0755) == 0);
    char *a = h_fmt("%s/a.so", dir), *b = h_fmt("%s/b.so", dir);
    h_copy_file(h_example("hello.so"), a);
    h_copy_file(h_env("NARWHAL_TESTAPP"), b);
    char *conf = h_path("narwhal.conf"), *conf_tmp = h_path("narwhal.conf.tmp");
    h_write_file(conf, h_fmt("app = \"%s\"\n", a));
    serve_tcp(nw, ng, "-w", "1", "--reload", "-c", conf);
    wait_body(&ng, "Hello, World!\n", nw.log, 10000);

    h_write_file(conf_tmp, h_fmt("app = \"%s\"\n", b));
    cr_assert(rename(conf_tmp, conf) == 0);
    wait_body(&ng, "testapp\n", nw.log, 5000);
    cr_assert(h_wait_for_text(nw.log, "reload done", 5000), "%s", h_tail(nw.log));

    char *next = h_fmt("%s.tmp", b);
    h_copy_file(h_example("hello.so"), next);
    cr_assert(rename(next, b) == 0);
    wait_body(&ng, "Hello, World!\n", nw.log, 5000);
}
