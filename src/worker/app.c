#include "app.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
    int out = memfd_create("narwhal-app", MFD_CLOEXEC);
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

int app_load(const char *spec, nw_app *app, char *err, size_t errlen)
{
    char *path, *symbol;
    int rc = -1;
    memset(app, 0, sizeof *app);
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
    rc = 0;
out:
    if (fd >= 0)
        close(fd); /* the mapping keeps the copy */
    if (file != path)
        free(file);
    free(path);
    free(symbol);
    return rc;
}

void app_unload(nw_app *app)
{
    if (app->dl)
        dlclose(app->dl);
    memset(app, 0, sizeof *app);
}

static nw_app preloaded;
static int have_preloaded;

int app_preload(const char *spec, char *err, size_t errlen)
{
    if (app_load(spec, &preloaded, err, errlen) < 0)
        return -1;
    have_preloaded = 1;
    return 0;
}

const nw_app *app_preloaded(void)
{
    return have_preloaded ? &preloaded : NULL;
}
