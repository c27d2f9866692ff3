/* wait.c - the wait primitive (see wait.h): poll(2) on a thread's stack,
 * the loop's watchers inside a coroutine. */
#include "wait.h"

#include <errno.h>
#include <poll.h>

#include "coro.h"
#include "narwhal.h"
#include "util.h"

static int poll_wait(int fd, int events, int64_t deadline_ms)
{
    struct pollfd pfd = {.fd = fd, .events = 0};
    if (events & NW_READ)
        pfd.events |= POLLIN;
    if (events & NW_WRITE)
        pfd.events |= POLLOUT;
    for (;;) {
        int ms = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - nw_now_ms();
            ms = left > 0 ? (left > 0x7fffffff ? 0x7fffffff : (int)left) : 0;
        }
        int r = poll(&pfd, fd >= 0 ? 1 : 0, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (pfd.revents & POLLNVAL)
            return -1;
        int mask = 0;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
            mask |= NW_READ;
        if (pfd.revents & (POLLOUT | POLLHUP | POLLERR))
            mask |= NW_WRITE;
        return mask & events ? mask & events : events;
    }
}

static void waiter_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    nw_waiter *w = io->data;
    ev_io_stop(loop, io);
    ev_timer_stop(loop, &w->timer);
    w->result = ((revents & EV_READ) ? NW_READ : 0) | ((revents & EV_WRITE) ? NW_WRITE : 0);
    w->wake(w);
}

static void waiter_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    nw_waiter *w = t->data;
    (void)revents;
    ev_io_stop(loop, &w->io);
    w->result = 0;
    w->wake(w);
}

void wait_setup(nw_waiter *w, struct ev_loop *loop, void (*wake)(nw_waiter *w))
{
    w->loop = loop;
    w->wake = wake;
    w->result = -1;
    ev_init(&w->io, waiter_on_io);
    w->io.data = w;
    ev_init(&w->timer, waiter_on_timer);
    w->timer.data = w;
}

static int coro_wait(nw_waiter *w, int fd, int events, int64_t deadline_ms)
{
    if (fd < 0 && deadline_ms < 0)
        return -1; /* nothing could ever wake it */
    /* A deadline already passed is a check, as poll(2) makes it elsewhere
     * (the loop would run the zero timer before looking at the fd). */
    if (fd >= 0 && deadline_ms >= 0 && deadline_ms <= nw_now_ms())
        return poll_wait(fd, events, deadline_ms);
    if (fd >= 0) {
        int ev = ((events & NW_READ) ? EV_READ : 0) | ((events & NW_WRITE) ? EV_WRITE : 0);
        ev_io_set(&w->io, fd, ev);
        ev_io_start(w->loop, &w->io);
    }
    if (deadline_ms >= 0) {
        ev_now_update(w->loop);
        int64_t left = deadline_ms - nw_now_ms();
        ev_timer_set(&w->timer, left > 0 ? (double)left / 1000. : 0., 0.);
        ev_timer_start(w->loop, &w->timer);
    }
    w->result = -1;
    coro_yield();
    return w->result;
}

int wait_fd(int fd, int events, int64_t deadline_ms)
{
    nw_coro *co = coro_current();
    if (co)
        return coro_wait(coro_data(co), fd, events, deadline_ms);
    return poll_wait(fd, events, deadline_ms);
}
