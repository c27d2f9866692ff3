/* fcgi_hello - an ordinary libfcgi program, to run under `narwhal --exec`.
 *
 *   cc -o fcgi_hello fcgi_hello.c -lfcgi
 *   narwhal -w 2 -u nobody --exec ./fcgi_hello
 *
 * It accepts on fd 0 (FCGI_LISTENSOCK_FILENO) like any FastCGI program
 * started by spawn-fcgi, answers with its pid and the request URI, and
 * finishes the request in hand and exits on SIGUSR1 (libfcgi's own
 * handler). ?crash=1 makes it exit(3) on purpose. */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    FCGX_Request req;
    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    fprintf(stderr, "fcgi_hello %d ready\n", (int)getpid());
    while (FCGX_Accept_r(&req) >= 0) {
        const char *uri = FCGX_GetParam("REQUEST_URI", req.envp);
        const char *qs = FCGX_GetParam("QUERY_STRING", req.envp);
        if (qs && strcmp(qs, "crash=1") == 0)
            exit(3);
        FCGX_FPrintF(req.out, "Content-Type: text/plain\r\n\r\n"
                              "Hello from libfcgi, pid %d, uri %s\n",
                     (int)getpid(), uri ? uri : "-");
        FCGX_Finish_r(&req);
    }
    fprintf(stderr, "fcgi_hello %d exiting\n", (int)getpid());
    return 0;
}
