/* symcall_hello - the "Hello, World!" for uWSGI's symcall plugin
 * (modifier1 18), used by bench/compare.sh:
 *
 *   uwsgi --dot-h > uwsgi.h
 *   cc -O2 -fPIC -shared -I. $(uwsgi --cflags) -o symcall_hello.so bench/symcall_hello.c
 *   uwsgi --plugin symcall --dlopen ./symcall_hello.so --symcall bench_hello \
 *         --master --processes 2 --socket 127.0.0.1:9000
 *   nginx:  uwsgi_pass 127.0.0.1:9000; uwsgi_modifier1 18;
 *
 * bench_sleep50 waits 50 ms before answering. */
#include <unistd.h>
#include "uwsgi.h"

static int hello(struct wsgi_request *wsgi_req)
{
    static const char body[] = "Hello, World!\n";

    if (uwsgi_parse_vars(wsgi_req))
        return -1;
    if (uwsgi_response_prepare_headers(wsgi_req, "200 OK", 6))
        return -1;
    if (uwsgi_response_add_content_type(wsgi_req, "text/plain", 10))
        return -1;
    if (uwsgi_response_write_body_do(wsgi_req, (char *)body, sizeof(body) - 1))
        return -1;
    return UWSGI_OK;
}

int bench_hello(struct wsgi_request *wsgi_req)
{
    return hello(wsgi_req);
}

int bench_sleep50(struct wsgi_request *wsgi_req)
{
    usleep(50000);
    return hello(wsgi_req);
}
