/* Unit tests for src/os/scoreboard.c: the shared map, claiming, finding and
 * releasing worker slots, the request slots (begin/end, truncation) and
 * that a child's writes reach the parent. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scoreboard.h"
#include "util.h"

static nw_scoreboard sb;

static void open3x2(void)
{
    memset(&sb, 0, sizeof sb);
    cr_assert_eq(scoreboard_open(&sb, 3, 2), 0);
}

static void close_sb(void)
{
    scoreboard_close(&sb);
}

TestSuite(scoreboard, .init = open3x2, .fini = close_sb);

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

Test(scoreboard, open_maps_zeroed_slots)
{
    cr_expect_eq(sb.nslots, 3);
    cr_expect_eq(sb.per_slot, 2);
    size_t head = (char *)sb.slots - (char *)sb.totals;
    cr_expect(head >= sizeof(nw_sb_totals) && head % 64 == 0, "the totals come first");
    cr_expect_eq(sb.map_len, head + 3 * sizeof(nw_slot) + 6 * sizeof(nw_tslot));
    cr_assert_not_null(sb.slots);
    cr_expect_eq((char *)sb.tslots, (char *)sb.slots + 3 * sizeof(nw_slot));
    cr_expect(all_zero(sb.slots, sb.map_len - head));
    cr_expect_gt(sb.totals->start_unix_ms, 0);
    cr_expect_eq(sb.totals->c.requests, 0);
    cr_expect_eq(scoreboard_shared()->totals, sb.totals, "workers find it after the fork");
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(sb.slots[i].state, SLOT_FREE);
        cr_expect_eq(sb.slots[i].pid, 0);
    }
}

Test(scoreboard, tslot_addresses)
{
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 2; t++)
            cr_expect_eq(scoreboard_tslot(&sb, i, t), &sb.tslots[i * 2 + t], "slot %d thread %d", i,
                         t);
    cr_expect_eq((char *)(scoreboard_tslot(&sb, 2, 1) + 1), (char *)sb.totals + sb.map_len,
                 "the last request slot ends the map");
}

Test(scoreboard, claim_find_release)
{
    int64_t before = nw_now_ms();
    cr_assert_eq(scoreboard_claim(&sb, 100), 0);
    int64_t after = nw_now_ms();
    cr_expect_eq(sb.slots[0].pid, 100);
    cr_expect_eq(sb.slots[0].state, SLOT_BOOTING);
    cr_expect_geq(sb.slots[0].heartbeat_ms, before);
    cr_expect_leq(sb.slots[0].heartbeat_ms, after);
    cr_expect_eq(sb.slots[0].c.requests, 0);

    cr_expect_eq(scoreboard_claim(&sb, 200), 1);
    cr_expect_eq(scoreboard_claim(&sb, 300), 2);
    cr_expect_eq(scoreboard_claim(&sb, 400), -1, "all taken");

    cr_expect_eq(scoreboard_find(&sb, 100), 0);
    cr_expect_eq(scoreboard_find(&sb, 200), 1);
    cr_expect_eq(scoreboard_find(&sb, 300), 2);
    cr_expect_eq(scoreboard_find(&sb, 400), -1);

    scoreboard_release(&sb, 1);
    cr_expect(all_zero(&sb.slots[1], sizeof sb.slots[1]));
    cr_expect_eq(scoreboard_find(&sb, 200), -1);
    cr_expect_eq(scoreboard_find(&sb, 100), 0, "the others stay");
    cr_expect_eq(scoreboard_find(&sb, 300), 2);
    cr_expect_eq(scoreboard_claim(&sb, 500), 1, "a released slot is claimed again");
    cr_expect_eq(scoreboard_find(&sb, 500), 1);
}

Test(scoreboard, free_state_with_a_pid_is_not_claimed)
{
    /* A slot is free for a new worker only once its pid is gone too. */
    cr_assert_eq(scoreboard_claim(&sb, 100), 0);
    sb.slots[0].state = SLOT_FREE;
    cr_expect_eq(scoreboard_claim(&sb, 200), 1);
    cr_expect_eq(sb.slots[0].pid, 100);
}

