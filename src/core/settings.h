/*
 * settings.h - every narwhal setting, from one table.
 *
 * One table (in settings.c) holds each setting's name, CLI flags, config-file
 * key, type, default, validator and help. From it come the getopt_long
 * options, the libconfuse option array, --help, --print-config and
 * validation. Names follow gunicorn: CLI `--access-logfile`, file key
 * `accesslog`.
 *
 * Precedence: defaults < config file < NARWHAL_CMD_ARGS < command line. A
 * list setting (bind, raw_env) set by a source replaces the list from lower
 * sources; repeats within one source accumulate.
 */
#ifndef NW_SETTINGS_H
#define NW_SETTINGS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* The most workers and threads per worker the master's scoreboard is sized
 * for: it holds four times the workers (TTIN, and two generations side by
 * side during a reload), each with a request slot per thread. */
#define NW_MAX_WORKERS 1024
#define NW_MAX_THREADS 1024
/* max_requests and its jitter: their sum stays far from overflow. */
#define NW_MAX_REQUESTS 1000000000

typedef struct nw_strlist {
    char **v; /* owned, each owned */
    size_t n;
} nw_strlist;

typedef enum { NW_CLASS_SYNC = 0, NW_CLASS_THREADS, NW_CLASS_ASYNC } nw_worker_class;
typedef enum { NW_PROTO_AUTO = 0, NW_PROTO_FASTCGI, NW_PROTO_UWSGI } nw_protocol;
typedef enum { NW_CLOSE_RESET = 0, NW_CLOSE_FIN } nw_close_mode;
typedef enum { NW_PM_STATIC = 0, NW_PM_DYNAMIC, NW_PM_ONDEMAND } nw_process_manager;

typedef struct nw_settings {
    char *config;            /* -c/--config: path, NULL = none */
    nw_strlist bind;         /* -b/--bind, `bind`: default {"127.0.0.1:5000"} */
    int workers;             /* -w/--workers: default $WEB_CONCURRENCY or 1; >= 1 */
    int backlog;             /* --backlog: 2048 */
    char *pidfile;           /* -p/--pid, `pidfile`: NULL = none */
    char *accesslog;         /* --access-logfile, `accesslog`: NULL = none, "-" = stdout */
    char *access_log_format; /* --access-logformat, `access_log_format`: gunicorn's default */
    char *errorlog;          /* --error-logfile/--log-file, `errorlog`: "-" = stderr (default) */
    int loglevel;            /* --log-level, `loglevel`: NW_LOG_*; default info */
    int timeout;             /* -t/--timeout: 30; 0 = off */
    int graceful_timeout;    /* --graceful-timeout: 30 */
    int keepalive;           /* --keep-alive, `keepalive`: seconds an idle FastCGI
                                keep-conn connection is held open */
    bool daemon;             /* -D/--daemon */
    char *chdir;             /* --chdir: NULL = stay */
    nw_strlist raw_env;      /* -e/--env, `raw_env`: KEY=VALUE each (validated) */
    char *user;              /* -u/--user: name or uid; NULL = unchanged */
    char *group;             /* -g/--group: name or gid; NULL = unchanged */
    int umask;               /* -m/--umask: default 0; accepts 0o22, 022, 18 */
    char *socket_owner;      /* `socket_owner`: unix sockets' owner; NULL = user's */
    char *socket_group;      /* `socket_group`: unix sockets' group; NULL = group's */
    int socket_mode;         /* `socket_mode`: unix sockets' mode, 0660 */
    nw_strlist allowed_clients; /* `allowed_clients`: addresses / CIDR ranges TCP peers
                                   must be in; empty = any (FCGI_WEB_SERVER_ADDRS fills it) */
    bool allow_root;         /* -R/--allow-root: workers may run as root */
    bool no_new_privs;       /* `no_new_privs`: PR_SET_NO_NEW_PRIVS in workers, true */
    char *chroot;            /* `chroot`: workers' root directory, NULL = none */
    bool check_config;       /* --check-config */
    bool print_config;       /* --print-config */
    char *app;               /* positional: path.so[:symbol]; NULL if not given */

    /* worker model */
    nw_worker_class worker_class; /* -k/--worker-class: sync (default) */
    int threads;                  /* --threads: 1 */
    int worker_connections;       /* --worker-connections: 1000 */
    int coroutine_stack_size;     /* --coroutine-stack-size KiB (async): 256 */
    nw_protocol protocol;         /* --protocol: auto */
    nw_close_mode close_mode;     /* --close-mode: reset (same-host TCP peers only) */

    /* limits (gunicorn's names and defaults) */
    int limit_request_line;       /* 4094, 0..8190, 0 = unlimited */
    int limit_request_fields;     /* 100, 0..32768 */
    int limit_request_field_size; /* 8190, 0 = unlimited */
    int limit_pending_bytes;      /* 64 MiB per worker, 0 = unlimited */
    int max_requests;             /* 0 = off */
    int max_requests_jitter;      /* 0 */

    /* the process manager (php-fpm's pm.*): how many workers run */
    nw_process_manager process_manager; /* static (default): `workers` always */
    int min_spare_workers;              /* dynamic: fewest idle workers (1) */
    int max_spare_workers;              /* dynamic: most idle workers (3) */
    int start_workers;                  /* dynamic: workers at start; 0 = php-fpm's midpoint */
    int worker_idle_timeout;            /* ondemand: seconds idle before retiring (10) */
    int max_spawn_rate;                 /* most workers spawned in a second (32) */

    /* memory and resource limits of a worker (0 / -1 = leave as inherited) */
    int max_worker_memory;        /* MiB of RSS: past it a worker is replaced gracefully */
    int worker_memory_hard_limit; /* MiB of address space (RLIMIT_AS): allocations fail past it */
    int rlimit_nofile;            /* RLIMIT_NOFILE, 0 = inherited */
    int rlimit_core;              /* RLIMIT_CORE in MiB, -1 = inherited, 0 = no core files */

    /* pages the worker answers itself (status.h): NULL = off */
    char *status_path;   /* `status_path`: e.g. /narwhal-status */
    char *ping_path;     /* `ping_path`: e.g. /narwhal-ping */
    char *ping_response; /* `ping_response`: "pong" */

    /* statsD (statsd.h): NULL = off */
    char *statsd_host;   /* `statsd_host`: HOST:PORT or unix:PATH */
    char *statsd_prefix; /* `statsd_prefix`: "" */

    /* the slowlog (php-fpm's request_slowlog_timeout / slowlog) */
    int slowlog_timeout; /* seconds; 0 = off */
    char *slowlog;       /* its file; NULL = the error log */

    /* --exec: supervise an existing FastCGI program instead of an app */
    char *exec;           /* --exec PROGRAM: NULL = serve APP */
    nw_strlist exec_args; /* its arguments (after --, or --exec-arg) */
    int exec_stop_signal; /* --exec-stop-signal: graceful stop signal, SIGUSR1 */

    /* CGI programs (cgi.h), instead of an APP */
    char *cgi;           /* --cgi PROGRAM: run it for every request; NULL = off */
    nw_strlist cgi_root; /* --cgi-root DIR: run SCRIPT_FILENAME when inside one */
    int cgi_max_running; /* --cgi-max-running: per worker, 0 = no bound of its own */

    /* development and debugging */
    bool reload;
    bool spew;
    bool preload_app;

    /* Python WSGI apps */
    char *pythonpath; /* --pythonpath: comma-separated directories put first on sys.path */
    char *virtualenv; /* --virtualenv: a venv whose packages the app uses */
} nw_settings;

