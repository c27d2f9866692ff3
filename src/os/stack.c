/* stack.c - stacks of a stopped thread or a saved context (stack.h), with
 * elfutils' libdw.
 *
 * One unwinder serves both: libdw is given the thread's first registers
 * (from PTRACE_GETREGS, or from the ucontext_t swapcontext saved) and reads
 * memory with process_vm_readv, of the traced worker or of this process.
 * libdw's own ptrace attach (dwfl_linux_proc_attach) is not used: it waits
 * for the thread to stop without a bound, and a thread stuck in the kernel
 * would hold the master with it. Objects are found from /proc/PID/maps; an
 * app loaded from its private copy (a memfd, NOTES.md) is read back through
 * the worker's fd on that copy. debuginfod is never asked (it would put a
 * network fetch in the master's loop). */
#include "stack.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_LIBDW
#include <dirent.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#endif

#include "log.h"
#include "util.h"

/* ---- why ptrace was refused ------------------------------------------------------ */

/* The first integer in a file, or -1. */
static long read_long(const char *path)
{
    FILE *f = fopen(path, "re");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* A field of /proc/self/status as a number (base 16 for the Cap* masks). */
static unsigned long long status_field(const char *name, int base)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    unsigned long long v = 0;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = strtoull(line + n + 1, NULL, base);
            break;
        }
    if (f)
        fclose(f);
    return v;
}

/* What the kernel wants before it lets this process trace pid: php-fpm's
 * slowlog says "Operation not permitted" and leaves the operator there. */
static void explain_refusal(int err, pid_t pid, char *why, size_t n)
{
    if (err != EPERM && err != EACCES) {
        snprintf(why, n, "ptrace: %s", strerror(err));
        return;
    }
    long scope = read_long("/proc/sys/kernel/yama/ptrace_scope");
    int cap = (status_field("CapEff", 16) >> 19) & 1; /* CAP_SYS_PTRACE */
    unsigned long long seccomp = status_field("Seccomp", 10);
    struct stat st;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%d", (int)pid);
    /* a process that changed its credentials (user = ...) is not dumpable,
     * and /proc/PID then belongs to root */
    int other_user = stat(proc, &st) == 0 && st.st_uid != geteuid();
    const char *give = "give the master CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE; "
                       "Kubernetes securityContext.capabilities.add: [SYS_PTRACE]; systemd "
                       "AmbientCapabilities=CAP_SYS_PTRACE)";
    if (scope == 3)
        snprintf(why, n,
                 "ptrace refused: kernel.yama.ptrace_scope is 3, no process may trace another; "
                 "set it to 1 (sysctl kernel.yama.ptrace_scope=1) for stacks");
    else if (!cap) {
        if (scope == 2)
            snprintf(why, n,
                     "ptrace refused: kernel.yama.ptrace_scope is 2, only CAP_SYS_PTRACE may "
                     "trace; %s, or set the sysctl to 1",
                     give);
        else
            snprintf(why, n,
                     "ptrace refused: the master lacks CAP_SYS_PTRACE, which it needs to trace "
                     "a worker %s; %s",
                     other_user ? "that runs as another user (`user`)"
                                : "that is not dumpable or in another namespace",
                     give);
        if (other_user) {
            size_t k = strlen(why);
            snprintf(why + k, n - k, ", or run the workers as the master's own user");
        }
    } else if (seccomp == 2)
        snprintf(why, n,
                 "ptrace refused by a seccomp filter on the master (Seccomp: 2 in "
                 "/proc/self/status; Docker's default profile blocks ptrace on kernels before "
                 "4.8): allow ptrace in the profile");
    else
        snprintf(why, n,
                 "ptrace refused although the master has CAP_SYS_PTRACE: a security module "
                 "(AppArmor, SELinux) denies it; see the kernel log");
}

#ifndef HAVE_LIBDW

int stack_supported(void)
{
    return 0;
}

static const char no_libdw[] = "narwhal was built without libdw (install libdw-dev and "
                               "configure again)";

int stack_of_thread(pid_t pid, pid_t tid, int wait_ms, int (*still)(void *arg), void *arg,
                    nw_buf *out, char *why, size_t whylen)
{
    (void)pid, (void)tid, (void)wait_ms, (void)still, (void)arg, (void)out;
    (void)explain_refusal;
    snprintf(why, whylen, "%s", no_libdw);
    return -1;
}