Test(scoreboard, claim_and_release_clear_what_the_last_worker_left)
{
    cr_assert_eq(scoreboard_claim(&sb, 100), 0);
    sb.slots[0].c.requests = 42;
    sb.slots[0].state = SLOT_READY;
    scoreboard_request_begin(scoreboard_tslot(&sb, 0, 0), "GET", "/a", 5);
    scoreboard_request_begin(scoreboard_tslot(&sb, 0, 1), "POST", "/b", 6);
    scoreboard_request_begin(scoreboard_tslot(&sb, 1, 0), "PUT", "/c", 7);

    scoreboard_release(&sb, 0);
    cr_expect(all_zero(scoreboard_tslot(&sb, 0, 0), 2 * sizeof(nw_tslot)));
    cr_expect_eq(scoreboard_tslot(&sb, 1, 0)->req_start_ms, 7, "slot 1's untouched");
    cr_expect_str_eq(scoreboard_tslot(&sb, 1, 0)->uri, "/c");

    /* Written behind the scoreboard's back (a worker that died mid-request):
     * claim clears it as well. */
    scoreboard_request_begin(scoreboard_tslot(&sb, 0, 1), "GET", "/x", 9);
    sb.slots[0].c.requests = 3;
    cr_assert_eq(scoreboard_claim(&sb, 200), 0);
    cr_expect_eq(sb.slots[0].c.requests, 0);
    cr_expect(all_zero(scoreboard_tslot(&sb, 0, 0), 2 * sizeof(nw_tslot)));
}

Test(scoreboard, tslot_begin_end)
{
    nw_tslot *t = scoreboard_tslot(&sb, 1, 1);
    scoreboard_request_begin(t, "GET", "/path?q=1", 1234);
    cr_expect_eq(t->req_start_ms, 1234);
    cr_expect_str_eq(t->method, "GET");
    cr_expect_str_eq(t->uri, "/path?q=1");
    scoreboard_request_end(t);
    cr_expect_eq(t->req_start_ms, 0);
    cr_expect_str_eq(t->method, "GET", "kept for the log after the end");

    scoreboard_request_begin(t, NULL, NULL, 99);
    cr_expect_str_eq(t->method, "-");
    cr_expect_str_eq(t->uri, "-");
    cr_expect_eq(t->req_start_ms, 99);
}

Test(scoreboard, tslot_truncates_long_method_and_uri)
{
    char method[40], uri[400];
    memset(method, 'M', sizeof method - 1);
    method[sizeof method - 1] = 0;
    memset(uri, 'u', sizeof uri - 1);
    uri[0] = '/';
    uri[sizeof uri - 1] = 0;
    nw_tslot *t = scoreboard_tslot(&sb, 0, 0);
    nw_tslot *next = scoreboard_tslot(&sb, 0, 1);
    scoreboard_request_begin(next, "NEXT", "/next", 77);
    scoreboard_request_begin(t, method, uri, 1);

    cr_expect_eq(strlen(t->method), sizeof t->method - 1);
    cr_expect_eq(strlen(t->method), 15);
    cr_expect(strncmp(t->method, method, 15) == 0);
    cr_expect_eq(strlen(t->uri), sizeof t->uri - 1);
    cr_expect_eq(strlen(t->uri), 231);
    cr_expect(strncmp(t->uri, uri, 231) == 0);
    /* Exactly the limits fit. */
    method[15] = 0;
    uri[231] = 0;
    scoreboard_request_begin(t, method, uri, 2);
    cr_expect_str_eq(t->method, method);
    cr_expect_str_eq(t->uri, uri);
    /* The neighbour is intact. */
    cr_expect_str_eq(next->method, "NEXT");
    cr_expect_str_eq(next->uri, "/next");
    cr_expect_eq(next->req_start_ms, 77);
}

Test(scoreboard, scoreboard_beat)
{
    cr_assert_eq(scoreboard_claim(&sb, 100), 0);
    sb.slots[0].heartbeat_ms = 1;
    int64_t before = nw_now_ms();
    scoreboard_beat(&sb.slots[0]);
    cr_expect_geq(sb.slots[0].heartbeat_ms, before);
    cr_expect_leq(sb.slots[0].heartbeat_ms, nw_now_ms());
}

Test(scoreboard, shared_with_children)
{
    int i = scoreboard_claim(&sb, 1);
    cr_assert_eq(i, 0);
    sb.slots[i].heartbeat_ms = 1;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sb.slots[i].pid = getpid();
        sb.slots[i].c.requests = 7;
        __atomic_store_n(&sb.slots[i].state, SLOT_READY, __ATOMIC_RELEASE);
        scoreboard_beat(&sb.slots[i]);
        scoreboard_request_begin(scoreboard_tslot(&sb, i, 1), "GET", "/from-child", 4321);
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_expect_eq(sb.slots[i].pid, pid);
    cr_expect_eq(scoreboard_find(&sb, pid), i);
    cr_expect_eq(sb.slots[i].c.requests, 7);
    cr_expect_eq(sb.slots[i].state, SLOT_READY);
    cr_expect_gt(sb.slots[i].heartbeat_ms, 1);
    cr_expect_str_eq(scoreboard_tslot(&sb, i, 1)->uri, "/from-child");
    cr_expect_eq(scoreboard_tslot(&sb, i, 1)->req_start_ms, 4321);
}

