/* Unit tests for src/os/listener.c: the addresses listener_open takes
 * ("HOST:PORT", "[IPV6]:PORT", "unix:PATH") and what it refuses, unix
 * sockets (in use, stale, not a socket, umask), inherited sockets
 * (NARWHAL_FD, LISTEN_FDS), adopting them, and the peer kinds. Binds only
 * to loopback port 0 and to unix sockets in a temp dir. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "narwhal.h"
#include "../tmpdir.h"

/* ---- a temp dir (tmpdir.h) and an error log per test ---------------------------- */

static char logpath[128];

static void setup(void)
{
    tmpdir_setup();
    snprintf(logpath, sizeof logpath, "%s/error.log", tmpdir);
    cr_assert_eq(log_open(logpath, NULL), 0);
    log_set_level(NW_LOG_DEBUG);
}

static void teardown(void)
{
    log_open(NULL, NULL);
    tmpdir_teardown();
}

TestSuite(listener, .init = setup, .fini = teardown);

/* The error log so far (static storage), then empties it. */
static const char *take_log(void)
{
    static char text[8192];
    FILE *f = fopen(logpath, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    cr_assert_eq(truncate(logpath, 0), 0);
    return text;
}

/* The log holds exactly one line, ending with want ("[ERROR] " + message). */
static void expect_one_log_line(const char *level, const char *want)
{
    const char *text = take_log();
    char tail[1200];
    snprintf(tail, sizeof tail, "[%s] %s\n", level, want);
    size_t n = strlen(text), t = strlen(tail);
    cr_expect(n >= t && strcmp(text + n - t, tail) == 0 && strchr(text, '\n') == text + n - 1,
              "log:\n%s\nexpected one line ending with:\n%s", text, tail);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, 512, f, ap);
    va_end(ap);
    return b;
}

