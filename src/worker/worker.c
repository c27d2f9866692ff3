/* worker.c - a worker process: drop privileges, load the app, run the loop. */
#include "worker.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "allow.h"
#include "cgi.h"
#include "executor.h"
#include "log.h"
#include "rlimits.h"
#include "signals.h"
#include "statsd.h"
#include "status.h"
#include "util.h"

static nw_worker worker; /* one per process */

static void set_accepting(nw_worker *w, int on)
{
    if (w->accepting == on)
        return;
    for (int i = 0; i < w->nlisteners; i++) {
        if (on)
            ev_io_start(w->loop, &w->accept_w[i]);
        else
            ev_io_stop(w->loop, &w->accept_w[i]);
    }
    w->accepting = on;
}

/* Accept while there is room: under worker_connections and, for the threads
 * class, while a thread is free. A worker whose threads are all busy leaves
 * new connections to its siblings instead of queueing them itself. Under
 * dynamic and ondemand a sync worker does the same while it has a request,
 * or a connection whose first request has not come yet: a connection it
 * queued behind its handler would hide from the process manager, which
 * looks for idle workers and waiting connections (pm.c). */
static void update_accepting(nw_worker *w)
{
    const nw_settings *s = w->s;
    int room = !w->stopping && !w->accept_paused && w->conns.n < s->worker_connections &&
               (s->worker_class != NW_CLASS_THREADS || w->inflight < s->threads) &&
               (s->worker_class != NW_CLASS_SYNC || s->process_manager == NW_PM_STATIC ||
                (w->inflight == 0 && w->conns.fresh == 0));
    set_accepting(w, room);
}

static void maybe_finish(nw_worker *w)
{
    if (w->stopping && w->conns.n == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

/* A graceful stop out of time: the CGI programs still running are killed a
 * second before the master would kill the worker, so their requests end
 * and no program outlives its worker. */
static void on_cgi_stop(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    (void)t;
    cgi_kill_all();
}

static void begin_stop(nw_worker *w, const char *why)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    log_info("worker stopping: %s", why);
    if (w->cgi) {
        int g = w->s->graceful_timeout;
        ev_timer_init(&w->cgi_stop, on_cgi_stop, g > 1 ? g - 1. : 0., 0.);
        ev_timer_start(w->loop, &w->cgi_stop);
    }
    scoreboard_stopping(w->slot);
    set_accepting(w, 0);
    for (int i = 0; i < w->nlisteners; i++) {
        close(w->listeners[i].fd);
        w->listeners[i].fd = -1;
    }
    conn_set_stopping(&w->conns);
    maybe_finish(w);
}

/* ---- the connection core's hooks ------------------------------------------- */

static void on_conn_opened(void *arg)
{
    update_accepting(arg);
}

static void on_conn_closed(void *arg)
{
    update_accepting(arg);
    maybe_finish(arg);
}

static void on_request_begun(void *arg)
{
    nw_worker *w = arg;
    w->inflight++;
    update_accepting(w);
    /* max_requests: the worker stops once the requests in progress are
     * done, so they end their connections (conn.h) */
    if (w->max_requests && w->requests + (uint64_t)w->inflight >= w->max_requests)
        w->conns.last_ones = 1;
}

/* max_worker_memory, after each request and once a second: a worker over
 * it stops as for max_requests, its requests in progress finishing first
 * (uWSGI's reload-on-rss, without killing them). */
static void check_memory(nw_worker *w)
{
    if (w->rss_fd < 0 || w->stopping)
        return;
    long long kib = rlimits_rss_kib(w->rss_fd);
    if (kib < 0 || kib <= (long long)w->s->max_worker_memory * 1024)
        return;
    log_warning("worker %d: RSS %lld MiB is over max_worker_memory (%d MiB); it finishes its "
                "requests and is replaced",
                (int)getpid(), kib / 1024, w->s->max_worker_memory);
    scoreboard_count_memory_replaced();
    begin_stop(w, "max_worker_memory reached");
}

static void on_request_done(void *arg)
{
    nw_worker *w = arg;
    w->inflight--;
    update_accepting(w);
    w->requests++;
    if (w->max_requests && w->requests >= w->max_requests)
        begin_stop(w, "max_requests reached");
    check_memory(w);
}

/* Out of descriptors (or of memory for a socket): the connection stays in
 * the backlog and the listener stays readable, so accepting again at once
 * would spin and log without end. Accepting pauses for a moment instead,
 * as libuv and nginx back off, and the error is logged once a second at
 * most, with a count of the times it was not. */
#define ACCEPT_PAUSE 0.2

static void accept_failed(nw_worker *w, const nw_listener *l, int err)
{
    int64_t now = nw_now_ms();
    if (now - w->accept_err_logged >= 1000) {
        if (w->accept_err_unlogged)
            log_error("cannot accept on %s: %s (%llu more times since the last report)", l->addr,
                      strerror(err), (unsigned long long)w->accept_err_unlogged);
        else
            log_error("cannot accept on %s: %s", l->addr, strerror(err));
        w->accept_err_logged = now;
        w->accept_err_unlogged = 0;
    } else {
        w->accept_err_unlogged++;
    }
    w->accept_paused = 1;
    set_accepting(w, 0);
    ev_timer_set(&w->accept_pause, ACCEPT_PAUSE, 0.);
    ev_timer_start(w->loop, &w->accept_pause);
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    nw_worker *w = t->data;
    (void)loop;
    (void)revents;
    w->accept_paused = 0;
    update_accepting(w);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    nw_worker *w = io->data;
    nw_listener *l = &w->listeners[io - w->accept_w];
    (void)revents;
    /* A sync worker takes one connection per wake-up, so idle siblings get
     * the next ones instead of it queueing them behind a busy handler. */
    if (w->stopping || l->fd < 0)
        return;
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            accept_failed(w, l, errno);
        else if (errno == EINVAL)
            /* The master shut the socket down (a stop, our TERM on its way):
             * it stays readable, so watching it would spin. */
            ev_io_stop(loop, io);
        return;
    }
    /* Not an allowed client: reset before a byte is read (SO_LINGER 0: no
     * TIME_WAIT kept for a peer we refuse). */
    if (!allow_peer((struct sockaddr *)&peer, nw_now_ms())) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
        return;
    }
    scoreboard_count_accept(w->slot);
    conn_start(&w->conns, fd, listener_peer_kind(fd, &peer));
}

