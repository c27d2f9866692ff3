/* harness.c - see harness.h. */
#include "harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_MAX_PROCS 64
#define H_MAX_PORTS 64
/* One file per port handed out, so concurrent tests never share a port. */
#define H_PORT_DIR "/tmp/narwhal-e2e-ports"

/* What this test process started. */
static struct {
    char dir[PATH_MAX];
    pid_t procs[H_MAX_PROCS]; /* 0 = free slot */
    int guard_fd;             /* write end of the guard's pipe, -1 if none */
    pid_t guard;
    int ports[H_MAX_PORTS]; /* reserved by h_free_port */
    int nports;
    int nginx_count;
    int narwhal_count;
} H = {.guard_fd = -1};

/* ---- small utilities --------------------------------------------------------- */

static char *h_vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    return s;
}

char *h_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = h_vfmt(fmt, ap);
    va_end(ap);
    return s;
}

char *h_path(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *name = h_vfmt(fmt, ap);
    va_end(ap);
    char *p = h_fmt("%s/%s", H.dir, name);
    free(name);
    return p;
}

const char *h_dir(void)
{
    return H.dir;
}

const char *h_env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v && *v, "environment variable %s is not set (run the tests with `make check`)",
              name);
    return v;
}

char *h_example(const char *name)
{
    return h_fmt("%s/%s", h_env("NARWHAL_EXAMPLES"), name);
}

char *h_testapp(const char *symbol)
{
    return h_fmt("%s:%s", h_env("NARWHAL_TESTAPP"), symbol);
}

char *h_classapp(const char *symbol)
{
    return h_fmt("%s:%s", h_env("NARWHAL_CLASSAPP"), symbol);
}

long h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- the guard ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes the temp dir unless NARWHAL_E2E_KEEP asks to keep it. */
static void remove_dir(void)
{
    const char *keep = getenv("NARWHAL_E2E_KEEP");
    if (keep && *keep && strcmp(keep, "0") != 0)
        fprintf(stderr, "harness: kept %s\n", H.dir);
    else if (H.dir[0])
        nftw(H.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The guard outlives a test process killed by Criterion's timeout and then
 * SIGKILLs every process group still registered and removes the temp dir.
 * It reads "+pid\n" (started), "-pid\n" (stopped) and "=\n" (teardown done,
 * nothing left to do) lines until EOF. */
static void guard_main(int rfd)
{
    pid_t live[H_MAX_PROCS] = {0};
    bool done = false;
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(rfd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            pid_t pid = (pid_t)atol(line + 1);
            done = done || line[0] == '=';
            for (int i = 0; i < H_MAX_PROCS && pid > 0; i++) {
                if (line[0] == '+' && live[i] == 0) {
                    live[i] = pid;
                    break;
                }
                if (line[0] == '-' && live[i] == pid) {
                    live[i] = 0;
                    break;
                }
            }
            line = nl + 1;
        }
        len = strlen(line);
        memmove(buf, line, len);
    }
    if (done)
        _exit(0);
    for (int i = 0; i < H_MAX_PROCS; i++)
        if (live[i] > 0) {
            kill(-live[i], SIGKILL);
            kill(live[i], SIGKILL);
        }
    h_sleep_ms(200); /* let them go before their files do */
    remove_dir();
    _exit(0);
}

static void guard_send(char op, pid_t pid)
{
    if (H.guard_fd < 0)
        return;
    char line[32];
    int n = snprintf(line, sizeof line, "%c%ld\n", op, (long)pid);
    ssize_t w = write(H.guard_fd, line, (size_t)n);
    (void)w;
}

static void close_fds_from(int lowfd, int keep)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lowfd; fd < max; fd++)
        if (fd != keep)
            close(fd);
}

static void track(pid_t pid)
{
    for (int i = 0; i < H_MAX_PROCS; i++)
        if (H.procs[i] == 0) {
            H.procs[i] = pid;
            guard_send('+', pid);
            return;
        }
    cr_assert_fail("harness: too many processes");
}

static void untrack(pid_t pid)
{
    for (int i = 0; i < H_MAX_PROCS; i++)
        if (H.procs[i] == pid) {
            H.procs[i] = 0;
            guard_send('-', pid);
        }
}

/* ---- setup / teardown ---------------------------------------------------------- */

