/* status.c - the ping and status pages (status.h): which request asks for
 * one, and the page in text, JSON or OpenMetrics from a scoreboard
 * snapshot. */
#include "status.h"

#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const nw_listener *the_listeners;
static int the_nlisteners;

void status_set_listeners(const nw_listener *ls, int n)
{
    the_listeners = ls;
    the_nlisteners = n;
}

/* ---- which page ------------------------------------------------------------------ */

static int path_is(const char *want, const char *a, size_t alen, const char *b)
{
    size_t blen = b ? strlen(b) : 0;
    return want && *want && strlen(want) == alen + blen && memcmp(want, a, alen) == 0 &&
           memcmp(want + alen, b ? b : "", blen) == 0;
}

static status_page page_of(const nw_settings *s, const char *a, size_t alen, const char *b)
{
    if (path_is(s->ping_path, a, alen, b))
        return STATUS_PING;
    if (path_is(s->status_path, a, alen, b))
        return STATUS_STATUS;
    return STATUS_NONE;
}

status_page status_match(const nw_settings *s, status_param_fn param, void *ctx)
{
    if (!s->ping_path && !s->status_path)
        return STATUS_NONE;
    const char *p = param(ctx, "DOCUMENT_URI");
    if (p)
        return page_of(s, p, strlen(p), NULL);
    const char *sn = param(ctx, "SCRIPT_NAME"), *pi = param(ctx, "PATH_INFO");
    if (sn || pi)
        return page_of(s, sn ? sn : "", sn ? strlen(sn) : 0, pi);
    const char *u = param(ctx, "REQUEST_URI");
    if (u)
        return page_of(s, u, strcspn(u, "?"), NULL);
    return STATUS_NONE;
}

/* ---- the query string ------------------------------------------------------------- */

/* Whether the query has the word w, alone or as w=...: "json", "full". */
static int query_has(const char *q, const char *w)
{
    size_t wl = strlen(w);
    while (q && *q) {
        size_t n = strcspn(q, "&");
        size_t k = strcspn(q, "=&");
        if (k == wl && memcmp(q, w, wl) == 0)
            return 1;
        q += n;
        if (*q)
            q++;
    }
    return 0;
}

/* ---- the listen queue -------------------------------------------------------------- */

/* A listener's accept queue (listener_queue), as the page shows it. */
static status_queue queue_of(const nw_listener *l)
{
    status_queue q = {.addr = l->addr, .queue = -1, .backlog = -1, .max = -1};
    listener_queue(l, &q.queue, &q.backlog);
    return q;
}

/* ---- answering ------------------------------------------------------------------- */

void status_answer(status_page page, const nw_settings *s, status_param_fn param, void *ctx,
                   nw_buf *body, const char **ctype)
{
    if (page == STATUS_PING) {
        nw_buf_printf(body, "%s\n", s->ping_response ? s->ping_response : "pong");
        *ctype = "text/plain";
        return;
    }
    const char *q = param(ctx, "QUERY_STRING");
    if (!q) {
        const char *u = param(ctx, "REQUEST_URI");
        q = u && strchr(u, '?') ? strchr(u, '?') + 1 : "";
    }
    if (query_has(q, "html")) {
        status_html(body);
        *ctype = "text/html; charset=utf-8";
        return;
    }
    status_format fmt = query_has(q, "openmetrics") ? STATUS_OPENMETRICS
                        : query_has(q, "json")      ? STATUS_JSON
                                                    : STATUS_TEXT;
    *ctype = status_content_type(fmt);
    const nw_scoreboard *sb = scoreboard_shared();
    /* the queues first: what this page sees counts in the maxima it shows */
    status_queue qs[SB_MAX_LISTENERS];
    int nq = 0, now[SB_MAX_LISTENERS];
    for (int i = 0; i < the_nlisteners && nq < SB_MAX_LISTENERS; i++) {
        qs[nq] = queue_of(&the_listeners[i]);
        now[nq] = qs[nq].queue;
        nq++;
    }
    if (sb)
        scoreboard_note_queues(sb, now, nq);
    nw_scoreboard snap;
    if (!sb || scoreboard_snapshot(sb, &snap) < 0) {
        nw_buf_appends(body, "no scoreboard\n");
        *ctype = "text/plain";
        return;
    }
    for (int i = 0; i < nq; i++)
        if (qs[i].queue >= 0)
            qs[i].max = snap.totals->queue_max[i];
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    status_extra x = {.now_unix_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000,
                      .now_ms = nw_now_ms(),
                      .queues = qs,
                      .nqueues = nq};
    status_format_page(body, &snap, &x, fmt, query_has(q, "full"));
    scoreboard_snapshot_free(&snap);
}