static int port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    cr_assert_eq(ss.ss_family, AF_INET6);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* What every open listener is: listening, non-blocking, close-on-exec. */
static void expect_listening(const nw_listener *l)
{
    cr_assert_geq(l->fd, 0);
    cr_expect_eq(sockopt(l->fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    cr_expect_eq(sockopt(l->fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    cr_expect(fcntl(l->fd, F_GETFL) & O_NONBLOCK);
    cr_expect(fcntl(l->fd, F_GETFD) & FD_CLOEXEC);
}

static int connect_to(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int rc = connect(fd, sa, len);
    close(fd);
    return rc;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    return connect_to((struct sockaddr *)&sun, sizeof sun);
}

/* ---- TCP -------------------------------------------------------------------------- */

Test(listener, ipv4_host_and_port)
{
    nw_listener l;
    cr_assert_eq(listener_open(&l, "127.0.0.1:0", 16, NULL), 0, "%s", take_log());
    expect_listening(&l);
    cr_expect_str_eq(l.addr, "127.0.0.1:0");
    cr_expect_null(l.unix_path);

    struct sockaddr_in in;
    socklen_t len = sizeof in;
    cr_assert_eq(getsockname(l.fd, (struct sockaddr *)&in, &len), 0);
    cr_expect_eq(in.sin_family, AF_INET);
    cr_expect_eq(in.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    cr_expect_neq(in.sin_port, 0, "port 0 asks the kernel for one");
    cr_expect_eq(sockopt(l.fd, SOL_SOCKET, SO_REUSEADDR), 1);
    cr_expect_eq(connect_to((struct sockaddr *)&in, len), 0, "%s", strerror(errno));
    cr_expect_str_eq(take_log(), "", "nothing logged on success");

    listener_close(&l, 1);
    cr_expect_eq(l.fd, -1);
    cr_expect_null(l.addr);
    cr_expect_eq(connect_to((struct sockaddr *)&in, len), -1, "closed: refused");
    listener_close(&l, 1); /* twice is harmless */
}

Test(listener, ipv6_in_brackets)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (probe < 0 || bind(probe, (struct sockaddr *)&lo, sizeof lo) < 0)
        cr_skip_test("no IPv6 loopback here");
    close(probe);

    nw_listener l;
    cr_assert_eq(listener_open(&l, "[::1]:0", 16, NULL), 0, "%s", take_log());
    expect_listening(&l);
    struct sockaddr_in6 in6;
    socklen_t len = sizeof in6;
    cr_assert_eq(getsockname(l.fd, (struct sockaddr *)&in6, &len), 0);
    cr_expect_eq(in6.sin6_family, AF_INET6);
    cr_expect(IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr));
    cr_expect_eq(connect_to((struct sockaddr *)&in6, len), 0);
    listener_close(&l, 1);
}

Test(listener, port_given_is_the_port_bound)
{
    nw_listener a, b;
    cr_assert_eq(listener_open(&a, "127.0.0.1:0", 16, NULL), 0);
    int port = port_of(a.fd);
    listener_close(&a, 1);
    /* The port is free again: bind it by number. */
    char *addr = fmt("127.0.0.1:%d", port);
    cr_assert_eq(listener_open(&b, addr, 16, NULL), 0, "%s", take_log());
    cr_expect_eq(port_of(b.fd), port);
    cr_expect_str_eq(b.addr, addr);
    listener_close(&b, 1);
}

Test(listener, address_in_use)
{
    nw_listener a, b = {.fd = 7, .addr = NULL, .unix_path = NULL};
    cr_assert_eq(listener_open(&a, "127.0.0.1:0", 16, NULL), 0);
    char *addr = fmt("127.0.0.1:%d", port_of(a.fd));
    cr_expect_eq(listener_open(&b, addr, 16, NULL), -1);
    cr_expect_eq(b.fd, -1);
    cr_expect_null(b.addr, "nothing kept on failure");
    cr_expect_null(b.unix_path);
    expect_one_log_line("ERROR", fmt("cannot bind %s: %s", addr, strerror(EADDRINUSE)));
    listener_close(&a, 1);
}

static void expect_refused(const char *addr, const char *why)
{
    nw_listener l;
    cr_expect_eq(listener_open(&l, addr, 16, NULL), -1, "'%s' was accepted", addr);
    cr_expect_eq(l.fd, -1);
    cr_expect_null(l.addr);
    if (why)
        expect_one_log_line("ERROR", fmt("cannot bind %s: %s", addr, why));
    else
        cr_expect(strstr(take_log(), fmt("[ERROR] cannot bind %s: ", addr)), "'%s'", addr);
}

Test(listener, refuses_malformed_addresses)
{
    const char *form = "expected HOST:PORT, [IPV6]:PORT or unix:PATH";
    expect_refused("127.0.0.1", form);  /* no port */
    expect_refused("localhost", form);  /* no port */
    expect_refused("127.0.0.1:", form); /* empty port */
    expect_refused("[::1]:", form);     /* empty port */
    expect_refused(":5000", form);      /* no host */
    expect_refused("", form);
    /* Ports are numbers (no service names), never negative. */
    expect_refused("127.0.0.1:http", gai_strerror(EAI_NONAME));
    expect_refused("127.0.0.1:80x", gai_strerror(EAI_NONAME));
    expect_refused("127.0.0.1:-1", gai_strerror(EAI_SERVICE));
    /* Brackets without a port: the last colon splits "[:" from "1]". */
    expect_refused("[::1]", gai_strerror(EAI_NONAME));
}

Test(listener, host_name_too_long)
{
    char addr[300];
    memset(addr, 'h', 256);
    strcpy(addr + 256, ":80");
    expect_refused(addr, "host name too long");
}

/* ---- unix sockets ------------------------------------------------------------------ */

Test(listener, unix_socket)
{
    umask(027);
    const char *path = tmp_path("nw.sock");
    char *addr = fmt("unix:%s", path);
    nw_listener l;
    cr_assert_eq(listener_open(&l, addr, 16, NULL), 0, "%s", take_log());
    expect_listening(&l);
    cr_expect_str_eq(l.addr, addr);
    cr_assert_not_null(l.unix_path);
    cr_expect_str_eq(l.unix_path, path);

    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect(S_ISSOCK(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0750, "the mode follows the umask: %o", st.st_mode & 0777);
    struct sockaddr_un sun;
    socklen_t len = sizeof sun;
    cr_assert_eq(getsockname(l.fd, (struct sockaddr *)&sun, &len), 0);
    cr_expect_eq(sun.sun_family, AF_UNIX);
    cr_expect_str_eq(sun.sun_path, path);
    cr_expect_eq(connect_unix(path), 0);
    cr_expect_str_eq(take_log(), "");

    nw_sockperm keep = {(uid_t)-1, (gid_t)-1, 0700};
    cr_expect_eq(listener_set_perm(&l, &keep), 0);
    nw_sockperm mine = {getuid(), getgid(), 0640};
    cr_expect_eq(listener_set_perm(&l, &mine), 0);
    cr_expect_eq(lstat(path, &st), 0);
    cr_expect_eq(st.st_uid, getuid());
    cr_expect_eq(st.st_mode & 0777, 0640);

    listener_close(&l, 1);
    cr_expect_eq(lstat(path, &st), -1, "unlinked on close");
    cr_expect_null(l.unix_path);
}

Test(listener, close_keeps_the_path_unless_asked)
{
    const char *path = tmp_path("keep.sock");
    nw_listener l;
    cr_assert_eq(listener_open(&l, fmt("unix:%s", path), 16, NULL), 0);
    listener_close(&l, 0);
    struct stat st;
    cr_expect_eq(lstat(path, &st), 0, "still there (for the next master to take over)");
    cr_expect(S_ISSOCK(st.st_mode));
    cr_expect_neq(connect_unix(path), 0, "but nobody answers");
}

Test(listener, unix_socket_in_use_is_left_alone)
{
    const char *path = tmp_path("live.sock");
    char *addr = fmt("unix:%s", path);
    nw_listener live, second;
    cr_assert_eq(listener_open(&live, addr, 16, NULL), 0);
    cr_expect_eq(listener_open(&second, addr, 16, NULL), -1);
    cr_expect_null(second.addr);
    expect_one_log_line("ERROR",
                        fmt("cannot bind %s: address in use (a server answers on %s)", addr, path));
    cr_expect_eq(connect_unix(path), 0, "the live one still answers");
    listener_close(&live, 1);
}

Test(listener, stale_unix_socket_is_replaced)
{
    const char *path = tmp_path("stale.sock");
    char *addr = fmt("unix:%s", path);
    nw_listener old, l;
    cr_assert_eq(listener_open(&old, addr, 16, NULL), 0);
    listener_close(&old, 0); /* as a SIGKILLed server leaves it */
    cr_assert_eq(listener_open(&l, addr, 16, NULL), 0, "%s", take_log());
    expect_one_log_line("INFO", fmt("removed stale socket %s", path));
    expect_listening(&l);
    cr_expect_eq(connect_unix(path), 0);
    listener_close(&l, 1);
}

Test(listener, path_that_is_not_a_socket)
{
    const char *path = tmp_path("file");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("keep me\n", f);
    fclose(f);
    expect_refused(fmt("unix:%s", path), fmt("%s exists and is not a socket", path));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_size, 8, "left as it was");

    cr_assert_eq(mkdir(tmp_path("dir"), 0755), 0);
    expect_refused(fmt("unix:%s", tmp_path("dir")),
                   fmt("%s exists and is not a socket", tmp_path("dir")));
}

Test(listener, unix_path_too_long_or_unreachable)
{
    struct sockaddr_un sun;
    char path[sizeof sun.sun_path + 8];
    int n = snprintf(path, sizeof path, "%s/", tmpdir);
    memset(path + n, 'p', sizeof sun.sun_path - (size_t)n);
    path[sizeof sun.sun_path] = 0; /* one byte too many */
    expect_refused(fmt("unix:%s", path),
                   fmt("path too long (at most %zu bytes)", sizeof sun.sun_path - 1));

    path[sizeof sun.sun_path - 1] = 0; /* just fits */
    nw_listener l;
    cr_expect_eq(listener_open(&l, fmt("unix:%s", path), 16, NULL), 0, "%s", take_log());
    listener_close(&l, 1);

    const char *nodir = tmp_path("nodir/s.sock");
    expect_refused(fmt("unix:%s", nodir), strerror(ENOENT));
}

Test(listener, perm_of_a_vanished_path)
{
    const char *path = tmp_path("gone.sock");
    nw_listener l, tcp;
    nw_sockperm perm = {getuid(), getgid(), 0660};
    cr_assert_eq(listener_open(&l, fmt("unix:%s", path), 16, NULL), 0);
    cr_assert_eq(unlink(path), 0);
    cr_expect_eq(listener_set_perm(&l, &perm), -1);
    expect_one_log_line("ERROR", fmt("cannot chown %s: %s", path, strerror(ENOENT)));
    listener_close(&l, 1);

    cr_assert_eq(listener_open(&tcp, "127.0.0.1:0", 16, NULL), 0);
    cr_expect_eq(listener_set_perm(&tcp, &perm), 0, "TCP: nothing to do");
    listener_close(&tcp, 1);
}

/* socket_mode, socket_owner, socket_group: the file has them once
 * listener_open returns, whatever the umask, and the socket listens. */
Test(listener, unix_socket_perm)
{
    umask(0);
    const char *path = tmp_path("perm.sock");
    nw_listener l;
    nw_sockperm perm = {(uid_t)-1, (gid_t)-1, 0620};
    cr_assert_eq(listener_open(&l, fmt("unix:%s", path), 16, &perm), 0, "%s", take_log());
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0620, "mode %o", st.st_mode & 0777);
    cr_expect_eq(umask(0), 0, "the umask is put back");
    expect_listening(&l);
    listener_close(&l, 1);

    if (geteuid() != 0)
        return;
    nw_sockperm other = {65534, 65534, 0660};
    cr_assert_eq(listener_open(&l, fmt("unix:%s", path), 16, &other), 0, "%s", take_log());
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect_eq(st.st_uid, 65534);
    cr_expect_eq(st.st_gid, 65534);
    cr_expect_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
    listener_close(&l, 1);
}

/* Between bind and the final chmod the file is never more open than perm:
 * a child opens the socket under ptrace, and at every one of its syscalls'
 * exits (the bind, the chown, the chmod, the listen) the parent looks at
 * the file. Deterministic: the state after each step is seen. */
Test(listener, unix_socket_never_more_open)
{
    umask(0);
    const char *path = tmp_path("w.sock");
    nw_sockperm perm = {(uid_t)-1, (gid_t)-1, 0600};
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        nw_listener l;
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        raise(SIGSTOP);
        _exit(listener_open(&l, fmt("unix:%s", path), 16, &perm) == 0 ? 0 : 1);
    }
    int st, seen = 0, wider = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSTOPPED(st));
    ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)PTRACE_O_TRACESYSGOOD);
    for (;;) {
        cr_assert_eq(ptrace(PTRACE_SYSCALL, pid, NULL, NULL), 0);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        if (WIFEXITED(st))
            break;
        struct stat fs;
        if (lstat(path, &fs) == 0) {
            seen++;
            if (fs.st_mode & 0177)
                wider = (int)(fs.st_mode & 0777);
        }
    }
    cr_expect_eq(WEXITSTATUS(st), 0, "listener_open failed");
    cr_expect_gt(seen, 0, "the socket file was never seen");
    cr_expect_eq(wider, 0, "the socket was %o at some moment (more open than 0600)", wider);
    unlink(path);
}

