#include "app.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

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
    app->dl = dlopen(file ? file : path, RTLD_NOW | RTLD_LOCAL);
    if (!app->dl) {
        snprintf(err, errlen, "cannot load app %s: %s", path, dlerror());
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
