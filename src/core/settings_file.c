/*
 * settings_file.c - the config file side of the settings table: reading a
 * gunicorn.conf-style file through libconfuse (which only tokenizes it) and
 * writing one back for --print-config.
 */
#include "settings.h"

#include <confuse.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "settings_priv.h"

/* ---- config file ------------------------------------------------------------ */

/* What the file gave one row: its values with the line of each. */
struct file_row {
    cfg_opt_t *opt; /* the key last assigned (app or wsgi_app) */
    char **vals;
    int *lines;
    size_t n;
};

/* libconfuse's callbacks carry no user pointer; parsing is single-threaded. */
static struct file_row *file_rows;
static FILE *file_err;

/* Brings fr up to date with opt's values; a value not seen before gets the
 * current line. */
static void file_row_sync(struct file_row *fr, cfg_opt_t *opt, int line)
{
    size_t n = cfg_opt_size(opt);
    char **vals = nw_xmalloc(n * sizeof *vals);
    int *lines = nw_xmalloc(n * sizeof *lines);

    for (size_t i = 0; i < n; i++) {
        const char *v = cfg_opt_getnstr(opt, (unsigned)i);
        vals[i] = nw_xstrdup(v ? v : "");
        lines[i] = i < fr->n && strcmp(fr->vals[i], vals[i]) == 0 ? fr->lines[i] : line;
    }
    for (size_t i = 0; i < fr->n; i++)
        free(fr->vals[i]);
    free(fr->vals);
    free(fr->lines);
    fr->vals = vals;
    fr->lines = lines;
    fr->n = n;
    fr->opt = opt;
}

static int file_validate(cfg_t *cfg, cfg_opt_t *opt)
{
    const struct setting *r = settings_row_by_key(opt->name);
    if (r)
        file_row_sync(&file_rows[r - settings_table], opt, cfg->line);
    return 0;
}

static void file_error(cfg_t *cfg, const char *fmt, va_list ap)
{
    char msg[512];
    if (strcmp(fmt, "no such option '%s'") == 0)
        snprintf(msg, sizeof msg, "unknown setting '%s'", va_arg(ap, const char *));
    else
        vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(file_err, "narwhal: %s:%d: %s\n", cfg->filename, cfg->line, msg);
}

/* libconfuse 3.3 counts a line three times when it ends a # or // comment
 * (and twice inside a multi-line comment), so its line numbers drift after
 * the first comment. Blanking the comments before it sees them keeps
 * cfg->line right. Quoted strings are skipped exactly as its lexer does. */
static void blank_comments(char *p)
{
    while (*p) {
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q)
                p += p[0] == '\\' && p[1] ? 2 : 1;
            if (*p)
                p++;
        } else if (p[0] == '$' && p[1] == '{') {
            while (*p && *p != '}')
                p++;
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                *p++ = ' ';
        } else if (p[0] == '/' && p[1] == '*') {
            while (*p && !(p[0] == '*' && p[1] == '/'))
                if (*p != '\n')
                    *p++ = ' ';
                else
                    p++;
            if (*p)
                p[0] = p[1] = ' ', p += 2;
        } else {
            p++;
        }
    }
}

