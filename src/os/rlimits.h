/* rlimits.h - what a worker may use: its resource limits (rlimit_nofile,
 * rlimit_core, worker_memory_hard_limit), set in the worker before the app
 * loads, and its resident memory, read for max_worker_memory. */
#ifndef NW_RLIMITS_H
#define NW_RLIMITS_H

#include <stddef.h>

#include "settings.h"

/* Sets this process's limits from s (those left at their defaults are left
 * as inherited). Called in a freshly forked worker or --exec child, before
 * it drops privileges (only root may raise a hard limit). 0, or -1 with the
 * reason in err (names the setting). */
int rlimits_apply(const nw_settings *s, char *err, size_t errlen);

/* At start and on reload: a warning when worker_connections cannot fit the
 * open files limit the workers will have (nls listeners and a few files of
 * narwhal's own beside them). */
void rlimits_warn(const nw_settings *s, int nls);

/* An fd to read this process's resident memory from (/proc/self/statm), or
 * -1 (logged). Opened by the process itself: /proc/self is who opens it. */
int rlimits_rss_open(void);
/* The resident set size in KiB read through fd, -1 when it cannot be read. */
long long rlimits_rss_kib(int fd);

#endif
