/*
 * test_hostile.c - narwhal's request limits and hostile input.
 *
 * The limit tests go through a real nginx (its header buffers raised, so
 * that narwhal's limit is the one being tested). The hostile-input tests
 * talk FastCGI straight to narwhal over raw loopback sockets, with the tiny
 * record builder below. Each checks that narwhal answers (or closes) as it
 * should, logs a reason, and that no worker died: the worker pids are the
 * same before and after and a well-formed request is still answered.
 */
#include "harness.h"
#include "proto_uwsgi.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(hostile, .init = h_setup, .fini = h_teardown, .timeout = 90);

/* ---- a tiny FastCGI record builder -------------------------------------------- */

enum {
    BEGIN_REQUEST = 1,
    ABORT_REQUEST = 2,
    END_REQUEST = 3,
    PARAMS = 4,
    STDIN = 5,
    STDOUT = 6,
    STDERR = 7,
};

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void b_put(bytes *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        cr_assert(b->p);
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void b_byte(bytes *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    b_put(b, &c, 1);
}

/* One record with any version byte and padding (content at most 65535). */
static void rec_v(bytes *b, int version, int type, int id, const void *content, size_t len,
                  int padding)
{
    cr_assert(len <= 65535);
    uint8_t h[8] = { (uint8_t)version, (uint8_t)type, (uint8_t)(id >> 8), (uint8_t)id,
                     (uint8_t)(len >> 8), (uint8_t)len, (uint8_t)padding, 0 };
    b_put(b, h, 8);
    b_put(b, content, len);
    static const uint8_t zeros[255];
    b_put(b, zeros, (size_t)padding);
}

static void rec(bytes *b, int type, int id, const void *content, size_t len)
{
    rec_v(b, 1, type, id, content, len, 0);
}

static void begin(bytes *b, int id, bool keep_conn)
{
    uint8_t body[8] = { 0, 1 /* responder */, keep_conn ? 1 : 0 };
    rec(b, BEGIN_REQUEST, id, body, 8);
}

static void fcgi_len(bytes *b, size_t n)
{
    if (n < 128) {
        b_byte(b, (unsigned)n);
    } else {
        b_byte(b, (unsigned)(n >> 24) | 0x80);
        b_byte(b, (unsigned)(n >> 16) & 0xff);
        b_byte(b, (unsigned)(n >> 8) & 0xff);
        b_byte(b, (unsigned)n & 0xff);
    }
}

static void pair(bytes *b, const char *name, const char *value)
{
    fcgi_len(b, strlen(name));
    fcgi_len(b, strlen(value));
    b_put(b, name, strlen(name));
    b_put(b, value, strlen(value));
}

/* The params stream of a plain request (NULL-terminated name, value list)
 * as PARAMS records, then the empty one that ends it. */
static void params(bytes *b, int id, const char *const kv[])
{
    bytes s = { 0 };
    for (size_t i = 0; kv[i]; i += 2)
        pair(&s, kv[i], kv[i + 1]);
    for (size_t off = 0; off < s.len; off += 65535) {
        size_t n = s.len - off < 65535 ? s.len - off : 65535;
        rec(b, PARAMS, id, s.p + off, n);
    }
    rec(b, PARAMS, id, NULL, 0);
    free(s.p);
}

/* The body as STDIN records, then the empty one that ends it. */
static void body(bytes *b, int id, const void *data, size_t len)
{
    for (size_t off = 0; off < len; off += 65535) {
        size_t n = len - off < 65535 ? len - off : 65535;
        rec(b, STDIN, id, (const uint8_t *)data + off, n);
    }
    rec(b, STDIN, id, NULL, 0);
}

static const char *const GET_PARAMS[] = {
    "REQUEST_METHOD", "GET",      "REQUEST_URI", "/raw?x=1", "QUERY_STRING", "x=1",
    "SERVER_PROTOCOL", "HTTP/1.1", "SCRIPT_NAME", "/raw",    "HTTP_HOST",    "localhost",
    NULL,
};

/* A whole GET request. */
static void get_request(bytes *b, int id, bool keep_conn)
{
    begin(b, id, keep_conn);
    params(b, id, GET_PARAMS);
    body(b, id, NULL, 0);
}

/* ---- raw sockets ----------------------------------------------------------------- */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect to %d: %s", port,
              strerror(errno));
    return fd;
}

/* Sends everything (bounded by SO_SNDTIMEO). False if the peer is gone. */
static bool send_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool send_bytes(int fd, const bytes *b)
{
    return send_all(fd, b->p, b->len);
}

/* What came back on a FastCGI connection. */
typedef struct reply {
    bool end;       /* END_REQUEST seen */
    bool closed;    /* EOF or reset */
    bool timed_out; /* neither before the deadline */
    int app_status; /* from END_REQUEST */
    int proto_status;
    char *out;      /* STDOUT content, NUL-terminated */
    size_t out_len;
    size_t raw_len; /* bytes received in all */
} reply;

/* Reads records until END_REQUEST (for the request id, any if 0), EOF or
 * timeout_ms. */
static reply read_reply(int fd, long timeout_ms)
{
    reply r = { 0 };
    bytes in = { 0 }, out = { 0 };
    long deadline = h_now_ms() + timeout_ms;
    size_t pos = 0;
    while (!r.end) {
        /* whole records in the buffer first */
        while (in.len - pos >= 8) {
            const uint8_t *h = in.p + pos;
            size_t clen = (size_t)h[4] << 8 | h[5], total = 8 + clen + h[6];
            if (in.len - pos < total)
                break;
            if (h[1] == STDOUT)
                b_put(&out, h + 8, clen);
            if (h[1] == END_REQUEST && clen >= 8) {
                r.end = true;
                r.app_status = (int)((uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 |
                                     (uint32_t)h[10] << 8 | h[11]);
                r.proto_status = h[12];
            }
            pos += total;
            if (r.end)
                break;
        }
        if (r.end)
            break;
        long left = deadline - h_now_ms();
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            r.timed_out = true;
            break;
        }
        uint8_t buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r.closed = true;
            break;
        }
        r.raw_len += (size_t)n;
        b_put(&in, buf, (size_t)n);
    }
    b_byte(&out, 0);
    r.out = (char *)out.p;
    r.out_len = out.len - 1;
    free(in.p);
    return r;
}

