/*
 * harness.h - what the end-to-end tests need to drive a real nginx and a real
 * narwhal on loopback: temp dirs, free ports, processes, a tiny HTTP/1.1
 * client, files and logs.
 *
 * Every test runs in its own process (Criterion forks one per test). The
 * harness keeps its state in that process: one temp dir, the list of
 * processes it started. Use the suite hooks:
 *
 *     TestSuite(e2e, .init = h_setup, .fini = h_teardown, .timeout = 60);
 *
 * h_setup makes the temp dir, makes the test process a child subreaper (so a
 * daemonized narwhal can still be waited for) and forks a small guard
 * process. h_teardown stops everything the test started. If the test process
 * dies without running .fini (Criterion's timeout kills it), the guard sees
 * its pipe close and SIGKILLs every process group the test had registered,
 * so no nginx or narwhal outlives its test.
 *
 * Every process the harness starts runs in its own process group (its pid),
 * with stdin from /dev/null and stdout + stderr appended to a log file.
 *
 * Helpers that fail for reasons outside the code under test (cannot fork,
 * nginx will not start, a missing environment variable) fail the test with
 * cr_assert and a message naming what failed. Strings the helpers return are
 * heap-allocated and never freed: a test process is short-lived.
 *
 * Environment (set by `make check`, see Makefile.am): NARWHAL_BIN,
 * NARWHAL_EXAMPLES, NARWHAL_TESTAPP, NARWHAL_BOOTFAIL, NARWHAL_SRCDIR,
 * NARWHAL_NGINX, NARWHAL_CGI_FCGI. NARWHAL_E2E_KEEP=1 keeps the temp dirs.
 */
#ifndef NW_E2E_HARNESS_H
#define NW_E2E_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- per-test setup ------------------------------------------------------ */

void h_setup(void);
void h_teardown(void);

/* The test's temp dir (absolute, made with mkdtemp). */
const char *h_dir(void);
/* printf into a new string. */
char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A path inside the test's temp dir: h_path("nw-%d.log", n). */
char *h_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An environment variable that must be set (fails the test when it is not). */
const char *h_env(const char *name);
/* $NARWHAL_EXAMPLES/<name> (e.g. "hello.so"). */
char *h_example(const char *name);
/* "$NARWHAL_TESTAPP:<symbol>". */
char *h_testapp(const char *symbol);
/* "$NARWHAL_CLASSAPP:<symbol>" (tests/apps/classapp.c) */
char *h_classapp(const char *symbol);

/* ---- time ------------------------------------------------------------------ */

long h_now_ms(void); /* CLOCK_MONOTONIC in milliseconds */
void h_sleep_ms(long ms);

/* ---- ports and sockets ------------------------------------------------------ */

/* A free TCP port on 127.0.0.1, reserved for this test until h_teardown:
 * drawn at random from below the kernel's ephemeral port range (so the
 * kernel does not hand it to anyone else) and recorded in
 * /tmp/narwhal-e2e-ports/<port> (so no concurrent test takes it either). */
int h_free_port(void);
/* True when process pid holds the socket listening on 127.0.0.1:port. Unlike
 * a connect, this cannot be fooled by some other process on that port. */
bool h_listens(pid_t pid, int port);
/* How many IPv4 TCP sockets are in TIME_WAIT with port at either end. */
int h_time_wait(int port);
bool h_wait_listen(pid_t pid, int port, long timeout_ms);
/* True when a TCP connect to 127.0.0.1:port succeeds right now. */
bool h_tcp_accepts(int port);
/* True when a connect to the unix socket at path succeeds right now. */
bool h_unix_accepts(const char *path);
/* Polls until the port / socket accepts, at most timeout_ms. */
bool h_wait_tcp(int port, long timeout_ms);
bool h_wait_unix(const char *path, long timeout_ms);

/* ---- processes ---------------------------------------------------------------- */

/* Starts argv[0] (a path) in a new process group, stdin /dev/null, stdout and
 * stderr appended to logpath. env: NULL or a NULL-terminated list of
 * "KEY=VALUE" added to the environment. The process is registered: h_teardown
 * (or the guard) stops it. */
pid_t h_spawn(const char *logpath, char *const argv[], char *const env[]);

/* Waits for our child pid to exit, at most timeout_ms. Returns true and sets
 * *wstatus (may be NULL) when it exited; false on timeout (it keeps running).
 * An exited process is unregistered. */
bool h_wait_exit(pid_t pid, long timeout_ms, int *wstatus);

/* Sends sig to pid, waits up to timeout_ms, then SIGKILLs its process group
 * and reaps it. Returns the wait status, or -1 when it had to be killed. */
int h_stop(pid_t pid, int sig, long timeout_ms);

/* SIGKILLs pid's whole process group now, reaps pid and waits (bounded)
 * until no process of the group is left (so its sockets are closed). */
void h_kill_group(pid_t pid);

