/* Unit tests for src/os/coro.c: resume/yield order, the data pointer,
 * coro_current, finishing, stack reuse, and the guard page below each
 * stack. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "coro.h"

/* ---- a trace of who ran when ------------------------------------------------------ */

static char trace[64];

static void mark(char c)
{
    size_t n = strlen(trace);
    cr_assert_lt(n, sizeof trace - 1);
    trace[n] = c;
    trace[n + 1] = 0;
}

/* Marks its letter, yields, three times: "a" then "b" then "c" for arg 'a'. */
static void three_steps(void *arg)
{
    char c = *(char *)arg;
    for (int i = 0; i < 3; i++) {
        mark((char)(c + i));
        if (i < 2)
            coro_yield();
    }
}

Test(coro, resume_runs_until_yield_then_finishes)
{
    trace[0] = 0;
    char a = 'a';
    nw_coro *co = coro_new(three_steps, &a);
    cr_assert_not_null(co);
    cr_expect_str_eq(trace, "", "nothing runs before the first resume");
    cr_expect_eq(coro_resume(co), 0);
    cr_expect_str_eq(trace, "a");
    cr_expect_eq(coro_resume(co), 0);
    cr_expect_str_eq(trace, "ab");
    cr_expect_eq(coro_resume(co), 1, "finished");
    cr_expect_str_eq(trace, "abc");
    coro_free(co);
}

Test(coro, two_coroutines_interleave)
{
    trace[0] = 0;
    char a = 'a', x = 'x';
    nw_coro *p = coro_new(three_steps, &a), *q = coro_new(three_steps, &x);
    cr_assert_neq(p, q);
    cr_expect_eq(coro_resume(q), 0);
    cr_expect_eq(coro_resume(p), 0);
    cr_expect_eq(coro_resume(p), 0);
    cr_expect_eq(coro_resume(q), 0);
    cr_expect_eq(coro_resume(q), 1);
    cr_expect_eq(coro_resume(p), 1);
    cr_expect_str_eq(trace, "xabyzc");
    coro_free(p);
    coro_free(q);
}

/* ---- coro_current and the data pointer --------------------------------------------- */

struct seen {
    nw_coro *self;    /* set by the test before the first resume */
    nw_coro *current; /* coro_current() inside */
    void *data;       /* coro_data(coro_current()) inside, after a yield */
    int steps;
};

static void look_around(void *arg)
{
    struct seen *s = arg;
    s->current = coro_current();
    s->steps++;
    coro_yield();
    s->data = coro_data(coro_current());
    s->steps++;
}

Test(coro, current_and_data)
{
    struct seen s = {0};
    cr_expect_null(coro_current(), "on the loop's own stack");
    s.self = coro_new(look_around, &s);
    cr_expect_null(coro_data(s.self), "no data until set");
    cr_expect_eq(coro_resume(s.self), 0);
    cr_expect_eq(s.current, s.self);
    cr_expect_null(coro_current(), "back on the loop's stack after a yield");

    int payload = 7;
    coro_set_data(s.self, &payload);
    cr_expect_eq(coro_data(s.self), &payload);
    cr_expect_eq(coro_resume(s.self), 1);
    cr_expect_eq(s.data, &payload, "seen from inside");
    cr_expect_eq(s.steps, 2);
    cr_expect_null(coro_current(), "and after it finished");
    coro_free(s.self);
}

/* ---- stacks -------------------------------------------------------------------------- */

/* Records where its stack is (the address of a local). */
static void where(void *arg)
{
    volatile char here = 0;
    *(uintptr_t *)arg = (uintptr_t)&here;
}

Test(coro, finished_stack_is_reused)
{
    uintptr_t first = 0, second = 0;
    nw_coro *co = coro_new(where, &first);
    cr_assert_eq(coro_resume(co), 1);
    coro_set_data(co, &first);
    coro_free(co);

    nw_coro *again = coro_new(where, &second);
    cr_expect_eq(again, co, "the freed coroutine comes back");
    cr_expect_null(coro_data(again), "with its data cleared");
    cr_assert_eq(coro_resume(again), 1, "and runs from the start");
    cr_expect_eq(second, first, "on the same stack");
    coro_free(again);
}