/* An adopted unix socket (systemd's, made 0666) gets narwhal's perm. */
Test(listener, adopt_applies_perm)
{
    const char *path = tmp_path("act.sock");
    nw_listener made, got;
    cr_assert_eq(listener_open(&made, fmt("unix:%s", path), 16, NULL), 0);
    cr_assert_eq(chmod(path, 0666), 0);
    int fds[1] = {made.fd};
    nw_sockperm perm = {(uid_t)-1, (gid_t)-1, 0660};
    cr_assert_eq(listener_adopt(&got, fmt("unix:%s", path), 16, fds, 1, &perm), 0);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
    listener_close(&got, 1);
    free(made.addr);
    free(made.unix_path);
}

/* ---- inherited sockets and adopting them ------------------------------------------- */

/* A blocking socket listening on a loopback port. */
static int listening_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    cr_assert_eq(listen(fd, 8), 0);
    return fd;
}

Test(listener, inherited_from_narwhal_fd)
{
    int a = listening_socket(), b = listening_socket();
    setenv("NARWHAL_FD", fmt("%d,junk,%d,70000,-1,", a, b), 1);
    setenv("LISTEN_PID", "1", 1); /* not us: ignored, but cleared */
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "x", 1);
    int fds[8];
    cr_assert_eq(listener_inherited(fds, 8, getppid()), 2);
    cr_expect_eq(fds[0], a);
    cr_expect_eq(fds[1], b);
    for (int i = 0; i < 2; i++) {
        cr_expect(fcntl(fds[i], F_GETFL) & O_NONBLOCK);
        cr_expect(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
    }
    cr_expect_null(getenv("NARWHAL_FD"), "children must not see it");
    cr_expect_null(getenv("LISTEN_PID"));
    cr_expect_null(getenv("LISTEN_FDS"));
    cr_expect_null(getenv("LISTEN_FDNAMES"));
    cr_expect_eq(listener_inherited(fds, 8, getppid()), 0, "once only");
    close(a);
    close(b);
}