void h_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(H.dir, sizeof H.dir, "/tmp/nw-e2e-XXXXXX");
    cr_assert(mkdtemp(H.dir), "mkdtemp: %s", strerror(errno));
    /* A daemonized narwhal is reparented to us, so we can wait for it. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    int p[2];
    cr_assert(pipe2(p, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    pid_t g = fork();
    cr_assert(g >= 0, "fork: %s", strerror(errno));
    if (g == 0) {
        /* Hold nothing of Criterion's: its runner waits for EOF on them. */
        close_fds_from(0, p[0]);
        setpgid(0, 0);
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        guard_main(p[0]);
    }
    close(p[0]);
    H.guard = g;
    H.guard_fd = p[1];
}

void h_teardown(void)
{
    for (int i = 0; i < H_MAX_PROCS; i++)
        if (H.procs[i] > 0)
            h_stop(H.procs[i], SIGINT, 3000);
    for (int i = 0; i < H.nports; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s/%d", H_PORT_DIR, H.ports[i]);
        unlink(path);
    }
    remove_dir();
    if (H.guard_fd >= 0) {
        guard_send('=', 0);
        close(H.guard_fd);
        H.guard_fd = -1;
        int st;
        for (int i = 0; i < 200 && waitpid(H.guard, &st, WNOHANG) == 0; i++)
            h_sleep_ms(10);
    }
}

/* ---- sockets -------------------------------------------------------------------- */

static socklen_t tcp_addr(int port, struct sockaddr_in *sa);

static bool port_bindable(int port)
{
    struct sockaddr_in sa;
    socklen_t sl = tcp_addr(port, &sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    bool ok = bind(fd, (struct sockaddr *)&sa, sl) == 0;
    close(fd);
    return ok;
}

/* Takes H_PORT_DIR/<port> for this process. A file left by a process that
 * no longer exists (a test killed by its timeout) is taken over. */
static bool reserve_port(int port)
{
    char path[64];
    snprintf(path, sizeof path, "%s/%d", H_PORT_DIR, port);
    for (int tries = 0; tries < 2; tries++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dprintf(fd, "%ld\n", (long)getpid());
            close(fd);
            return true;
        }
        if (errno != EEXIST)
            return false;
        pid_t owner = h_read_pidfile(path);
        if (owner == 0 || kill(owner, 0) == 0 || errno != ESRCH)
            return false; /* taken (or being written right now) */
        unlink(path);     /* stale */
    }
    return false;
}

/* Ports are drawn from below the kernel's ephemeral range, so neither the
 * kernel's own choices (bind to port 0, outgoing connections) nor another
 * test (the reservation files) can take one between h_free_port and the
 * server's bind. */
int h_free_port(void)
{
    cr_assert(H.nports < H_MAX_PORTS, "harness: too many ports");
    mkdir(H_PORT_DIR, 01777);
    int lo = 15000, hi = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        int elo, ehi;
        if (fscanf(f, "%d %d", &elo, &ehi) == 2 && elo > lo + 1000)
            hi = elo;
        fclose(f);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned int seed = (unsigned int)getpid() * 2654435761u ^ (unsigned int)ts.tv_nsec;
    for (int i = 0; i < 1000; i++) {
        int port = lo + (int)(rand_r(&seed) % (unsigned int)(hi - lo));
        if (!reserve_port(port))
            continue;
        if (port_bindable(port)) {
            H.ports[H.nports++] = port;
            return port;
        }
        char path[64];
        snprintf(path, sizeof path, "%s/%d", H_PORT_DIR, port);
        unlink(path);
    }
    cr_assert_fail("harness: no free port in %d..%d", lo, hi - 1);
    return -1;
}

/* The inode of the socket listening on 127.0.0.1:port (or *:port), 0 if
 * none. */
static unsigned long listen_inode(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return 0;
    char line[512];
    unsigned long found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long addr, inode;
        unsigned int lport, state;
        if (sscanf(line, " %*d: %lX:%X %*X:%*X %X %*X:%*X %*X:%*X %*X %*u %*u %lu", &addr, &lport,
                   &state, &inode) == 4 &&
            (int)lport == port && state == 0x0A && (addr == 0x0100007F || addr == 0))
            found = inode;
    }
    fclose(f);
    return found;
}

int h_time_wait(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned int lport, rport, state;
        if (sscanf(line, " %*d: %*X:%X %*X:%X %X", &lport, &rport, &state) == 3 && state == 0x06 &&
            ((int)lport == port || (int)rport == port))
            n++;
    }
    fclose(f);
    return n;
}

