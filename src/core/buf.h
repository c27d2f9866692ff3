/* buf.h - a growable byte buffer. Out of memory aborts (the worker is
 * respawned), so the append functions cannot fail. */
#ifndef NW_BUF_H
#define NW_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h" /* nw_xmalloc and the rest: what a buffer's users allocate with */

typedef struct nw_buf {
    uint8_t *data; /* owned; NULL while empty and never grown */
    size_t len;    /* bytes in use, from data[off] */
    size_t off;    /* bytes already consumed at the front */
    size_t cap;
} nw_buf;

#define NW_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

void nw_buf_free(nw_buf *b);
/* Makes room for n more bytes and returns where they go (data + off + len). */
uint8_t *nw_buf_reserve(nw_buf *b, size_t n);
void nw_buf_append(nw_buf *b, const void *p, size_t n);
void nw_buf_appendc(nw_buf *b, char c);
void nw_buf_appends(nw_buf *b, const char *s);
void nw_buf_printf(nw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nw_buf_vprintf(nw_buf *b, const char *fmt, va_list ap);
/* The unconsumed bytes. */
static inline uint8_t *nw_buf_head(const nw_buf *b)
{
    return b->data + b->off;
}
/* Drops n bytes from the front; resets to the start when empty. */
void nw_buf_consume(nw_buf *b, size_t n);
void nw_buf_reset(nw_buf *b);

#endif
