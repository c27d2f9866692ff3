#include "util.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void nw_oom(void)
{
    static const char msg[] = "narwhal: out of memory\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    abort();
}

void *nw_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        nw_oom();
    return p;
}

void *nw_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        nw_oom();
    return p;
}

void *nw_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        nw_oom();
    return p;
}

char *nw_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(nw_xmalloc(n), s, n);
}

char *nw_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        nw_oom();
    return s;
}

int64_t nw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nw_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

void nw_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int nw_set_cloexec(int fd, int on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return -1;
    fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, fl);
}

static int is_identifier(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

void nw_split_app_spec(const char *spec, char **path, char **symbol)
{
    const char *colon = strrchr(spec, ':');
    if (colon && is_identifier(colon + 1)) {
        *path = strndup(spec, (size_t)(colon - spec));
        *symbol = nw_xstrdup(colon + 1);
        if (!*path)
            *path = nw_xstrdup("");
    } else {
        *path = nw_xstrdup(spec);
        *symbol = nw_xstrdup("app");
    }
}

/* A dotted name: identifiers joined by single dots ("a", "a.b_c"). */
static int is_dotted(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (i == start || !(isalpha((unsigned char)s[start]) || s[start] == '_'))
            return 0;
        for (size_t j = start; j < i; j++)
            if (!(isalnum((unsigned char)s[j]) || s[j] == '_'))
                return 0;
        start = i + 1;
    }
    return 1;
}

nw_app_kind nw_app_spec_kind(const char *spec)
{
    if (!spec || !*spec)
        return NW_APP_BAD;
    if (strchr(spec, '/'))
        return NW_APP_C;
    char *path, *symbol;
    nw_split_app_spec(spec, &path, &symbol);
    size_t n = strlen(path);
    int so = n > 3 && strcmp(path + n - 3, ".so") == 0;
    free(path);
    free(symbol);
    if (so)
        return NW_APP_C;
    /* module[:callable], gunicorn's syntax: the callable a dotted attribute
     * path, or one called with no arguments ("create_app()"). */
    const char *colon = strchr(spec, ':');
    size_t mlen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (!is_dotted(spec, mlen) || (mlen > 3 && strncmp(spec + mlen - 3, ".py", 3) == 0))
        return NW_APP_BAD; /* "app.py" is a file name: the module is "app" */
    if (!colon)
        return NW_APP_PYTHON;
    const char *c = colon + 1;
    size_t clen = strlen(c);
    if (clen > 2 && strcmp(c + clen - 2, "()") == 0)
        clen -= 2;
    return is_dotted(c, clen) ? NW_APP_PYTHON : NW_APP_BAD;
}

const char *nw_signame(int sig)
{
    switch (sig) {
    case SIGHUP:
        return "SIGHUP";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGILL:
        return "SIGILL";
    case SIGTRAP:
        return "SIGTRAP";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGKILL:
        return "SIGKILL";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGUSR2:
        return "SIGUSR2";
    case SIGPIPE:
        return "SIGPIPE";
    case SIGALRM:
        return "SIGALRM";
    case SIGTERM:
        return "SIGTERM";
    case SIGCHLD:
        return "SIGCHLD";
    case SIGTTIN:
        return "SIGTTIN";
    case SIGTTOU:
        return "SIGTTOU";
    case SIGWINCH:
        return "SIGWINCH";
    case SIGSYS:
        return "SIGSYS";
    case SIGXCPU:
        return "SIGXCPU";
    default:
        return "signal";
    }
}

char *nw_find_in_path(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? nw_xstrdup(name) : NULL;
    const char *path = getenv("PATH");
    char *dirs = nw_xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    char *found = NULL;
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d && !found;
         d = strtok_r(NULL, ":", &save)) {
        char *full = nw_xasprintf("%s/%s", d, name);
        if (access(full, X_OK) == 0)
            found = full;
        else
            free(full);
    }
    free(dirs);
    return found;
}

void nw_make_absolute(char **path, const char *dir)
{
    if (!*path || !**path || **path == '/')
        return;
    char *abs = nw_xasprintf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", *path);
    free(*path);
    *path = abs;
}
