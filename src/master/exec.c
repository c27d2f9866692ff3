#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

void exec_child(const nw_settings *s, const nw_listener *l, nw_identity id, int out_fd, int err_fd)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* FastCGI's convention: the listening socket is fd 0, and a libfcgi
     * program blocks in accept(2) on it. */
    if (dup2(l->fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(127);
    int fl = fcntl(0, F_GETFL);
    if (fl >= 0)
        fcntl(0, F_SETFL, fl & ~O_NONBLOCK);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);

    char err[256];
    if (identity_drop(id, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
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

static void log_line(exec_pipe *p, const char *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        len--;
    log_msg(p->level, "[%s %d] %.*s", p->level >= NW_LOG_WARNING ? "stderr" : "stdout", (int)p->pid,
            (int)len, line);
}

void exec_pipe_drain(exec_pipe *p, int final)
{
    if (p->fd < 0)
        return;
    int eof = 0;
    for (;;) {
        uint8_t *dst = nw_buf_reserve(&p->partial, 4096);
        ssize_t n = read(p->fd, dst, 4096);
        if (n > 0) {
            p->partial.len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
    }
    /* Log complete lines; keep the tail. Overlong lines go out in pieces. */
    for (;;) {
        const char *head = (const char *)nw_buf_head(&p->partial);
        const char *nl = memchr(head, '\n', p->partial.len);
        if (!nl && p->partial.len < 8192)
            break;
        size_t len = nl ? (size_t)(nl - head) : p->partial.len;
        log_line(p, head, len);
        nw_buf_consume(&p->partial, nl ? len + 1 : len);
    }
    if (eof || final) {
        if (p->partial.len)
            log_line(p, (const char *)nw_buf_head(&p->partial), p->partial.len);
        nw_buf_free(&p->partial);
        close(p->fd);
        p->fd = -1;
    }
}
