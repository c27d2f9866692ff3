/* allow.h - allowed_clients: which TCP peers a worker serves.
 *
 * A worker checks each accepted TCP connection's peer address against the
 * list before it reads a byte; one from elsewhere is reset and logged, at
 * most once a minute per address (with the count of those not logged), and
 * for at most ALLOW_LOG_ADDRS addresses a minute: past them the rest are
 * counted together in one line a minute. So a flood, from one address or
 * from many, costs a bounded number of log lines. Unix socket peers are
 * not checked (the socket's mode says who may connect). One list per
 * process (a worker), built once at boot. */
#ifndef NW_ALLOW_H
#define NW_ALLOW_H

#include <stdint.h>
#include <sys/socket.h>

#include "settings.h"

#define ALLOW_LOG_ADDRS 32
#define ALLOW_LOG_EVERY_MS 60000

/* Takes the list (already validated by the settings); an empty list allows
 * every peer. */
void allow_init(const nw_strlist *clients);

/* Whether peer may be served; when not, logs (rate-limited as above) and
 * returns 0. now_ms: nw_now_ms(). */
int allow_peer(const struct sockaddr *peer, int64_t now_ms);

#endif