Test(coro, new_stack_size_is_not_served_from_old_stacks)
{
    uintptr_t a = 0, b = 0;
    coro_set_stack_size(64 * 1024);
    nw_coro *co = coro_new(where, &a);
    cr_assert_eq(coro_resume(co), 1);
    coro_free(co);

    coro_set_stack_size(128 * 1024);
    nw_coro *big = coro_new(where, &b);
    cr_expect_neq(big, co, "a 64 KiB stack does not serve 128 KiB");
    cr_assert_eq(coro_resume(big), 1);
    cr_expect_neq(b, a);
    coro_free(big);
}

Test(coro, many_alive_at_once)
{
    enum { N = 100 };
    static nw_coro *cos[N];
    static char letters[N];
    trace[0] = 0;
    for (int i = 0; i < N; i++) {
        letters[i] = 'a';
        cos[i] = coro_new(three_steps, &letters[i]);
        for (int j = 0; j < i; j++)
            cr_assert_neq(cos[i], cos[j]);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            trace[0] = 0;
            cr_assert_eq(coro_resume(cos[i]), round == 2);
            cr_assert_eq(trace[0], 'a' + round, "coroutine %d, round %d", i, round);
        }
    for (int i = 0; i < N; i++)
        coro_free(cos[i]);
}

/* The /proc/self/maps line of the mapping holding addr (static storage),
 * NULL if none does; *lo gets its start. */
static const char *mapping_of(uintptr_t addr, uintptr_t *lo)
{
    static char line[512];
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    const char *found = NULL;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && addr >= a && addr < b) {
            *lo = a;
            found = line;
        }
    }
    fclose(f);
    return found;
}

Test(coro, guard_page_below_the_stack)
{
    uintptr_t here = 0, lo = 0, guard_lo = 0;
    coro_set_stack_size(64 * 1024);
    nw_coro *co = coro_new(where, &here);
    cr_assert_eq(coro_resume(co), 1);
    const char *stack = mapping_of(here, &lo);
    cr_assert_not_null(stack, "the stack is not mapped");
    cr_expect(strstr(stack, " rw-p "), "the stack: %s", stack);
    const char *guard = mapping_of(lo - 1, &guard_lo);
    cr_assert_not_null(guard, "nothing mapped below the stack at %#lx", (unsigned long)lo);
    cr_expect(strstr(guard, " ---p "), "below the stack: %s", guard);
    coro_free(co);
}

/* About 1 KiB a level; the result is used after the call so it cannot
 * become a loop. */
static int deep(int n)
{
    volatile char frame[1024];
    frame[0] = (char)n;
    frame[sizeof frame - 1] = 1;
    if (n == 0)
        return frame[0];
    return deep(n - 1) + frame[sizeof frame - 1];
}

static void overflow(void *arg)
{
    /* a few KiB past a 16 KiB stack: into the guard below it, not past it */
    *(int *)arg = deep(24);
}

/* Where the guard below the coroutine stacks lies; the handler says
 * whether the overflow faulted there. */
static uintptr_t guard_lo, guard_hi;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    uintptr_t at = (uintptr_t)si->si_addr;
    _exit(at >= guard_lo && at < guard_hi ? 0 : 3);
}

/* The pages below each stack are a guard: an overflow is a SIGSEGV in
 * them, not a write into whatever lies below. */
Test(coro, stack_overflow_faults_in_the_guard, .exit_code = 0)
{
    coro_set_stack_size(16 * 1024);
    uintptr_t here = 0, lo = 0;
    nw_coro *probe = coro_new(where, &here);
    cr_assert_eq(coro_resume(probe), 1);
    cr_assert_not_null(mapping_of(here, &lo), "the stack is not mapped");
    const char *guard = mapping_of(lo - 1, &guard_lo);
    cr_assert(guard && strstr(guard, " ---p "), "no guard below the stack at %#lx",
              (unsigned long)lo);
    guard_hi = lo;
    coro_free(probe); /* the next coroutine gets the same stack */

    static char alt[64 * 1024];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    cr_assert_eq(sigaltstack(&ss, NULL), 0);
    struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
    int out = 0;
    nw_coro *co = coro_new(overflow, &out);
    coro_resume(co);
    cr_assert_fail("returned from an overflowing coroutine (%d)", out);
}
