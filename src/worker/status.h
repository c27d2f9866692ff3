/* status.h - the pages a worker answers itself, without the app: ping
 * (`ping_path`, answers `ping_response`) and status (`status_path`), whose
 * numbers come from the shared scoreboard (scoreboard.h), so whichever
 * worker answers shows the whole server. Formats as php-fpm chooses them,
 * by query string: plain text (default), `json`, `openmetrics`; `full` adds
 * one entry per request slot; `html` is a page for a person, which reads
 * `json&full` itself (status_html.c). */
#ifndef NW_STATUS_H
#define NW_STATUS_H

#include "buf.h"
#include "listener.h"
#include "scoreboard.h"
#include "settings.h"

typedef enum { STATUS_NONE, STATUS_PING, STATUS_STATUS } status_page;
typedef enum { STATUS_TEXT, STATUS_JSON, STATUS_OPENMETRICS } status_format;

/* A request's params, as the caller keeps them. */
typedef const char *(*status_param_fn)(void *ctx, const char *name);

/* The page a request asks for: its path (DOCUMENT_URI, else SCRIPT_NAME +
 * PATH_INFO, else REQUEST_URI up to '?') equal to ping_path or status_path
 * (both off when unset). */
status_page status_match(const nw_settings *s, status_param_fn param, void *ctx);

/* Answers page (not STATUS_NONE): the body into body, *ctype its content
 * type (static). The query string comes from QUERY_STRING, else
 * REQUEST_URI. */
void status_answer(status_page page, const nw_settings *s, status_param_fn param, void *ctx,
                   nw_buf *body, const char **ctype);

/* The worker's listening sockets, for the listen queue (borrowed; their fds
 * may become -1 when the worker stops). */
void status_set_listeners(const nw_listener *ls, int n);

/* One listener's accept queue, as the page shows it. */
typedef struct status_queue {
    const char *addr;
    int queue;   /* connections waiting to be accepted, -1 = unknown */
    int backlog; /* the most that can wait, -1 = unknown */
    int max;     /* the most seen waiting (scoreboard), -1 = unknown */
} status_queue;

/* What the page shows besides the scoreboard, for the formatter. */
typedef struct status_extra {
    int64_t now_unix_ms;
    int64_t now_ms; /* nw_now_ms() */
    const status_queue *queues;
    int nqueues;
} status_extra;

/* Formats a scoreboard snapshot (scoreboard_snapshot) into out; the content
 * type of fmt is status_content_type(fmt). */
void status_format_page(nw_buf *out, const nw_scoreboard *snap, const status_extra *x,
                        status_format fmt, int full);
const char *status_content_type(status_format fmt);

/* The `?html` page (status_html.c): static, it polls `?json&full`. */
void status_html(nw_buf *out);

#endif
