/* coro.h - coroutines for the async worker class: ucontext switching on
 * mmap()ed stacks with a 64 KiB inaccessible gap below each, so a handler
 * that overflows its stack (by deep recursion, or by a frame larger than
 * what is left, when built with -fstack-clash-protection or the frame
 * begins inside the gap) faults, and the worker dies and is replaced,
 * instead of writing over another coroutine's memory. Single-threaded: only
 * the loop thread uses them. */
#ifndef NW_CORO_H
#define NW_CORO_H

#include <stddef.h>

typedef struct nw_coro nw_coro;

/* Sets the stack size (bytes, rounded up to pages) for new coroutines. */
void coro_set_stack_size(size_t bytes);
/* Creates a coroutine that will run fn(arg) when first resumed. Stacks are
 * reused from a free list. Aborts when no memory can be mapped. */
nw_coro *coro_new(void (*fn)(void *arg), void *arg);
/* Runs co until it yields or finishes. Returns 1 when it has finished (the
 * caller then frees it), 0 when it yielded. Only from outside any
 * coroutine. */
int coro_resume(nw_coro *co);
/* From inside a coroutine: back to whoever resumed it. */
void coro_yield(void);
/* The running coroutine, NULL on the loop's own stack. */
nw_coro *coro_current(void);
void coro_free(nw_coro *co);
/* The context a suspended coroutine's registers were saved in (a
 * ucontext_t), for stack_of_context; meaningless while it runs. */
const void *coro_context(const nw_coro *co);
/* Per-coroutine pointer for the executor's use. */
void *coro_data(nw_coro *co);
void coro_set_data(nw_coro *co, void *data);

#endif
