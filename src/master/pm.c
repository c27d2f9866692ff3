/* pm.c - the process manager: how many workers run (php-fpm's pm).
 *
 * static: `workers`, always (arbiter.c alone). dynamic: between
 * min_spare_workers and max_spare_workers idle, `workers` at most, starting
 * with start_workers. ondemand: none until a connection waits on a listener
 * that no worker can take; a worker idle for worker_idle_timeout is retired.
 *
 * "Idle" is counted in request slots, the scoreboard's unit: a worker of
 * the sync class has one, of threads `threads`, of async
 * `worker_connections`. The spare workers are the idle slots of the ready
 * workers divided by one worker's slots (rounded down), plus the workers
 * still booting: min_spare_workers = 1 under threads = 8 keeps at least 8
 * idle threads. Only a worker running no request at all is retired, and a
 * retired worker stops gracefully (it stops accepting, finishes what it
 * holds, ends its kept connections with their next response): retiring
 * drops nothing.
 *
 * The spawn rate starts at one worker a second and doubles every second
 * that used it all, up to max_spawn_rate; a second without a spawn brings
 * it back to one (php-fpm's rule). */
#include <signal.h>
#include <stdio.h>

#include "arbiter_priv.h"
#include "log.h"
#include "util.h"

typedef struct pm_count {
    int live;       /* current generation, not retiring, not stopping on its own */
    int booting;    /* of those, not ready yet */
    int64_t idle;   /* idle request slots of the ready ones */
    int spare;      /* idle slots in whole workers, plus the booting ones */
} pm_count;

/* Request slots of one worker of the settings in force. */
static int worker_slots(const nw_settings *s)
{
    return s->worker_class == NW_CLASS_THREADS ? s->threads
           : s->worker_class == NW_CLASS_ASYNC ? s->worker_connections
                                               : 1;
}

static int is_current(const arbiter *a, int i)
{
    const slot_info *in = &a->info[i];
    return in->pid > 0 && !in->retiring && in->generation == a->generation && !in->exec;
}

static pm_count count(const arbiter *a)
{
    pm_count c = {0, 0, 0, 0};
    for (int i = 0; i < a->sb.nslots; i++) {
        if (!is_current(a, i))
            continue;
        const nw_slot *s = &a->sb.slots[i];
        int state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (state == SLOT_STOPPING)
            continue; /* max_requests, max_worker_memory: on its way out */
        c.live++;
        if (state != SLOT_READY) {
            c.booting++;
            continue;
        }
        int cap = __atomic_load_n(&s->capacity, __ATOMIC_RELAXED);
        int act = __atomic_load_n(&s->active, __ATOMIC_RELAXED);
        c.idle += cap > act ? cap - act : 0;
    }
    c.spare = (int)(c.idle / worker_slots(a->s)) + c.booting;
    return c;
}

/* Each loop turn: when each worker was last seen doing something. A
 * request begun and ended between two looks moves its count. */
static void observe(arbiter *a, int64_t now)
{
    for (int i = 0; i < a->sb.nslots; i++) {
        slot_info *in = &a->info[i];
        if (in->pid <= 0)
            continue;
        const nw_slot *s = &a->sb.slots[i];
        uint64_t req = __atomic_load_n(&s->c.requests, __ATOMIC_RELAXED);
        if (__atomic_load_n(&s->active, __ATOMIC_RELAXED) > 0 || req != in->seen_requests ||
            __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_READY || !in->idle_since_ms) {
            in->idle_since_ms = now;
            in->seen_requests = req;
        }
    }
}

/* Workers the spawn rate allows now. */
static int budget(arbiter *a, int64_t now)
{
    if (now - a->pm_second_ms >= 1000) {
        if (a->pm_rate < 1)
            a->pm_rate = 1;
        else if (a->pm_spawned >= a->pm_rate)
            a->pm_rate = a->pm_rate * 2 < a->s->max_spawn_rate ? a->pm_rate * 2
                                                               : a->s->max_spawn_rate;
        else if (a->pm_spawned == 0)
            a->pm_rate = 1;
        a->pm_second_ms = now;
        a->pm_spawned = 0;
    }
    return a->pm_rate > a->pm_spawned ? a->pm_rate - a->pm_spawned : 0;
}

/* The worker idle the longest (running nothing), or -1. */
static int idlest(const arbiter *a)
{
    int best = -1;
    for (int i = 0; i < a->sb.nslots; i++) {
        const nw_slot *s = &a->sb.slots[i];
        if (!is_current(a, i) || __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_READY ||
            __atomic_load_n(&s->active, __ATOMIC_RELAXED) > 0)
            continue;
        if (best < 0 || a->info[i].idle_since_ms < a->info[best].idle_since_ms)
            best = i;
    }
    return best;
}

