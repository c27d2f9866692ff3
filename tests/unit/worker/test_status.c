/* Unit tests for src/worker/status.c: which requests the ping and status
 * pages answer, and the page in its three formats from a scoreboard whose
 * counters the scoreboard's own functions moved. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "scoreboard.h"
#include "settings.h"
#include "status.h"

static nw_scoreboard sb;
static nw_settings s;
static nw_buf out;

/* Two workers: a threads worker with 2 slots (one busy), a sync worker. */
static void setup(void)
{
    memset(&s, 0, sizeof s);
    cr_assert_eq(scoreboard_open(&sb, 4, 2), 0);
    int a = scoreboard_claim(&sb, 101), b = scoreboard_claim(&sb, 102);
    scoreboard_ready(&sb.slots[a], 2);
    scoreboard_ready(&sb.slots[b], 1);
    for (int i = 0; i < 3; i++) {
        scoreboard_count_accept(&sb.slots[b]);
        scoreboard_count_enter(scoreboard_tslot(&sb, b, 0));
        scoreboard_count_leave(scoreboard_tslot(&sb, b, 0), 200, 1000, 0); /* 1 ms */
    }
    scoreboard_count_enter(scoreboard_tslot(&sb, a, 1));
    scoreboard_count_leave(scoreboard_tslot(&sb, a, 1), 404, 30000, 0); /* 30 ms */
    scoreboard_count_enter(scoreboard_tslot(&sb, a, 1));
    scoreboard_count_leave(scoreboard_tslot(&sb, a, 1), 504, 20000000, 1); /* 20 s */
    /* one running now, with a URI that needs escaping */
    nw_tslot *ts = scoreboard_tslot(&sb, a, 0);
    scoreboard_count_enter(ts);
    scoreboard_request_begin(ts, "GET", "/x?a=\"b\"\\c", 1);
    scoreboard_count_reload(&sb);
    scoreboard_count_exit(&sb, SB_EXIT_SIGNAL);
    sb.totals->start_ms = 1; /* the page's clock below: 5 s later */
    sb.slots[a].started_ms = sb.slots[b].started_ms = 1001;
    out = (nw_buf)NW_BUF_INIT;
}

static void teardown(void)
{
    scoreboard_close(&sb);
    nw_buf_free(&out);
}

TestSuite(status, .init = setup, .fini = teardown);

static const char *format(status_format fmt, int full)
{
    nw_scoreboard snap;
    cr_assert_eq(scoreboard_snapshot(&sb, &snap), 0);
    status_queue q[2] = {{.addr = "127.0.0.1:5000", .queue = 3, .backlog = 128},
                         {.addr = "unix:/tmp/x.sock", .queue = -1, .backlog = -1}};
    status_extra x = {.now_unix_ms = 1700000000000, .now_ms = 5001, .queues = q, .nqueues = 2};
    nw_buf_reset(&out);
    status_format_page(&out, &snap, &x, fmt, full);
    scoreboard_snapshot_free(&snap);
    nw_buf_appendc(&out, 0);
    return (const char *)nw_buf_head(&out);
}

/* ---- which page ---------------------------------------------------------------- */

struct params {
    const char *kv[8];
};

static const char *get(void *ctx, const char *name)
{
    struct params *p = ctx;
    for (int i = 0; p->kv[i]; i += 2)
        if (strcmp(p->kv[i], name) == 0)
            return p->kv[i + 1];
    return NULL;
}

Test(status, match_off_by_default)
{
    struct params p = {{"DOCUMENT_URI", "/status", NULL}};
    cr_assert_eq(status_match(&s, get, &p), STATUS_NONE);
}

Test(status, match_paths)
{
    s.status_path = "/status";
    s.ping_path = "/ping";
    struct params doc = {{"DOCUMENT_URI", "/ping", "REQUEST_URI", "/other", NULL}};
    cr_assert_eq(status_match(&s, get, &doc), STATUS_PING);
    struct params split = {{"SCRIPT_NAME", "/sta", "PATH_INFO", "tus", NULL}};
    cr_assert_eq(status_match(&s, get, &split), STATUS_STATUS);
    struct params uri = {{"REQUEST_URI", "/status?json&full", NULL}};
    cr_assert_eq(status_match(&s, get, &uri), STATUS_STATUS);
    struct params prefix = {{"DOCUMENT_URI", "/status/x", NULL}};
    cr_assert_eq(status_match(&s, get, &prefix), STATUS_NONE);
    struct params shorter = {{"DOCUMENT_URI", "/stat", NULL}};
    cr_assert_eq(status_match(&s, get, &shorter), STATUS_NONE);
}

