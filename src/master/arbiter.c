/* arbiter.c - the master process.
 *
 * A small state machine (running -> stopping -> stopping fast) driven by
 * one loop: signals arrive through a signalfd (the handlers are the
 * kernel's, they only record), children are reaped, and once a second the
 * scoreboard is read to replace dead workers and kill stuck ones. */
#include "arbiter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "log.h"
#include "statsd.h"
#include "orphans.h"
#include "rlimits.h"
#include "scoreboard.h"
#include "signals.h"
#include "stack.h"
#include "util.h"
#include "watch.h"

#include "arbiter_priv.h"

/* Workers of the current generation that are not on their way out. */
int arbiter_live_workers(const arbiter *a, int ready_only)
{
    int n = 0;
    for (int i = 0; i < a->sb.nslots; i++)
        if (a->info[i].pid > 0 && !a->info[i].retiring && a->info[i].generation == a->generation &&
            (!ready_only || a->info[i].was_ready))
            n++;
    return n;
}

void arbiter_retire(arbiter *a, int i)
{
    a->info[i].retiring = 1;
    a->info[i].retired_ms = nw_now_ms();
    kill(a->info[i].pid, a->info[i].stop_signal);
}

static int any_worker(const arbiter *a)
{
    for (int i = 0; i < a->sb.nslots; i++)
        if (a->info[i].pid > 0)
            return 1;
    return 0;
}

static void signal_workers(arbiter *a, int sig)
{
    for (int i = 0; i < a->sb.nslots; i++)
        if (a->info[i].pid > 0)
            kill(a->info[i].pid, sig);
}

/* The slot of a child the master started, or -1. */
static int slot_of_pid(const arbiter *a, pid_t pid)
{
    for (int i = 0; i < a->sb.nslots; i++)
        if (a->info[i].pid == pid)
            return i;
    return -1;
}

/* The slot of a worker that is gone: its output drained, free again. */
static void free_slot(arbiter *a, int i)
{
    for (int k = 0; k < 2; k++)
        exec_pipe_drain(&a->info[i].out[k], 1);
    scoreboard_release(&a->sb, i);
    a->info[i] = (slot_info){.out = {{.fd = -1}, {.fd = -1}}};
}

static void spawn_after(arbiter *a, int64_t delay);

/* A spawn that failed (no slot, no pipe, no fork) is tried again a second
 * later, not on the next turn: the process manager watches the listeners
 * while it wants a worker, and a waiting connection would make every turn
 * fail and log again at once. */
#define SPAWN_RETRY_MS 1000

int arbiter_spawn(arbiter *a)
{
    int i = scoreboard_claim(&a->sb, -1);
    if (i < 0) {
        log_error("no free scoreboard slot for another worker");
        spawn_after(a, SPAWN_RETRY_MS);
        return -1;
    }
    slot_info *in = &a->info[i];
    *in = (slot_info){
        .spawned_ms = nw_now_ms(), .generation = a->generation, .out = {{.fd = -1}, {.fd = -1}}};
    int fds[2][2] = {{-1, -1}, {-1, -1}};
    if (a->s->exec) {
        for (int k = 0; k < 2; k++) {
            if (pipe2(fds[k], O_CLOEXEC) < 0) {
                log_error("cannot create a pipe for %s: %s", a->s->exec, strerror(errno));
                for (int j = 0; j < k; j++)
                    close(fds[j][0]), close(fds[j][1]);
                scoreboard_release(&a->sb, i);
                spawn_after(a, SPAWN_RETRY_MS);
                return -1;
            }
        }
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot fork a worker: %s", strerror(errno));
        if (a->s->exec)
            for (int k = 0; k < 2; k++)
                close(fds[k][0]), close(fds[k][1]);
        scoreboard_release(&a->sb, i);
        spawn_after(a, SPAWN_RETRY_MS);
        return -1;
    }
    if (pid == 0) {
        close(a->sfd);
        a->sb.slots[i].pid = getpid();
        if (a->s->exec)
            exec_child(a->s, &a->ls[0], a->id, fds[0][1], fds[1][1]);
        worker_run(a->s, a->ls, a->nls, &a->sb.slots[i], scoreboard_tslot(&a->sb, i, 0), a->id);
    }
    a->sb.slots[i].pid = pid;
    in->pid = pid;
    in->exec = a->s->exec != NULL;
    in->stop_signal = a->s->exec ? a->s->exec_stop_signal : SIGTERM;
    if (a->s->exec) {
        for (int k = 0; k < 2; k++) {
            close(fds[k][1]);
            nw_set_nonblock(fds[k][0]);
            in->out[k] =
                (exec_pipe){.fd = fds[k][0], .pid = pid, .level = k ? NW_LOG_WARNING : NW_LOG_INFO};
        }
        log_info("started %s as pid %d", a->s->exec, (int)pid);
    } else {
        log_debug("spawned worker %d", (int)pid);
    }
    return 0;
}

