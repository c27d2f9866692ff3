/* app.h - loading the app's shared object in a worker (or for
 * --check-config). Never called in the master while it serves. */
#ifndef NW_APP_H
#define NW_APP_H

#include <stddef.h>

#include "narwhal.h"

typedef struct nw_app {
    void *dl;
    nw_handler *handler;
    int (*init)(void);  /* nw_worker_init, or NULL */
    void (*fini)(void); /* nw_worker_exit, or NULL */
} nw_app;

/* dlopen()s a private in-memory copy of "path.so[:symbol]" (so nothing
 * written to the file later reaches this process) and resolves the handler
 * and the optional hooks. On failure writes the reason to err ("cannot load ./x.so: ...",
 * "symbol 'foo' not found in ./x.so") and returns -1. */
int app_load(const char *spec, nw_app *app, char *err, size_t errlen);
void app_unload(nw_app *app);

/* preload_app: the master loads the app once before forking; workers then
 * share its pages and skip their own dlopen. NULL when not preloaded. */
int app_preload(const char *spec, char *err, size_t errlen);
const nw_app *app_preloaded(void);

#endif
