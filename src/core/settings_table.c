/*
 * settings_table.c - what the settings are: one row per setting (names,
 * flags, type, default, bounds, validator, help, and the rules a row
 * carries), the enum choices and the validators the rows point to. How
 * values are read and checked is settings.c's business.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "log.h"
#include "narwhal.h"
#include "settings_priv.h"

static const struct choice loglevels[] = {
    {"debug", NW_LOG_DEBUG}, {"info", NW_LOG_INFO},         {"warning", NW_LOG_WARNING},
    {"error", NW_LOG_ERROR}, {"critical", NW_LOG_CRITICAL}, {NULL, 0},
};
/* The first name for a value is the canonical one; the rest are gunicorn's
 * worker class names, accepted as aliases. */
static const struct choice worker_classes[] = {
    {"sync", NW_CLASS_SYNC},
    {"threads", NW_CLASS_THREADS},
    {"async", NW_CLASS_ASYNC},
    {"gthread", NW_CLASS_THREADS},
    {"gevent", NW_CLASS_ASYNC},
    {"eventlet", NW_CLASS_ASYNC},
    {NULL, 0},
};
static const struct choice protocols[] = {
    {"auto", NW_PROTO_AUTO},
    {"fastcgi", NW_PROTO_FASTCGI},
    {"uwsgi", NW_PROTO_UWSGI},
    {NULL, 0},
};

static const struct choice close_modes[] = {
    {"reset", NW_CLOSE_RESET},
    {"fin", NW_CLOSE_FIN},
    {NULL, 0},
};

static const struct choice process_managers[] = {
    {"static", NW_PM_STATIC},
    {"dynamic", NW_PM_DYNAMIC},
    {"ondemand", NW_PM_ONDEMAND},
    {NULL, 0},
};

static const struct choice stop_signals[] = {
    {"USR1", SIGUSR1}, {"TERM", SIGTERM}, {"INT", SIGINT},     {"QUIT", SIGQUIT},
    {"HUP", SIGHUP},   {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}, {NULL, 0},
};

/* ---- validators (strings and list items) -------------------------------------- */

static int check_client(const char *v, char *err, size_t errlen)
{
    nw_cidr c;
    return cidr_parse(v, &c, err, errlen);
}

static int check_port(const char *v, const char *port, char *err, size_t errlen)
{
    size_t len = strlen(port);
    long n = 0;
    if (len == 0 || len > 5 || strspn(port, "0123456789") != len)
        return snprintf(err, errlen, "'%s' has no valid port (HOST:PORT)", v), -1;
    n = strtol(port, NULL, 10);
    if (n < 1 || n > 65535)
        return snprintf(err, errlen, "'%s': port must be 1 to 65535", v), -1;
    return 0;
}

static int check_bind(const char *v, char *err, size_t errlen)
{
    static const char host_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789.-_";
    const char *colon;

    if (strncmp(v, "unix:", 5) == 0) {
        if (!v[5])
            return snprintf(err, errlen, "'%s' has an empty path", v), -1;
        return 0;
    }
    if (v[0] == '[') {
        /* [addr] or [addr%zone] */
        const char *close = strchr(v, ']');
        size_t hlen = close ? (size_t)(close - v - 1) : 0;
        size_t alen = strspn(v + 1, "0123456789abcdefABCDEF:.");
        if (alen < hlen && v[1 + alen] == '%' && alen + 1 < hlen)
            alen += 1 + strspn(v + 2 + alen, host_chars);
        if (!close || hlen == 0 || close[1] != ':' || alen != hlen || !memchr(v + 1, ':', hlen))
            return snprintf(err, errlen, "'%s' is not [IPV6]:PORT", v), -1;
        return check_port(v, close + 2, err, errlen);
    }
    colon = strrchr(v, ':');
    if (!colon || colon == v)
        return snprintf(err, errlen, "'%s' is not HOST:PORT, [IPV6]:PORT or unix:PATH", v), -1;
    if (memchr(v, ':', (size_t)(colon - v)))
        return snprintf(err, errlen, "'%s': put an IPv6 address in brackets ([::1]:5000)", v), -1;
    if (strspn(v, host_chars) < (size_t)(colon - v))
        return snprintf(err, errlen, "'%s' has an invalid host name", v), -1;
    return check_port(v, colon + 1, err, errlen);
}

