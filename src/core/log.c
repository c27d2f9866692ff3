/* log.c - the error log and the access log's descriptor.
 *
 * Reopening (after logrotate) opens the new files first and then dup3()s them
 * over the descriptors already in use, so a log's fd number never changes
 * once it is a file: threads writing concurrently never see a closed or
 * reused descriptor, and no lock is needed. A holder of a separate dup (say
 * stderr redirected with dup2(log_error_fd(), 2)) keeps the old file until it
 * dups again. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "narwhal.h"

/* A line longer than this is cut and ends in "...". */
#define LOG_LINE_MAX (64 * 1024)

typedef struct log_file {
    int fd;    /* where lines go; -1 = off */
    int owned; /* fd is ours (a file or a dup), not the inherited 1 or 2 */
} log_file;

static log_file error_log = {STDERR_FILENO, 0};
static log_file access_log = {-1, 0};
static log_file slow_log = {-1, 0};
static char *slowlog_path; /* log_slowlog_open; reopened by log_open */
static int min_level = NW_LOG_INFO;
static access_format *access_fmt;
static uid_t owner_uid = (uid_t)-1; /* log_set_owner */
static gid_t owner_gid = (gid_t)-1;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};

/* Writes all of p, retrying on EINTR. Errors are dropped: there is nowhere
 * left to report them. */
static void write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* The workers reopen the logs themselves after a rotation: a file the
 * master (root) created must be theirs, or their reopen is refused. */
static void give_to_owner(const char *what, const char *path, int fd)
{
    if (geteuid() != 0 || (owner_uid == (uid_t)-1 && owner_gid == (gid_t)-1))
        return;
    if (fchown(fd, owner_uid, owner_gid) < 0)
        fprintf(stderr, "narwhal: cannot give %s%s%s to uid %d gid %d: %s\n", what,
                *path ? " " : "", path, (int)owner_uid, (int)owner_gid, strerror(errno));
}

/* Opens path for appending; "-" means the inherited std_fd. Returns the fd
 * (which is std_fd for "-"), or -1 after telling stderr. */
static int open_log(const char *what, const char *path, int std_fd)
{
    if (!strcmp(path, "-"))
        return std_fd;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        fprintf(stderr, "narwhal: cannot open %s %s: %s\n", what, path, strerror(errno));
    else
        give_to_owner(what, path, fd);
    return fd;
}

/* Points lf at fd (from open_log; -1 = off), keeping lf's number if it
 * already owns one. */
static void install(log_file *lf, int fd, int std_fd)
{
    if (fd < 0) {
        int old = lf->owned ? lf->fd : -1;
        lf->fd = -1;
        lf->owned = 0;
        if (old >= 0)
            close(old);
        return;
    }
    if (lf->owned) {
        /* Same number, new file; dup3 keeps close-on-exec (dup2 would not). */
        if (dup3(fd, lf->fd, O_CLOEXEC) < 0) {
            /* Should not happen with two valid fds; swap numbers instead. */
            int old = lf->fd;
            lf->fd = fd;
            lf->owned = fd != std_fd;
            close(old);
            return;
        }
        if (fd != std_fd)
            close(fd);
        return;
    }
    lf->fd = fd;
    lf->owned = fd != std_fd;
}

int log_open(const char *errorlog, const char *accesslog)
{
    int efd = open_log("error log", errorlog ? errorlog : "-", STDERR_FILENO);
    if (efd < 0)
        return -1;
    int afd = accesslog ? open_log("access log", accesslog, STDOUT_FILENO) : -1;
    if (accesslog && afd < 0) {
        if (efd != STDERR_FILENO)
            close(efd);
        return -1;
    }
    install(&error_log, efd, STDERR_FILENO);
    install(&access_log, afd, STDOUT_FILENO);
    if (slowlog_path) {
        int sfd = open_log("slowlog", slowlog_path, STDERR_FILENO);
        if (sfd >= 0)
            install(&slow_log, sfd, STDERR_FILENO);
    }
    return 0;
}

int log_slowlog_open(const char *path)
{
    if (!path) {
        install(&slow_log, -1, STDERR_FILENO);
        free(slowlog_path);
        slowlog_path = NULL;
        return 0;
    }
    int fd = open_log("slowlog", path, STDERR_FILENO);
    if (fd < 0)
        return -1;
    install(&slow_log, fd, STDERR_FILENO);
    char *copy = strdup(path);
    if (!copy)
        abort();
    free(slowlog_path);
    slowlog_path = copy;
    return 0;
}

void log_set_owner(uid_t uid, gid_t gid)
{
    owner_uid = uid;
    owner_gid = gid;
    if (error_log.owned)
        give_to_owner("error log", "", error_log.fd);
    if (access_log.owned)
        give_to_owner("access log", "", access_log.fd);
    if (slow_log.owned)
        give_to_owner("slowlog", "", slow_log.fd);
}

void log_set_level(int level)
{
    if (level < NW_LOG_DEBUG)
        level = NW_LOG_DEBUG;
    if (level > NW_LOG_CRITICAL)
        level = NW_LOG_CRITICAL;
    min_level = level;
}

int log_level(void)
{
    return min_level;
}

int log_configure(const char *errorlog, const char *accesslog, int level,
                  const char *access_log_format)
{
    access_format *f = NULL;
    if (accesslog) {
        char err[256];
        f = access_format_compile(access_log_format, err, sizeof err);
        if (!f) {
            fprintf(stderr, "narwhal: access_log_format: %s\n", err);
            return -1;
        }
    }
    if (log_open(errorlog, accesslog) < 0) {
        access_format_free(f);
        return -1;
    }
    log_set_level(level);
    if (f)
        log_set_access_format(f);
    return 0;
}

