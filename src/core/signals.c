#include "signals.h"

const nw_signal_def nw_signal_table[] = {
    {SIGTERM, "TERM", SIGACT_GRACEFUL_STOP,
     "graceful stop: workers stop accepting, finish in-flight requests within "
     "graceful_timeout, then are killed; the master exits"},
    {SIGINT, "INT", SIGACT_QUICK_STOP, "quick stop: workers are told to exit now"},
    {SIGQUIT, "QUIT", SIGACT_QUICK_STOP, "quick stop (as INT)"},
    {SIGHUP, "HUP", SIGACT_RELOAD,
     "reload: read the config again, reopen the logs, start new workers (with the app loaded "
     "anew unless preload_app), then gracefully stop the old ones; a config that does not load "
     "or workers that cannot boot leave the old workers serving"},
    {SIGTTIN, "TTIN", SIGACT_INCREMENT, "one worker more"},
    {SIGTTOU, "TTOU", SIGACT_DECREMENT, "one worker fewer (never fewer than one)"},
    {SIGUSR1, "USR1", SIGACT_REOPEN_LOGS,
     "reopen the error and access logs (logrotate), in the master and every worker"},
    {SIGUSR2, "USR2", SIGACT_UPGRADE,
     "upgrade: re-exec the narwhal binary as a new master that inherits the listening sockets "
     "(pidfile <pidfile>.2 until this master exits); both serve until WINCH and TERM here"},
    {SIGWINCH, "WINCH", SIGACT_STOP_WORKERS,
     "stop the workers gracefully but keep the master (after USR2; HUP brings them back)"},
    {SIGCHLD, "CHLD", SIGACT_REAP, "a worker exited: reap it, log why, replace it"},
};

const int nw_signal_count = (int)(sizeof nw_signal_table / sizeof nw_signal_table[0]);

nw_sigaction signals_master_action(int signo)
{
    for (int i = 0; i < nw_signal_count; i++)
        if (nw_signal_table[i].signo == signo)
            return nw_signal_table[i].master;
    return SIGACT_NONE;
}

void signals_fill(sigset_t *set)
{
    sigemptyset(set);
    for (int i = 0; i < nw_signal_count; i++)
        sigaddset(set, nw_signal_table[i].signo);
}

void signals_default_all(void)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
}

void signals_unblock_all(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}