/* Loads settings from defaults, the config file (argv's -c, if any),
 * env_args (the value of NARWHAL_CMD_ARGS, may be NULL; split like a shell
 * would split words, with '' and "" quoting) and argv, in that order of
 * precedence. Messages go to err:
 *   - a bad value names the setting (and file:line for the config file):
 *       narwhal: gunicorn.conf:7: workers: 'abc' is not an integer
 *       narwhal: --timeout: '-5' must be at least 0
 *   - unknown options and keys are named.
 * Returns 0 when the settings are ready to use, 1 on error (message written),
 * 2 when --help or --version was printed to out and the caller should exit 0.
 * On any return, s must be released with settings_free. */
int settings_load(nw_settings *s, int argc, char **argv, const char *env_args, FILE *out,
                  FILE *err);

/* Checks what no single setting can (--exec with settings that shape
 * narwhal's own workers, reload with preload_app, the program's presence)
 * and derives values (threads > 1 turns sync into threads, as in
 * gunicorn). 0, or -1 with the reason on err. Called after settings_load,
 * at start and on every reload. */
int settings_finish(nw_settings *s, FILE *err);

/* Whether the setting called name (its config file key: "timeout",
 * "coroutine_stack_size", "bind") holds the table's default in s. It
 * compares values, not where they came from: `--timeout 30` is as default as
 * no --timeout at all. The default is the table's text read through the same
 * converter as any value, so there is no second copy of it to drift: "bind"
 * is default only as exactly {"127.0.0.1:5000"}, a string with no default
 * (pidfile, accesslog) only while NULL, and "workers" compares with 1, not
 * with $WEB_CONCURRENCY. name must name a setting; anything else is the
 * caller's bug and aborts. */
bool settings_is_default(const nw_settings *s, const char *name);

/* The settings a running master cannot change (bind, backlog, pidfile,
 * daemon, user, group, umask, socket_*, allow_root, reload: the table's
 * restart rows), one at a
 * time: starting from *pos (0 at first), returns the name of the next one
 * whose value differs between old and ns and moves *pos past it; NULL when
 * there are no more. */
const char *settings_next_restart_change(const nw_settings *old, const nw_settings *ns,
                                         size_t *pos);

/* Settings that mean nothing in this combination are said, not ignored:
 * logs a warning (log_warning) for threads with the async class,
 * coroutine_stack_size outside it, exec_stop_signal without --exec,
 * preload_app or spew with --exec, and max_requests_jitter while
 * max_requests is 0. Unlike settings_finish's refusals they do not stop
 * narwhal. Called at start once the logs are configured. */
void settings_warn_no_effect(const nw_settings *s);

/* setenv()s every raw_env entry. 0, or -1 with the reason on err. */
int settings_apply_env(const nw_settings *s, FILE *err);

/* Releases everything s owns and zeroes it. */
void settings_free(nw_settings *s);

/* Writes every effective setting as a valid config file that settings_load
 * parses back to the same settings (the app too, as `app = "..."`). */
void settings_print(const nw_settings *s, FILE *out);

/* --help text, generated from the table. */
void settings_usage(FILE *out);

/* Names for enum values, for logs. */
const char *settings_loglevel_name(int level);
const char *settings_worker_class_name(nw_worker_class c);
const char *settings_process_manager_name(nw_process_manager pm);

#endif
