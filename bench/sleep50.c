/* sleep50 - examples/hello.c that waits 50 ms before answering, for
 * bench/compare.sh's "sleep50" variant. nw_sleep() blocks a sync worker and
 * yields under the threads/async classes, which is what the variant shows.
 *   cc -shared -fPIC -I include -o sleep50.so bench/sleep50.c */
#include <narwhal.h>

int app(nw_request *req)
{
    nw_sleep(req, 50);
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "Hello, World!\n");
    return 0;
}
