/* sleep - waits ?ms=N milliseconds (default 50) with nw_sleep, then answers.
 * Under -k async the wait yields to other requests; under -k threads it
 * holds one thread; under sync, the worker. */
#include <narwhal.h>

#include <stdlib.h>
#include <string.h>

int app(nw_request *req)
{
    int ms = 50;
    const char *q = nw_param(req, "QUERY_STRING");
    const char *p = q ? strstr(q, "ms=") : NULL;
    if (p)
        ms = atoi(p + 3);
    if (nw_sleep(req, ms) < 0)
        return 1; /* the request's deadline passed: narwhal answers 504 */
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "slept %d ms\n", ms);
    return 0;
}
