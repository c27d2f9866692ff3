/* accesslog.c - gunicorn's access_log_format: compile once, render per request. */
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum piece_kind {
    P_LIT,
    P_H,
    P_L,
    P_U,
    P_T,
    P_R,
    P_M,
    P_URL,
    P_Q,
    P_HTTP,
    P_S,
    P_BODY,
    P_B,
    P_F,
    P_A,
    P_SEC,
    P_MS,
    P_US,
    P_DEC,
    P_PID,
    P_REQ_HDR,
    P_RESP_HDR,
    P_ENV,
};

/* The single-letter atoms, in the order of enum piece_kind from P_H on. */
static const char simple_atoms[] = "hlutrmUqHsBbfaTMDLp";
_Static_assert(sizeof simple_atoms - 1 == P_PID - P_H + 1, "simple_atoms matches piece_kind");

typedef struct piece {
    enum piece_kind kind;
    char *text; /* P_LIT: the literal; P_REQ_HDR: the param name (HTTP_X_FOO);
                 * P_RESP_HDR: the header name; P_ENV: the variable name */
    size_t len; /* P_LIT only */
} piece;

struct access_format {
    piece *pieces;
    size_t n;
};

static void add_piece(access_format *f, enum piece_kind kind, char *text, size_t len)
{
    f->pieces = nw_xrealloc(f->pieces, (f->n + 1) * sizeof *f->pieces);
    f->pieces[f->n++] = (piece){kind, text, len};
}

/* Moves the pending literal text (if any) into a piece. */
static void flush_literal(access_format *f, nw_buf *lit)
{
    if (!lit->len)
        return;
    char *s = nw_xmalloc(lit->len + 1);
    memcpy(s, nw_buf_head(lit), lit->len);
    s[lit->len] = '\0';
    add_piece(f, P_LIT, s, lit->len);
    nw_buf_reset(lit);
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = nw_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Compiles the body of "%(...)s": name[0..len). Returns 0, or -1 with err set. */
static int compile_atom(access_format *f, const char *name, size_t len, char *err, size_t errlen)
{
    if (len == 1 && name[0] && strchr(simple_atoms, name[0])) {
        add_piece(f, (enum piece_kind)(P_H + (strchr(simple_atoms, name[0]) - simple_atoms)), NULL,
                  0);
        return 0;
    }
    if (len >= 3 && name[0] == '{' && name[len - 2] == '}' && strchr("ioe", name[len - 1])) {
        const char *v = name + 1;
        size_t vlen = len - 3;
        if (!vlen) {
            snprintf(err, errlen, "empty name in atom '%%(%.*s)s'", (int)len, name);
            return -1;
        }
        if (memchr(v, '{', vlen) || memchr(v, '}', vlen)) {
            snprintf(err, errlen, "invalid name in atom '%%(%.*s)s'", (int)len, name);
            return -1;
        }
        if (name[len - 1] == 'i') {
            /* Request headers reach us as CGI params: HTTP_ + upper, '-' -> '_'. */
            char *p = nw_xmalloc(vlen + 6);
            memcpy(p, "HTTP_", 5);
            for (size_t i = 0; i < vlen; i++)
                p[5 + i] = v[i] == '-' ? '_' : (char)toupper((unsigned char)v[i]);
            p[5 + vlen] = '\0';
            add_piece(f, P_REQ_HDR, p, 0);
        } else {
            add_piece(f, name[len - 1] == 'o' ? P_RESP_HDR : P_ENV, xstrndup(v, vlen), 0);
        }
        return 0;
    }
    snprintf(err, errlen, "unknown atom '%%(%.*s)s'", (int)len, name);
    return -1;
}

access_format *access_format_compile(const char *fmt, char *err, size_t errlen)
{
    static const size_t show = 40; /* how much of a bad format to quote */
    access_format *f = nw_xcalloc(1, sizeof *f);
    nw_buf lit = NW_BUF_INIT;
    const char *p = fmt;

    if (err && errlen)
        err[0] = '\0';
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    while (*p) {
        const char *pct = strchr(p, '%');
        if (!pct) {
            nw_buf_appends(&lit, p);
            break;
        }
        nw_buf_append(&lit, p, (size_t)(pct - p));
        if (pct[1] == '%') {
            nw_buf_appendc(&lit, '%');
            p = pct + 2;
            continue;
        }
        if (pct[1] != '(') {
            if (pct[1])
                snprintf(err, errlen,
                         "invalid '%%%c' at offset %zu: atoms are written %%(name)s, "
                         "a literal %% as %%%%",
                         pct[1], (size_t)(pct - fmt));
            else
                snprintf(err, errlen, "stray '%%' at the end: write a literal %% as %%%%");
            goto fail;
        }
        const char *name = pct + 2;
        const char *close = strchr(name, ')');
        if (!close) {
            snprintf(err, errlen, "unterminated atom '%.*s' at offset %zu: missing ')s'",
                     (int)strnlen(pct, show), pct, (size_t)(pct - fmt));
            goto fail;
        }
        if (close[1] != 's') {
            snprintf(err, errlen, "atom '%.*s' at offset %zu must end in ')s'",
                     (int)(close + 1 - pct), pct, (size_t)(pct - fmt));
            goto fail;
        }
        flush_literal(f, &lit);
        if (compile_atom(f, name, (size_t)(close - name), err, errlen) < 0)
            goto fail;
        p = close + 2;
    }
    flush_literal(f, &lit);
    nw_buf_free(&lit);
    return f;

fail:
    nw_buf_free(&lit);
    access_format_free(f);
    return NULL;
}

void access_format_free(access_format *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->pieces[i].text);
    free(f->pieces);
    free(f);
}