static char *read_file(const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, got;

    if (!f) {
        fprintf(err, "narwhal: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    do {
        if (cap - len < 4096)
            buf = nw_xrealloc(buf, cap = cap * 2 + 4096);
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    if (ferror(f)) {
        fprintf(err, "narwhal: cannot read %s: %s\n", path, strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[len] = '\0';
    if (strlen(buf) != len) {
        fprintf(err, "narwhal: %s: contains a NUL byte\n", path);
        free(buf);
        return NULL;
    }
    return buf;
}

int settings_parse_file(const char *path, struct source *src, FILE *err)
{
    cfg_opt_t opts[2 * NSETTINGS + 1];
    struct file_row rows[NSETTINGS];
    size_t n = 0;
    int rc = -1;
    cfg_t *cfg = NULL;
    FILE *fp = NULL;
    char *text = read_file(path, err);

    if (!text)
        return -1;
    memset(rows, 0, sizeof rows);
    memset(opts, 0, sizeof opts);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *r = &settings_table[i];
        const char *keys[2] = {r->name, r->key_alias};
        if (r->flags & F_CLI_ONLY)
            continue;
        for (size_t k = 0; k < 2 && keys[k]; k++) {
            opts[n].name = keys[k];
            opts[n].type = CFGT_STR;
            opts[n].flags = r->type == T_LIST ? CFGF_LIST : CFGF_NONE;
            opts[n].validcb = file_validate;
            n++;
        }
    }
    /* opts[n] stays zeroed: CFG_END() */

    blank_comments(text);
    if (!*text) { /* fmemopen may refuse an empty buffer */
        free(text);
        return 0;
    }
    fp = fmemopen(text, strlen(text), "r");
    cfg = cfg_init(opts, CFGF_NONE);
    if (!fp || !cfg)
        abort();
    /* cfg_parse_fp keeps a filename already set: messages name the real file */
    free(cfg->filename);
    cfg->filename = nw_xstrdup(path);
    cfg_set_error_function(cfg, file_error);
    file_rows = rows;
    file_err = err;
    if (cfg_parse_fp(cfg, fp) != CFG_SUCCESS)
        goto out;

    /* The final values are libconfuse's; the callbacks only gave lines.
     * (An empty list, `raw_env = {}`, calls no callback at all.) */
    for (size_t i = 0; i < n; i++) {
        cfg_opt_t *opt = cfg_getopt(cfg, opts[i].name);
        const struct setting *r = settings_row_by_key(opts[i].name);
        struct file_row *fr = &rows[r - settings_table];
        if (!(opt->flags & CFGF_MODIFIED) || (fr->opt && fr->opt != opt))
            continue;
        file_row_sync(fr, opt, cfg->line);
        if (fr->n == 0)
            settings_source_add(src, r, NULL, nw_xasprintf("%s: %s", path, opt->name));
        for (size_t k = 0; k < fr->n; k++)
            settings_source_add(src, r, fr->vals[k],
                                nw_xasprintf("%s:%d: %s", path, fr->lines[k], opt->name));
    }
    rc = 0;
out:
    file_rows = NULL;
    file_err = NULL;
    for (size_t i = 0; i < NSETTINGS; i++) {
        for (size_t k = 0; k < rows[i].n; k++)
            free(rows[i].vals[k]);
        free(rows[i].vals);
        free(rows[i].lines);
    }
    cfg_free(cfg);
    fclose(fp);
    free(text);
    return rc;
}

/* ---- --print-config --------------------------------------------------------- */

/* A double-quoted string libconfuse reads back byte for byte ($ is escaped:
 * libconfuse expands ${VAR} inside double quotes). */
static void print_quoted(const char *v, FILE *out)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\' || *p == '$')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void settings_print(const nw_settings *s, FILE *out)
{
    fprintf(out, "# narwhal %s settings (--print-config); load with -c\n", PACKAGE_VERSION);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *r = &settings_table[i];
        const void *f = settings_cfield(s, r);
        if (r->flags & F_CLI_ONLY)
            continue;
        fprintf(out, "\n# %s\n", r->help);
        switch (r->type) {
        case T_INT:
            fprintf(out, "%s = %d\n", r->name, *(const int *)f);
            break;
        case T_UMASK:
            fprintf(out, *(const int *)f ? "%s = 0o%o\n" : "%s = %o\n", r->name,
                    (unsigned)*(const int *)f);
            break;
        case T_BOOL:
            fprintf(out, "%s = %s\n", r->name, *(const bool *)f ? "true" : "false");
            break;
        case T_ENUM:
            fprintf(out, "%s = %s\n", r->name, settings_choice_name(r->choices, *(const int *)f));
            break;
        case T_STR:
            if (!*(char *const *)f) {
                fprintf(out, "# %s = (not set)\n", r->name);
                break;
            }
            fprintf(out, "%s = ", r->name);
            print_quoted(*(char *const *)f, out);
            fputc('\n', out);
            break;
        case T_LIST: {
            const nw_strlist *l = f;
            fprintf(out, "%s = {", r->name);
            for (size_t k = 0; k < l->n; k++) {
                fputs(k ? ", " : "", out);
                print_quoted(l->v[k], out);
            }
            fputs("}\n", out);
            break;
        }
        case T_ACTION:
            break;
        }
    }
}
