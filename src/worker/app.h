/* app.h - loading the app's shared object in a worker (or for
 * --check-config). Never called in the master while it serves. */
#ifndef NW_APP_H
#define NW_APP_H

#include <stddef.h>

#include "narwhal.h"
#include "settings.h"

typedef struct nw_app {
    void *dl;
    nw_handler *handler;
    int (*init)(void);  /* nw_worker_init, or NULL */
    void (*fini)(void); /* nw_worker_exit, or NULL */
    int python;         /* narwhal's Python host, running a WSGI app */
    int copy_fd;        /* a C app's private copy (a memfd), open while dl is */
} nw_app;

/* Loads s->app. A C app: dlopen()s a private in-memory copy of
 * "path.so[:symbol]" (so nothing written to the file later reaches this
 * process) and resolves the handler and the optional hooks. A Python app
 * (module:callable): loads narwhal's Python host module, which starts the
 * interpreter and imports the app. On failure writes the reason to err ("cannot load ./x.so: ...",
 * "symbol 'foo' not found in ./x.so") and returns -1. */
int app_load(const nw_settings *s, nw_app *app, char *err, size_t errlen);
void app_unload(nw_app *app);

/* preload_app: the master loads the app once before forking; workers then
 * share its pages and skip their own dlopen. NULL when not preloaded. */
int app_preload(const nw_settings *s, char *err, size_t errlen);
const nw_app *app_preloaded(void);

#endif
