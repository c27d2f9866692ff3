/*
 * settings.c - every setting is one row of settings_table[]; the CLI parser
 * and --help (settings_cli.c), the config file parser and --print-config
 * (settings_file.c) and validation all walk it.
 *
 * Values arrive as text from three sources (file, NARWHAL_CMD_ARGS, argv).
 * Each source is first collected as (row, text, where) entries, then the
 * sources are applied in precedence order through one converter per type,
 * so a value means the same thing wherever it was written.
 *
 * libconfuse only tokenizes the file: every key is declared CFGT_STR (or a
 * string list), so `workers = 4`, `workers = '4'` and `daemon = False` all
 * reach the converters as text.
 */
#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "narwhal.h"
#include "settings_priv.h"
#include "util.h"

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

static const struct choice stop_signals[] = {
    {"USR1", SIGUSR1}, {"TERM", SIGTERM}, {"INT", SIGINT},     {"QUIT", SIGQUIT},
    {"HUP", SIGHUP},   {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}, {NULL, 0},
};

static int check_bind(const char *v, char *err, size_t errlen);
static int check_env(const char *v, char *err, size_t errlen);
static int check_access_format(const char *v, char *err, size_t errlen);

const struct setting settings_table[] = {
    {"config", NULL, 'c', "config", NULL, T_STR, OFF(config), NULL, 0, 0, NULL, NULL, "FILE",
     "read settings from FILE (gunicorn.conf syntax)", F_CLI_ONLY | F_NONEMPTY},
    {"bind", NULL, 'b', "bind", NULL, T_LIST, OFF(bind), "127.0.0.1:5000", 0, 0, NULL, check_bind,
     "ADDR", "listen on HOST:PORT, [IPV6]:PORT or unix:PATH; repeatable", 0},
    {"workers", NULL, 'w', "workers", NULL, T_INT, OFF(workers), "1", 1, INT_MAX, NULL, NULL, "INT",
     "number of worker processes (default $WEB_CONCURRENCY or 1)", 0},
    {"worker_class", NULL, 'k', "worker-class", NULL, T_ENUM, OFF(worker_class), "sync", 0, 0,
     worker_classes, NULL, "CLASS", "sync, threads or async (or gthread, gevent, eventlet)", 0},
    {"threads", NULL, 0, "threads", NULL, T_INT, OFF(threads), "1", 1, INT_MAX, NULL, NULL, "INT",
     "threads per worker (threads class)", 0},
    {"worker_connections", NULL, 0, "worker-connections", NULL, T_INT, OFF(worker_connections),
     "1000", 1, INT_MAX, NULL, NULL, "INT",
     "most connections a worker holds open; past it the backlog waits (every class)", 0},
    {"coroutine_stack_size", NULL, 0, "coroutine-stack-size", NULL, T_INT,
     OFF(coroutine_stack_size), "256", 16, 65536, NULL, NULL, "KIB",
     "stack per coroutine in KiB (async class)", 0},
    {"backlog", NULL, 0, "backlog", NULL, T_INT, OFF(backlog), "2048", 1, INT_MAX, NULL, NULL,
     "INT", "listen(2) backlog", 0},
    {"protocol", NULL, 0, "protocol", NULL, T_ENUM, OFF(protocol), "auto", 0, 0, protocols, NULL,
     "PROTO", "auto, fastcgi or uwsgi", 0},
    /* See conn.c (conn_end) and NOTES.md: a same-host TCP connection that
     * ends after a response gets FIN, then RST, so no side keeps it in
     * TIME_WAIT; "fin" is the plain close. */
    {"close_mode", NULL, 0, "close-mode", NULL, T_ENUM, OFF(close_mode), "reset", 0, 0, close_modes,
     NULL, "MODE",
     "how a connection ends after its last response: reset (FIN then RST, same-host TCP "
     "peers only) or fin",
     0},
    {"pidfile", NULL, 'p', "pid", NULL, T_STR, OFF(pidfile), NULL, 0, 0, NULL, NULL, "FILE",
     "write the master's pid to FILE", F_NONEMPTY},
    {"accesslog", NULL, 0, "access-logfile", NULL, T_STR, OFF(accesslog), NULL, 0, 0, NULL, NULL,
     "FILE", "access log file ('-' = stdout; default off)", F_NONEMPTY},
    {"access_log_format", NULL, 0, "access-logformat", NULL, T_STR, OFF(access_log_format),
     NW_ACCESS_LOG_FORMAT, 0, 0, NULL, check_access_format, "FORMAT",
     "access log format, gunicorn's atoms", 0},
    {"errorlog", NULL, 0, "error-logfile", "log-file", T_STR, OFF(errorlog), "-", 0, 0, NULL, NULL,
     "FILE", "error log file ('-' = stderr)", F_NONEMPTY},
    {"loglevel", NULL, 0, "log-level", NULL, T_ENUM, OFF(loglevel), "info", 0, 0, loglevels, NULL,
     "LEVEL", "debug, info, warning, error or critical", 0},
    {"timeout", NULL, 't', "timeout", NULL, T_INT, OFF(timeout), "30", 0, INT_MAX, NULL, NULL,
     "INT", "per-request deadline: waits cut off with a 504, a stuck worker killed (0 = off)", 0},
    {"graceful_timeout", NULL, 0, "graceful-timeout", NULL, T_INT, OFF(graceful_timeout), "30", 0,
     INT_MAX, NULL, NULL, "INT", "seconds workers get to finish on a graceful stop", 0},
    /* 75 s outlives nginx's upstream keepalive_timeout (60 s), so nginx
     * always closes an idle upstream connection first and never writes to
     * one narwhal is closing. */
    {"keepalive", NULL, 0, "keep-alive", NULL, T_INT, OFF(keepalive), "75", 0, INT_MAX, NULL, NULL,
     "INT", "seconds an idle keep-conn connection stays open", 0},
    {"daemon", NULL, 'D', "daemon", NULL, T_BOOL, OFF(daemon), "false", 0, 0, NULL, NULL, NULL,
     "detach and run in the background", 0},
    {"chdir", NULL, 0, "chdir", NULL, T_STR, OFF(chdir), NULL, 0, 0, NULL, NULL, "DIR",
     "change to DIR before loading the app", F_NONEMPTY},
    {"raw_env", NULL, 'e', "env", NULL, T_LIST, OFF(raw_env), NULL, 0, 0, NULL, check_env,
     "KEY=VALUE", "set an environment variable; repeatable", 0},
    {"user", NULL, 'u', "user", NULL, T_STR, OFF(user), NULL, 0, 0, NULL, NULL, "USER",
     "switch workers to USER (name or uid)", F_NONEMPTY},
    {"group", NULL, 'g', "group", NULL, T_STR, OFF(group), NULL, 0, 0, NULL, NULL, "GROUP",
     "switch workers to GROUP (name or gid)", F_NONEMPTY},
    {"umask", NULL, 'm', "umask", NULL, T_UMASK, OFF(umask), "0", 0, 0777, NULL, NULL, "MODE",
     "umask (0o22, 022 or 18)", 0},
    {"limit_request_line", NULL, 0, "limit-request-line", NULL, T_INT, OFF(limit_request_line),
     "4094", 0, 8190, NULL, NULL, "INT", "longest request line (0 = unlimited)", 0},
    {"limit_request_fields", NULL, 0, "limit-request-fields", NULL, T_INT,
     OFF(limit_request_fields), "100", 0, 32768, NULL, NULL, "INT", "most request headers", 0},
    {"limit_request_field_size", NULL, 0, "limit-request-field-size", NULL, T_INT,
     OFF(limit_request_field_size), "8190", 0, INT_MAX, NULL, NULL, "INT",
     "largest request header (0 = unlimited)", 0},
    {"max_requests", NULL, 0, "max-requests", NULL, T_INT, OFF(max_requests), "0", 0, INT_MAX, NULL,
     NULL, "INT", "restart a worker after INT requests (0 = never)", 0},
    {"max_requests_jitter", NULL, 0, "max-requests-jitter", NULL, T_INT, OFF(max_requests_jitter),
     "0", 0, INT_MAX, NULL, NULL, "INT", "random extra requests before the restart", 0},
    {"reload", NULL, 0, "reload", NULL, T_BOOL, OFF(reload), "false", 0, 0, NULL, NULL, NULL,
     "development: replace the workers when the app or the config file changes", 0},
    {"spew", NULL, 0, "spew", NULL, T_BOOL, OFF(spew), "false", 0, 0, NULL, NULL, NULL,
     "log every protocol record and request state change (debug firehose)", 0},
    {"preload_app", NULL, 0, "preload", NULL, T_BOOL, OFF(preload_app), "false", 0, 0, NULL, NULL,
     NULL, "load the app in the master before forking (HUP then keeps the old code)", 0},
    {"exec", NULL, 0, "exec", NULL, T_STR, OFF(exec), NULL, 0, 0, NULL, NULL, "PROGRAM",
     "supervise PROGRAM, an existing FastCGI program, instead of loading an APP "
     "(its arguments follow --)",
     F_NONEMPTY},
    {"exec_args", NULL, 0, "exec-arg", NULL, T_LIST, OFF(exec_args), NULL, 0, 0, NULL, NULL, "ARG",
     "an argument for the --exec PROGRAM; repeatable (or put them after --)", 0},
    /* libfcgi programs finish the request in hand and exit on SIGUSR1
     * (php-cgi too); SIGTERM kills a libfcgi program on the spot. */
    {"exec_stop_signal", NULL, 0, "exec-stop-signal", NULL, T_ENUM, OFF(exec_stop_signal), "USR1",
     0, 0, stop_signals, NULL, "SIGNAL",
     "signal asking an --exec program to finish and exit (graceful stop)", 0},
    {"check_config", NULL, 0, "check-config", NULL, T_BOOL, OFF(check_config), "false", 0, 0, NULL,
     NULL, NULL, "check the settings and exit", F_CLI_ONLY},
    {"print_config", NULL, 0, "print-config", NULL, T_BOOL, OFF(print_config), "false", 0, 0, NULL,
     NULL, NULL, "print the settings as a config file and exit", F_CLI_ONLY},
    {"help", NULL, 'h', "help", NULL, T_ACTION, 0, NULL, 0, 0, NULL, NULL, NULL,
     "show this help and exit", F_CLI_ONLY},
    {"version", NULL, 'v', "version", NULL, T_ACTION, 0, NULL, 0, 0, NULL, NULL, NULL,
     "show the version and exit", F_CLI_ONLY},
    /* The positional argument; gunicorn's file key is wsgi_app. */
    {"app", "wsgi_app", 0, NULL, NULL, T_STR, OFF(app), NULL, 0, 0, NULL, NULL, "APP",
     "the app: path/to/app.so[:symbol]", F_NONEMPTY},
};