int log_error_fd(void)
{
    return error_log.fd;
}

/* ---- the error log ----------------------------------------------------------- */

/* "[2026-11-27 10:01:02 +0000] [pid] [LEVEL] " into p[0..n). Returns its length. */
static size_t format_prefix(char *p, size_t n, int level)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (!localtime_r(&ts.tv_sec, &tm))
        memset(&tm, 0, sizeof tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    int len = snprintf(p, n, "[%04d-%02d-%02d %02d:%02d:%02d %c%02ld%02ld] [%ld] [%s] ",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, sign, off / 60, off % 60, (long)getpid(), level_names[level]);
    return len < 0 ? 0 : (size_t)len >= n ? n - 1 : (size_t)len;
}

/* Makes msg[0..n) one line: drops trailing line breaks and turns the others
 * into spaces so a message can never forge a line of its own (the other
 * control bytes are escaped by the caller). Returns the new length. */
static size_t flatten(char *msg, size_t n)
{
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        n--;
    for (size_t i = 0; i < n; i++)
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';
    return n;
}

static void (*level_hook)(int level);

void log_set_level_hook(void (*hook)(int level))
{
    level_hook = hook;
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
    if (level < NW_LOG_DEBUG)
        level = NW_LOG_DEBUG;
    if (level > NW_LOG_CRITICAL)
        level = NW_LOG_CRITICAL;
    /* counted whatever the log level (gunicorn's gunicorn.log.* do too) */
    if (level_hook && level >= NW_LOG_WARNING)
        level_hook(level);
    if (level < min_level)
        return;

    int saved_errno = errno;
    char stack[1024];
    nw_buf heap = NW_BUF_INIT;
    char *line = stack;
    size_t pre = format_prefix(stack, sizeof stack, level);
    size_t room = sizeof stack - pre - 1; /* keep one byte for the newline */

    va_list ap2;
    va_copy(ap2, ap);
    errno = saved_errno; /* for %m */
    int n = vsnprintf(line + pre, room + 1, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    size_t len = (size_t)n;
    if (len > room) {
        /* Too long for the stack: build it on the heap, up to LOG_LINE_MAX. */
        size_t cap = len < LOG_LINE_MAX ? len : LOG_LINE_MAX;
        line = (char *)nw_buf_reserve(&heap, pre + cap + 2);
        memcpy(line, stack, pre);
        errno = saved_errno;
        vsnprintf(line + pre, cap + 1, fmt, ap);
        if (len > cap) {
            memcpy(line + pre + cap - 3, "...", 3);
            len = cap;
        }
    }
    len = flatten(line + pre, len);
    /* Other control bytes (an ESC that would drive a terminal reading the
     * log, a NUL) go out as \xNN: nothing a message carries can make the
     * log say something it did not. */
    nw_buf esc = NW_BUF_INIT;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[pre + i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            nw_buf_append(&esc, line, pre);
            log_append_flat(&esc, line + pre, len);
            nw_buf_appendc(&esc, 0); /* room for the newline */
            line = (char *)nw_buf_head(&esc);
            len = esc.len - 1 - pre;
            break;
        }
    }
    line[pre + len] = '\n';
    write_all(error_log.fd, line, pre + len + 1);
    nw_buf_free(&esc);
    nw_buf_free(&heap);
    errno = saved_errno;
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

int log_slowlog_fd(void)
{
    return slow_log.fd >= 0 ? slow_log.fd : error_log.fd;
}

void log_lines(int level, const char *prefix, const char *text)
{
    while (text && *text) {
        size_t n = strcspn(text, "\n");
        log_msg(level, "%s%.*s", prefix, (int)n, text);
        text += n + (text[n] == '\n');
    }
}

void log_slowlog(const char *head, const char *body)
{
    if (slow_log.fd < 0) {
        log_warning("%s", head);
        log_lines(NW_LOG_WARNING, "  ", body);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (!localtime_r(&ts.tv_sec, &tm))
        memset(&tm, 0, sizeof tm);
    char when[64];
    strftime(when, sizeof when, "[%Y-%m-%d %H:%M:%S %z] ", &tm);
    nw_buf e = NW_BUF_INIT;
    nw_buf_appends(&e, when);
    log_append_flat(&e, head, strlen(head));
    nw_buf_appendc(&e, '\n');
    /* one line per frame, each one flat: nothing in a name forges a line */
    while (body && *body) {
        size_t n = strcspn(body, "\n");
        log_append_flat(&e, body, n);
        nw_buf_appendc(&e, '\n');
        body += n + (body[n] == '\n');
    }
    nw_buf_appendc(&e, '\n');
    write_all(slow_log.fd, nw_buf_head(&e), e.len);
    nw_buf_free(&e);
}

/* ---- the access log ---------------------------------------------------------- */

static access_format *default_fmt;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void compile_default(void)
{
    char err[128];
    default_fmt = access_format_compile(NW_ACCESS_LOG_FORMAT, err, sizeof err);
}

void log_set_access_format(access_format *f)
{
    access_format *old = access_fmt;
    access_fmt = f;
    access_format_free(old);
}

int log_access_enabled(void)
{
    return access_log.fd >= 0;
}

void log_access(const access_entry *e)
{
    int fd = access_log.fd;
    if (fd < 0)
        return;
    const access_format *f = access_fmt;
    if (!f) {
        pthread_once(&default_once, compile_default);
        f = default_fmt;
    }
    nw_buf line = NW_BUF_INIT;
    access_format_render(f, e, &line);
    write_all(fd, nw_buf_head(&line), line.len);
    nw_buf_free(&line);
}
