/* rlimits.c - a worker's resource limits and resident memory. */
#include "rlimits.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

/* Files a worker holds besides its connections: listeners aside, the logs,
 * epoll, libev's eventfd and signalfd, the statm fd, stdio, and some room. */
#define OWN_FILES 16

/* Sets limit res to value (soft), raising the hard limit when it is below
 * (root only) and lowering it to value when lower_hard (a limit the app must
 * not lift again). */
static int set_limit(int res, rlim_t value, int lower_hard, const char *name, char *err,
                     size_t errlen)
{
    struct rlimit rl;
    if (getrlimit(res, &rl) < 0) {
        snprintf(err, errlen, "%s: cannot read the limit: %s", name, strerror(errno));
        return -1;
    }
    rlim_t hard = rl.rlim_max;
    if (hard != RLIM_INFINITY && value > hard)
        hard = value;
    else if (lower_hard)
        hard = value;
    struct rlimit want = {.rlim_cur = value, .rlim_max = hard};
    if (setrlimit(res, &want) < 0) {
        if (rl.rlim_max != RLIM_INFINITY && value > rl.rlim_max)
            snprintf(err, errlen, "%s: cannot raise the limit to %llu past its hard limit %llu: %s",
                     name, (unsigned long long)value, (unsigned long long)rl.rlim_max,
                     strerror(errno));
        else
            snprintf(err, errlen, "%s: cannot set the limit to %llu: %s", name,
                     (unsigned long long)value, strerror(errno));
        return -1;
    }
    return 0;
}

int rlimits_apply(const nw_settings *s, char *err, size_t errlen)
{
    if (s->rlimit_nofile > 0 &&
        set_limit(RLIMIT_NOFILE, (rlim_t)s->rlimit_nofile, 0, "rlimit_nofile", err, errlen) < 0)
        return -1;
    if (s->rlimit_core >= 0 &&
        set_limit(RLIMIT_CORE, (rlim_t)s->rlimit_core << 20, 0, "rlimit_core", err, errlen) < 0)
        return -1;
    if (s->worker_memory_hard_limit > 0 &&
        set_limit(RLIMIT_AS, (rlim_t)s->worker_memory_hard_limit << 20, 1,
                  "worker_memory_hard_limit", err, errlen) < 0)
        return -1;
    return 0;
}

void rlimits_warn(const nw_settings *s, int nls)
{
    if (s->exec)
        return;
    rlim_t files;
    struct rlimit rl;
    if (s->rlimit_nofile > 0)
        files = (rlim_t)s->rlimit_nofile;
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        files = rl.rlim_cur;
    else
        return;
    rlim_t need = (rlim_t)s->worker_connections + (rlim_t)nls + OWN_FILES;
    if (files == RLIM_INFINITY || need <= files)
        return;
    log_warning("worker_connections = %d does not fit in the workers' open files limit of %llu "
                "(%s): past about %llu connections a worker cannot accept and pauses; raise "
                "rlimit_nofile or lower worker_connections",
                s->worker_connections, (unsigned long long)files,
                s->rlimit_nofile > 0 ? "rlimit_nofile" : "inherited, ulimit -n",
                files > (rlim_t)nls + OWN_FILES ? (unsigned long long)(files - nls - OWN_FILES)
                                                : 0ULL);
}

int rlimits_rss_open(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        log_error("max_worker_memory: cannot open /proc/self/statm: %s", strerror(errno));
    return fd;
}

long long rlimits_rss_kib(int fd)
{
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    /* "size resident shared text lib data dt", in pages */
    char *p = buf, *end;
    strtoll(p, &end, 10);
    if (end == p)
        return -1;
    p = end;
    long long pages = strtoll(p, &end, 10);
    if (end == p || pages < 0)
        return -1;
    return pages * (sysconf(_SC_PAGESIZE) / 1024);
}
