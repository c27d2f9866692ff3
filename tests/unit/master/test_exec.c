/* test_exec.c - src/master/exec.c: how the master logs an --exec
 * program's output (bounded per line and per wake-up). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../tmpdir.h"
#include "exec.h"
#include "log.h"

TestSuite(exec, .init = tmpdir_setup, .fini = tmpdir_teardown);

typedef struct piped {
    exec_pipe p;
    int w; /* the child's end */
    const char *log;
} piped;

static piped piped_open(void)
{
    int fds[2];
    cr_assert(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    piped t = {.p = {.fd = fds[0], .pid = 42, .level = NW_LOG_WARNING}, .w = fds[1]};
    t.log = tmp_path("error.log");
    cr_assert(log_open(t.log, NULL) == 0);
    return t;
}

static void put(piped *t, const char *s, size_t n)
{
    cr_assert_eq(write(t->w, s, n), (ssize_t)n);
}

static char *logged(const piped *t)
{
    FILE *f = fopen(t->log, "r");
    cr_assert(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(exec, long_line_is_cut_once_and_its_rest_dropped)
{
    piped t = piped_open();
    char *line = malloc(10000);
    memset(line, 'x', 10000);
    put(&t, line, 10000);
    exec_pipe_drain(&t.p, 0);
    put(&t, line, 10000); /* still the same line */
    put(&t, "\nnext\n", 6);
    exec_pipe_drain(&t.p, 0);
    char *log = logged(&t);
    cr_assert_eq(count(log, "[cut: line longer than 4096 bytes]"), 1, "%s", log);
    cr_assert_eq(count(log, "\n"), 2, "two lines: %s", log);
    char *want = calloc(1, 4096 + 64);
    memset(want, 'x', 4096);
    strcat(want, " [cut: line longer than 4096 bytes]\n");
    cr_assert(strstr(log, want), "the first 4096 bytes then the marker");
    cr_assert(strstr(log, "[stderr 42] next\n"), "%s", log);
    cr_assert_eq(t.p.partial.len, 0);
    free(line);
    free(want);
}

Test(exec, line_of_exactly_the_limit_is_whole)
{
    piped t = piped_open();
    char line[4097];
    memset(line, 'y', 4096);
    line[4096] = '\n';
    put(&t, line, 2000);
    exec_pipe_drain(&t.p, 0);
    put(&t, line + 2000, sizeof line - 2000);
    exec_pipe_drain(&t.p, 0);
    char *log = logged(&t);
    cr_assert_eq(count(log, "[cut"), 0, "%.200s", log);
    cr_assert_eq(count(log, "\n"), 1);
}

Test(exec, one_wake_up_reads_at_most_exec_read_max)
{
    piped t = piped_open();
    char chunk[1000];
    memset(chunk, 'z', sizeof chunk - 1);
    chunk[sizeof chunk - 1] = '\n';
    for (int i = 0; i < 200; i++)
        put(&t, chunk, sizeof chunk);
    exec_pipe_drain(&t.p, 0);
    int left = 0;
    cr_assert(ioctl(t.p.fd, FIONREAD, &left) == 0);
    cr_assert_eq(left, 200 * 1000 - EXEC_READ_MAX, "%d bytes left", left);
    cr_assert_geq(t.p.fd, 0, "not closed: there is more");
}

Test(exec, end_of_file_logs_the_rest_and_closes)
{
    piped t = piped_open();
    put(&t, "one\ntwo", 7);
    close(t.w);
    exec_pipe_drain(&t.p, 0);
    char *log = logged(&t);
    cr_assert(strstr(log, "[stderr 42] one\n") && strstr(log, "[stderr 42] two\n"), "%s", log);
    cr_assert_eq(t.p.fd, -1);
}
