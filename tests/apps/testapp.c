/* testapp - handlers for the end-to-end tests, one per symbol:
 *     narwhal tests/apps/testapp.so:status
 *
 * app          "testapp\n"
 * status       ?code=N -> status N, X-A: 1, X-Custom: hello, "status N\n"
 * fail         returns 1 without writing (narwhal answers 500)
 * fail_late    writes "partial\n", then returns 1 (the 200 stands)
 * crash        ?crash=1 -> SIGSEGV (a store through a null pointer);
 *              otherwise "ok\n"
 * stuck        ?block -> blocks forever in sleep(3) (not nw_sleep), for the
 *              worker timeout; otherwise "ok\n"
 * slow         ?ms=N[&status=S] -> nw_sleep(N ms), then "done\n" (status S, default 200)
 * rlimits      the worker's RLIMIT_NOFILE, RLIMIT_CORE and RLIMIT_AS, soft/hard
 * env          ?NAME -> getenv(NAME) + "\n", or "(unset)\n"
 * cwd          getcwd() + "\n"
 * readfile     ?PATH -> "read N bytes\n" or "cannot open PATH: <strerror>\n"
 * log          nw_log(WARNING, "testapp log line"), then "ok\n"
 * late_status  writes "late=", then tries nw_set_status / nw_add_header
 *              (both must fail now) and writes their results: "-1,-1\n"
 *
 * Every response but fail's carries X-Pid: the worker's pid. With
 * TESTAPP_SPAWN=PATH set, nw_worker_init starts `sleep 30` and appends its
 * pid to PATH. */
#include <narwhal.h>

#include <errno.h>
#include <sys/resource.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *query(nw_request *req)
{
    const char *q = nw_param(req, "QUERY_STRING");
    return q ? q : "";
}

/* The integer after "name=" in the query string, or def. */
static long query_int(nw_request *req, const char *name, long def)
{
    const char *q = query(req);
    size_t n = strlen(name);
    for (const char *p = q; *p; p++) {
        if ((p == q || p[-1] == '&') && strncmp(p, name, n) == 0 && p[n] == '=')
            return strtol(p + n + 1, NULL, 10);
    }
    return def;
}

static void text_headers(nw_request *req)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    nw_add_header(req, "Content-Type", "text/plain");
    nw_add_header(req, "X-Pid", pid);
}

int app(nw_request *req)
{
    text_headers(req);
    return nw_printf(req, "testapp\n") < 0;
}

int status(nw_request *req)
{
    long code = query_int(req, "code", 200);
    if (nw_set_status(req, (int)code) < 0)
        return 1;
    text_headers(req);
    nw_add_header(req, "X-A", "1");
    nw_add_header(req, "X-Custom", "hello");
    return nw_printf(req, "status %ld\n", code) < 0;
}

int fail(nw_request *req)
{
    (void)req;
    return 1;
}

int fail_late(nw_request *req)
{
    text_headers(req);
    nw_printf(req, "partial\n");
    return 1;
}

/* The sanitizers would turn the store into their own report and abort; the
 * test wants the plain SIGSEGV a buggy app gets. */
__attribute__((no_sanitize("address", "undefined"))) static void segfault(void)
{
    volatile int *volatile p = NULL;
    *p = 1;
}

int crash(nw_request *req)
{
    if (strcmp(query(req), "crash=1") == 0)
        segfault();
    text_headers(req);
    return nw_printf(req, "ok\n") < 0;
}

int stuck(nw_request *req)
{
    if (strcmp(query(req), "block") == 0)
        for (;;)
            sleep(1);
    text_headers(req);
    return nw_printf(req, "ok\n") < 0;
}

int slow(nw_request *req)
{
    long ms = query_int(req, "ms", 1000);
    nw_log(req, NW_LOG_INFO, "slow: sleeping %ld ms", ms);
    if (nw_sleep(req, (int)ms) < 0)
        return 1;
    nw_set_status(req, (int)query_int(req, "status", 200));
    text_headers(req);
    return nw_printf(req, "done\n") < 0;
}

int env(nw_request *req)
{
    const char *v = getenv(query(req));
    text_headers(req);
    return nw_printf(req, "%s\n", v ? v : "(unset)") < 0;
}

/* Many warnings before the first byte of the response (?n=COUNT), then one
 * that tries to forge a line in nginx's error log. */