bool h_listens(pid_t pid, int port)
{
    unsigned long inode = listen_inode(port);
    if (!inode)
        return false;
    char want[64], dir[64], path[384], got[64];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, got, sizeof got - 1);
        if (n > 0) {
            got[n] = '\0';
            found = strcmp(got, want) == 0;
        }
    }
    closedir(d);
    return found;
}

bool h_wait_listen(pid_t pid, int port, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    do {
        if (h_listens(pid, port))
            return true;
        h_sleep_ms(20);
    } while (h_now_ms() < deadline);
    return false;
}

/* A non-blocking connect bounded by deadline (ms, h_now_ms clock). Returns
 * the connected fd or -1 with errno. */
static int connect_by(const struct sockaddr *sa, socklen_t sl, long deadline)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, sl) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EAGAIN) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    long left = deadline - h_now_ms();
    int n = poll(&pfd, 1, left > 0 ? (int)left : 0);
    int err = 0;
    socklen_t el = sizeof err;
    if (n <= 0) {
        close(fd);
        errno = ETIMEDOUT;
        return -1;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

static socklen_t tcp_addr(int port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *sa;
}

bool h_tcp_accepts(int port)
{
    struct sockaddr_in sa;
    socklen_t sl = tcp_addr(port, &sa);
    int fd = connect_by((struct sockaddr *)&sa, sl, h_now_ms() + 1000);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

bool h_unix_accepts(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return false;
    strcpy(sa.sun_path, path);
    int fd = connect_by((struct sockaddr *)&sa, sizeof sa, h_now_ms() + 1000);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

bool h_wait_tcp(int port, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    do {
        if (h_tcp_accepts(port))
            return true;
        h_sleep_ms(20);
    } while (h_now_ms() < deadline);
    return false;
}

bool h_wait_unix(const char *path, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    do {
        if (h_unix_accepts(path))
            return true;
        h_sleep_ms(20);
    } while (h_now_ms() < deadline);
    return false;
}

/* ---- processes ------------------------------------------------------------------ */

pid_t h_spawn(const char *logpath, char *const argv[], char *const env[])
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                signal(sig, SIG_DFL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        close_fds_from(3, -1);
        for (size_t i = 0; env && env[i]; i++)
            putenv(env[i]);
        execv(argv[0], argv);
        dprintf(2, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also in the parent, so it holds before we signal */
    track(pid);
    return pid;
}

/* State letter, parent and process group of pid from /proc/pid/stat; 0 if
 * it is gone. */
static char proc_state(pid_t pid, pid_t *ppid, pid_t *pgrp)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* the name may hold spaces and ')' */
    char state = 0;
    long parent = 0, group = 0;
    if (!rp || sscanf(rp + 1, " %c %ld %ld", &state, &parent, &group) != 3)
        return 0;
    if (ppid)
        *ppid = (pid_t)parent;
    if (pgrp)
        *pgrp = (pid_t)group;
    return state;
}

bool h_alive(pid_t pid)
{
    if (pid <= 0 || kill(pid, 0) < 0)
        return false;
    char st = proc_state(pid, NULL, NULL);
    return st && st != 'Z' && st != 'X';
}

/* Live (non-zombie) processes whose parent is ppid (if > 0) or whose
 * process group is pgrp (if > 0); at most max in out (may be NULL). */
static int proc_scan(pid_t ppid, pid_t pgrp, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    cr_assert(d, "opendir /proc: %s", strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        pid_t p = (pid_t)atol(e->d_name), parent = 0, group = 0;
        if (p <= 0)
            continue;
        char st = proc_state(p, &parent, &group);
        if (!st || st == 'Z' || st == 'X' || (ppid > 0 && parent != ppid) ||
            (pgrp > 0 && group != pgrp))
            continue;
        if (out && n < max)
            out[n] = p;
        n++;
    }
    closedir(d);
    return n;
}

int h_children(pid_t pid, pid_t *out, int max)
{
    return proc_scan(pid, 0, out, max);
}

int h_wait_children(pid_t pid, pid_t *out, int max, int want, long timeout_ms)
{
    int n = 0;
    for (long end = h_now_ms() + timeout_ms; h_now_ms() < end; h_sleep_ms(50))
        if ((n = h_children(pid, out, max)) == want)
            break;
    return n;
}

/* Waits until no live process is left in group pgid (reaping those that
 * are our children: workers orphaned by their master come to us). */
static bool wait_group_gone(pid_t pgid, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    for (;;) {
        while (waitpid(-pgid, NULL, WNOHANG) > 0) {
        }
        if (proc_scan(0, pgid, NULL, 0) == 0)
            return true;
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(10);
    }
}

bool h_wait_exit(pid_t pid, long timeout_ms, int *wstatus)
{
    long deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (wstatus)
                *wstatus = st;
            untrack(pid);
            return true;
        }
        if (r < 0 && errno == ECHILD && !h_alive(pid)) {
            /* not our child (an adopted daemon): its status is unknown */
            if (wstatus)
                *wstatus = 0;
            untrack(pid);
            return true;
        }
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(10);
    }
}

void h_kill_group(pid_t pid)
{
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    h_wait_exit(pid, 5000, NULL);
    wait_group_gone(pid, 5000); /* their sockets are closed only then */
    untrack(pid);
}

int h_stop(pid_t pid, int sig, long timeout_ms)
{
    int st;
    if ((kill(pid, sig) == 0 && h_wait_exit(pid, timeout_ms, &st)) || h_wait_exit(pid, 0, &st)) {
        kill(-pid, SIGKILL); /* workers left behind, if any */
        wait_group_gone(pid, 5000);
        return st;
    }
    h_kill_group(pid);
    return -1;
}

void h_adopt(pid_t pid)
{
    track(pid);
}

const char *h_wstatus_str(int st)
{
    static char buf[64];
    if (st < 0)
        snprintf(buf, sizeof buf, "did not exit in time");
    else if (WIFEXITED(st))
        snprintf(buf, sizeof buf, "exited %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, sizeof buf, "killed by signal %d", WTERMSIG(st));
    else
        snprintf(buf, sizeof buf, "wait status %#x", st);
    return buf;
}

bool h_exited_with(int st, int code)
{
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == code;
}

int h_run(const char *logpath, char *const argv[], char *const env[], long timeout_ms)
{
    pid_t pid = h_spawn(logpath, argv, env);
    int st;
    if (h_wait_exit(pid, timeout_ms, &st))
        return st;
    h_kill_group(pid);
    return -1;
}

/* ---- narwhal --------------------------------------------------------------------- */

#define H_MAX_ARGS 64

h_narwhal h_narwhal_spawnv(char *const args[])
{
    char *argv[H_MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = (char *)h_env("NARWHAL_BIN");
    /* The tests run as root and load apps from the build tree, which the
     * workers' user must read: they say so (allow_root) rather than drop to
     * a user that may not reach the tree. A test of the refusal passes
     * --no-allow-root-from-harness first. */
    if (args[0] && strcmp(args[0], "--no-allow-root-from-harness") == 0)
        args++;
    else if (geteuid() == 0)
        argv[n++] = "--allow-root";
    for (size_t i = 0; args[i]; i++) {
        cr_assert(n < H_MAX_ARGS, "harness: too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    h_narwhal nw = {.log = h_path("narwhal-%d.log", ++H.narwhal_count)};
    FILE *f = fopen(nw.log, "a");
    if (f) { /* the command line, for whoever reads the log */
        fputs("# harness:", f);
        for (size_t i = 0; i < n; i++)
            fprintf(f, " %s", argv[i]);
        fputc('\n', f);
        fclose(f);
    }
    nw.pid = h_spawn(nw.log, argv, NULL);
    return nw;
}

static size_t collect_args(char **out, size_t n, const char *first, va_list ap)
{
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        cr_assert(n < H_MAX_ARGS, "harness: too many arguments");
        out[n++] = (char *)a;
    }
    out[n] = NULL;
    return n;
}

h_narwhal h_narwhal_spawn(const char *arg, ...)
{
    char *args[H_MAX_ARGS + 1];
    va_list ap;
    va_start(ap, arg);
    collect_args(args, 0, arg, ap);
    va_end(ap);
    return h_narwhal_spawnv(args);
}

h_narwhal h_narwhal_serve(const char *arg, ...)
{
    char *args[H_MAX_ARGS + 1];
    int port = h_free_port();
    args[0] = "-b";
    args[1] = h_fmt("127.0.0.1:%d", port);
    va_list ap;
    va_start(ap, arg);
    collect_args(args, 2, arg, ap);
    va_end(ap);
    h_narwhal nw = h_narwhal_spawnv(args);
    nw.port = port;
    long deadline = h_now_ms() + 10000;
    while (!h_listens(nw.pid, port)) {
        int st;
        if (h_wait_exit(nw.pid, 0, &st))
            cr_assert_fail("narwhal %s before listening on port %d; its log:\n%s",
                           h_wstatus_str(st), port, h_tail(nw.log));
        if (h_now_ms() > deadline)
            cr_assert_fail("narwhal does not accept on port %d after 10 s; its log:\n%s", port,
                           h_tail(nw.log));
        h_sleep_ms(20);
    }
    return nw;
}

/* ---- nginx ------------------------------------------------------------------------ */

/* Replaces every `from` in text with `to`; *count gets the number replaced. */
static char *replace_all(const char *text, const char *from, const char *to, int *count)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = text; (p = strstr(p, from)); p += fl)
        n++;
    char *out = malloc(strlen(text) + n * tl + 1), *o = out;
    cr_assert(out);
    for (const char *p = text, *q;; p = q + fl) {
        q = strstr(p, from);
        size_t keep = q ? (size_t)(q - p) : strlen(p);
        memcpy(o, p, keep);
        o += keep;
        if (!q)
            break;
        memcpy(o, to, tl);
        o += tl;
    }
    *o = '\0';
    *count += (int)n;
    return out;
}

/* Copies $NARWHAL_SRCDIR/nginx/<name> to dir/<name>, with the default
 * addresses replaced by upstream (if not NULL). */
static char *install_snippet(const char *dir, const char *name, const char *upstream)
{
    char *src = h_fmt("%s/nginx/%s", h_env("NARWHAL_SRCDIR"), name);
    char *text = h_read_file(src, NULL);
    cr_assert(text, "cannot read the nginx snippet %s: %s", src, strerror(errno));
    if (upstream) {
        int n = 0;
        char *a = replace_all(text, "127.0.0.1:5000", upstream, &n);
        char *b = replace_all(a, "unix:/run/narwhal.sock", upstream, &n);
        cr_assert(n > 0, "%s names neither 127.0.0.1:5000 nor unix:/run/narwhal.sock", src);
        text = b;
    }
    char *dst = h_fmt("%s/%s", dir, name);
    h_write_file(dst, text);
    return dst;
}

h_nginx h_nginx_start(h_snippet snippet, const char *upstream)
{
    return h_nginx_start_http(snippet, upstream, NULL);
}

/* A new nginx: a free port, its prefix dir with fastcgi_params and
 * uwsgi_params in it. Not started yet. */
static h_nginx nginx_prepare(void)
{
    h_nginx ng = {.port = h_free_port()};
    ng.dir = h_path("nginx-%d", ++H.nginx_count);
    cr_assert(mkdir(ng.dir, 0755) == 0, "mkdir %s: %s", ng.dir, strerror(errno));
    ng.error_log = h_fmt("%s/error.log", ng.dir);
    const char *params[] = {"fastcgi_params", "uwsgi_params"};
    for (int i = 0; i < 2; i++) {
        char *text = h_read_file(h_fmt("/etc/nginx/%s", params[i]), NULL);
        cr_assert(text, "cannot read /etc/nginx/%s: %s", params[i], strerror(errno));
        h_write_file(h_fmt("%s/%s", ng.dir, params[i]), text);
    }
    return ng;
}

/* Writes ng's nginx.conf (http_level: raw http-level directives; server_body:
 * raw text inside the server block), starts nginx and waits until its master
 * listens. */
static void nginx_run(h_nginx *ng, const char *http_level, const char *server_body)
{
    char *d = ng->dir;
    char *conf = h_fmt("# written by tests/e2e/harness.c\n"
                       "%s"
                       "daemon off;\n"
                       "master_process on;\n"
                       "worker_processes 1;\n"
                       "pid %s/nginx.pid;\n"
                       "error_log %s info;\n"
                       "events { worker_connections 256; }\n"
                       "http {\n"
                       "    access_log %s/access.log;\n"
                       "    client_body_temp_path %s/client_body;\n"
                       "    fastcgi_temp_path %s/fastcgi_temp;\n"
                       "    proxy_temp_path %s/proxy_temp;\n"
                       "    uwsgi_temp_path %s/uwsgi_temp;\n"
                       "    scgi_temp_path %s/scgi_temp;\n"
                       "    client_max_body_size 16m;\n"
                       "    default_type application/octet-stream;\n"
                       "%s"
                       "    server {\n"
                       "        listen 127.0.0.1:%d;\n"
                       "        server_name localhost;\n"
                       "%s"
                       "    }\n"
                       "}\n",
                       geteuid() == 0 ? "user root;\n" : "", d, ng->error_log, d, d, d, d, d, d,
                       http_level, ng->port, server_body);
    char *conf_path = h_fmt("%s/nginx.conf", d);
    h_write_file(conf_path, conf);

    char *out = h_fmt("%s/nginx.out", d);
    char *argv[] = {
        (char *)h_env("NARWHAL_NGINX"), "-p", d, "-e", ng->error_log, "-c", conf_path, NULL};
    ng->pid = h_spawn(out, argv, NULL);
    long deadline = h_now_ms() + 10000;
    while (!h_listens(ng->pid, ng->port)) {
        int st;
        if (h_wait_exit(ng->pid, 0, &st))
            cr_assert_fail("nginx %s at start; output:\n%s\nerror log:\n%s\nconfig:\n%s",
                           h_wstatus_str(st), h_tail(out), h_tail(ng->error_log), conf);
        if (h_now_ms() > deadline)
            cr_assert_fail("nginx does not accept on port %d after 10 s; error log:\n%s", ng->port,
                           h_tail(ng->error_log));
        h_sleep_ms(20);
    }
}

h_nginx h_nginx_start_http(h_snippet snippet, const char *upstream, const char *http_extra)
{
    h_nginx ng = nginx_prepare();
    char *http_level = "", *location;
    switch (snippet) {
    case H_SNIPPET_TCP:
        location = install_snippet(ng.dir, "narwhal-fastcgi.conf", upstream);
        break;
    case H_SNIPPET_UNIX:
        location = install_snippet(ng.dir, "narwhal-fastcgi-unix.conf", upstream);
        break;
    case H_SNIPPET_UWSGI:
        location = install_snippet(ng.dir, "narwhal-uwsgi.conf", upstream);
        break;
    case H_SNIPPET_UWSGI_UNIX:
        location = install_snippet(ng.dir, "narwhal-uwsgi-unix.conf", upstream);
        break;
    case H_SNIPPET_KEEPALIVE:
    default:
        http_level = h_fmt("    include %s;\n",
                           install_snippet(ng.dir, "narwhal-fastcgi-keepalive.conf", upstream));
        location = install_snippet(ng.dir, "narwhal-fastcgi-keepalive-location.conf", NULL);
        break;
    }
    if (http_extra)
        http_level = h_fmt("%s    %s\n", http_level, http_extra);
    nginx_run(&ng, http_level,
              h_fmt("        location = /__harness { return 200 \"nginx ok\\n\"; }\n"
                    "        location / {\n"
                    "            include %s;\n"
                    "        }\n",
                    location));
    return ng;
}

h_nginx h_nginx_start_server(const char *server_body)
{
    h_nginx ng = nginx_prepare();
    nginx_run(&ng, "", server_body);
    return ng;
}

/* ---- HTTP client ------------------------------------------------------------------- */

static void resp_fail(h_response *r, const char *what)
{
    r->status = -1;
    r->error = h_fmt("%s: %s", what, strerror(errno));
}

/* Decodes a chunked body in place; returns the decoded length or -1. */
static long dechunk(char *p, size_t len)
{
    char *in = p, *end = p + len, *out = p;
    for (;;) {
        char *eol = memmem(in, (size_t)(end - in), "\r\n", 2);
        if (!eol)
            return -1;
        char *xend;
        unsigned long sz = strtoul(in, &xend, 16);
        if (xend == in)
            return -1;
        in = eol + 2;
        if (sz == 0)
            return out - p;
        if ((size_t)(end - in) < sz + 2)
            return -1;
        memmove(out, in, sz);
        out += sz;
        in += sz + 2;
    }
}

h_response h_http(int port, const char *method, const char *path, const char *headers,
                  const void *body, size_t body_len, long timeout_ms)
{
    h_response r = {.status = -1};
    long start = h_now_ms(), deadline = start + timeout_ms;
    struct sockaddr_in sa;
    socklen_t sl = tcp_addr(port, &sa);
    int fd = connect_by((struct sockaddr *)&sa, sl, deadline);
    if (fd < 0) {
        resp_fail(&r, "connect");
        return r;
    }
    char *head = h_fmt("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s", method, path,
                       headers ? headers : "");
    char *cl = body ? h_fmt("Content-Length: %zu\r\n\r\n", body_len) : h_fmt("\r\n");
    const char *parts[3] = {head, cl, body};
    size_t lens[3] = {strlen(head), strlen(cl), body ? body_len : 0};
    for (int i = 0; i < 3; i++) {
        size_t off = 0;
        while (off < lens[i]) {
            ssize_t n = send(fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                goto read_reply; /* the peer may have answered early */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            long left = deadline - h_now_ms();
            if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
                errno = ETIMEDOUT;
                resp_fail(&r, "send");
                close(fd);
                return r;
            }
        }
    }
read_reply:;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    cr_assert(buf);
    for (;;) {
        if (len == cap) {
            buf = realloc(buf, (cap *= 2) + 1);
            cr_assert(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            if (len == 0) { /* a reset after a full answer is still an answer */
                resp_fail(&r, "recv");
                close(fd);
                return r;
            }
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        long left = deadline - h_now_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            errno = ETIMEDOUT;
            resp_fail(&r, "no complete response before the deadline");
            r.elapsed_ms = h_now_ms() - start;
            close(fd);
            return r;
        }
    }
    close(fd);
    buf[len] = '\0';
    r.elapsed_ms = h_now_ms() - start;

    char *sep = memmem(buf, len, "\r\n\r\n", 4);
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1) {
        r.status = -1;
        r.error = h_fmt("malformed response (%zu bytes): %.200s", len, buf);
        return r;
    }
    r.head = strndup(buf, (size_t)(sep - buf) + 2);
    char *b = sep + 4;
    size_t blen = len - (size_t)(b - buf);
    char *te = h_header(&r, "Transfer-Encoding");
    char *clen = h_header(&r, "Content-Length");
    if (te && strcasestr(te, "chunked")) {
        long d = dechunk(b, blen);
        if (d < 0) {
            r.error = h_fmt("bad chunked body");
            r.status = -1;
            return r;
        }
        blen = (size_t)d;
    } else if (clen) {
        size_t want = strtoul(clen, NULL, 10);
        if (want > blen) {
            r.error = h_fmt("body shorter than Content-Length: %zu < %zu", blen, want);
            r.status = -1;
            return r;
        }
        blen = want;
    }
    r.body = malloc(blen + 1);
    cr_assert(r.body);
    memcpy(r.body, b, blen);
    r.body[blen] = '\0';
    r.body_len = blen;
    free(buf);
    return r;
}

h_response h_get(int port, const char *path)
{
    return h_http(port, "GET", path, NULL, NULL, 0, 10000);
}

char *h_header(const h_response *r, const char *name)
{
    if (!r->head)
        return NULL;
    size_t nl = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            return strndup(v, (size_t)(e - v));
        }
    }
    return NULL;
}

