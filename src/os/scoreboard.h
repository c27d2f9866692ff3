/* scoreboard.h - per-worker state in shared memory.
 *
 * The master maps it before forking; each worker writes only its own slot
 * and its own request slots (one per thread; one for the sync and async
 * classes), the master reads them once a second to find dead or stuck
 * workers. Fields are written with atomic stores; method/uri are
 * informational and may be caught half-written (they are only logged). */
#ifndef NW_SCOREBOARD_H
#define NW_SCOREBOARD_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

enum { SLOT_FREE = 0, SLOT_BOOTING, SLOT_READY, SLOT_STOPPING };

/* What the master sends a thread whose stack it traced, when its worker
 * has a language-level tracer: si_value 0 = write to the slowlog, 1 = to
 * the error log (a timeout kill follows). glibc keeps SIGRTMIN..+2 for
 * itself. */
#define SB_TRACE_SIGNAL (SIGRTMIN + 4)

/* One request in progress. Its own cache line(s): threads of one worker
 * each write theirs. */
typedef struct nw_tslot {
    int64_t req_start_ms; /* when the request began, 0 = none */
    uint64_t requests;    /* requests begun on this slot */
    pid_t tid;            /* the thread that runs the slot's requests (set once) */
    int slowlogged;       /* its request's stack is in the slowlog (the master sets it
                             too: the only field it writes) */
    char method[16];
    char uri[232];
} __attribute__((aligned(64))) nw_tslot;

enum {
    SB_EXIT_NORMAL,
    SB_EXIT_ERROR,
    SB_EXIT_SIGNAL,
    SB_EXIT_TIMEOUT,
    SB_EXIT_HEARTBEAT,
    SB_NEXIT
};
/* Request duration buckets: upper bounds in ms; the last bucket is +Inf. */
#define SB_DURATION_BOUNDS_MS                                                                      \
    {                                                                                              \
        5, 25, 100, 500, 2500, 10000                                                               \
    }
enum { SB_NBUCKETS = 7 };
/* Listeners whose queue's maximum is kept. */
enum { SB_MAX_LISTENERS = 16 };

/* What a worker counts as it serves. Each worker counts in its own slot
 * (no other worker writes that cache line); the master folds a gone
 * worker's counts into the totals, and a reader adds the live ones
 * (scoreboard_snapshot). All fields are uint64_t (counts_add). */
typedef struct nw_sb_counts {
    uint64_t accepted;              /* connections accepted */
    uint64_t requests;              /* requests finished */
    uint64_t status[6];             /* by class: [1] 1xx .. [5] 5xx, [0] anything else */
    uint64_t timeouts;              /* requests answered 504 for passing `timeout` */
    uint64_t duration[SB_NBUCKETS]; /* requests per duration bucket (not cumulative) */
    uint64_t duration_us;           /* sum of the durations */
} nw_sb_counts;

typedef struct nw_slot {
    pid_t pid;
    int state;
    int trace_hook;       /* the worker has a language-level tracer (nw_set_trace_hook):
                             the master sends SB_TRACE_SIGNAL to a thread after its stack */
    int64_t heartbeat_ms; /* nw_now_ms() of the worker's last sign of life */
    int64_t started_ms;   /* nw_now_ms() when the worker became ready */
    int capacity;         /* requests it runs at once (set when ready, 0 once stopping) */
    int active;           /* requests it runs now */
    int cgi_running;      /* CGI programs it runs now */
    int cgi_waiting;      /* CGI requests waiting for a cgi_max_running turn */
    nw_sb_counts c;       /* what it served (c.requests: requests it handled) */
} __attribute__((aligned(64))) nw_slot;

/* Server-wide totals: one area at the head of the map, kept from the
 * master's start to its exit (worker restarts and HUP keep them). c holds
 * the counts of workers gone (a snapshot adds the live ones'); the rest is
 * server-wide by nature and updated with relaxed atomics. */
typedef struct nw_sb_totals {
    int64_t start_unix_ms;    /* wall clock when the master opened the scoreboard */
    int64_t start_ms;         /* nw_now_ms() then */
    uint64_t generation;      /* reloads (HUP) since the master started */
    uint64_t exits[SB_NEXIT]; /* workers gone, by cause */
    nw_sb_counts c;           /* counts of the workers gone (master only) */
    /* the process manager (master only, but memory_replaced) */
    int process_manager;          /* NW_PM_* */
    int workers_max;              /* `workers` now (TTIN/TTOU change it) */
    uint64_t max_workers_reached; /* times every worker was busy at workers_max */
    uint64_t idle_retired;        /* workers retired for being idle */
    uint64_t memory_replaced;     /* workers that stopped for max_worker_memory (they count) */
    /* written by every worker, twice per request: */
    int64_t active __attribute__((aligned(64))); /* requests running now, all workers */
    int64_t capacity;                            /* requests the ready workers run at once */
    int64_t max_active;                          /* most requests running at once */
    uint64_t full; /* requests that took the last idle slot or found none */
    /* The listen queues' most seen, sampled by the master once a second and
     * by every status page (scoreboard_note_queues). */
    int64_t listen_queue_max;            /* of all listeners' queues together */
    int32_t queue_max[SB_MAX_LISTENERS]; /* of each, in the order of the bind list */
} nw_sb_totals;

