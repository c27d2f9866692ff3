#include "scoreboard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "util.h"

int scoreboard_open(nw_scoreboard *sb, int nslots)
{
    size_t sz = sizeof(nw_slot) * (size_t)nslots;
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("cannot map the scoreboard: %s", strerror(errno));
        return -1;
    }
    sb->slots = p;
    sb->nslots = nslots;
    return 0;
}

void scoreboard_close(nw_scoreboard *sb)
{
    if (sb->slots)
        munmap(sb->slots, sizeof(nw_slot) * (size_t)sb->nslots);
    sb->slots = NULL;
    sb->nslots = 0;
}

int scoreboard_claim(nw_scoreboard *sb, pid_t pid)
{
    for (int i = 0; i < sb->nslots; i++) {
        nw_slot *s = &sb->slots[i];
        if (s->state == SLOT_FREE && s->pid == 0) {
            memset(s, 0, sizeof *s);
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
}

int scoreboard_find(const nw_scoreboard *sb, pid_t pid)
{
    for (int i = 0; i < sb->nslots; i++)
        if (sb->slots[i].pid == pid)
            return i;
    return -1;
}

void slot_beat(nw_slot *s) { __atomic_store_n(&s->heartbeat_ms, nw_now_ms(), __ATOMIC_RELAXED); }

void slot_request_begin(nw_slot *s, const char *method, const char *uri)
{
    snprintf(s->method, sizeof s->method, "%s", method ? method : "-");
    snprintf(s->uri, sizeof s->uri, "%s", uri ? uri : "-");
    int64_t now = nw_now_ms();
    __atomic_store_n(&s->heartbeat_ms, now, __ATOMIC_RELAXED);
    __atomic_store_n(&s->req_start_ms, now, __ATOMIC_RELEASE);
}

void slot_request_end(nw_slot *s)
{
    __atomic_store_n(&s->req_start_ms, 0, __ATOMIC_RELEASE);
    __atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
    slot_beat(s);
}