/* Does another master serve on our listening sockets: the new one of a
 * USR2, or the old one while this new master runs? */
static int listeners_shared(const arbiter *a)
{
    return (a->new_master > 0 && kill(a->new_master, 0) == 0) ||
           (a->cmd->upgraded_from > 0 && kill(a->cmd->upgraded_from, 0) == 0);
}

static void begin_stop(arbiter *a, int fast, const char *why)
{
    if (a->state == ARBITER_STOPPING_FAST || (a->state == ARBITER_STOPPING && !fast))
        return;
    log_info("%s: %s", fast ? "quick stop" : "graceful stop", why);
    a->state = fast ? ARBITER_STOPPING_FAST : ARBITER_STOPPING;
    int64_t grace = fast ? 5000 : (int64_t)a->s->graceful_timeout * 1000;
    a->stop_deadline = nw_now_ms() + grace;
    /* fast: a worker of ours exits at once on QUIT, an --exec program is
     * cut off by TERM; else each its graceful stop */
    for (int i = 0; i < a->sb.nslots; i++)
        if (a->info[i].pid > 0)
            kill(a->info[i].pid, !fast             ? a->info[i].stop_signal
                                 : a->info[i].exec ? SIGTERM
                                                   : SIGQUIT);
    /* Stop listening in the master too; workers close theirs as they stop.
     * Closing descriptors alone leaves the socket listening while a worker
     * busy in a handler holds its copy: connections would wait in the
     * backlog until that handler returns (up to graceful_timeout), then be
     * reset. shutdown(2) ends the socket itself, whoever holds it: from now
     * on a connection is refused at once and nginx tries the next upstream
     * (gunicorn #922). Not while another master serves on it (USR2), nor
     * when systemd holds it for the next start (socket activation). */
    int shared = listeners_shared(a);
    for (int i = 0; i < a->nls; i++)
        if (a->ls[i].fd >= 0) {
            if (!shared && !a->ls[i].systemd)
                shutdown(a->ls[i].fd, SHUT_RD);
            close(a->ls[i].fd);
            a->ls[i].fd = -1;
        }
}

static void spawn_after(arbiter *a, int64_t delay)
{
    int64_t at = nw_now_ms() + delay;
    if (a->next_spawn_ms < at)
        a->next_spawn_ms = at;
}

/* A worker died unasked. In a crash storm, respawning waits, longer with
 * each death; never an exit: anyone who finds a crashing URL could stop the
 * server. */
static void crash_backoff(arbiter *a)
{
    int64_t now = nw_now_ms();
    int64_t oldest = a->crashes[a->ncrash % CRASH_STORM];
    a->crashes[a->ncrash++ % CRASH_STORM] = now;
    if (a->ncrash < CRASH_STORM || now - oldest >= CRASH_WINDOW_MS) {
        a->crash_backoff_ms = 0;
        return;
    }
    a->crash_backoff_ms = a->crash_backoff_ms ? a->crash_backoff_ms * 2 : CRASH_BACKOFF_MIN_MS;
    if (a->crash_backoff_ms > CRASH_BACKOFF_MAX_MS)
        a->crash_backoff_ms = CRASH_BACKOFF_MAX_MS;
    spawn_after(a, a->crash_backoff_ms);
    log_warning("%d workers died within %llds: crash storm; respawning in %lld ms (see the "
                "errors above)",
                CRASH_STORM, (long long)((now - oldest + 999) / 1000),
                (long long)a->crash_backoff_ms);
}

/* A worker of the generation in force failed to boot. Before any worker
 * has served, a few in a row stop the master (the configuration or the app
 * is wrong); after, the workers that run go on serving and the master tries
 * again, less and less often. */