Test(listener, inherited_at_most_max)
{
    int a = listening_socket(), b = listening_socket();
    setenv("NARWHAL_FD", fmt("%d,%d", a, b), 1);
    int fds[1];
    cr_expect_eq(listener_inherited(fds, 1, getppid()), 1);
    cr_expect_eq(fds[0], a);
    cr_expect_eq(fcntl(b, F_GETFL) & O_NONBLOCK, 0, "the one not taken is untouched");
    cr_expect_null(getenv("NARWHAL_FD"));
    close(a);
    close(b);
}

/* NARWHAL_FD=3 once closed the error log and NARWHAL_FD=5,5 adopted fd 5
 * twice (then closed it under every worker): only listening sockets are
 * taken, once each, and nothing else named is closed or changed. */
Test(listener, inherited_takes_only_listening_sockets_once)
{
    int file = open(logpath, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(file, 0);
    int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* not listening */
    cr_assert_geq(idle, 0);
    int l = listening_socket();
    int closed = dup(l);
    cr_assert_geq(closed, 0);
    close(closed);
    setenv("NARWHAL_FD", fmt("%d,%d,%d,%d,%d", file, idle, closed, l, l), 1);
    int fds[8];
    cr_assert_eq(listener_inherited(fds, 8, getppid()), 1);
    cr_expect_eq(fds[0], l);
    cr_expect(fcntl(l, F_GETFL) & O_NONBLOCK);
    cr_expect_eq(fcntl(file, F_GETFL) & O_NONBLOCK, 0, "the file was changed");
    cr_expect_eq(fcntl(idle, F_GETFL) & O_NONBLOCK, 0, "the idle socket was changed");
    cr_expect(fcntl(idle, F_GETFD) & FD_CLOEXEC);
    const char *text = take_log();
    cr_expect(strstr(text, fmt("fd %d is not a listening socket", file)), "%s", text);
    cr_expect(strstr(text, fmt("names fd %d twice", l)), "%s", text);
    close(file);
    close(idle);
    close(l);
}

/* NARWHAL_FD is only USR2's, with NARWHAL_PARENT naming our parent. */
Test(listener, narwhal_fd_needs_the_parent)
{
    int l = listening_socket();
    setenv("NARWHAL_FD", fmt("%d", l), 1);
    int fds[8];
    cr_expect_eq(listener_inherited(fds, 8, 0), 0);
    cr_expect_null(getenv("NARWHAL_FD"));
    cr_expect_eq(fcntl(l, F_GETFL) & O_NONBLOCK, 0);
    close(l);
}

/* systemd's LISTEN_FDS are fds 3, 4, ...: checked in a child, whose fds 3 and
 * 4 can be replaced without disturbing Criterion's. Exit status: the number
 * of the first check that failed. */
static int systemd_child(void)
{
    for (int fd = 3; fd <= 4; fd++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || listen(s, 8) < 0 || dup2(s, fd) < 0)
            return 10;
        if (s != fd)
            close(s);
    }
    int extra = socket(AF_INET, SOCK_STREAM, 0);
    if (extra < 0 || listen(extra, 8) < 0)
        return 11;
    char pid[32], nfd[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(nfd, sizeof nfd, "%d", extra);
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("NARWHAL_FD", nfd, 1);
    int fds[8];
    if (listener_inherited(fds, 8, getppid()) != 3)
        return 1;
    if (fds[0] != extra || fds[1] != 3 || fds[2] != 4)
        return 2; /* NARWHAL_FD first, then systemd's */
    if (!(fcntl(3, F_GETFL) & O_NONBLOCK) || !(fcntl(4, F_GETFD) & FD_CLOEXEC))
        return 3;
    if (getenv("LISTEN_PID") || getenv("LISTEN_FDS"))
        return 4;
    /* adopted, systemd's is marked (a stop must not shut it down), the
     * one from NARWHAL_FD is not */
    nw_listener got;
    char addr[64];
    snprintf(addr, sizeof addr, "0.0.0.0:%d", port_of(4));
    if (listener_adopt(&got, addr, 8, fds, 3, NULL) < 0 || got.fd != 4 || !got.systemd)
        return 5;
    snprintf(addr, sizeof addr, "0.0.0.0:%d", port_of(extra));
    if (listener_adopt(&got, addr, 8, fds, 3, NULL) < 0 || got.fd != extra || got.systemd)
        return 6;
    return 0;
}

Test(listener, inherited_from_systemd)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(systemd_child());
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child died: status %d", st);
    cr_expect_eq(WEXITSTATUS(st), 0, "check %d failed in the child", WEXITSTATUS(st));
}

