/* watch.c - --reload's file watch: paths, not inodes (watch.h). */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* On each directory along a path: the next component coming, going or
 * being rewritten, and the directory itself going. */
#define DIR_EVENTS                                                                                 \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB |            \
     IN_DELETE_SELF | IN_MOVE_SELF)

/* Takes what f->path names now. 1 if that differs from before. */
static int look(watch_file *f)
{
    struct stat st;
    int exists = stat(f->path, &st) == 0;
    int64_t mtime = exists ? (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec : 0;
    int changed =
        exists != f->exists || (exists && (st.st_dev != f->dev || st.st_ino != f->ino ||
                                           st.st_size != f->size || mtime != f->mtime_ns));
    f->exists = exists;
    f->dev = exists ? st.st_dev : 0;
    f->ino = exists ? st.st_ino : 0;
    f->size = exists ? st.st_size : 0;
    f->mtime_ns = mtime;
    return changed;
}

/* Lays the watches along every path as it resolves now: on "/" for the
 * first component, on "/a" for the second, and so on. A directory that
 * does not exist yet is not watched; its parent's watch sees it come. */
static void arm(nw_watch *w)
{
    if (w->fd < 0)
        return;
    for (int i = 0; i < w->n; i++)
        for (int k = 0; k < w->f[i].depth; k++)
            if (w->f[i].wd[k] >= 0) {
                inotify_rm_watch(w->fd, w->f[i].wd[k]); /* shared wds: EINVAL, fine */
                w->f[i].wd[k] = -1;
            }
    for (int i = 0; i < w->n; i++) {
        watch_file *f = &w->f[i];
        char dir[PATH_MAX] = "/";
        for (int k = 0; k < f->depth; k++) {
            f->wd[k] = inotify_add_watch(w->fd, dir, DIR_EVENTS);
            size_t len = strlen(dir);
            snprintf(dir + len, sizeof dir - len, "%s%s", len > 1 ? "/" : "", f->name[k]);
        }
    }
}

int watch_open(nw_watch *w, const char *file1, const char *file2)
{
    const char *files[WATCH_FILES] = {file1, file2};
    memset(w, 0, sizeof *w);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) /* watch_poll alone, then */
        log_error("reload: cannot watch files with inotify (checking them once a second "
                  "instead): %s",
                  strerror(errno));
    for (int i = 0; i < WATCH_FILES; i++) {
        if (!files[i])
            continue;
        watch_file *f = &w->f[w->n];
        if (files[i][0] != '/') {
            log_error("reload: cannot watch %s: not an absolute path", files[i]);
            continue;
        }
        f->path = nw_xstrdup(files[i]);
        char *copy = nw_xstrdup(f->path), *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c && f->depth < WATCH_DEPTH;
             c = strtok_r(NULL, "/", &save))
            f->name[f->depth++] = nw_xstrdup(c);
        free(copy);
        for (int k = 0; k < WATCH_DEPTH; k++)
            f->wd[k] = -1;
        look(f);
        w->n++;
        log_info("reload: watching %s", f->path);
    }
    arm(w);
    w->polled_ms = nw_now_ms();
    return w->fd >= 0 ? 0 : -1;
}

int watch_set(nw_watch *w, const char *file1, const char *file2)
{
    const char *files[WATCH_FILES] = {file1, file2};
    int same = 1, j = 0;
    for (int i = 0; same && i < WATCH_FILES; i++) {
        if (!files[i])
            continue;
        same = j < w->n && strcmp(files[i], w->f[j].path) == 0;
        j++;
    }
    if (same && j == w->n)
        return 0;
    watch_close(w);
    return watch_open(w, file1, file2);
}

/* Which files changed, after the paths may have moved: lays the watches
 * again and compares. */
static int rearm_and_look(nw_watch *w, char *what, size_t len)
{
    arm(w);
    int changed = 0;
    for (int i = 0; i < w->n; i++)
        if (look(&w->f[i])) {
            snprintf(what, len, "%s", w->f[i].path);
            changed = 1;
        }
    return changed;
}

int watch_changed(nw_watch *w, char *what, size_t len)
{
    int relevant = 0;
    if (w->fd < 0)
        return 0;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->mask & IN_Q_OVERFLOW)
                relevant = 1; /* events were lost: look */
            for (int i = 0; i < w->n; i++)
                for (int k = 0; k < w->f[i].depth; k++)
                    if (w->f[i].wd[k] >= 0 && ev->wd == w->f[i].wd[k] &&
                        (ev->len ? strcmp(ev->name, w->f[i].name[k]) == 0
                                 : (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0))
                        relevant = 1;
            p += sizeof *ev + ev->len;
        }
    }
    return relevant ? rearm_and_look(w, what, len) : 0;
}

int watch_poll(nw_watch *w, char *what, size_t len)
{
    int64_t now = nw_now_ms();
    if (w->n == 0 || now - w->polled_ms < 1000)
        return 0;
    w->polled_ms = now;
    int changed = 0;
    for (int i = 0; i < w->n; i++) {
        watch_file f = w->f[i];
        changed |= look(&f);
    }
    return changed ? rearm_and_look(w, what, len) : 0;
}

void watch_close(nw_watch *w)
{
    if (w->fd >= 0)
        close(w->fd);
    for (int i = 0; i < w->n; i++) {
        free(w->f[i].path);
        for (int k = 0; k < w->f[i].depth; k++)
            free(w->f[i].name[k]);
    }
    memset(w, 0, sizeof *w);
    w->fd = -1;
}
