/*
 * settings.c - every setting is one row of settings_table[] (in
 * settings_table.c); the CLI parser and --help (settings_cli.c), the config
 * file parser and --print-config (settings_file.c) and validation (here) all
 * walk it.
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
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cidr.h"
#include "log.h"
#include "settings_priv.h"
#include "util.h"

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

/* Releases what row r owns in s (its string or list). */
static void row_free(const struct setting *r, nw_settings *s)
{
    if (r->type == T_STR) {
        char **p = field(s, r);
        free(*p);
        *p = NULL;
    } else if (r->type == T_LIST) {
        strlist_clear(field(s, r));
    }
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
    for (size_t i = 0; i < NSETTINGS; i++)
        row_free(&settings_table[i], s);
    memset(s, 0, sizeof *s);
}

/* ---- values compared: with each other and with the table's defaults ---------- */

static bool same_str(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

static bool same_list(const nw_strlist *x, const nw_strlist *y)
{
    if (x->n != y->n)
        return false;
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->v[i], y->v[i]) != 0)
            return false;
    return true;
}

/* Does row r hold the same value in a and in b? */
static bool row_equal(const struct setting *r, const nw_settings *a, const nw_settings *b)
{
    const void *x = settings_cfield(a, r), *y = settings_cfield(b, r);
    switch (r->type) {
    case T_INT:
    case T_UMASK:
    case T_ENUM:
        return *(const int *)x == *(const int *)y;
    case T_BOOL:
        return *(const bool *)x == *(const bool *)y;
    case T_STR:
        return same_str(*(char *const *)x, *(char *const *)y);
    case T_LIST:
        return same_list(x, y);
    case T_ACTION:
        break;
    }
    return true;
}

/* The default goes through the converter, as in apply_defaults, so "30",
 * "sync" and "127.0.0.1:5000" mean here what they mean there. */
static bool row_is_default(const struct setting *r, const nw_settings *s)
{
    nw_settings d;
    char msg[512];
    memset(&d, 0, sizeof d);
    if (r->def && convert(r, r->def, &d, msg, sizeof msg) < 0)
        abort(); /* a bad default in the table */
    bool same = row_equal(r, s, &d);
    row_free(r, &d);
    return same;
}

bool settings_is_default(const nw_settings *s, const char *name)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings_table[i].name, name) == 0)
            return row_is_default(&settings_table[i], s);
    abort(); /* not a setting: the caller's typo */
}

