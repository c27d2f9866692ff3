/* orphans.c - what the master adopts as a child subreaper (orphans.h). */
#include "orphans.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define MAX_ORPHANS 64
/* Children looked at, at most: every worker the master can run (1024) and
 * what it may have adopted. */
#define MAX_CHILDREN 4096

typedef struct orphan {
    pid_t pid;
    int64_t term_ms; /* when SIGTERM went */
    int killed;      /* SIGKILL went */
} orphan;

static orphan orphans[MAX_ORPHANS];
static int norphans;
static int64_t last_check_ms;
static int dirty = 1; /* a child was reaped: look at once */

int orphans_adopt(void)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        log_error("cannot become a child subreaper: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* The live children of this (single-threaded) process, at most max. */
static int children(pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "re");
    int n = 0;
    if (f) {
        long v;
        while (n < max && fscanf(f, "%ld", &v) == 1)
            out[n++] = (pid_t)v;
        fclose(f);
        return n;
    }
    /* A kernel without CONFIG_PROC_CHILDREN: every process's parent. */
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    pid_t self = getpid();
    while (n < max && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        long pid = atol(e->d_name);
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *sf = fopen(path, "re");
        if (!sf)
            continue;
        char line[512];
        size_t len = fread(line, 1, sizeof line - 1, sf);
        fclose(sf);
        line[len] = 0;
        /* "pid (comm) state ppid ...": comm may hold spaces and ')' */
        char *p = strrchr(line, ')');
        int ppid;
        if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == (int)self)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

static const char *comm(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f || !fgets(buf, (int)len, f))
        snprintf(buf, len, "?");
    if (f)
        fclose(f);
    buf[strcspn(buf, "\n")] = 0;
    return buf;
}

static orphan *find(pid_t pid)
{
    for (int i = 0; i < norphans; i++)
        if (orphans[i].pid == pid)
            return &orphans[i];
    return NULL;
}

void orphans_check(orphans_known_fn known, void *arg)
{
    int64_t now = nw_now_ms();
    if (!dirty && now - last_check_ms < (norphans ? 200 : 1000))
        return;
    dirty = 0;
    last_check_ms = now;
    static pid_t kids[MAX_CHILDREN];
    int n = children(kids, MAX_CHILDREN);
    int unlisted = 0;
    for (int i = 0; i < n; i++) {
        if (known(kids[i], arg))
            continue;
        orphan *o = find(kids[i]);
        char name[64];
        if (!o && norphans == MAX_ORPHANS) {
            /* no room to follow its SIGTERM: no grace, and one line for all */
            kill(kids[i], SIGKILL);
            unlisted++;
        } else if (!o) {
            log_warning("adopted pid %d (%s), left running by a process this master started "
                        "(an --exec program must stay in the foreground); stopping it",
                        (int)kids[i], comm(kids[i], name, sizeof name));
            kill(kids[i], SIGTERM);
            orphans[norphans++] = (orphan){.pid = kids[i], .term_ms = now};
        } else if (!o->killed && now - o->term_ms >= ORPHAN_KILL_MS) {
            log_warning("adopted pid %d (%s) is still running %ds after SIGTERM; killing it",
                        (int)o->pid, comm(o->pid, name, sizeof name), ORPHAN_KILL_MS / 1000);
            kill(o->pid, SIGKILL);
            o->killed = 1;
        }
    }
    if (unlisted)
        log_warning("killed %d more adopted processes at once (%d are already being stopped)",
                    unlisted, MAX_ORPHANS);
}

void orphans_reaped(pid_t pid, int st, int ours)
{
    dirty = 1; /* what it leaves behind is ours now: look at once */
    if (ours)
        return;
    orphan *o = find(pid);
    if (o)
        *o = orphans[--norphans];
    log_info("adopted pid %d exited (%s %d)", (int)pid, WIFSIGNALED(st) ? "signal" : "status",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

void orphans_kill_all(orphans_known_fn known, void *arg)
{
    static pid_t kids[MAX_CHILDREN];
    int n = children(kids, MAX_CHILDREN);
    for (int i = 0; i < n; i++)
        if (!known(kids[i], arg)) {
            char name[64];
            log_warning("killing adopted pid %d (%s) as the master exits", (int)kids[i],
                        comm(kids[i], name, sizeof name));
            kill(kids[i], SIGKILL);
        }
}
