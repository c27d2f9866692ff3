#include "scoreboard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "util.h"

/* The map this process opened last, inherited by the workers it forks. */
static nw_scoreboard shared;

#define ADD(p, n) __atomic_add_fetch((p), (n), __ATOMIC_RELAXED)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

int scoreboard_open(nw_scoreboard *sb, int nslots, int per_slot)
{
    size_t head = (sizeof(nw_sb_totals) + 63) & ~(size_t)63;
    size_t sz =
        head + sizeof(nw_slot) * (size_t)nslots + sizeof(nw_tslot) * (size_t)nslots * per_slot;
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("cannot map the scoreboard: %s", strerror(errno));
        return -1;
    }
    sb->totals = p;
    sb->slots = (nw_slot *)((char *)p + head);
    sb->tslots = (nw_tslot *)((char *)sb->slots + sizeof(nw_slot) * (size_t)nslots);
    sb->nslots = nslots;
    sb->per_slot = per_slot;
    sb->map_len = sz;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    sb->totals->start_unix_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
    sb->totals->start_ms = nw_now_ms();
    shared = *sb;
    return 0;
}

void scoreboard_close(nw_scoreboard *sb)
{
    if (sb->totals) {
        if (shared.totals == sb->totals)
            memset(&shared, 0, sizeof shared);
        munmap(sb->totals, sb->map_len);
    }
    memset(sb, 0, sizeof *sb);
}

const nw_scoreboard *scoreboard_shared(void)
{
    return shared.totals ? &shared : NULL;
}

int scoreboard_claim(nw_scoreboard *sb, pid_t pid)
{
    for (int i = 0; i < sb->nslots; i++) {
        nw_slot *s = &sb->slots[i];
        if (s->state == SLOT_FREE && s->pid == 0) {
            memset(s, 0, sizeof *s);
            memset(scoreboard_tslot(sb, i, 0), 0, sizeof(nw_tslot) * (size_t)sb->per_slot);
            s->pid = pid;
            s->heartbeat_ms = nw_now_ms();
            __atomic_store_n(&s->state, SLOT_BOOTING, __ATOMIC_RELEASE);
            return i;
        }
    }
    return -1;
}

/* to += from, field by field (every field is a uint64_t). */
static void counts_add(nw_sb_counts *to, const nw_sb_counts *from)
{
    _Static_assert(sizeof(nw_sb_counts) % sizeof(uint64_t) == 0, "counts are uint64_t");
    uint64_t *t = (uint64_t *)to;
    const uint64_t *f = (const uint64_t *)from;
    for (size_t k = 0; k < sizeof *to / sizeof *t; k++)
        t[k] += LOAD(&f[k]);
}

void scoreboard_release(nw_scoreboard *sb, int i)
{
    /* The worker is gone: what it served joins the totals; what it ran and
     * could run no longer counts. A worker killed between its two updates
     * of an enter or leave leaves `active` off by one request until the
     * master restarts; the page shows busy slots from the slots themselves,
     * so only max_active could see it. */
    nw_slot *s = &sb->slots[i];
    counts_add(&sb->totals->c, &s->c);
    ADD(&sb->totals->active, -(int64_t)LOAD(&s->active));
    ADD(&sb->totals->capacity, -(int64_t)LOAD(&s->capacity));
    memset(&sb->slots[i], 0, sizeof sb->slots[i]);
    memset(scoreboard_tslot(sb, i, 0), 0, sizeof(nw_tslot) * (size_t)sb->per_slot);
}

int scoreboard_find(const nw_scoreboard *sb, pid_t pid)
{
    for (int i = 0; i < sb->nslots; i++)
        if (sb->slots[i].pid == pid)
            return i;
    return -1;
}

void scoreboard_beat(nw_slot *s)
{
    __atomic_store_n(&s->heartbeat_ms, nw_now_ms(), __ATOMIC_RELAXED);
}