static void on_beat(struct ev_loop *loop, ev_timer *t, int revents)
{
    nw_worker *w = t->data;
    (void)loop;
    (void)revents;
    scoreboard_beat(w->slot);
    statsd_flush();
    check_memory(w);
    if (getppid() != w->master_pid)
        begin_stop(w, "the master is gone");
}

static void on_sigterm(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)revents;
    begin_stop(sig->data, "SIGTERM");
}

static void on_sigusr1(struct ev_loop *loop, ev_signal *sig, int revents)
{
    nw_worker *w = sig->data;
    (void)loop;
    (void)revents;
    log_open(w->s->errorlog, w->s->accesslog);
}

/* Quick stop: the handler may be blocked anywhere, so exit from the signal
 * handler itself (_exit is async-signal-safe). */
static void on_quick_stop(int sig)
{
    (void)sig;
    _exit(0);
}

static void boot_fail(const char *msg) __attribute__((noreturn));
static void boot_fail(const char *msg)
{
    log_error("worker failed to boot: %s", msg);
    _exit(WORKER_BOOT_ERROR);
}

/* SIGPIPE: a write to a closed pipe or socket must fail with EPIPE, not
 * kill the worker. A handler that does nothing gives that, like SIG_IGN,
 * but unlike SIG_IGN it is not inherited across exec: a program the app
 * starts gets the default SIGPIPE (NOTES.md, "Signals of the programs an app
 * starts"). Narwhal's own socket writes use MSG_NOSIGNAL anyway. */
static void on_sigpipe(int sig)
{
    (void)sig;
}

/* The master's mask and dispositions are not the worker's: everything back
 * to the default and unblocked, before any app code runs, so that whatever
 * the app starts (from nw_worker_init, from a handler on any thread) begins
 * with a clean mask. The loop's signals (TERM, USR1) are watched before
 * they are unblocked, so one that comes during the boot is not lost. */
