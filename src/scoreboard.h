/* scoreboard.h - per-worker state in shared memory.
 *
 * The master maps it before forking; each worker writes only its own slot,
 * the master reads every slot once a second to find dead or stuck workers.
 * Fields are written with atomic stores; method/uri are informational and
 * may be caught half-written (they are only logged). */
#ifndef NW_SCOREBOARD_H
#define NW_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>

enum { SLOT_FREE = 0, SLOT_BOOTING, SLOT_READY, SLOT_STOPPING };

typedef struct nw_slot {
    pid_t pid;
    int state;
    int64_t heartbeat_ms; /* nw_now_ms() of the worker's last sign of life */
    int64_t req_start_ms; /* when the current request began, 0 = none */
    uint64_t requests;    /* requests handled by this worker */
    char method[16];
    char uri[240];
} nw_slot;

typedef struct nw_scoreboard {
    nw_slot *slots;
    int nslots;
} nw_scoreboard;

/* Maps nslots zeroed slots shared with future children. 0/-1 (logged). */
int scoreboard_open(nw_scoreboard *sb, int nslots);
void scoreboard_close(nw_scoreboard *sb);
/* A free slot's index, or -1 when all are taken. */
int scoreboard_claim(nw_scoreboard *sb, pid_t pid);
void scoreboard_release(nw_scoreboard *sb, int i);
int scoreboard_find(const nw_scoreboard *sb, pid_t pid);

/* Worker side. */
void slot_beat(nw_slot *s);
void slot_request_begin(nw_slot *s, const char *method, const char *uri);
void slot_request_end(nw_slot *s);

#endif