static void boot_failure(arbiter *a)
{
    a->boot_failures++;
    int shift = a->boot_failures < 7 ? a->boot_failures : 7;
    int64_t delay = 100LL << shift;
    if (delay > BOOT_BACKOFF_MAX_MS)
        delay = BOOT_BACKOFF_MAX_MS;
    spawn_after(a, delay);
    if (a->boot_failures < MAX_BOOT_FAILURES)
        return;
    const char *what = a->s->exec ? a->s->exec : "workers";
    if (a->served) {
        log_error("%s failed to boot %d times in a row; the running workers go on serving; "
                  "trying again in %lld ms",
                  what, a->boot_failures, (long long)delay);
        return;
    }
    if (a->s->exec)
        log_critical("%s died within %ds of its start %d times in a row; stopping (see its "
                     "output above)",
                     a->s->exec, EXEC_BOOT_MS / 1000, a->boot_failures);
    else
        log_critical("workers failed to boot %d times in a row; stopping (see the errors above)",
                     a->boot_failures);
    a->exit_code = 1;
    begin_stop(a, 0, "workers cannot boot");
}

/* For orphans_check: what the master started itself. */
static int known_child(pid_t pid, void *arg)
{
    const arbiter *a = arg;
    return pid == a->new_master || slot_of_pid(a, pid) >= 0;
}

