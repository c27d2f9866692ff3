/* cgi_proc.c - a worker's CGI processes (cgi_proc.h). */
#include "cgi_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "narwhal.h"
#include "util.h"
#include "wait.h"

/* The running programs of this worker, for cgi_max_running and a graceful
 * stop; p->pid and p->killed are read under the lock too. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cgi_proc *running_list;
static int nrunning;

void cgi_proc_init(cgi_proc *p, const char *prog)
{
    memset(p, 0, sizeof *p);
    p->prog = prog;
    p->pid = -1;
    p->pidfd = p->in = p->out = p->err = -1;
}

int cgi_proc_turn(cgi_proc *p, int max)
{
    pthread_mutex_lock(&lock);
    int ok = max <= 0 || nrunning < max;
    if (ok) {
        nrunning++;
        p->prev = NULL;
        p->next = running_list;
        if (running_list)
            running_list->prev = p;
        running_list = p;
        p->listed = 1;
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

int cgi_proc_start(cgi_proc *p, char **envp)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    int rc = 0;
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        rc = errno;
        goto out;
    }
    /* RFC 3875 7.2: the current directory is the program's */
    char *dir = nw_xstrdup(p->prog);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    if (slash)
        posix_spawn_file_actions_addchdir_np(&fa, dir);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)p->prog, NULL};
    pid_t pid = -1;
    rc = posix_spawn(&pid, p->prog, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(dir);
    if (rc)
        goto out;
    pthread_mutex_lock(&lock); /* cgi_proc_kill_all reads it */
    p->pid = pid;
    pthread_mutex_unlock(&lock);
    p->pidfd = pidfd_open(pid, 0);
    p->in = pin[1], pin[1] = -1;
    p->out = pout[0], pout[0] = -1;
    p->err = perr[0], perr[0] = -1;
    nw_set_nonblock(p->in);
    nw_set_nonblock(p->out);
    nw_set_nonblock(p->err);
out:
    for (int i = 0; i < 2; i++) {
        nw_close_fd(&pin[i]);
        nw_close_fd(&pout[i]);
        nw_close_fd(&perr[i]);
    }
    return rc;
}

void cgi_proc_kill(cgi_proc *p)
{
    pthread_mutex_lock(&lock);
    if (p->pid > 0 && !p->killed) {
        kill(-p->pid, SIGKILL);
        __atomic_store_n(&p->killed, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&lock);
}

int cgi_proc_reap(cgi_proc *p, int64_t deadline_ms, int *late)
{
    int st = 0;
    *late = 0;
    if (p->pid <= 0)
        return 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR))
            return st;
        if (r < 0)
            continue;
        if (deadline_ms >= 0 && nw_now_ms() >= deadline_ms) {
            if (cgi_proc_killed(p)) {
                /* not gone within CGI_REAP_MS of SIGKILL (uninterruptible
                 * sleep: NFS, a dying disk): wait on without a deadline,
                 * yielding as before, never blocking a whole async worker */
                log_warning("cgi: pid %d is still not gone %d ms after SIGKILL; waiting on",
                            (int)p->pid, CGI_REAP_MS);
                deadline_ms = -1;
            } else {
                *late = 1;
                cgi_proc_kill(p);
                deadline_ms = nw_now_ms() + CGI_REAP_MS;
            }
        }
        int64_t until = deadline_ms;
        if (p->pidfd < 0) { /* no pidfd: look again in 10 ms */
            int64_t soon = nw_now_ms() + 10;
            until = until < 0 || soon < until ? soon : until;
        }
        wait_fd(p->pidfd, NW_READ, until);
    }
}

void cgi_proc_done(cgi_proc *p)
{
    nw_close_fd(&p->in);
    nw_close_fd(&p->out);
    nw_close_fd(&p->err);
    nw_close_fd(&p->pidfd);
    if (!p->listed)
        return;
    pthread_mutex_lock(&lock);
    p->listed = 0;
    if (p->prev)
        p->prev->next = p->next;
    else
        running_list = p->next;
    if (p->next)
        p->next->prev = p->prev;
    nrunning--;
    pthread_mutex_unlock(&lock);
}

int cgi_proc_running(void)
{
    pthread_mutex_lock(&lock);
    int n = nrunning;
    pthread_mutex_unlock(&lock);
    return n;
}

void cgi_proc_kill_all(const char *why)
{
    pthread_mutex_lock(&lock);
    for (cgi_proc *p = running_list; p; p = p->next)
        if (p->pid > 0 && !p->killed) { /* started, not yet reaped */
            log_warning("cgi: killing %s (pid %d) and its process group: %s", p->prog, (int)p->pid,
                        why);
            kill(-p->pid, SIGKILL);
            __atomic_store_n(&p->killed, 1, __ATOMIC_RELAXED);
        }
    pthread_mutex_unlock(&lock);
}