/* ---- files and logs ---------------------------------------------------------------- */

char *h_read_file(const char *path, size_t *lenp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    cr_assert(buf);
    for (;;) {
        if (len == cap) {
            buf = realloc(buf, (cap *= 2) + 1);
            cr_assert(buf);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (lenp)
        *lenp = len;
    return buf;
}

void h_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert(fclose(f) == 0, "cannot write %s: %s", path, strerror(errno));
}

bool h_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

char *h_tail(const char *path)
{
    size_t len;
    char *text = h_read_file(path, &len);
    if (!text)
        return h_fmt("(%s: %s)", path, strerror(errno));
    return len > 3000 ? h_fmt("...%s", text + len - 3000) : text;
}

bool h_wait_for_text(const char *path, const char *needle, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    for (;;) {
        char *text = h_read_file(path, NULL);
        bool found = text && strstr(text, needle);
        free(text);
        if (found)
            return true;
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
}

int h_count_in(const char *text, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    for (const char *p = text; p && nl && (p = strstr(p, needle)); p += nl)
        n++;
    return n;
}

int h_count_text(const char *path, const char *needle)
{
    char *text = h_read_file(path, NULL);
    int n = h_count_in(text, needle);
    free(text);
    return n;
}

bool h_wait_count(const char *path, const char *needle, int n, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    while (h_count_text(path, needle) < n) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(50);
    }
    return true;
}

char *h_find_line(const char *path, const char *const needles[])
{
    char *text = h_read_file(path, NULL), *save = NULL;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        bool all = true;
        for (size_t i = 0; needles[i] && all; i++)
            all = strstr(line, needles[i]) != NULL;
        if (all)
            return line;
    }
    return NULL;
}

