/* slowlog.c - the master's part of the slowlog (slowlog_timeout): the stack
 * of the thread that runs a slow request, once per request, and the same
 * stack in the error log before a worker is killed for `timeout`.
 *
 * The scoreboard says which request slot runs what since when, and which
 * thread runs it (tid); stack.c stops that thread with ptrace, unwinds it
 * and lets it go on. Under async the slot shows the coroutine that holds
 * the loop (its start is when it took the loop), whose frames are the
 * thread's own; the requests whose coroutines wait are the worker's to log
 * (executor.c). NOTES.md, "The slowlog". */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arbiter_priv.h"
#include "log.h"
#include "stack.h"
#include "util.h"

/* How long a thread gets to stop for ptrace: a running thread stops at
 * once, but on a loaded machine it may wait that long for a CPU (200 ms
 * was not always enough on the 2-core test machine under load). */
#define STOP_WAIT_MS 1000
/* Stacks traced per check (once a second) at most: each stops a thread and
 * costs the master a few ms; the rest wait for the next check. */
#define SLOWLOG_PER_CHECK 4

/* What the stopped thread must still run for its stack to be the one
 * wanted: the same request (its start), not yet logged. */
typedef struct wanted {
    nw_tslot *ts;
    int64_t start;
    int unlogged; /* and not in the slowlog yet (the worker may have logged it) */
} wanted;

static int still_runs(void *arg)
{
    wanted *w = arg;
    return __atomic_load_n(&w->ts->req_start_ms, __ATOMIC_ACQUIRE) == w->start &&
           (!w->unlogged || !__atomic_load_n(&w->ts->slowlogged, __ATOMIC_RELAXED));
}

/* The thread that runs slot ts of worker slot i: the slot's word, checked
 * to be one of the worker's threads (a broken app could write anything
 * there, and the master traces what it names). 0 if none. */
static pid_t thread_of(const arbiter *a, int i, const nw_tslot *ts)
{
    pid_t pid = a->info[i].pid;
    pid_t tid = __atomic_load_n(&ts->tid, __ATOMIC_RELAXED);
    if (tid <= 0)
        return pid;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d", (int)pid, (int)tid);
    return access(path, F_OK) == 0 ? tid : 0;
}

/* Traces the thread of request slot t of worker i, which runs the request
 * that began at start. 0 with the frames in out, 1 when that request is
 * over (nothing to say), -1 with why in out. */
static int trace(arbiter *a, int i, int t, int64_t start, int unlogged, nw_buf *out, pid_t *tidp)
{
    nw_tslot *ts = scoreboard_tslot(&a->sb, i, t);
    pid_t tid = thread_of(a, i, ts);
    *tidp = tid;
    if (!tid) {
        nw_buf_printf(out, "(no stack: the slot names no thread of worker %d)\n",
                      (int)a->info[i].pid);
        return -1;
    }
    wanted w = {.ts = ts, .start = start, .unlogged = unlogged};
    char why[768];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc =
        stack_of_thread(a->info[i].pid, tid, STOP_WAIT_MS, still_runs, &w, out, why, sizeof why);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_debug("traced worker %d thread %d in %lld us (rc %d)", (int)a->info[i].pid, (int)tid,
              (long long)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000),
              rc);
    if (rc < 0) {
        static int told;
        nw_buf_printf(out, "(no stack: %s)\n", why);
        /* the reason once in the error log too, where an operator looks */
        if (!told) {
            told = 1;
            log_warning("cannot read the stacks of slow requests: %s", why);
        }
    }
    return rc;
}

/* Asks worker i's language-level tracer (nw_set_trace_hook), if it has
 * one, for the trace of thread tid, into the slowlog or (to_error_log)
 * the error log. Works without ptrace. Whether it was asked. */
static int ask_language(arbiter *a, int i, pid_t tid, int to_error_log)
{
    if (tid <= 0 || !__atomic_load_n(&a->sb.slots[i].trace_hook, __ATOMIC_RELAXED))
        return 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SB_TRACE_SIGNAL;
    si.si_code = SI_QUEUE;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_int = to_error_log;
    return syscall(SYS_rt_tgsigqueueinfo, a->info[i].pid, tid, SB_TRACE_SIGNAL, &si) == 0;
}