/* ---- the numbers, once for every format ------------------------------------------------ */

typedef struct numbers {
    int64_t active, total, idle;
    int workers, idle_workers; /* processes; ready ones running nothing */
    int cgi_running, cgi_waiting; /* CGI programs running; requests waiting for a turn */
    int queue, backlog; /* summed over the listeners that tell; -1 if none does */
    uint64_t cum[SB_NBUCKETS];
} numbers;

static numbers count(const nw_scoreboard *sb, const status_extra *x)
{
    numbers n = {.queue = -1, .backlog = -1};
    for (int i = 0; i < sb->nslots; i++) {
        const nw_slot *s = &sb->slots[i];
        if (s->pid <= 0 || s->state == SLOT_FREE)
            continue;
        int active = s->active > 0 ? s->active : 0;
        n.active += active; /* a stopping worker's too: they still run */
        n.workers++;
        n.idle_workers += s->state == SLOT_READY && active == 0;
        n.cgi_running += s->cgi_running > 0 ? s->cgi_running : 0;
        n.cgi_waiting += s->cgi_waiting > 0 ? s->cgi_waiting : 0;
        /* only a ready worker takes new requests: a stopping one's running
         * requests take no idle slot from the workers that replace it */
        if (s->state == SLOT_READY) {
            n.total += s->capacity;
            n.idle += s->capacity > active ? s->capacity - active : 0;
        }
    }
    for (int i = 0; i < x->nqueues; i++) {
        if (x->queues[i].queue < 0)
            continue;
        n.queue = (n.queue < 0 ? 0 : n.queue) + x->queues[i].queue;
        n.backlog = (n.backlog < 0 ? 0 : n.backlog) + x->queues[i].backlog;
    }
    uint64_t c = 0;
    for (int b = 0; b < SB_NBUCKETS; b++)
        n.cum[b] = c += sb->totals->c.duration[b];
    return n;
}

/* The request slots a worker shows: one per thread (threads); one under
 * sync, and under async, where its requests share one slot (its capacity,
 * worker_connections, is then more than the map holds per worker). */
static int shown_tslots(const nw_scoreboard *sb, const nw_slot *s)
{
    return s->capacity > 1 && s->capacity <= sb->per_slot ? s->capacity : 1;
}

static const char *slot_state(int st)
{
    switch (st) {
    case SLOT_BOOTING:
        return "booting";
    case SLOT_READY:
        return "ready";
    case SLOT_STOPPING:
        return "stopping";
    default:
        return "free";
    }
}

static const char *const exit_names[SB_NEXIT] = {"exited", "failed", "signaled", "timeout",
                                                 "heartbeat"};
static const int64_t bounds_ms[] = SB_DURATION_BOUNDS_MS;
_Static_assert(sizeof bounds_ms / sizeof bounds_ms[0] == SB_NBUCKETS - 1,
               "one duration bucket past the bounds");

/* Runs each slot to show: worker i, request slot t. */
#define FOR_EACH_TSLOT(sb, i, t, s, ts)                                                            \
    for (int i = 0; i < (sb)->nslots; i++)                                                         \
        for (const nw_slot *s = &(sb)->slots[i]; s && s->pid > 0 && s->state != SLOT_FREE;         \
             s = NULL)                                                                             \
            for (int t = 0; t < shown_tslots(sb, s); t++)                                          \
                for (const nw_tslot *ts = scoreboard_tslot(sb, i, t); ts; ts = NULL)

