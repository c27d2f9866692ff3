/*
 * test_lockdown.c - who may connect and what a worker can reach: unix
 * sockets' owner, group and mode (and after HUP and a USR2 upgrade),
 * allowed_clients and FCGI_WEB_SERVER_ADDRS through a real nginx whose
 * fastcgi_bind picks the source address, the refusal of root workers
 * without allow_root, no_new_privs in the workers, and the warning for an
 * app others may write.
 *
 * Run as root (the harness passes --allow-root then); tests that need it
 * skip otherwise.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(lockdown, .init = h_setup, .fini = h_teardown, .timeout = 60);

static void need_root(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (sockets given to another user, the root refusal)");
}

static void expect_perm(const char *path, uid_t uid, gid_t gid, unsigned mode, const char *when,
                        const char *log)
{
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s: no socket at %s:\n%s", when, path, h_tail(log));
    cr_expect(S_ISSOCK(st.st_mode), "%s: not a socket", when);
    cr_expect_eq(st.st_uid, uid, "%s: owner %u, not %u", when, (unsigned)st.st_uid, (unsigned)uid);
    cr_expect_eq(st.st_gid, gid, "%s: group %u, not %u", when, (unsigned)st.st_gid, (unsigned)gid);
    cr_expect_eq(st.st_mode & 07777, mode, "%s: mode %o, not %o", when, st.st_mode & 07777, mode);
}

/* ---- unix sockets -------------------------------------------------------------------- */

Test(lockdown, unix_socket_owner_group_mode_kept_over_hup_and_usr2)
{
    need_root();
    char *sock = h_path("nw.sock"), *pid = h_path("nw.pid");
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("unix:%s", sock), "-p", pid, "--socket-owner",
                                   "nobody", "--socket-group", "nogroup", "--socket-mode", "0640",
                                   h_testapp("app"), NULL);
    cr_assert(h_wait_unix(sock, 10000), "narwhal does not listen on %s:\n%s", sock,
              h_tail(nw.log));
    expect_perm(sock, 65534, 65534, 0640, "at start", nw.log);

    /* HUP: a new generation of workers, the same socket and file */
    cr_assert(h_wait_for_text(nw.log, "booting worker", 10000), "%s", h_tail(nw.log));
    cr_assert_eq(kill(nw.pid, SIGHUP), 0);
    cr_assert(h_wait_count(nw.log, "booting worker", 2, 10000), "no new worker after HUP:\n%s",
              h_tail(nw.log));
    expect_perm(sock, 65534, 65534, 0640, "after HUP", nw.log);
    cr_expect(h_unix_accepts(sock));

    /* USR2: the new master adopts the socket and puts narwhal's settings
     * back on its file (here after someone opened it up) */
    cr_assert_eq(chmod(sock, 0666), 0);
    cr_assert_eq(kill(nw.pid, SIGUSR2), 0);
    char *pid2 = h_fmt("%s.2", pid);
    long t0 = h_now_ms();
    while (h_read_pidfile(pid2) <= 0 && h_now_ms() - t0 < 10000)
        h_sleep_ms(50);
    pid_t newmaster = h_read_pidfile(pid2);
    cr_assert_gt(newmaster, 0, "no new master after USR2:\n%s", h_tail(nw.log));
    h_adopt(newmaster);
    cr_assert(h_wait_for_text(nw.log, "using the inherited socket", 10000), "%s", h_tail(nw.log));
    expect_perm(sock, 65534, 65534, 0640, "after USR2", nw.log);
    cr_expect(h_unix_accepts(sock));
    h_stop(newmaster, SIGTERM, 10000);
}

Test(lockdown, unix_socket_default_mode_is_0660)
{
    char *sock = h_path("d.sock");
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("unix:%s", sock), "--umask", "0",
                                   h_testapp("app"), NULL);
    cr_assert(h_wait_unix(sock, 10000), "%s", h_tail(nw.log));
    expect_perm(sock, geteuid(), getegid(), 0660, "default, under umask 0", nw.log);
}

/* ---- allowed_clients --------------------------------------------------------------- */

/* nginx with two locations to the same narwhal: /in/ connects from
 * 127.0.0.2 (fastcgi_bind), /out/ from 127.0.0.1. */