/* Waits until the peer closes (EOF or reset), discarding what it sends.
 * Returns the ms it took, or -1 if it is still open after timeout_ms. */
static long wait_closed(int fd, long timeout_ms)
{
    long start = h_now_ms(), deadline = start + timeout_ms;
    for (;;) {
        long left = deadline - h_now_ms();
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return -1;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return h_now_ms() - start;
    }
}

/* True when nothing at all (no byte, no EOF) arrives on fd for ms. */
static bool stays_silent(int fd, long ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, (int)ms) == 0;
}

/* ---- workers ------------------------------------------------------------------------ */

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* The worker pids, sorted. */
static int worker_pids(pid_t master, pid_t *out, int max)
{
    int n = h_children(master, out, max);
    if (n > max)
        n = max;
    qsort(out, (size_t)n, sizeof *out, cmp_pid);
    return n;
}

static char *pids_str(const pid_t *p, int n)
{
    char *s = h_fmt("%s", "");
    for (int i = 0; i < n; i++)
        s = h_fmt("%s%s%ld", s, i ? " " : "", (long)p[i]);
    return s;
}

typedef struct workers {
    pid_t pid[16];
    int n;
} workers;

/* Waits until the master has n workers that have all booted. */
static workers ready_workers(const h_narwhal *nw, int n)
{
    workers w = { .n = 0 };
    long deadline = h_now_ms() + 15000;
    for (;;) {
        w.n = worker_pids(nw->pid, w.pid, 16);
        if (w.n == n && h_count_text(nw->log, "booting worker with pid") >= n)
            return w;
        cr_assert(h_now_ms() < deadline, "narwhal has %d workers, not %d, after 15 s:\n%s", w.n,
                  n, h_tail(nw->log));
        h_sleep_ms(50);
    }
}

/* A well-formed request on a new connection is answered. */
static void assert_serves(const h_narwhal *nw, const char *expect)
{
    int fd = raw_connect(nw->port);
    bytes b = { 0 };
    get_request(&b, 1, false);
    cr_assert(send_bytes(fd, &b), "cannot send a plain request: %s", strerror(errno));
    reply r = read_reply(fd, 10000);
    close(fd);
    cr_assert(r.end && r.app_status == 0 && strstr(r.out, expect),
              "a plain request got end=%d status=%d closed=%d timed_out=%d stdout:\n%.300s\n"
              "narwhal log:\n%s",
              r.end, r.app_status, r.closed, r.timed_out, r.out, h_tail(nw->log));
}

/* The workers are the ones from before: none died and was replaced. */
static void assert_same_workers(const h_narwhal *nw, const workers *before)
{
    workers now;
    now.n = worker_pids(nw->pid, now.pid, 16);
    bool same = now.n == before->n;
    for (int i = 0; same && i < now.n; i++)
        same = now.pid[i] == before->pid[i];
    cr_assert(same, "workers before: %s, after: %s\nnarwhal log:\n%s",
              pids_str(before->pid, before->n), pids_str(now.pid, now.n), h_tail(nw->log));
    cr_assert(h_alive(nw->pid), "the master died");
    cr_assert_eq(h_count_text(nw->log, "died from"), 0, "a worker died:\n%s", h_tail(nw->log));
    cr_assert_eq(h_count_text(nw->log, "exited with status"), 0, "a worker exited:\n%s",
                 h_tail(nw->log));
}

static void assert_logged(const h_narwhal *nw, const char *reason)
{
    cr_assert(h_wait_for_text(nw->log, reason, 5000), "no \"%s\" in the log:\n%s", reason,
              h_tail(nw->log));
}

#define HELLO "Hello, World!\n"

/* narwhal -w 2 on hello.so, both workers booted, a control request answered. */
#define serve_raw(nw, before, ...)                                                          \
    h_narwhal nw = h_narwhal_serve("-w", "2", __VA_ARGS__, NULL);                           \
    workers before = ready_workers(&nw, 2);                                                 \
    assert_serves(&nw, "")

/* ---- hostile input, raw FastCGI ------------------------------------------------------ */

Test(hostile, http_to_fastcgi_socket, .timeout = 60)
{
    serve_raw(nw, before, h_example("hello.so"));
    int fd = raw_connect(nw.port);
    const char *http = "GET / HTTP/1.0\r\n\r\n";
    cr_assert(send_all(fd, http, strlen(http)));
    long took = wait_closed(fd, 5000);
    close(fd);
    cr_assert(took >= 0, "narwhal keeps a connection that spoke HTTP open:\n%s", h_tail(nw.log));
    assert_logged(&nw, "first byte 0x47 is neither FastCGI");
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}