_Static_assert(sizeof settings_table / sizeof settings_table[0] == NSETTINGS,
               "NSETTINGS in settings_priv.h is the number of rows");
_Static_assert(sizeof(nw_worker_class) == sizeof(int), "enum settings are stored as int");
_Static_assert(sizeof(nw_protocol) == sizeof(int), "enum settings are stored as int");

/* ---- small helpers ---------------------------------------------------------- */

static void *field(nw_settings *s, const struct setting *r)
{
    return (char *)s + r->off;
}

static void strlist_add(nw_strlist *l, const char *v)
{
    l->v = nw_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = nw_xstrdup(v);
}

static void strlist_clear(nw_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- converters: text -> field, one per type -------------------------------- */

static int parse_long(const char *v, int base, long *out)
{
    char *end;
    if (!*v || isspace((unsigned char)*v))
        return -1;
    errno = 0;
    *out = strtol(v, &end, base);
    if (*end)
        return -1;
    if (errno == ERANGE)
        *out = *out < 0 ? LONG_MIN : LONG_MAX;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

static int check_range(const struct setting *r, const char *v, long n, char *err, size_t errlen)
{
    const char *fmt = r->type == T_UMASK ? "'%s' must be at %s %#lo" : "'%s' must be at %s %ld";
    if (n < r->min)
        return snprintf(err, errlen, fmt, v, "least", r->min), -1;
    if (n > r->max)
        return snprintf(err, errlen, fmt, v, "most", r->max), -1;
    return 0;
}

/* Converts the text v for row r into s. List values are appended. Returns 0,
 * or -1 with a message (without the setting's name) in err. */
static int convert(const struct setting *r, const char *v, nw_settings *s, char *err, size_t errlen)
{
    long n;
    bool b;

    switch (r->type) {
    case T_INT:
        if (parse_long(v, 10, &n) < 0)
            return snprintf(err, errlen, "'%s' is not an integer", v), -1;
        if (check_range(r, v, n, err, errlen) < 0)
            return -1;
        *(int *)field(s, r) = (int)n;
        return 0;
    case T_UMASK:
        /* 0o22 (Python), 022 (C, octal) or 18 (decimal) */
        if (v[0] == '0' && (v[1] == 'o' || v[1] == 'O')) {
            if (!v[2] || parse_long(v + 2, 8, &n) < 0 || v[2] == '-' || v[2] == '+')
                return snprintf(err, errlen, "'%s' is not an octal mode", v), -1;
        } else if (parse_long(v, v[0] == '0' ? 8 : 10, &n) < 0) {
            return snprintf(err, errlen, "'%s' is not a mode (0o22, 022 or 18)", v), -1;
        }
        if (check_range(r, v, n, err, errlen) < 0)
            return -1;
        *(int *)field(s, r) = (int)n;
        return 0;
    case T_BOOL:
        if (parse_bool(v, &b) < 0)
            return snprintf(err, errlen, "'%s' is not a boolean (true or false)", v), -1;
        *(bool *)field(s, r) = b;
        return 0;
    case T_ENUM:
        for (const struct choice *c = r->choices; c->name; c++) {
            if (strcasecmp(v, c->name) == 0) {
                *(int *)field(s, r) = c->value;
                return 0;
            }
        }
        {
            size_t len = (size_t)snprintf(err, errlen, "'%s' is not one of", v);
            for (const struct choice *c = r->choices; c->name && len < errlen; c++)
                if (strcmp(settings_choice_name(r->choices, c->value), c->name) == 0)
                    len += (size_t)snprintf(err + len, errlen - len, "%s %s",
                                            c == r->choices ? "" : ",", c->name);
        }
        return -1;
    case T_STR:
    case T_LIST:
        if ((r->flags & F_NONEMPTY) && !*v)
            return snprintf(err, errlen, "must not be empty"), -1;
        if (r->check && r->check(v, err, errlen) < 0)
            return -1;
        if (r->type == T_LIST) {
            strlist_add(field(s, r), v);
        } else {
            char **p = field(s, r);
            free(*p);
            *p = nw_xstrdup(v);
        }
        return 0;
    case T_ACTION:
        return 0;
    }
    return -1;
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

/* ---- sources: (row, text, where) entries --------------------------------- */

void settings_source_add(struct source *src, const struct setting *r, const char *val, char *where)
{
    src->v = nw_xrealloc(src->v, (src->n + 1) * sizeof *src->v);
    src->v[src->n++] = (struct entry){r, val ? nw_xstrdup(val) : NULL, where};
}

static void source_free(struct source *src)
{
    for (size_t i = 0; i < src->n; i++) {
        free(src->v[i].val);
        free(src->v[i].where);
    }
    free(src->v);
    src->v = NULL;
    src->n = 0;
}

/* Applies one source on top of s. The first value a source gives a list
 * replaces the list from lower sources; later ones accumulate. Reports every
 * bad value; returns the number of them. */
static int source_apply(const struct source *src, nw_settings *s, FILE *err)
{
    bool touched[NSETTINGS] = {false};
    char msg[512];
    int bad = 0;

    for (size_t i = 0; i < src->n; i++) {
        const struct entry *e = &src->v[i];
        size_t idx = (size_t)(e->row - settings_table);
        if (e->row->type == T_LIST && !touched[idx])
            strlist_clear(field(s, e->row));
        touched[idx] = true;
        if (!e->val)
            continue;
        if (convert(e->row, e->val, s, msg, sizeof msg) < 0) {
            fprintf(err, "narwhal: %s: %s\n", e->where, msg);
            bad++;
        }
    }
    return bad;
}

static void apply_defaults(nw_settings *s)
{
    char msg[512];
    const char *wc = getenv("WEB_CONCURRENCY");

    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *r = &settings_table[i];
        if (r->def && convert(r, r->def, s, msg, sizeof msg) < 0)
            abort(); /* a bad default in the table */
        if (r->off == OFF(workers) && wc && convert(r, wc, s, msg, sizeof msg) < 0)
            convert(r, r->def, s, msg, sizeof msg);
    }
}

const struct setting *settings_row_by_key(const char *key)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (!(settings_table[i].flags & F_CLI_ONLY) &&
            (strcmp(settings_table[i].name, key) == 0 ||
             (settings_table[i].key_alias && strcmp(settings_table[i].key_alias, key) == 0)))
            return &settings_table[i];
    return NULL;
}

/* ---- the entry points ---------------------------------------------------------- */

static const char *last_value(const struct source *src, const struct setting *r)
{
    for (size_t i = src->n; i-- > 0;)
        if (src->v[i].row == r)
            return src->v[i].val;
    return NULL;
}

int settings_load(nw_settings *s, int argc, char **argv, const char *env_args, FILE *out, FILE *err)
{
    struct source file = {0}, env = {0}, cli = {0};
    const struct setting *action = NULL;
    char **words = NULL;
    int nwords = 0, rc = 1, bad = 0;
    const char *config;

    memset(s, 0, sizeof *s);
    apply_defaults(s);

    if (env_args && settings_split_words(env_args, &words, &nwords, err) < 0)
        return 1;
    if (nwords > 0) {
        char **eargv = nw_xmalloc((size_t)(nwords + 2) * sizeof *eargv);
        eargv[0] = (char *)"narwhal";
        memcpy(eargv + 1, words, (size_t)nwords * sizeof *words);
        eargv[nwords + 1] = NULL;
        bad |= settings_parse_args(nwords + 1, eargv, ENV_NAME ": ", &env, &action, err);
        free(eargv);
    }
    bad |= settings_parse_args(argc, argv, "", &cli, &action, err);
    if (bad)
        goto out;
    if (action) {
        if (strcmp(action->name, "help") == 0)
            settings_usage(out);
        else
            fprintf(out, "narwhal %s\n", PACKAGE_VERSION);
        rc = 2;
        goto out;
    }

    config = last_value(&cli, &settings_table[0]);
    if (!config)
        config = last_value(&env, &settings_table[0]);
    if (config && *config && settings_parse_file(config, &file, err) < 0)
        goto out;

    bad = source_apply(&file, s, err);
    bad += source_apply(&env, s, err);
    bad += source_apply(&cli, s, err);
    if (!bad && s->bind.n == 0) {
        fprintf(err, "narwhal: bind: no address to listen on\n");
        bad++;
    }
    rc = bad ? 1 : 0;
out:
    source_free(&file);
    source_free(&env);
    source_free(&cli);
    for (int i = 0; i < nwords; i++)
        free(words[i]);
    free(words);
    return rc;
}

void settings_free(nw_settings *s)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *r = &settings_table[i];
        if (r->type == T_STR)
            free(*(char **)field(s, r));
        else if (r->type == T_LIST)
            strlist_clear(field(s, r));
    }
    memset(s, 0, sizeof *s);
}

