/* signals.h - what each signal means to the master.
 *
 * One table, read by the master (which signals to take through its
 * signalfd and what to do) and by --help (the README's table says the
 * same). */
#ifndef NW_SIGNALS_H
#define NW_SIGNALS_H

#include <signal.h>

typedef enum {
    SIGACT_NONE = 0,
    SIGACT_GRACEFUL_STOP, /* TERM */
    SIGACT_QUICK_STOP,    /* INT, QUIT */
    SIGACT_RELOAD,        /* HUP */
    SIGACT_INCREMENT,     /* TTIN */
    SIGACT_DECREMENT,     /* TTOU */
    SIGACT_REOPEN_LOGS,   /* USR1 */
    SIGACT_REAP,          /* CHLD */
    SIGACT_UPGRADE,       /* USR2 */
    SIGACT_STOP_WORKERS,  /* WINCH */
} nw_sigaction;

typedef struct nw_signal_def {
    int signo;
    const char *name;
    nw_sigaction master;
    const char *help; /* what the master does: --help prints it */
} nw_signal_def;

extern const nw_signal_def nw_signal_table[];
extern const int nw_signal_count;

/* The master's action for signo (SIGACT_NONE if not in the table). */
nw_sigaction signals_master_action(int signo);
/* Fills set with every signal in the table. */
void signals_fill(sigset_t *set);
/* In a new child: every signal's disposition back to the default (what a
 * child inherits across exec, and what a worker starts from). */
void signals_default_all(void);
/* ... and none blocked. */
void signals_unblock_all(void);

#endif