const char *settings_next_restart_change(const nw_settings *old, const nw_settings *ns, size_t *pos)
{
    while (*pos < NSETTINGS) {
        const struct setting *r = &settings_table[(*pos)++];
        if ((r->flags & F_RESTART) && !row_equal(r, old, ns))
            return r->name;
    }
    return NULL;
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
 * shape narwhal's own workers (F_NO_EXEC rows) cannot apply, and are
 * refused, not ignored. */
static int check_exec_mode(const nw_settings *s, FILE *err)
{
    const char *bad = NULL;
    char why[128];
    if (s->app)
        bad = "give either an APP or --exec PROGRAM, not both";
    for (size_t i = 0; !bad && i < NSETTINGS; i++) {
        const struct setting *r = &settings_table[i];
        if (!(r->flags & F_NO_EXEC) || row_is_default(r, s))
            continue;
        snprintf(why, sizeof why, "%s does not apply to --exec programs", r->name);
        bad = r->exec_why ? r->exec_why : why;
    }
    if (!bad && s->bind.n != 1)
        bad = "bind: an --exec program takes exactly one listening socket (as fd 0)";
    if (bad) {
        fprintf(err, "narwhal: exec: %s\n", bad);
        return -1;
    }
    return settings_check_program(s, err);
}

/* --cgi PROGRAM or --cgi-root DIR stand for the APP: one of them, the
 * program runnable, every root a directory. */
static int check_cgi_mode(const nw_settings *s, FILE *err)
{
    struct stat st;
    if (s->cgi && s->cgi_root.n) {
        fprintf(err, "narwhal: cgi: give either --cgi PROGRAM or --cgi-root DIR, not both\n");
        return -1;
    }
    if (s->app) {
        fprintf(err, "narwhal: cgi: give either an APP or --cgi/--cgi-root, not both\n");
        return -1;
    }
    /* relative to chdir, which the workers are in: checked there */
    if (s->cgi && (s->cgi[0] == '/' || !s->chdir) && access(s->cgi, X_OK) < 0) {
        fprintf(err, "narwhal: cgi: cannot run %s: %s\n", s->cgi, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < s->cgi_root.n; i++) {
        const char *d = s->cgi_root.v[i];
        if (d[0] != '/' && s->chdir)
            continue;
        const char *why = stat(d, &st) < 0       ? strerror(errno)
                          : !S_ISDIR(st.st_mode) ? "not a directory"
                                                 : NULL;
        if (why) {
            fprintf(err, "narwhal: cgi_root: %s: %s\n", d, why);
            return -1;
        }
    }
    return 0;
}

/* libfcgi's FCGI_WEB_SERVER_ADDRS ("10.0.0.1,10.0.0.2") is honoured as
 * allowed_clients when that is not set, entries checked the same way. (An
 * --exec program reads it itself.) */
static int clients_from_env(nw_settings *s, FILE *err)
{
    const char *env = getenv("FCGI_WEB_SERVER_ADDRS");
    if (!env)
        return 0;
    char *copy = nw_xstrdup(env);
    int rc = 0;
    for (char *save = NULL, *t = strtok_r(copy, ", \t", &save); t;
         t = strtok_r(NULL, ", \t", &save)) {
        char why[160];
        nw_cidr c;
        if (cidr_parse(t, &c, why, sizeof why) < 0) {
            fprintf(err, "narwhal: FCGI_WEB_SERVER_ADDRS: %s\n", why);
            rc = -1;
            break;
        }
        strlist_add(&s->allowed_clients, t);
    }
    free(copy);
    if (rc < 0)
        strlist_clear(&s->allowed_clients);
    return rc;
}

/* dynamic's bounds: a bound left at its default gives way to the ones
 * set (max_spare_workers 3 with workers 2 is 2); bounds set that cannot
 * hold together are refused, naming both. start_workers 0 is php-fpm's
 * default, midway between the spare bounds. */
static int check_process_manager(nw_settings *s, FILE *err)
{
    if (s->worker_memory_hard_limit && s->max_worker_memory &&
        s->worker_memory_hard_limit <= s->max_worker_memory) {
        fprintf(err,
                "narwhal: worker_memory_hard_limit (%d MiB) must be above max_worker_memory (%d "
                "MiB): the graceful replacement must come first\n",
                s->worker_memory_hard_limit, s->max_worker_memory);
        return -1;
    }
    if (s->process_manager != NW_PM_DYNAMIC)
        return 0;
    if (s->max_spare_workers > s->workers && settings_is_default(s, "max_spare_workers"))
        s->max_spare_workers = s->workers;
    if (s->min_spare_workers > s->max_spare_workers && settings_is_default(s, "min_spare_workers"))
        s->min_spare_workers = s->max_spare_workers;
    const char *pre = "narwhal: process_manager = dynamic:";
    if (s->max_spare_workers > s->workers) {
        fprintf(err, "%s max_spare_workers (%d) must not exceed workers (%d), the most workers "
                     "dynamic runs\n",
                pre, s->max_spare_workers, s->workers);
        return -1;
    }
    if (s->min_spare_workers > s->max_spare_workers) {
        fprintf(err, "%s min_spare_workers (%d) must not exceed max_spare_workers (%d)\n", pre,
                s->min_spare_workers, s->max_spare_workers);
        return -1;
    }
    if (s->start_workers > s->workers) {
        fprintf(err, "%s start_workers (%d) must not exceed workers (%d)\n", pre, s->start_workers,
                s->workers);
        return -1;
    }
    if (!s->start_workers)
        s->start_workers =
            s->min_spare_workers + (s->max_spare_workers - s->min_spare_workers) / 2;
    return 0;
}

int settings_finish(nw_settings *s, FILE *err)
{
    if ((s->cgi || s->cgi_root.n) && check_cgi_mode(s, err) < 0)
        return -1;
    if (s->exec_args.n && !s->exec) {
        fprintf(err, "narwhal: arguments after -- are for --exec PROGRAM, which is not given\n");
        return -1;
    }
    if (s->exec && check_exec_mode(s, err) < 0)
        return -1;
    if (!s->exec && !s->allowed_clients.n && clients_from_env(s, err) < 0)
        return -1;
    if (s->reload && s->preload_app) {
        fprintf(err, "narwhal: reload: cannot be combined with preload_app (the master would "
                     "keep the old code loaded)\n");
        return -1;
    }
    if (check_process_manager(s, err) < 0)
        return -1;
    if (s->app && nw_app_spec_kind(s->app) == NW_APP_BAD) {
        size_t m = strcspn(s->app, ":");
        if (m > 3 && strncmp(s->app + m - 3, ".py", 3) == 0)
            fprintf(err, "narwhal: APP '%s' names a file: give the module and its callable, as "
                         "gunicorn takes them (%.*s:app)\n",
                    s->app, (int)(m - 3), s->app);
        else
            fprintf(err, "narwhal: APP '%s' is neither %s\n", s->app, NW_APP_FORMS);
        return -1;
    }
    /* gunicorn: more than one thread turns the sync class into gthread. */
    if (s->worker_class == NW_CLASS_SYNC && s->threads > 1)
        s->worker_class = NW_CLASS_THREADS;
    return 0;
}

void settings_warn_no_effect(const nw_settings *s)
{
    if (s->worker_class == NW_CLASS_ASYNC && s->threads > 1)
        log_warning("threads = %d has no effect with the async worker class: its coroutines "
                    "share one thread per worker; scale with workers and worker_connections",
                    s->threads);
    if (s->worker_class != NW_CLASS_ASYNC && !settings_is_default(s, "coroutine_stack_size"))
        log_warning("coroutine_stack_size has no effect with the %s worker class",
                    settings_worker_class_name(s->worker_class));
    if (!s->exec && !settings_is_default(s, "exec_stop_signal"))
        log_warning("exec_stop_signal has no effect without --exec");
    if (s->exec && (s->preload_app || s->spew))
        log_warning("%s has no effect with --exec: narwhal neither loads nor parses for the "
                    "program",
                    s->preload_app ? "preload_app" : "spew");
    if (!s->cgi && !s->cgi_root.n && s->cgi_max_running)
        log_warning("cgi_max_running has no effect without --cgi or --cgi-root");
    if ((s->cgi || s->cgi_root.n) && s->preload_app)
        log_warning("preload_app has no effect with --cgi or --cgi-root: there is no app to load");
    if (!s->max_requests && s->max_requests_jitter)
        log_warning("max_requests_jitter has no effect while max_requests is 0");
    if (!s->statsd_host && !settings_is_default(s, "statsd_prefix"))
        log_warning("statsd_prefix has no effect without statsd_host");
    int python = s->app && nw_app_spec_kind(s->app) == NW_APP_PYTHON;
    if (!python && (s->pythonpath || s->virtualenv))
        log_warning("%s has no effect: the app is not a Python app (module:callable)",
                    s->pythonpath ? "pythonpath" : "virtualenv");
    if (!s->slowlog_timeout && s->slowlog)
        log_warning("slowlog has no effect while slowlog_timeout is 0");
    if (!s->ping_path && !settings_is_default(s, "ping_response"))
        log_warning("ping_response has no effect without ping_path");
    static const char *const dynamic_only[] = {"min_spare_workers", "max_spare_workers",
                                               "start_workers"};
    for (size_t i = 0; i < sizeof dynamic_only / sizeof *dynamic_only; i++)
        if (s->process_manager != NW_PM_DYNAMIC && !settings_is_default(s, dynamic_only[i]))
            log_warning("%s has no effect unless process_manager = dynamic", dynamic_only[i]);
    if (s->process_manager != NW_PM_ONDEMAND && !settings_is_default(s, "worker_idle_timeout"))
        log_warning("worker_idle_timeout has no effect unless process_manager = ondemand");
    if (s->process_manager == NW_PM_STATIC && !settings_is_default(s, "max_spawn_rate"))
        log_warning("max_spawn_rate has no effect with process_manager = static");
    size_t unix_binds = 0;
    for (size_t i = 0; i < s->bind.n; i++)
        unix_binds += strncmp(s->bind.v[i], "unix:", 5) == 0;
    /* who may connect: an operator who thinks it is restricted must hear it is not */
    if (s->allowed_clients.n && unix_binds == s->bind.n)
        log_warning("allowed_clients has no effect: every bind is a unix socket, whose "
                    "socket_owner, socket_group and socket_mode decide who may connect");
    static const char *const unix_only[] = {"socket_owner", "socket_group", "socket_mode"};
    for (size_t i = 0; !unix_binds && i < sizeof unix_only / sizeof *unix_only; i++)
        if (!settings_is_default(s, unix_only[i]))
            log_warning("%s has no effect without a unix: bind", unix_only[i]);
    if (s->exec && s->statsd_host)
        log_warning("statsd_host sends only gunicorn.workers with --exec: narwhal does not see "
                    "the program's requests");
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