Test(listener, adopt_the_matching_socket)
{
    nw_listener tcp, unx;
    cr_assert_eq(listener_open(&tcp, "127.0.0.1:0", 16, NULL), 0);
    const char *path = tmp_path("adopt.sock");
    cr_assert_eq(listener_open(&unx, fmt("unix:%s", path), 16, NULL), 0);
    int port = port_of(tcp.fd), other = listening_socket();
    int fds[4] = {-1, other, unx.fd, tcp.fd};

    nw_listener got;
    char *addr = fmt("127.0.0.1:%d", port);
    cr_assert_eq(listener_adopt(&got, addr, 32, fds, 4, NULL), 0);
    cr_expect_eq(got.fd, tcp.fd);
    cr_expect_str_eq(got.addr, addr);
    cr_expect_null(got.unix_path);
    cr_expect_eq(fds[3], -1, "taken out of the list");
    cr_expect_eq(fds[1], other);
    cr_expect_eq(fds[2], unx.fd);
    free(got.addr);

    cr_assert_eq(listener_adopt(&got, fmt("unix:%s", path), 32, fds, 4, NULL), 0);
    cr_expect_eq(got.fd, unx.fd);
    cr_expect_str_eq(got.unix_path, path);
    cr_expect_eq(fds[2], -1);
    free(got.addr);
    free(got.unix_path);

    /* Nothing left that matches: another port, another path, another host. */
    cr_expect_eq(
        listener_adopt(&got, fmt("127.0.0.1:%d", port == 65535 ? 1 : port + 1), 32, fds, 4, NULL), -1);
    cr_expect_eq(listener_adopt(&got, addr, 32, fds, 4, NULL), -1, "already taken");
    cr_expect_eq(listener_adopt(&got, fmt("unix:%s", tmp_path("other.sock")), 32, fds, 4, NULL), -1);
    cr_expect_eq(listener_adopt(&got, "malformed", 32, fds, 4, NULL), -1);
    cr_expect_eq(fds[1], other);
    close(other);
    listener_close(&tcp, 1);
    listener_close(&unx, 1);
}