/* ---- rendering ------------------------------------------------------------- */

/* Control bytes (but tab, where keep_tab) as \xNN; with quotes, also '"'
 * as \" and '\' as \\. */
static void escape(nw_buf *out, const char *s, size_t n, int quotes, int keep_tab)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s, *end = s + n;
    for (; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        int ctl = (c < 0x20 && !(keep_tab && c == '\t')) || c == 0x7f;
        if (!ctl && !(quotes && (c == '"' || c == '\\')))
            continue;
        nw_buf_append(out, run, (size_t)(s - run));
        run = s + 1;
        if (!ctl) {
            char esc[2] = {'\\', (char)c};
            nw_buf_append(out, esc, 2);
        } else {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            nw_buf_append(out, esc, 4);
        }
    }
    nw_buf_append(out, run, (size_t)(s - run));
}

void log_append_escaped(nw_buf *out, const char *s, size_t n)
{
    escape(out, s, n, 1, 0);
}

void log_append_flat(nw_buf *out, const char *s, size_t n)
{
    escape(out, s, n, 0, 1);
}

static void append_escaped(nw_buf *out, const char *s)
{
    log_append_escaped(out, s, strlen(s));
}

/* Appends v escaped, or "-" when absent. */
static void append_value(nw_buf *out, const char *v)
{
    if (v)
        append_escaped(out, v);
    else
        nw_buf_appendc(out, '-');
}

static const char *param(const access_entry *e, const char *name)
{
    return e->param ? e->param(e->ctx, name) : NULL;
}

/* "[27/Nov/2026:10:01:02 +0000]" in local time; month names are always
 * English whatever the locale (strftime's %b is not). */
static void append_clf_time(nw_buf *out, time_t t)
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!localtime_r(&t, &tm)) {
        nw_buf_appendc(out, '-');
        return;
    }
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    nw_buf_printf(out, "[%02d/%s/%04d:%02d:%02d:%02d %c%02ld%02ld]", tm.tm_mday,
                  months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
                  off / 60, off % 60);
}