char *h_wait_line(const char *path, const char *const needles[], long timeout_ms)
{
    char *line = NULL;
    for (long end = h_now_ms() + timeout_ms; !line; h_sleep_ms(50)) {
        line = h_find_line(path, needles);
        if (h_now_ms() >= end)
            break;
    }
    return line;
}

bool h_wait_gone(const char *path, long timeout_ms)
{
    long deadline = h_now_ms() + timeout_ms;
    while (h_exists(path)) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
    return true;
}

pid_t h_read_pidfile(const char *path)
{
    char *text = h_read_file(path, NULL);
    if (!text)
        return 0;
    char *end;
    long v = strtol(text, &end, 10);
    while (*end && isspace((unsigned char)*end))
        end++;
    pid_t pid = (end != text && *end == '\0' && v > 0) ? (pid_t)v : 0;
    free(text);
    return pid;
}

/* ---- for the tests ------------------------------------------------------------------ */

h_wclass h_all_classes[H_NCLASSES] = {{"sync", "1"}, {"threads", "8"}, {"async", "1"}};

void h_bg_run(h_bg_request *b)
{
    b->r = h_http(b->port, b->method ? b->method : "GET", b->path, NULL, NULL, 0,
                  b->timeout_ms ? b->timeout_ms : 20000);
}

