/* main.c - narwhal's entry point: settings, logs, sockets, daemon, master. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "arbiter.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "settings.h"
#include "util.h"

static int resolve_identity(const nw_settings *s, nw_identity *id)
{
    id->uid = (uid_t)-1;
    id->gid = (gid_t)-1;
    char *end;
    if (s->user) {
        struct passwd *pw = getpwnam(s->user);
        if (pw) {
            id->uid = pw->pw_uid;
            id->gid = pw->pw_gid;
        } else {
            unsigned long v = strtoul(s->user, &end, 10);
            if (!*s->user || *end) {
                fprintf(stderr, "narwhal: user: no such user '%s'\n", s->user);
                return -1;
            }
            id->uid = (uid_t)v;
        }
    }
    if (s->group) {
        struct group *gr = getgrnam(s->group);
        if (gr) {
            id->gid = gr->gr_gid;
        } else {
            unsigned long v = strtoul(s->group, &end, 10);
            if (!*s->group || *end) {
                fprintf(stderr, "narwhal: group: no such group '%s'\n", s->group);
                return -1;
            }
            id->gid = (gid_t)v;
        }
    }
    return 0;
}

/* The binary to re-exec on USR2: argv[0] as found at start, so a binary
 * installed over the old one is the one that runs. */
static char *self_exe(const char *argv0)
{
    if (strchr(argv0, '/')) {
        char *r = realpath(argv0, NULL);
        return r ? r : nw_xstrdup(argv0);
    }
    char *found = nw_find_in_path(argv0);
    if (!found) {
        char buf[4096];
        ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
        found = nw_xstrdup(n > 0 ? (buf[n] = 0, buf) : argv0);
    }
    return found;
}

/* Closes what was bound; a master started by USR2 leaves the unix socket
 * files to the old master, which still serves on them. */
static void close_listeners(nw_listener *ls, int n, int unlink_paths)
{
    for (int i = 0; i < n; i++)
        listener_close(&ls[i], unlink_paths);
    free(ls);
}

