/* executor.c - the three executors behind one interface (see executor.h). */
#include "executor.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "coro.h"
#include "log.h"
#include "narwhal.h"
#include "request.h"
#include "util.h"

/* ---- blocking wait (sync, threads, and the loop's own rare waits) -------- */

static int poll_wait(int fd, int events, int64_t deadline_ms)
{
    struct pollfd pfd = {.fd = fd, .events = 0};
    if (events & NW_READ)
        pfd.events |= POLLIN;
    if (events & NW_WRITE)
        pfd.events |= POLLOUT;
    for (;;) {
        int ms = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - nw_now_ms();
            ms = left > 0 ? (left > 0x7fffffff ? 0x7fffffff : (int)left) : 0;
        }
        int r = poll(&pfd, fd >= 0 ? 1 : 0, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (pfd.revents & POLLNVAL)
            return -1;
        int mask = 0;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
            mask |= NW_READ;
        if (pfd.revents & (POLLOUT | POLLHUP | POLLERR))
            mask |= NW_WRITE;
        return mask & events ? mask & events : events;
    }
}

/* ---- a queue of connections with a request to run (loop thread only) ------ */

typedef struct connq {
    nw_conn *head, *tail;
} connq;

static void connq_push(connq *q, nw_conn *c)
{
    c->qnext = NULL;
    if (q->tail)
        q->tail->qnext = c;
    else
        q->head = c;
    q->tail = c;
}

static nw_conn *connq_pop(connq *q)
{
    nw_conn *c = q->head;
    if (c) {
        q->head = c->qnext;
        if (!q->head)
            q->tail = NULL;
        c->qnext = NULL;
    }
    return c;
}

/* ---- threads ---------------------------------------------------------------- */

static __thread nw_tslot *thread_tslot;

/* Each pool thread has its own hand-off: the loop thread gives a request to
 * an idle thread (its connection in t->c, then a post of t->go), and the
 * thread puts itself on the lock-free `done` stack when the request is over
 * and wakes the loop (ev_async). No lock is shared by the threads and the
 * loop, so a hand-off costs one wake-up each way and no contention. */
typedef struct pool_thread {
    sem_t go;
    nw_conn *c; /* the request to run; set by the loop */
    nw_tslot *tslot;
    struct pool_thread *next; /* on the idle list (loop) or done stack */
} pool_thread;

typedef struct pool {
    pool_thread *threads;
    pool_thread *idle; /* loop thread only */
    connq waiting;     /* loop thread only: waiting for a thread */
    pool_thread *done; /* pushed by threads, taken by the loop (atomics) */
    ev_async done_ev;
    nw_worker *w;
} pool;

static pool the_pool;

