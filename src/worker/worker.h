/* worker.h - one worker process: loads the app, runs the connection core.
 *
 * A worker never returns: it exits with 0 (stopped, recycled), or with
 * WORKER_BOOT_ERROR when the app cannot be loaded or nw_worker_init fails
 * (the master counts these to avoid fork loops). */
#ifndef NW_WORKER_H
#define NW_WORKER_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

#include "app.h"
#include "identity.h"
#include "conn.h"
#include "listener.h"
#include "scoreboard.h"
#include "settings.h"

#define WORKER_BOOT_ERROR 3

typedef struct nw_worker {
    struct ev_loop *loop;
    const nw_settings *s;
    nw_listener *listeners;
    int nlisteners;
    ev_io *accept_w; /* one per listener */
    int accepting;
    /* Out of descriptors: accepting pauses a moment (worker.c). */
    ev_timer accept_pause;
    int accept_paused;
    int64_t accept_err_logged;    /* ms: the last "cannot accept" line */
    uint64_t accept_err_unlogged; /* failures since, not logged */
    ev_timer beat;
    ev_signal sigterm, sigusr1;
    nw_slot *slot;
    nw_tslot *tslots; /* request slots: one per thread (threads), else one */
    nw_app app;
    int cgi;           /* CGI programs (cgi.h) instead of an app */
    ev_timer cgi_stop; /* a graceful stop out of time kills them */
    pid_t master_pid;
    nw_conns conns;        /* the connection core */
    int inflight;          /* requests handed to the executor, not yet over */
    int stopping;          /* graceful stop under way */
    uint64_t requests;     /* handled by this worker */
    uint64_t max_requests; /* 0 = unlimited */
    int rss_fd;            /* max_worker_memory: /proc/self/statm, else -1 */
} nw_worker;


/* Runs a worker in the freshly forked child. Never returns. */
void worker_run(const nw_settings *s, nw_listener *ls, int nls, nw_slot *slot, nw_tslot *tslots,
                nw_identity id) __attribute__((noreturn));
#endif