int stack_reap(pid_t pid, int status)
{
    (void)pid, (void)status;
    return 0;
}

void stack_trim(int64_t idle_ms)
{
    (void)idle_ms;
}

int stack_reaped(pid_t *pid, int *status)
{
    (void)pid, (void)status;
    return 0;
}

int stack_of_context(const void *ucontext, nw_buf *out, char *why, size_t whylen)
{
    (void)ucontext, (void)out;
    snprintf(why, whylen, "%s", no_libdw);
    return -1;
}

#else

int stack_supported(void)
{
#if defined(__x86_64__)
    return 1;
#else
    return 0;
#endif
}

/* ---- objects and memory ------------------------------------------------------------- */

/* What the unwinder reads: the process, and where the first frame is. */
typedef struct unwind_arg {
    pid_t pid, tid;
    Dwarf_Word regs[17]; /* DWARF order: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip */
    int done;            /* next_thread gave the one thread */
    /* a copy of the stack taken while the thread was stopped (NULL: read
     * the process's memory): addresses stack_lo.. come from it */
    const unsigned char *stack;
    Dwarf_Addr stack_lo;
    size_t stack_len;
} unwind_arg;

/* The most of a stopped thread's stack that is copied, from its stack
 * pointer up: deeper frames than this are read from the running thread. */
#define STACK_COPY (512 * 1024)

/* An fd on the private copy of the app (a memfd, "/memfd:NAME (deleted)"
 * in the maps): the worker keeps one open, found among its fds. -1 if
 * none. */
static int open_memfd(pid_t pid, const char *module)
{
    const char *del = strstr(module, " (deleted)");
    size_t len = del ? (size_t)(del - module) : strlen(module);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    int fd = -1;
    struct dirent *e;
    while (d && fd < 0 && (e = readdir(d))) {
        char path[320], target[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strncmp(target, module, len) == 0 && (target[len] == 0 || target[len] == ' '))
            fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (d)
        closedir(d);
    return fd;
}

/* The process unwind() reads (find_elf has no argument of ours; the
 * master and a worker's loop thread unwind one stack at a time). */
static pid_t unwinding_pid;

static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
                    char **file_name, Elf **elfp)
{
    if (strncmp(name, "/memfd:", 7) == 0) {
        int fd = open_memfd(unwinding_pid, name);
        if (fd >= 0) {
            *file_name = NULL;
            return fd;
        }
    }
    return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
}

/* Separate debug files on this machine (/usr/lib/debug), never debuginfod. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    return dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                        debuglink_crc, debuginfo_file_name);
}

static const Dwfl_Callbacks proc_callbacks = {
    .find_elf = find_elf,
    .find_debuginfo = find_debuginfo,
};

static pid_t next_thread(Dwfl *dwfl, void *dwfl_arg, void **thread_argp)
{
    unwind_arg *ua = dwfl_arg;
    (void)dwfl;
    if (ua->done)
        return 0;
    ua->done = 1;
    *thread_argp = ua;
    return ua->tid;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *dwfl_arg)
{
    unwind_arg *ua = dwfl_arg;
    (void)dwfl;
    if (ua->stack && addr >= ua->stack_lo &&
        addr - ua->stack_lo + sizeof *result <= ua->stack_len) {
        memcpy(result, ua->stack + (addr - ua->stack_lo), sizeof *result);
        return true;
    }
    struct iovec local = {.iov_base = result, .iov_len = sizeof *result};
    struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = sizeof *result};
    return process_vm_readv(ua->pid, &local, 1, &remote, 1, 0) == (ssize_t)sizeof *result;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
    unwind_arg *ua = thread_arg;
    return dwfl_thread_state_registers(thread, 0, 17, ua->regs);
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
};

/* ---- frames -------------------------------------------------------------------------- */

typedef struct frames {
    Dwfl *dwfl;
    nw_buf *out;
    int n;
} frames;