static void *bg_thread(void *arg)
{
    h_bg_run(arg);
    return NULL;
}

void h_bg_start(h_bg_request *b)
{
    int rc = pthread_create(&b->thread, NULL, bg_thread, b);
    cr_assert(rc == 0, "pthread_create: %s", strerror(rc));
}

void h_bg_join(h_bg_request *b)
{
    pthread_join(b->thread, NULL);
}

long h_concurrent_gets(int port, const char *path, int n, long timeout_ms, h_bg_request *out)
{
    long t0 = h_now_ms();
    for (int i = 0; i < n; i++) {
        out[i] = (h_bg_request){.port = port, .path = path, .timeout_ms = timeout_ms};
        h_bg_start(&out[i]);
    }
    for (int i = 0; i < n; i++)
        h_bg_join(&out[i]);
    return h_now_ms() - t0;
}

void h_copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = h_read_file(from, &len);
    cr_assert(data, "cannot read %s: %s", from, strerror(errno));
    FILE *f = fopen(to, "wb");
    cr_assert(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "cannot write %s", to);
    free(data);
}

#define WRK "/usr/bin/wrk"

h_load h_load_start(int port, const char *path, int secs, int conns)
{
    static int count;
    if (access(WRK, X_OK) != 0)
        cr_skip_test("%s is not installed", WRK);
    h_load l = {.out = h_path("wrk-%d.out", ++count), .secs = secs};
    char *argv[] = {WRK,
                    "-t",
                    conns > 1 ? "2" : "1",
                    "-c",
                    h_fmt("%d", conns),
                    "-d",
                    h_fmt("%ds", secs),
                    "--timeout",
                    "5s",
                    h_fmt("http://127.0.0.1:%d%s", port, path),
                    NULL};
    l.pid = h_spawn(l.out, argv, NULL);
    return l;
}

