/* cgi_proc.h - a worker's CGI processes: each started with its three pipes
 * in a process group of its own, listed while it runs (cgi_max_running,
 * and a graceful stop that kills them all), killed as a group, reaped. The
 * gateway (cgi.c) drives them; this knows no request. Any thread. */
#ifndef NW_CGI_PROC_H
#define NW_CGI_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* How long a killed program gets to be reaped in a yielding wait before
 * cgi_proc_reap blocks in waitpid. */
#define CGI_REAP_MS 5000

typedef struct cgi_proc {
    const char *prog; /* a resolved path (borrowed) */
    pid_t pid;        /* -1 until started */
    int pidfd;        /* its exit, to wait on; -1: none (reaping polls) */
    int in, out, err; /* our ends of its pipes, non-blocking; -1 = closed */
    int killed;       /* SIGKILL went to its group */
    int listed;       /* holds a turn (in the running list) */
    struct cgi_proc *prev, *next;
} cgi_proc;

/* A process not yet started, for prog. */
void cgi_proc_init(cgi_proc *p, const char *prog);

/* Takes a turn among the worker's running programs: 1 when taken (the list
 * then holds p until cgi_proc_done), 0 when max (> 0) already run. */
int cgi_proc_turn(cgi_proc *p, int max);

/* Starts p->prog (posix_spawn: its own process group, its directory, an
 * empty signal mask, every signal at its default, no fd but 0-2: the pipes)
 * with envp. 0, or an errno (nothing started). */
int cgi_proc_start(cgi_proc *p, char **envp);

/* Whether SIGKILL went to p's group (from any thread). */
static inline int cgi_proc_killed(const cgi_proc *p)
{
    return __atomic_load_n(&p->killed, __ATOMIC_RELAXED);
}

/* SIGKILLs p's process group, once; nothing before it started. */
void cgi_proc_kill(cgi_proc *p);

/* Waits for p to exit, until deadline_ms (-1 = none): a wait that yields in
 * a coroutine. Past the deadline its group is killed (*late set) and it
 * gets CGI_REAP_MS more, then waitpid blocks. Returns its wait status. */
int cgi_proc_reap(cgi_proc *p, int64_t deadline_ms, int *late);

/* Gives back its turn (reaped or never started: its pid is no longer one
 * to kill) and closes its fds. */
void cgi_proc_done(cgi_proc *p);

/* Programs started or about to be, not yet done. */
int cgi_proc_running(void);

/* SIGKILLs every running program's group, logging each (why: the reason,
 * for the log line). */
void cgi_proc_kill_all(const char *why);

#endif
