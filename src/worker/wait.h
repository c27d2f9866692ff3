/* wait.h - the one wait primitive of a worker: until an fd is ready, or a
 * deadline passes.
 *
 * Where it blocks depends on who asks. On a thread's own stack (the sync
 * class's loop thread, a threads-class pool thread) it blocks in poll(2).
 * Inside a coroutine (the async class) it yields to the loop, which resumes
 * the coroutine through the waiter the executor gave it: the waiter's
 * watchers are the coroutine's, and its wake hook is how this layer calls
 * back up without knowing who is above. */
#ifndef NW_WAIT_H
#define NW_WAIT_H

#include <ev.h>
#include <stdint.h>

/* What a coroutine waits with. Set up once per coroutine by its owner
 * (wait_setup); the owner makes it the coroutine's data (coro_set_data). */
typedef struct nw_waiter {
    struct ev_loop *loop;
    ev_io io;
    ev_timer timer;
    int result;                        /* what the wait returns */
    void (*wake)(struct nw_waiter *w); /* resume the coroutine (loop thread) */
} nw_waiter;

void wait_setup(nw_waiter *w, struct ev_loop *loop, void (*wake)(nw_waiter *w));

/* Waits until fd (-1 = none) is ready for events (NW_READ | NW_WRITE) or
 * deadline_ms (nw_now_ms clock, -1 = none) passes. Returns the ready mask,
 * 0 on timeout, -1 on error (or nothing could ever end the wait). A
 * deadline already passed makes it a non-blocking check. fd must be open:
 * inside a coroutine libev takes it on trust (nw_wait_fd checks the app's). */
int wait_fd(int fd, int events, int64_t deadline_ms);

#endif