static int one_frame(Dwfl_Frame *state, void *arg)
{
    frames *f = arg;
    Dwarf_Addr pc;
    bool activation;
    if (!dwfl_frame_pc(state, &pc, &activation))
        return DWARF_CB_ABORT;
    if (f->n >= STACK_MAX_FRAMES) {
        nw_buf_printf(f->out, "#%-2d ... (more frames)\n", f->n);
        return DWARF_CB_ABORT;
    }
    /* a return address points after its call: look up the call */
    Dwarf_Addr at = activation ? pc : pc - 1;
    Dwfl_Module *m = dwfl_addrmodule(f->dwfl, at);
    const char *fn = m ? dwfl_module_addrname(m, at) : NULL;
    const char *mod = m ? dwfl_module_info(m, NULL, NULL, NULL, NULL, NULL, NULL, NULL) : NULL;
    nw_buf_printf(f->out, "#%-2d 0x%016llx %s", f->n, (unsigned long long)pc, fn ? fn : "??");
    Dwfl_Line *line = m ? dwfl_module_getsrc(m, at) : NULL;
    int lineno = 0;
    const char *src = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
    if (src)
        nw_buf_printf(f->out, " at %s:%d", src, lineno);
    if (mod) {
        const char *base = strrchr(mod, '/');
        base = base ? base + 1 : mod;
        /* the app's private copy: "memfd:NAME (deleted)" */
        if (strncmp(base, "memfd:", 6) == 0)
            base += 6;
        if (base[0] == '[') /* "[vdso: 123]" */
            nw_buf_printf(f->out, " (%.*s])", (int)strcspn(base, ":]"), base);
        else
            nw_buf_printf(f->out, " (%.*s)", (int)strcspn(base, " "), base);
    }
    nw_buf_appendc(f->out, '\n');
    f->n++;
    return DWARF_CB_OK;
}

/* A process's objects as libdw has read them (symbols, CFI, line tables),
 * kept between traces: reading them is most of a trace's cost (about 100
 * ms the first time on the test machine, with libc's debug info), and a
 * process's code changes only with a dlopen. An entry is good while the
 * process's executable mappings are the same (a hash of their lines of
 * /proc/PID/maps) and it was made by this process (a worker inherits the
 * master's). Two entries, dropped after a while unused (stack_trim): each
 * holds the objects' data, 10 to 25 MB with libc's debug info installed. */
#define CACHE_SIZE 2

typedef struct cached {
    pid_t owner; /* the process that made it */
    pid_t pid;
    int64_t used_ms; /* nw_now_ms() of its last trace */
    unsigned long long maps_hash;
    Dwfl *dwfl;
    unwind_arg ua; /* libdw holds a pointer to it */
} cached;

static cached cache[CACHE_SIZE];
static unsigned cache_next;