static void reset_signals(nw_worker *w)
{
    signals_default_all();
    struct sigaction sa = {.sa_handler = on_quick_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    struct sigaction pipe_sa = {.sa_handler = on_sigpipe, .sa_flags = SA_RESTART};
    sigaction(SIGPIPE, &pipe_sa, NULL);
    ev_signal_init(&w->sigterm, on_sigterm, SIGTERM);
    w->sigterm.data = w;
    ev_signal_start(w->loop, &w->sigterm);
    ev_signal_init(&w->sigusr1, on_sigusr1, SIGUSR1);
    w->sigusr1.data = w;
    ev_signal_start(w->loop, &w->sigusr1);
    signals_unblock_all();
}

void worker_run(const nw_settings *s, nw_listener *ls, int nls, nw_slot *slot, nw_tslot *tslots,
                nw_identity id)
{
    nw_worker *w = &worker;
    memset(w, 0, sizeof *w);
    w->s = s;
    w->listeners = ls;
    w->nlisteners = nls;
    w->slot = slot;
    w->tslots = tslots;
    w->master_pid = getppid();
    w->rss_fd = -1;
    statsd_after_fork();

    w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!w->loop)
        boot_fail("cannot create the event loop");
    reset_signals(w);

    char err[512];
    /* With chroot the app is loaded first, as the workers' user (root kept
     * only as the saved uid), and the jail entered after: the app's file
     * and libraries stay outside it. */
    if (rlimits_apply(s, err, sizeof err) < 0)
        boot_fail(err);
    int loaded = 0;
    if (s->chroot) {
        if (!(s->preload_app && app_preloaded()) && !(s->cgi || s->cgi_root.n)) {
            if (identity_suspend(id, err, sizeof err) < 0)
                boot_fail(err);
            if (app_load(s, &w->app, err, sizeof err) < 0)
                boot_fail(err);
            loaded = 1;
        }
        if (identity_chroot(s->chroot, err, sizeof err) < 0)
            boot_fail(err);
    }
    if (identity_drop(id, err, sizeof err) < 0)
        boot_fail(err);
    if (s->max_worker_memory > 0 && (w->rss_fd = rlimits_rss_open()) < 0)
        boot_fail("max_worker_memory: cannot read the worker's memory use");
    if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(err, sizeof err, "cannot set no_new_privs: %s", strerror(errno));
        boot_fail(err);
    }
    allow_init(&s->allowed_clients);
    /* After the drop: a change of credentials clears the parent-death
     * signal. A master gone before this is caught by the check below. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != w->master_pid)
        boot_fail("the master is gone");

    w->cgi = s->cgi || s->cgi_root.n;
    if (w->cgi) {
        if (cgi_setup(s, err, sizeof err) < 0)
            boot_fail(err);
        w->app.handler = cgi_handle;
        cgi_set_slot(slot);
    } else if (s->preload_app && app_preloaded()) {
        w->app = *app_preloaded();
    } else if (!loaded && app_load(s, &w->app, err, sizeof err) < 0) {
        boot_fail(err);
    }
    if (w->app.init) {
        int rc = w->app.init();
        if (rc != 0) {
            snprintf(err, sizeof err, "nw_worker_init returned %d", rc);
            boot_fail(err);
        }
    }
    /* Each worker its own jitter, or they would all recycle together. */
    srandom((unsigned)getpid() ^ (unsigned)nw_now_ms());
    if (s->max_requests > 0)
        w->max_requests =
            (uint64_t)s->max_requests +
            (s->max_requests_jitter > 0 ? (uint64_t)(random() % (s->max_requests_jitter + 1)) : 0);

    if (executor_init(w->loop, s->worker_class, s->threads, (size_t)s->coroutine_stack_size * 1024,
                      w->tslots) < 0)
        boot_fail("cannot start the executor");
    executor_set_slowlog(s->slowlog_timeout);
    conn_set_init(&w->conns, w->loop, s, w->app.handler,
                  (nw_conn_hooks){.opened = on_conn_opened,
                                  .closed = on_conn_closed,
                                  .request_begun = on_request_begun,
                                  .request_done = on_request_done,
                                  .arg = w});
    w->accept_w = nw_xcalloc((size_t)nls, sizeof *w->accept_w);
    for (int i = 0; i < nls; i++) {
        ev_io_init(&w->accept_w[i], on_accept, ls[i].fd, EV_READ);
        w->accept_w[i].data = w;
    }
    ev_init(&w->accept_pause, on_accept_pause);
    w->accept_pause.data = w;
    ev_timer_init(&w->beat, on_beat, 1., 1.);
    w->beat.data = w;
    ev_timer_start(w->loop, &w->beat);

    status_set_listeners(ls, nls);
    update_accepting(w);
    scoreboard_beat(slot);
    scoreboard_ready(slot, s->worker_class == NW_CLASS_THREADS ? s->threads
                           : s->worker_class == NW_CLASS_ASYNC ? s->worker_connections
                                                               : 1);
    log_info("booting worker with pid %d", (int)getpid());
    if (getppid() != w->master_pid)
        begin_stop(w, "the master is gone");

    ev_run(w->loop, 0);

    if (w->app.fini)
        w->app.fini();
    statsd_flush();
    _exit(0);
}
