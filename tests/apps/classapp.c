/* classapp - handlers for the worker-class, protocol and hostile-input
 * tests (select with classapp.so:NAME). */
#include <narwhal.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Recurses until its stack runs out (?depth=N limits it): the guard page
 * must stop it. */
static int burn(int depth, int limit)
{
    volatile char pad[4096];
    pad[0] = (char)depth;
    pad[sizeof pad - 1] = pad[0];
    if (limit && depth >= limit)
        return pad[sizeof pad - 1];
    return burn(depth + 1, limit) + pad[0];
}

int overflow(nw_request *req)
{
    const char *q = nw_param(req, "QUERY_STRING");
    int limit = q && strncmp(q, "depth=", 6) == 0 ? atoi(q + 6) : 0;
    int r = burn(0, limit);
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "survived %d\n", r & 1);
    return 0;
}

/* One large frame: a local array larger than the default coroutine stack
 * (272 KiB on 256 KiB), written from its low end as a buffer filled from
 * the front is. That end lies 16 KiB and more below the stack: built with
 * -fstack-clash-protection the frame is probed page by page from the top
 * and the first probe below the stack faults on the guard, and without the
 * probes the first write still lands inside the guard gap (64 KiB, more
 * than the handler's callers and the excess use). With a one-page guard
 * and no probes the write lands in whatever is mapped below (another
 * coroutine's stack) and the handler returns as if nothing happened.
 * ?ms=N only sleeps N ms instead: the test places other coroutines' stacks
 * with it. */
static __attribute__((noinline)) int fill_front(void)
{
    volatile char big[272 * 1024];
    for (size_t i = 0; i < 1024; i++)
        big[i] = (char)i;
    return big[1023];
}

int bigframe(nw_request *req)
{
    const char *q = nw_param(req, "QUERY_STRING");
    int ms = q && strncmp(q, "ms=", 3) == 0 ? atoi(q + 3) : -1;
    nw_add_header(req, "Content-Type", "text/plain");
    if (ms >= 0) {
        if (nw_sleep(req, ms) < 0)
            return 1;
        nw_printf(req, "slept %d ms\n", ms);
        return 0;
    }
    int r = fill_front();
    nw_printf(req, "survived %d\n", r & 1);
    return 0;
}

/* Spins on the CPU for ?ms=N without yielding (blocks an async worker's
 * loop). */
int spin(nw_request *req)
{
    const char *q = nw_param(req, "QUERY_STRING");
    int ms = q && strncmp(q, "ms=", 3) == 0 ? atoi(q + 3) : 100;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "spun %d ms\n", ms);
    return 0;
}

/* Reports which thread ran it and the pid, for the class tests. */
int whoami(nw_request *req)
{
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "pid %d\n", (int)getpid());
    return 0;
}

/* Counts its calls in a file named by ?file=PATH (the "app not called"
 * checks of the limit tests). */
int counted(nw_request *req)
{
    const char *q = nw_param(req, "QUERY_STRING");
    const char *f = q ? strstr(q, "file=") : NULL;
    if (f) {
        char path[512];
        snprintf(path, sizeof path, "%.*s", (int)strcspn(f + 5, "&"), f + 5);
        FILE *fp = fopen(path, "a");
        if (fp) {
            fputs("called\n", fp);
            fclose(fp);
        }
    }
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "ok\n");
    return 0;
}

/* Streams: a first line, a wait, a second line. The first must reach the
 * client before the wait ends. */
int stream(nw_request *req)
{
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "first\n");
    if (nw_sleep(req, 1500) < 0)
        return 1;
    nw_printf(req, "second\n");
    return 0;
}

/* Starts `sleep 30` (fork and exec from the handler's thread) and answers
 * "pid N": the tests read its signal mask and dispositions in /proc. */
int spawn(nw_request *req)
{
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "pid %d\n", (int)pid);
    return 0;
}

/* For the slowlog and the timeout kill (test_slowlog): spins on the CPU
 * in a function of its own, never yielding, for ms milliseconds (0 =
 * forever). Its name is what the stacks must show. */
__attribute__((noinline)) long spin_forever(long ms)
{
    struct timespec a, b;
    volatile long turns = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        turns++;
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while (!ms || (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
    return turns;
}

/* ?ms=N: spin_forever(N) (default 0: until killed). */
int spinner(nw_request *req)
{
    const char *q = nw_param(req, "QUERY_STRING");
    long ms = q && strncmp(q, "ms=", 3) == 0 ? atol(q + 3) : 0;
    long turns = spin_forever(ms);
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "spun %ld ms (%ld turns)\n", ms, turns > 0 ? ms : 0);
    return 0;
}

/* Waits in nw_sleep from a function of its own: under async the coroutine
 * is suspended, and the worker's slowlog entry must show this frame. */
__attribute__((noinline)) int nap_in_coroutine(nw_request *req, int ms)
{
    volatile int r = nw_sleep(req, ms); /* not a tail call: the frame stays */
    return r;
}

/* ?ms=N: nap_in_coroutine for N ms (default 3000). */
int napper(nw_request *req)
{
    const char *q = nw_param(req, "QUERY_STRING");
    int ms = q && strncmp(q, "ms=", 3) == 0 ? atoi(q + 3) : 3000;
    if (nap_in_coroutine(req, ms) < 0)
        return 1;
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "napped %d ms\n", ms);
    return 0;
}

/* A language host's tracer (nw_set_trace_hook), as the Python module will
 * have one: with CLASSAPP_TRACE_HOOK set, it writes a line of its own where
 * narwhal asks, from the signal handler on the traced thread. */
static void trace_hook(int fd)
{
    static const char line[] = "classapp trace hook: language-level frames here\n";
    ssize_t w = write(fd, line, sizeof line - 1);
    (void)w;
}

int nw_worker_init(void)
{
    if (getenv("CLASSAPP_TRACE_HOOK") && nw_set_trace_hook(trace_hook) < 0)
        return 1;
    return 0;
}