Test(status, ping_answers_its_response)
{
    s.ping_path = "/ping";
    s.ping_response = "pong";
    const char *ctype = NULL;
    struct params p = {{NULL}};
    status_answer(STATUS_PING, &s, get, &p, &out, &ctype);
    cr_assert_eq(out.len, 5);
    cr_assert_eq(memcmp(nw_buf_head(&out), "pong\n", 5), 0);
    cr_assert_str_eq(ctype, "text/plain");
}

Test(status, query_chooses_the_format)
{
    s.status_path = "/status";
    const char *ctype = NULL;
    struct params om = {{"QUERY_STRING", "full&openmetrics", NULL}};
    status_answer(STATUS_STATUS, &s, get, &om, &out, &ctype);
    cr_assert_str_eq(ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    struct params js = {{"REQUEST_URI", "/status?json", NULL}};
    status_answer(STATUS_STATUS, &s, get, &js, &out, &ctype);
    cr_assert_str_eq(ctype, "application/json");
    struct params not_json = {{"QUERY_STRING", "jsonx", NULL}};
    status_answer(STATUS_STATUS, &s, get, &not_json, &out, &ctype);
    cr_assert_str_eq(ctype, "text/plain");
}

/* ---- the numbers -------------------------------------------------------------- */

/* A text line: "name:" then the value at column 22, as php-fpm aligns it. */
static int has_line(const char *t, const char *name, const char *value)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s:%*s%s\n", name, 21 - (int)strlen(name), "", value);
    return strstr(t, want) != NULL || (strncmp(t, want + 1, strlen(want + 1)) == 0);
}

Test(status, text_shows_the_counters)
{
    const char *t = format(STATUS_TEXT, 0);
    cr_assert(has_line(t, "start since", "5"), "%s", t);
    cr_assert(has_line(t, "generation", "1"), "%s", t);
    cr_assert(has_line(t, "accepted conn", "3"), "%s", t);
    cr_assert(has_line(t, "requests", "5"), "%s", t);
    cr_assert(has_line(t, "requests 2xx", "3"), "%s", t);
    cr_assert(has_line(t, "requests 4xx", "1"), "%s", t);
    cr_assert(has_line(t, "requests 5xx", "1"), "%s", t);
    cr_assert(has_line(t, "requests timed out", "1"), "%s", t);
    cr_assert(has_line(t, "duration <= 5ms", "3"), "%s", t);
    cr_assert(has_line(t, "duration <= 100ms", "1"), "%s", t);
    cr_assert(has_line(t, "duration > 10000ms", "1"), "%s", t);
    cr_assert(has_line(t, "listen queue", "3"), "%s", t);
    cr_assert(has_line(t, "listen queue len", "128"), "%s", t);
    cr_assert(has_line(t, "idle slots", "2"), "%s", t);
    cr_assert(has_line(t, "active slots", "1"), "%s", t);
    cr_assert(has_line(t, "total slots", "3"), "%s", t);
    cr_assert(has_line(t, "max active slots", "1"), "%s", t);
    cr_assert(has_line(t, "workers signaled", "1"), "%s", t);
    cr_assert_null(strstr(t, "pid:"));
}

Test(status, text_cannot_be_forged_by_a_uri)
{
    /* a peer's REQUEST_URI with a line of its own in it */
    scoreboard_request_begin(scoreboard_tslot(&sb, 0, 0), "GET", "/a\nactive slots:         999",
                             1);
    const char *t = format(STATUS_TEXT, 1);
    cr_assert_null(strstr(t, "\nactive slots:         999"), "a forged line:\n%s", t);
    cr_assert(has_line(t, "request URI", "/a\\x0aactive slots:         999"), "%s", t);
}

Test(status, text_full_has_every_slot)
{
    const char *t = format(STATUS_TEXT, 1);
    /* 2 slots of the threads worker, 1 of the sync worker */
    int n = 0;
    for (const char *p = t; (p = strstr(p, "\npid:")); p++)
        n++;
    cr_assert_eq(n, 3, "%s", t);
    cr_assert(has_line(t, "request URI", "/x?a=\"b\"\\c"), "%s", t);
    cr_assert(has_line(t, "request duration", "5000000"), "%s", t);
}

Test(status, max_children_reached_counts_full_starts)
{
    /* 1 running of 3; two more fill every slot */
    scoreboard_count_enter(scoreboard_tslot(&sb, 0, 1));
    cr_assert_eq(sb.totals->full, 0);
    scoreboard_count_enter(scoreboard_tslot(&sb, 1, 0));
    cr_assert_eq(sb.totals->full, 1);
    cr_assert_eq(sb.totals->max_active, 3);
    /* a worker that dies gives back what it ran and could run */
    scoreboard_release(&sb, 0);
    cr_assert_eq(sb.totals->active, 1);
    cr_assert_eq(sb.totals->capacity, 1);
}

