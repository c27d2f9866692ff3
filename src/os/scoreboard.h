/* scoreboard.h - per-worker state in shared memory.
 *
 * The master maps it before forking; each worker writes only its own slot
 * and its own request slots (one per thread; one for the sync and async
 * classes), the master reads them once a second to find dead or stuck
 * workers. Fields are written with atomic stores; method/uri are
 * informational and may be caught half-written (they are only logged). */
#ifndef NW_SCOREBOARD_H
#define NW_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>

enum { SLOT_FREE = 0, SLOT_BOOTING, SLOT_READY, SLOT_STOPPING };

/* One request in progress. */
typedef struct nw_tslot {
    int64_t req_start_ms; /* when the request began, 0 = none */
    char method[16];
    char uri[232];
} nw_tslot;

typedef struct nw_slot {
    pid_t pid;
    int state;
    int64_t heartbeat_ms; /* nw_now_ms() of the worker's last sign of life */
    uint64_t requests;    /* requests handled by this worker */
} nw_slot;

typedef struct nw_scoreboard {
    nw_slot *slots;
    nw_tslot *tslots; /* per_slot for each slot */
    int nslots;
    int per_slot;
    size_t map_len;
} nw_scoreboard;

/* Maps nslots zeroed slots with per_slot request slots each, shared with
 * future children. 0/-1 (logged). */
int scoreboard_open(nw_scoreboard *sb, int nslots, int per_slot);
void scoreboard_close(nw_scoreboard *sb);
/* A free slot's index, or -1 when all are taken. */
int scoreboard_claim(nw_scoreboard *sb, pid_t pid);
void scoreboard_release(nw_scoreboard *sb, int i);
int scoreboard_find(const nw_scoreboard *sb, pid_t pid);
static inline nw_tslot *scoreboard_tslot(const nw_scoreboard *sb, int i, int t)
{
    return &sb->tslots[(size_t)i * (size_t)sb->per_slot + (size_t)t];
}

/* Worker side. */
void scoreboard_beat(nw_slot *s);
void scoreboard_tslot_begin(nw_tslot *t, const char *method, const char *uri, int64_t start_ms);
void scoreboard_tslot_end(nw_tslot *t);

#endif