static void reap(arbiter *a)
{
    int st;
    pid_t pid;
    /* first the exits a slowlog trace's wait took */
    while (stack_reaped(&pid, &st) || (pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == a->new_master) {
            log_error("new master %d exited (%s %d); this master goes on serving", (int)pid,
                      WIFSIGNALED(st) ? "signal" : "status",
                      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            a->new_master = 0;
            continue;
        }
        /* a thread the slowlog seized stopped late: the tracer's status */
        if (WIFSTOPPED(st) && stack_reap(pid, st))
            continue;
        int i = slot_of_pid(a, pid);
        orphans_reaped(pid, st, i >= 0);
        if (i < 0)
            continue;
        nw_slot *slot = &a->sb.slots[i];
        int booting = !a->info[i].was_ready &&
                      (a->info[i].exec ? nw_now_ms() - a->info[i].spawned_ms < EXEC_BOOT_MS
                                       : slot->state == SLOT_BOOTING);
        const char *killed_for = a->info[i].killed_for;
        char during[300] = "";
        for (int t = 0; t < a->sb.per_slot; t++) {
            nw_tslot *ts = scoreboard_tslot(&a->sb, i, t);
            /* the worker's strings: not trusted to be terminated */
            if (__atomic_load_n(&ts->req_start_ms, __ATOMIC_ACQUIRE) > 0) {
                snprintf(during, sizeof during, " while handling %.*s %.*s",
                         (int)strnlen(ts->method, sizeof ts->method), ts->method,
                         (int)strnlen(ts->uri, sizeof ts->uri), ts->uri);
                break;
            }
        }
        if (WIFSIGNALED(st)) {
            int sig = WTERMSIG(st);
            if (killed_for)
                log_error("worker %d killed (%s)", (int)pid, killed_for);
            else if ((a->state != ARBITER_RUNNING || a->info[i].retiring) &&
                     (sig == SIGKILL || sig == SIGTERM || sig == SIGQUIT ||
                      sig == a->info[i].stop_signal))
                log_info("worker %d stopped by %s", (int)pid, nw_signame(sig));
            else
                log_error("worker %d died from %s (signal %d)%s%s", (int)pid, nw_signame(sig), sig,
                          WCOREDUMP(st) ? ", core dumped" : "", during);
        } else {
            int code = WEXITSTATUS(st);
            if (code == 0)
                log_info("worker %d exited", (int)pid);
            else
                log_error("worker %d exited with status %d%s%s", (int)pid, code,
                          code == WORKER_BOOT_ERROR && !a->info[i].exec ? " (boot error)" : "",
                          during);
        }
        scoreboard_count_exit(&a->sb, !killed_for ? (WIFSIGNALED(st)        ? SB_EXIT_SIGNAL
                                                     : WEXITSTATUS(st) != 0 ? SB_EXIT_ERROR
                                                                            : SB_EXIT_NORMAL)
                                      : strcmp(killed_for, "request timeout") == 0
                                          ? SB_EXIT_TIMEOUT
                                          : SB_EXIT_HEARTBEAT);
        int unasked = (WIFSIGNALED(st) || WEXITSTATUS(st) != 0) && !a->info[i].retiring;
        if (unasked && a->state == ARBITER_RUNNING)
            crash_backoff(a);
        int boot_failed = booting && a->state == ARBITER_RUNNING &&
                          (!killed_for || strcmp(killed_for, "boot timeout") == 0) &&
                          !a->info[i].retiring;
        int new_generation = a->s_old && a->info[i].generation == a->generation;
        free_slot(a, i);
        if (boot_failed && new_generation)
            arbiter_reload_abort(a);
        else if (boot_failed)
            boot_failure(a);
    }
}

/* Once a second: note booted workers, kill stuck ones. */
static void check_workers(arbiter *a)
{
    int64_t now = nw_now_ms();
    int stacks = 0; /* logged in this look */
    if (now >= a->next_stats_ms && statsd_enabled()) {
        statsd_gauge("gunicorn.workers", arbiter_live_workers(a, 0));
        statsd_flush();
        a->next_stats_ms = now + 1000;
    }
    int64_t limit = (int64_t)a->s->timeout * 1000;
    for (int i = 0; i < a->sb.nslots; i++) {
        nw_slot *slot = &a->sb.slots[i];
        pid_t pid = a->info[i].pid;
        if (pid <= 0)
            continue;
        int state = __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);
        if (a->info[i].exec && now - a->info[i].spawned_ms >= EXEC_BOOT_MS)
            state = SLOT_READY; /* has survived its start */
        if (state == SLOT_READY && !a->info[i].was_ready) {
            a->info[i].was_ready = 1;
            a->boot_failures = 0;
            a->served = 1;
        }
        /* A retired worker gets graceful_timeout to finish, as on a stop. */
        int64_t grace = (int64_t)a->s->graceful_timeout * 1000;
        if (a->info[i].retiring && !a->info[i].killed_for && a->state == ARBITER_RUNNING &&
            now - a->info[i].retired_ms >= grace) {
            log_warning("worker %d still running %llds after it was retired "
                        "(graceful_timeout); killing it",
                        (int)pid, (long long)((now - a->info[i].retired_ms) / 1000));
            a->info[i].killed_for = "graceful timeout";
            kill(pid, SIGKILL);
            continue;
        }
        /* An --exec program keeps no scoreboard: nothing more to check. */
        if (limit <= 0 || a->info[i].killed_for || a->info[i].exec)
            continue;
        /* Requests get `timeout` to finish inside the worker (their waits are
         * cut off and a 504 goes out); one that is still running a second
         * later is stuck where no wait can reach it: kill the worker. */
        int64_t beat = __atomic_load_n(&slot->heartbeat_ms, __ATOMIC_RELAXED);
        nw_tslot *late = NULL;
        int64_t late_start = 0;
        for (int t = 0; t < a->sb.per_slot; t++) {
            nw_tslot *ts = scoreboard_tslot(&a->sb, i, t);
            int64_t start = __atomic_load_n(&ts->req_start_ms, __ATOMIC_ACQUIRE);
            if (start > 0 && now - start > limit + 1000 && (!late || start < late_start)) {
                late = ts;
                late_start = start;
            }
        }
        if (!late && state == SLOT_BOOTING) {
            /* Loading the app is no request: a large Python app's imports
             * take seconds (more under a sanitizer), whatever `timeout`
             * is. A worker gets BOOT_LIMIT_MS at least to be ready. */
            int64_t boot_limit = limit + 1000 > BOOT_LIMIT_MS ? limit + 1000 : BOOT_LIMIT_MS;
            if (now - beat <= boot_limit)
                continue;
            log_error("worker %d still loading the app after %llds; killing it", (int)pid,
                      (long long)((now - beat) / 1000));
            a->info[i].killed_for = "boot timeout";
        } else if (late) {
            log_error("worker %d timed out after %llds handling %.*s %.*s; killing it", (int)pid,
                      (long long)((now - late_start) / 1000),
                      (int)strnlen(late->method, sizeof late->method), late->method,
                      (int)strnlen(late->uri, sizeof late->uri), late->uri);
            /* where it is stuck: before the kill, so every such line says;
             * a few per look (each stops the master up to a second: many
             * workers late at once, a database gone, must not stall it) */
            if (stacks++ < STACKS_PER_CHECK && arbiter_log_stack(a, i, late, late_start) == 1 &&
                __atomic_load_n(&late->req_start_ms, __ATOMIC_ACQUIRE) != late_start) {
                /* it ended while its stack was read: the kill would hit
                 * the worker's next request */
                log_info("worker %d: the late request ended meanwhile; not killed", (int)pid);
                continue;
            }
            a->info[i].killed_for = "request timeout";
        } else if (now - beat > limit + 1000) {
            nw_tslot *busy = NULL; /* the request it runs, the oldest if several */
            int64_t busy_start = 0;
            for (int t = 0; t < a->sb.per_slot; t++) {
                nw_tslot *ts = scoreboard_tslot(&a->sb, i, t);
                int64_t start = __atomic_load_n(&ts->req_start_ms, __ATOMIC_ACQUIRE);
                if (start > 0 && (!busy || start < busy_start)) {
                    busy = ts;
                    busy_start = start;
                }
            }
            if (busy && a->s->worker_class == NW_CLASS_SYNC)
                continue; /* a sync worker's loop waits for its request */
            /* an async handler that never yields stops the loop's heartbeat
             * before its own `timeout` is up: name it all the same */
            if (busy)
                log_error("worker %d silent for %llds handling %.*s %.*s; killing it", (int)pid,
                          (long long)((now - beat) / 1000),
                          (int)strnlen(busy->method, sizeof busy->method), busy->method,
                          (int)strnlen(busy->uri, sizeof busy->uri), busy->uri);
            else
                log_error("worker %d silent for %llds; killing it", (int)pid,
                          (long long)((now - beat) / 1000));
            if (stacks++ < STACKS_PER_CHECK)
                arbiter_log_stack(a, i, NULL, 0); /* its loop thread: what keeps it silent */
            a->info[i].killed_for = "no heartbeat";
        } else {
            continue;
        }
        kill(pid, SIGKILL);
    }
}