/* Registers a process the harness did not fork itself (a daemonized narwhal,
 * found through its pidfile) so h_teardown and the guard stop its group. */
void h_adopt(pid_t pid);

/* The live (non-zombie) children of pid, at most max of them in out.
 * Returns how many there are. */
int h_children(pid_t pid, pid_t *out, int max);
/* Polls h_children until pid has want children, at most timeout_ms.
 * Returns how many there were at the last look. */
int h_wait_children(pid_t pid, pid_t *out, int max, int want, long timeout_ms);

/* True while pid exists and is not a zombie. */
bool h_alive(pid_t pid);

/* Human-readable "exited 1", "killed by signal 9". */
const char *h_wstatus_str(int wstatus);
/* True when wstatus (from h_wait_exit, h_stop or h_run) says the process
 * exited with code; false for -1 (did not exit in time) and for a signal. */
bool h_exited_with(int wstatus, int code);

/* Runs argv to completion (output to logpath), at most timeout_ms. Returns the
 * wait status, or -1 when it ran too long (then it is killed). */
int h_run(const char *logpath, char *const argv[], char *const env[], long timeout_ms);

/* ---- narwhal ------------------------------------------------------------------- */

typedef struct h_narwhal {
    pid_t pid;
    int port;  /* the TCP port it was told to bind, 0 if none */
    char *log; /* its stdout + stderr */
} h_narwhal;

/* Starts $NARWHAL_BIN with the given arguments (NULL-terminated, app
 * included), without waiting for anything. */
h_narwhal h_narwhal_spawn(const char *arg, ...) __attribute__((sentinel));
h_narwhal h_narwhal_spawnv(char *const args[]);

/* Starts narwhal with `-b 127.0.0.1:<free port>` plus the given arguments and
 * waits (bounded) until its master listens there; fails the test if it does
 * not, showing the log. */
h_narwhal h_narwhal_serve(const char *arg, ...) __attribute__((sentinel));

/* ---- nginx ------------------------------------------------------------------- */

typedef enum {
    H_SNIPPET_TCP,        /* nginx/narwhal-fastcgi.conf */
    H_SNIPPET_UNIX,       /* nginx/narwhal-fastcgi-unix.conf */
    H_SNIPPET_KEEPALIVE,  /* nginx/narwhal-fastcgi-keepalive.conf (http level)
                             + nginx/narwhal-fastcgi-keepalive-location.conf */
    H_SNIPPET_UWSGI,      /* nginx/narwhal-uwsgi.conf */
    H_SNIPPET_UWSGI_UNIX, /* nginx/narwhal-uwsgi-unix.conf */
} h_snippet;

typedef struct h_nginx {
    pid_t pid;
    int port;        /* where it listens for HTTP on 127.0.0.1 */
    char *dir;       /* its prefix dir */
    char *error_log; /* its error log */
} h_nginx;

/* Writes an nginx.conf that listens on a free port and includes the snippet
 * (copied from $NARWHAL_SRCDIR/nginx/ with the address replaced by upstream:
 * "127.0.0.1:PORT" or "unix:/path"), starts nginx and waits until its
 * master listens. The server also has `location = /__harness { return 200 ...; }`
 * for checking nginx on its own. */
h_nginx h_nginx_start(h_snippet snippet, const char *upstream);
/* The same with extra http-level directives (e.g. "large_client_header_buffers
 * 8 64k;"), written after the snippet's own http-level part. */
h_nginx h_nginx_start_http(h_snippet snippet, const char *upstream, const char *http_extra);
/* An nginx whose server block holds only server_body (raw text, e.g. location
 * blocks with their own fastcgi_pass / uwsgi_pass), for setups one snippet
 * cannot express. fastcgi_params and uwsgi_params are next to its config. */
h_nginx h_nginx_start_server(const char *server_body);

/* ---- HTTP client ----------------------------------------------------------------- */

typedef struct h_response {
    int status;  /* -1 when no response could be read (see error) */
    char *error; /* what went wrong, NULL if nothing */
    char *head;  /* the status line and headers as received */
    char *body;  /* decoded body (chunked removed), NUL-terminated */
    size_t body_len;
    long elapsed_ms;
} h_response;

/* Sends one HTTP/1.1 request with `Connection: close` to 127.0.0.1:port and
 * reads the whole response (until EOF), at most timeout_ms in all. headers:
 * NULL or extra header lines, each ending in "\r\n". body may be NULL; when
 * not, Content-Length is sent. */
h_response h_http(int port, const char *method, const char *path, const char *headers,
                  const void *body, size_t body_len, long timeout_ms);
/* GET with a 10 s bound. */
h_response h_get(int port, const char *path);

/* A response header's value (case-insensitive name), NULL if absent. */
char *h_header(const h_response *r, const char *name);

/* ---- files and logs ------------------------------------------------------------- */