static int64_t running_ms(const nw_tslot *ts, const status_extra *x)
{
    return ts->req_start_ms > 0 && x->now_ms > ts->req_start_ms ? x->now_ms - ts->req_start_ms : 0;
}

/* ---- text (php-fpm's layout) ----------------------------------------------------------- */

/* "name:" padded to a column, as php-fpm aligns its values. */
static void text_name(nw_buf *o, const char *name)
{
    int pad = 21 - (int)strlen(name);
    nw_buf_printf(o, "%s:%*s", name, pad > 1 ? pad : 1, "");
}

static void format_text(nw_buf *o, const nw_scoreboard *sb, const status_extra *x, int full)
{
    const nw_sb_totals *t = sb->totals;
    numbers n = count(sb, x);
    char when[64];
    time_t st = (time_t)(t->start_unix_ms / 1000);
    struct tm tm;
    gmtime_r(&st, &tm);
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
#define LINE(name, fmt, ...) (text_name(o, name), nw_buf_printf(o, fmt "\n", __VA_ARGS__))
    LINE("start time", "%s", when);
    LINE("start since", "%lld", (long long)((x->now_ms - t->start_ms) / 1000));
    LINE("generation", "%llu", (unsigned long long)t->generation);
    LINE("accepted conn", "%llu", (unsigned long long)t->c.accepted);
    LINE("requests", "%llu", (unsigned long long)t->c.requests);
    for (int c = 1; c <= 5; c++) {
        char name[16];
        snprintf(name, sizeof name, "requests %dxx", c);
        LINE(name, "%llu", (unsigned long long)t->c.status[c]);
    }
    LINE("requests timed out", "%llu", (unsigned long long)t->c.timeouts);
    for (int b = 0; b < SB_NBUCKETS; b++) {
        char name[40];
        if (b < SB_NBUCKETS - 1)
            snprintf(name, sizeof name, "duration <= %lldms", (long long)bounds_ms[b]);
        else
            snprintf(name, sizeof name, "duration > %lldms", (long long)bounds_ms[b - 1]);
        LINE(name, "%llu", (unsigned long long)t->c.duration[b]);
    }
    LINE("duration total ms", "%llu", (unsigned long long)(t->c.duration_us / 1000));
    if (n.queue >= 0) {
        LINE("listen queue", "%d", n.queue);
        LINE("max listen queue", "%lld", (long long)t->listen_queue_max);
        LINE("listen queue len", "%d", n.backlog);
    } else {
        LINE("listen queue", "%s", "-");
        LINE("max listen queue", "%s", "-");
        LINE("listen queue len", "%s", "-");
    }
    LINE("idle slots", "%lld", (long long)n.idle);
    LINE("active slots", "%lld", (long long)n.active);
    LINE("total slots", "%lld", (long long)n.total);
    LINE("max active slots", "%lld", (long long)t->max_active);
    LINE("max children reached", "%llu", (unsigned long long)t->full);
    LINE("cgi programs running", "%d", n.cgi_running);
    LINE("cgi requests waiting", "%d", n.cgi_waiting);
    LINE("process manager", "%s", settings_process_manager_name((nw_process_manager)t->process_manager));
    LINE("workers", "%d", n.workers);
    LINE("idle workers", "%d", n.idle_workers);
    LINE("max workers", "%d", t->workers_max);
    LINE("max workers reached", "%llu", (unsigned long long)t->max_workers_reached);
    LINE("workers retired idle", "%llu", (unsigned long long)t->idle_retired);
    LINE("workers over memory", "%llu", (unsigned long long)t->memory_replaced);
    for (int c = 0; c < SB_NEXIT; c++) {
        char name[40];
        snprintf(name, sizeof name, "workers %s", exit_names[c]);
        LINE(name, "%llu", (unsigned long long)t->exits[c]);
    }
    if (!full)
        return;
    FOR_EACH_TSLOT(sb, i, k, s, ts)
    {
        nw_buf_appends(o, "\n************************\n");
        LINE("pid", "%d", (int)s->pid);
        LINE("slot", "%d", k);
        LINE("worker state", "%s", slot_state(s->state));
        LINE("worker since", "%lld",
             (long long)(s->started_ms ? (x->now_ms - s->started_ms) / 1000 : 0));
        LINE("worker requests", "%llu", (unsigned long long)s->c.requests);
        LINE("state", "%s", ts->req_start_ms > 0 ? "Running" : "Idle");
        LINE("requests", "%llu", (unsigned long long)ts->requests);
        /* what a peer sent: no control byte may start a line of its own */
        nw_buf flat = NW_BUF_INIT;
        if (ts->req_start_ms > 0) {
            log_append_flat(&flat, ts->method, strlen(ts->method));
            nw_buf_appendc(&flat, 0);
            log_append_flat(&flat, ts->uri, strlen(ts->uri));
        } else {
            nw_buf_appends(&flat, "-");
            nw_buf_appendc(&flat, 0);
            nw_buf_appends(&flat, "-");
        }
        nw_buf_appendc(&flat, 0);
        const char *method = (const char *)nw_buf_head(&flat);
        LINE("request method", "%s", method);
        LINE("request URI", "%s", method + strlen(method) + 1);
        nw_buf_free(&flat);
        LINE("request duration", "%lld", (long long)running_ms(ts, x) * 1000);
    }
#undef LINE
}

