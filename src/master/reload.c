/* reload.c - changing a running master: HUP and --reload (a new
 * generation of workers with the configuration read again) and USR2 (a new
 * master from the binary on disk, inheriting the sockets). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "arbiter_priv.h"
#include "log.h"
#include "rlimits.h"
#include "signals.h"
#include "statsd.h"
#include "util.h"

void arbiter_free_settings(arbiter *a, nw_settings *s)
{
    if (s && s != a->s_main) {
        settings_free(s);
        free(s);
    }
}

/* Logs, environment and directory for settings s (at start they are set up
 * by main; on reload here). */
void arbiter_apply_settings(nw_settings *s)
{
    if (log_configure(s->errorlog, s->accesslog, s->spew ? NW_LOG_DEBUG : s->loglevel,
                      s->access_log_format) < 0)
        log_error("reload: the logs could not be opened as configured; the old ones stay");
    if (log_slowlog_open(s->slowlog) < 0)
        log_error("reload: the slowlog %s could not be opened; the old one stays", s->slowlog);
    statsd_open(s->statsd_host, s->statsd_prefix);
    settings_apply_env(s, stderr);
    if (s->chdir && chdir(s->chdir) < 0)
        log_error("chdir %s: %s", s->chdir, strerror(errno));
}

/* HUP (or --reload): read the configuration again, start a new generation of
 * workers with it, and retire the old generation once the new one is ready.
 * Until then the old workers keep serving; if the new configuration does not
 * load, or its workers cannot boot, they simply go on. */
void arbiter_reload(arbiter *a, const char *why)
{
    if (a->state != ARBITER_RUNNING)
        return;
    if (a->s_old) {
        /* The files may have changed again since this reload read them. */
        log_info("%s: a reload is under way; another follows when it is done", why);
        a->reload_again = 1;
        return;
    }
    nw_settings *ns = nw_xcalloc(1, sizeof *ns);
    char *msg = NULL;
    size_t msglen = 0;
    FILE *err = open_memstream(&msg, &msglen);
    FILE *out = fopen("/dev/null", "w");
    /* Relative paths in argv name files from where the master started. */
    int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (here < 0 || chdir(a->cmd->start_dir) < 0)
        log_warning("%s: cannot read the configuration from %s: %s", why, a->cmd->start_dir,
                    strerror(errno));
    int rc = settings_load(ns, a->cmd->argc, a->cmd->argv, a->cmd->env_args, out ? out : err, err);
    if (rc == 0)
        rc = settings_finish(ns, err);
    if (here >= 0) {
        if (fchdir(here) < 0)
            log_error("%s: cannot return to the working directory: %s", why, strerror(errno));
        close(here);
    }
    nw_make_absolute(&ns->config, a->cmd->start_dir);
    nw_make_absolute(&ns->chdir, a->cmd->start_dir);
    nw_make_absolute(&ns->chroot, a->cmd->start_dir);
    if (out)
        fclose(out);
    fclose(err);
    if (rc != 0) {
        log_error("%s: the configuration does not load; the current workers go on serving: %s", why,
                  msg ? msg : "");
        free(msg);
        settings_free(ns);
        free(ns);
        return;
    }
    free(msg);
    /* What a running master cannot change is named, never taken silently. */
    const char *name;
    for (size_t pos = 0; (name = settings_next_restart_change(a->s, ns, &pos));)
        log_warning("%s: %s changed; that takes a restart (or USR2)", why, name);
    if (ns->worker_class == NW_CLASS_THREADS && ns->threads > a->sb.per_slot) {
        log_error("%s: threads = %d needs a restart (this master was started for at most %d); "
                  "the current workers go on serving",
                  why, ns->threads, a->sb.per_slot);
        settings_free(ns);
        free(ns);
        return;
    }
    if (ns->preload_app && app_preloaded())
        log_warning("%s: preload_app: the app stays as the master loaded it at start; restart "
                    "(or USR2) to load new code",
                    why);
    else if (ns->preload_app)
        log_warning("%s: preload_app takes effect at the next start; until then each worker "
                    "loads the app itself",
                    why);
    if (ns->workers > a->sb.nslots / 2)
        ns->workers = a->sb.nslots / 2;
    a->reload_want = pm_reload_size(a, ns);
    arbiter_apply_settings(ns);
    rlimits_warn(ns, a->nls);
    a->s_old = a->s;
    a->s = ns;
    a->generation++;
    scoreboard_count_reload(&a->sb);
    a->target = ns->workers;
    a->boot_failures = 0;
    a->next_spawn_ms = 0;
    int n = ns->process_manager == NW_PM_STATIC ? a->target : a->reload_want;
    log_info("%s: starting %d new worker%s (generation %u)", why, n, n == 1 ? "" : "s",
             a->generation);
}