/* "GET /x" of request slot ts, as far as the worker wrote it. */
static void request_line(char *dst, size_t n, const nw_tslot *ts)
{
    snprintf(dst, n, "%.*s %.*s", (int)strnlen(ts->method, sizeof ts->method), ts->method,
             (int)strnlen(ts->uri, sizeof ts->uri), ts->uri);
}

/* Unused libdw data is let go after this long (stack_trim). */
#define STACK_CACHE_IDLE_MS 60000

void arbiter_slowlog_check(arbiter *a)
{
    stack_reap(0, 0);
    stack_trim(STACK_CACHE_IDLE_MS);
    if (a->s->slowlog_timeout <= 0)
        return;
    int64_t now = nw_now_ms(), limit = (int64_t)a->s->slowlog_timeout * 1000;
    int traced = 0;
    for (int i = 0; i < a->sb.nslots && traced < SLOWLOG_PER_CHECK; i++) {
        if (a->info[i].pid <= 0 || a->info[i].exec || a->info[i].killed_for)
            continue;
        for (int t = 0; t < a->sb.per_slot && traced < SLOWLOG_PER_CHECK; t++) {
            nw_tslot *ts = scoreboard_tslot(&a->sb, i, t);
            int64_t start = __atomic_load_n(&ts->req_start_ms, __ATOMIC_ACQUIRE);
            if (start <= 0 || now - start <= limit ||
                __atomic_load_n(&ts->slowlogged, __ATOMIC_RELAXED))
                continue;
            traced++;
            char req[300], head[512];
            request_line(req, sizeof req, ts);
            nw_buf frames = NW_BUF_INIT;
            pid_t tid;
            int rc = trace(a, i, t, start, 1, &frames, &tid);
            if (rc == 1) {
                nw_buf_free(&frames);
                continue; /* it ended meanwhile */
            }
            /* once per request: the mark stays until the slot's next request */
            if (__atomic_load_n(&ts->req_start_ms, __ATOMIC_ACQUIRE) == start)
                __atomic_store_n(&ts->slowlogged, 1, __ATOMIC_RELAXED);
            int async = a->s->worker_class == NW_CLASS_ASYNC;
            snprintf(head, sizeof head, "worker %d slot %d thread %d%s: %s running for %lld ms",
                     (int)a->info[i].pid, t, (int)tid,
                     async ? " (the coroutine holding the loop)" : "", req,
                     (long long)(now - start));
            nw_buf_appendc(&frames, 0);
            log_slowlog(head, (const char *)nw_buf_head(&frames));
            nw_buf_free(&frames);
            ask_language(a, i, tid, 0);
        }
    }
}

int arbiter_log_stack(arbiter *a, int i, nw_tslot *ts, int64_t start)
{
    pid_t pid = a->info[i].pid, tid = pid;
    nw_buf frames = NW_BUF_INIT;
    int rc;
    if (ts) {
        rc = trace(a, i, (int)(ts - scoreboard_tslot(&a->sb, i, 0)), start, 0, &frames, &tid);
    } else {
        /* a silent worker: its loop thread, whatever it runs */
        char why[768];
        rc = stack_of_thread(pid, pid, STOP_WAIT_MS, NULL, NULL, &frames, why, sizeof why);
        if (rc < 0)
            nw_buf_printf(&frames, "(no stack: %s)\n", why);
    }
    if (rc != 1) {
        nw_buf_appendc(&frames, 0);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "worker %d thread %d was at: ", (int)pid, (int)tid);
        log_lines(NW_LOG_ERROR, prefix, (const char *)nw_buf_head(&frames));
        /* the kill follows: give the language-level trace its moment */
        if (ask_language(a, i, tid, 1)) {
            struct timespec ms100 = {0, 100 * 1000 * 1000};
            nanosleep(&ms100, NULL);
        }
    }
    nw_buf_free(&frames);
    return rc;
}
