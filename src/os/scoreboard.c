#include "scoreboard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "util.h"

int scoreboard_open(nw_scoreboard *sb, int nslots, int per_slot)
{
    size_t sz = sizeof(nw_slot) * (size_t)nslots + sizeof(nw_tslot) * (size_t)nslots * per_slot;
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("cannot map the scoreboard: %s", strerror(errno));
        return -1;
    }
    sb->slots = p;
    sb->tslots = (nw_tslot *)((char *)p + sizeof(nw_slot) * (size_t)nslots);
    sb->nslots = nslots;
    sb->per_slot = per_slot;
    sb->map_len = sz;
    return 0;
}

void scoreboard_close(nw_scoreboard *sb)
{
    if (sb->slots)
        munmap(sb->slots, sb->map_len);
    memset(sb, 0, sizeof *sb);
}

int scoreboard_claim(nw_scoreboard *sb, pid_t pid)
{
    for (int i = 0; i < sb->nslots; i++) {
        nw_slot *s = &sb->slots[i];
        if (s->state == SLOT_FREE && s->pid == 0) {
            memset(s, 0, sizeof *s);
            memset(scoreboard_tslot(sb, i, 0), 0, sizeof(nw_tslot) * (size_t)sb->per_slot);
            s->pid = pid;
            s->heartbeat_ms = nw_now_ms();
            __atomic_store_n(&s->state, SLOT_BOOTING, __ATOMIC_RELEASE);
            return i;
        }
    }
    return -1;
}

void scoreboard_release(nw_scoreboard *sb, int i)
{
    memset(&sb->slots[i], 0, sizeof sb->slots[i]);
    memset(scoreboard_tslot(sb, i, 0), 0, sizeof(nw_tslot) * (size_t)sb->per_slot);
}

int scoreboard_find(const nw_scoreboard *sb, pid_t pid)
{
    for (int i = 0; i < sb->nslots; i++)
        if (sb->slots[i].pid == pid)
            return i;
    return -1;
}

void scoreboard_beat(nw_slot *s)
{
    __atomic_store_n(&s->heartbeat_ms, nw_now_ms(), __ATOMIC_RELAXED);
}

void scoreboard_tslot_begin(nw_tslot *t, const char *method, const char *uri, int64_t start_ms)
{
    snprintf(t->method, sizeof t->method, "%s", method ? method : "-");
    snprintf(t->uri, sizeof t->uri, "%s", uri ? uri : "-");
    __atomic_store_n(&t->req_start_ms, start_ms, __ATOMIC_RELEASE);
}

void scoreboard_tslot_end(nw_tslot *t)
{
    __atomic_store_n(&t->req_start_ms, 0, __ATOMIC_RELEASE);
}