/* The listen queues, for their maxima on the status page: the master
 * looks once a second, as php-fpm's does for its "max listen queue" (a
 * turn of its loop can come every few ms: a unix listener's look is six
 * syscalls); a status page looks too. */
static void sample_queues(arbiter *a)
{
    static int64_t next_ms;
    int64_t now = nw_now_ms();
    if (now < next_ms)
        return;
    next_ms = now + 1000;
    int q[SB_MAX_LISTENERS], n = 0;
    for (; n < a->nls && n < SB_MAX_LISTENERS; n++) {
        int backlog;
        listener_queue(&a->ls[n], &q[n], &backlog);
    }
    scoreboard_note_queues(&a->sb, q, n);
}

static void maintain(arbiter *a)
{
    if (a->state != ARBITER_RUNNING)
        return;
    int static_pm = a->s->process_manager == NW_PM_STATIC;
    /* a reload's new generation: static's is `workers` (TTIN/TTOU move it) */
    int want = a->s_old && !static_pm ? a->reload_want : a->target;
    if (a->s_old && arbiter_live_workers(a, 1) >= want)
        arbiter_reload_finish(a);
    int live = arbiter_live_workers(a, 0);
    while (live > a->target) {
        /* the one idle the longest, else the oldest */
        int i = pm_pick_retiree(a);
        if (i < 0)
            break;
        arbiter_retire(a, i);
        live--;
    }
    pm_maintain(a);
    if (!static_pm && !a->s_old)
        return;
    if (nw_now_ms() < a->next_spawn_ms)
        return;
    while (live < want && arbiter_spawn(a) == 0)
        live++;
}

/* --reload: the app (or the --exec program) and the config of the settings
 * in force, watched again when a reload changed them. */
/* --reload, Python apps: a worker that saw a file of the app's modules
 * change sends the master HUP: taken as a watched file's change, never as
 * an operator's reload (a HUP from a worker without --reload is one). The
 * workers poll once a second, so all of them see one change within
 * CODE_CHANGE_MS of the first report: those later reports are the same
 * change, as are the old workers' during the reload it started. */