/* Parses text with python3's json module, if there is a python3. */
static int python_json_ok(const char *text)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        return -1;
    FILE *p = popen("/usr/bin/python3 -c 'import json,sys; json.load(sys.stdin)'", "w");
    cr_assert_not_null(p);
    fputs(text, p);
    int st = pclose(p);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

Test(status, json_parses)
{
    for (int full = 0; full < 2; full++) {
        const char *t = format(STATUS_JSON, full);
        cr_assert(strstr(t, "\"accepted_conn\":3,"), "%s", t);
        cr_assert(strstr(t, "\"requests_by_status\":{\"1xx\":0,\"2xx\":3,\"3xx\":0,\"4xx\":1,"
                            "\"5xx\":1}"),
                  "%s", t);
        cr_assert(strstr(t, "{\"le_ms\":null,\"count\":5}]"), "%s", t);
        cr_assert(strstr(t, "\"listen_queue\":3,"), "%s", t);
        if (full)
            cr_assert(strstr(t, "\"request_uri\":\"/x?a=\\\"b\\\"\\\\c\""), "%s", t);
        /* quickstart installs python3 (with python3-prometheus-client) */
        int ok = python_json_ok(t);
        cr_assert_neq(ok, -1, "no /usr/bin/python3 to parse the JSON with");
        cr_assert_eq(ok, 1, "python3 cannot parse: %s", t);
    }
}

/* OpenMetrics 1.0's rules the page must keep: every sample's family was
 * declared by a # TYPE line before it, a counter's samples end in _total,
 * a family with a # UNIT ends in _unit, and # EOF is the last line. */
Test(status, openmetrics_rules)
{
    for (int full = 0; full < 2; full++) {
        char *t = strdup(format(STATUS_OPENMETRICS, full));
        size_t len = strlen(t);
        cr_assert(len > 6 && strcmp(t + len - 6, "# EOF\n") == 0, "%s", t);
        char family[128] = "", type[32] = "";
        int samples = 0;
        for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
            if (strncmp(line, "# TYPE ", 7) == 0) {
                cr_assert_eq(sscanf(line + 7, "%127s %31s", family, type), 2, "%s", line);
                continue;
            }
            if (strncmp(line, "# UNIT ", 7) == 0) {
                char f[128], u[32];
                cr_assert_eq(sscanf(line + 7, "%127s %31s", f, u), 2);
                cr_assert_str_eq(f, family);
                size_t fl = strlen(f), ul = strlen(u);
                cr_assert(fl > ul && f[fl - ul - 1] == '_' && strcmp(f + fl - ul, u) == 0, "%s",
                          line);
                continue;
            }
            if (line[0] == '#') {
                cr_assert(strncmp(line, "# HELP ", 7) == 0 || strcmp(line, "# EOF") == 0, "%s",
                          line);
                continue;
            }
            samples++;
            size_t n = strcspn(line, "{ ");
            cr_assert(*family, "sample before any # TYPE: %s", line);
            cr_assert(strncmp(line, family, strlen(family)) == 0, "%s not in %s", line, family);
            const char *suffix = line + strlen(family);
            size_t sl = n - strlen(family);
            if (strcmp(type, "counter") == 0)
                cr_assert(sl == 6 && strncmp(suffix, "_total", 6) == 0, "%s", line);
            else if (strcmp(type, "histogram") == 0)
                cr_assert((sl == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
                              (sl == 6 && strncmp(suffix, "_count", 6) == 0) ||
                              (sl == 4 && strncmp(suffix, "_sum", 4) == 0),
                          "%s", line);
            else
                cr_assert_eq(sl, 0, "%s", line);
        }
        cr_assert(samples > 20);
        free(t);
    }
    const char *t = format(STATUS_OPENMETRICS, 1);
    cr_assert(strstr(t, "narwhal_requests_total{status=\"2xx\"} 3\n"), "%s", t);
    cr_assert(strstr(t, "narwhal_request_duration_seconds_bucket{le=\"+Inf\"} 5\n"), "%s", t);
    cr_assert(strstr(t, "narwhal_request_duration_seconds_count 5\n"), "%s", t);
    cr_assert(strstr(t, "narwhal_listen_queue{listener=\"127.0.0.1:5000\"} 3\n"), "%s", t);
    cr_assert_null(strstr(t, "unix:/tmp/x.sock"), "%s", t);
    cr_assert(strstr(t, "narwhal_slot_busy{pid=\"101\",slot=\"0\"} 1\n"), "%s", t);
}