int manylogs(nw_request *req)
{
    long n = query_int(req, "n", 300);
    for (long i = 0; i < n; i++)
        nw_log(req, NW_LOG_WARNING, "warning %ld of a handler that logs a lot before it answers",
               i);
    nw_log(req, NW_LOG_WARNING, "value\n2026/11/30 00:00:00 [emerg] 1#1: forged");
    text_headers(req);
    return nw_printf(req, "ok\n") < 0;
}

/* The API called from a thread the app made: refused, not raced. */
struct from_thread {
    nw_request *req;
    ssize_t wrote;
    int status;
};

static void *call_from_thread(void *arg)
{
    struct from_thread *t = arg;
    t->wrote = nw_write(t->req, "from a thread\n", 14);
    t->status = nw_set_status(t->req, 404);
    nw_log(t->req, NW_LOG_WARNING, "logged from an app thread");
    return NULL;
}

int thread(nw_request *req)
{
    struct from_thread t = {.req = req};
    pthread_t th;
    if (pthread_create(&th, NULL, call_from_thread, &t) != 0)
        return 1;
    pthread_join(th, NULL);
    text_headers(req);
    return nw_printf(req, "write %zd status %d\n", t.wrote, t.status) < 0;
}

/* nw_param of the name in the query string, then every value of that name
 * in wire order (nw_param_each). */
static int each_value(const char *name, const char *value, void *arg)
{
    nw_request *req = arg;
    if (strcmp(name, query(req)) == 0)
        nw_printf(req, "each %s\n", value);
    return 0;
}

int param(nw_request *req)
{
    const char *v = nw_param(req, query(req));
    text_headers(req);
    nw_printf(req, "param %s\n", v ? v : "(absent)");
    return nw_param_each(req, each_value, req) != 0;
}

int cwd(nw_request *req)
{
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf))
        return 1;
    text_headers(req);
    return nw_printf(req, "%s\n", buf) < 0;
}

int readfile(nw_request *req)
{
    char buf[4096];
    FILE *f = fopen(query(req), "r");
    text_headers(req);
    if (!f)
        return nw_printf(req, "cannot open %s: %s\n", query(req), strerror(errno)) < 0;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return nw_printf(req, "read %zu bytes\n", n) < 0;
}

/* Exported as `log`; a C function of that name would clash with the math
 * builtin log(3). */
int log_handler(nw_request *req) __asm__("log");
int log_handler(nw_request *req)
{
    nw_log(req, NW_LOG_WARNING, "testapp log line");
    text_headers(req);
    return nw_printf(req, "ok\n") < 0;
}

int late_status(nw_request *req)
{
    text_headers(req);
    if (nw_printf(req, "late=") < 0)
        return 1;
    int s = nw_set_status(req, 404);
    int h = nw_add_header(req, "X-Late", "1");
    return nw_printf(req, "%d,%d\n", s, h) < 0;
}

/* The worker's resource limits (rlimit_nofile, rlimit_core,
 * worker_memory_hard_limit): soft/hard, "inf" for none. */
static int print_limit(nw_request *req, const char *name, int res)
{
    struct rlimit rl;
    if (getrlimit(res, &rl) < 0)
        return nw_printf(req, "%s=? ", name);
    char soft[32], hard[32];
    snprintf(soft, sizeof soft, "%llu", (unsigned long long)rl.rlim_cur);
    snprintf(hard, sizeof hard, "%llu", (unsigned long long)rl.rlim_max);
    return nw_printf(req, "%s=%s/%s ", name, rl.rlim_cur == RLIM_INFINITY ? "inf" : soft,
                     rl.rlim_max == RLIM_INFINITY ? "inf" : hard);
}

int rlimits(nw_request *req)
{
    text_headers(req);
    print_limit(req, "nofile", RLIMIT_NOFILE);
    print_limit(req, "core", RLIMIT_CORE);
    print_limit(req, "as", RLIMIT_AS);
    return nw_printf(req, "\n") < 0;
}

/* With TESTAPP_SPAWN=PATH in the environment, each worker starts `sleep 30`
 * from nw_worker_init and appends its pid to PATH (the tests of the signal
 * mask and dispositions a program started by the app inherits). */
int nw_worker_init(void)
{
    const char *path = getenv("TESTAPP_SPAWN");
    if (!path)
        return 0;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    FILE *f = fopen(path, "a");
    if (!f)
        return 1;
    fprintf(f, "%d\n", (int)pid);
    fclose(f);
    return 0;
}