long h_load_finish(const h_load *l, const char *nwlog)
{
    int st;
    cr_assert(h_wait_exit(l->pid, (l->secs + 20) * 1000L, &st), "wrk still runs after %d s",
              l->secs + 20);
    char *text = h_read_file(l->out, NULL);
    cr_assert(text && h_exited_with(st, 0), "wrk %s:\n%s", h_wstatus_str(st),
              text ? text : "(no output)");
    cr_assert_null(strstr(text, "Non-2xx or 3xx responses"), "errors under load:\n%s\n%s", text,
                   h_tail(nwlog));
    cr_assert_null(strstr(text, "Socket errors"), "socket errors under load:\n%s\n%s", text,
                   h_tail(nwlog));
    char *in = strstr(text, " requests in ");
    long n = 0;
    if (in) {
        char *p = in;
        while (p > text && p[-1] >= '0' && p[-1] <= '9')
            p--;
        n = strtol(p, NULL, 10);
    }
    cr_assert(n >= 50, "wrk made only %ld requests:\n%s", n, text);
    return n;
}

long h_rss_kib(pid_t pid)
{
    char *text = h_read_file(h_fmt("/proc/%d/status", (int)pid), NULL);
    char *p = text ? strstr(text, "\nVmRSS:") : NULL;
    long kib = p ? strtol(p + 8, NULL, 10) : -1;
    free(text);
    return kib;
}