/* FNV-1a of pid's executable mappings; 0 if they cannot be read. */
static unsigned long long code_maps_hash(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    unsigned long long h = 1469598103934665603ULL;
    while (fgets(line, sizeof line, f)) {
        /* "start-end perms offset dev inode path": code is r-x */
        const char *perms = strchr(line, ' ');
        if (!perms || perms[3] != 'x')
            continue;
        for (const char *c = line; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    }
    fclose(f);
    return h;
}

static void cache_drop(cached *c)
{
    if (c->dwfl && c->owner == getpid())
        dwfl_end(c->dwfl);
    memset(c, 0, sizeof *c);
}

/* The entry for pid, made anew if its code changed; NULL with why. */
static cached *cache_get(pid_t pid, char *why, size_t whylen)
{
    pid_t self = getpid();
    unsigned long long h = code_maps_hash(pid);
    cached *c = NULL;
    for (int k = 0; k < CACHE_SIZE; k++) {
        if (cache[k].owner != self && cache[k].owner)
            memset(&cache[k], 0, sizeof cache[k]); /* the parent's: not ours to end */
        if (cache[k].dwfl && cache[k].pid == pid)
            c = &cache[k];
    }
    if (c && c->maps_hash == h && h) {
        c->used_ms = nw_now_ms();
        return c;
    }
    if (c)
        cache_drop(c);
    else
        c = &cache[cache_next++ % CACHE_SIZE], cache_drop(c);
    c->dwfl = dwfl_begin(&proc_callbacks);
    if (!c->dwfl) {
        snprintf(why, whylen, "libdw: %s", dwfl_errmsg(-1));
        return NULL;
    }
    c->owner = self;
    c->used_ms = nw_now_ms();
    c->pid = pid;
    c->maps_hash = h;
    c->ua.pid = pid;
    unwinding_pid = pid;
    if (dwfl_linux_proc_report(c->dwfl, pid) != 0 || dwfl_report_end(c->dwfl, NULL, NULL) != 0) {
        snprintf(why, whylen, "cannot read the objects of pid %d: %s", (int)pid, dwfl_errmsg(-1));
        cache_drop(c);
        return NULL;
    }
    if (!dwfl_attach_state(c->dwfl, NULL, pid, &thread_callbacks, &c->ua)) {
        snprintf(why, whylen, "libdw: %s", dwfl_errmsg(-1));
        cache_drop(c);
        return NULL;
    }
    return c;
}

void stack_trim(int64_t idle_ms)
{
    int64_t now = nw_now_ms();
    for (int k = 0; k < CACHE_SIZE; k++)
        if (cache[k].dwfl && (cache[k].owner != getpid() || now - cache[k].used_ms >= idle_ms))
            cache_drop(&cache[k]);
}

/* Unwinds from ua's registers in ua->pid's memory. */
static int unwind(unwind_arg *ua, nw_buf *out, char *why, size_t whylen)
{
    cached *c = cache_get(ua->pid, why, whylen);
    if (!c)
        return -1;
    unwinding_pid = ua->pid;
    c->ua = *ua;
    c->ua.done = 0;
    frames f = {.dwfl = c->dwfl, .out = out};
    int r = dwfl_getthread_frames(c->dwfl, ua->tid, one_frame, &f);
    /* the end of the stack is an error on some systems (libdwfl.h) */
    if (r != 0 && f.n == 0) {
        snprintf(why, whylen, "libdw cannot unwind: %s", dwfl_errmsg(-1));
        cache_drop(c); /* in case what it holds is what failed */
        return -1;
    }
    return 0;
}

/* ---- another process's thread --------------------------------------------------------- */

/* Threads left seized because they did not stop in time. */
#define MAX_PENDING 64
static struct {
    pid_t pid, tid; /* tid == pid: the process's main thread, our child if a worker */
} pending[MAX_PENDING];

/* Exits our waits took from the caller (stack_reaped). */
#define MAX_REAPED 16
static struct {
    pid_t pid;
    int status;
} reaped[MAX_REAPED];

/* A wait of ours returned st for r: the exit of a process's main thread
 * (a child's exit; another thread's end is no one's business) is kept for
 * the caller. */
static void keep_exit(pid_t r, pid_t pid, int st)
{
    if (r <= 0 || r != pid || !(WIFEXITED(st) || WIFSIGNALED(st)))
        return;
    for (int k = 0; k < MAX_REAPED; k++)
        if (!reaped[k].pid) {
            reaped[k].pid = r;
            reaped[k].status = st;
            return;
        }
}

int stack_reaped(pid_t *pid, int *status)
{
    for (int k = 0; k < MAX_REAPED; k++)
        if (reaped[k].pid) {
            *pid = reaped[k].pid;
            *status = reaped[k].status;
            reaped[k].pid = 0;
            return 1;
        }
    return 0;
}

static void detach(pid_t tid, int sig)
{
    /* a failure leaves nothing to do: the thread runs on or is gone */
    (void)ptrace(PTRACE_DETACH, tid, NULL, (void *)(intptr_t)sig);
}

/* A stop the tracer caused (PTRACE_INTERRUPT, a group stop) passes nothing
 * back; a signal the thread was about to take is handed back to it. */
static int stop_signal(int st)
{
    if (st >> 16 == PTRACE_EVENT_STOP)
        return 0;
    int sig = WSTOPSIG(st);
    return sig == SIGTRAP || sig == SIGSTOP ? 0 : sig;
}

int stack_reap(pid_t pid, int status)
{
    for (int k = 0; k < MAX_PENDING; k++) {
        pid_t tid = pending[k].tid;
        if (!tid || (pid && tid != pid))
            continue;
        int st = status;
        pid_t r = pid ? pid : waitpid(tid, &st, WNOHANG | __WALL);
        if (r == 0)
            continue; /* still not stopped */
        if (r == tid && WIFSTOPPED(st))
            detach(tid, stop_signal(st));
        else if (!pid)
            keep_exit(r, pending[k].pid, st);
        pending[k].tid = pending[k].pid = 0;
        if (pid)
            return 1;
    }
    return 0;
}

int stack_of_thread(pid_t pid, pid_t tid, int wait_ms, int (*still)(void *arg), void *arg,
                    nw_buf *out, char *why, size_t whylen)
{
    if (!stack_supported()) {
        snprintf(why, whylen, "stacks are read on x86-64 only");
        return -1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
        explain_refusal(errno, pid, why, whylen);
        return -1;
    }
    if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0) {
        snprintf(why, whylen, "ptrace interrupt: %s", strerror(errno));
        detach(tid, 0);
        return -1;
    }
    int st = 0;
    pid_t r = 0;
    struct timespec ms = {0, 1000000};
    int64_t until = nw_now_ms() + wait_ms;
    while ((r = waitpid(tid, &st, WNOHANG | __WALL)) == 0 && nw_now_ms() < until)
        nanosleep(&ms, NULL);
    if (r == 0) {
        /* In the kernel and not coming out (disk, NFS): it stops later, and
         * stack_reap lets it go then. */
        for (int k = 0; k < MAX_PENDING; k++)
            if (!pending[k].tid) {
                pending[k].tid = tid;
                pending[k].pid = pid;
                break;
            }
        snprintf(why, whylen, "thread %d did not stop within %d ms (in the kernel?)", (int)tid,
                 wait_ms);
        return -1;
    }
    if (r != tid || !WIFSTOPPED(st)) {
        keep_exit(r, pid, st);
        snprintf(why, whylen, "thread %d went away", (int)tid);
        return -1;
    }
    /* Stopped only for its registers and a copy of its stack (a
     * millisecond): the unwinding and the symbols, which can take 100 ms
     * the first time, come after it goes on. */
    int sig = stop_signal(st);
    if (still && !still(arg)) {
        detach(tid, sig);
        return 1;
    }
    struct user_regs_struct g;
    if (ptrace(PTRACE_GETREGS, tid, NULL, &g) < 0) {
        snprintf(why, whylen, "ptrace getregs: %s", strerror(errno));
        detach(tid, sig);
        return -1;
    }
    unwind_arg ua = {.pid = pid, .tid = tid};
    Dwarf_Word regs[17] = {g.rax, g.rdx, g.rcx, g.rbx, g.rsi, g.rdi, g.rbp, g.rsp, g.r8,
                           g.r9,  g.r10, g.r11, g.r12, g.r13, g.r14, g.r15, g.rip};
    memcpy(ua.regs, regs, sizeof regs);
    unsigned char *copy = malloc(STACK_COPY);
    if (copy) {
        /* from below the red zone up to the end of the mapping: a partial
         * read stops at the first page that is not there */
        ua.stack_lo = g.rsp > 128 ? g.rsp - 128 : 0;
        struct iovec local = {.iov_base = copy, .iov_len = STACK_COPY};
        struct iovec remote = {.iov_base = (void *)(uintptr_t)ua.stack_lo, .iov_len = STACK_COPY};
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n > 0) {
            ua.stack = copy;
            ua.stack_len = (size_t)n;
        }
    }
    detach(tid, sig);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_debug("thread %d of pid %d stopped for %lld us, %zu bytes of stack copied", (int)tid,
              (int)pid,
              (long long)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000),
              ua.stack_len);
    int rc = unwind(&ua, out, why, whylen);
    free(copy);
    return rc;
}

/* ---- a context of this process ---------------------------------------------------------- */

int stack_of_context(const void *ucontext, nw_buf *out, char *why, size_t whylen)
{
    if (!stack_supported()) {
        snprintf(why, whylen, "stacks are read on x86-64 only");
        return -1;
    }
    const greg_t *g = ((const ucontext_t *)ucontext)->uc_mcontext.gregs;
    unwind_arg ua = {.pid = getpid(), .tid = getpid()};
    Dwarf_Word regs[17] = {g[REG_RAX], g[REG_RDX], g[REG_RCX], g[REG_RBX], g[REG_RSI], g[REG_RDI],
                           g[REG_RBP], g[REG_RSP], g[REG_R8],  g[REG_R9],  g[REG_R10], g[REG_R11],
                           g[REG_R12], g[REG_R13], g[REG_R14], g[REG_R15], g[REG_RIP]};
    memcpy(ua.regs, regs, sizeof regs);
    return unwind(&ua, out, why, whylen);
}

#endif