Test(hostile, bad_version_byte, .timeout = 60)
{
    serve_raw(nw, before, h_example("hello.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, false);
    bytes s = { 0 };
    pair(&s, "REQUEST_METHOD", "GET");
    rec_v(&b, 2 /* not FastCGI 1 */, PARAMS, 1, s.p, s.len, 0);
    rec(&b, PARAMS, 1, NULL, 0);
    cr_assert(send_bytes(fd, &b));
    reply r = read_reply(fd, 5000);
    close(fd);
    cr_assert(r.closed && !r.end, "a record with version byte 2: end=%d closed=%d timed_out=%d",
              r.end, r.closed, r.timed_out);
    assert_logged(&nw, "malformed fastcgi input: bad fastcgi version byte");
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}

Test(hostile, truncated_record_then_close, .timeout = 60)
{
    serve_raw(nw, before, h_example("hello.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, false);
    /* a PARAMS header announcing 200 bytes, then 20 of them */
    uint8_t h[8] = { 1, PARAMS, 0, 1, 0, 200, 0, 0 };
    b_put(&b, h, 8);
    b_put(&b, "\x0e\x03REQUEST_METHODGET", 20);
    cr_assert(send_bytes(fd, &b));
    h_sleep_ms(200);
    close(fd);
    assert_logged(&nw, "peer closed the connection mid-request");
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}

Test(hostile, huge_param_name_length, .timeout = 60)
{
    serve_raw(nw, before, h_example("hello.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 }, s = { 0 };
    begin(&b, 1, false);
    /* name length 0x7fffffff, value length 1, then a few bytes */
    b_put(&s, "\xff\xff\xff\xff\x01NAMEV", 10);
    rec(&b, PARAMS, 1, s.p, s.len);
    rec(&b, PARAMS, 1, NULL, 0);
    body(&b, 1, NULL, 0);
    cr_assert(send_bytes(fd, &b));
    reply r = read_reply(fd, 5000);
    close(fd);
    cr_assert(r.closed && !r.end, "a 0x7fffffff name length: end=%d closed=%d timed_out=%d",
              r.end, r.closed, r.timed_out);
    assert_logged(&nw, "malformed fastcgi params: param length too large");
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}

Test(hostile, records_after_end_request_are_ignored, .timeout = 60)
{
    /* The FastCGI spec: an application ignores records for a request id
     * that is not active. After END_REQUEST, stray STDIN / PARAMS / ABORT
     * records for the finished id are dropped and the kept connection
     * serves the next request. */
    serve_raw(nw, before, h_example("hello.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    get_request(&b, 1, true);
    cr_assert(send_bytes(fd, &b));
    reply r = read_reply(fd, 5000);
    cr_assert(r.end && strstr(r.out, HELLO), "the first request: end=%d closed=%d out=%.200s",
              r.end, r.closed, r.out);

    bytes late = { 0 };
    rec(&late, STDIN, 1, "late body", 9);
    rec(&late, STDIN, 1, NULL, 0);
    params(&late, 1, GET_PARAMS);
    rec(&late, ABORT_REQUEST, 1, NULL, 0);
    cr_assert(send_bytes(fd, &late));
    cr_assert(stays_silent(fd, 500), "narwhal answered (or closed) on stray records:\n%s",
              h_tail(nw.log));

    bytes next = { 0 };
    get_request(&next, 2, true);
    cr_assert(send_bytes(fd, &next), "the connection is gone after stray records");
    r = read_reply(fd, 5000);
    close(fd);
    cr_assert(r.end && strstr(r.out, HELLO),
              "the next request on the connection: end=%d closed=%d timed_out=%d out=%.200s\n%s",
              r.end, r.closed, r.timed_out, r.out, h_tail(nw.log));
    assert_same_workers(&nw, &before);
}

Test(hostile, stdin_beyond_the_end, .timeout = 60)
{
    /* STDIN after the empty STDIN record of the active request: echo.so
     * reads the body, so narwhal parses it while the request is on. */
    serve_raw(nw, before, h_example("echo.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, false);
    static const char *const post[] = { "REQUEST_METHOD", "POST", "REQUEST_URI", "/up",
                                        "CONTENT_LENGTH", "5",   "SERVER_PROTOCOL", "HTTP/1.1",
                                        NULL };
    params(&b, 1, post);
    body(&b, 1, "hello", 5);
    rec(&b, STDIN, 1, "beyond", 6);
    cr_assert(send_bytes(fd, &b));
    reply r = read_reply(fd, 5000);
    close(fd);
    cr_assert(r.closed && !r.end, "STDIN beyond the end: end=%d closed=%d timed_out=%d out=%.200s",
              r.end, r.closed, r.timed_out, r.out);
    assert_logged(&nw, "malformed fastcgi input: stdin after end of stream");
    assert_serves(&nw, "REQUEST_METHOD=GET");
    assert_same_workers(&nw, &before);
}

Test(hostile, stdin_before_the_params_end, .timeout = 60)
{
    /* Body bytes before the request has arrived would be held with no one
     * to read them (512 MiB of them once took a worker to 526 MB): the
     * connection is closed at the first one. */
    serve_raw(nw, before, h_example("echo.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, true);
    static const char early[4096] = { 'x' };
    for (int i = 0; i < 64; i++)
        rec(&b, STDIN, 1, early, sizeof early);
    (void)send_bytes(fd, &b); /* narwhal may cut it off mid-send */
    long took = wait_closed(fd, 5000);
    close(fd);
    cr_assert(took >= 0, "narwhal keeps a connection that sends STDIN before its params end");
    assert_logged(&nw, "malformed fastcgi input: stdin before the params ended");
    assert_serves(&nw, "REQUEST_METHOD=GET");
    assert_same_workers(&nw, &before);
}

Test(hostile, abort_before_the_params_end, .timeout = 60)
{
    /* Nothing runs yet: the request ends at once, and the kept connection
     * serves the next one. */
    serve_raw(nw, before, h_example("echo.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, true);
    rec(&b, ABORT_REQUEST, 1, NULL, 0);
    cr_assert(send_bytes(fd, &b));
    reply r = read_reply(fd, 5000);
    cr_assert(r.end && r.proto_status == 0 && r.out[0] == 0,
              "abort before the params: end=%d proto_status=%d closed=%d out=%.200s", r.end,
              r.proto_status, r.closed, r.out);
    bytes next = { 0 };
    begin(&next, 2, false);
    params(&next, 2, GET_PARAMS);
    body(&next, 2, NULL, 0);
    cr_assert(send_bytes(fd, &next));
    r = read_reply(fd, 5000);
    close(fd);
    cr_assert(r.end && strstr(r.out, "REQUEST_METHOD=GET"),
              "the next request on the connection: end=%d closed=%d out=%.200s", r.end, r.closed,
              r.out);
    assert_logged(&nw, "request 1 aborted by the front end");
    assert_same_workers(&nw, &before);
}

Test(hostile, client_gone_mid_upload_is_499_in_the_access_log, .timeout = 60)
{
    /* The access log says what the client got: it used to say 200 for a
     * request whose peer went away before the body was read. */
    char *alog = h_path("access.log");
    serve_raw(nw, before, "--access-logfile", alog, h_example("echo.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, false);
    static const char *const post[] = { "REQUEST_METHOD", "POST", "REQUEST_URI", "/upload",
                                        "CONTENT_LENGTH", "100000", "SERVER_PROTOCOL", "HTTP/1.1",
                                        NULL };
    params(&b, 1, post);
    rec(&b, STDIN, 1, "part of it", 10);
    cr_assert(send_bytes(fd, &b));
    usleep(200 * 1000);
    close(fd);
    cr_assert(h_wait_for_text(alog, "\"POST /upload HTTP/1.1\" 499 ", 5000),
              "no 499 in the access log:\n%s\n%s", h_tail(alog), h_tail(nw.log));
    assert_same_workers(&nw, &before);
}

Test(hostile, uwsgi_bytes_after_the_body_do_not_undo_the_request, .timeout = 60)
{
    /* One request per connection: bytes after CONTENT_LENGTH used to fail the
     * request the handler was reading (nothing was answered), while the same
     * bytes after an empty body were ignored. */
    serve_raw(nw, before, h_example("echo.so"));
    nw_buf vars = NW_BUF_INIT, req = NW_BUF_INIT;
    static const char *const kv[] = { "REQUEST_METHOD", "POST", "REQUEST_URI", "/up",
                                      "CONTENT_LENGTH", "5", "SERVER_PROTOCOL", "HTTP/1.1", NULL };
    for (size_t i = 0; kv[i]; i += 2)
        uwsgi_encode_var(&vars, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1]));
    uwsgi_encode_header(&req, 0, vars.len, 0);
    nw_buf_append(&req, nw_buf_head(&vars), vars.len);
    nw_buf_appends(&req, "helloEXTRA");
    int fd = raw_connect(nw.port);
    cr_assert(send_all(fd, nw_buf_head(&req), req.len));
    char got[4096];
    size_t n = 0;
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 5000) <= 0)
            break;
        ssize_t k = recv(fd, got + n, sizeof got - 1 - n, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    got[n] = 0;
    close(fd);
    nw_buf_free(&vars);
    nw_buf_free(&req);
    cr_assert(strncmp(got, "HTTP/1.1 200 ", 13) == 0 && strstr(got, "\r\n\r\nhello"),
              "the response:\n%s\n%s", got, h_tail(nw.log));
    assert_same_workers(&nw, &before);
}

Test(hostile, pending_bytes_are_bounded_per_worker, .timeout = 60)
{
    /* Requests that never finish arriving (params up to 1 MiB each) could
     * pin a worker's memory, connection after connection: past
     * limit_pending_bytes the connection that would pass it is closed. */
    h_narwhal nw = h_narwhal_serve("-w", "1", "--limit-pending-bytes", "300000",
                                   h_example("echo.so"), NULL);
    workers before = ready_workers(&nw, 1);
    static uint8_t chunk[60000];
    memset(chunk, 'p', sizeof chunk);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(nw.port);
        bytes b = { 0 };
        begin(&b, 1, true);
        rec(&b, PARAMS, 1, chunk, sizeof chunk); /* and no empty PARAMS */
        cr_assert(send_bytes(fds[i], &b));
        free(b.p);
        usleep(50 * 1000);
    }
    /* 60 kB each: the first four stay (240 kB), the fifth may (300 kB is
     * the limit, not past it), the sixth passes it and so does every later
     * one: those are the ones closed, not the earlier */
    for (int i = 5; i < N; i++)
        cr_assert_geq(wait_closed(fds[i], 3000), 0, "connection %d of %d was kept\n%s", i + 1, N,
                      h_tail(nw.log));
    for (int i = 0; i < 4; i++)
        cr_assert_lt(wait_closed(fds[i], 200), 0, "connection %d of %d was closed\n%s", i + 1, N,
                     h_tail(nw.log));
    for (int i = 0; i < N; i++)
        close(fds[i]);
    cr_assert(h_wait_for_text(nw.log, "limit_pending_bytes (300000)", 3000), "%s", h_tail(nw.log));
    assert_serves(&nw, "REQUEST_METHOD=GET");
    assert_same_workers(&nw, &before);
}

Test(hostile, unexpected_record_type_from_web_server, .timeout = 60)
{
    /* END_REQUEST / STDOUT only go from the application to the web server */
    serve_raw(nw, before, h_example("hello.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, true);
    uint8_t end[8] = { 0 };
    rec(&b, END_REQUEST, 1, end, 8);
    cr_assert(send_bytes(fd, &b));
    long took = wait_closed(fd, 5000);
    close(fd);
    cr_assert(took >= 0, "narwhal keeps the connection open after an END_REQUEST from the peer");
    assert_logged(&nw, "unexpected record type from web server");
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}

Test(hostile, peer_closes_mid_response, .timeout = 60)
{
    serve_raw(nw, before, h_example("echo.so"));
    /* The response must not fit in the socket buffers, or narwhal would
     * finish writing before it could notice the close: our receive buffer
     * is small, narwhal's send buffer can grow to tcp_wmem's maximum. */
    size_t wmem_max = 4u << 20;
    char *wm = h_read_file("/proc/sys/net/ipv4/tcp_wmem", NULL);
    unsigned long a, bb, c;
    if (wm && sscanf(wm, "%lu %lu %lu", &a, &bb, &c) == 3)
        wmem_max = c;
    size_t n = (1u << 20) > wmem_max * 2 ? (1u << 20) : wmem_max * 2 + (1u << 20);
    char *data = malloc(n);
    cr_assert(data);
    memset(data, 'x', n);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 8192;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)nw.port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);

    bytes b = { 0 };
    begin(&b, 1, false);
    char *clen = h_fmt("%zu", n);
    const char *const post[] = { "REQUEST_METHOD", "POST", "REQUEST_URI", "/big",
                                 "CONTENT_LENGTH", clen,  "SERVER_PROTOCOL", "HTTP/1.1",
                                 NULL };
    params(&b, 1, post);
    body(&b, 1, data, n);
    cr_assert(send_all(fd, b.p, b.len), "sending the %zu byte body: %s", n, strerror(errno));
    /* the response has begun: read a little of it, then hang up with the
     * rest unread (a reset) */
    char first[1024];
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    cr_assert(poll(&pfd, 1, 10000) == 1, "no response to a %zu byte POST:\n%s", n,
              h_tail(nw.log));
    cr_assert(recv(fd, first, sizeof first, 0) > 0);
    close(fd);
    assert_logged(&nw, "peer gone while sending the response");
    assert_serves(&nw, "REQUEST_METHOD=GET");
    assert_same_workers(&nw, &before);
}

/* ---- how a connection ends ----------------------------------------------------- */

/* A client that starts reading only after narwhal has ended the connection
 * (close_mode reset: FIN, then a reset) still reads the whole response and
 * then end-of-file, never ECONNRESET. body_len > 0 posts that many bytes to
 * echo.so, so the response outgrows the socket buffers and the plain-close
 * fallback runs too. Returns the TIME_WAIT entries the exchange left. */
static int slow_reader(const char *mode, size_t body_len)
{
    serve_raw(nw, before, "--close-mode", mode, h_example("echo.so"));
    int tw_before = h_time_wait(nw.port);
    char *data = malloc(body_len + 1);
    cr_assert(data);
    for (size_t i = 0; i < body_len; i++)
        data[i] = (char)('a' + i % 26);
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, false);
    char *clen = h_fmt("%zu", body_len);
    const char *const post[] = { "REQUEST_METHOD", body_len ? "POST" : "GET", "REQUEST_URI",
                                 "/slow", "CONTENT_LENGTH", clen, "SERVER_PROTOCOL",
                                 "HTTP/1.1", NULL };
    params(&b, 1, post);
    body(&b, 1, data, body_len);
    cr_assert(send_bytes(fd, &b), "sending: %s", strerror(errno));
    h_sleep_ms(300); /* narwhal answers and ends the connection meanwhile */
    reply r = read_reply(fd, 10000);
    cr_assert(r.end && r.app_status == 0, "end=%d closed=%d timed_out=%d after %zu bytes\n%s",
              r.end, r.closed, r.timed_out, r.raw_len, h_tail(nw.log));
    if (body_len) {
        char *sep = strstr(r.out, "\r\n\r\n");
        cr_assert(sep, "no header end in the response");
        size_t got = r.out_len - (size_t)(sep + 4 - r.out);
        cr_assert(got == body_len && memcmp(sep + 4, data, body_len) == 0,
                  "the body came back as %zu bytes, not the %zu sent", got, body_len);
    } else {
        cr_assert(strstr(r.out, "REQUEST_URI=/slow"), "stdout:\n%s", r.out);
    }
    char byte;
    errno = 0;
    ssize_t n = recv(fd, &byte, 1, 0);
    cr_assert_eq(n, 0, "after the response: recv returned %zd (%s), not end-of-file", n,
                 strerror(errno));
    close(fd);
    h_sleep_ms(100);
    int left = h_time_wait(nw.port) - tw_before;
    assert_same_workers(&nw, &before);
    free(data);
    return left;
}

Test(hostile, reset_close_slow_reader_reads_all_then_eof, .timeout = 60)
{
    int tw = slow_reader("reset", 0);
    cr_assert_eq(tw, 0, "close_mode reset left %d TIME_WAIT entries", tw);
}

Test(hostile, reset_close_large_response_arrives_whole, .timeout = 60)
{
    slow_reader("reset", 3u << 20);
}

/* The control: the plain close leaves narwhal's end in TIME_WAIT, which is
 * what the reset saves (and what the count above would see). */
Test(hostile, fin_close_slow_reader_reads_all_then_eof, .timeout = 60)
{
    int tw = slow_reader("fin", 0);
    cr_assert_geq(tw, 1, "close_mode fin left no TIME_WAIT entry");
}

Test(hostile, stalled_request_closed_after_timeout, .timeout = 60)
{
    serve_raw(nw, before, "-t", "2", h_example("hello.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, false);
    /* a PARAMS header announcing 100 bytes, then 10, then nothing */
    uint8_t h[8] = { 1, PARAMS, 0, 1, 0, 100, 0, 0 };
    b_put(&b, h, 8);
    b_put(&b, "\x0e\x03REQUES", 8); /* a partial pair: the record stalls */
    cr_assert(send_bytes(fd, &b));
    long took = wait_closed(fd, 6000);
    close(fd);
    cr_assert(took >= 0, "a stalled request is still open 6 s later with -t 2:\n%s",
              h_tail(nw.log));
    cr_assert(took >= 1500, "a stalled request was closed after %ld ms, before -t 2", took);
    assert_logged(&nw, "request stalled before it arrived in full");
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}

/* A connection with a request that has begun and stalls (BEGIN_REQUEST and
 * part of a PARAMS record). -1 if connect fails (out of fds). */
static int stalled_connection(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    bytes b = { 0 };
    begin(&b, 1, false);
    uint8_t h[8] = { 1, PARAMS, 0, 1, 0, 100, 0, 0 };
    b_put(&b, h, 8);
    b_put(&b, "\x0e\x03REQUES", 8); /* a partial pair: the record stalls */
    bool ok = send_bytes(fd, &b);
    free(b.p);
    if (!ok) {
        close(fd);
        return -1;
    }
    return fd;
}

Test(hostile, many_stalled_connections_do_not_block_others, .timeout = 90)
{
    enum { WANT = 500 };
    /* Room for WANT sockets here (narwhal inherits the limit too). */
    struct rlimit rl;
    cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < WANT + 200) {
        rl.rlim_cur = rl.rlim_max < WANT + 200 ? rl.rlim_max : WANT + 200;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    h_narwhal nw = h_narwhal_serve("-w", "2", "--worker-connections", "2000", "--log-level",
                                   "debug", h_example("hello.so"), NULL);
    workers before = ready_workers(&nw, 2);
    h_nginx ng = h_nginx_start(H_SNIPPET_TCP, h_fmt("127.0.0.1:%d", nw.port));
    assert_status(h_get(ng.port, "/hello"), 200, nw.log);

    /* narwhal's workers must be allowed enough descriptors themselves */
    char *limits = h_read_file(h_fmt("/proc/%ld/limits", (long)before.pid[0]), NULL);
    char *mof = limits ? strstr(limits, "Max open files") : NULL;
    long wsoft = mof ? strtol(mof + strlen("Max open files"), NULL, 10) : 0;
    cr_assert(wsoft >= WANT / 2 + 50, "a worker may open only %ld files", wsoft);

    /* If this process cannot open WANT sockets, as many as it can (each
     * worker then holds about half of them). */
    int max = (int)rl.rlim_cur - 100 < WANT ? (int)rl.rlim_cur - 100 : WANT;
    int *fds = calloc(WANT, sizeof *fds), n = 0;
    cr_assert(fds);
    int accepted0 = h_count_text(nw.log, "accepted connection");
    long t0 = h_now_ms();
    while (n < max && h_now_ms() - t0 < 20000) {
        int fd = stalled_connection(nw.port);
        if (fd < 0)
            break;
        fds[n++] = fd;
    }
    cr_assert(n >= 100, "only %d stalled connections could be opened (%s)", n, strerror(errno));
    /* every one of them is held by a worker, not waiting in the backlog */
    long deadline = h_now_ms() + 10000;
    int accepted;
    while ((accepted = h_count_text(nw.log, "accepted connection") - accepted0) < n &&
           h_now_ms() < deadline)
        h_sleep_ms(100);
    cr_assert(accepted >= n, "narwhal accepted %d of %d stalled connections:\n%s", accepted, n,
              h_tail(nw.log));

    for (int i = 0; i < 3; i++) {
        h_response r = h_http(ng.port, "GET", "/hello", NULL, NULL, 0, 2000);
        assert_status(r, 200, nw.log);
        cr_assert_str_eq(r.body, HELLO);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    deadline = h_now_ms() + 10000;
    int gone;
    while ((gone = h_count_text(nw.log, "peer closed the connection mid-request")) < n &&
           h_now_ms() < deadline)
        h_sleep_ms(100);
    cr_assert(gone >= n, "%d of %d closed stalled connections logged:\n%s", gone, n,
              h_tail(nw.log));
    assert_status(h_get(ng.port, "/hello"), 200, nw.log);
    assert_same_workers(&nw, &before);
}

Test(hostile, connections_beyond_worker_connections_wait_in_backlog, .timeout = 60)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", "--worker-connections", "2", "--log-level", "debug",
                                   h_example("hello.so"), NULL);
    workers before = ready_workers(&nw, 1);
    assert_serves(&nw, HELLO);

    int accepted0 = h_count_text(nw.log, "accepted connection");
    int stall[2];
    for (int i = 0; i < 2; i++)
        cr_assert((stall[i] = stalled_connection(nw.port)) >= 0);
    long deadline = h_now_ms() + 5000;
    while (h_count_text(nw.log, "accepted connection") - accepted0 < 2 && h_now_ms() < deadline)
        h_sleep_ms(20);
    cr_assert_eq(h_count_text(nw.log, "accepted connection") - accepted0, 2,
                 "the two stalled connections were not both accepted:\n%s", h_tail(nw.log));

    /* three more, each with a whole request: they wait, none is dropped */
    enum { WAITING = 3 };
    int wfd[WAITING];
    for (int i = 0; i < WAITING; i++) {
        wfd[i] = raw_connect(nw.port);
        bytes b = { 0 };
        get_request(&b, 1, false);
        cr_assert(send_bytes(wfd[i], &b));
    }
    for (int i = 0; i < WAITING; i++)
        cr_assert(stays_silent(wfd[i], i == 0 ? 1500 : 10),
                  "connection %d beyond --worker-connections 2 got an answer or was closed:\n%s",
                  i, h_tail(nw.log));
    cr_assert_eq(h_count_text(nw.log, "accepted connection") - accepted0, 2,
                 "narwhal accepted more than --worker-connections 2:\n%s", h_tail(nw.log));

    /* once the stalled ones go, every waiting one is served */
    close(stall[0]);
    close(stall[1]);
    for (int i = 0; i < WAITING; i++) {
        reply r = read_reply(wfd[i], 5000);
        close(wfd[i]);
        cr_assert(r.end && strstr(r.out, HELLO),
                  "waiting connection %d: end=%d closed=%d timed_out=%d out=%.200s\n%s", i,
                  r.end, r.closed, r.timed_out, r.out, h_tail(nw.log));
    }
    assert_same_workers(&nw, &before);
}

/* ---- request limits, through nginx ------------------------------------------------- */

/* nginx's own header limits (large_client_header_buffers 4 8k by default)
 * raised well above narwhal's, so narwhal is the one that refuses. */
#define NGINX_BIG_HEADERS "large_client_header_buffers 16 64k;"

typedef struct limits_setup {
    h_narwhal nw;
    h_nginx ng;
    char *access;
    char *called; /* classapp:counted writes here when the app runs */
} limits_setup;

static limits_setup limits_start(h_snippet snippet)
{
    limits_setup L;
    L.access = h_path("access.log");
    L.called = h_path("called.txt");
    L.nw = h_narwhal_serve("-w", "1", "--log-level", "debug", "--access-logfile", L.access,
                           h_classapp("counted"), NULL);
    L.ng = h_nginx_start_http(snippet, h_fmt("127.0.0.1:%d", L.nw.port), NGINX_BIG_HEADERS);
    return L;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    cr_assert(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Refused with status, the app not called, the access log has it. */
static void assert_refused(const limits_setup *L, h_response r, int status, const char *what)
{
    cr_assert_eq(r.status, status, "%s: HTTP %d (%s), expected %d\nbody: %.200s\nnarwhal log:\n%s",
                 what, r.status, r.error ? r.error : "no error", status, r.body ? r.body : "",
                 h_tail(L->nw.log));
    cr_assert_not(h_exists(L->called), "%s: the app was called", what);
    char *needle = h_fmt("\" %d ", status);
    cr_assert(h_wait_for_text(L->access, needle, 3000), "%s: no %d in the access log:\n%s", what,
              status, h_tail(L->access));
    cr_assert(h_wait_for_text(L->nw.log, h_fmt("with %d", status), 3000),
              "%s: no refusal line in the log:\n%s", what, h_tail(L->nw.log));
}

Test(hostile, limit_request_line_414, .timeout = 60)
{
    limits_setup L = limits_start(H_SNIPPET_TCP);
    char *ok_path = h_path("ok-called.txt");
    /* control: a 4000-byte request line goes through */
    char *uri = h_fmt("/l?file=%s&pad=%s", ok_path, repeat('a', 3900));
    h_response r = h_get(L.ng.port, uri);
    assert_status(r, 200, L.nw.log);
    cr_assert(h_exists(ok_path), "the control request did not reach the app");

    uri = h_fmt("/l?file=%s&pad=%s", L.called, repeat('a', 5000));
    r = h_get(L.ng.port, uri);
    assert_refused(&L, r, 414, "a 5000-byte request line");
    /* the error log names it, with at most 1 KiB of the URI */
    char *line = h_find_line(L.nw.log, (const char *const[]){"with 414", NULL});
    cr_assert(line && strstr(line, "refused GET /l?file="), "%s", h_tail(L.nw.log));
    cr_assert_lt(strlen(line), 1200, "a %zu-byte refusal line:\n%.300s", strlen(line), line);
}

Test(hostile, limit_request_fields_431, .timeout = 60)
{
    limits_setup L = limits_start(H_SNIPPET_TCP);
    char *ok_path = h_path("ok-called.txt");
    char *hdrs = h_fmt("%s", "");
    for (int i = 0; i < 90; i++)
        hdrs = h_fmt("%sX-H-%d: v\r\n", hdrs, i);
    h_response r = h_http(L.ng.port, "GET", h_fmt("/f?file=%s", ok_path), hdrs, NULL, 0, 10000);
    assert_status(r, 200, L.nw.log); /* 90 + Host + Connection: 92 fields */
    cr_assert(h_exists(ok_path), "the control request did not reach the app");

    for (int i = 90; i < 101; i++)
        hdrs = h_fmt("%sX-H-%d: v\r\n", hdrs, i);
    r = h_http(L.ng.port, "GET", h_fmt("/f?file=%s", L.called), hdrs, NULL, 0, 10000);
    assert_refused(&L, r, 431, "103 header fields");
}

Test(hostile, limit_request_field_size_431, .timeout = 60)
{
    limits_setup L = limits_start(H_SNIPPET_TCP);
    char *ok_path = h_path("ok-called.txt");
    h_response r = h_http(L.ng.port, "GET", h_fmt("/s?file=%s", ok_path),
                          h_fmt("X-Big: %s\r\n", repeat('b', 8000)), NULL, 0, 10000);
    assert_status(r, 200, L.nw.log);
    cr_assert(h_exists(ok_path), "the control request did not reach the app");

    r = h_http(L.ng.port, "GET", h_fmt("/s?file=%s", L.called),
               h_fmt("X-Big: %s\r\n", repeat('b', 8200)), NULL, 0, 10000);
    assert_refused(&L, r, 431, "an 8200-byte header");
}

Test(hostile, limit_refusal_keeps_fastcgi_connection, .timeout = 60)
{
    /* keep-conn upstream: a refused request ends properly, so the same
     * FastCGI connection carries the next request */
    limits_setup L = limits_start(H_SNIPPET_KEEPALIVE);
    char *ok_path = h_path("ok-called.txt");
    h_response r = h_get(L.ng.port, h_fmt("/k?file=%s", ok_path));
    assert_status(r, 200, L.nw.log);
    int conns = h_count_text(L.nw.log, "accepted connection");

    r = h_get(L.ng.port, h_fmt("/k?file=%s&pad=%s", L.called, repeat('a', 5000)));
    assert_refused(&L, r, 414, "a 5000-byte request line on a kept connection");
    r = h_http(L.ng.port, "GET", h_fmt("/k?file=%s", L.called),
               h_fmt("X-Big: %s\r\n", repeat('b', 8200)), NULL, 0, 10000);
    assert_refused(&L, r, 431, "an 8200-byte header on a kept connection");

    r = h_get(L.ng.port, h_fmt("/k?file=%s", ok_path));
    assert_status(r, 200, L.nw.log);
    cr_assert_str_eq(r.body, "ok\n");
    cr_assert_eq(h_count_text(ok_path, "called"), 2, "the app ran %d times, not 2",
                 h_count_text(ok_path, "called"));
    int more = h_count_text(L.nw.log, "accepted connection") - conns;
    cr_assert_eq(more, 0, "the refusals cost %d new FastCGI connections:\n%s", more,
                 h_tail(L.nw.log));
    cr_assert_eq(h_count_text(L.nw.log, "closing connection"), 0,
                 "narwhal closed a kept connection:\n%s", h_tail(L.nw.log));
}

/* ---- management records ---------------------------------------------------------------- */

Test(hostile, get_values_answers_real_numbers, .timeout = 60)
{
    /* FCGI_GET_VALUES on a connection of its own: the answer gives what the
     * whole server takes (2 threads workers x 4 threads, 2 x 50 connections),
     * FCGI_MPXS_CONNS 0, and leaves out names it does not know. */
    h_narwhal nw = h_narwhal_serve("-w", "2", "-k", "threads", "--threads", "4",
                                   "--worker-connections", "50", h_example("hello.so"), NULL);
    int fd = raw_connect(nw.port);
    bytes q = { 0 }, b = { 0 };
    pair(&q, "FCGI_MAX_CONNS", "");
    pair(&q, "FCGI_MAX_REQS", "");
    pair(&q, "FCGI_MPXS_CONNS", "");
    pair(&q, "NO_SUCH_VALUE", "");
    rec(&b, 9 /* FCGI_GET_VALUES */, 0, q.p, q.len);
    cr_assert(send_bytes(fd, &b));
    uint8_t buf[512];
    size_t have = 0;
    for (long end = h_now_ms() + 5000; h_now_ms() < end && have < 8;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - have, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
        else
            h_sleep_ms(20);
    }
    cr_assert(have >= 8, "no answer to FCGI_GET_VALUES:\n%s", h_tail(nw.log));
    cr_expect_eq(buf[1], 10, "record type %d, not FCGI_GET_VALUES_RESULT", buf[1]);
    size_t clen = (size_t)buf[4] << 8 | buf[5];
    for (long end = h_now_ms() + 5000; h_now_ms() < end && have < 8 + clen;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - have, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
        else
            h_sleep_ms(20);
    }
    close(fd);
    cr_assert(have >= 8 + clen);
    bytes want = { 0 };
    pair(&want, "FCGI_MAX_CONNS", "100");
    pair(&want, "FCGI_MAX_REQS", "8");
    pair(&want, "FCGI_MPXS_CONNS", "0");
    cr_expect(clen == want.len && memcmp(buf + 8, want.p, want.len) == 0,
              "GET_VALUES_RESULT content (%zu bytes) is not the expected %zu bytes", clen,
              want.len);
    free(q.p);
    free(b.p);
    free(want.p);
}

/* ---- the loop's deadlines and back-pressure ----------------------------------------- */

Test(hostile, trickled_request_closed_at_its_deadline, .timeout = 60)
{
    /* A request has one deadline from its first byte (-t): a params byte
     * every second does not extend it, as every read once did. */
    serve_raw(nw, before, "-t", "2", "--keep-alive", "2", h_example("hello.so"));
    int fd = raw_connect(nw.port);
    bytes b = { 0 };
    begin(&b, 1, false);
    uint8_t h[8] = { 1, PARAMS, 0, 1, 0, 100, 0, 0 }; /* 100 bytes announced */
    b_put(&b, h, 8);
    long t0 = h_now_ms(), took = -1;
    cr_assert(send_bytes(fd, &b));
    free(b.p);
    for (int i = 0; i < 8 && took < 0; i++) { /* at most 8 s */
        if (wait_closed(fd, 1000) >= 0 || !send_all(fd, "x", 1))
            took = h_now_ms() - t0;
    }
    close(fd);
    cr_assert(took >= 0, "a request trickled a byte a second is still open 8 s later with -t 2:\n%s",
              h_tail(nw.log));
    cr_assert(took >= 1500 && took <= 3500,
              "a request trickled a byte a second was closed after %ld ms, not about 2 s", took);
    assert_logged(&nw, "request stalled before it arrived in full");
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}

/* A peer that floods BEGIN records of role 2 (each answered
 * FCGI_UNKNOWN_ROLE) and FCGI_GET_VALUES, and reads none of the answers. The answers once went
 * out in a blocking write on the loop thread (a request on another
 * connection waited up to 5 s) and every refusal was a log line: now the
 * worker keeps serving, the log stays small, and the connection is closed
 * once it has been stuck for -t. */
static void unread_answers(const char *wclass)
{
    h_narwhal nw = h_narwhal_serve("-w", "1", "-k", wclass, "-t", "3", h_example("hello.so"),
                                   NULL);
    workers before = ready_workers(&nw, 1);
    assert_serves(&nw, HELLO);

    /* 64 KiB of 32-byte records: role-2 BEGINs, and FCGI_GET_VALUES (answered
     * without a log line) so that the answers pile up fast. */
    bytes flood = { 0 }, q = { 0 };
    const uint8_t role2[8] = { 0, 2 /* authorizer */, 1 /* keep conn */ };
    pair(&q, "FCGI_MAX_CONNS", "");
    cr_assert_eq(q.len, 16);
    for (int i = 0; i < 2048; i++) {
        if (i % 32 == 0)
            rec_v(&flood, 1, BEGIN_REQUEST, 1, role2, 8, 16);
        else
            rec_v(&flood, 1, 9 /* FCGI_GET_VALUES */, 0, q.p, q.len, 8);
    }
    free(q.p);
    /* A small receive window, so that narwhal's answers fill it soon. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)nw.port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    size_t sent = 0;
    for (long end = h_now_ms() + 3000; h_now_ms() < end && sent < (32u << 20);) {
        size_t off = sent % flood.len;
        ssize_t n = send(fd, flood.p + off, flood.len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            if (poll(&pfd, 1, 300) == 0)
                break; /* narwhal reads no more */
        } else if (!(n < 0 && errno == EINTR)) {
            break;
        }
    }
    free(flood.p);

    long t0 = h_now_ms();
    assert_serves(&nw, HELLO);
    long took = h_now_ms() - t0;
    cr_assert(took < 1000,
              "a request waited %ld ms behind a peer that reads no answers (%zu bytes sent)\n%s",
              took, sent, h_tail(nw.log));
    int lines = h_count_text(nw.log, "FCGI_UNKNOWN_ROLE");
    cr_assert(lines <= 40, "%d log lines for %zu refused records", lines, sent / 32 / 32);
    cr_assert(h_wait_for_text(nw.log, "peer does not read what it is sent", 7000),
              "a connection that reads none of its answers is still open 7 s later with -t 3:\n%s",
              h_tail(nw.log));
    close(fd);
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}

Test(hostile, unread_answers_do_not_block_async_worker, .timeout = 60)
{
    unread_answers("async");
}

Test(hostile, unread_answers_do_not_block_threads_worker, .timeout = 60)
{
    unread_answers("threads");
}

/* CPU time (user + system) process pid has used, in ms. */
static long cpu_ms(pid_t pid)
{
    char *stat = h_read_file(h_fmt("/proc/%ld/stat", (long)pid), NULL);
    char *p = stat ? strrchr(stat, ')') : NULL;
    cr_assert(p, "cannot read /proc/%ld/stat", (long)pid);
    unsigned long utime = 0, stime = 0;
    /* after the name: state, then fields 4..13, then utime and stime */
    cr_assert(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) == 2);
    return (long)((utime + stime) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

Test(hostile, out_of_descriptors_backs_off, .timeout = 60)
{
    /* narwhal under 40 descriptors and 60 connections: accept4 fails with
     * EMFILE, and the worker once retried at once, forever (71 % of a CPU
     * and a million log lines in seconds). It pauses accepting instead,
     * logs once a second at most, and serves again once there is room. */
    struct rlimit rl, low;
    cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    low = rl;
    low.rlim_cur = 40;
    cr_assert(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit: %s", strerror(errno));
    h_narwhal nw = h_narwhal_serve("-w", "1", "-k", "async", h_example("hello.so"),
                                   NULL); /* with the limit of 40 */
    cr_assert(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
    workers before = ready_workers(&nw, 1);
    assert_serves(&nw, HELLO);

    enum { CONNS = 60 };
    int fds[CONNS];
    for (int i = 0; i < CONNS; i++) /* the backlog takes what narwhal cannot */
        cr_assert((fds[i] = stalled_connection(nw.port)) >= 0, "connect: %s", strerror(errno));
    cr_assert(h_wait_for_text(nw.log, "Too many open files", 5000),
              "narwhal never ran out of descriptors:\n%s", h_tail(nw.log));
    long cpu0 = cpu_ms(before.pid[0]);
    h_sleep_ms(2000);
    long cpu = cpu_ms(before.pid[0]) - cpu0;
    int lines = h_count_text(nw.log, "Too many open files");
    cr_assert(lines <= 5, "%d \"Too many open files\" lines in about 2 s:\n%.2000s", lines,
              h_tail(nw.log));
    cr_assert(cpu < 400, "out of descriptors, the worker used %ld ms of CPU in 2 s", cpu);

    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    assert_serves(&nw, HELLO);
    assert_same_workers(&nw, &before);
}
