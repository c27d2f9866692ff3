/* executor.h - where tasks run: the three worker classes behind one
 * interface.
 *
 *   sync     on the loop thread, one at a time, oldest first
 *   threads  on a pool thread; the loop hands each task to an idle thread
 *   async    on a coroutine of the loop thread; its waits yield to the loop
 *
 * The executor runs tasks and knows nothing of what they are: a task is a
 * small record embedded in what it runs (nginx's ngx_thread_task_t), and
 * the owner gets it back through the done hook. How a task waits is
 * wait.h's business; the executor only sets up each coroutine's waiter. */
#ifndef NW_EXECUTOR_H
#define NW_EXECUTOR_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "scoreboard.h"
#include "settings.h"

typedef struct nw_task nw_task;
struct nw_task {
    void (*run)(nw_task *t);  /* where the class runs its work */
    void (*done)(nw_task *t); /* then, on the loop thread; may post again */
    nw_task *next;            /* the executor's queue link */
    /* async: what the scoreboard shows while the task holds the loop
     * (borrowed until done). The other classes' tasks mark their own slot
     * (executor_tslot). */
    const char *method, *uri;
    int64_t start_ms; /* async: when its request began (nw_now_ms), for the slowlog */
};

/* Starts the class's machinery (threads, stacks) on the worker's loop;
 * tslots are its request slots (one per thread, else one). 0, or -1
 * (logged). */
int executor_init(struct ev_loop *loop, nw_worker_class cls, int threads, size_t coroutine_stack,
                  nw_tslot *tslots);
/* Under async, the worker writes the slowlog entry of a request whose
 * coroutine waits (is suspended) after it has run longer than seconds
 * (0 = off): its stack is the context the coroutine saved, which only
 * the worker can read cheaply; the master traces what holds the loop.
 * NOTES.md, "The slowlog under async". */
void executor_set_slowlog(int seconds);
/* Runs t (from the loop thread). */
void executor_post(nw_task *t);
/* The request slot of the calling thread when it runs a task (sync,
 * threads); NULL under async, where the executor marks the slot itself each
 * time a task takes the loop. */
nw_tslot *executor_tslot(void);
/* The request slot that async requests share (the worker's first), for
 * counting them. */
nw_tslot *executor_shared_tslot(void);

#endif
