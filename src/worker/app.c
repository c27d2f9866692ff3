#include "app.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pyhost.h"
#include "util.h"

/* A private copy of the file at path, in memory: an fd, or -1 (errno set).
 * Running workers map their copy, not the file, so a build or a `cp` that
 * rewrites the file in place cannot pull pages from under them (SIGBUS), and
 * a half-written file is one that fails to load, not one that crashes. */
static int private_copy(const char *path)
{
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    /* named after the file: the name is what /proc/PID/maps and a stack
     * in the slowlog show ("/memfd:app.so (deleted)") */
    const char *base = strrchr(path, '/');
    char name[200];
    snprintf(name, sizeof name, "%s", base ? base + 1 : path);
    int out = memfd_create(name, MFD_CLOEXEC);
    if (out < 0) {
        int err = errno;
        close(in);
        errno = err;
        return -1;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        for (ssize_t off = 0; n > 0 && off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                n = -1;
                break;
            }
            off += w;
        }
        if (n < 0) {
            int err = errno;
            close(in);
            close(out);
            errno = err;
            return -1;
        }
    }
    close(in);
    return out;
}

/* dlerror() names what was opened; the user gave path. */
static void dl_reason(char *out, size_t len, const char *opened, const char *path)
{
    const char *why = dlerror();
    size_t k = strlen(opened);
    if (!why)
        why = "unknown error";
    if (strncmp(why, opened, k) == 0 && strncmp(why + k, ": ", 2) == 0)
        why += k + 2;
    snprintf(out, len, "cannot load app %s: %s", path, why);
}

/* The Python host module: $NARWHAL_PYTHON_MODULE, else the one built next
 * to this executable (a build tree), else the installed one. */
static const char *python_module(char *buf, size_t len)
{
    const char *env = getenv("NARWHAL_PYTHON_MODULE");
    if (env && *env)
        return env;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, len, "%s/src/python/python.so", exe);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
#ifdef NW_PKGLIBDIR
    snprintf(buf, len, "%s/python.so", NW_PKGLIBDIR);
#else
    snprintf(buf, len, "python.so");
#endif
    return buf;
}

static int python_load(const nw_settings *s, nw_app *app, char *err, size_t errlen)
{
#ifndef NW_HAVE_PYTHON
    (void)s;
    (void)app;
    snprintf(err, errlen,
             "cannot load app %s: this narwhal was built without Python (configure found no "
             "python3-embed, or was given --without-python)",
             s->app);
    return -1;
#else
    char buf[4200];
    const char *mod = python_module(buf, sizeof buf);
    /* RTLD_GLOBAL: the extension modules Python imports (.so files) find
     * libpython's symbols in the global scope, as in the python3 program. */
    app->dl = dlopen(mod, RTLD_NOW | RTLD_GLOBAL);
    if (!app->dl) {
        const char *why = dlerror();
        snprintf(err, errlen, "cannot load app %s: cannot load narwhal's Python host: %s", s->app,
                 why ? why : "unknown error");
        return -1;
    }
    nw_python_load_fn *load = (nw_python_load_fn *)dlsym(app->dl, "nw_python_load");
    app->handler = (nw_handler *)dlsym(app->dl, "nw_python_handler");
    if (!load || !app->handler) {
        snprintf(err, errlen, "cannot load app %s: %s is not narwhal's Python host", s->app, mod);
        return -1;
    }
    nw_python_config cfg = {
        .version = NW_PYTHON_HOST_VERSION,
        .spec = s->app,
        .pythonpath = s->pythonpath,
        .virtualenv = s->virtualenv,
        .coroutines = s->worker_class == NW_CLASS_ASYNC,
        .multithread = s->worker_class == NW_CLASS_THREADS && s->threads > 1,
        .multiprocess = s->workers > 1,
        .reload = s->reload,
    };
    if (load(&cfg, err, errlen) < 0)
        return -1; /* the module stays: an interpreter cannot be unloaded */
    app->init = (int (*)(void))dlsym(app->dl, "nw_worker_init");
    app->fini = (void (*)(void))dlsym(app->dl, "nw_worker_exit");
    app->python = 1;
    return 0;
#endif
}

int app_load(const nw_settings *s, nw_app *app, char *err, size_t errlen)
{
    const char *spec = s->app;
    memset(app, 0, sizeof *app);
    if (nw_app_spec_kind(spec) == NW_APP_PYTHON)
        return python_load(s, app, err, errlen);
    char *path, *symbol;
    int rc = -1;
    nw_split_app_spec(spec, &path, &symbol);
    /* dlopen searches the library path for a bare name; an app is a file. */
    char *file = strchr(path, '/') ? path : NULL;
    if (!file && asprintf(&file, "./%s", path) < 0)
        file = NULL;
    char copy[64] = "";
    int fd = private_copy(file ? file : path);
    if (fd < 0) {
        snprintf(err, errlen, "cannot load app %s: %s", path, strerror(errno));
        goto out;
    }
    snprintf(copy, sizeof copy, "/proc/self/fd/%d", fd);
    app->dl = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
    if (!app->dl) {
        dl_reason(err, errlen, copy, path);
        goto out;
    }
    dlerror();
    app->handler = (nw_handler *)dlsym(app->dl, symbol);
    if (!app->handler) {
        snprintf(err, errlen, "cannot load app %s: symbol '%s' not found", path, symbol);
        dlclose(app->dl);
        app->dl = NULL;
        goto out;
    }
    app->init = (int (*)(void))dlsym(app->dl, "nw_worker_init");
    app->fini = (void (*)(void))dlsym(app->dl, "nw_worker_exit");
    /* The mapping keeps the copy; the fd stays open too: the master reads
     * the app's symbols and lines through it for the slowlog (stack.c). */
    app->copy_fd = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (file != path)
        free(file);
    free(path);
    free(symbol);
    return rc;
}

void app_unload(nw_app *app)
{
    if (app->dl && !app->python) {
        dlclose(app->dl);
        close(app->copy_fd);
    }
    memset(app, 0, sizeof *app);
}

static nw_app preloaded;
static int have_preloaded;

int app_preload(const nw_settings *s, char *err, size_t errlen)
{
    if (app_load(s, &preloaded, err, errlen) < 0)
        return -1;
    have_preloaded = 1;
    return 0;
}

const nw_app *app_preloaded(void)
{
    return have_preloaded ? &preloaded : NULL;
}
