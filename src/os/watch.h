/* watch.h - --reload: notices when the app's shared object or the config
 * file changes on disk.
 *
 * It watches paths, not inodes: a deploy replaces a file by renaming a new
 * one over it, a directory by `mv dir dir.old; mkdir dir`, a release by
 * swapping a symlink (`ln -sfn r2 current.tmp && mv -T current.tmp
 * current`). So every directory along each path is watched (inotify) for
 * the next component being created, moved or deleted, and after any such
 * event the watches are laid again along the path as it now resolves. A
 * file counts as changed when what the path names is another file, or the
 * same one with another size or mtime; as a fallback, the paths are also
 * stat()ed once a second (watch_poll), which catches what inotify cannot
 * see (a symlink's target directory moved elsewhere, a network filesystem). */
#ifndef NW_WATCH_H
#define NW_WATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WATCH_FILES 2
#define WATCH_DEPTH 32 /* path components watched per file */

typedef struct watch_file {
    char *path;              /* absolute, as given (symlinks kept); owned */
    char *name[WATCH_DEPTH]; /* the path's components; owned */
    int wd[WATCH_DEPTH];     /* wd[i]: the directory holding name[i]; -1 = none */
    int depth;               /* how many components */
    int exists;              /* what stat() said last */
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
} watch_file;

typedef struct nw_watch {
    int fd; /* inotify, non-blocking; -1 = off */
    int n;
    watch_file f[WATCH_FILES];
    int64_t polled_ms;
} nw_watch;

/* Watches up to two files, by absolute path, symlinks kept (NULL entries
 * are skipped). 0, or -1 (logged) when inotify is not available: then
 * watch_poll alone notices changes. */
int watch_open(nw_watch *w, const char *file1, const char *file2);
/* The same two files as before? Then nothing; else closes w and opens it
 * on these (after a reload changed the app path or the config). */
int watch_set(nw_watch *w, const char *file1, const char *file2);
/* Reads pending inotify events: 1 if a watched file changed (its path
 * copied to what), else 0. */
int watch_changed(nw_watch *w, char *what, size_t len);
/* At most once a second: stat()s the paths; 1 if one changed (as above). */
int watch_poll(nw_watch *w, char *what, size_t len);
void watch_close(nw_watch *w);

#endif
