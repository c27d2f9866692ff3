/* executor.c - the three executors behind one interface (see executor.h). */
#include "executor.h"

#include <pthread.h>
#include <signal.h>
#include <semaphore.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coro.h"
#include "log.h"
#include "stack.h"
#include "util.h"
#include "wait.h"

static struct ev_loop *loop;
static nw_worker_class the_class;
static nw_tslot *the_tslots;

/* ---- a queue of tasks (loop thread only) ---------------------------------- */

typedef struct taskq {
    nw_task *head, *tail;
} taskq;

static void taskq_push(taskq *q, nw_task *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

static nw_task *taskq_pop(taskq *q)
{
    nw_task *t = q->head;
    if (t) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
        t->next = NULL;
    }
    return t;
}

/* ---- threads ---------------------------------------------------------------- */

static __thread nw_tslot *thread_tslot;

/* Each pool thread has its own hand-off: the loop thread gives a task to an
 * idle thread (in t->task, then a post of t->go), and the thread puts
 * itself on the lock-free `done` stack when the task is over and wakes the
 * loop (ev_async). No lock is shared by the threads and the loop, so a
 * hand-off costs one wake-up each way and no contention. */
typedef struct pool_thread {
    sem_t go;
    nw_task *task; /* set by the loop */
    nw_tslot *tslot;
    struct pool_thread *next; /* on the idle list (loop) or done stack */
} pool_thread;

typedef struct pool {
    pool_thread *threads;
    pool_thread *idle; /* loop thread only */
    taskq waiting;     /* loop thread only: waiting for a thread */
    pool_thread *done; /* pushed by threads, taken by the loop (atomics) */
    ev_async done_ev;
} pool;

static pool the_pool;

static void *pool_thread_main(void *arg)
{
    pool_thread *t = arg;
    pool *p = &the_pool;
    thread_tslot = t->tslot;
    /* for the master's slowlog: which thread to trace */
    __atomic_store_n(&t->tslot->tid, gettid(), __ATOMIC_RELAXED);
    /* No signal blocked, on purpose: a program a handler starts (fork,
     * posix_spawn, system, popen) inherits this thread's mask. The worker's
     * signals are safe on any thread (libev's handlers only feed the loop,
     * with SA_RESTART); see NOTES.md, "Signals of the programs an app
     * starts". */
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    for (;;) {
        while (sem_wait(&t->go) < 0)
            ; /* EINTR */
        t->task->run(t->task);
        pool_thread *old = __atomic_load_n(&p->done, __ATOMIC_RELAXED);
        do
            t->next = old;
        while (
            !__atomic_compare_exchange_n(&p->done, &old, t, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
        ev_async_send(loop, &p->done_ev);
    }
    return NULL;
}

static void pool_give(pool *p, nw_task *task)
{
    pool_thread *t = p->idle;
    p->idle = t->next;
    t->task = task;
    sem_post(&t->go);
}

static void pool_on_done(struct ev_loop *l, ev_async *a, int revents)
{
    pool *p = a->data;
    (void)l;
    (void)revents;
    pool_thread *t = __atomic_exchange_n(&p->done, NULL, __ATOMIC_ACQUIRE);
    while (t) {
        pool_thread *next = t->next;
        nw_task *task = t->task;
        t->task = NULL;
        t->next = p->idle;
        p->idle = t;
        task->done(task); /* may post the owner's next task */
        t = next;
    }
    while (p->idle && p->waiting.head)
        pool_give(p, taskq_pop(&p->waiting));
}

static int pool_start(int threads)
{
    pool *p = &the_pool;
    ev_async_init(&p->done_ev, pool_on_done);
    p->done_ev.data = p;
    ev_async_start(loop, &p->done_ev);
    p->threads = nw_xcalloc((size_t)threads, sizeof *p->threads);
    for (int i = 0; i < threads; i++) {
        pool_thread *t = &p->threads[i];
        sem_init(&t->go, 0, 0);
        t->tslot = &the_tslots[i];
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &attr, pool_thread_main, t);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            log_error("cannot start worker thread %d: %s", i, strerror(rc));
            return -1;
        }
        t->next = p->idle;
        p->idle = t;
    }
    return 0;
}

