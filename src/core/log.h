/*
 * log.h - the error log and the access log.
 *
 * Both are opened by the master before privileges drop and inherited by the
 * workers. Each line is built in memory and written with one write(2) on an
 * O_APPEND descriptor, so lines from many processes never tear.
 */
#ifndef NW_LOG_H
#define NW_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

/* Opens the error log ("-" or NULL = stderr) and the access log (NULL = off,
 * "-" = stdout). Returns 0, or -1 with a message on stderr naming the file.
 * May be called again to reopen (after logrotate). */
int log_open(const char *errorlog, const char *accesslog);
/* The user and group the workers run as ((uid_t)-1 / (gid_t)-1 = unchanged):
 * the log files open now, and every one opened from now on (reopen, reload),
 * are chowned to them when this process is root, so a worker can reopen
 * them after a rotation. */
void log_set_owner(uid_t uid, gid_t gid);
void log_set_level(int level);
int log_level(void);
/* Everything the settings say about logging, at start and on reload: opens
 * (or reopens) both logs, sets the level and the access log format. 0, or
 * -1 with the reason on stderr (nothing changed if a log cannot open). */
int log_configure(const char *errorlog, const char *accesslog, int level,
                  const char *access_log_format);
/* The slowlog file (the `slowlog` setting), opened for appending like the
 * others and reopened with them by log_open; NULL = none (entries go to
 * the error log). 0, or -1 with the reason on stderr (the old one stays). */
int log_slowlog_open(const char *path);
/* One slowlog entry: a header line (a request, escaped here) and the lines
 * of body (a stack), with one write(2) to the slowlog file, or as error
 * log lines at warning level when there is none. */
void log_slowlog(const char *head, const char *body);
/* The slowlog's fd, or the error log's when there is no slowlog file. */
int log_slowlog_fd(void);
/* Each line of text as an error log line of its own, after prefix. */
void log_lines(int level, const char *prefix, const char *text);
/* The error log's file descriptor (for redirecting stderr of daemons). */
int log_error_fd(void);

/* Error log line: "[2026-11-27 10:01:02 +0000] [pid] [LEVEL] message\n".
 * Lines below the configured level are dropped. */
/* Appends s[0..n) escaped so that it can neither split nor forge a log line
 * nor break a quoted field: bytes < 0x20 and 0x7f as \xNN, '"' as \", '\'
 * as \\. UTF-8 (bytes >= 0x80) passes through. */
void log_append_escaped(nw_buf *out, const char *s, size_t n);
/* The same for text that is one line of its own, not a quoted field:
 * control bytes but tab as \xNN, everything else as it is. */
void log_append_flat(nw_buf *out, const char *s, size_t n);

/* Called with the level of every error log line at NW_LOG_WARNING and above
 * (statsD's gunicorn.log.* counters); NULL = none. */
void log_set_level_hook(void (*hook)(int level));

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

#define log_debug(...) log_msg(0, __VA_ARGS__)
#define log_info(...) log_msg(1, __VA_ARGS__)
#define log_warning(...) log_msg(2, __VA_ARGS__)
#define log_error(...) log_msg(3, __VA_ARGS__)
#define log_critical(...) log_msg(4, __VA_ARGS__)

/* ---- access log ---------------------------------------------------------- */

/* gunicorn's default access_log_format. */
#define NW_ACCESS_LOG_FORMAT "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\""

/* What the formatter may ask about one finished request. */
typedef struct access_entry {
    /* FastCGI/CGI params: REMOTE_ADDR, REQUEST_METHOD, REQUEST_URI,
     * SERVER_PROTOCOL, QUERY_STRING, HTTP_* ... NULL if absent. */
    const char *(*param)(void *ctx, const char *name);
    /* A response header by name (case-insensitive), NULL if absent. */
    const char *(*resp_header)(void *ctx, const char *name);
    void *ctx;
    int status;
    uint64_t body_bytes;   /* response body bytes sent */
    struct timespec start; /* CLOCK_REALTIME when the request began */
    uint64_t duration_us;  /* request time */
    pid_t pid;
} access_entry;

typedef struct access_format access_format;

/* Compiles a gunicorn access_log_format: literal text and atoms %(x)s for
 * h l u t r m U q H s B b f a T M D L p and %({name}i)s, %({name}o)s,
 * %({name}e)s; "%%" is a literal %. Returns NULL with a message in
 * err[0..errlen) ("unknown atom '%(z)s'") when the format is invalid. */
access_format *access_format_compile(const char *fmt, char *err, size_t errlen);
void access_format_free(access_format *f);
/* Appends one formatted line (with the trailing newline) to out. Absent
 * values print as "-". Control characters, '"' and '\\' in values are
 * escaped (\xNN, \", \\) so a line can never be forged or split. */
void access_format_render(const access_format *f, const access_entry *e, nw_buf *out);

/* Sets the compiled format the worker uses (owned by the log module after). */
void log_set_access_format(access_format *f);
/* Formats and writes one access log line if the access log is on. */
void log_access(const access_entry *e);
int log_access_enabled(void);

#endif
