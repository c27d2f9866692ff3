/* cgi_head.h - a CGI program's header block (RFC 3875 6.2, 6.3): where it
 * ends and what it says. Pure: bytes in, fields out, no I/O; cgi.c feeds it
 * the program's stdout and hands the fields to the response. */
#ifndef NW_CGI_HEAD_H
#define NW_CGI_HEAD_H

#include <stddef.h>

/* Where the header block at the start of buf[0..len) ends: the offset just
 * past the blank line that ends it ("\n\n" or "\n\r\n"; a block that is only
 * a blank line ends at 1 or 2), or 0 while that line has not come. *scan (0
 * at first, the same variable on every call while buf grows) keeps where to
 * look from, so that a block arriving a byte at a time costs linear time. */
size_t cgi_head_end(const char *buf, size_t len, size_t *scan);

typedef struct cgi_head {
    int status;           /* Status: 200..599; 0 = none */
    const char *location; /* Location's value (into the block); NULL = none */
} cgi_head;

/* Parses block[0..len) (as cgi_head_end measured it), in place: NULs are
 * written into it, and the names and values handed out point into it.
 * Calls field(arg, name, value) for every field but Status, in order (value
 * without the spaces and tabs around it), Location included, and fills h.
 * 0, or -1 with the reason in why ("a header line without a colon: ..."
 * quoting at most 100 bytes of the line): a line without a colon, a folded
 * line, a NUL byte, a Status that is not three digits from 200 to 599
 * (then a space and a reason, or nothing), no field at all, or field
 * returning non-zero ("a malformed header field: NAME"). */
int cgi_head_parse(char *block, size_t len, cgi_head *h,
                   int (*field)(void *arg, const char *name, const char *value), void *arg,
                   char *why, size_t whylen);

#endif
