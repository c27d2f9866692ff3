/* main.c - narwhal's entry point: settings, logs, sockets, daemon, master. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "arbiter.h"
#include "cidr.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "settings.h"
#include "statsd.h"
#include "signals.h"
#include "util.h"

/* A user name or uid: its uid and, when it has a passwd entry, its group
 * (else *gid is left as it is). -1 for a name that is neither. */
static int lookup_user(const char *setting, const char *name, uid_t *uid, gid_t *gid)
{
    char *end;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        unsigned long v = strtoul(name, &end, 10);
        if (!*name || *end) {
            fprintf(stderr, "narwhal: %s: no such user '%s'\n", setting, name);
            return -1;
        }
        *uid = (uid_t)v;
        pw = getpwuid(*uid);
    }
    if (pw) {
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
    }
    return 0;
}

static int lookup_group(const char *setting, const char *name, gid_t *gid)
{
    char *end;
    struct group *gr = getgrnam(name);
    if (gr) {
        *gid = gr->gr_gid;
        return 0;
    }
    unsigned long v = strtoul(name, &end, 10);
    if (!*name || *end) {
        fprintf(stderr, "narwhal: %s: no such group '%s'\n", setting, name);
        return -1;
    }
    *gid = (gid_t)v;
    return 0;
}

static int resolve_identity(const nw_settings *s, nw_identity *id)
{
    id->uid = (uid_t)-1;
    id->gid = (gid_t)-1;
    if (s->user && lookup_user("user", s->user, &id->uid, &id->gid) < 0)
        return -1;
    if (s->group && lookup_group("group", s->group, &id->gid) < 0)
        return -1;
    /* Never a new uid with root's gid: a uid with no passwd entry has no
     * group of its own to default to. */
    if (id->uid != (uid_t)-1 && id->gid == (gid_t)-1) {
        fprintf(stderr,
                "narwhal: user: uid %s has no passwd entry, so no group to run as: set group\n",
                s->user);
        return -1;
    }
    return 0;
}

/* The unix sockets' owner, group and mode: socket_owner and socket_group,
 * else the workers' user and group (php-fpm's listen.owner and
 * listen.group default to the pool's user and group). */
static int resolve_sockperm(const nw_settings *s, nw_identity id, nw_sockperm *p)
{
    gid_t ignored;
    p->uid = id.uid;
    p->gid = id.gid;
    p->mode = (mode_t)s->socket_mode;
    if (s->socket_owner && lookup_user("socket_owner", s->socket_owner, &p->uid, &ignored) < 0)
        return -1;
    if (s->socket_group && lookup_group("socket_group", s->socket_group, &p->gid) < 0)
        return -1;
    return 0;
}

/* chroot takes root, and a directory. */
static int check_chroot(const char *dir)
{
    struct stat st;
    if (geteuid() != 0) {
        fprintf(stderr, "narwhal: chroot: needs a master started as root\n");
        return -1;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "narwhal: chroot: %s is not a directory\n", dir);
        return -1;
    }
    return 0;
}

/* A root master runs its workers as root only when told so: anything that
 * owns a request (a bug in the app, a forged param) would own the host. */
static int check_root(const nw_settings *s, nw_identity id)
{
    uid_t worker = id.uid != (uid_t)-1 ? id.uid : geteuid();
    if (worker != 0 || s->allow_root)
        return 0;
    fprintf(stderr,
            "narwhal: refusing to run %s as root: set user (and group) to an unprivileged "
            "account, or allow_root (--allow-root, -R) if root is really meant\n",
            s->exec ? "the --exec program" : "workers");
    return -1;
}

/* Someone who can write the app owns every request it serves: say so when
 * the worker's user (other than root) or anyone at all may write the app
 * file or its directory. */
static void warn_writable_app(const nw_settings *s, nw_identity id)
{
    char *path, *symbol;
    if (s->exec) {
        path = nw_find_in_path(s->exec);
        symbol = NULL;
        if (!path)
            return;
    } else if (s->cgi) { /* the one program every request runs */
        path = nw_xstrdup(s->cgi);
        symbol = NULL;
    } else if (nw_app_spec_kind(s->app) == NW_APP_C) {
        nw_split_app_spec(s->app, &path, &symbol);
    } else {
        return; /* a Python module: the interpreter finds its files, in the worker */
    }
    uid_t uid = id.uid != (uid_t)-1 ? id.uid : geteuid();
    gid_t gid = id.gid != (gid_t)-1 ? id.gid : getegid();
    char *dir = nw_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    const char *what[2] = {path, dir};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        /* in a sticky directory (/tmp) only a file's owner may replace it */
        if (stat(what[i], &st) < 0 || (i == 1 && (st.st_mode & S_ISVTX)))
            continue;
        const char *who = NULL;
        if (st.st_mode & S_IWOTH)
            who = "every user";
        else if (uid != 0 && st.st_uid == uid && (st.st_mode & S_IWUSR))
            who = "the workers' user, its owner";
        else if (uid != 0 && st.st_gid == gid && (st.st_mode & S_IWGRP))
            who = "the workers' group";
        if (who)
            log_warning("%s %s is writable by %s (mode %04o): whoever can write it runs code "
                        "in every request; make it the deployer's, not the workers'",
                        i ? "the app's directory" : "the app", what[i], who,
                        (unsigned)(st.st_mode & 07777));
    }
    free(dir);
    free(path);
    free(symbol);
}

