/* fcgi_hello - the libfcgi "Hello, World!" for bench/compare.sh, run under
 * spawn-fcgi (which hands it the listening socket on fd 0).
 *
 *   cc -O2 -o fcgi_hello bench/fcgi_hello.c -lfcgi
 *   spawn-fcgi -a 127.0.0.1 -p 9000 -F 2 -- ./fcgi_hello [SLEEP_MS]
 *
 * With SLEEP_MS (e.g. 50) it waits that long before answering. */
#include <fcgiapp.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long sleep_ms = argc > 1 ? atol(argv[1]) : 0;
    struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };
    FCGX_Request req;

    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    while (FCGX_Accept_r(&req) >= 0) {
        if (sleep_ms > 0)
            nanosleep(&ts, NULL);
        FCGX_PutS("Content-Type: text/plain\r\n\r\nHello, World!\n", req.out);
        FCGX_Finish_r(&req);
    }
    return 0;
}
