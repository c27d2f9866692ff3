/*
 * narwhal.h - the only header a narwhal app includes.
 *
 * An app is a shared object built with `-shared -fPIC` against this header
 * (`pkg-config --cflags narwhal`). It links against nothing: the narwhal
 * executable exports every function below.
 *
 * Build it with `-fstack-clash-protection` too (pkg-config's flags include
 * it where the compiler has it). Under `-k async` a handler runs on a
 * coroutine stack of `--coroutine-stack-size` (256 KiB) with a 64 KiB
 * inaccessible gap below it, and the next coroutine's stack below that:
 * the probes make a frame larger than what is left (a big local array)
 * fault on the gap, and the worker is replaced, where without them its
 * first write could land in another request's stack.
 *
 *     #include <narwhal.h>
 *     int app(nw_request *req)
 *     {
 *         nw_add_header(req, "Content-Type", "text/plain");
 *         nw_printf(req, "Hello, %s!\n", nw_param(req, "REMOTE_ADDR"));
 *         return 0;
 *     }
 *
 * Run it with `narwhal ./hello.so` (symbol `app`) or `narwhal ./lib.so:name`.
 *
 * Lifetimes: every pointer narwhal hands to the app (parameter names and
 * values) is borrowed and valid until the handler returns. The request
 * object itself must not be used after the handler returns.
 *
 * Optional hooks, looked up in the same object:
 *     int  nw_worker_init(void);   once per worker after fork; non-zero = the
 *                                  worker failed to boot (logged, not retried
 *                                  in a loop)
 *     void nw_worker_exit(void);   once per worker before a graceful exit
 *
 * Processes: the worker runs the app (on every thread) with no signal
 * blocked and every disposition at its default, but for SIGPIPE, caught so
 * that a write to a closed pipe fails with EPIPE, and for the TERM, USR1,
 * INT and QUIT the worker handles; its handlers restart interrupted calls
 * (SA_RESTART), but a poll, a sleep or another call that cannot restart
 * may return EINTR. A program the app starts (fork and exec, posix_spawn,
 * system, popen) inherits none of that: an empty mask, the default SIGPIPE.
 * A process the app leaves running when its worker exits is stopped by the
 * master (SIGTERM, then SIGKILL), which logs it.
 */
#ifndef NARWHAL_H
#define NARWHAL_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NARWHAL_API_VERSION 1

typedef struct nw_request nw_request;

/* The handler's signature: return 0 on success. A non-zero return before any
 * body byte was written turns the response into a 500; after that the
 * response is ended as it is and the error is logged. */
typedef int nw_handler(nw_request *req);

enum { NW_READ = 1, NW_WRITE = 2 };
/* Threads: a request's calls belong to the thread its handler runs on (its
 * buffers are that thread's, unlocked). Called with the request from a
 * thread the app made, every function fails (-1, or NULL for nw_param) and
 * narwhal logs it once per request; nw_log still writes narwhal's own log.
 * nw_log(NULL, ...) may be called from any thread. */

enum { NW_LOG_DEBUG, NW_LOG_INFO, NW_LOG_WARNING, NW_LOG_ERROR, NW_LOG_CRITICAL };

/* The value of a request parameter (a CGI/FastCGI variable such as
 * REQUEST_METHOD, QUERY_STRING or HTTP_USER_AGENT), or NULL if absent. When
 * the front end sends a name more than once (an nginx config that repeats a
 * fastcgi_param or uwsgi_param after an include, to override it), the last
 * value wins, in both protocols, as in php-fpm and uWSGI. */
const char *nw_param(const nw_request *req, const char *name);

/* Calls fn for every parameter in arrival order, repeated names included
 * (each value once, in the order they came); stops early and returns the
 * callback's value when it returns non-zero. Returns 0 otherwise. */
int nw_param_each(const nw_request *req, int (*fn)(const char *name, const char *value, void *arg),
                  void *arg);

/* Reads the request body: >0 bytes read, 0 at the end of the body, -1 on
 * error (client gone, request aborted, timed out). Blocks (or yields) until
 * data arrives. A handler need not read the body: what it leaves is read and
 * dropped after it returns, before its response goes out. */
ssize_t nw_read(nw_request *req, void *buf, size_t len);

/* Sets the response status (default 200): a final status, 200..599. -1
 * once headers have gone out, or for anything else (nginx would pass a 1xx
 * to the client as the final response, and 600 and above are not HTTP). */
int nw_set_status(nw_request *req, int status);

/* Adds a response header. -1 once headers have gone out, or when the field
 * is not one HTTP allows (RFC 9110): the name must be a non-empty token
 * (letters, digits and !#$%&'*+-.^_`|~), the value may hold visible ASCII,
 * bytes 0x80-0xff, spaces and tabs, and no other control byte. "Status" is
 * refused too: nw_set_status sets it. */
int nw_add_header(nw_request *req, const char *name, const char *value);

/* Writes body bytes; the headers go out with the first one. Returns len, or
 * -1 when the client is gone or the request was aborted. */
ssize_t nw_write(nw_request *req, const void *buf, size_t len);

/* printf into the body. Returns the number of bytes written or -1. */
int nw_printf(nw_request *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Waits until fd is ready for events (NW_READ | NW_WRITE) or timeout_ms
 * passes (-1 = no timeout of its own; the request's deadline still applies).
 * Returns the ready mask, 0 on timeout, -1 on error (a closed or negative
 * fd) or when the request's deadline passed. Under `-k async` the wait
 * yields to other requests. */
int nw_wait_fd(nw_request *req, int fd, int events, int timeout_ms);

/* Sleeps ms milliseconds without holding up other requests where the worker
 * class allows. 0 on success, -1 when interrupted by the request's deadline. */
int nw_sleep(nw_request *req, int ms);

/* Milliseconds left before the request's deadline (`timeout` from its first
 * byte): 0 once it has passed, -1 when the request has none (timeout = 0).
 * A -1 from a wait above means the deadline when this says 0. */
long nw_time_left(const nw_request *req);

/* Logs a line to narwhal's error log, tagged with the request. Lines at
 * NW_LOG_WARNING and above also go to the front end (FastCGI STDERR, which
 * nginx writes to its own error log), except an empty one. req may be NULL
 * (e.g. in hooks). */
void nw_log(nw_request *req, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* For language hosts (an embedded interpreter: narwhal's Python module).
 * When the slowlog traces a slow request, or a worker is about to be killed
 * for `timeout`, narwhal writes the C stack of the thread running it and
 * then calls fn on that very thread, from a signal handler, with the fd to
 * write a language-level trace to (the slowlog, or the error log before a
 * kill; the kill waits 100 ms for it). fn must be async-signal-safe:
 * CPython's _Py_DumpTraceback(fd, tstate), the function faulthandler uses,
 * is. Call it from nw_worker_init; NULL takes it away. Returns 0, or -1
 * when the signal (SIGRTMIN+4) cannot be caught. */
int nw_set_trace_hook(void (*fn)(int fd));

#ifdef __cplusplus
}
#endif
#endif
