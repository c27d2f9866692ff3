/* cgi_head.c - a CGI program's header block (cgi_head.h). */
#include "cgi_head.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t cgi_head_end(const char *buf, size_t len, size_t *scan)
{
    size_t i = *scan;
    if (i == 0 && len >= 1 && buf[0] == '\n')
        return 1;
    if (i == 0 && len >= 2 && buf[0] == '\r' && buf[1] == '\n')
        return 2;
    for (; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    /* the last two bytes may begin the end ("\n\r" waits for "\n"); a lone
     * "\r" at the start may be a blank line's */
    *scan = len > 2 ? len - 2 : 0;
    return 0;
}

/* Status: "NNN" or "NNN reason", 200..599 (nginx would take a 1xx as the
 * final response). The code, or 0. */
static int status_code(const char *v)
{
    if (strspn(v, "0123456789") != 3 || (v[3] && v[3] != ' '))
        return 0;
    int code = atoi(v);
    return code >= 200 && code <= 599 ? code : 0;
}

/* One line, NUL-terminated, len bytes, no line end: 0 or -1 (why set). */
static int one_field(char *line, size_t len, cgi_head *h,
                     int (*field)(void *arg, const char *name, const char *value), void *arg,
                     char *why, size_t whylen)
{
    char *colon = memchr(line, ':', len);
    if (!colon)
        return snprintf(why, whylen, "a header line without a colon: \"%.100s\"", line), -1;
    *colon = 0;
    char *v = colon + 1, *end = line + len;
    while (*v == ' ' || *v == '\t')
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = 0;
    if (strcasecmp(line, "Status") == 0) {
        h->status = status_code(v);
        if (!h->status)
            return snprintf(why, whylen, "a bad Status: \"%.100s\"", v), -1;
        return 0;
    }
    if (strcasecmp(line, "Location") == 0)
        h->location = v;
    if (field(arg, line, v) != 0)
        return snprintf(why, whylen, "a malformed header field: \"%.100s\"", line), -1;
    return 0;
}

int cgi_head_parse(char *block, size_t len, cgi_head *h,
                   int (*field)(void *arg, const char *name, const char *value), void *arg,
                   char *why, size_t whylen)
{
    char *p = block, *end = block + len;
    int fields = 0;
    h->status = 0;
    h->location = NULL;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) /* a block cgi_head_end did not measure */
            return snprintf(why, whylen, "a header block without its blank line"), -1;
        char *eol = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (eol == p)
            break; /* the blank line */
        if (memchr(p, 0, (size_t)(eol - p)))
            return snprintf(why, whylen, "a NUL byte in its header block"), -1;
        if (*p == ' ' || *p == '\t')
            return snprintf(why, whylen, "a folded header line"), -1;
        *eol = 0;
        if (one_field(p, (size_t)(eol - p), h, field, arg, why, whylen) < 0)
            return -1;
        fields++;
        p = nl + 1;
    }
    if (!fields)
        return snprintf(why, whylen, "an empty header block"), -1;
    return 0;
}
