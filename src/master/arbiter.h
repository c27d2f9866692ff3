/* arbiter.h - the master: forks workers, keeps them alive, kills the stuck
 * ones, answers signals. Never runs app code. */
#ifndef NW_ARBITER_H
#define NW_ARBITER_H

#include "listener.h"
#include "settings.h"
#include "worker.h"

/* What the master was started with, to read the configuration again. */
typedef struct nw_cmdline {
    int argc;
    char **argv;
    const char *env_args;  /* NARWHAL_CMD_ARGS */
    char *exe;             /* the binary, re-executed on USR2 */
    const char *start_dir; /* the directory it was started in (absolute):
                              where argv's relative paths are read from on
                              HUP and USR2, whatever chdir says */
    pid_t upgraded_from;   /* USR2: the old master, still running; 0 = none */
    char *pidfile;         /* the pidfile this master wrote (<pidfile>.2 while
                              upgraded_from runs; renamed when it exits) */
} nw_cmdline;

/* Runs the master until it stops. Takes the listeners (closes them, and
 * unlinks unix sockets, on exit; the array itself stays the caller's to
 * free). s stays the caller's. cmd->pidfile may be replaced (an upgraded
 * master renaming <pidfile>.2): the caller frees whatever it holds on return.
 * Returns the process exit code: 0 after a requested stop, 1 when workers
 * could not be kept booting. */
int arbiter_run(nw_settings *s, nw_cmdline *cmd, nw_listener *ls, int nls, nw_identity id);

#endif