/* A TCP listener on an address other hosts can reach, with no
 * allowed_clients: any of them can send FastCGI params, which the app
 * takes as nginx's word (REMOTE_ADDR, HTTPS, auth headers). */
static void warn_open_listeners(const nw_settings *s, const nw_listener *ls, int n)
{
    if (s->allowed_clients.n || (s->exec && getenv("FCGI_WEB_SERVER_ADDRS")))
        return;
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (ls[i].unix_path || getsockname(ls[i].fd, (struct sockaddr *)&ss, &len) < 0 ||
            cidr_is_loopback((struct sockaddr *)&ss))
            continue;
        log_warning("%s is reachable from other hosts and allowed_clients is not set: any peer "
                    "that reaches it can send requests whose params (REMOTE_ADDR, HTTPS, auth "
                    "headers) the app trusts as the web server's; set allowed_clients to the web "
                    "server's addresses, or bind 127.0.0.1 or a unix socket",
                    ls[i].addr);
    }
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

/* USR2: the pid of the master being upgraded, which started this one and
 * keeps serving until it exits; 0 when started any other way. */
static pid_t upgrading_from(void)
{
    const char *env = getenv("NARWHAL_PARENT");
    pid_t parent = env ? (pid_t)strtol(env, NULL, 10) : 0;
    unsetenv("NARWHAL_PARENT");
    return parent == getppid() ? parent : 0;
}

/* --check-config, once the settings passed: the app loads (or the program
 * is there). Returns the exit code. */
static int check_config(const nw_settings *s)
{
    nw_app app;
    char err[512];
    if (s->exec || s->cgi) {
        printf("narwhal: configuration and program %s are valid\n", s->exec ? s->exec : s->cgi);
        return 0;
    }
    if (s->cgi_root.n) {
        printf("narwhal: configuration and CGI roots are valid\n");
        return 0;
    }
    if (app_load(s, &app, err, sizeof err) < 0) {
        fprintf(stderr, "narwhal: %s\n", err);
        return 1;
    }
    app_unload(&app);
    printf("narwhal: configuration and app %s are valid\n", s->app);
    return 0;
}

/* The master never loads the app, but a missing file is worth saying now
 * rather than after a storm of workers that cannot boot. 0/-1. */