static int check_env(const char *v, char *err, size_t errlen)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v)
        return snprintf(err, errlen, "'%s' is not KEY=VALUE", v), -1;
    return 0;
}

static int check_access_format(const char *v, char *err, size_t errlen)
{
    access_format *f = access_format_compile(v, err, errlen);
    if (!f)
        return -1;
    access_format_free(f);
    return 0;
}

/* A statsD name part: the wire format is "name:value|type\n". */
static int check_statsd_prefix(const char *v, char *err, size_t errlen)
{
    size_t bad = strcspn(v, ":|@\n\r \t");
    if (v[bad])
        return snprintf(err, errlen, "'%s' holds '%c', which statsD's format does not allow", v,
                        v[bad] == '\n' ? ' ' : v[bad]),
               -1;
    if (strlen(v) > 100)
        return snprintf(err, errlen, "'%.20s...' is longer than 100 bytes", v), -1;
    return 0;
}

static int check_page_path(const char *v, char *err, size_t errlen)
{
    if (v[0] != '/' || strpbrk(v, "?# "))
        return snprintf(err, errlen, "'%s' is not a path (/name, no query)", v), -1;
    return 0;
}

/* ---- why --exec refuses a row (F_NO_EXEC) --------------------------------------- */

static const char exec_pages[] = "status_path, ping_path and ping_response are answered by "
                                 "narwhal's own workers; an --exec program answers its requests";

static const char exec_own_workers[] =
    "worker_class and threads shape narwhal's own workers; they do not apply to --exec programs";
static const char exec_connections[] =
    "worker_connections and coroutine_stack_size do not apply to --exec programs";
static const char exec_accesslog[] = "accesslog: narwhal does not see an --exec program's "
                                     "requests; log them in the program or in nginx";
static const char exec_max_requests[] =
    "max_requests: narwhal cannot count an --exec program's requests";
static const char exec_pm[] =
    "process_manager and its settings need the scoreboard of narwhal's own workers; an --exec "
    "program runs `workers` copies";
static const char exec_memory[] =
    "max_worker_memory: narwhal cannot stop an --exec program between its requests";
static const char exec_timeout[] =
    "timeout: narwhal cannot see an --exec program's requests to time them";
static const char exec_slowlog[] =
    "slowlog_timeout: narwhal cannot see an --exec program's requests to time them";
static const char exec_protocol[] =
    "keepalive, protocol and close_mode are the --exec program's own business";
static const char exec_limits[] =
    "limit_request_*: narwhal does not parse an --exec program's requests";
static const char exec_cgi[] =
    "--cgi, --cgi-root and cgi_max_running run CGI programs in narwhal's own workers; give "
    "either those or --exec PROGRAM";
static const char exec_pending[] =
    "limit_pending_bytes: narwhal does not read an --exec program's requests";

/* ---- the table ------------------------------------------------------------------- */

