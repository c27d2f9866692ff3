/* cgi.h - CGI programs (RFC 3875), forked per request by the worker: the
 * one --cgi PROGRAM for every request, or with --cgi-root DIR the program
 * the front end names in SCRIPT_FILENAME (fcgiwrap's job).
 *
 * The gateway is a handler written against the app API of <narwhal.h>
 * (nw_read, nw_write, nw_wait_fd): the program's pipes are waited on
 * through one epoll fd handed to nw_wait_fd, so it runs unchanged in every
 * worker class, and under async one worker runs many programs at once.
 *
 * A program runs in a process group of its own (its pid), with the
 * request's params as its environment (the last of a repeated name, as
 * nw_param gives it; HTTP_PROXY dropped), then raw_env; its stdin is the
 * request body, streamed; its stdout is parsed as a CGI response (Status,
 * Location, other header fields; at most CGI_HEADER_MAX bytes of them) and
 * its body streamed to the front end as it comes; its stderr goes to the
 * error log a line at a time. Past the request's `timeout`, or when the
 * client is gone, the whole group gets SIGKILL. Every program is reaped by
 * the handler that started it before it returns. */
#ifndef NW_CGI_H
#define NW_CGI_H

#include <stddef.h>

#include "narwhal.h"
#include "settings.h"

/* The most bytes of header fields a program may print before the blank line
 * that ends them: past it, a 502. */
#define CGI_HEADER_MAX 65536
/* A line of a program's stderr is logged up to this many bytes (the rest
 * of it is cut, and the cut said), and at most CGI_STDERR_LINES lines per
 * request (the rest are counted in one line at the end). */
#define CGI_STDERR_LINE 2048
#define CGI_STDERR_LINES 200

/* In a worker, after its chdir: resolves --cgi PROGRAM and every cgi_root
 * (symlinks followed) once. s is borrowed for the worker's life. 0, or -1
 * with the reason in err. */
int cgi_setup(const nw_settings *s, char *err, size_t errlen);

/* The handler (an nw_handler) of a worker set up by cgi_setup. */
int cgi_handle(nw_request *req);

/* Programs this worker has started and not yet reaped. */
int cgi_running(void);

/* Where the status page reads this worker's running and waiting programs
 * (its scoreboard slot; NULL: nowhere). */
struct nw_slot;
void cgi_set_slot(struct nw_slot *slot);

/* SIGKILLs the process group of every program this worker runs (a graceful
 * stop out of time); their handlers then end their responses and reap
 * them. Loop thread only. */
void cgi_kill_all(void);

#endif
