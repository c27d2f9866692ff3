/* Unit tests for src/worker/api.c: the app API's promises in <narwhal.h>
 * that hold without a server around the request: which statuses and
 * header fields are taken, nw_wait_fd on a closed fd (on a thread and
 * inside a coroutine), and nw_log's empty line. */
#include <criterion/criterion.h>
#include <ev.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "coro.h"
#include "narwhal.h"
#include "proto_fastcgi.h"
#include "request.h"
#include "settings.h"
#include "stream.h"
#include "util.h"
#include "wait.h"

static nw_stream st;
static nw_settings s;
static nw_request *req;

static void setup(void)
{
    memset(&s, 0, sizeof s);
    stream_init(&st, -1, 1, 0, &s);
    cr_assert_eq(session_detect(&st.sess, NW_PROTO_FASTCGI, 1), 0);
    nw_buf params = NW_BUF_INIT;
    fcgi_encode_pair(&params, "REQUEST_URI", 11, "/t", 2);
    sess_event ev = {
        .type = SESS_EV_REQUEST, .id = 1, .data = nw_buf_head(&params), .len = params.len};
    const char *err = NULL;
    req = request_new(&st, &s, NULL, &ev, &err);
    cr_assert_not_null(req, "request_new: %s", err ? err : "?");
    nw_buf_free(&params);
}

static void teardown(void)
{
    request_free(req);
    stream_free(&st);
}

TestSuite(api, .init = setup, .fini = teardown);

/* ---- nw_set_status ------------------------------------------------------- */

/* nginx passes whatever status a FastCGI or uwsgi head carries to its
 * client as the final one: 1xx there is a protocol error (curl waited on
 * for a final response after 103), and 600 and above are no HTTP status. */
Test(api, set_status_takes_200_to_599)
{
    static const int refused[] = {-1, 0, 99, 100, 101, 103, 199, 600, 999, 1000};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_expect_eq(nw_set_status(req, refused[i]), -1, "status %d was taken", refused[i]);
        cr_expect_eq(req->status, 200, "status %d changed the status", refused[i]);
    }
    static const int taken[] = {200, 204, 301, 404, 599};
    for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
        cr_expect_eq(nw_set_status(req, taken[i]), 0, "status %d was refused", taken[i]);
        cr_expect_eq(req->status, taken[i]);
    }
}

/* ---- nw_add_header --------------------------------------------------------- */

/* A name is an RFC 9110 token: ALPHA, DIGIT and !#$%&'*+-.^_`|~ */
Test(api, add_header_names_are_tokens)
{
    cr_expect_eq(nw_add_header(req, "X-Token_ok.1", "v"), 0);
    cr_expect_eq(nw_add_header(req, "!#$%&'*+-.^_`|~09azAZ", "v"), 0);
    static const char *const refused[] = {
        "",       "X Y",    "X\tY",   "X:Y",    "X(Y)",   "X<Y>", "X@Y",  "X,Y",
        "X;Y",    "X\\Y",   "X\"Y",   "X/Y",    "X[Y]",   "X?Y",  "X=Y",  "X{Y}",
        "X\x01Y", "X\x1fY", "X\x7fY", "X\x80Y", "X\xffY", "X\rY", "X\nY",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_expect_eq(nw_add_header(req, refused[i], "v"), -1, "name %zu (\"%s\") was taken", i,
                     refused[i]);
    cr_expect_eq(nw_add_header(req, NULL, "v"), -1);
}

/* A value is visible ASCII, obs-text (0x80-0xff), space and tab: no other
 * control byte (a NUL, a bell or a DEL would reach the client as they are,
 * and CR or LF would start a header of the app's choosing). */
Test(api, add_header_values_are_field_content)
{
    cr_expect_eq(nw_add_header(req, "X-A", ""), 0);
    cr_expect_eq(nw_add_header(req, "X-A", "text/plain; charset=utf-8"), 0);
    cr_expect_eq(nw_add_header(req, "X-A", "tab\there, space there"), 0);
    cr_expect_eq(nw_add_header(req, "X-A", "obs-text \x80\xc3\xa9\xff"), 0);
    cr_expect_eq(nw_add_header(req, "X-A", "~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"), 0);
    for (int ch = 1; ch < 0x20; ch++) {
        if (ch == '\t')
            continue;
        char v[4] = {'a', (char)ch, 'b', 0};
        cr_expect_eq(nw_add_header(req, "X-A", v), -1, "a value with 0x%02x was taken", ch);
    }
    cr_expect_eq(nw_add_header(req, "X-A", "a\x7f"), -1, "a value with DEL was taken");
    cr_expect_eq(nw_add_header(req, "X-A", NULL), -1);
    /* what was refused left no trace */
    const char *h = (const char *)nw_buf_head(&req->headers);
    cr_expect_null(memchr(h, 0x7f, req->headers.len));
    cr_expect_null(memchr(h, 0x01, req->headers.len));
}

/* ---- nw_wait_fd on a closed fd ----------------------------------------------- */

static int closed_fd(void)
{
    int fd = dup(0);
    cr_assert_geq(fd, 0);
    close(fd);
    return fd;
}

Test(api, wait_fd_on_a_closed_fd_on_a_thread)
{
    cr_assert_eq(nw_wait_fd(req, closed_fd(), NW_READ, 1000), -1);
}

struct co_wait {
    int fd;
    int result;
    int returned;
};

static void co_waits(void *arg)
{
    struct co_wait *cw = arg;
    cw->result = nw_wait_fd(req, cw->fd, NW_READ | NW_WRITE, 200);
    cw->returned = 1;
}

static void wake_nobody(nw_waiter *w)
{
    (void)w;
    cr_assert_fail("the coroutine was woken: it should never have waited");
}

/* libev takes an fd on trust (its epoll backend asserts on what the kernel
 * refuses): the wait must answer -1 at once, not hand the fd to the loop. */
Test(api, wait_fd_on_a_closed_fd_in_a_coroutine)
{
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    cr_assert_not_null(loop);
    nw_waiter w;
    wait_setup(&w, loop, wake_nobody);
    struct co_wait cw = {.fd = closed_fd(), .result = 0};
    nw_coro *co = coro_new(co_waits, &cw);
    coro_set_data(co, &w);
    int done = coro_resume(co);
    /* a wait that did yield: let the loop show what it makes of the fd */
    for (int i = 0; !done && i < 3; i++)
        ev_run(loop, EVRUN_ONCE);
    cr_assert(cw.returned && done, "nw_wait_fd on a closed fd yielded to the loop");
    cr_assert_eq(cw.result, -1);
    coro_free(co);
    ev_loop_destroy(loop);
}

/* A zero timeout is a check in every class: the coroutine's zero timer used
 * to fire before the loop looked at the fd, so a writable pipe end was "not
 * ready" under async and ready under sync and threads, every time. */
static void co_checks(void *arg)
{
    struct co_wait *cw = arg;
    cw->result = nw_wait_fd(req, cw->fd, NW_WRITE, 0);
    cw->returned = 1;
}

Test(api, wait_fd_zero_timeout_is_a_check_everywhere)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(nw_wait_fd(req, p[1], NW_WRITE, 0), NW_WRITE, "on a thread");
    cr_assert_eq(nw_wait_fd(req, p[0], NW_READ, 0), 0, "nothing to read, on a thread");

    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    cr_assert_not_null(loop);
    nw_waiter w;
    wait_setup(&w, loop, wake_nobody);
    struct co_wait cw = {.fd = p[1]};
    nw_coro *co = coro_new(co_checks, &cw);
    coro_set_data(co, &w);
    int done = coro_resume(co);
    cr_assert(done && cw.returned, "a zero-timeout check yielded to the loop");
    cr_assert_eq(cw.result, NW_WRITE, "in a coroutine: %d", cw.result);
    coro_free(co);
    ev_loop_destroy(loop);
    close(p[0]);
    close(p[1]);
}