#define CODE_CHANGE_MS 1500
static int code_changed(arbiter *a, pid_t pid)
{
    if (!a->s->reload || pid <= 0)
        return 0;
    for (int i = 0; i < a->sb.nslots; i++) {
        if (a->info[i].pid != pid || a->info[i].exec)
            continue;
        int64_t now = nw_now_ms();
        if (a->info[i].generation == a->generation && !a->info[i].retiring &&
            now - a->code_changed_ms >= CODE_CHANGE_MS) {
            if (!a->reload_at)
                snprintf(a->changed, sizeof a->changed, "a module of the app (worker %d)",
                         (int)pid);
            a->reload_at = now + 300;
            a->code_changed_ms = now;
        }
        return 1;
    }
    return 0;
}

/* A Python app's module file, as the worker's sys.path finds it first:
 * in a pythonpath directory, else in chdir (or where narwhal started);
 * "pkg.mod" is pkg/mod.py or pkg/mod/__init__.py. NULL when none exists
 * there (then only the config file is watched). */
static char *python_module_file(const nw_settings *s, const char *start_dir)
{
    char *rel = strndup(s->app, strcspn(s->app, ":"));
    for (char *p = rel; p && *p; p++)
        if (*p == '.')
            *p = '/';
    const char *cwd = s->chdir ? s->chdir : start_dir;
    char *dirs = nw_xstrdup(s->pythonpath ? s->pythonpath : "");
    char *found = NULL, *save = NULL;
    char *d = strtok_r(dirs, ",", &save);
    for (int last = 0; rel && !found && !last; d = strtok_r(NULL, ",", &save)) {
        last = d == NULL; /* after the pythonpath entries: the current directory */
        for (int pkg = 0; pkg < 2 && !found; pkg++) {
            char *f = NULL;
            if (asprintf(&f, "%s/%s%s", d ? d : cwd, rel, pkg ? "/__init__.py" : ".py") < 0)
                break;
            nw_make_absolute(&f, cwd);
            if (access(f, R_OK) == 0)
                found = f;
            else
                free(f);
        }
    }
    free(dirs);
    free(rel);
    return found;
}

/* --reload: the app (or --exec program) and the config of the settings in
 * force, once per settings object (at start, after a reload). A relative
 * app path is taken from where the workers load it: chdir, or where
 * narwhal started; not through getcwd(), which would resolve the release
 * symlink the watch must follow. */
static void watch_files(arbiter *a)
{
    if (a->watched == a->s)
        return;
    a->watched = a->s;
    char *path = NULL, *symbol = NULL;
    if (a->s->app && nw_app_spec_kind(a->s->app) == NW_APP_PYTHON)
        path = python_module_file(a->s, a->cmd->start_dir);
    else if (a->s->app)
        nw_split_app_spec(a->s->app, &path, &symbol);
    else if (a->s->exec) /* found in PATH as the child will find it */
        path = strchr(a->s->exec, '/') ? nw_xstrdup(a->s->exec) : nw_find_in_path(a->s->exec);
    else if (a->s->cgi)
        path = nw_xstrdup(a->s->cgi);
    nw_make_absolute(&path, a->s->chdir ? a->s->chdir : a->cmd->start_dir);
    watch_set(&a->watch, path, a->s->config);
    free(path);
    free(symbol);
}

/* TTIN/TTOU: static runs `workers`; dynamic and ondemand run at most. */
static void log_ttin_ttou(const arbiter *a, const char *sig)
{
    if (a->s->process_manager == NW_PM_STATIC)
        log_info("%s: %d workers", sig, a->target);
    else
        log_info("%s: workers = %d, the most process_manager %s runs (%d running)", sig,
                 a->target, settings_process_manager_name(a->s->process_manager),
                 arbiter_live_workers(a, 0));
}

