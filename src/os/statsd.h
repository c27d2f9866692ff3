/* statsd.h - metrics for a statsD server, under gunicorn's names, so the
 * dashboards built for gunicorn keep working:
 *
 *   gunicorn.requests:1|c               every request
 *   gunicorn.request.duration:12.3|ms   its duration
 *   gunicorn.request.status.200:1|c     its status
 *   gunicorn.workers:4|g                the master, once a second
 *   gunicorn.log.warning:1|c            every log line at warning or above
 *                                       (.error, .critical)
 *
 * each behind `statsd_prefix` (gunicorn's rule: "app" and "app." both give
 * "app.gunicorn.requests"). Over UDP (HOST:PORT) or a unix datagram socket
 * (unix:PATH). Never blocks: lines are batched into datagrams of at most
 * STATSD_DATAGRAM bytes, sent with MSG_DONTWAIT when one is full or on
 * statsd_flush (the worker's and the master's once-a-second tick), and
 * dropped when the socket would block or the server is not there. Safe from any thread (one mutex,
 * held for an append). */
#ifndef NW_STATSD_H
#define NW_STATSD_H

#include <stdint.h>

#define STATSD_DATAGRAM 1432 /* fits one packet on a 1500-byte MTU */

/* Connects to host ("HOST:PORT", "[IPV6]:PORT" or "unix:PATH"; NULL = off)
 * and counts the error log's warning, error and critical lines from then
 * on. The master calls it at start and on every reload (nothing changes
 * when host and prefix are the same; a new host that cannot be reached
 * leaves the old one in use); its workers inherit the socket. 0, or -1
 * (logged). */
int statsd_open(const char *host, const char *prefix);
/* In a new child: what the parent had batched is not the child's to send. */
void statsd_after_fork(void);
void statsd_close(void);
int statsd_enabled(void);

void statsd_gauge(const char *name, long value);
/* One request's three metrics in one append. */
void statsd_request(int status, double ms);
/* Sends what is batched. */
void statsd_flush(void);

#endif
