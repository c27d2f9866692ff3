/* exec.h - --exec mode: the master supervises copies of an existing FastCGI
 * program (libfcgi, php-cgi...) instead of workers of its own. Each copy
 * gets the listening socket as fd 0 (FCGI_LISTENSOCK_FILENO), its stdout and
 * stderr go to narwhal's error log line by line. */
#ifndef NW_EXEC_H
#define NW_EXEC_H

#include <sys/types.h>

#include "buf.h"
#include "listener.h"
#include "settings.h"
#include "worker.h"

/* In the forked child: wires fds 0/1/2, drops privileges, resets signals and
 * execs. Never returns (exit 127 with a message on stderr if exec fails). */
void exec_child(const nw_settings *s, const nw_listener *l, nw_identity id, int out_fd, int err_fd)
    __attribute__((noreturn));

/* A line of a child's output longer than this is logged cut, with a
 * marker; the rest of it is dropped. */
#define EXEC_LINE_MAX 4096
/* At most this much is read from one pipe per wake-up of the master. */
#define EXEC_READ_MAX (64 * 1024)

/* One captured stream of a child. */
typedef struct exec_pipe {
    int fd; /* read end, non-blocking; -1 = closed */
    pid_t pid;
    int level;      /* log level of its lines */
    nw_buf partial; /* the line so far, < EXEC_LINE_MAX bytes */
    int cut;        /* dropping the rest of a line logged cut */
} exec_pipe;

/* Reads what is available, at most EXEC_READ_MAX bytes, and logs each
 * complete line. At EOF (or with final set) logs the rest and closes the
 * pipe. */
void exec_pipe_drain(exec_pipe *p, int final);

#endif