/* ---- JSON --------------------------------------------------------------------------- */

static void json_str(nw_buf *o, const char *s)
{
    nw_buf_appendc(o, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            nw_buf_printf(o, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            nw_buf_printf(o, "\\u%04x", *p); /* bytes, not UTF-8: each one stays visible */
        else
            nw_buf_appendc(o, (char)*p);
    }
    nw_buf_appendc(o, '"');
}

static void format_json(nw_buf *o, const nw_scoreboard *sb, const status_extra *x, int full)
{
    const nw_sb_totals *t = sb->totals;
    numbers n = count(sb, x);
    nw_buf_printf(o,
                  "{\"start_time\":%lld,\"start_since\":%lld,\"generation\":%llu,"
                  "\"accepted_conn\":%llu,\"requests\":%llu,\"requests_by_status\":{",
                  (long long)(t->start_unix_ms / 1000),
                  (long long)((x->now_ms - t->start_ms) / 1000), (unsigned long long)t->generation,
                  (unsigned long long)t->c.accepted, (unsigned long long)t->c.requests);
    for (int c = 1; c <= 5; c++)
        nw_buf_printf(o, "%s\"%dxx\":%llu", c > 1 ? "," : "", c,
                      (unsigned long long)t->c.status[c]);
    nw_buf_printf(o, "},\"requests_timed_out\":%llu,\"duration_buckets\":[",
                  (unsigned long long)t->c.timeouts);
    for (int b = 0; b < SB_NBUCKETS; b++) {
        if (b < SB_NBUCKETS - 1)
            nw_buf_printf(o, "%s{\"le_ms\":%lld,", b ? "," : "", (long long)bounds_ms[b]);
        else
            nw_buf_appends(o, ",{\"le_ms\":null,");
        nw_buf_printf(o, "\"count\":%llu}", (unsigned long long)n.cum[b]);
    }
    nw_buf_printf(o, "],\"duration_total_us\":%llu,", (unsigned long long)t->c.duration_us);
    if (n.queue >= 0)
        nw_buf_printf(o, "\"listen_queue\":%d,\"max_listen_queue\":%lld,\"listen_queue_len\":%d,",
                      n.queue, (long long)t->listen_queue_max, n.backlog);
    else
        nw_buf_appends(
            o, "\"listen_queue\":null,\"max_listen_queue\":null,\"listen_queue_len\":null,");
    nw_buf_appends(o, "\"listeners\":[");
    for (int i = 0; i < x->nqueues; i++) {
        nw_buf_appends(o, i ? ",{\"address\":" : "{\"address\":");
        json_str(o, x->queues[i].addr ? x->queues[i].addr : "");
        if (x->queues[i].queue >= 0)
            nw_buf_printf(o, ",\"queue\":%d,\"max_queue\":%d,\"backlog\":%d}", x->queues[i].queue,
                          x->queues[i].max, x->queues[i].backlog);
        else
            nw_buf_appends(o, ",\"queue\":null,\"max_queue\":null,\"backlog\":null}");
    }
    nw_buf_printf(o,
                  "],\"idle_slots\":%lld,\"active_slots\":%lld,\"total_slots\":%lld,"
                  "\"max_active_slots\":%lld,\"max_children_reached\":%llu,"
                  "\"cgi_running\":%d,\"cgi_waiting\":%d,"
                  "\"process_manager\":\"%s\",\"workers\":%d,\"idle_workers\":%d,"
                  "\"max_workers\":%d,\"max_workers_reached\":%llu,\"workers_retired_idle\":%llu,"
                  "\"workers_over_memory\":%llu,\"worker_exits\":{",
                  (long long)n.idle, (long long)n.active, (long long)n.total,
                  (long long)t->max_active, (unsigned long long)t->full, n.cgi_running,
                  n.cgi_waiting, settings_process_manager_name((nw_process_manager)t->process_manager), n.workers, n.idle_workers, t->workers_max,
                  (unsigned long long)t->max_workers_reached, (unsigned long long)t->idle_retired,
                  (unsigned long long)t->memory_replaced);
    for (int c = 0; c < SB_NEXIT; c++)
        nw_buf_printf(o, "%s\"%s\":%llu", c ? "," : "", exit_names[c],
                      (unsigned long long)t->exits[c]);
    nw_buf_appendc(o, '}');
    if (full) {
        nw_buf_appends(o, ",\"slots\":[");
        int first = 1;
        FOR_EACH_TSLOT(sb, i, k, s, ts)
        {
            int busy = ts->req_start_ms > 0;
            nw_buf_printf(
                o,
                "%s{\"pid\":%d,\"slot\":%d,\"worker_state\":\"%s\",\"worker_requests\":%llu,"
                "\"state\":\"%s\",\"requests\":%llu,\"request_method\":",
                first ? "" : ",", (int)s->pid, k, slot_state(s->state),
                (unsigned long long)s->c.requests, busy ? "Running" : "Idle",
                (unsigned long long)ts->requests);
            json_str(o, busy ? ts->method : "");
            nw_buf_appends(o, ",\"request_uri\":");
            json_str(o, busy ? ts->uri : "");
            nw_buf_printf(o, ",\"request_duration_us\":%lld}", (long long)running_ms(ts, x) * 1000);
            first = 0;
        }
        nw_buf_appendc(o, ']');
    }
    nw_buf_appends(o, "}\n");
}

/* ---- OpenMetrics 1.0 ------------------------------------------------------------------ */

/* A label value: backslash, double quote and newline escaped. */
static void om_label(nw_buf *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            nw_buf_printf(o, "\\%c", *v);
        else if (*v == '\n')
            nw_buf_appends(o, "\\n");
        else
            nw_buf_appendc(o, *v);
    }
}

