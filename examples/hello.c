/* hello - the smallest narwhal app.
 *   cc -shared -fPIC -fstack-clash-protection $(pkg-config --cflags narwhal) -o hello.so hello.c
 *   narwhal ./hello.so */
#include <narwhal.h>

int app(nw_request *req)
{
    nw_add_header(req, "Content-Type", "text/plain");
    nw_printf(req, "Hello, World!\n");
    return 0;
}