const char *settings_loglevel_name(int level)
{
    return settings_choice_name(loglevels, level);
}

const char *settings_worker_class_name(nw_worker_class c)
{
    return settings_choice_name(worker_classes, (int)c);
}

/* ---- cross-setting checks ---------------------------------------------------- */

/* Is the --exec program there to run? */
static int settings_check_program(const nw_settings *s, FILE *err)
{
    const char *prog = s->exec;
    char *found = nw_find_in_path(prog);
    if (!found) {
        if (strchr(prog, '/'))
            fprintf(err, "narwhal: exec: cannot run %s: %s\n", prog, strerror(errno));
        else
            fprintf(err, "narwhal: exec: %s not found in PATH\n", prog);
        return -1;
    }
    free(found);
    return 0;
}

/* --exec supervises a program narwhal cannot see inside: settings that
 * shape narwhal's own workers cannot apply, and are refused, not ignored. */
static int check_exec_mode(const nw_settings *s, FILE *err)
{
    const char *bad = NULL;
    if (s->app)
        bad = "give either an APP or --exec PROGRAM, not both";
    else if (s->worker_class != NW_CLASS_SYNC || s->threads != 1)
        bad = "worker_class and threads shape narwhal's own workers; they do not apply to "
              "--exec programs";
    else if (s->worker_connections != 1000 || s->coroutine_stack_size != 256)
        bad = "worker_connections and coroutine_stack_size do not apply to --exec programs";
    else if (s->accesslog)
        bad = "accesslog: narwhal does not see an --exec program's requests; log them in the "
              "program or in nginx";
    else if (s->max_requests || s->max_requests_jitter)
        bad = "max_requests: narwhal cannot count an --exec program's requests";
    else if (s->timeout != 30)
        bad = "timeout: narwhal cannot see an --exec program's requests to time them";
    else if (s->keepalive != 75 || s->protocol != NW_PROTO_AUTO || s->close_mode != NW_CLOSE_RESET)
        bad = "keepalive, protocol and close_mode are the --exec program's own business";
    else if (s->limit_request_line != 4094 || s->limit_request_fields != 100 ||
             s->limit_request_field_size != 8190)
        bad = "limit_request_*: narwhal does not parse an --exec program's requests";
    else if (s->bind.n != 1)
        bad = "bind: an --exec program takes exactly one listening socket (as fd 0)";
    if (bad) {
        fprintf(err, "narwhal: exec: %s\n", bad);
        return -1;
    }
    return settings_check_program(s, err);
}

int settings_finish(nw_settings *s, FILE *err)
{
    if (s->exec_args.n && !s->exec) {
        fprintf(err, "narwhal: arguments after -- are for --exec PROGRAM, which is not given\n");
        return -1;
    }
    if (s->exec && check_exec_mode(s, err) < 0)
        return -1;
    if (s->reload && s->preload_app) {
        fprintf(err, "narwhal: reload: cannot be combined with preload_app (the master would "
                     "keep the old code loaded)\n");
        return -1;
    }
    /* gunicorn: more than one thread turns the sync class into gthread. */
    if (s->worker_class == NW_CLASS_SYNC && s->threads > 1)
        s->worker_class = NW_CLASS_THREADS;
    return 0;
}

int settings_apply_env(const nw_settings *s, FILE *err)
{
    for (size_t i = 0; i < s->raw_env.n; i++) {
        char *kv = nw_xstrdup(s->raw_env.v[i]);
        char *eq = strchr(kv, '=');
        if (eq)
            *eq = 0;
        int rc = setenv(kv, eq ? eq + 1 : "", 1);
        free(kv);
        if (rc < 0) {
            fprintf(err, "narwhal: raw_env: cannot set '%s': %s\n", s->raw_env.v[i],
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}