static int check_app_file(const char *spec)
{
    char *path, *symbol;
    int rc = 0;
    if (nw_app_spec_kind(spec) != NW_APP_C)
        return 0; /* a Python module is found by the interpreter, in the worker */
    nw_split_app_spec(spec, &path, &symbol);
    if (access(path, R_OK) < 0) {
        fprintf(stderr, "narwhal: cannot load app %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(path);
    free(symbol);
    return rc;
}

/* Binds every address in s->bind into ls, or takes its socket from
 * inherited. Returns how many of ls are open: all of them, or fewer after a
 * failure (logged), and then the caller closes those. */
static int open_listeners(const nw_settings *s, const nw_sockperm *perm, nw_listener *ls,
                          int *inherited, int ninherited)
{
    for (size_t i = 0; i < s->bind.n; i++) {
        if (listener_adopt(&ls[i], s->bind.v[i], s->backlog, inherited, ninherited, perm) == 0) {
            log_info("using the inherited socket for %s", s->bind.v[i]);
            continue;
        }
        if (listener_open(&ls[i], s->bind.v[i], s->backlog, perm) < 0)
            return (int)i;
    }
    return (int)s->bind.n;
}

int main(int argc, char **argv)
{
    nw_settings s;
    nw_identity id;
    nw_sockperm perm;
    nw_listener *ls = NULL;
    int nls = 0; /* how many of ls are open, ours to close */
    int inherited[64], ninherited = 0;
    char *exe = NULL, *pidfile = NULL, *start_dir = NULL;
    pid_t parent = 0;
    int ready_fd = -1, status = 1;

    /* First of all: the master reads its signals from a signalfd later, and
     * a HUP that arrives before then (a pidfile is there to be read) must
     * wait for it, not kill the process. Children unblock their own. */
    sigset_t sigs;
    signals_fill(&sigs);
    sigprocmask(SIG_BLOCK, &sigs, NULL);

    int rc = settings_load(&s, argc, argv, getenv("NARWHAL_CMD_ARGS"), stdout, stderr);
    if (rc != 0) {
        status = rc == 2 ? 0 : 1; /* 2: --help or --version, printed */
        goto out;
    }
    /* Before any chdir: a relative argv[0] names the binary from here. */
    exe = self_exe(argv[0]);
    if (s.print_config) {
        settings_print(&s, stdout);
        status = 0;
        goto out;
    }
    if (settings_finish(&s, stderr) < 0)
        goto out;
    if (!s.app && !s.exec && !s.cgi && !s.cgi_root.n) {
        fprintf(stderr, "narwhal: no app given: usage: narwhal [OPTIONS] path/to/app.so[:symbol] "
                        "(see --help)\n");
        goto out;
    }
    if (resolve_identity(&s, &id) < 0 || resolve_sockperm(&s, id, &perm) < 0 ||
        settings_apply_env(&s, stderr) < 0)
        goto out;
    umask((mode_t)s.umask);
    /* -c and --chdir as given name paths from here; after the chdir, and
     * on HUP and USR2, they must still name the same ones. */
    start_dir = getcwd(NULL, 0);
    if (!start_dir) {
        fprintf(stderr, "narwhal: cannot find the current directory: %s\n", strerror(errno));
        goto out;
    }
    nw_make_absolute(&s.config, start_dir);
    nw_make_absolute(&s.chdir, start_dir);
    nw_make_absolute(&s.chroot, start_dir);
    if (s.chroot && !s.check_config && check_chroot(s.chroot) < 0)
        goto out;
    if (s.chdir && chdir(s.chdir) < 0) {
        fprintf(stderr, "narwhal: chdir: cannot change to %s: %s\n", s.chdir, strerror(errno));
        goto out;
    }
    if (s.check_config) {
        status = check_config(&s);
        goto out;
    }
    if (check_root(&s, id) < 0)
        goto out;
    parent = upgrading_from();
    if (s.app && check_app_file(s.app) < 0)
        goto out;
    if (s.pidfile && daemon_check_pidfile(s.pidfile, parent) < 0)
        goto out;
    if (log_configure(s.errorlog, s.accesslog, s.spew ? NW_LOG_DEBUG : s.loglevel,
                      s.access_log_format) < 0)
        goto out;
    if (log_slowlog_open(s.slowlog) < 0)
        goto out;
    settings_warn_no_effect(&s);
    warn_writable_app(&s, id);
    statsd_open(s.statsd_host, s.statsd_prefix);
    ninherited = listener_inherited(inherited, 64, parent);
    ls = nw_xcalloc(s.bind.n, sizeof *ls);
    nls = open_listeners(&s, &perm, ls, inherited, ninherited);
    if (nls < (int)s.bind.n)
        goto out;
    warn_open_listeners(&s, ls, nls);
    if (s.preload_app && s.app) {
        char err[512];
        if (app_preload(&s, err, sizeof err) < 0) {
            fprintf(stderr, "narwhal: preload_app: %s\n", err);
            goto out;
        }
    }
    for (int i = 0; i < ninherited; i++)
        if (inherited[i] >= 0) {
            log_warning("closing inherited socket fd %d: no bind address matches it", inherited[i]);
            close(inherited[i]);
        }
    if (s.daemon && !parent && daemon_detach(&ready_fd) < 0)
        goto out;
    /* An upgraded master writes <pidfile>.2 until the old one exits. */
    if (s.pidfile) {
        pidfile = parent ? nw_xasprintf("%s.2", s.pidfile) : nw_xstrdup(s.pidfile);
        if (daemon_write_pidfile(pidfile) < 0)
            goto out;
    }
    daemon_ready(ready_fd);
    ready_fd = -1;
    {
        nw_cmdline cmd = {argc, argv, getenv("NARWHAL_CMD_ARGS"), exe, start_dir, parent, pidfile};
        status = arbiter_run(&s, &cmd, ls, nls, id);
        nls = 0;               /* arbiter_run closed them */
        pidfile = cmd.pidfile; /* an upgraded master may have renamed it */
    }
    if (pidfile)
        daemon_remove_pidfile(pidfile);
out:
    if (ready_fd >= 0)
        close(ready_fd); /* the launching process exits 1 */
    /* A master started by USR2 leaves the unix socket files to the old
     * master, which still serves on them. */
    for (int i = 0; i < nls; i++)
        listener_close(&ls[i], !parent);
    free(ls);
    free(pidfile);
    free(exe);
    free(start_dir);
    settings_free(&s);
    return status;
}
