/* orphans.h - processes the master adopts. The master is a child
 * subreaper: a process one of its children leaves behind (an --exec
 * program that daemonizes, a helper an app started from a worker that
 * exited) becomes its child instead of init's. Such an orphan is told to
 * stop (SIGTERM, then SIGKILL after ORPHAN_KILL_MS) and reaped, with a log
 * line, so that nothing the master started outlives it or holds its port
 * unseen. */
#ifndef NW_ORPHANS_H
#define NW_ORPHANS_H

#include <sys/types.h>

#define ORPHAN_KILL_MS 5000

/* Makes this process a child subreaper. 0, or -1 (logged). */
int orphans_adopt(void);

/* Is pid one of the master's own children (a worker, an --exec copy, a
 * new master)? */
typedef int (*orphans_known_fn)(pid_t pid, void *arg);

/* Finds children that known() does not claim and stops them: SIGTERM the
 * first time one is seen, SIGKILL once it has had ORPHAN_KILL_MS. Cheap
 * enough to call on every turn of the master's loop: it looks once a
 * second, every 200 ms while it is stopping some, and right after a child
 * was reaped. */
void orphans_check(orphans_known_fn known, void *arg);

/* A child was reaped: the next orphans_check looks at once (its own
 * children are the master's now). One the master did not start itself
 * (ours = 0) is logged and forgotten. */
void orphans_reaped(pid_t pid, int wstatus, int ours);

/* At the master's exit: SIGKILLs every child that known() does not claim. */
void orphans_kill_all(orphans_known_fn known, void *arg);

#endif
