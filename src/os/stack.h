/* stack.h - the stack of a thread, as a person reads it: one line per frame
 * with the function's name and, where the object has debug info, file:line.
 * For the slowlog and for the log line of a worker killed for `timeout`.
 *
 * The unwinder is elfutils' libdw (CFI from .eh_frame / .debug_frame,
 * symbols, line tables); without it (configure found no libdw) every call
 * fails with a message saying so. x86-64 only for now (the registers are
 * read per architecture); elsewhere the calls fail saying so.
 *
 * Frames look like:
 *   #0  0x00007f0e2c1d5139 spin_forever at tests/apps/classapp.c:93 (classapp.so)
 * at most STACK_MAX_FRAMES of them, then "#64 ... (more frames)". */
#ifndef NW_STACK_H
#define NW_STACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define STACK_MAX_FRAMES 64

/* Whether this build can unwind at all. */
int stack_supported(void);

/* The stack of thread tid of process pid (another process: a worker).
 * Stops the thread with ptrace (PTRACE_SEIZE, PTRACE_INTERRUPT), waiting
 * at most wait_ms for it to stop; then, if still is not NULL, asks
 * still(arg) whether the stopped thread still runs what the caller wants
 * traced: 0 = no, nothing is unwound. The thread is let go on
 * (PTRACE_DETACH, a signal it was stopped for passed back) before the
 * return, whatever happens, except when it did not stop within wait_ms:
 * then it stays seized until stack_reap() sees it stop.
 * Returns 0 with the frames appended to out, 1 when still() said no, -1
 * with the reason in why[0..whylen) (for EPERM: what the kernel wants,
 * CAP_SYS_PTRACE or a yama setting, not a bare "Operation not permitted"). */
int stack_of_thread(pid_t pid, pid_t tid, int wait_ms, int (*still)(void *arg), void *arg,
                    nw_buf *out, char *why, size_t whylen);

/* Lets go of threads stack_of_thread left seized (they did not stop in
 * time). With pid 0, asks each (waitpid WNOHANG) and detaches those that
 * stopped: call it now and then (the master: once a second). With a pid
 * whose stop status a waitpid(-1) elsewhere took: detaches it if it is one
 * of them and returns 1 (the status was the tracer's, not a child's). */
int stack_reap(pid_t pid, int status);

/* The exit status of a child of this process that a wait of stack.c's
 * took (a traced worker whose main thread died while it was being
 * stopped): 1 with *pid and *status once for each, else 0. The caller's
 * reaping must ask this before waitpid, or the child is never reaped. */
int stack_reaped(pid_t *pid, int *status);

/* What libdw has read of the processes traced (their symbols, CFI and
 * lines, kept to make the next trace of the same process cheap: 100 ms and
 * more become 1-3) is let go once unused for idle_ms. Call now and then. */
void stack_trim(int64_t idle_ms);

/* The stack of a context this process saved with swapcontext or
 * getcontext (a suspended coroutine: ucontext is its ucontext_t). The
 * coroutine's memory is read with process_vm_readv, so a broken stack
 * makes a short trace, not a fault. 0 with the frames in out, -1 with why. */
int stack_of_context(const void *ucontext, nw_buf *out, char *why, size_t whylen);

#endif