/* A copy that stops at the field's end, always terminated (no snprintf:
 * this runs for every request). */
static void copy_field(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 1;
    memcpy(dst, src ? src : "-", n);
    dst[n] = 0;
}

void scoreboard_request_begin(nw_tslot *t, const char *method, const char *uri, int64_t start_ms)
{
    copy_field(t->method, sizeof t->method, method);
    copy_field(t->uri, sizeof t->uri, uri);
    __atomic_store_n(&t->slowlogged, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&t->req_start_ms, start_ms, __ATOMIC_RELEASE);
}

void scoreboard_request_resume(nw_tslot *t, int64_t start_ms)
{
    __atomic_store_n(&t->req_start_ms, start_ms, __ATOMIC_RELEASE);
}

void scoreboard_request_end(nw_tslot *t)
{
    __atomic_store_n(&t->req_start_ms, 0, __ATOMIC_RELEASE);
}

void scoreboard_ready(nw_slot *s, int capacity)
{
    s->started_ms = nw_now_ms();
    /* The slot's own count first: scoreboard_release takes back what it says. */
    __atomic_store_n(&s->capacity, capacity, __ATOMIC_RELAXED);
    if (shared.totals)
        ADD(&shared.totals->capacity, capacity);
    __atomic_store_n(&s->state, SLOT_READY, __ATOMIC_RELEASE);
}

void scoreboard_stopping(nw_slot *s)
{
    int capacity = __atomic_exchange_n(&s->capacity, 0, __ATOMIC_RELAXED);
    if (shared.totals)
        ADD(&shared.totals->capacity, -(int64_t)capacity);
    __atomic_store_n(&s->state, SLOT_STOPPING, __ATOMIC_RELEASE);
}

void scoreboard_count_reload(nw_scoreboard *sb)
{
    ADD(&sb->totals->generation, 1);
}

/* *p = max(*p, v), atomically. */
#define RAISE(p, v)                                                                                \
    do {                                                                                           \
        __typeof__(*(p)) cur_ = LOAD(p);                                                           \
        while ((v) > cur_ && !__atomic_compare_exchange_n((p), &cur_, (v), 1, __ATOMIC_RELAXED,    \
                                                          __ATOMIC_RELAXED))                       \
            ;                                                                                      \
    } while (0)

void scoreboard_note_queues(const nw_scoreboard *sb, const int *queues, int n)
{
    int64_t sum = 0;
    int told = 0;
    for (int k = 0; k < n; k++) {
        if (queues[k] < 0)
            continue;
        told = 1;
        sum += queues[k];
        if (k < SB_MAX_LISTENERS) {
            int32_t q = queues[k];
            RAISE(&sb->totals->queue_max[k], q);
        }
    }
    if (told)
        RAISE(&sb->totals->listen_queue_max, sum);
}

void scoreboard_count_exit(nw_scoreboard *sb, int cause)
{
    if (cause >= 0 && cause < SB_NEXIT)
        ADD(&sb->totals->exits[cause], 1);
}

void scoreboard_set_pm(nw_scoreboard *sb, int process_manager, int workers_max)
{
    __atomic_store_n(&sb->totals->process_manager, process_manager, __ATOMIC_RELAXED);
    __atomic_store_n(&sb->totals->workers_max, workers_max, __ATOMIC_RELAXED);
}

void scoreboard_count_max_reached(nw_scoreboard *sb)
{
    ADD(&sb->totals->max_workers_reached, 1);
}

void scoreboard_count_idle_retired(nw_scoreboard *sb)
{
    ADD(&sb->totals->idle_retired, 1);
}

void scoreboard_count_memory_replaced(void)
{
    if (shared.totals)
        ADD(&shared.totals->memory_replaced, 1);
}

void scoreboard_count_accept(nw_slot *s)
{
    ADD(&s->c.accepted, 1);
}

