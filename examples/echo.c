/* echo - answers with the request's params and its body.
 *
 * GET  /anything?x=1  -> text/plain, one "NAME=VALUE" line per param
 * POST /anything      -> the body, byte for byte (Content-Type kept)
 * The X-Echo-Bytes response header gives the body length read. */
#include <narwhal.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print_param(const char *name, const char *value, void *arg)
{
    nw_printf(arg, "%s=%s\n", name, value);
    return 0;
}

int app(nw_request *req)
{
    const char *method = nw_param(req, "REQUEST_METHOD");
    const char *clen = nw_param(req, "CONTENT_LENGTH");
    if (method && strcmp(method, "GET") != 0 && clen && *clen) {
        /* Read the whole body first so the length can go in a header. */
        size_t cap = 65536, len = 0;
        char *body = malloc(cap);
        if (!body)
            return -1;
        for (;;) {
            if (len == cap) {
                char *nb = realloc(body, cap *= 2);
                if (!nb) {
                    free(body);
                    return -1;
                }
                body = nb;
            }
            ssize_t n = nw_read(req, body + len, cap - len);
            if (n < 0) {
                free(body);
                return -1;
            }
            if (n == 0)
                break;
            len += (size_t)n;
        }
        char num[32];
        snprintf(num, sizeof num, "%zu", len);
        const char *ctype = nw_param(req, "CONTENT_TYPE");
        nw_add_header(req, "Content-Type", ctype && *ctype ? ctype : "application/octet-stream");
        nw_add_header(req, "X-Echo-Bytes", num);
        ssize_t w = len ? nw_write(req, body, len) : 0;
        free(body);
        return w < 0 ? -1 : 0;
    }
    nw_add_header(req, "Content-Type", "text/plain");
    return nw_param_each(req, print_param, req);
}
