#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"
#include "rlimits.h"
#include "signals.h"
#include "util.h"

void exec_child(const nw_settings *s, const nw_listener *l, nw_identity id, int out_fd, int err_fd)
{
    signals_default_all();
    signals_unblock_all();

    /* FastCGI's convention: the listening socket is fd 0, and a libfcgi
     * program blocks in accept(2) on it. */
    if (dup2(l->fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(127);
    int fl = fcntl(0, F_GETFL);
    if (fl >= 0)
        fcntl(0, F_SETFL, fl & ~O_NONBLOCK);
    /* every fd above, however high; a kernel before 5.9 has no close_range:
     * then one by one up to the limit */
    if (close_range(3, ~0U, 0) < 0)
        for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < (max > 0 ? max : 65536); fd++)
            close((int)fd);

    char err[256];
    if (rlimits_apply(s, err, sizeof err) < 0 || identity_drop(id, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        _exit(127);
    }
    if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        fprintf(stderr, "cannot set no_new_privs: %s\n", strerror(errno));
        _exit(127);
    }
    char **argv = nw_xcalloc(s->exec_args.n + 2, sizeof *argv);
    argv[0] = s->exec;
    for (size_t i = 0; i < s->exec_args.n; i++)
        argv[i + 1] = s->exec_args.v[i];
    execvp(s->exec, argv);
    fprintf(stderr, "cannot exec %s: %s\n", s->exec, strerror(errno));
    _exit(127);
}

_Static_assert(EXEC_LINE_MAX == 4096, "the marker below names the limit");

static void log_line(exec_pipe *p, const char *line, size_t len, int cut)
{
    if (len && line[len - 1] == '\r')
        len--;
    log_msg(p->level, "[%s %d] %.*s%s", p->level >= NW_LOG_WARNING ? "stderr" : "stdout",
            (int)p->pid, (int)len, line, cut ? " [cut: line longer than 4096 bytes]" : "");
}

/* Takes n bytes of the child's output: logs each complete line, keeps the
 * start of the next one. A line that reaches EXEC_LINE_MAX is logged cut
 * and the rest of it, up to its newline, is dropped. */
static void feed(exec_pipe *p, const char *b, size_t n)
{
    while (n) {
        const char *nl = memchr(b, '\n', n);
        size_t len = nl ? (size_t)(nl - b) : n;
        if (p->cut) {
            /* the tail of a line already logged cut */
        } else if (p->partial.len + len <= EXEC_LINE_MAX) {
            nw_buf_append(&p->partial, b, len);
            if (nl) {
                log_line(p, (const char *)nw_buf_head(&p->partial), p->partial.len, 0);
                nw_buf_consume(&p->partial, p->partial.len);
            }
        } else {
            size_t room = EXEC_LINE_MAX - p->partial.len;
            nw_buf_append(&p->partial, b, room);
            log_line(p, (const char *)nw_buf_head(&p->partial), p->partial.len, 1);
            nw_buf_consume(&p->partial, p->partial.len);
            p->cut = 1;
        }
        if (nl)
            p->cut = 0;
        b += nl ? len + 1 : len;
        n -= nl ? len + 1 : len;
    }
}

void exec_pipe_drain(exec_pipe *p, int final)
{
    if (p->fd < 0)
        return;
    int eof = 0;
    char b[4096];
    /* Bounded per wake-up: a child that writes without pause cannot keep
     * the master from its signals and its other children. */
    for (size_t got = 0; got < EXEC_READ_MAX;) {
        ssize_t n = read(p->fd, b, sizeof b);
        if (n > 0) {
            feed(p, b, (size_t)n);
            got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
    }
    if (eof || final) {
        if (p->partial.len)
            log_line(p, (const char *)nw_buf_head(&p->partial), p->partial.len, 0);
        nw_buf_free(&p->partial);
        close(p->fd);
        p->fd = -1;
    }
}
