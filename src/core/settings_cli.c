/*
 * settings_cli.c - the command line side of the settings table: argv and
 * NARWHAL_CMD_ARGS through getopt_long, and --help.
 */
#include "settings.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "settings_priv.h"
#include "signals.h"

/* ---- command line ------------------------------------------------------------ */

static int flag_val(size_t i)
{
    return settings_table[i].short_flag ? settings_table[i].short_flag : 256 + (int)i;
}

static const struct setting *row_by_val(int val)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings_table[i].long_flag && flag_val(i) == val)
            return &settings_table[i];
    return NULL;
}

static int has_arg(const struct setting *r)
{
    return r->type == T_BOOL || r->type == T_ACTION ? no_argument : required_argument;
}

static void build_getopt(struct option *lo, char *so)
{
    size_t n = 0, k = 0;
    so[k++] = '-'; /* non-options in order, as code 1: no permuting */
    so[k++] = ':'; /* we print the errors */
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *r = &settings_table[i];
        if (!r->long_flag)
            continue;
        lo[n++] = (struct option){r->long_flag, has_arg(r), NULL, flag_val(i)};
        if (r->long_alias)
            lo[n++] = (struct option){r->long_alias, has_arg(r), NULL, flag_val(i)};
        if (r->short_flag) {
            so[k++] = (char)r->short_flag;
            if (has_arg(r) == required_argument)
                so[k++] = ':';
        }
    }
    lo[n] = (struct option){NULL, 0, NULL, 0};
    so[k] = '\0';
}

/* The option getopt_long just failed on, as the user wrote it: "--log-file",
 * "-t". getopt does not say whether it was long or short, so look. */
static char *bad_flag_name(char **argv, const struct option *lo)
{
    const char *a = optind > 0 ? argv[optind - 1] : "";
    size_t len = strcspn(a, "=");

    if (strncmp(a, "--", 2) == 0 && len > 2) {
        if (optopt == 0)
            return nw_xasprintf("%.*s", (int)len, a);
        for (const struct option *o = lo; o->name; o++)
            if (o->val == optopt && strncmp(o->name, a + 2, len - 2) == 0)
                return nw_xasprintf("%.*s", (int)len, a);
    }
    return nw_xasprintf("-%c", optopt);
}

/* Collects the options in argv into src. prefix names the source in
 * messages ("" for argv). *action is set to the first --help/--version row. */
int settings_parse_args(int argc, char **argv, const char *prefix, struct source *src,
                        const struct setting **action, FILE *err)
{
    struct option lo[2 * NSETTINGS + 1];
    char so[3 * NSETTINGS + 3];
    int c, longindex, rc = 0;
    const char *app = NULL;
    bool exec_given = false;

    if (argc < 1)
        return 0;
    build_getopt(lo, so);
    optind = 0; /* glibc: reinitialize, argv is a different vector */
    opterr = 0;
    for (bool stop = false;;) {
        const char *arg;
        longindex = -1;
        c = stop ? -1 : getopt_long(argc, argv, so, lo, &longindex);
        if (c == -1) {
            if (optind >= argc)
                break;
            arg = argv[optind++]; /* after "--"; getopt is done with argv */
            stop = true;
        } else if (c == 1) {
            arg = optarg;
        } else if (c == '?' || c == ':') {
            const struct setting *r = row_by_val(optopt);
            char *name = bad_flag_name(argv, lo);
            if (!r || (c == '?' && has_arg(r) == required_argument))
                fprintf(err, "narwhal: %sunknown option '%s'\n", prefix, name);
            else if (c == ':')
                fprintf(err, "narwhal: %s%s: requires a value\n", prefix, name);
            else
                fprintf(err, "narwhal: %s%s: takes no value\n", prefix, name);
            free(name);
            rc = -1;
            continue;
        } else {
            const struct setting *r = row_by_val(c);
            if (r->off == OFF(exec) && r->type == T_STR)
                exec_given = true;
            if (r->type == T_ACTION) {
                if (!*action)
                    *action = r;
            } else if (longindex >= 0) {
                settings_source_add(src, r, optarg ? optarg : "true",
                                    nw_xasprintf("%s--%s", prefix, lo[longindex].name));
            } else {
                settings_source_add(src, r, optarg ? optarg : "true",
                                    nw_xasprintf("%s-%c", prefix, c));
            }
            continue;
        }
        /* a positional argument; after "--" with --exec, the program's */
        if (stop && exec_given) {
            settings_source_add(src, settings_row_by_key("exec_args"), arg,
                                nw_xasprintf("%s-- %s", prefix, arg));
            continue;
        }
        if (app) {
            fprintf(err, "narwhal: %sunexpected argument '%s' (APP is already '%s')\n", prefix, arg,
                    app);
            rc = -1;
            continue;
        }
        app = arg;
    }
    if (app)
        settings_source_add(src, ROW_APP, app, nw_xasprintf("%sAPP", prefix));
    return rc;
}