/* ---- peer kinds --------------------------------------------------------------------- */

static int kind_v4(int fd, const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    cr_assert_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    return listener_peer_kind(fd, &ss);
}

static int kind_v6(int fd, const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    cr_assert_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    return listener_peer_kind(fd, &ss);
}

Test(listener, peer_kinds)
{
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    cr_expect_eq(listener_peer_kind(-1, &un), PEER_UNIX);
    cr_expect_eq(kind_v4(-1, "127.0.0.1"), PEER_TCP_LOCAL);
    cr_expect_eq(kind_v4(-1, "127.255.0.9"), PEER_TCP_LOCAL);
    cr_expect_eq(kind_v6(-1, "::1"), PEER_TCP_LOCAL);
    cr_expect_eq(kind_v6(-1, "::ffff:127.0.0.2"), PEER_TCP_LOCAL);
    cr_expect_eq(kind_v4(-1, "10.1.2.3"), PEER_TCP, "no socket to compare with");
    cr_expect_eq(kind_v6(-1, "::ffff:10.1.2.3"), PEER_TCP);
    cr_expect_eq(kind_v6(-1, "2001:db8::1"), PEER_TCP);

    /* Not loopback, but our own end's address: local too. A socket bound to
     * 0.0.0.0 has that address, which no peer on the wire has. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    cr_assert_eq(bind(s, (struct sockaddr *)&any, sizeof any), 0);
    cr_expect_eq(kind_v4(s, "0.0.0.0"), PEER_TCP_LOCAL);
    cr_expect_eq(kind_v4(s, "10.1.2.3"), PEER_TCP);
    cr_expect_eq(kind_v6(s, "::"), PEER_TCP, "another family is never the same address");
    close(s);
}
