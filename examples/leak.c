/* leak - an app that leaks on purpose: each request allocates ?kib=N KiB
 * (default 256), touches every page, and keeps it forever, then answers
 * with the worker's pid. For max_worker_memory: its workers grow until
 * narwhal replaces them. ?mib=N instead allocates N MiB, touches it and
 * frees it, answering 503 when the allocation fails (under
 * worker_memory_hard_limit). */
#include <narwhal.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long query_num(nw_request *req, const char *key, long def)
{
    const char *q = nw_param(req, "QUERY_STRING");
    const char *p = q ? strstr(q, key) : NULL;
    return p ? atol(p + strlen(key)) : def;
}

static void *kept; /* the last block: a chain the allocator sees as live */

int app(nw_request *req)
{
    nw_add_header(req, "Content-Type", "text/plain");
    long mib = query_num(req, "mib=", 0);
    if (mib > 0) {
        char *p = malloc((size_t)mib << 20);
        if (!p) {
            nw_set_status(req, 503);
            nw_printf(req, "cannot allocate %ld MiB\n", mib);
            return 0;
        }
        memset(p, 1, (size_t)mib << 20);
        free(p);
        nw_printf(req, "allocated %ld MiB in %d\n", mib, (int)getpid());
        return 0;
    }
    long kib = query_num(req, "kib=", 256);
    if (kib < 1 || kib > 1 << 20)
        kib = 256;
    void **p = malloc((size_t)kib << 10);
    if (!p)
        return 1;
    memset(p, 1, (size_t)kib << 10);
    *p = kept;
    kept = p;
    nw_printf(req, "leaked %ld KiB in %d\n", kib, (int)getpid());
    return 0;
}
