#include "watch.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

int watch_open(nw_watch *w, const char *file1, const char *file2)
{
    const char *files[2] = {file1, file2};
    memset(w, 0, sizeof *w);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        log_error("reload: cannot watch files: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (!files[i])
            continue;
        char *d = nw_xstrdup(files[i]), *b = nw_xstrdup(files[i]);
        int wd = inotify_add_watch(w->fd, dirname(d),
                                   IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB);
        if (wd < 0) {
            log_error("reload: cannot watch %s: %s", files[i], strerror(errno));
            free(d);
            free(b);
            continue;
        }
        w->wd[w->n] = wd;
        w->base[w->n] = nw_xstrdup(basename(b));
        w->n++;
        log_info("reload: watching %s", files[i]);
        free(d);
        free(b);
    }
    return 0;
}

int watch_changed(nw_watch *w, char *what, size_t len)
{
    int changed = 0;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            for (int i = 0; ev->len && i < w->n; i++)
                if (ev->wd == w->wd[i] && strcmp(ev->name, w->base[i]) == 0) {
                    snprintf(what, len, "%s", ev->name);
                    changed = 1;
                }
            p += sizeof *ev + ev->len;
        }
    }
    return changed;
}

void watch_close(nw_watch *w)
{
    if (w->fd >= 0)
        close(w->fd);
    for (int i = 0; i < w->n; i++)
        free(w->base[i]);
    memset(w, 0, sizeof *w);
    w->fd = -1;
}