/* The URL path without the query string. */
static void append_path(nw_buf *out, const access_entry *e)
{
    const char *uri = param(e, "REQUEST_URI");
    if (uri) {
        log_append_escaped(out, uri, strcspn(uri, "?"));
        return;
    }
    const char *script = param(e, "SCRIPT_NAME");
    const char *info = param(e, "PATH_INFO");
    if (script || info) {
        append_escaped(out, script ? script : "");
        append_escaped(out, info ? info : "");
        return;
    }
    append_value(out, param(e, "DOCUMENT_URI"));
}

static void append_piece(nw_buf *out, const piece *pc, const access_entry *e)
{
    const char *v;
    switch (pc->kind) {
    case P_LIT:
        nw_buf_append(out, pc->text, pc->len);
        break;
    case P_H:
        append_value(out, param(e, "REMOTE_ADDR"));
        break;
    case P_L:
        nw_buf_appendc(out, '-');
        break;
    case P_U:
        /* nginx sends REMOTE_USER empty when there is no authentication. */
        v = param(e, "REMOTE_USER");
        append_value(out, v && *v ? v : NULL);
        break;
    case P_T:
        append_clf_time(out, e->start.tv_sec);
        break;
    case P_R:
        append_value(out, param(e, "REQUEST_METHOD"));
        nw_buf_appendc(out, ' ');
        append_value(out, param(e, "REQUEST_URI"));
        nw_buf_appendc(out, ' ');
        append_value(out, param(e, "SERVER_PROTOCOL"));
        break;
    case P_M:
        append_value(out, param(e, "REQUEST_METHOD"));
        break;
    case P_URL:
        append_path(out, e);
        break;
    case P_Q:
        append_value(out, param(e, "QUERY_STRING"));
        break;
    case P_HTTP:
        append_value(out, param(e, "SERVER_PROTOCOL"));
        break;
    case P_S:
        nw_buf_printf(out, "%d", e->status);
        break;
    case P_BODY:
        nw_buf_printf(out, "%llu", (unsigned long long)e->body_bytes);
        break;
    case P_B:
        if (e->body_bytes)
            nw_buf_printf(out, "%llu", (unsigned long long)e->body_bytes);
        else
            nw_buf_appendc(out, '-');
        break;
    case P_F:
        append_value(out, param(e, "HTTP_REFERER"));
        break;
    case P_A:
        append_value(out, param(e, "HTTP_USER_AGENT"));
        break;
    case P_SEC:
        nw_buf_printf(out, "%llu", (unsigned long long)(e->duration_us / 1000000));
        break;
    case P_MS:
        nw_buf_printf(out, "%llu", (unsigned long long)(e->duration_us / 1000));
        break;
    case P_US:
        nw_buf_printf(out, "%llu", (unsigned long long)e->duration_us);
        break;
    case P_DEC:
        nw_buf_printf(out, "%llu.%06llu", (unsigned long long)(e->duration_us / 1000000),
                      (unsigned long long)(e->duration_us % 1000000));
        break;
    case P_PID:
        nw_buf_printf(out, "<%ld>", (long)e->pid);
        break;
    case P_REQ_HDR:
        v = param(e, pc->text);
        /* CGI passes these two without the HTTP_ prefix. */
        if (!v &&
            (!strcmp(pc->text, "HTTP_CONTENT_TYPE") || !strcmp(pc->text, "HTTP_CONTENT_LENGTH")))
            v = param(e, pc->text + 5);
        append_value(out, v);
        break;
    case P_RESP_HDR:
        append_value(out, e->resp_header ? e->resp_header(e->ctx, pc->text) : NULL);
        break;
    case P_ENV:
        append_value(out, getenv(pc->text));
        break;
    }
}

void access_format_render(const access_format *f, const access_entry *e, nw_buf *out)
{
    for (size_t i = 0; i < f->n; i++)
        append_piece(out, &f->pieces[i], e);
    nw_buf_appendc(out, '\n');
}