static h_nginx two_sources(const char *up)
{
    return h_nginx_start_server(h_fmt("        location /in/ {\n"
                                      "            include fastcgi_params;\n"
                                      "            fastcgi_bind 127.0.0.2;\n"
                                      "            fastcgi_pass %s;\n"
                                      "        }\n"
                                      "        location /out/ {\n"
                                      "            include fastcgi_params;\n"
                                      "            fastcgi_pass %s;\n"
                                      "        }\n",
                                      up, up));
}

static void expect_refused_from_127_0_0_1(const h_narwhal *nw, const h_nginx *ng,
                                          const char *access)
{
    h_response in = h_get(ng->port, "/in/x");
    assert_status(in, 200, nw->log);
    h_response out = h_get(ng->port, "/out/x");
    assert_status(out, 502, nw->log);
    cr_assert(h_wait_for_text(nw->log, "refused a connection from 127.0.0.1", 5000), "%s",
              h_tail(nw->log));
    /* the app never saw it: the access log has /in/ only */
    char *text = h_read_file(access, NULL);
    cr_assert_not_null(text);
    cr_expect_eq(h_count_in(text, "/in/x"), 1, "access log:\n%s", text);
    cr_expect_eq(h_count_in(text, "/out/"), 0, "the refused request reached the app:\n%s", text);
}

Test(lockdown, allowed_clients_refuses_other_addresses_and_logs_once)
{
    char *access = h_path("access.log");
    h_narwhal nw = h_narwhal_serve("--allowed-clients", "127.0.0.2/32", "--allowed-clients",
                                   "::1", "--access-logfile", access, h_testapp("app"), NULL);
    h_nginx ng = two_sources(h_fmt("127.0.0.1:%d", nw.port));
    expect_refused_from_127_0_0_1(&nw, &ng, access);

    /* a flood from the refused address: still one line this minute */
    for (int i = 0; i < 100; i++) {
        h_response r = h_get(ng.port, "/out/flood");
        cr_assert_eq(r.status, 502, "request %d: %d", i, r.status);
    }
    assert_status(h_get(ng.port, "/in/y"), 200, nw.log); /* and it still serves */
    cr_expect_eq(h_count_text(nw.log, "refused a connection"), 1,
                 "the flood was logged more than once:\n%s", h_tail(nw.log));
    char *text = h_read_file(access, NULL);
    cr_expect_eq(h_count_in(text, "/out/"), 0, "%s", text);
}

Test(lockdown, fcgi_web_server_addrs_is_honoured)
{
    char *access = h_path("access.log");
    setenv("FCGI_WEB_SERVER_ADDRS", "127.0.0.2,10.1.2.3", 1); /* the master inherits it */
    h_narwhal nw = h_narwhal_serve("--access-logfile", access, h_testapp("app"), NULL);
    unsetenv("FCGI_WEB_SERVER_ADDRS");
    h_nginx ng = two_sources(h_fmt("127.0.0.1:%d", nw.port));
    expect_refused_from_127_0_0_1(&nw, &ng, access);
}

Test(lockdown, allowed_clients_ipv6)
{
    char *access = h_path("access.log");
    int port = h_free_port();
    h_narwhal nw = h_narwhal_spawn("-b", h_fmt("[::1]:%d", port), "--allowed-clients",
                                   "fd00::/8", "--access-logfile", access, h_testapp("app"), NULL);
    cr_assert(h_wait_for_text(nw.log, "booting worker", 10000), "%s", h_tail(nw.log));
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("[::1]:%d", port));
    assert_status(h_get(ng.port, "/"), 502, nw.log);
    cr_assert(h_wait_for_text(nw.log, "refused a connection from ::1", 5000), "%s",
              h_tail(nw.log));
    char *text = h_read_file(access, NULL);
    cr_expect(!text || !*text, "the refused request reached the app:\n%s", text);
}

Test(lockdown, bad_allowed_clients_named)
{
    char *log = h_path("bad.log");
    char *argv[] = {(char *)h_env("NARWHAL_BIN"), "--allowed-clients", "10.0.0.1/8",
                    h_testapp("app"), NULL};
    int st = h_run(log, argv, NULL, 10000);
    cr_assert(h_exited_with(st, 1), "%s", h_wstatus_str(st));
    cr_expect(h_wait_for_text(log, "--allowed-clients: '10.0.0.1/8'", 100), "%s", h_tail(log));
    char *env[] = {"FCGI_WEB_SERVER_ADDRS=127.0.0.1,nginx", NULL};
    char *argv2[] = {(char *)h_env("NARWHAL_BIN"), "--allow-root", h_testapp("app"), NULL};
    st = h_run(log, argv2, env, 10000);
    cr_assert(h_exited_with(st, 1), "%s", h_wstatus_str(st));
    cr_expect(h_wait_for_text(log, "FCGI_WEB_SERVER_ADDRS: 'nginx'", 100), "%s", h_tail(log));
}