/* The whole file, NUL-terminated (NULL if it cannot be read). */
char *h_read_file(const char *path, size_t *len);
/* Copies the file at from to to (created or truncated); asserts. */
void h_copy_file(const char *from, const char *to);
void h_write_file(const char *path, const char *text);
bool h_exists(const char *path);
/* The last ~3000 bytes of a file, for failure messages (never NULL). */
char *h_tail(const char *path);
/* Polls until the file contains needle, at most timeout_ms. */
bool h_wait_for_text(const char *path, const char *needle, long timeout_ms);
/* Counts non-overlapping occurrences of needle in text (NULL: 0), in the
 * file at path. */
int h_count_in(const char *text, const char *needle);
int h_count_text(const char *path, const char *needle);
/* Waits until needle occurs n times in the file at path, at most
 * timeout_ms; whether it did. */
bool h_wait_count(const char *path, const char *needle, int n, long timeout_ms);
/* The first line of the file that contains every one of needles (a
 * NULL-terminated list), or NULL. */
char *h_find_line(const char *path, const char *const needles[]);
/* Polls until h_find_line finds one, at most timeout_ms. */
char *h_wait_line(const char *path, const char *const needles[], long timeout_ms);
/* Polls until path does not exist, at most timeout_ms. */
bool h_wait_gone(const char *path, long timeout_ms);
/* Reads a pidfile (0 if absent / not a number). */
pid_t h_read_pidfile(const char *path);

/* ---- for the tests ---------------------------------------------------------------------- */

/* Asserts the response status; on failure shows what came back, after how
 * long, and the tail of the log nwlog (narwhal's, or whichever tells most). */
#define assert_status(resp, code, nwlog)                                                           \
    do {                                                                                           \
        h_response r_ = (resp);                                                                    \
        cr_assert_eq(r_.status, (code),                                                            \
                     "expected HTTP %d, got %d (%s) after %ld ms\nbody: %.500s\n"                  \
                     "narwhal log:\n%s",                                                           \
                     (code), r_.status, r_.error ? r_.error : "no error", r_.elapsed_ms,           \
                     r_.body ? r_.body : "", h_tail(nwlog));                                       \
    } while (0)

#define assert_body(r, text)                                                                       \
    cr_assert_str_eq((r).body ? (r).body : "(no body)", (text), "body: \"%s\", expected \"%s\"",   \
                     (r).body ? (r).body : "(no body)", (text))

/* narwhal on a free TCP port with the given arguments, nginx in front with
 * the plain TCP snippet: declares nw (h_narwhal) and ng (h_nginx). */
#define serve_tcp(nw, ng, ...)                                                                     \
    h_narwhal nw = h_narwhal_serve(__VA_ARGS__, NULL);                                             \
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port))

/* A worker class as command-line arguments. Arrays, not pointers: Criterion
 * hands parameters to a test process that may not share the runner's
 * addresses. */
typedef struct h_wclass {
    char name[16];   /* -k */
    char threads[8]; /* --threads */
} h_wclass;

/* A worker class's -k and --threads arguments, for an argument list. */
#define H_CLASS_ARGS(wc) "-k", (wc)->name, "--threads", (wc)->threads

/* sync, threads (8 threads) and async: cr_make_param_array(h_wclass,
 * h_all_classes, H_NCLASSES) runs a test under each. */
#define H_NCLASSES 3
extern h_wclass h_all_classes[H_NCLASSES];

/* ---- load (wrk through nginx) ------------------------------------------------------ */

/* wrk on 127.0.0.1:port for secs seconds with conns connections (2
 * threads), in the background; skips the test without /usr/bin/wrk. */
typedef struct h_load {
    pid_t pid;
    char *out;
    int secs;
} h_load;

h_load h_load_start(int port, const char *path, int secs, int conns);
/* Waits for wrk (bounded), asserts it saw only 2xx / 3xx responses, no
 * socket error and at least 50 requests (showing nwlog's tail if not);
 * returns how many requests it made. */
long h_load_finish(const h_load *l, const char *nwlog);

/* The resident set of process pid in KiB (VmRSS), -1 if it is gone. */
long h_rss_kib(pid_t pid);

/* A request sent from a thread of its own, so that several are in flight
 * at once: fill in port and path, h_bg_start it, h_bg_join it, read r. */
typedef struct h_bg_request {
    int port;
    const char *method; /* NULL: GET */
    const char *path;
    long timeout_ms; /* 0: 20 s */
    h_response r;
    pthread_t thread;
} h_bg_request;

void h_bg_start(h_bg_request *b);
void h_bg_join(h_bg_request *b);
/* The request itself, in the calling thread. */
void h_bg_run(h_bg_request *b);

/* Sends n GETs of path at once (out[0..n) gets them) and waits for all of
 * them; returns the ms from the first send to the last answer. */
long h_concurrent_gets(int port, const char *path, int n, long timeout_ms, h_bg_request *out);

#endif