int main(int argc, char **argv)
{
    nw_settings s;
    int rc = settings_load(&s, argc, argv, getenv("NARWHAL_CMD_ARGS"), stdout, stderr);
    /* Before any chdir: a relative argv[0] names the binary from here. */
    char *exe = rc == 0 ? self_exe(argv[0]) : NULL;
    if (rc == 2) {
        settings_free(&s);
        return 0;
    }
    if (rc != 0) {
        settings_free(&s);
        return 1;
    }
    if (s.print_config) {
        settings_print(&s, stdout);
        settings_free(&s);
        return 0;
    }
    if (settings_finish(&s, stderr) < 0) {
        settings_free(&s);
        return 1;
    }
    if (!s.app && !s.exec) {
        fprintf(stderr, "narwhal: no app given: usage: narwhal [OPTIONS] path/to/app.so[:symbol] "
                        "(see --help)\n");
        settings_free(&s);
        return 1;
    }
    nw_identity id;
    if (resolve_identity(&s, &id) < 0 || settings_apply_env(&s, stderr) < 0) {
        settings_free(&s);
        return 1;
    }
    umask((mode_t)s.umask);
    if (s.chdir && chdir(s.chdir) < 0) {
        fprintf(stderr, "narwhal: chdir: cannot change to %s: %s\n", s.chdir, strerror(errno));
        settings_free(&s);
        return 1;
    }
    if (s.check_config && s.exec) {
        printf("narwhal: configuration and program %s are valid\n", s.exec);
        settings_free(&s);
        return 0;
    }
    if (s.check_config) {
        nw_app app;
        char err[512];
        if (app_load(s.app, &app, err, sizeof err) < 0) {
            fprintf(stderr, "narwhal: %s\n", err);
            settings_free(&s);
            return 1;
        }
        app_unload(&app);
        printf("narwhal: configuration and app %s are valid\n", s.app);
        settings_free(&s);
        return 0;
    }
    /* USR2: started by the master being upgraded, which keeps serving. */
    const char *parent_env = getenv("NARWHAL_PARENT");
    pid_t parent = parent_env ? (pid_t)strtol(parent_env, NULL, 10) : 0;
    if (parent != getppid())
        parent = 0;
    unsetenv("NARWHAL_PARENT");
    /* The master never loads the app, but a missing file is worth saying
     * now rather than after a storm of workers that cannot boot. */
    if (s.app) {
        char *path, *symbol;
        nw_split_app_spec(s.app, &path, &symbol);
        int missing = access(path, R_OK) < 0;
        if (missing)
            fprintf(stderr, "narwhal: cannot load app %s: %s\n", path, strerror(errno));
        free(path);
        free(symbol);
        if (missing) {
            settings_free(&s);
            return 1;
        }
    }
    if (s.pidfile && daemon_check_pidfile(s.pidfile, parent) < 0) {
        settings_free(&s);
        return 1;
    }
    if (log_configure(s.errorlog, s.accesslog, s.spew ? NW_LOG_DEBUG : s.loglevel,
                      s.access_log_format) < 0) {
        settings_free(&s);
        return 1;
    }
    /* Settings that mean nothing in this combination: said, not ignored. */
    if (s.worker_class == NW_CLASS_ASYNC && s.threads > 1)
        log_warning("threads = %d has no effect with the async worker class: its coroutines "
                    "share one thread per worker; scale with workers and worker_connections",
                    s.threads);
    if (s.worker_class != NW_CLASS_ASYNC && !settings_is_default(&s, "coroutine_stack_size"))
        log_warning("coroutine_stack_size has no effect with the %s worker class",
                    settings_worker_class_name(s.worker_class));
    if (!s.exec && !settings_is_default(&s, "exec_stop_signal"))
        log_warning("exec_stop_signal has no effect without --exec");
    if (s.exec && (s.preload_app || s.spew))
        log_warning("%s has no effect with --exec: narwhal neither loads nor parses for the "
                    "program",
                    s.preload_app ? "preload_app" : "spew");
    if (!s.max_requests && s.max_requests_jitter)
        log_warning("max_requests_jitter has no effect while max_requests is 0");

    int inherited[64];
    int ninherited = listener_inherited(inherited, 64);
    int nls = (int)s.bind.n;
    nw_listener *ls = nw_xcalloc((size_t)nls, sizeof *ls);
    for (int i = 0; i < nls; i++) {
        if (listener_adopt(&ls[i], s.bind.v[i], s.backlog, inherited, ninherited) == 0) {
            log_info("using the inherited socket for %s", s.bind.v[i]);
            continue;
        }
        if (listener_open(&ls[i], s.bind.v[i], s.backlog) < 0 ||
            listener_chown(&ls[i], id.uid, id.gid) < 0) {
            close_listeners(ls, i, !parent);
            settings_free(&s);
            return 1;
        }
    }

    if (s.preload_app && !s.exec) {
        char err[512];
        if (app_preload(s.app, err, sizeof err) < 0) {
            fprintf(stderr, "narwhal: preload_app: %s\n", err);
            close_listeners(ls, nls, !parent);
            settings_free(&s);
            return 1;
        }
    }
    for (int i = 0; i < ninherited; i++)
        if (inherited[i] >= 0) {
            log_warning("closing inherited socket fd %d: no bind address matches it", inherited[i]);
            close(inherited[i]);
        }
    int ready_fd = -1;
    if (s.daemon && !parent && daemon_detach(&ready_fd) < 0)
        return 1;
    /* An upgraded master writes <pidfile>.2 until the old one exits. */
    char *pidfile = NULL;
    if (s.pidfile)
        pidfile = parent ? nw_xasprintf("%s.2", s.pidfile) : nw_xstrdup(s.pidfile);
    if (pidfile && daemon_write_pidfile(pidfile) < 0) {
        close_listeners(ls, nls, !parent);
        free(pidfile);
        settings_free(&s);
        return 1;
    }
    daemon_ready(ready_fd);
    nw_cmdline cmd = {argc, argv, getenv("NARWHAL_CMD_ARGS"), exe, parent, pidfile};
    rc = arbiter_run(&s, &cmd, ls, nls, id);
    if (cmd.pidfile)
        daemon_remove_pidfile(cmd.pidfile);
    free(cmd.pidfile);
    free(cmd.exe);
    free(ls);
    settings_free(&s);
    return rc;
}