/* ---- what a worker can reach ----------------------------------------------------------- */

Test(lockdown, root_workers_need_allow_root)
{
    need_root();
    char *log = h_path("root.log");
    const char *bind = h_fmt("127.0.0.1:%d", h_free_port());
    char *argv[] = {(char *)h_env("NARWHAL_BIN"), "-b", (char *)bind, h_testapp("app"), NULL};
    int st = h_run(log, argv, NULL, 10000);
    cr_assert(h_exited_with(st, 1), "a root master without user started: %s\n%s",
              h_wstatus_str(st), h_tail(log));
    cr_expect(h_wait_for_text(log, "set user", 100), "%s", h_tail(log));
    cr_expect(h_wait_for_text(log, "allow_root (--allow-root, -R)", 100), "%s", h_tail(log));
    cr_expect(!h_count_text(log, "listening at"), "it bound before refusing:\n%s", h_tail(log));

    char *log2 = h_path("root2.log");
    char *argv2[] = {(char *)h_env("NARWHAL_BIN"), "-b", (char *)bind, "--user", "root",
                     h_testapp("app"), NULL};
    st = h_run(log2, argv2, NULL, 10000);
    cr_assert(h_exited_with(st, 1), "user = root without allow_root started: %s\n%s",
              h_wstatus_str(st), h_tail(log2));

    /* --exec too */
    char *log3 = h_path("root3.log");
    char *argv3[] = {(char *)h_env("NARWHAL_BIN"), "-b", (char *)bind, "--exec", "/bin/true",
                     NULL};
    st = h_run(log3, argv3, NULL, 10000);
    cr_assert(h_exited_with(st, 1), "%s\n%s", h_wstatus_str(st), h_tail(log3));
    cr_expect(h_wait_for_text(log3, "refusing to run the --exec program as root", 100), "%s",
              h_tail(log3));
}

/* The value of field in /proc/<pid>/status, or NULL. */
static char *status_field(pid_t pid, const char *field)
{
    char *text = h_read_file(h_fmt("/proc/%d/status", (int)pid), NULL);
    char *p = text ? strstr(text, h_fmt("\n%s:", field)) : NULL;
    if (!p)
        return NULL;
    p += strlen(field) + 2;
    p += strspn(p, " \t");
    return h_fmt("%.*s", (int)strcspn(p, "\n"), p);
}

