#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void nw_buf_free(nw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->off = b->cap = 0;
}

uint8_t *nw_buf_reserve(nw_buf *b, size_t n)
{
    if (b->off + b->len + n <= b->cap)
        return b->data + b->off + b->len;
    if (b->off && b->len + n <= b->cap) {
        /* Slide the unconsumed bytes to the front instead of growing. */
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) {
        if (cap > SIZE_MAX / 2)
            nw_oom();
        cap *= 2;
    }
    uint8_t *d = nw_xmalloc(cap);
    if (b->len)
        memcpy(d, b->data + b->off, b->len);
    free(b->data);
    b->data = d;
    b->off = 0;
    b->cap = cap;
    return d + b->len;
}

void nw_buf_append(nw_buf *b, const void *p, size_t n)
{
    if (!n)
        return;
    memcpy(nw_buf_reserve(b, n), p, n);
    b->len += n;
}

void nw_buf_appendc(nw_buf *b, char c)
{
    nw_buf_append(b, &c, 1);
}

void nw_buf_appends(nw_buf *b, const char *s)
{
    nw_buf_append(b, s, strlen(s));
}

void nw_buf_vprintf(nw_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char *dst = (char *)nw_buf_reserve(b, 128);
    int n = vsnprintf(dst, b->cap - b->off - b->len, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->off - b->len) {
        dst = (char *)nw_buf_reserve(b, (size_t)n + 1);
        vsnprintf(dst, (size_t)n + 1, fmt, ap);
    }
    b->len += (size_t)n;
}

void nw_buf_printf(nw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nw_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void nw_buf_consume(nw_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = b->off = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}

void nw_buf_reset(nw_buf *b)
{
    b->len = b->off = 0;
}