Test(scoreboard, close_zeroes_and_is_idempotent)
{
    scoreboard_close(&sb);
    cr_expect_null(sb.slots);
    cr_expect_null(sb.tslots);
    cr_expect_eq(sb.nslots, 0);
    cr_expect_eq(sb.map_len, 0);
    scoreboard_close(&sb);
    cr_expect_eq(scoreboard_find(&sb, 0), -1, "no slots to search");
    cr_expect_eq(scoreboard_claim(&sb, 1), -1);
}

Test(scoreboard, totals_follow_the_workers)
{
    int i = scoreboard_claim(&sb, 42);
    scoreboard_ready(&sb.slots[i], 2);
    cr_expect_eq(sb.slots[i].state, SLOT_READY);
    cr_expect_eq(sb.totals->capacity, 2);
    nw_tslot *ts = scoreboard_tslot(&sb, i, 1);
    scoreboard_count_enter(ts);
    cr_expect_eq(sb.totals->active, 1);
    cr_expect_eq(sb.slots[i].active, 1);
    scoreboard_count_leave(ts, 200, 7000, 0);
    cr_expect_eq(sb.totals->active, 0);
    cr_expect_eq(ts->requests, 1);
    /* counted in the worker's own slot, not in the shared totals */
    cr_expect_eq(sb.slots[i].c.requests, 1);
    cr_expect_eq(sb.slots[i].c.status[2], 1);
    cr_expect_eq(sb.slots[i].c.duration[1], 1, "7 ms is in the 25 ms bucket");
    cr_expect_eq(sb.totals->c.requests, 0);
    /* a reader sees them in the totals */
    nw_scoreboard snap;
    cr_assert_eq(scoreboard_snapshot(&sb, &snap), 0);
    cr_expect_eq(snap.totals->c.requests, 1);
    cr_expect_eq(snap.totals->c.status[2], 1);
    scoreboard_snapshot_free(&snap);
    scoreboard_count_enter(ts); /* dies with it running */
    scoreboard_release(&sb, i);
    cr_expect_eq(sb.totals->active, 0);
    cr_expect_eq(sb.totals->capacity, 0);
    cr_expect_eq(sb.totals->c.requests, 1, "totals outlive the worker");
    cr_expect_eq(sb.totals->c.duration[1], 1);
    cr_expect_eq(sb.totals->max_active, 1);
}

Test(scoreboard, a_stopping_worker_gives_back_its_capacity)
{
    int i = scoreboard_claim(&sb, 42);
    scoreboard_ready(&sb.slots[i], 3);
    cr_expect_eq(sb.totals->capacity, 3);
    scoreboard_stopping(&sb.slots[i]);
    cr_expect_eq(sb.slots[i].state, SLOT_STOPPING);
    cr_expect_eq(sb.totals->capacity, 0);
    scoreboard_release(&sb, i);
    cr_expect_eq(sb.totals->capacity, 0, "not taken back twice");
}

/* The listen queues' maxima: each listener's and of all together, raised
 * only; an unknown queue (-1) neither counts nor lowers anything. */
Test(scoreboard, note_queues_keeps_the_maxima)
{
    int q1[] = {3, -1, 2};
    scoreboard_note_queues(&sb, q1, 3);
    cr_assert_eq(sb.totals->queue_max[0], 3);
    cr_assert_eq(sb.totals->queue_max[1], 0);
    cr_assert_eq(sb.totals->queue_max[2], 2);
    cr_assert_eq(sb.totals->listen_queue_max, 5);
    int q2[] = {1, 4, 0};
    scoreboard_note_queues(&sb, q2, 3);
    cr_assert_eq(sb.totals->queue_max[0], 3, "never lowered");
    cr_assert_eq(sb.totals->queue_max[1], 4);
    cr_assert_eq(sb.totals->listen_queue_max, 5, "5 at once is still the most");
    int none[] = {-1, -1};
    scoreboard_note_queues(&sb, none, 2);
    cr_assert_eq(sb.totals->listen_queue_max, 5);
    /* more listeners than kept: their queues count in the total only */
    int many[SB_MAX_LISTENERS + 1];
    for (int k = 0; k <= SB_MAX_LISTENERS; k++)
        many[k] = 1;
    scoreboard_note_queues(&sb, many, SB_MAX_LISTENERS + 1);
    cr_assert_eq(sb.totals->listen_queue_max, SB_MAX_LISTENERS + 1);
}

/* A new request in a slot is not yet in the slowlog, whatever the last
 * one was. */
Test(scoreboard, begin_clears_the_slowlog_mark)
{
    nw_tslot *t = scoreboard_tslot(&sb, 0, 0);
    scoreboard_request_begin(t, "GET", "/a", 100);
    t->slowlogged = 1;
    scoreboard_request_end(t);
    scoreboard_request_begin(t, "GET", "/b", 200);
    cr_assert_eq(t->slowlogged, 0);
}