static void handle_signal(arbiter *a, int sig)
{
    switch (signals_master_action(sig)) {
    case SIGACT_GRACEFUL_STOP:
        begin_stop(a, 0, "SIGTERM");
        break;
    case SIGACT_QUICK_STOP:
        begin_stop(a, 1, nw_signame(sig));
        break;
    case SIGACT_INCREMENT:
        /* Half the slots at most, so that a reload's new generation
         * always fits beside the old one. */
        if (a->target < a->sb.nslots / 2) {
            a->target++;
            log_ttin_ttou(a, "SIGTTIN");
        } else {
            log_warning("SIGTTIN: refused: %d workers is the most this master runs (half of "
                        "its %d worker slots, so that a reload fits)",
                        a->target, a->sb.nslots);
        }
        break;
    case SIGACT_DECREMENT:
        if (a->target > 1) {
            a->target--;
            log_ttin_ttou(a, "SIGTTOU");
        }
        break;
    case SIGACT_REOPEN_LOGS:
        log_open(a->s->errorlog, a->s->accesslog);
        log_info("SIGUSR1: logs reopened");
        signal_workers(a, SIGUSR1);
        break;
    case SIGACT_REAP:
        reap(a);
        break;
    case SIGACT_RELOAD:
        arbiter_reload(a, "SIGHUP");
        break;
    case SIGACT_UPGRADE:
        arbiter_upgrade(a);
        break;
    case SIGACT_STOP_WORKERS:
        if (a->state == ARBITER_RUNNING) {
            log_info("SIGWINCH: stopping the workers gracefully; the master stays (HUP starts "
                     "them again)");
            a->target = 0;
        }
        break;
    case SIGACT_NONE:
        break;
    }
}