static void expect_no_new_privs(const char *conf_text, const char *want)
{
    char *conf = h_path("nnp.conf");
    h_write_file(conf, conf_text);
    h_narwhal nw = h_narwhal_serve("-c", conf, h_testapp("app"), NULL);
    pid_t w;
    cr_assert_eq(h_wait_children(nw.pid, &w, 1, 1, 10000), 1, "no worker:\n%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "booting worker", 10000), "%s", h_tail(nw.log));
    char *v = status_field(w, "NoNewPrivs");
    cr_assert_not_null(v, "no NoNewPrivs in /proc/%d/status", (int)w);
    cr_expect_str_eq(v, want, "worker %d: NoNewPrivs %s (config: %s)", (int)w, v, conf_text);
    char *m = status_field(nw.pid, "NoNewPrivs");
    cr_expect_str_eq(m, "0", "the master must keep the right to exec a new binary (USR2)");
    h_stop(nw.pid, SIGTERM, 10000);
}

Test(lockdown, no_new_privs_in_workers)
{
    expect_no_new_privs("workers = 1\n", "1");
    expect_no_new_privs("no_new_privs = false\n", "0");
}

Test(lockdown, writable_app_is_warned)
{
    char *dir = h_path("open");
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(chmod(dir, 0777), 0); /* not sticky: anyone may replace app.so */
    char *so = h_fmt("%s/app.so", dir);
    h_copy_file(h_env("NARWHAL_TESTAPP"), so);
    h_narwhal nw = h_narwhal_serve(so, NULL);
    cr_assert(h_wait_for_text(nw.log, "is writable by every user", 5000), "%s", h_tail(nw.log));
    cr_expect_eq(h_count_text(nw.log, "the app's directory"), 1, "%s", h_tail(nw.log));
    cr_expect_eq(h_count_text(nw.log, "the app " ), 0, "the file itself is 0644:\n%s",
                 h_tail(nw.log));
}

/* The same for a --cgi program: it runs in every request too. */
Test(lockdown, writable_cgi_program_is_warned)
{
    char *prog = h_path("hello.cgi");
    h_write_file(prog, "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi\\n'\n");
    cr_assert_eq(chmod(prog, 0777), 0);
    h_narwhal nw = h_narwhal_serve("--cgi", prog, NULL);
    cr_assert(h_wait_for_text(nw.log, h_fmt("the app %s is writable by every user", prog), 5000),
              "%s", h_tail(nw.log));
}

/* chroot: the worker serves, and a path outside the jail is not there for
 * it (the app itself was loaded from outside, before the jail). */
static void expect_jailed(const char *user)
{
    char *jail = h_path("jail-%s", user ? user : "root");
    cr_assert_eq(mkdir(jail, 0755), 0);
    h_write_file(h_fmt("%s/inside.txt", jail), "inside\n");
    char *secret = h_path("secret-%s.txt", user ? user : "root");
    h_write_file(secret, "outside\n");
    chmod(secret, 0644);
    h_narwhal nw = user ? h_narwhal_serve("--chroot", jail, "--user", user,
                                          h_testapp("readfile"), NULL)
                        : h_narwhal_serve("--chroot", jail, h_testapp("readfile"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    h_response in = h_get(ng.port, "/?/inside.txt");
    assert_status(in, 200, nw.log);
    assert_body(in, "read 7 bytes\n");
    h_response out = h_get(ng.port, h_fmt("/?%s", secret));
    assert_status(out, 200, nw.log);
    assert_body(out, h_fmt("cannot open %s: No such file or directory\n", secret));
    h_stop(nw.pid, SIGTERM, 10000);
    h_stop(ng.pid, SIGTERM, 10000);
}

/* Can user read the test app where it was built (CI's tree may be in a
 * directory only root may enter)? */
static bool user_reads_testapp(const char *user)
{
    char *argv[] = {"/usr/sbin/runuser", "-u", (char *)user, "--", "test", "-r",
                    (char *)h_env("NARWHAL_TESTAPP"), NULL};
    int st = h_run(h_path("runuser.log"), argv, NULL, 5000);
    return h_exited_with(st, 0);
}

Test(lockdown, chroot_worker_serves_and_cannot_open_outside)
{
    need_root();
    expect_jailed(NULL);
    if (!user_reads_testapp("nobody"))
        cr_skip_test("nobody cannot read %s: the jail as nobody is not tried",
                     h_env("NARWHAL_TESTAPP"));
    expect_jailed("nobody");
}

/* A worker of another user keeps no capability and no group of root's. */
Test(lockdown, worker_keeps_no_capability)
{
    need_root();
    if (!user_reads_testapp("nobody"))
        cr_skip_test("nobody cannot read %s", h_env("NARWHAL_TESTAPP"));
    h_narwhal nw = h_narwhal_serve("--user", "nobody", h_testapp("app"), NULL);
    pid_t w;
    cr_assert_eq(h_wait_children(nw.pid, &w, 1, 1, 10000), 1, "no worker:\n%s", h_tail(nw.log));
    cr_assert(h_wait_for_text(nw.log, "booting worker", 10000), "%s", h_tail(nw.log));
    const char *zero = "0000000000000000";
    cr_expect_str_eq(status_field(w, "CapEff"), zero);
    cr_expect_str_eq(status_field(w, "CapPrm"), zero);
    cr_expect_str_eq(status_field(w, "CapBnd"), zero, "the bounding set is emptied");
    cr_expect_str_eq(status_field(w, "CapAmb"), zero);
    cr_expect_str_eq(status_field(w, "NoNewPrivs"), "1");
    char *groups = status_field(w, "Groups");
    cr_expect(groups && strncmp(groups, "65534", 5) == 0 && !strchr(groups, ','),
              "Groups: %s", groups);
}

/* Every occurrence of from in text replaced by to (harness storage). */
static char *replace_all(const char *text, const char *from, const char *to)
{
    char *out = h_fmt("%s", "");
    for (const char *p = text, *q; *p; p = q + strlen(from)) {
        q = strstr(p, from);
        if (!q)
            return h_fmt("%s%s", out, p);
        out = h_fmt("%s%.*s%s", out, (int)(q - p), p, to);
    }
    return out;
}

/* init/narwhal.logrotate, as shipped but for its paths, run by the real
 * logrotate: the logs move and narwhal writes the new ones (USR1). */
Test(lockdown, logrotate_file_rotates_with_usr1)
{
    need_root(); /* logrotate wants its config owned by root */
    const char *lr = "/usr/sbin/logrotate";
    if (access(lr, X_OK) != 0)
        cr_skip_test("logrotate is not installed (Debian: logrotate)");
    char *dir = h_path("logs"), *pid = h_path("nw.pid");
    cr_assert_eq(mkdir(dir, 0755), 0);
    char *access_log = h_fmt("%s/access.log", dir), *error_log = h_fmt("%s/error.log", dir);
    h_narwhal nw = h_narwhal_serve("-p", pid, "--access-logfile", access_log, "--error-logfile",
                                   error_log, h_testapp("app"), NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    assert_status(h_get(ng.port, "/before"), 200, error_log);
    cr_assert(h_wait_for_text(access_log, "/before", 5000), "%s", h_tail(error_log));

    char *shipped = h_read_file(h_fmt("%s/init/narwhal.logrotate", h_env("NARWHAL_SRCDIR")), NULL);
    cr_assert_not_null(shipped);
    char *conf = replace_all(replace_all(shipped, "/var/log/narwhal", dir), "/run/narwhal.pid", pid);
    cr_assert_neq(strcmp(conf, shipped), 0, "the shipped paths moved: update this test");
    char *conf_path = h_path("logrotate.conf");
    h_write_file(conf_path, conf);
    chmod(conf_path, 0644);
    char *argv[] = {(char *)lr, "-f", "-s", h_path("logrotate.state"), conf_path, NULL};
    int st = h_run(h_path("logrotate.out"), argv, NULL, 20000);
    cr_assert(h_exited_with(st, 0), "logrotate: %s\n%s", h_wstatus_str(st),
              h_tail(h_path("logrotate.out")));
    cr_expect(h_exists(h_fmt("%s.1", access_log)), "access.log was not rotated");

    /* narwhal reopens on USR1: the next request is in the new file */
    cr_assert(h_wait_for_text(error_log, "logs reopened", 5000), "no USR1 seen:\n%s",
              h_tail(h_fmt("%s.1", error_log)));
    long t0 = h_now_ms();
    bool seen = false;
    while (!seen && h_now_ms() - t0 < 5000) {
        assert_status(h_get(ng.port, "/after"), 200, error_log);
        seen = h_wait_for_text(access_log, "/after", 200);
    }
    cr_expect(seen, "narwhal did not write the new access.log");
}

/* In a network namespace of its own (only its own loopback, down), narwhal
 * binds every address: the warning for a listener other hosts could reach
 * without allowed_clients, and none with it. */
static char *in_own_netns(const char *name, const char *extra)
{
    char *log = h_path("%s.log", name);
    char *argv[] = {"/usr/bin/unshare", "-n", "--", (char *)h_env("NARWHAL_BIN"), "--allow-root",
                    "-b", "0.0.0.0:5000", "-b", "[::]:5000", (char *)extra, h_testapp("app"),
                    NULL};
    if (!extra) /* no extra argument: the app moves up */
        argv[9] = h_testapp("app"), argv[10] = NULL;
    pid_t pid = h_spawn(log, argv, NULL);
    cr_assert(h_wait_for_text(log, "booting worker", 10000), "%s", h_tail(log));
    h_stop(pid, SIGTERM, 10000);
    return log;
}

Test(lockdown, warning_for_a_listener_other_hosts_reach)
{
    need_root();
    if (access("/usr/bin/unshare", X_OK) != 0)
        cr_skip_test("no unshare(1) (util-linux)");
    char *log = in_own_netns("open", NULL);
    cr_expect(h_count_text(log, "0.0.0.0:5000 is reachable from other hosts and "
                                "allowed_clients is not set") == 1 &&
                  h_count_text(log, "[::]:5000 is reachable from other hosts") == 1,
              "%s", h_tail(log));
    cr_expect(h_count_text(log, "set allowed_clients to the web server's addresses"), "%s",
              h_tail(log));
    log = in_own_netns("listed", "--allowed-clients=10.0.0.0/8");
    cr_expect_eq(h_count_text(log, "reachable from other hosts"), 0, "%s", h_tail(log));
}