/* The worker slot a request slot belongs to, in the shared map. */
static nw_slot *slot_of(const nw_tslot *ts)
{
    if (!shared.totals || !ts || ts < shared.tslots ||
        ts >= shared.tslots + (size_t)shared.nslots * (size_t)shared.per_slot)
        return NULL;
    return &shared.slots[(ts - shared.tslots) / shared.per_slot];
}

void scoreboard_count_enter(nw_tslot *ts)
{
    nw_sb_totals *t = shared.totals;
    nw_slot *s = slot_of(ts);
    if (!s)
        return;
    ADD(&ts->requests, 1);
    ADD(&s->active, 1);
    int64_t now = ADD(&t->active, 1);
    int64_t max = LOAD(&t->max_active);
    while (now > max && !__atomic_compare_exchange_n(&t->max_active, &max, now, 1, __ATOMIC_RELAXED,
                                                     __ATOMIC_RELAXED))
        ;
    /* Every slot busy, php-fpm's "max children reached": counted per
     * request that found it so, not per second. */
    if (now >= LOAD(&t->capacity))
        ADD(&t->full, 1);
}

void scoreboard_count_leave(nw_tslot *ts, int status, uint64_t duration_us, int timed_out)
{
    static const int64_t bounds[] = SB_DURATION_BOUNDS_MS;
    nw_slot *s = slot_of(ts);
    if (!s)
        return;
    ADD(&s->active, -1);
    ADD(&shared.totals->active, -1);
    /* The worker's own counts: only its own threads ever race here. */
    nw_sb_counts *c = &s->c;
    ADD(&c->requests, 1);
    ADD(&c->status[status >= 100 && status < 600 ? status / 100 : 0], 1);
    if (timed_out)
        ADD(&c->timeouts, 1);
    size_t b = 0;
    while (b < sizeof bounds / sizeof bounds[0] && duration_us > (uint64_t)bounds[b] * 1000)
        b++;
    ADD(&c->duration[b], 1);
    ADD(&c->duration_us, duration_us);
}

int scoreboard_snapshot(const nw_scoreboard *sb, nw_scoreboard *out)
{
    size_t nt = (size_t)sb->nslots * (size_t)sb->per_slot;
    *out = *sb;
    out->totals = malloc(sizeof *out->totals);
    out->slots = malloc(sizeof(nw_slot) * (size_t)sb->nslots);
    out->tslots = calloc(nt, sizeof(nw_tslot)); /* fresh zero pages: only live ones are touched */
    out->map_len = 0;
    if (!out->totals || !out->slots || !out->tslots) {
        scoreboard_snapshot_free(out);
        return -1;
    }
    /* memcpy of memory others write is a data race in C's model; the
     * fields are aligned words and the copy's strings are terminated
     * below, which is all a reader relies on (scoreboard.h). */
    memcpy(out->totals, sb->totals, sizeof *out->totals);
    memcpy(out->slots, sb->slots, sizeof(nw_slot) * (size_t)sb->nslots);
    /* The live workers' counts, and only their request slots: the map
     * holds room for hundreds of workers with 16 or more slots each, a
     * megabyte. */
    for (int i = 0; i < sb->nslots; i++) {
        if (out->slots[i].pid <= 0)
            continue;
        counts_add(&out->totals->c, &out->slots[i].c);
        nw_tslot *dst = scoreboard_tslot(out, i, 0);
        memcpy(dst, scoreboard_tslot(sb, i, 0), sizeof(nw_tslot) * (size_t)sb->per_slot);
        for (int t = 0; t < sb->per_slot; t++) {
            dst[t].method[sizeof dst[t].method - 1] = 0;
            dst[t].uri[sizeof dst[t].uri - 1] = 0;
        }
    }
    return 0;
}

void scoreboard_snapshot_free(nw_scoreboard *snap)
{
    free(snap->totals);
    free(snap->slots);
    free(snap->tslots);
    memset(snap, 0, sizeof *snap);
}