typedef struct nw_scoreboard {
    nw_sb_totals *totals;
    nw_slot *slots;
    nw_tslot *tslots; /* per_slot for each slot */
    int nslots;
    int per_slot;
    size_t map_len;
} nw_scoreboard;

/* Maps the totals and nslots zeroed slots with per_slot request slots each,
 * shared with future children, and remembers the map for
 * scoreboard_shared(). 0/-1 (logged). */
int scoreboard_open(nw_scoreboard *sb, int nslots, int per_slot);
void scoreboard_close(nw_scoreboard *sb);
/* A free slot's index, or -1 when all are taken. */
int scoreboard_claim(nw_scoreboard *sb, pid_t pid);
void scoreboard_release(nw_scoreboard *sb, int i);
int scoreboard_find(const nw_scoreboard *sb, pid_t pid);
/* The scoreboard this process (or its master, before the fork) opened last:
 * a worker reads the others' slots through it. NULL if none. */
const nw_scoreboard *scoreboard_shared(void);
/* Master side: a reload began; a worker is gone (cause: SB_EXIT_*). */
void scoreboard_count_reload(nw_scoreboard *sb);
/* The listen queues seen now (queues[k] of listener k, -1 = unknown):
 * raises the maxima it passes. Any process, any time. */
void scoreboard_note_queues(const nw_scoreboard *sb, const int *queues, int n);
void scoreboard_count_exit(nw_scoreboard *sb, int cause);
/* Master side, the process manager: its mode and `workers` now; a time it
 * found every worker busy at `workers`; a worker it retired as idle. */
void scoreboard_set_pm(nw_scoreboard *sb, int process_manager, int workers_max);
void scoreboard_count_max_reached(nw_scoreboard *sb);
void scoreboard_count_idle_retired(nw_scoreboard *sb);
static inline nw_tslot *scoreboard_tslot(const nw_scoreboard *sb, int i, int t)
{
    return &sb->tslots[(size_t)i * (size_t)sb->per_slot + (size_t)t];
}

/* Worker side. */
void scoreboard_beat(nw_slot *s);
/* The worker is ready and runs up to capacity requests at once. */
void scoreboard_ready(nw_slot *s, int capacity);
/* The worker stops: it takes no new request, so its capacity is no
 * longer the server's (nor is it idle). */
void scoreboard_stopping(nw_slot *s);
/* Marks request slot t as running a request (a copy of method and uri),
 * not yet in the slowlog. */
void scoreboard_request_begin(nw_tslot *t, const char *method, const char *uri, int64_t start_ms);
/* The same request takes the slot again (async: its coroutine resumes):
 * only when. */
void scoreboard_request_resume(nw_tslot *t, int64_t start_ms);
void scoreboard_request_end(nw_tslot *t);
/* Counting, through scoreboard_shared() (no-ops without one): a
 * connection accepted by the worker of slot s; a request entered or left
 * request slot ts (one call each per request, whatever the class: under
 * async many requests share a request slot) and finished with status after
 * duration_us (timed_out: it passed `timeout` and got a 504). The counts
 * go to the worker's own slot; only `active` is server-wide. */
void scoreboard_count_accept(nw_slot *s);
/* The worker stops for max_worker_memory. */
void scoreboard_count_memory_replaced(void);
void scoreboard_count_enter(nw_tslot *ts);
void scoreboard_count_leave(nw_tslot *ts, int status, uint64_t duration_us, int timed_out);

/* A copy of the totals and of every slot, for a reader: out->totals,
 * slots and tslots point into memory the caller frees with
 * scoreboard_snapshot_free. Plain loads, no lock: a writer never waits for
 * a reader. What can be torn: a request slot's method and uri (a request
 * that begins while they are copied shows a mix of two requests' strings,
 * always NUL-terminated in the copy), and counters read one after another
 * (requests may already count one whose status is not yet counted). Each
 * number is one aligned 64-bit load, never half-written; a page is a
 * picture of a moving server, off by the requests in flight, and the next
 * read is right again. out->totals->c is the sum of the workers gone and
 * of every live worker's counts. */
int scoreboard_snapshot(const nw_scoreboard *sb, nw_scoreboard *out);
void scoreboard_snapshot_free(nw_scoreboard *snap);

#endif