/* nw_sleep without a request (a hook's) in a coroutine yields to the loop
 * like one with a request: usleep held up every request of the worker. */
static void co_sleeps(void *arg)
{
    struct co_wait *cw = arg;
    cw->result = nw_sleep(NULL, 50);
    cw->returned = 1;
}

static nw_coro *sleeper;

static void wake_sleeper(nw_waiter *w)
{
    (void)w;
    coro_resume(sleeper);
}

Test(api, sleep_without_a_request_yields_in_a_coroutine)
{
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    cr_assert_not_null(loop);
    nw_waiter w;
    wait_setup(&w, loop, wake_sleeper);
    struct co_wait cw = {.result = -2};
    sleeper = coro_new(co_sleeps, &cw);
    coro_set_data(sleeper, &w);
    int64_t t0 = nw_now_ms();
    cr_assert_eq(coro_resume(sleeper), 0, "nw_sleep(NULL) did not yield to the loop");
    cr_assert_not(cw.returned);
    for (int i = 0; !cw.returned && i < 10; i++)
        ev_run(loop, EVRUN_ONCE);
    cr_assert(cw.returned, "the loop never woke the sleeper");
    cr_assert_eq(cw.result, 0);
    cr_assert_geq(nw_now_ms() - t0, 50);
    coro_free(sleeper);
    ev_loop_destroy(loop);
}

/* ---- nw_log ------------------------------------------------------------------ */

/* An empty STDERR record ends the stream (FastCGI 3.3): an empty warning
 * queues nothing for the front end; a non-empty one is queued, escaped, and
 * waits for the response head (ahead of it, nginx holds it with the header
 * it is waiting for). */
Test(api, log_empty_warning_sends_no_stderr_record)
{
    nw_log(req, NW_LOG_WARNING, "%s", "");
    cr_assert_eq(req->err.len, 0, "an empty warning queued %zu bytes", req->err.len);
    nw_log(req, NW_LOG_WARNING, "x\ny");
    cr_assert_eq(st.out.len, 0, "a warning went out ahead of the response head");
    cr_assert_eq(req->err.len, 6);
    cr_assert_arr_eq(nw_buf_head(&req->err), "x\\x0ay", 6, "not escaped");
}

/* What waits for the front end is bounded; the rest is counted. */
Test(api, log_queue_is_bounded)
{
    for (int i = 0; i < 100; i++)
        nw_log(req, NW_LOG_WARNING,
               "warning %02d, eighty bytes or so of text that a handler logs "
               "before it answers",
               i);
    cr_assert_leq(req->err.len, REQUEST_ERR_QUEUE);
    cr_assert_gt(req->err_dropped, 80, "only %u dropped", req->err_dropped);
    cr_assert_eq(st.out.len, 0);
}
