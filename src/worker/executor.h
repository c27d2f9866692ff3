/* executor.h - where a request's handler runs and how its waits wait.
 *
 *   sync     inline on the loop; waits block in poll(2)
 *   threads  on a pool thread that owns the connection until the response
 *            is sent; waits block that thread only
 *   async    on a coroutine on the loop thread; waits yield to the loop
 *
 * Everything else (accepting, parsing, keep-alive, limits) is the shared
 * connection core. Idle keep-alive connections never hold a thread or a
 * coroutine: only a request in progress does. */
#ifndef NW_EXECUTOR_H
#define NW_EXECUTOR_H

#include <stdint.h>

#include "scoreboard.h"
#include "worker.h"

/* Starts the class's machinery in a booted worker (threads, stacks). 0/-1. */
int executor_init(nw_worker *w);
/* Runs c->req (its params are complete; the core has stopped watching the
 * connection). conn_request_finished(c) is called on the loop thread when
 * the request is over. */
void executor_dispatch(nw_conn *c);
/* The one wait primitive: until fd (-1 = none) is ready for events
 * (NW_READ | NW_WRITE) or deadline_ms (nw_now_ms clock, -1 = none) passes.
 * The ready mask, 0 on timeout, -1 on error. */
int executor_wait_fd(nw_worker *w, int fd, int events, int64_t deadline_ms);
/* The scoreboard slot of the request running in the calling context, or
 * NULL where the executor keeps it itself (async). */
nw_tslot *executor_tslot(nw_worker *w);

#endif