static void pool_post(nw_task *task)
{
    pool *p = &the_pool;
    if (p->idle && !p->waiting.head)
        pool_give(p, task);
    else
        taskq_push(&p->waiting, task);
}

/* ---- sync ------------------------------------------------------------------- */

/* A sync worker runs its tasks one at a time, oldest first. The I/O
 * callbacks of a loop iteration only queue them; a check watcher (after
 * the callbacks) runs the oldest, and while more are queued an idle watcher
 * keeps the next poll from blocking, so what arrived meanwhile queues
 * behind them. Run straight from the callbacks, a worker holding many
 * keep-conn connections served them in libev's order, newest first, and a
 * request could wait behind many later ones: with 50 ms handlers, p99 4 s
 * against a p50 of 0.55 s. */
typedef struct runq {
    taskq q;
    ev_check run;
    ev_idle more;
} runq;

static runq the_runq;

static void runq_run_one(struct ev_loop *l, ev_check *w, int revents)
{
    runq *q = w->data;
    (void)revents;
    nw_task *t = taskq_pop(&q->q);
    if (t) {
        t->run(t);
        t->done(t); /* may queue the owner's next task */
    }
    if (!q->q.head)
        ev_idle_stop(l, &q->more);
}

static void runq_more(struct ev_loop *l, ev_idle *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static void runq_start(void)
{
    runq *q = &the_runq;
    ev_check_init(&q->run, runq_run_one);
    q->run.data = q;
    ev_check_start(loop, &q->run);
    ev_idle_init(&q->more, runq_more);
}

static void runq_post(nw_task *t)
{
    runq *q = &the_runq;
    taskq_push(&q->q, t);
    ev_idle_start(loop, &q->more);
}

/* ---- async ------------------------------------------------------------------ */

/* A task's coroutine and what it waits with. Kept on a free list: a busy
 * worker reuses them as it reuses the stacks. */
typedef struct co_run {
    nw_waiter waiter; /* first: the coroutine's data points at it */
    nw_coro *co;
    nw_task *task;
    struct co_run *next_free;
    struct co_run *prev, *next; /* among the live ones, for the slowlog */
    int slowlogged;             /* its stack is in the slowlog */
} co_run;

static co_run *free_runs;
static co_run *live_runs;

/* ---- the slowlog of waiting coroutines ---------------------------------------- */

static int slowlog_ms;
static ev_timer slowlog_timer;
/* Stacks written per second at most: each costs the loop a few ms (libdw
 * reads the objects' symbols), and the rest wait for the next second. */
#define SLOWLOG_PER_TICK 4

static void slowlog_entry(co_run *r, int64_t now)
{
    nw_buf frames = NW_BUF_INIT;
    char why[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (stack_of_context(coro_context(r->co), &frames, why, sizeof why) < 0)
        nw_buf_printf(&frames, "(no stack: %s)\n", why);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_debug("unwound a waiting coroutine in %lld us",
              (long long)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000));
    nw_buf_appendc(&frames, 0);
    char head[512];
    snprintf(head, sizeof head, "worker %d coroutine (waiting): %.16s %.400s running for %lld ms",
             (int)getpid(), r->task->method ? r->task->method : "-",
             r->task->uri ? r->task->uri : "-", (long long)(now - r->task->start_ms));
    log_slowlog(head, (const char *)nw_buf_head(&frames));
    nw_buf_free(&frames);
}

/* Once a second: the requests whose coroutine waits, past slowlog_timeout
 * and not yet logged (one that holds the loop is the master's to trace). */
static void slowlog_tick(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l, (void)w, (void)revents;
    int64_t now = nw_now_ms();
    int n = 0;
    stack_trim(60000); /* what libdw read, once unused for a minute */
    for (co_run *r = live_runs; r && n < SLOWLOG_PER_TICK; r = r->next) {
        if (r->slowlogged || now - r->task->start_ms <= slowlog_ms)
            continue;
        r->slowlogged = 1;
        slowlog_entry(r, now);
        n++;
    }
}

void executor_set_slowlog(int seconds)
{
    slowlog_ms = seconds * 1000;
    if (the_class != NW_CLASS_ASYNC || !loop)
        return;
    if (seconds > 0 && !ev_is_active(&slowlog_timer)) {
        ev_timer_init(&slowlog_timer, slowlog_tick, 1., 1.);
        ev_timer_start(loop, &slowlog_timer);
        ev_unref(loop); /* the loop's end is the connections' business */
    } else if (seconds <= 0 && ev_is_active(&slowlog_timer)) {
        ev_ref(loop);
        ev_timer_stop(loop, &slowlog_timer);
    }
}

static void co_entry(void *arg)
{
    co_run *r = arg;
    r->task->run(r->task);
}

/* Runs the task's coroutine until it yields or ends. The request slot shows
 * the task that holds the loop since when, so a handler that does not
 * yield for longer than `timeout` is named when the master kills its
 * worker (waiting coroutines never count: their deadlines are their own). */
static void co_step(co_run *r)
{
    /* The task that marked the slot last: resuming it again only moves the
     * start (its method and uri are there already). */
    static const nw_task *marked;
    nw_tslot *t = &the_tslots[0];
    if (marked == r->task) {
        scoreboard_request_resume(t, nw_now_ms());
    } else {
        scoreboard_request_begin(t, r->task->method, r->task->uri, nw_now_ms());
        marked = r->task;
    }
    /* once per request: the master skips one already logged here, and the
     * master's mark (it traced this one holding the loop) comes back */
    if (r->slowlogged)
        __atomic_store_n(&t->slowlogged, 1, __ATOMIC_RELAXED);
    int done = coro_resume(r->co);
    scoreboard_request_end(t);
    if (__atomic_load_n(&t->slowlogged, __ATOMIC_RELAXED))
        r->slowlogged = 1;
    if (done) {
        nw_task *task = r->task;
        marked = NULL; /* its connection may post its next task at this address */
        if (r->prev)
            r->prev->next = r->next;
        else
            live_runs = r->next;
        if (r->next)
            r->next->prev = r->prev;
        coro_free(r->co);
        r->co = NULL;
        r->task = NULL;
        r->next_free = free_runs;
        free_runs = r;
        task->done(task);
    }
}

static void co_wake(nw_waiter *w)
{
    co_step((co_run *)w);
}

static void co_post(nw_task *task)
{
    co_run *r = free_runs;
    if (r)
        free_runs = r->next_free;
    else
        r = nw_xcalloc(1, sizeof *r);
    wait_setup(&r->waiter, loop, co_wake);
    r->task = task;
    r->slowlogged = 0;
    r->prev = NULL;
    r->next = live_runs;
    if (live_runs)
        live_runs->prev = r;
    live_runs = r;
    r->co = coro_new(co_entry, r);
    coro_set_data(r->co, &r->waiter);
    co_step(r);
}

/* ---- the interface ----------------------------------------------------------- */

int executor_init(struct ev_loop *l, nw_worker_class cls, int threads, size_t coroutine_stack,
                  nw_tslot *tslots)
{
    loop = l;
    the_class = cls;
    the_tslots = tslots;
    switch (cls) {
    case NW_CLASS_THREADS:
        return pool_start(threads);
    case NW_CLASS_ASYNC:
        tslots[0].tid = getpid();
        coro_set_stack_size(coroutine_stack);
        executor_set_slowlog(slowlog_ms / 1000);
        return 0;
    case NW_CLASS_SYNC:
        tslots[0].tid = getpid();
        runq_start();
        break;
    }
    return 0;
}

void executor_post(nw_task *t)
{
    switch (the_class) {
    case NW_CLASS_THREADS:
        pool_post(t);
        return;
    case NW_CLASS_ASYNC:
        co_post(t);
        return;
    case NW_CLASS_SYNC:
        break;
    }
    runq_post(t);
}

nw_tslot *executor_tslot(void)
{
    switch (the_class) {
    case NW_CLASS_THREADS:
        return thread_tslot;
    case NW_CLASS_ASYNC:
        return NULL;
    case NW_CLASS_SYNC:
        break;
    }
    return &the_tslots[0];
}

nw_tslot *executor_shared_tslot(void)
{
    return &the_tslots[0];
}
