/* util.h - small helpers shared by the master and the workers. */
#ifndef NW_UTIL_H
#define NW_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Allocation that cannot fail: out of memory writes "narwhal: out of
 * memory" to stderr and aborts (a worker that dies is respawned). Sizes of 0
 * allocate 1 byte, so the result is never NULL. Callers free() as usual. */
void *nw_xmalloc(size_t n);
void *nw_xcalloc(size_t n, size_t m);
void *nw_xrealloc(void *p, size_t n);
char *nw_xstrdup(const char *s);
char *nw_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* What the nw_x* functions do when memory runs out. */
void nw_oom(void) __attribute__((noreturn));

/* Milliseconds on CLOCK_MONOTONIC (the same clock in every process). */
int64_t nw_now_ms(void);
int nw_set_nonblock(int fd);
int nw_set_cloexec(int fd, int on);
/* Closes *fd if it is open and marks it closed (-1). */
void nw_close_fd(int *fd);
/* Splits "path.so[:symbol]" into owned strings; symbol defaults to "app".
 * The last ':' separates the symbol only when what follows is a C
 * identifier, so paths containing ':' still work. */
void nw_split_app_spec(const char *spec, char **path, char **symbol);

/* What an APP argument names. A C app is a shared object: a path with a
 * '/' in it, or one ending in ".so" (before an optional ":symbol"). Anything
 * else of the form module[:callable] (dotted names, gunicorn's syntax; the
 * callable may be "factory()") is a Python WSGI app, even if a file of that
 * name exists: "./app" is the file, "app" the module. The rest is bad. */
typedef enum { NW_APP_BAD = 0, NW_APP_C, NW_APP_PYTHON } nw_app_kind;
nw_app_kind nw_app_spec_kind(const char *spec);
#define NW_APP_FORMS                                                                              \
    "a shared object (path/app.so[:symbol], a path with a '/' or ending in .so) or a Python "     \
    "WSGI app (module:callable, as gunicorn's)"
const char *nw_signame(int sig);
/* Where a program would be run from: name itself if it contains '/', else
 * the first executable match in $PATH. Owned string, or NULL if none. */
char *nw_find_in_path(const char *name);

/* Makes *path (owned, may be NULL) absolute: a relative one is taken from
 * dir. The old string is freed. */
void nw_make_absolute(char **path, const char *dir);

#endif
