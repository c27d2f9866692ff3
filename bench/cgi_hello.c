/* cgi_hello.c - the CGI program of bench/compare.sh's CGI rows (narwhal-cgi,
 * narwhal-cgi-async, fcgiwrap): answers "Hello, World!\n" as text/plain,
 * after SLEEP_MS milliseconds when built with -DSLEEP_MS=50 (sleep50). A C
 * program, so that the rows measure the gateways (fork, exec, pipes) more
 * than a shell's start. */
#include <stdio.h>
#include <time.h>

#ifndef SLEEP_MS
#define SLEEP_MS 0
#endif

int main(void)
{
    if (SLEEP_MS > 0) {
        struct timespec ts = {SLEEP_MS / 1000, (long)(SLEEP_MS % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    fputs("Content-Type: text/plain\r\n\r\nHello, World!\n", stdout);
    return 0;
}
