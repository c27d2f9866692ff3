/* Unit tests for src/core/util.c: app spec splitting ("path.so[:symbol]"),
 * signal names, $PATH lookup, the fd flags and the clock. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tmpdir.h"
#include "util.h"

/* ---- nw_app_spec_kind ------------------------------------------------------------- */

Test(app_spec_kind, shared_objects_are_paths_or_end_in_so)
{
    const char *c[] = {"x.so", "x.so:handler", "./app", "/srv/app", "lib/x", "./x.so:h",
                       "a.b.so", "/a:b/x.so"};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        cr_expect_eq(nw_app_spec_kind(c[i]), NW_APP_C, "'%s' is a C app", c[i]);
}

Test(app_spec_kind, gunicorn_module_callable_is_python)
{
    const char *py[] = {"app", "app:app", "myproject.wsgi:application", "pkg.sub.mod",
                        "_m:_x", "m:create_app()", "m:obj.attr", "app2:App_3"};
    for (size_t i = 0; i < sizeof py / sizeof *py; i++)
        cr_expect_eq(nw_app_spec_kind(py[i]), NW_APP_PYTHON, "'%s' is a Python app", py[i]);
}

Test(app_spec_kind, anything_else_is_refused)
{
    const char *bad[] = {"", "app:", ":app", "9app", "a..b", ".a", "a.", "a b", "a:b c",
                         "a:f(x)", "a:b()()", "a-b:app", "a:1b", "a:b:c", "a:b.", "app.py"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(nw_app_spec_kind(bad[i]), NW_APP_BAD, "'%s' is neither", bad[i]);
    cr_expect_eq(nw_app_spec_kind(NULL), NW_APP_BAD);
}

/* ---- nw_split_app_spec ------------------------------------------------------- */

static void expect_split(const char *spec, const char *path, const char *symbol)
{
    char *p = NULL, *s = NULL;
    nw_split_app_spec(spec, &p, &s);
    cr_assert_not_null(p, "'%s': no path", spec);
    cr_assert_not_null(s, "'%s': no symbol", spec);
    cr_expect_str_eq(p, path, "'%s': path '%s', expected '%s'", spec, p, path);
    cr_expect_str_eq(s, symbol, "'%s': symbol '%s', expected '%s'", spec, s, symbol);
    cr_expect_neq(p, spec, "'%s': the path must be a copy", spec);
    free(p);
    free(s);
}

Test(split_app_spec, symbol_defaults_to_app)
{
    expect_split("x.so", "x.so", "app");
    expect_split("/usr/lib/narwhal/hello.so", "/usr/lib/narwhal/hello.so", "app");
    expect_split("", "", "app");
}

Test(split_app_spec, symbol_after_the_last_colon)
{
    expect_split("x.so:handler", "x.so", "handler");
    expect_split("./lib/x.so:app2", "./lib/x.so", "app2");
    expect_split("x.so:_private", "x.so", "_private");
    expect_split("x.so:_", "x.so", "_");
    expect_split("x.so:A", "x.so", "A");
    expect_split("x.so:h_1_Z9", "x.so", "h_1_Z9");
    /* Only the last colon separates: the path keeps the others. */
    expect_split("a:b:c", "a:b", "c");
    expect_split("/a:b/x.so:h", "/a:b/x.so", "h");
    /* An empty path is the caller's to refuse. */
    expect_split(":handler", "", "handler");
}

Test(split_app_spec, colon_not_followed_by_an_identifier_stays_in_the_path)
{
    expect_split("/a:b/x.so", "/a:b/x.so", "app");
    expect_split("x.so:", "x.so:", "app");
    expect_split("x.so:9abc", "x.so:9abc", "app");
    expect_split("x.so:0", "x.so:0", "app");
    expect_split("x.so:a-b", "x.so:a-b", "app");
    expect_split("x.so:a.b", "x.so:a.b", "app");
    expect_split("x.so: h", "x.so: h", "app");
    expect_split("x.so:h ", "x.so:h ", "app");
    expect_split("x.so:\xc3\xa9t\xc3\xa9", "x.so:\xc3\xa9t\xc3\xa9", "app");
    /* The last colon decides alone: an earlier one is not tried instead. */
    expect_split("x.so:h:", "x.so:h:", "app");
    expect_split("x.so:h:1", "x.so:h:1", "app");
    expect_split(":", ":", "app");
}

/* ---- nw_signame -------------------------------------------------------------- */

Test(signame, names)
{
    static const struct {
        int sig;
        const char *name;
    } table[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},   {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},     {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"},   {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},   {SIGCHLD, "SIGCHLD"},
        {SIGTTIN, "SIGTTIN"}, {SIGTTOU, "SIGTTOU"}, {SIGWINCH, "SIGWINCH"}, {SIGSYS, "SIGSYS"},
        {SIGXCPU, "SIGXCPU"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        cr_expect_str_eq(nw_signame(table[i].sig), table[i].name, "signal %d", table[i].sig);
}

Test(signame, others_are_signal)
{
    cr_expect_str_eq(nw_signame(0), "signal");
    cr_expect_str_eq(nw_signame(-1), "signal");
    cr_expect_str_eq(nw_signame(SIGURG), "signal");
    cr_expect_str_eq(nw_signame(SIGRTMIN), "signal");
    cr_expect_str_eq(nw_signame(1000), "signal");
}

/* ---- nw_find_in_path --------------------------------------------------------- */

TestSuite(find_in_path, .init = tmpdir_setup, .fini = tmpdir_teardown);

static void make_dir(const char *name)
{
    cr_assert_eq(mkdir(tmp_path(name), 0755), 0);
}

static void expect_found(const char *name, const char *want)
{
    char *got = nw_find_in_path(name);
    if (!want) {
        cr_expect_null(got, "'%s' found as '%s'", name, got);
    } else {
        cr_assert_not_null(got, "'%s' not found (want %s)", name, want);
        cr_expect_str_eq(got, want);
        cr_expect_neq(got, name, "the result must be a copy");
    }
    free(got);
}

Test(find_in_path, first_executable_match_in_path)
{
    make_dir("a");
    make_dir("b");
    make_dir("c");
    write_file("a/tool", "#!/bin/sh\n", 0644); /* not executable: skipped */
    const char *in_b = write_file("b/tool", "#!/bin/sh\n", 0755);
    write_file("c/tool", "#!/bin/sh\n", 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/a:%s/nope:%s/b:%s/c", tmpdir, tmpdir, tmpdir, tmpdir);
    setenv("PATH", path, 1);
    expect_found("tool", in_b);
    expect_found("other", NULL);
}

Test(find_in_path, empty_entries_are_skipped)
{
    make_dir("b");
    const char *in_b = write_file("b/tool", "#!/bin/sh\n", 0755);
    char path[256];
    snprintf(path, sizeof path, "::%s/b:", tmpdir);
    setenv("PATH", path, 1);
    expect_found("tool", in_b);
}

Test(find_in_path, name_with_a_slash_is_used_as_it_is)
{
    const char *x = write_file("x", "#!/bin/sh\n", 0755);
    const char *y = write_file("y", "#!/bin/sh\n", 0644);
    setenv("PATH", "/nonexistent", 1);
    expect_found(x, x);
    expect_found(y, NULL);
    expect_found(tmp_path("absent"), NULL);
    /* Relative, from the current directory. */
    cr_assert_eq(chdir(tmpdir), 0);
    expect_found("./x", "./x");
    expect_found("./y", NULL);
}

/* Without PATH (or with an empty one): /usr/local/bin:/usr/bin:/bin. */
static const char *default_sh(void)
{
    static const char *const dirs[] = {"/usr/local/bin/sh", "/usr/bin/sh", "/bin/sh"};
    for (int i = 0; i < 3; i++)
        if (access(dirs[i], X_OK) == 0)
            return dirs[i];
    return NULL;
}

Test(find_in_path, default_path_when_unset_or_empty)
{
    const char *want = default_sh();
    cr_assert_not_null(want, "no sh in /usr/local/bin, /usr/bin or /bin");
    unsetenv("PATH");
    expect_found("sh", want);
    setenv("PATH", "", 1);
    expect_found("sh", want);
    setenv("PATH", tmpdir, 1);
    expect_found("sh", NULL);
}

/* ---- fd flags and the clock ---------------------------------------------------- */

Test(fd_flags, nonblock_and_cloexec)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_expect_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    cr_expect_eq(nw_set_nonblock(p[0]), 0);
    cr_expect_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    cr_expect_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0, "the other end is left alone");

    cr_expect_eq(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
    cr_expect_eq(nw_set_cloexec(p[1], 1), 0);
    cr_expect_eq(fcntl(p[1], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    cr_expect_eq(nw_set_cloexec(p[1], 0), 0);
    cr_expect_eq(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
    close(p[0]);
    close(p[1]);

    cr_expect_eq(nw_set_nonblock(p[0]), -1, "a closed fd");
    cr_expect_eq(nw_set_cloexec(p[0], 1), -1, "a closed fd");
}

Test(clock, now_ms_is_monotonic_milliseconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ref = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t a = nw_now_ms();
    cr_expect_geq(a, ref);
    cr_expect_leq(a - ref, 1000);
    struct timespec nap = {0, 30 * 1000000};
    nanosleep(&nap, NULL);
    int64_t b = nw_now_ms();
    cr_expect_geq(b - a, 30);
    cr_expect_leq(b - a, 5000);
}