/* # TYPE (and # UNIT, # HELP) of one family. */
static void om_family(nw_buf *o, const char *name, const char *type, const char *unit,
                      const char *help)
{
    nw_buf_printf(o, "# TYPE %s %s\n", name, type);
    if (unit)
        nw_buf_printf(o, "# UNIT %s %s\n", name, unit);
    nw_buf_printf(o, "# HELP %s %s\n", name, help);
}

/* A gauge family with a sample per listener whose queue the kernel tells:
 * the int at offset `field` of its status_queue. */
static void om_listeners(nw_buf *o, const status_extra *x, const char *name, const char *help,
                         size_t field)
{
    om_family(o, name, "gauge", NULL, help);
    for (int i = 0; i < x->nqueues; i++) {
        const status_queue *q = &x->queues[i];
        if (q->queue < 0)
            continue;
        nw_buf_printf(o, "%s{listener=\"", name);
        om_label(o, q->addr ? q->addr : "");
        nw_buf_printf(o, "\"} %d\n", *(const int *)((const char *)q + field));
    }
}

static void format_openmetrics(nw_buf *o, const nw_scoreboard *sb, const status_extra *x, int full)
{
    const nw_sb_totals *t = sb->totals;
    numbers n = count(sb, x);
    om_family(o, "narwhal_start_time_seconds", "gauge", "seconds",
              "When the master started (unix time).");
    nw_buf_printf(o, "narwhal_start_time_seconds %lld.%03lld\n",
                  (long long)(t->start_unix_ms / 1000), (long long)(t->start_unix_ms % 1000));
    om_family(o, "narwhal_uptime_seconds", "gauge", "seconds", "Seconds since the master started.");
    nw_buf_printf(o, "narwhal_uptime_seconds %.3f\n", (double)(x->now_ms - t->start_ms) / 1000.);
    om_family(o, "narwhal_reloads", "counter", NULL, "Reloads (HUP) survived: the generation.");
    nw_buf_printf(o, "narwhal_reloads_total %llu\n", (unsigned long long)t->generation);
    om_family(o, "narwhal_accepted_connections", "counter", NULL, "Connections accepted.");
    nw_buf_printf(o, "narwhal_accepted_connections_total %llu\n",
                  (unsigned long long)t->c.accepted);
    om_family(o, "narwhal_requests", "counter", NULL, "Requests finished, by status class.");
    for (int c = 1; c <= 5; c++)
        nw_buf_printf(o, "narwhal_requests_total{status=\"%dxx\"} %llu\n", c,
                      (unsigned long long)t->c.status[c]);
    om_family(o, "narwhal_requests_timed_out", "counter", NULL,
              "Requests answered 504 for passing timeout.");
    nw_buf_printf(o, "narwhal_requests_timed_out_total %llu\n", (unsigned long long)t->c.timeouts);
    om_family(o, "narwhal_request_duration_seconds", "histogram", "seconds",
              "Time from a request's start to its end.");
    for (int b = 0; b < SB_NBUCKETS - 1; b++)
        nw_buf_printf(o, "narwhal_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      (double)bounds_ms[b] / 1000., (unsigned long long)n.cum[b]);
    nw_buf_printf(o, "narwhal_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                  (unsigned long long)n.cum[SB_NBUCKETS - 1]);
    nw_buf_printf(o, "narwhal_request_duration_seconds_count %llu\n",
                  (unsigned long long)n.cum[SB_NBUCKETS - 1]);
    nw_buf_printf(o, "narwhal_request_duration_seconds_sum %.6f\n", (double)t->c.duration_us / 1e6);
    om_family(o, "narwhal_slots", "gauge", NULL,
              "Request slots of the ready workers, by state (busy counts every worker).");
    nw_buf_printf(o, "narwhal_slots{state=\"idle\"} %lld\nnarwhal_slots{state=\"busy\"} %lld\n",
                  (long long)n.idle, (long long)n.active);
    om_family(o, "narwhal_slots_capacity", "gauge", NULL, "Request slots of the ready workers.");
    nw_buf_printf(o, "narwhal_slots_capacity %lld\n", (long long)n.total);
    om_family(o, "narwhal_slots_max_busy", "gauge", NULL, "Most requests running at once.");
    nw_buf_printf(o, "narwhal_slots_max_busy %lld\n", (long long)t->max_active);
    om_family(o, "narwhal_max_children_reached", "counter", NULL,
              "Requests that took the last idle request slot or found none.");
    nw_buf_printf(o, "narwhal_max_children_reached_total %llu\n", (unsigned long long)t->full);
    om_family(o, "narwhal_cgi_programs", "gauge", NULL,
              "CGI programs: running, and requests waiting for a cgi_max_running turn.");
    nw_buf_printf(o,
                  "narwhal_cgi_programs{state=\"running\"} %d\n"
                  "narwhal_cgi_programs{state=\"waiting\"} %d\n",
                  n.cgi_running, n.cgi_waiting);
    om_family(o, "narwhal_workers", "gauge", NULL, "Worker processes, by state (idle: ready, running nothing).");
    nw_buf_printf(o, "narwhal_workers{state=\"idle\"} %d\nnarwhal_workers{state=\"busy\"} %d\n",
                  n.idle_workers, n.workers - n.idle_workers);
    om_family(o, "narwhal_workers_max", "gauge", NULL,
              "workers: the most the process manager runs (static: always).");
    nw_buf_printf(o, "narwhal_workers_max %d\n", t->workers_max);
    om_family(o, "narwhal_max_workers_reached", "counter", NULL,
              "Times the process manager found every worker busy at workers.");
    nw_buf_printf(o, "narwhal_max_workers_reached_total %llu\n",
                  (unsigned long long)t->max_workers_reached);
    om_family(o, "narwhal_workers_retired_idle", "counter", NULL,
              "Workers the process manager retired for being idle.");
    nw_buf_printf(o, "narwhal_workers_retired_idle_total %llu\n", (unsigned long long)t->idle_retired);
    om_family(o, "narwhal_workers_over_memory", "counter", NULL,
              "Workers replaced for passing max_worker_memory.");
    nw_buf_printf(o, "narwhal_workers_over_memory_total %llu\n",
                  (unsigned long long)t->memory_replaced);
    om_family(o, "narwhal_worker_exits", "counter", NULL, "Workers gone, by cause.");
    for (int c = 0; c < SB_NEXIT; c++)
        nw_buf_printf(o, "narwhal_worker_exits_total{cause=\"%s\"} %llu\n", exit_names[c],
                      (unsigned long long)t->exits[c]);
    int told = 0;
    for (int i = 0; i < x->nqueues; i++)
        told |= x->queues[i].queue >= 0;
    if (told) {
        om_listeners(o, x, "narwhal_listen_queue", "Connections waiting to be accepted.",
                     offsetof(status_queue, queue));
        om_listeners(o, x, "narwhal_listen_queue_max",
                     "The most connections seen waiting to be accepted (sampled once a second).",
                     offsetof(status_queue, max));
        om_listeners(o, x, "narwhal_listen_queue_backlog", "The most connections that can wait.",
                     offsetof(status_queue, backlog));
    }
    if (full) {
        /* One family at a time: OpenMetrics wants a family's samples together. */
        om_family(o, "narwhal_slot_requests", "counter", NULL, "Requests begun on a request slot.");
        FOR_EACH_TSLOT(sb, i, k, s, ts)
        {
            nw_buf_printf(o, "narwhal_slot_requests_total{pid=\"%d\",slot=\"%d\"} %llu\n",
                          (int)s->pid, k, (unsigned long long)ts->requests);
        }
        om_family(o, "narwhal_slot_busy", "gauge", NULL, "1 while a request runs on the slot.");
        FOR_EACH_TSLOT(sb, i, k, s, ts)
        {
            nw_buf_printf(o, "narwhal_slot_busy{pid=\"%d\",slot=\"%d\"} %d\n", (int)s->pid, k,
                          ts->req_start_ms > 0);
        }
        om_family(o, "narwhal_slot_request_duration_seconds", "gauge", "seconds",
                  "How long the slot's current request has run.");
        FOR_EACH_TSLOT(sb, i, k, s, ts)
        {
            nw_buf_printf(o, "narwhal_slot_request_duration_seconds{pid=\"%d\",slot=\"%d\"} %.3f\n",
                          (int)s->pid, k, (double)running_ms(ts, x) / 1000.);
        }
    }
    nw_buf_appends(o, "# EOF\n");
}

const char *status_content_type(status_format fmt)
{
    switch (fmt) {
    case STATUS_JSON:
        return "application/json";
    case STATUS_OPENMETRICS:
        return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    default:
        return "text/plain";
    }
}

void status_format_page(nw_buf *out, const nw_scoreboard *snap, const status_extra *x,
                        status_format fmt, int full)
{
    switch (fmt) {
    case STATUS_JSON:
        format_json(out, snap, x, full);
        break;
    case STATUS_OPENMETRICS:
        format_openmetrics(out, snap, x, full);
        break;
    default:
        format_text(out, snap, x, full);
        break;
    }
}