/* Splits s into words like a shell: blanks separate, '...' is literal,
 * "..." allows \" \\ \$ \`, a backslash outside quotes escapes any char. */
int settings_split_words(const char *s, char ***words, int *nwords, FILE *err)
{
    size_t cap = strlen(s) + 1, k;
    char *buf = nw_xmalloc(cap);
    char **v = NULL;
    int n = 0;

    while (*s) {
        bool word = false;
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        k = 0;
        while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
            char q = *s;
            word = true;
            if (q == '\'' || q == '"') {
                s++;
                while (*s && *s != q) {
                    if (q == '"' && *s == '\\' && s[1] && strchr("\"\\$`", s[1]))
                        s++;
                    buf[k++] = *s++;
                }
                if (!*s) {
                    fprintf(err, "narwhal: %s: unterminated %s quote\n", ENV_NAME,
                            q == '"' ? "double" : "single");
                    for (int i = 0; i < n; i++)
                        free(v[i]);
                    free(v);
                    free(buf);
                    return -1;
                }
                s++;
            } else {
                if (q == '\\' && s[1])
                    s++;
                buf[k++] = *s++;
            }
        }
        if (word) {
            v = nw_xrealloc(v, (size_t)(n + 1) * sizeof *v);
            v[n] = nw_xmalloc(k + 1);
            memcpy(v[n], buf, k);
            v[n++][k] = '\0';
        }
    }
    free(buf);
    *words = v;
    *nwords = n;
    return 0;
}

/* ---- --help ----------------------------------------------------------------- */

#define HELP_COL 34

void settings_usage(FILE *out)
{
    fputs("usage: narwhal [OPTIONS] APP\n"
          "       narwhal [OPTIONS] --exec PROGRAM [-- ARG...]\n\n"
          "Serves APP (path/to/app.so[:symbol], default symbol \"app\") over FastCGI and\n"
          "uwsgi, or supervises an existing FastCGI PROGRAM.\n"
          "Settings come from defaults < -c FILE < $" ENV_NAME " < the command line;\n"
          "config keys are gunicorn's (workers = 4, bind = '127.0.0.1:5000').\n\n"
          "options:\n",
          out);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *r = &settings_table[i];
        char left[96], extra[128] = "";
        int len, n = 0;
        if (!r->long_flag)
            continue;
        len =
            snprintf(left, sizeof left, "  %c%c%s--%s%s%s%s%s", r->short_flag ? '-' : ' ',
                     r->short_flag ? r->short_flag : ' ', r->short_flag ? ", " : "  ", r->long_flag,
                     r->long_alias ? ", --" : "", r->long_alias ? r->long_alias : "",
                     r->metavar ? " " : "", r->metavar ? r->metavar : "");
        if (r->def && r->type != T_BOOL && r->off != OFF(workers) &&
            r->off != OFF(access_log_format))
            n = snprintf(extra, sizeof extra, " [%s]", r->def);
        if (!(r->flags & F_CLI_ONLY))
            snprintf(extra + n, sizeof extra - (size_t)n, " (key: %s)", r->name);
        /* two columns, 100 wide; what does not fit goes on the next line */
        if (len > HELP_COL - 2)
            fprintf(out, "%s\n%*s", left, HELP_COL, "");
        else
            fprintf(out, "%-*s", HELP_COL, left);
        if (HELP_COL + strlen(r->help) + strlen(extra) > 100)
            fprintf(out, "%s\n%*s%s\n", r->help, HELP_COL - 1, "", extra);
        else
            fprintf(out, "%s%s\n", r->help, extra);
    }
    fputs("\nsignals to the master (kill -SIG $(cat PIDFILE)):\n", out);
    for (int i = 0; i < nw_signal_count; i++) {
        /* the help text, wrapped at 100 columns */
        const char *h = nw_signal_table[i].help;
        fprintf(out, "  %-6s", nw_signal_table[i].name);
        for (int col = 8; *h;) {
            size_t word = strcspn(h, " ");
            if (col > 8 && col + 1 + (int)word > 100) {
                fprintf(out, "\n%8s", "");
                col = 8;
            } else if (col > 8) {
                fputc(' ', out);
                col++;
            }
            fprintf(out, "%.*s", (int)word, h);
            col += (int)word;
            h += word;
            h += strspn(h, " ");
        }
        fputc('\n', out);
    }
}