static void retire_idle(arbiter *a, int i, const char *why, int64_t now)
{
    const char *pm = settings_process_manager_name(a->s->process_manager);
    log_info("process_manager %s: retiring worker %d, idle %llds (%s)", pm, (int)a->info[i].pid,
             (long long)((now - a->info[i].idle_since_ms) / 1000), why);
    scoreboard_count_idle_retired(&a->sb);
    arbiter_retire(a, i);
}

int pm_pick_retiree(const arbiter *a)
{
    int i = idlest(a);
    if (i >= 0)
        return i;
    for (i = 0; i < a->sb.nslots; i++) /* the oldest: lowest slot */
        if (is_current(a, i))
            return i;
    return -1;
}

void pm_maintain(arbiter *a)
{
    const nw_settings *s = a->s;
    int64_t now = nw_now_ms();
    observe(a, now);
    scoreboard_set_pm(&a->sb, (int)s->process_manager, a->target);
    if (s->process_manager == NW_PM_STATIC || a->s_old || a->state != ARBITER_RUNNING)
        return;
    pm_count c = count(a);
    const char *pm = settings_process_manager_name(s->process_manager);

    /* every worker busy at `workers`: once per episode, which ends when
     * fewer workers run */
    if (c.live < a->target) {
        a->pm_full_warned = 0;
    } else if (c.idle == 0 && c.booting == 0 && a->target > 0 && !a->pm_full_warned) {
        a->pm_full_warned = 1;
        scoreboard_count_max_reached(&a->sb);
        log_warning("process_manager %s: all %d workers are busy (max children reached); raise "
                    "`workers` to run more at once",
                    pm, c.live);
    }

    int want = 0;
    if (s->process_manager == NW_PM_DYNAMIC) {
        if (!a->pm_started) {
            a->pm_started = 1;
            want = s->start_workers < a->target ? s->start_workers : a->target;
            want -= c.live;
            for (int k = 0; k < want && arbiter_spawn(a) == 0; k++)
                ;
            return;
        }
        want = s->min_spare_workers - c.spare;
        if (c.spare - c.booting > s->max_spare_workers && now - a->pm_retired_ms >= 1000) {
            int i = idlest(a);
            if (i >= 0) {
                a->pm_retired_ms = now;
                retire_idle(a, i, "more than max_spare_workers idle", now);
            }
        }
    } else {
        /* ondemand: a connection waits and no worker can take it */
        if (a->pm_waiting && c.idle == 0 && c.booting == 0)
            want = 1;
        for (int i = 0; i < a->sb.nslots; i++)
            if (is_current(a, i) &&
                __atomic_load_n(&a->sb.slots[i].state, __ATOMIC_ACQUIRE) == SLOT_READY &&
                __atomic_load_n(&a->sb.slots[i].active, __ATOMIC_RELAXED) == 0 &&
                now - a->info[i].idle_since_ms >= (int64_t)s->worker_idle_timeout * 1000)
                retire_idle(a, i, "worker_idle_timeout", now);
    }
    a->pm_waiting = 0;
    if (want > a->target - c.live)
        want = a->target - c.live;
    if (want <= 0 || now < a->next_spawn_ms)
        return;
    int n = budget(a, now);
    if (want > n)
        want = n;
    if (want <= 0)
        return;
    log_info("process_manager %s: spawning %d worker%s (%d running, %d idle slots)", pm, want,
             want == 1 ? "" : "s", c.live, (int)c.idle);
    for (int k = 0; k < want && arbiter_spawn(a) == 0; k++)
        a->pm_spawned++;
}

int pm_watch_listeners(arbiter *a)
{
    if (a->s->process_manager == NW_PM_STATIC || a->s_old || a->state != ARBITER_RUNNING)
        return 0;
    int64_t now = nw_now_ms();
    if (now < a->next_spawn_ms || budget(a, now) <= 0)
        return 0;
    pm_count c = count(a);
    return c.live < a->target && c.idle == 0 && c.booting == 0;
}

int pm_wait_ms(const arbiter *a, int wait_ms)
{
    if (a->s->process_manager == NW_PM_STATIC || a->state != ARBITER_RUNNING)
        return wait_ms;
    int64_t left = a->pm_second_ms + 1000 - nw_now_ms();
    if (left > 0 && left < wait_ms && a->pm_spawned >= a->pm_rate)
        wait_ms = (int)left; /* the rate's next second */
    if (count(a).booting > 0 && wait_ms > 50)
        wait_ms = 50; /* watch them come up */
    return wait_ms;
}

int pm_reload_size(const arbiter *a, const nw_settings *ns)
{
    if (ns->process_manager == NW_PM_STATIC)
        return ns->workers;
    /* as many as run now, within the new bounds: a reload under load keeps
     * the capacity; ondemand keeps one, to know the new workers boot */
    int n = count(a).live;
    int least = ns->process_manager == NW_PM_DYNAMIC ? ns->min_spare_workers : 1;
    if (n < least)
        n = least;
    return n < ns->workers ? n : ns->workers;
}
