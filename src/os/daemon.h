/* daemon.h - running in the background, and the pidfile that says where.
 *
 * Messages: what runs before the logs are configured (daemon_detach,
 * daemon_check_pidfile) writes to stderr; the rest logs. */
#ifndef NW_DAEMON_H
#define NW_DAEMON_H

#include <sys/types.h>

/* Detaches from the terminal: forks, setsid()s, forks again, and points
 * fds 0 and 1 (and 2, unless the error log writes there) at /dev/null. The
 * launching process never returns from here: it waits for the daemon's word
 * (daemon_ready) and exits 0, or 1 if the daemon ends without giving it, so
 * its exit code means something. In the daemon: 0, with *ready_fd set for
 * daemon_ready. -1 (message on stderr) when the first fork fails; nothing has
 * changed then. */
int daemon_detach(int *ready_fd);

/* Gives the launching process its word (the daemon is up; its pidfile, if
 * any, exists) and closes fd. Nothing for fd < 0 (not daemonized). */
void daemon_ready(int fd);

/* The pid in the pidfile at path: the pid, 0 if the file is absent or holds
 * no pid, -1 if it cannot be read. */
pid_t daemon_read_pidfile(const char *path);

/* Whether the pidfile at path may be (over)written: absent, stale, or
 * naming this process or upgrading_from (USR2: the master being upgraded,
 * which holds it until it exits; 0 = none). -1 with the reason on stderr
 * when it cannot be read or names another running process. */
int daemon_check_pidfile(const char *path, pid_t upgrading_from);

/* Writes getpid() to path through a temporary file renamed over it, so a
 * reader never sees it half-written. The temporary file gets a fresh name
 * (mkstemp: never opened through a symlink) and mode 0644 whatever the
 * umask. 0, or -1 (logged). */
int daemon_write_pidfile(const char *path);

/* Removes path if it still holds this process's pid (an upgraded master
 * may have taken it over). */
void daemon_remove_pidfile(const char *path);

#endif