const struct setting settings_table[] = {
    {.name = "config",
     .short_flag = 'c',
     .long_flag = "config",
     .metavar = "FILE",
     .type = T_STR,
     .off = OFF(config),
     .flags = F_CLI_ONLY | F_NONEMPTY,
     .help = "read settings from FILE (gunicorn.conf syntax)"},
    {.name = "bind",
     .short_flag = 'b',
     .long_flag = "bind",
     .metavar = "ADDR",
     .type = T_LIST,
     .off = OFF(bind),
     .def = "127.0.0.1:5000",
     .check = check_bind,
     .flags = F_RESTART,
     .help = "listen on HOST:PORT, [IPV6]:PORT or unix:PATH; repeatable"},
    {.name = "workers",
     .short_flag = 'w',
     .long_flag = "workers",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(workers),
     .def = "1",
     .min = 1,
     .max = NW_MAX_WORKERS,
     .help = "number of worker processes (default $WEB_CONCURRENCY or 1)"},
    {.name = "worker_class",
     .short_flag = 'k',
     .long_flag = "worker-class",
     .metavar = "CLASS",
     .type = T_ENUM,
     .off = OFF(worker_class),
     .def = "sync",
     .choices = worker_classes,
     .flags = F_NO_EXEC,
     .exec_why = exec_own_workers,
     .help = "sync, threads or async (or gthread, gevent, eventlet)"},
    {.name = "threads",
     .long_flag = "threads",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(threads),
     .def = "1",
     .min = 1,
     .max = NW_MAX_THREADS,
     .flags = F_NO_EXEC,
     .exec_why = exec_own_workers,
     .help = "threads per worker (threads class)"},
    {.name = "worker_connections",
     .long_flag = "worker-connections",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(worker_connections),
     .def = "1000",
     .min = 1,
     .max = INT_MAX,
     .flags = F_NO_EXEC,
     .exec_why = exec_connections,
     .help = "most connections a worker holds open; past it the backlog waits (every class)"},
    {.name = "coroutine_stack_size",
     .long_flag = "coroutine-stack-size",
     .metavar = "KIB",
     .type = T_INT,
     .off = OFF(coroutine_stack_size),
     .def = "256",
     .min = 16,
     .max = 65536,
     .flags = F_NO_EXEC,
     .exec_why = exec_connections,
     .help = "stack per coroutine in KiB (async class)"},
    {.name = "backlog",
     .long_flag = "backlog",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(backlog),
     .def = "2048",
     .min = 1,
     .max = INT_MAX,
     .flags = F_RESTART,
     .help = "listen(2) backlog"},
    {.name = "protocol",
     .long_flag = "protocol",
     .metavar = "PROTO",
     .type = T_ENUM,
     .off = OFF(protocol),
     .def = "auto",
     .choices = protocols,
     .flags = F_NO_EXEC,
     .exec_why = exec_protocol,
     .help = "auto, fastcgi or uwsgi"},
    /* See conn.c (conn_end) and NOTES.md: a same-host TCP connection that
     * ends after a response gets FIN, then RST, so no side keeps it in
     * TIME_WAIT; "fin" is the plain close. */
    {.name = "close_mode",
     .long_flag = "close-mode",
     .metavar = "MODE",
     .type = T_ENUM,
     .off = OFF(close_mode),
     .def = "reset",
     .choices = close_modes,
     .flags = F_NO_EXEC,
     .exec_why = exec_protocol,
     .help = "how a connection ends after its last response: reset (FIN then RST, same-host TCP "
             "peers only) or fin"},
    {.name = "pidfile",
     .short_flag = 'p',
     .long_flag = "pid",
     .metavar = "FILE",
     .type = T_STR,
     .off = OFF(pidfile),
     .flags = F_NONEMPTY | F_RESTART,
     .help = "write the master's pid to FILE"},
    {.name = "accesslog",
     .long_flag = "access-logfile",
     .metavar = "FILE",
     .type = T_STR,
     .off = OFF(accesslog),
     .flags = F_NONEMPTY | F_NO_EXEC,
     .exec_why = exec_accesslog,
     .help = "access log file ('-' = stdout; default off)"},
    {.name = "access_log_format",
     .long_flag = "access-logformat",
     .metavar = "FORMAT",
     .type = T_STR,
     .off = OFF(access_log_format),
     .def = NW_ACCESS_LOG_FORMAT,
     .check = check_access_format,
     .help = "access log format, gunicorn's atoms"},
    {.name = "errorlog",
     .long_flag = "error-logfile",
     .long_alias = "log-file",
     .metavar = "FILE",
     .type = T_STR,
     .off = OFF(errorlog),
     .def = "-",
     .flags = F_NONEMPTY,
     .help = "error log file ('-' = stderr)"},
    {.name = "loglevel",
     .long_flag = "log-level",
     .metavar = "LEVEL",
     .type = T_ENUM,
     .off = OFF(loglevel),
     .def = "info",
     .choices = loglevels,
     .help = "debug, info, warning, error or critical"},
    {.name = "timeout",
     .short_flag = 't',
     .long_flag = "timeout",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(timeout),
     .def = "30",
     .min = 0,
     .max = INT_MAX,
     .flags = F_NO_EXEC,
     .exec_why = exec_timeout,
     .help = "per-request deadline: waits cut off with a 504, a stuck worker killed (0 = off)"},
    {.name = "graceful_timeout",
     .long_flag = "graceful-timeout",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(graceful_timeout),
     .def = "30",
     .min = 0,
     .max = INT_MAX,
     .help = "seconds workers get to finish on a graceful stop"},
    /* 75 s outlives nginx's upstream keepalive_timeout (60 s), so nginx
     * always closes an idle upstream connection first and never writes to
     * one narwhal is closing. */
    {.name = "keepalive",
     .long_flag = "keep-alive",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(keepalive),
     .def = "75",
     .min = 0,
     .max = INT_MAX,
     .flags = F_NO_EXEC,
     .exec_why = exec_protocol,
     .help = "seconds an idle keep-conn connection stays open"},
    {.name = "daemon",
     .short_flag = 'D',
     .long_flag = "daemon",
     .type = T_BOOL,
     .off = OFF(daemon),
     .def = "false",
     .flags = F_RESTART,
     .help = "detach and run in the background"},
    {.name = "chdir",
     .long_flag = "chdir",
     .metavar = "DIR",
     .type = T_STR,
     .off = OFF(chdir),
     .flags = F_NONEMPTY,
     .help = "change to DIR before loading the app"},
    {.name = "raw_env",
     .short_flag = 'e',
     .long_flag = "env",
     .metavar = "KEY=VALUE",
     .type = T_LIST,
     .off = OFF(raw_env),
     .check = check_env,
     .help = "set an environment variable; repeatable"},
    {.name = "user",
     .short_flag = 'u',
     .long_flag = "user",
     .metavar = "USER",
     .type = T_STR,
     .off = OFF(user),
     .flags = F_NONEMPTY | F_RESTART,
     .help = "switch workers to USER (name or uid)"},
    {.name = "group",
     .short_flag = 'g',
     .long_flag = "group",
     .metavar = "GROUP",
     .type = T_STR,
     .off = OFF(group),
     .flags = F_NONEMPTY | F_RESTART,
     .help = "switch workers to GROUP (name or gid)"},
    {.name = "umask",
     .short_flag = 'm',
     .long_flag = "umask",
     .metavar = "MODE",
     .type = T_UMASK,
     .off = OFF(umask),
     .def = "0o22",
     .min = 0,
     .max = 0777,
     .flags = F_RESTART,
     .help = "umask (0o22, 022 or 18)"},
    {.name = "socket_owner",
     .long_flag = "socket-owner",
     .metavar = "USER",
     .type = T_STR,
     .off = OFF(socket_owner),
     .flags = F_NONEMPTY | F_RESTART,
     .help = "owner of the unix sockets narwhal binds (default: user, else unchanged)"},
    {.name = "socket_group",
     .long_flag = "socket-group",
     .metavar = "GROUP",
     .type = T_STR,
     .off = OFF(socket_group),
     .flags = F_NONEMPTY | F_RESTART,
     .help = "group of the unix sockets narwhal binds (default: group, else unchanged)"},
    /* 0660: the owner and the group connect (nginx's user in the group),
     * nobody else; connecting to a unix socket takes write permission. */
    {.name = "socket_mode",
     .long_flag = "socket-mode",
     .metavar = "MODE",
     .type = T_UMASK,
     .off = OFF(socket_mode),
     .def = "0o660",
     .min = 0,
     .max = 0777,
     .flags = F_RESTART,
     .help = "mode of the unix sockets narwhal binds, set as they are made"},
    {.name = "allowed_clients",
     .long_flag = "allowed-clients",
     .metavar = "ADDR",
     .type = T_LIST,
     .off = OFF(allowed_clients),
     .check = check_client,
     .flags = F_NO_EXEC,
     .exec_why = "allowed_clients: the program accepts its own connections (a libfcgi program "
                 "reads FCGI_WEB_SERVER_ADDRS: set it with --env)",
     .help = "TCP peers allowed to connect: an address or CIDR range, v4 or v6; repeatable "
             "(default any, or $FCGI_WEB_SERVER_ADDRS)"},
    {.name = "allow_root",
     .short_flag = 'R',
     .long_flag = "allow-root",
     .type = T_BOOL,
     .off = OFF(allow_root),
     .def = "false",
     .flags = F_RESTART,
     .help = "let workers run as root (without it, a root master needs user)"},
    {.name = "chroot",
     .long_flag = "chroot",
     .metavar = "DIR",
     .type = T_STR,
     .off = OFF(chroot),
     .flags = F_NONEMPTY | F_NO_EXEC,
     .exec_why = "chroot: an --exec program is not loaded by narwhal; it would need its own "
                 "libraries inside the jail",
     .help = "workers chroot to DIR once the app is loaded: what the app opens then is inside "
             "DIR (a root master)"},
    {.name = "no_new_privs",
     .type = T_BOOL,
     .off = OFF(no_new_privs),
     .def = "true",
     .help = "workers and --exec programs gain no privileges through exec (setuid files, "
             "file capabilities); config file only"},
    {.name = "limit_request_line",
     .long_flag = "limit-request-line",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(limit_request_line),
     .def = "4094",
     .min = 0,
     .max = 8190,
     .flags = F_NO_EXEC,
     .exec_why = exec_limits,
     .help = "longest request line (0 = unlimited)"},
    {.name = "limit_request_fields",
     .long_flag = "limit-request-fields",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(limit_request_fields),
     .def = "100",
     .min = 0,
     .max = 32768,
     .flags = F_NO_EXEC,
     .exec_why = exec_limits,
     .help = "most request headers"},
    {.name = "limit_request_field_size",
     .long_flag = "limit-request-field-size",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(limit_request_field_size),
     .def = "8190",
     .min = 0,
     .max = INT_MAX,
     .flags = F_NO_EXEC,
     .exec_why = exec_limits,
     .help = "largest request header (0 = unlimited)"},
    {.name = "limit_pending_bytes",
     .long_flag = "limit-pending-bytes",
     .metavar = "BYTES",
     .type = T_INT,
     .off = OFF(limit_pending_bytes),
     .def = "67108864",
     .min = 0,
     .max = INT_MAX,
     .flags = F_NO_EXEC,
     .exec_why = exec_pending,
     .help = "most bytes a worker holds for requests not yet arrived in full (0 = unlimited)"},
    {.name = "max_requests",
     .long_flag = "max-requests",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(max_requests),
     .def = "0",
     .min = 0,
     .max = NW_MAX_REQUESTS,
     .flags = F_NO_EXEC,
     .exec_why = exec_max_requests,
     .help = "restart a worker after INT requests (0 = never)"},
    {.name = "max_requests_jitter",
     .long_flag = "max-requests-jitter",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(max_requests_jitter),
     .def = "0",
     .min = 0,
     .max = NW_MAX_REQUESTS,
     .flags = F_NO_EXEC,
     .exec_why = exec_max_requests,
     .help = "random extra requests before the restart"},
    /* The process manager: php-fpm's pm, pm.min_spare_servers, ... with
     * narwhal's word for a child (src/master/pm.c, NOTES.md). */
    {.name = "process_manager",
     .long_flag = "process-manager",
     .metavar = "PM",
     .type = T_ENUM,
     .off = OFF(process_manager),
     .def = "static",
     .choices = process_managers,
     .flags = F_NO_EXEC,
     .exec_why = exec_pm,
     .help = "static (always `workers`), dynamic (idle workers kept between min_spare_workers "
             "and max_spare_workers, at most `workers`) or ondemand (none until a connection "
             "waits)"},
    {.name = "min_spare_workers",
     .long_flag = "min-spare-workers",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(min_spare_workers),
     .def = "1",
     .min = 1,
     .max = NW_MAX_WORKERS,
     .flags = F_NO_EXEC,
     .exec_why = exec_pm,
     .help = "dynamic: spawn workers while fewer are idle"},
    {.name = "max_spare_workers",
     .long_flag = "max-spare-workers",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(max_spare_workers),
     .def = "3",
     .min = 1,
     .max = NW_MAX_WORKERS,
     .flags = F_NO_EXEC,
     .exec_why = exec_pm,
     .help = "dynamic: retire idle workers while more are idle (one a second)"},
    {.name = "start_workers",
     .long_flag = "start-workers",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(start_workers),
     .def = "0",
     .min = 0,
     .max = NW_MAX_WORKERS,
     .flags = F_NO_EXEC,
     .exec_why = exec_pm,
     .help = "dynamic: workers at start (0 = midway between the spare bounds)"},
    {.name = "worker_idle_timeout",
     .long_flag = "worker-idle-timeout",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(worker_idle_timeout),
     .def = "10",
     .min = 1,
     .max = INT_MAX,
     .flags = F_NO_EXEC,
     .exec_why = exec_pm,
     .help = "ondemand: seconds a worker stays idle before it is retired"},
    {.name = "max_spawn_rate",
     .long_flag = "max-spawn-rate",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(max_spawn_rate),
     .def = "32",
     .min = 1,
     .max = NW_MAX_WORKERS,
     .flags = F_NO_EXEC,
     .exec_why = exec_pm,
     .help = "dynamic, ondemand: most workers spawned in a second (the rate doubles each busy "
             "second from 1)"},
    {.name = "max_worker_memory",
     .long_flag = "max-worker-memory",
     .metavar = "MIB",
     .type = T_INT,
     .off = OFF(max_worker_memory),
     .def = "0",
     .min = 0,
     .max = 1 << 24,
     .flags = F_NO_EXEC,
     .exec_why = exec_memory,
     .help = "replace a worker whose RSS passes MIB, once its requests are done (0 = never)"},
    {.name = "worker_memory_hard_limit",
     .long_flag = "worker-memory-hard-limit",
     .metavar = "MIB",
     .type = T_INT,
     .off = OFF(worker_memory_hard_limit),
     .def = "0",
     .min = 0,
     .max = 1 << 24,
     .help = "a worker's address space (RLIMIT_AS) in MiB: allocations past it fail (0 = none)"},
    {.name = "rlimit_nofile",
     .long_flag = "rlimit-nofile",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(rlimit_nofile),
     .def = "0",
     .min = 0,
     .max = 1 << 30,
     .help = "open files a worker may hold (RLIMIT_NOFILE; 0 = as inherited)"},
    {.name = "rlimit_core",
     .long_flag = "rlimit-core",
     .metavar = "MIB",
     .type = T_INT,
     .off = OFF(rlimit_core),
     .def = "-1",
     .min = -1,
     .max = 1 << 24,
     .help = "largest core file of a worker in MiB (RLIMIT_CORE; 0 = none, -1 = as inherited)"},
    {.name = "status_path",
     .long_flag = "status-path",
     .metavar = "PATH",
     .type = T_STR,
     .off = OFF(status_path),
     .flags = F_NONEMPTY | F_NO_EXEC,
     .check = check_page_path,
     .exec_why = exec_pages,
     .help = "answer requests for PATH with narwhal's status page (?json, ?openmetrics, "
             "&full; default off)"},
    {.name = "ping_path",
     .long_flag = "ping-path",
     .metavar = "PATH",
     .type = T_STR,
     .off = OFF(ping_path),
     .flags = F_NONEMPTY | F_NO_EXEC,
     .check = check_page_path,
     .exec_why = exec_pages,
     .help = "answer requests for PATH with ping_response, without the app (default off)"},
    {.name = "ping_response",
     .long_flag = "ping-response",
     .metavar = "TEXT",
     .type = T_STR,
     .off = OFF(ping_response),
     .def = "pong",
     .flags = F_NO_EXEC,
     .exec_why = exec_pages,
     .help = "the body of the ping page"},
    {.name = "statsd_host",
     .long_flag = "statsd-host",
     .metavar = "ADDR",
     .type = T_STR,
     .off = OFF(statsd_host),
     .flags = F_NONEMPTY,
     .check = check_bind,
     .help = "send gunicorn's statsD metrics to HOST:PORT (UDP) or unix:PATH (default off)"},
    {.name = "statsd_prefix",
     .long_flag = "statsd-prefix",
     .metavar = "PREFIX",
     .type = T_STR,
     .off = OFF(statsd_prefix),
     .def = "",
     .check = check_statsd_prefix,
     .help = "put PREFIX. before every statsD metric name"},
    {.name = "slowlog_timeout",
     .long_flag = "slowlog-timeout",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(slowlog_timeout),
     .def = "0",
     .min = 0,
     .max = INT_MAX,
     .flags = F_NO_EXEC,
     .exec_why = exec_slowlog,
     .help = "log a request running longer than this, with the stack of its handler, once "
             "(php-fpm's request_slowlog_timeout; 0 = off)"},
    {.name = "slowlog",
     .long_flag = "slowlog",
     .metavar = "FILE",
     .type = T_STR,
     .off = OFF(slowlog),
     .flags = F_NONEMPTY,
     .help = "the slowlog's file (default: the error log)"},
    {.name = "reload",
     .long_flag = "reload",
     .type = T_BOOL,
     .off = OFF(reload),
     .def = "false",
     .flags = F_RESTART,
     .help = "development: replace the workers when the app or the config file changes"},
    {.name = "spew",
     .long_flag = "spew",
     .type = T_BOOL,
     .off = OFF(spew),
     .def = "false",
     .help = "log every protocol record and request state change (debug firehose)"},
    {.name = "preload_app",
     .long_flag = "preload",
     .type = T_BOOL,
     .off = OFF(preload_app),
     .def = "false",
     .help = "load the app in the master before forking (HUP then keeps the old code)"},
    {.name = "pythonpath",
     .long_flag = "pythonpath",
     .metavar = "DIRS",
     .type = T_STR,
     .off = OFF(pythonpath),
     .flags = F_NONEMPTY,
     .help = "Python apps: comma-separated directories to put first on sys.path"},
    {.name = "virtualenv",
     .long_flag = "virtualenv",
     .metavar = "DIR",
     .type = T_STR,
     .off = OFF(virtualenv),
     .flags = F_NONEMPTY,
     .help = "Python apps: use the packages of the virtualenv DIR (no need to activate it)"},
    {.name = "exec",
     .long_flag = "exec",
     .metavar = "PROGRAM",
     .type = T_STR,
     .off = OFF(exec),
     .flags = F_NONEMPTY,
     .help = "supervise PROGRAM, an existing FastCGI program, instead of loading an APP "
             "(its arguments follow --)"},
    {.name = "exec_args",
     .long_flag = "exec-arg",
     .metavar = "ARG",
     .type = T_LIST,
     .off = OFF(exec_args),
     .help = "an argument for the --exec PROGRAM; repeatable (or put them after --)"},
    /* libfcgi programs finish the request in hand and exit on SIGUSR1
     * (php-cgi too); SIGTERM kills a libfcgi program on the spot. */
    {.name = "exec_stop_signal",
     .long_flag = "exec-stop-signal",
     .metavar = "SIGNAL",
     .type = T_ENUM,
     .off = OFF(exec_stop_signal),
     .def = "USR1",
     .choices = stop_signals,
     .help = "signal asking an --exec program to finish and exit (graceful stop)"},
    /* CGI programs (cgi.h): forked per request by the worker, instead of
     * loading an APP. */
    {.name = "cgi",
     .long_flag = "cgi",
     .metavar = "PROGRAM",
     .type = T_STR,
     .off = OFF(cgi),
     .flags = F_NONEMPTY | F_NO_EXEC,
     .exec_why = exec_cgi,
     .help = "run PROGRAM as a CGI program for every request, instead of loading an APP"},
    {.name = "cgi_root",
     .long_flag = "cgi-root",
     .metavar = "DIR",
     .type = T_LIST,
     .off = OFF(cgi_root),
     .flags = F_NO_EXEC,
     .exec_why = exec_cgi,
     .help = "run the CGI program nginx names in SCRIPT_FILENAME when it lies in DIR "
             "(fcgiwrap's job); repeatable"},
    {.name = "cgi_max_running",
     .long_flag = "cgi-max-running",
     .metavar = "INT",
     .type = T_INT,
     .off = OFF(cgi_max_running),
     .def = "0",
     .min = 0,
     .max = INT_MAX,
     .flags = F_NO_EXEC,
     .exec_why = exec_cgi,
     .help = "most CGI programs a worker runs at once; the rest wait (0 = as many as it "
             "has requests)"},
    {.name = "check_config",
     .long_flag = "check-config",
     .type = T_BOOL,
     .off = OFF(check_config),
     .def = "false",
     .flags = F_CLI_ONLY,
     .help = "check the settings and exit"},
    {.name = "print_config",
     .long_flag = "print-config",
     .type = T_BOOL,
     .off = OFF(print_config),
     .def = "false",
     .flags = F_CLI_ONLY,
     .help = "print the settings as a config file and exit"},
    {.name = "help",
     .short_flag = 'h',
     .long_flag = "help",
     .type = T_ACTION,
     .flags = F_CLI_ONLY,
     .help = "show this help and exit"},
    {.name = "version",
     .short_flag = 'v',
     .long_flag = "version",
     .type = T_ACTION,
     .flags = F_CLI_ONLY,
     .help = "show the version and exit"},
    /* The positional argument; gunicorn's file key is wsgi_app. */
    {.name = "app",
     .key_alias = "wsgi_app",
     .metavar = "APP",
     .type = T_STR,
     .off = OFF(app),
     .flags = F_NONEMPTY,
     .help = "the app: path/to/app.so[:symbol]"},
};

_Static_assert(sizeof settings_table / sizeof settings_table[0] == NSETTINGS,
               "NSETTINGS in settings_priv.h is the number of rows");
_Static_assert(sizeof(nw_worker_class) == sizeof(int), "enum settings are stored as int");
_Static_assert(sizeof(nw_protocol) == sizeof(int), "enum settings are stored as int");
_Static_assert(sizeof(nw_process_manager) == sizeof(int), "enum settings are stored as int");

const char *settings_loglevel_name(int level)
{
    return settings_choice_name(loglevels, level);
}

const char *settings_process_manager_name(nw_process_manager pm)
{
    return settings_choice_name(process_managers, (int)pm);
}

const char *settings_worker_class_name(nw_worker_class c)
{
    return settings_choice_name(worker_classes, (int)c);
}
