/* settings_priv.h - the settings table and what its drivers share:
 * settings_table.c (the rows), settings.c (the converters, precedence, the
 * cross-checks), settings_cli.c (argv, NARWHAL_CMD_ARGS, --help) and
 * settings_file.c (the config file through libconfuse, --print-config). Not
 * for anyone else. */
#ifndef NW_SETTINGS_PRIV_H
#define NW_SETTINGS_PRIV_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"
#include "util.h"

enum type { T_INT, T_BOOL, T_STR, T_LIST, T_ENUM, T_UMASK, T_ACTION };

/* A row's rules. */
enum {
    F_CLI_ONLY = 1 << 0, /* no config file key */
    F_NONEMPTY = 1 << 1, /* strings: "" is rejected */
    F_NO_EXEC = 1 << 2,  /* shapes narwhal's own workers: with --exec it must be
                            left at its default (.exec_why says why) */
    F_RESTART = 1 << 3,  /* a running master cannot change it: HUP keeps the old
                            value and names it in the log */
};

struct choice {
    const char *name;
    int value;
};

typedef int (*check_fn)(const char *v, char *err, size_t errlen);

/* One row; written with designated initializers, so a field left out is 0
 * or NULL. */
struct setting {
    const char *name;      /* config file key (or the CLI-only setting's name) */
    const char *key_alias; /* second file key, e.g. gunicorn's wsgi_app */
    int short_flag;        /* 0 = none */
    const char *long_flag; /* NULL = none (the positional APP) */
    const char *long_alias;
    const char *metavar; /* the value's name in --help */
    enum type type;
    size_t off;                   /* into nw_settings */
    const char *def;              /* default, as text through the same converter; NULL = unset */
    long min, max;                /* T_INT, T_UMASK: the range, inclusive */
    const struct choice *choices; /* T_ENUM: NULL-terminated */
    check_fn check;               /* strings and list items */
    unsigned flags;               /* F_* */
    const char *exec_why;         /* F_NO_EXEC: the refusal, after "narwhal: exec: " */
    const char *help;
};

#define OFF(f) offsetof(nw_settings, f)

/* The table (settings_table.c). NSETTINGS is its row count, checked there; the
 * last row is the positional APP. */
#define NSETTINGS 70
extern const struct setting settings_table[];

#define ROW_APP (&settings_table[NSETTINGS - 1])
#define ENV_NAME "NARWHAL_CMD_ARGS"

/* ---- small helpers ---------------------------------------------------------- */

static inline const void *settings_cfield(const nw_settings *s, const struct setting *r)
{
    return (const char *)s + r->off;
}

static inline const char *settings_choice_name(const struct choice *c, int value)
{
    for (; c->name; c++)
        if (c->value == value)
            return c->name;
    return "?";
}

/* ---- sources: (row, text, where) entries --------------------------------- */

struct entry {
    const struct setting *row;
    char *val;   /* NULL: a list set to empty */
    char *where; /* for messages: "--timeout", "gunicorn.conf:7: workers" */
};

struct source {
    struct entry *v;
    size_t n;
};

/* Appends (r, a copy of val, where) to src; src owns where from now on. */
void settings_source_add(struct source *src, const struct setting *r, const char *val, char *where);

/* The row whose config file key (or key alias) is key; NULL if none. */
const struct setting *settings_row_by_key(const char *key);

/* settings_cli.c: collects the options in argv into src (prefix names the
 * source in messages, "" for argv; *action is set to the first
 * --help/--version row), and splits NARWHAL_CMD_ARGS into words. */
int settings_parse_args(int argc, char **argv, const char *prefix, struct source *src,
                        const struct setting **action, FILE *err);
int settings_split_words(const char *s, char ***words, int *nwords, FILE *err);

/* settings_file.c: collects the config file at path into src. */
int settings_parse_file(const char *path, struct source *src, FILE *err);

#endif
