/* daemon.c - detaching from the terminal, and the pidfile. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* The pid in a pidfile: the pid, 0 if the file is absent or holds no pid,
 * -1 if it cannot be read. */
pid_t daemon_read_pidfile(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 0)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

int daemon_check_pidfile(const char *path, pid_t upgrading_from)
{
    pid_t pid = daemon_read_pidfile(path);
    if (pid > 0 && pid == upgrading_from)
        return 0; /* USR2: the old master holds it until it exits */
    if (pid < 0) {
        fprintf(stderr, "narwhal: cannot read pidfile %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (pid > 0 && pid != getpid() && (kill(pid, 0) == 0 || errno == EPERM)) {
        fprintf(stderr,
                "narwhal: pidfile %s names a running process (pid %d): is narwhal already "
                "running?\n",
                path, (int)pid);
        return -1;
    }
    return 0;
}

int daemon_write_pidfile(const char *path)
{
    /* A fresh name (mkstemp: O_EXCL, so never through a symlink someone
     * left at a guessable name) renamed over the pidfile; 0644 whatever the
     * umask, so the tools that read pidfiles can. */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp) {
        log_error("cannot write pidfile %s: %s", path, strerror(ENAMETOOLONG));
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot write pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%d\n", (int)getpid());
    int ok = fchmod(fd, 0644) == 0 && write(fd, line, (size_t)len) == len;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (ok && rename(tmp, path) < 0) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        log_error("cannot write pidfile %s: %s", path, strerror(err));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void daemon_remove_pidfile(const char *path)
{
    if (daemon_read_pidfile(path) == getpid())
        unlink(path);
}

int daemon_detach(int *ready_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        fprintf(stderr, "narwhal: cannot daemonize: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "narwhal: cannot daemonize: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        char c;
        ssize_t n;
        do
            n = read(p[0], &c, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        if (log_error_fd() != 2)
            dup2(null, 2);
        if (null > 2)
            close(null);
    }
    *ready_fd = p[1];
    return 0;
}

void daemon_ready(int fd)
{
    if (fd < 0)
        return;
    ssize_t w = write(fd, "k", 1);
    (void)w;
    close(fd);
}