/* USR2: start a new master from the (possibly new) binary and hand it the
 * listening sockets. Both serve until the operator sends WINCH (and TERM)
 * to this one; the sockets never close, so no connection is refused. */
void arbiter_upgrade(arbiter *a)
{
    if (a->new_master > 0) {
        log_warning("SIGUSR2: new master %d is already running; ignoring", (int)a->new_master);
        return;
    }
    if (a->cmd->upgraded_from) {
        log_warning("SIGUSR2: this master is itself still being upgraded to; ignoring");
        return;
    }
    /* every listener's fd, however many (a fixed buffer cut them short) */
    nw_buf fds = NW_BUF_INIT;
    char parent[16];
    for (int i = 0; i < a->nls; i++)
        if (a->ls[i].fd >= 0)
            nw_buf_printf(&fds, "%s%d", fds.len ? "," : "", a->ls[i].fd);
    nw_buf_appendc(&fds, 0);
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    pid_t pid = fork();
    if (pid < 0) {
        log_error("SIGUSR2: cannot fork: %s", strerror(errno));
        nw_buf_free(&fds);
        return;
    }
    if (pid == 0) {
        for (int i = 0; i < a->nls; i++)
            if (a->ls[i].fd >= 0)
                nw_set_cloexec(a->ls[i].fd, 0);
        setenv("NARWHAL_FD", (const char *)nw_buf_head(&fds), 1);
        setenv("NARWHAL_PARENT", parent, 1);
        /* the new master reads argv's relative paths from where we started */
        if (chdir(a->cmd->start_dir) < 0)
            log_warning("SIGUSR2: cannot change to %s: %s", a->cmd->start_dir, strerror(errno));
        signals_unblock_all();
        execv(a->cmd->exe, a->cmd->argv);
        log_error("SIGUSR2: cannot exec %s: %s", a->cmd->exe, strerror(errno));
        _exit(127);
    }
    nw_buf_free(&fds);
    a->new_master = pid;
    log_info("SIGUSR2: started new master %d from %s; send WINCH then TERM to this master (%d) "
             "to finish the switch",
             (int)pid, a->cmd->exe, (int)getpid());
}

/* An upgraded master: once the old one is gone, the pidfile is ours. */
void arbiter_check_old_master(arbiter *a)
{
    nw_cmdline *c = a->cmd;
    if (!c->upgraded_from || getppid() == c->upgraded_from)
        return;
    log_info("old master %d has exited", (int)c->upgraded_from);
    c->upgraded_from = 0;
    if (c->pidfile && a->s->pidfile && strcmp(c->pidfile, a->s->pidfile) != 0) {
        if (rename(c->pidfile, a->s->pidfile) < 0) {
            log_error("cannot rename %s to %s: %s", c->pidfile, a->s->pidfile, strerror(errno));
            return;
        }
        free(c->pidfile);
        c->pidfile = nw_xstrdup(a->s->pidfile);
        log_info("pidfile is now %s", c->pidfile);
    }
}

/* The new generation failed to boot: keep the old one. */
void arbiter_reload_abort(arbiter *a)
{
    log_error("reload failed: the new workers cannot boot; the previous ones go on serving");
    for (int i = 0; i < a->sb.nslots; i++)
        if (a->info[i].pid > 0 && a->info[i].generation == a->generation && !a->info[i].retiring)
            arbiter_retire(a, i);
    nw_settings *bad = a->s;
    a->s = a->s_old;
    a->s_old = NULL;
    arbiter_free_settings(a, bad);
    arbiter_apply_settings(a->s);
    a->generation++;
    for (int i = 0; i < a->sb.nslots; i++)
        if (a->info[i].pid > 0 && !a->info[i].retiring)
            a->info[i].generation = a->generation;
    a->target = a->s->workers;
    a->boot_failures = 0;
}

/* The new generation is ready: retire the old one. */
void arbiter_reload_finish(arbiter *a)
{
    int n = 0;
    for (int i = 0; i < a->sb.nslots; i++)
        if (a->info[i].pid > 0 && a->info[i].generation != a->generation && !a->info[i].retiring) {
            arbiter_retire(a, i);
            n++;
        }
    arbiter_free_settings(a, a->s_old);
    a->s_old = NULL;
    log_info("reload done: generation %u serving; %d old worker%s finishing", a->generation, n,
             n == 1 ? "" : "s");
}
