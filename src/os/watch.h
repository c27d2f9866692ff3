/* watch.h - --reload: notices when the app's shared object or the config
 * file changes on disk (inotify on their directories, since builds and
 * editors usually replace a file by renaming a new one over it). */
#ifndef NW_WATCH_H
#define NW_WATCH_H

#include <stddef.h>

typedef struct nw_watch {
    int fd; /* inotify, non-blocking; -1 = off */
    int n;
    int wd[2];
    char *base[2]; /* owned */
} nw_watch;

/* Watches up to two files (NULL entries are skipped). 0, or -1 (logged). */
int watch_open(nw_watch *w, const char *file1, const char *file2);
/* Reads pending events: 1 if a watched file changed (its name copied to
 * what), else 0. */
int watch_changed(nw_watch *w, char *what, size_t len);
void watch_close(nw_watch *w);

#endif