int arbiter_run(nw_settings *s, nw_cmdline *cmd, nw_listener *ls, int nls, nw_identity id)
{
    arbiter a = {.s = s,
                 .s_main = s,
                 .cmd = cmd,
                 .ls = ls,
                 .nls = nls,
                 .id = id,
                 .target = s->workers,
                 .sfd = -1};
    log_set_owner(id.uid, id.gid);
    orphans_adopt();
    sigset_t set;
    signals_fill(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    a.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a.sfd < 0) {
        log_error("cannot create a signalfd: %s", strerror(errno));
        return 1;
    }
    /* Room for TTIN and for two generations side by side during a reload
     * (settings bound workers to NW_MAX_WORKERS, threads to NW_MAX_THREADS). */
    int nslots = s->workers * 4 > 256 ? s->workers * 4 : 256;
    int per_slot = s->threads > 16 ? s->threads : 16;
    if (scoreboard_open(&a.sb, nslots, per_slot) < 0)
        return 1;
    a.info = nw_xcalloc((size_t)nslots, sizeof *a.info);
    for (int i = 0; i < nslots; i++)
        a.info[i].out[0].fd = a.info[i].out[1].fd = -1;
    a.pfd = nw_xcalloc((size_t)nslots * 2 + 2 + (size_t)nls, sizeof *a.pfd);
    a.pfd_pipe = nw_xcalloc((size_t)nslots * 2 + 2 + (size_t)nls, sizeof *a.pfd_pipe);
    a.watch.fd = -1;
    if (s->reload)
        watch_files(&a);
    if (s->exec)
        log_info("narwhal %s master %d: supervising %d cop%s of %s", PACKAGE_VERSION, (int)getpid(),
                 s->workers, s->workers == 1 ? "y" : "ies", s->exec);
    else if (s->process_manager == NW_PM_STATIC)
        log_info("narwhal %s master %d: %d %s worker%s", PACKAGE_VERSION, (int)getpid(), s->workers,
                 settings_worker_class_name(s->worker_class), s->workers == 1 ? "" : "s");
    else
        log_info("narwhal %s master %d: process_manager %s, up to %d %s workers", PACKAGE_VERSION,
                 (int)getpid(), settings_process_manager_name(s->process_manager), s->workers,
                 settings_worker_class_name(s->worker_class));
    rlimits_warn(s, nls);
    for (int i = 0; i < nls; i++)
        log_info("listening at %s", ls[i].addr);

    for (;;) {
        if (s->reload)
            watch_files(&a);
        maintain(&a);
        if (a.state != ARBITER_RUNNING && !any_worker(&a))
            break;
        int64_t now = nw_now_ms();
        int wait_ms = 1000;
        if (a.state == ARBITER_RUNNING && a.next_spawn_ms > now && a.next_spawn_ms - now < wait_ms)
            wait_ms = (int)(a.next_spawn_ms - now);
        if (a.s_old || (a.state == ARBITER_RUNNING && a.s->process_manager == NW_PM_STATIC &&
                         arbiter_live_workers(&a, 1) < a.target))
            wait_ms = wait_ms > 50 ? 50 : wait_ms; /* watch the new workers come up */
        wait_ms = pm_wait_ms(&a, wait_ms);
        if (a.state != ARBITER_RUNNING && !a.killed_all && a.stop_deadline - now < wait_ms)
            wait_ms = a.stop_deadline > now ? (int)(a.stop_deadline - now) : 0;
        struct pollfd *pfd = a.pfd;
        exec_pipe **pp = a.pfd_pipe;
        int npfd = 0;
        pfd[npfd++] = (struct pollfd){.fd = a.sfd, .events = POLLIN};
        if (a.watch.fd >= 0)
            pfd[npfd++] = (struct pollfd){.fd = a.watch.fd, .events = POLLIN};
        if (a.reload_at && a.reload_at - now < wait_ms)
            wait_ms = a.reload_at > now ? (int)(a.reload_at - now) : 0;
        for (int i = 0; a.s->exec && i < a.sb.nslots; i++)
            for (int k = 0; k < 2; k++)
                if (a.info[i].out[k].fd >= 0) {
                    pp[npfd] = &a.info[i].out[k];
                    pfd[npfd++] = (struct pollfd){.fd = a.info[i].out[k].fd, .events = POLLIN};
                }
        /* dynamic, ondemand: a connection that no worker can take wakes the
         * master (pm.c), which is then not woken again until it can spawn */
        int first_ls = npfd, watch_ls = pm_watch_listeners(&a);
        for (int i = 0; watch_ls && i < a.nls; i++)
            if (a.ls[i].fd >= 0) {
                pp[npfd] = NULL;
                pfd[npfd++] = (struct pollfd){.fd = a.ls[i].fd, .events = POLLIN};
            }
        int r = poll(pfd, (nfds_t)npfd, wait_ms);
        if (r < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            break;
        }
        for (int k = 1; r > 0 && k < npfd; k++) {
            if (!pfd[k].revents)
                continue;
            if (k >= first_ls) {
                a.pm_waiting = 1;
            } else if (pfd[k].fd == a.watch.fd) {
                /* Builds write in bursts: reload once they are quiet. */
                if (watch_changed(&a.watch, a.changed, sizeof a.changed))
                    a.reload_at = nw_now_ms() + 300;
            } else {
                exec_pipe_drain(pp[k], 0);
            }
        }
        if (watch_poll(&a.watch, a.changed, sizeof a.changed))
            a.reload_at = nw_now_ms() + 300;
        if (a.reload_again && !a.s_old) {
            a.reload_again = 0;
            arbiter_reload(&a, "queued reload");
        }
        if (a.reload_at && nw_now_ms() >= a.reload_at) {
            char why[300];
            snprintf(why, sizeof why, "reload: %s changed", a.changed);
            a.reload_at = 0;
            arbiter_reload(&a, why);
        }
        struct signalfd_siginfo si;
        while (read(a.sfd, &si, sizeof si) == (ssize_t)sizeof si)
            if (!(si.ssi_signo == SIGHUP && code_changed(&a, (pid_t)si.ssi_pid)))
                handle_signal(&a, (int)si.ssi_signo);
        reap(&a);
        orphans_check(known_child, &a);
        check_workers(&a);
        sample_queues(&a);
        arbiter_slowlog_check(&a);
        arbiter_check_old_master(&a);
        if (a.state != ARBITER_RUNNING && !a.killed_all && nw_now_ms() >= a.stop_deadline) {
            if (any_worker(&a))
                log_warning("graceful timeout passed; killing the remaining workers");
            signal_workers(&a, SIGKILL);
            a.killed_all = 1;
        }
    }
    orphans_kill_all(known_child, &a);
    log_info("master %d exiting", (int)getpid());
    /* Unix socket files stay while another master serves on them: the new
     * one of a USR2, or the old one when a new master is stopped (the
     * rollback of an upgrade). */
    int shared_with = listeners_shared(&a);
    for (int i = 0; i < nls; i++)
        listener_close(&ls[i], !shared_with);
    close(a.sfd);
    watch_close(&a.watch);
    arbiter_free_settings(&a, a.s_old);
    arbiter_free_settings(&a, a.s);
    free(a.info);
    free(a.pfd);
    free(a.pfd_pipe);
    scoreboard_close(&a.sb);
    return a.exit_code;
}
