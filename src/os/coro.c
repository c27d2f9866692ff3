#include "coro.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct nw_coro {
    ucontext_t ctx;
    void (*fn)(void *);
    void *arg;
    void *data;
    void *map; /* guard gap + stack */
    size_t map_len;
    int done;
    nw_coro *next_free;
};

static size_t stack_size = 256 * 1024;
static ucontext_t loop_ctx;
static nw_coro *current;
static nw_coro *free_list;
static int nfree;
/* Stacks kept for reuse; beyond this a finished coroutine's stack is
 * unmapped, so a burst of connections does not pin its memory forever. */
#define MAX_FREE_STACKS 64
/* The inaccessible gap below each stack. mmap puts one stack right below
 * another, so with a one-page guard a frame of more than a page (a 256 KiB
 * local array) could begin below the guard and write into the next stack
 * without a fault (it did: 5 KiB of a neighbour's stack). A write up to 64
 * KiB below the stack now faults whatever the app was built with; a frame
 * that reaches further still needs the compiler's probes, which touch it a
 * page at a time from the top (-fstack-clash-protection, which narwhal.h
 * asks of apps). The gap is PROT_NONE address space: it costs no memory. */
#define GUARD_MIN (64 * 1024)

/* The guard gap in bytes: GUARD_MIN rounded up to whole pages. */
static size_t guard_size(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (GUARD_MIN + page - 1) / page * page;
}

void coro_set_stack_size(size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    stack_size = (bytes + page - 1) / page * page;
    if (stack_size < 4 * page)
        stack_size = 4 * page;
}

static void trampoline(unsigned lo, unsigned hi)
{
    nw_coro *co = (nw_coro *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
    co->fn(co->arg);
    co->done = 1;
    current = NULL;
    setcontext(&loop_ctx);
}

nw_coro *coro_new(void (*fn)(void *arg), void *arg)
{
    size_t guard = guard_size();
    nw_coro *volatile co = free_list;
    if (co && co->map_len == guard + stack_size) {
        free_list = co->next_free;
        nfree--;
    } else {
        co = nw_xcalloc(1, sizeof *co);
        co->map_len = guard + stack_size;
        co->map = mmap(NULL, co->map_len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (co->map == MAP_FAILED) {
            log_critical("cannot map a coroutine stack: %s", strerror(errno));
            abort();
        }
        /* Stacks grow down: the guard gap sits below the lowest address. */
        if (mprotect(co->map, guard, PROT_NONE) < 0) {
            log_critical("cannot protect a coroutine stack's guard: %s", strerror(errno));
            abort();
        }
    }
    co->fn = fn;
    co->arg = arg;
    co->data = NULL;
    co->done = 0;
    co->next_free = NULL;
    getcontext(&co->ctx);
    co->ctx.uc_stack.ss_sp = (char *)co->map + guard;
    co->ctx.uc_stack.ss_size = stack_size;
    co->ctx.uc_link = NULL;
    uintptr_t p = (uintptr_t)co;
    makecontext(&co->ctx, (void (*)(void))trampoline, 2, (unsigned)(p & 0xffffffffu),
                (unsigned)(p >> 32));
    return co;
}

int coro_resume(nw_coro *co)
{
    current = co;
    swapcontext(&loop_ctx, &co->ctx);
    current = NULL;
    return co->done;
}

void coro_yield(void)
{
    nw_coro *co = current;
    current = NULL;
    swapcontext(&co->ctx, &loop_ctx);
}

nw_coro *coro_current(void)
{
    return current;
}

void coro_free(nw_coro *co)
{
    if (nfree >= MAX_FREE_STACKS) {
        munmap(co->map, co->map_len);
        free(co);
        return;
    }
    co->next_free = free_list;
    free_list = co;
    nfree++;
}

const void *coro_context(const nw_coro *co)
{
    return &co->ctx;
}

void *coro_data(nw_coro *co)
{
    return co->data;
}
void coro_set_data(nw_coro *co, void *data)
{
    co->data = data;
}
