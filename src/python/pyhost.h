/* pyhost.h - between narwhal and its Python host module (python.so).
 *
 * The module is built and installed with narwhal (never by app authors),
 * so this is not an ABI promise: the version below only turns a stale
 * module left in the install directory into a clear error. narwhal dlopen()s
 * the module only for a Python app, then calls nw_python_load() (in the
 * worker, or in the master with preload_app) to start the interpreter and
 * import the app. The module is otherwise an ordinary narwhal app: its
 * nw_python_handler, nw_worker_init and nw_worker_exit run as a C app's do,
 * against the public API of narwhal.h. */
#ifndef NW_PYHOST_H
#define NW_PYHOST_H

#include <stddef.h>

#define NW_PYTHON_HOST_VERSION 1

typedef struct nw_python_config {
    int version;            /* NW_PYTHON_HOST_VERSION */
    const char *spec;       /* module[:callable] */
    const char *pythonpath; /* comma-separated, or NULL */
    const char *virtualenv; /* or NULL */
    int coroutines;         /* handlers run on coroutines of one thread (-k async) */
    int multithread;        /* handlers run on several threads at once (-k threads) */
    int multiprocess;       /* more than one worker */
    int reload;             /* --reload: a changed module file asks the master (HUP) for
                               new workers */
} nw_python_config;

/* Starts the interpreter (once per process) and imports the app. 0, or -1
 * with the reason in err (the traceback has been logged line by line). */
typedef int nw_python_load_fn(const nw_python_config *cfg, char *err, size_t errlen);

#endif