static void *pool_thread_main(void *arg)
{
    pool_thread *t = arg;
    pool *p = &the_pool;
    thread_tslot = t->tslot;
    for (;;) {
        while (sem_wait(&t->go) < 0)
            ; /* EINTR */
        request_run(t->c->req);
        pool_thread *old = __atomic_load_n(&p->done, __ATOMIC_RELAXED);
        do
            t->next = old;
        while (
            !__atomic_compare_exchange_n(&p->done, &old, t, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
        ev_async_send(p->w->loop, &p->done_ev);
    }
    return NULL;
}

static void pool_give(pool *p, nw_conn *c)
{
    pool_thread *t = p->idle;
    p->idle = t->next;
    t->c = c;
    sem_post(&t->go);
}

static void pool_on_done(struct ev_loop *loop, ev_async *a, int revents)
{
    pool *p = a->data;
    (void)loop;
    (void)revents;
    pool_thread *t = __atomic_exchange_n(&p->done, NULL, __ATOMIC_ACQUIRE);
    while (t) {
        pool_thread *next = t->next;
        nw_conn *c = t->c;
        t->c = NULL;
        t->next = p->idle;
        p->idle = t;
        /* may dispatch the connection's next request (keep-conn) */
        conn_request_finished(c);
        t = next;
    }
    while (p->idle && p->waiting.head)
        pool_give(p, connq_pop(&p->waiting));
}

static int pool_start(nw_worker *w)
{
    pool *p = &the_pool;
    p->w = w;
    ev_async_init(&p->done_ev, pool_on_done);
    p->done_ev.data = p;
    ev_async_start(w->loop, &p->done_ev);
    p->threads = nw_xcalloc((size_t)w->s->threads, sizeof *p->threads);
    for (int i = 0; i < w->s->threads; i++) {
        pool_thread *t = &p->threads[i];
        sem_init(&t->go, 0, 0);
        t->tslot = &w->tslots[i];
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

static void pool_submit(nw_conn *c)
{
    pool *p = &the_pool;
    if (p->idle && !p->waiting.head)
        pool_give(p, c);
    else
        connq_push(&p->waiting, c);
}

/* ---- sync ------------------------------------------------------------------- */

/* A sync worker runs its requests one at a time, oldest first. The I/O
 * callbacks of a loop iteration only queue them; a check watcher (after
 * the callbacks) runs the oldest, and while more are queued an idle watcher
 * keeps the next poll from blocking, so what arrived meanwhile queues
 * behind them. Run straight from the callbacks, a worker holding many
 * keep-conn connections served them in libev's order, newest first, and a
 * request could wait behind many later ones: with 50 ms handlers, p99 4 s
 * against a p50 of 0.55 s. */
typedef struct runq {
    connq q;
    ev_check run;
    ev_idle more;
} runq;

static runq the_runq;

static void runq_run_one(struct ev_loop *loop, ev_check *w, int revents)
{
    runq *q = w->data;
    (void)revents;
    nw_conn *c = connq_pop(&q->q);
    if (c) {
        request_run(c->req);
        conn_request_finished(c); /* may queue the connection's next request */
    }
    if (!q->q.head)
        ev_idle_stop(loop, &q->more);
}

static void runq_more(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static void runq_start(nw_worker *w)
{
    runq *q = &the_runq;
    ev_check_init(&q->run, runq_run_one);
    q->run.data = q;
    ev_check_start(w->loop, &q->run);
    ev_idle_init(&q->more, runq_more);
}

static void runq_push(nw_conn *c)
{
    runq *q = &the_runq;
    connq_push(&q->q, c);
    ev_idle_start(c->w->loop, &q->more);
}

/* ---- async ------------------------------------------------------------------ */

static void coro_entry(void *arg)
{
    nw_conn *c = arg;
    request_run(c->req);
}

/* Runs the connection's coroutine until it yields or ends. The request slot
 * shows the request that holds the loop since when, so a handler that does
 * not yield for longer than `timeout` is named when the master kills its
 * worker (waiting coroutines never count: their deadlines are their own). */
static void coro_step(nw_conn *c)
{
    nw_tslot *t = &c->w->tslots[0];
    scoreboard_tslot_begin(t, nw_param(c->req, "REQUEST_METHOD"), nw_param(c->req, "REQUEST_URI"),
                           nw_now_ms());
    int done = coro_resume(c->co);
    scoreboard_tslot_end(t);
    if (done) {
        coro_free(c->co);
        c->co = NULL;
        conn_request_finished(c);
    }
}

static void coro_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    nw_conn *c = io->data;
    ev_io_stop(loop, io);
    ev_timer_stop(loop, &c->co_timer);
    c->co_result = ((revents & EV_READ) ? NW_READ : 0) | ((revents & EV_WRITE) ? NW_WRITE : 0);
    coro_step(c);
}

static void coro_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    nw_conn *c = t->data;
    (void)revents;
    ev_io_stop(loop, &c->co_io);
    c->co_result = 0;
    coro_step(c);
}

static int coro_wait(nw_worker *w, nw_conn *c, int fd, int events, int64_t deadline_ms)
{
    if (fd >= 0) {
        int ev = ((events & NW_READ) ? EV_READ : 0) | ((events & NW_WRITE) ? EV_WRITE : 0);
        ev_io_set(&c->co_io, fd, ev);
        ev_io_start(w->loop, &c->co_io);
    }
    if (deadline_ms >= 0) {
        ev_now_update(w->loop);
        int64_t left = deadline_ms - nw_now_ms();
        ev_timer_set(&c->co_timer, left > 0 ? (double)left / 1000. : 0., 0.);
        ev_timer_start(w->loop, &c->co_timer);
    }
    if (fd < 0 && deadline_ms < 0)
        return -1; /* nothing could ever wake it */
    c->co_result = -1;
    coro_yield();
    return c->co_result;
}

/* ---- the interface ----------------------------------------------------------- */

int executor_init(nw_worker *w)
{
    switch (w->s->worker_class) {
    case NW_CLASS_THREADS:
        return pool_start(w);
    case NW_CLASS_ASYNC:
        coro_set_stack_size((size_t)w->s->coroutine_stack_size * 1024);
        return 0;
    case NW_CLASS_SYNC:
        runq_start(w);
        break;
    }
    return 0;
}

void executor_dispatch(nw_conn *c)
{
    switch (c->w->s->worker_class) {
    case NW_CLASS_THREADS:
        pool_submit(c);
        return;
    case NW_CLASS_ASYNC:
        c->co = coro_new(coro_entry, c);
        coro_set_data(c->co, c);
        ev_init(&c->co_io, coro_on_io);
        c->co_io.data = c;
        ev_init(&c->co_timer, coro_on_timer);
        c->co_timer.data = c;
        coro_step(c);
        return;
    case NW_CLASS_SYNC:
        break;
    }
    runq_push(c);
}

int executor_wait_fd(nw_worker *w, int fd, int events, int64_t deadline_ms)
{
    nw_coro *co = coro_current();
    if (co)
        return coro_wait(w, coro_data(co), fd, events, deadline_ms);
    return poll_wait(fd, events, deadline_ms);
}

nw_tslot *executor_tslot(nw_worker *w)
{
    switch (w->s->worker_class) {
    case NW_CLASS_THREADS:
        return thread_tslot;
    case NW_CLASS_ASYNC:
        return NULL;
    case NW_CLASS_SYNC:
        break;
    }
    return &w->tslots[0];
}
