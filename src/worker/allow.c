#include "allow.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "log.h"
#include "util.h"

static nw_cidr *clients;
static size_t nclients;

/* The addresses refused in the last minute, each logged once. */
static struct refused {
    char addr[64];     /* "" = free */
    int64_t logged_ms; /* when its last line was written */
    uint64_t unlogged; /* refusals since */
} refused[ALLOW_LOG_ADDRS];
static int64_t others_logged_ms = -ALLOW_LOG_EVERY_MS;
static uint64_t others_unlogged; /* from addresses past the table's room */

void allow_init(const nw_strlist *list)
{
    free(clients);
    clients = NULL;
    nclients = 0;
    if (!list->n)
        return;
    clients = nw_xcalloc(list->n, sizeof *clients);
    for (size_t i = 0; i < list->n; i++) {
        char why[160];
        if (cidr_parse(list->v[i], &clients[nclients], why, sizeof why) == 0)
            nclients++;
    }
}

static void log_refused(const char *addr, int64_t now)
{
    struct refused *free_slot = NULL;
    for (int i = 0; i < ALLOW_LOG_ADDRS; i++) {
        struct refused *r = &refused[i];
        if (r->addr[0] && strcmp(r->addr, addr) == 0) {
            if (now - r->logged_ms < ALLOW_LOG_EVERY_MS) {
                r->unlogged++;
                return;
            }
            if (r->unlogged)
                log_warning("refused a connection from %s: not in allowed_clients "
                            "(%llu more since the last report)",
                            addr, (unsigned long long)r->unlogged);
            else
                log_warning("refused a connection from %s: not in allowed_clients", addr);
            r->logged_ms = now;
            r->unlogged = 0;
            return;
        }
        /* a slot whose minute is over (its count is dropped: a line for it
         * said a minute ago that it was refused) */
        if (!free_slot && (!r->addr[0] || now - r->logged_ms >= ALLOW_LOG_EVERY_MS))
            free_slot = r;
    }
    if (free_slot) {
        snprintf(free_slot->addr, sizeof free_slot->addr, "%s", addr);
        free_slot->logged_ms = now;
        free_slot->unlogged = 0;
        log_warning("refused a connection from %s: not in allowed_clients", addr);
        return;
    }
    others_unlogged++;
    if (now - others_logged_ms >= ALLOW_LOG_EVERY_MS) {
        log_warning("refused %llu connections from addresses not in allowed_clients past the %d "
                    "named this minute",
                    (unsigned long long)others_unlogged, ALLOW_LOG_ADDRS);
        others_logged_ms = now;
        others_unlogged = 0;
    }
}

int allow_peer(const struct sockaddr *peer, int64_t now_ms)
{
    if (!nclients || (peer->sa_family != AF_INET && peer->sa_family != AF_INET6))
        return 1;
    for (size_t i = 0; i < nclients; i++)
        if (cidr_match(&clients[i], peer))
            return 1;
    char addr[64];
    log_refused(cidr_ntop(peer, addr, sizeof addr), now_ms);
    return 0;
}
