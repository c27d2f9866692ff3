/* arbiter_priv.h - the master's state, shared by arbiter.c (supervision)
 * and reload.c (HUP, --reload, USR2). Not for anyone else. */
#ifndef NW_ARBITER_PRIV_H
#define NW_ARBITER_PRIV_H

#include <poll.h>
#include <stdint.h>

#include "arbiter.h"
#include "exec.h"
#include "scoreboard.h"
#include "watch.h"

enum { ARBITER_RUNNING, ARBITER_STOPPING, ARBITER_STOPPING_FAST };

/* Boot failures in a row (no worker reached ready in between) after which
 * a master that has never served gives up instead of fork-looping. Once a
 * generation has served, boot failures only back off (BOOT_BACKOFF_MAX_MS
 * at most between tries): the workers that run go on serving. */
#define MAX_BOOT_FAILURES 5
#define BOOT_BACKOFF_MAX_MS 12800

/* A crash storm: this many workers dying unasked (signal or non-zero exit)
 * within CRASH_WINDOW_MS. Each further death in a storm doubles the wait
 * before respawning, from CRASH_BACKOFF_MIN_MS up to CRASH_BACKOFF_MAX_MS;
 * the master never stops for it (a crashing URL must not stop the server). */
#define CRASH_STORM 20
#define CRASH_WINDOW_MS 10000
#define CRASH_BACKOFF_MIN_MS 100
#define CRASH_BACKOFF_MAX_MS 5000

/* An --exec child counts as booted once it has lived this long. */
#define EXEC_BOOT_MS 2000

/* A worker loading its app is killed only after max(timeout + 1 s, this). */
#define BOOT_LIMIT_MS 60000

typedef struct slot_info {
    /* The master's own record of what it started: the scoreboard slot's pid
     * is the worker's to write (a broken app could write -1 there, and
     * kill(-1, ...) from a root master signals every process). */
    pid_t pid;
    int exec;               /* an --exec program (else a worker of ours) */
    int stop_signal;        /* its graceful stop, from the settings it started with */
    const char *killed_for; /* why the master killed it, for the reap log */
    int retiring;           /* told to stop (TTOU); not counted as live */
    int64_t retired_ms;     /* when: SIGKILL once graceful_timeout has passed */
    int was_ready;
    unsigned generation; /* which configuration it was started with */
    int64_t spawned_ms;
    uint64_t seen_requests; /* pm.c: its request count at the last look */
    int64_t idle_since_ms;  /* pm.c: since when it has run nothing */
    exec_pipe out[2]; /* --exec: the child's stdout and stderr */
} slot_info;

typedef struct arbiter {
    nw_settings *s;      /* in force */
    nw_settings *s_old;  /* during a reload: the one the old workers run */
    nw_settings *s_main; /* main()'s, not ours to free */
    nw_cmdline *cmd;
    pid_t new_master; /* USR2: the master we started, while it lives */
    unsigned generation;
    nw_listener *ls;
    int nls;
    nw_identity id;
    nw_scoreboard sb;
    slot_info *info;
    int target; /* workers wanted */
    int state;
    int64_t stop_deadline;
    int killed_all;
    int sfd;
    int boot_failures;
    int served;                   /* a worker has been ready: boot failures no longer stop us */
    int64_t crashes[CRASH_STORM]; /* when the last workers died unasked (ring) */
    int ncrash;
    int64_t crash_backoff_ms; /* in a crash storm: the wait before respawning */
    int64_t next_spawn_ms;
    int64_t next_stats_ms; /* the workers gauge, once a second */
    int exit_code;
    struct pollfd *pfd; /* the signalfd and, under --exec, the children's pipes */
    exec_pipe **pfd_pipe;
    nw_watch watch;             /* --reload */
    const nw_settings *watched; /* the settings whose files it watches */
    int reload_again;           /* a reload was asked for during another */
    int64_t reload_at;          /* a watched file changed: reload then (debounced) */
    int64_t code_changed_ms;    /* when a worker last reported a module change */
    char changed[256];
    /* the process manager (pm.c) */
    int reload_want;        /* workers a reload's new generation starts with */
    int pm_rate;            /* workers it may spawn this second (1, doubling) */
    int pm_spawned;         /* spawned this second */
    int64_t pm_second_ms;   /* when this second began */
    int64_t pm_retired_ms;  /* dynamic: the last idle worker retired, one a second */
    int pm_full_warned;     /* every worker busy at `workers`: said, until fewer run */
    int pm_started;         /* dynamic: start_workers spawned */
    int pm_waiting;         /* a listener was readable with no idle worker */
} arbiter;

/* arbiter.c */
/* Workers of the current generation that are not on their way out. */
int arbiter_live_workers(const arbiter *a, int ready_only);
/* Asks worker slot i to stop gracefully; it no longer counts as live. */
void arbiter_retire(arbiter *a, int i);
/* Forks one worker of the settings in force. 0/-1 (logged). */
int arbiter_spawn(arbiter *a);

/* pm.c */
/* Each loop turn: notes which workers are idle and, under dynamic and
 * ondemand, spawns and retires workers (never during a reload or a stop). */
void pm_maintain(arbiter *a);
/* Whether the master should wake when a listener is readable: a
 * connection would wait for a worker the manager may spawn. */
int pm_watch_listeners(arbiter *a);
/* The loop's wait, shortened while workers boot or the spawn rate waits. */
int pm_wait_ms(const arbiter *a, int wait_ms);
/* The worker to retire when there are more than `workers` (TTOU): the one
 * idle the longest, else the oldest; -1 if none. */
int pm_pick_retiree(const arbiter *a);
/* How many workers a reload to ns starts. */
int pm_reload_size(const arbiter *a, const nw_settings *ns);

/* slowlog.c */
/* Once a second: the stack of each request running past slowlog_timeout,
 * once per request, into the slowlog (a few per call at most). */
void arbiter_slowlog_check(arbiter *a);
/* Before worker slot i is killed for `timeout`: the stack of the thread
 * that runs request slot ts (the request that began at start), or with ts
 * NULL of its loop thread (a silent worker), as error log lines. Returns 1
 * when that request ended meanwhile (nothing logged), else 0 or -1. */
#define STACKS_PER_CHECK 4 /* stacks before kills in one look at the workers */
int arbiter_log_stack(arbiter *a, int i, nw_tslot *ts, int64_t start);

/* reload.c */
void arbiter_free_settings(arbiter *a, nw_settings *s);
void arbiter_apply_settings(nw_settings *s);
void arbiter_reload(arbiter *a, const char *why);
void arbiter_reload_abort(arbiter *a);
void arbiter_reload_finish(arbiter *a);
void arbiter_upgrade(arbiter *a);
void arbiter_check_old_master(arbiter *a);

#endif
