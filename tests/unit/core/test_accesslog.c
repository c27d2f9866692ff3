#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "narwhal.h"

/* ---- a fake request ------------------------------------------------------------ */

typedef struct kv {
    const char *name, *value;
} kv;

typedef struct fake {
    const kv *params;  /* terminated by {NULL, NULL} */
    const kv *headers; /* response headers, same */
} fake;

static const char *fake_param(void *ctx, const char *name)
{
    for (const kv *p = ((fake *)ctx)->params; p && p->name; p++)
        if (!strcmp(p->name, name))
            return p->value;
    return NULL;
}

static const char *fake_header(void *ctx, const char *name)
{
    for (const kv *p = ((fake *)ctx)->headers; p && p->name; p++)
        if (!strcasecmp(p->name, name))
            return p->value;
    return NULL;
}

static const kv sample_params[] = {
    {"REMOTE_ADDR", "192.0.2.7"},
    {"REQUEST_METHOD", "GET"},
    {"REQUEST_URI", "/shop/item?id=42&x=1"},
    {"SCRIPT_NAME", "/shop"},
    {"PATH_INFO", "/item"},
    {"QUERY_STRING", "id=42&x=1"},
    {"SERVER_PROTOCOL", "HTTP/1.1"},
    {"HTTP_REFERER", "https://example.com/"},
    {"HTTP_USER_AGENT", "curl/8.5.0"},
    {"HTTP_X_REQUEST_ID", "abc-123"},
    {"CONTENT_TYPE", "text/plain"},
    {NULL, NULL},
};

static const kv sample_headers[] = {
    {"Content-Type", "text/html"},
    {"X-Cache", "HIT"},
    {NULL, NULL},
};

static fake sample = {sample_params, sample_headers};

/* 2026-11-27 10:01:02 UTC */
static const time_t sample_time = 1795773662;

static access_entry sample_entry(fake *f)
{
    access_entry e = {
        .param = fake_param,
        .resp_header = fake_header,
        .ctx = f,
        .status = 200,
        .body_bytes = 1234,
        .start = {sample_time, 500000000},
        .duration_us = 2012345,
        .pid = 4242,
    };
    return e;
}

static void utc(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
}

/* Compiles fmt, renders e, returns the line (caller frees). */
static char *render(const char *fmt, const access_entry *e)
{
    char err[256];
    access_format *f = access_format_compile(fmt, err, sizeof err);
    cr_assert_not_null(f, "compile '%s': %s", fmt, err);
    nw_buf b = NW_BUF_INIT;
    access_format_render(f, e, &b);
    access_format_free(f);
    nw_buf_appendc(&b, '\0');
    char *s = nw_xstrdup((char *)nw_buf_head(&b));
    nw_buf_free(&b);
    return s;
}

static void expect(const char *fmt, const access_entry *e, const char *want)
{
    char *got = render(fmt, e);
    cr_assert_str_eq(got, want, "format '%s'", fmt);
    free(got);
}

/* Compiles fmt expecting failure with exactly msg. */
static void expect_error(const char *fmt, const char *msg)
{
    char err[256] = "untouched";
    access_format *f = access_format_compile(fmt, err, sizeof err);
    cr_assert_null(f, "'%s' should not compile", fmt);
    cr_assert_str_eq(err, msg, "format '%s'", fmt);
}

/* ---- the access log format ------------------------------------------------------- */

TestSuite(accesslog, .init = utc);

Test(accesslog, sample_time_is_right)
{
    struct tm tm;
    gmtime_r(&sample_time, &tm);
    cr_assert_eq(tm.tm_year + 1900, 2026);
    cr_assert_eq(tm.tm_mon, 10);
    cr_assert_eq(tm.tm_mday, 27);
    cr_assert_eq(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec, 10 * 3600 + 62);
}

Test(accesslog, default_format)
{
    access_entry e = sample_entry(&sample);
    expect(NW_ACCESS_LOG_FORMAT, &e,
           "192.0.2.7 - - [27/Nov/2026:10:01:02 +0000] \"GET /shop/item?id=42&x=1 HTTP/1.1\" "
           "200 1234 \"https://example.com/\" \"curl/8.5.0\"\n");
}

Test(accesslog, every_atom)
{
    access_entry e = sample_entry(&sample);
    expect("%(h)s|%(l)s|%(u)s|%(t)s|%(r)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s", &e,
           "192.0.2.7|-|-|[27/Nov/2026:10:01:02 +0000]|GET /shop/item?id=42&x=1 HTTP/1.1|GET|"
           "/shop/item|id=42&x=1|HTTP/1.1|200|1234|1234\n");
    expect("%(f)s|%(a)s|%(T)s|%(M)s|%(D)s|%(L)s|%(p)s", &e,
           "https://example.com/|curl/8.5.0|2|2012|2012345|2.012345|<4242>\n");
}

Test(accesslog, remote_user)
{
    static const kv params[] = {{"REMOTE_USER", "alice"}, {NULL, NULL}};
    static const kv empty[] = {{"REMOTE_USER", ""}, {NULL, NULL}};
    fake f = {params, NULL}, g = {empty, NULL};
    access_entry e = sample_entry(&f);
    expect("%(u)s", &e, "alice\n");
    e.ctx = &g;
    expect("%(u)s", &e, "-\n"); /* nginx sends it empty without auth */
}

Test(accesslog, zero_body_and_durations)
{
    access_entry e = sample_entry(&sample);
    e.body_bytes = 0;
    e.duration_us = 12345;
    e.status = 304;
    expect("%(s)s %(B)s %(b)s %(T)s %(M)s %(D)s %(L)s", &e, "304 0 - 0 12 12345 0.012345\n");
}

Test(accesslog, url_path_fallbacks)
{
    static const kv cgi[] = {{"SCRIPT_NAME", "/app"}, {"PATH_INFO", "/x/y"}, {NULL, NULL}};
    static const kv info[] = {{"PATH_INFO", "/only"}, {NULL, NULL}};
    static const kv doc[] = {{"DOCUMENT_URI", "/doc.php"}, {NULL, NULL}};
    static const kv noq[] = {{"REQUEST_URI", "/plain"}, {NULL, NULL}};
    fake a = {cgi, NULL}, b = {info, NULL}, c = {doc, NULL}, d = {noq, NULL};
    access_entry e = sample_entry(&a);
    expect("%(U)s", &e, "/app/x/y\n");
    e.ctx = &b;
    expect("%(U)s", &e, "/only\n");
    e.ctx = &c;
    expect("%(U)s", &e, "/doc.php\n");
    e.ctx = &d;
    expect("%(U)s", &e, "/plain\n");
}

Test(accesslog, request_headers)
{
    access_entry e = sample_entry(&sample);
    expect("%({X-Request-Id}i)s %({x-request-id}i)s %({User-Agent}i)s", &e,
           "abc-123 abc-123 curl/8.5.0\n");
    /* CGI passes Content-Type and Content-Length without HTTP_. */
    expect("%({Content-Type}i)s %({Content-Length}i)s", &e, "text/plain -\n");
    expect("%({X-Missing}i)s", &e, "-\n");
}

Test(accesslog, response_headers)
{
    access_entry e = sample_entry(&sample);
    expect("%({content-type}o)s %({X-CACHE}o)s %({X-Missing}o)s", &e, "text/html HIT -\n");
    e.resp_header = NULL;
    expect("%({X-Cache}o)s", &e, "-\n");
}

Test(accesslog, environment)
{
    setenv("NW_TEST_ACCESS_ENV", "blue", 1);
    unsetenv("NW_TEST_ACCESS_UNSET");
    access_entry e = sample_entry(&sample);
    expect("%({NW_TEST_ACCESS_ENV}e)s %({NW_TEST_ACCESS_UNSET}e)s", &e, "blue -\n");
}

Test(accesslog, absent_values_are_dashes)
{
    access_entry e = {.status = 500, .start = {sample_time, 0}};
    expect(NW_ACCESS_LOG_FORMAT, &e,
           "- - - [27/Nov/2026:10:01:02 +0000] \"- - -\" 500 - \"-\" \"-\"\n");
    expect("%(m)s %(U)s %(q)s %(H)s %({A}i)s %({A}o)s", &e, "- - - - - -\n");
}

Test(accesslog, escaping)
{
    static const kv params[] = {
        {"HTTP_USER_AGENT", "evil\"agent\\ \n1.2.3.4 - - [forged] \"GET / HTTP/1.1\" 200"},
        {"HTTP_REFERER", "a\tb\rc\x01\x1f\x7f"},
        {"REQUEST_URI", "/caf\xc3\xa9"},
        {NULL, NULL},
    };
    fake f = {params, NULL};
    access_entry e = sample_entry(&f);
    expect("\"%(a)s\"", &e,
           "\"evil\\\"agent\\\\ \\x0a1.2.3.4 - - [forged] \\\"GET / HTTP/1.1\\\" 200\"\n");
    expect("%(f)s", &e, "a\\x09b\\x0dc\\x01\\x1f\\x7f\n");
    expect("%(U)s", &e, "/caf\xc3\xa9\n"); /* UTF-8 passes through */
}

Test(accesslog, literals_and_percent)
{
    access_entry e = sample_entry(&sample);
    expect("100%% %(s)s%%", &e, "100% 200%\n");
    expect("%%(h)s", &e, "%(h)s\n");
    expect("plain text", &e, "plain text\n");
    expect("", &e, "\n");
    expect("%(s)s%(s)s", &e, "200200\n");
}

Test(accesslog, other_time_zone)
{
    setenv("TZ", "IST-05:30", 1);
    tzset();
    access_entry e = sample_entry(&sample);
    expect("%(t)s", &e, "[27/Nov/2026:15:31:02 +0530]\n");
    setenv("TZ", "XST+03:30", 1);
    tzset();
    expect("%(t)s", &e, "[27/Nov/2026:06:31:02 -0330]\n");
}

Test(accesslog, compile_errors)
{
    expect_error("%(z)s", "unknown atom '%(z)s'");
    expect_error("%(hh)s", "unknown atom '%(hh)s'");
    expect_error("%()s", "unknown atom '%()s'");
    expect_error("%({X-Foo}z)s", "unknown atom '%({X-Foo}z)s'");
    expect_error("%({}i)s", "empty name in atom '%({}i)s'");
    expect_error("%(h)s %(h", "unterminated atom '%(h' at offset 6: missing ')s'");
    expect_error("%(h)d", "atom '%(h)' at offset 0 must end in ')s'");
    expect_error("x %(h)", "atom '%(h)' at offset 2 must end in ')s'");
    expect_error("%h", "invalid '%h' at offset 0: atoms are written %(name)s, a literal % as %%");
    expect_error("100%", "stray '%' at the end: write a literal % as %%");
}

Test(accesslog, compile_error_buffers)
{
    /* A NULL or tiny buffer must not be overrun. */
    cr_assert_null(access_format_compile("%(z)s", NULL, 0));
    char small[8];
    cr_assert_null(access_format_compile("%(zzzzzzzzzzzzzzzzzzzz)s", small, sizeof small));
    cr_assert_str_eq(small, "unknown");
}

/* ---- files ---------------------------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void)
{
    utc();
    strcpy(tmpdir, "/tmp/nw-test-log-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static char *path_in_tmp(const char *name)
{
    char *p = nw_xmalloc(strlen(tmpdir) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmpdir, name);
    return p;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "open %s", path);
    nw_buf b = NW_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        nw_buf_append(&b, chunk, n);
    fclose(fp);
    nw_buf_appendc(&b, '\0');
    char *s = nw_xmalloc(b.len);
    memcpy(s, nw_buf_head(&b), b.len);
    nw_buf_free(&b);
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Checks line (without its newline) against the error log layout. */
static void expect_log_line(const char *line, size_t len, const char *level, const char *msg)
{
    char want[512];
    snprintf(want, sizeof want,
             "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} \\+0000\\] \\[%ld\\] "
             "\\[%s\\] %s$",
             (long)getpid(), level, msg);
    regex_t re;
    cr_assert_eq(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
    char *copy = nw_xmalloc(len + 1);
    memcpy(copy, line, len);
    copy[len] = '\0';
    cr_expect_eq(regexec(&re, copy, 0, NULL, 0), 0, "line '%s' does not match '%s'", copy, want);
    free(copy);
    regfree(&re);
}

TestSuite(errorlog, .init = make_tmpdir, .fini = remove_tmpdir);

Test(errorlog, line_format_and_levels)
{
    char *path = path_in_tmp("error.log");
    cr_assert_eq(log_open(path, NULL), 0);
    cr_assert_neq(log_error_fd(), 2);
    cr_assert_eq(log_level(), NW_LOG_INFO);
    log_set_level(NW_LOG_WARNING);
    cr_assert_eq(log_level(), NW_LOG_WARNING);
    log_debug("debug %d", 1);
    log_info("info %d", 2);
    log_warning("warning %d", 3);
    log_error("error %s", "four");
    log_critical("critical %d", 5);
    log_msg(NW_LOG_ERROR, "via log_msg");

    char *s = slurp(path);
    cr_assert_eq(count_lines(s), 4, "got:\n%s", s);
    cr_assert_null(strstr(s, "debug"));
    cr_assert_null(strstr(s, "info"));
    const char *want[][2] = {{"WARNING", "warning 3"},
                             {"ERROR", "error four"},
                             {"CRITICAL", "critical 5"},
                             {"ERROR", "via log_msg"}};
    const char *line = s;
    for (int i = 0; i < 4; i++) {
        const char *nl = strchr(line, '\n');
        expect_log_line(line, (size_t)(nl - line), want[i][0], want[i][1]);
        line = nl + 1;
    }
    free(s);

    log_set_level(NW_LOG_DEBUG);
    log_debug("now debug shows");
    s = slurp(path);
    cr_assert_not_null(strstr(s, "[DEBUG] now debug shows\n"));
    free(s);
    free(path);
}

Test(errorlog, other_time_zone)
{
    setenv("TZ", "IST-05:30", 1);
    tzset();
    char *path = path_in_tmp("error.log");
    cr_assert_eq(log_open(path, NULL), 0);
    log_info("hello");
    char *s = slurp(path);
    cr_assert_not_null(strstr(s, " +0530] ["), "got %s", s);
    free(s);
    free(path);
}

Test(errorlog, newlines_cannot_forge_lines)
{
    char *path = path_in_tmp("error.log");
    cr_assert_eq(log_open(path, NULL), 0);
    log_error("one\n[2026-01-01 00:00:00 +0000] [1] [CRITICAL] forged\r\nend");
    log_info("trailing newline is dropped\n");
    char *s = slurp(path);
    cr_assert_eq(count_lines(s), 2, "got:\n%s", s);
    const char *nl = strchr(s, '\n');
    expect_log_line(s, (size_t)(nl - s), "ERROR",
                    "one \\[2026-01-01 00:00:00 \\+0000\\] \\[1\\] \\[CRITICAL\\] forged  end");
    const char *l2 = nl + 1;
    expect_log_line(l2, strlen(l2) - 1, "INFO", "trailing newline is dropped");
    free(s);
    free(path);
}

Test(errorlog, long_lines)
{
    char *path = path_in_tmp("error.log");
    cr_assert_eq(log_open(path, NULL), 0);
    /* Longer than the stack buffer, shorter than the cap: kept whole. */
    size_t mid = 5000;
    char *a = nw_xmalloc(mid + 1);
    memset(a, 'a', mid);
    a[mid] = '\0';
    log_info("<%s>", a);
    /* Longer than the cap: cut, marked, still one line. */
    size_t big = 200 * 1024;
    char *b = nw_xmalloc(big + 1);
    memset(b, 'b', big);
    b[big] = '\0';
    log_info("%s", b);

    char *s = slurp(path);
    cr_assert_eq(count_lines(s), 2);
    char *l1 = strchr(s, '<');
    cr_assert_not_null(l1);
    cr_assert_eq(strspn(l1 + 1, "a"), mid);
    cr_assert_eq(strncmp(l1 + 1 + mid, ">\n", 2), 0);
    char *l2 = strchr(l1, '\n') + 1;
    size_t len2 = strlen(l2);
    cr_assert(len2 > 64 * 1024 - 10 && len2 < 64 * 1024 + 100, "len %zu", len2);
    cr_assert_str_eq(l2 + len2 - 4, "...\n");
    free(s);
    free(a);
    free(b);
    free(path);
}

Test(errorlog, errno_is_preserved_and_m_works)
{
    char *path = path_in_tmp("error.log");
    cr_assert_eq(log_open(path, NULL), 0);
    errno = ENOENT;
    log_error("cannot frob: %m");
    cr_assert_eq(errno, ENOENT);
    char *s = slurp(path);
    cr_assert_not_null(strstr(s, "cannot frob: No such file or directory\n"), "got %s", s);
    free(s);
    free(path);
}

Test(errorlog, reopen_after_rename)
{
    char *path = path_in_tmp("error.log");
    char *rotated = path_in_tmp("error.log.1");
    cr_assert_eq(log_open(path, NULL), 0);
    int fd = log_error_fd();
    log_info("before rotation");
    cr_assert_eq(rename(path, rotated), 0);
    log_info("still the old file");
    cr_assert_eq(log_open(path, NULL), 0);
    cr_assert_eq(log_error_fd(), fd, "the fd number stays the same");
    cr_assert_neq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    log_info("after rotation");

    char *old = slurp(rotated), *cur = slurp(path);
    cr_assert_eq(count_lines(old), 2);
    cr_assert_not_null(strstr(old, "before rotation"));
    cr_assert_not_null(strstr(old, "still the old file"));
    cr_assert_eq(count_lines(cur), 1);
    cr_assert_not_null(strstr(cur, "after rotation"));
    free(old);
    free(cur);
    free(path);
    free(rotated);
}

Test(errorlog, open_failure_keeps_previous)
{
    char *path = path_in_tmp("error.log");
    char *bad = path_in_tmp("missing/dir/error.log");
    cr_assert_eq(log_open(path, NULL), 0);
    cr_redirect_stderr();
    cr_assert_eq(log_open(bad, NULL), -1);
    cr_assert_eq(log_open(path, bad), -1);
    log_info("still here");
    fflush(stderr);
    char want[512];
    snprintf(want, sizeof want,
             "narwhal: cannot open error log %s: No such file or directory\n"
             "narwhal: cannot open access log %s: No such file or directory\n",
             bad, bad);
    cr_assert_stderr_eq_str(want);
    char *s = slurp(path);
    cr_assert_not_null(strstr(s, "still here"));
    free(s);
    free(path);
    free(bad);
}

Test(errorlog, stderr_before_open)
{
    cr_redirect_stderr();
    log_warning("early");
    fflush(stderr);
    char buf[256] = "";
    FILE *fp = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "] [WARNING] early\n"), "got '%s'", buf);
    cr_assert_eq(log_error_fd(), 2);
    cr_assert_not(log_access_enabled());
}

Test(errorlog, reopen_back_to_stderr)
{
    char *path = path_in_tmp("error.log");
    cr_assert_eq(log_open(path, NULL), 0);
    int fd = log_error_fd();
    cr_redirect_stderr();
    cr_assert_eq(log_open("-", NULL), 0);
    cr_assert_eq(log_error_fd(), fd, "the fd number stays the same");
    log_info("to stderr");
    fflush(stderr);
    char buf[256] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, cr_get_redirected_stderr());
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "] [INFO] to stderr\n"), "got '%s'", buf);
    char *s = slurp(path);
    cr_assert_str_eq(s, "");
    free(s);
    free(path);
}

#define THREADS 8
#define PER_THREAD 500

static void *spam(void *arg)
{
    char pad[300];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < PER_THREAD; i++)
        log_info("thread %ld line %d %s", (long)(intptr_t)arg, i, pad);
    return NULL;
}

Test(errorlog, threads_do_not_tear_lines)
{
    char *path = path_in_tmp("error.log");
    cr_assert_eq(log_open(path, NULL), 0);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, spam, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *s = slurp(path);
    cr_assert_eq(count_lines(s), THREADS * PER_THREAD);
    for (char *line = s; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(strstr(line, "] [INFO] thread "));
        cr_assert_eq(nl - line > 300, 1);
        cr_assert_eq(nl[-1], 'x');
        line = nl + 1;
    }
    free(s);
    free(path);
}

/* ---- the access log file ---------------------------------------------------------- */

Test(errorlog, access_log_file)
{
    char *epath = path_in_tmp("error.log");
    char *apath = path_in_tmp("access.log");
    cr_assert_eq(log_open(epath, apath), 0);
    cr_assert(log_access_enabled());
    access_entry e = sample_entry(&sample);
    log_access(&e); /* no format set: gunicorn's default */
    char err[128];
    access_format *f = access_format_compile("%(m)s %(U)s %(s)s", err, sizeof err);
    cr_assert_not_null(f);
    log_set_access_format(f);
    log_access(&e);

    char *s = slurp(apath);
    cr_assert_str_eq(s, "192.0.2.7 - - [27/Nov/2026:10:01:02 +0000] \"GET /shop/item?id=42&x=1 "
                        "HTTP/1.1\" 200 1234 \"https://example.com/\" \"curl/8.5.0\"\n"
                        "GET /shop/item 200\n");
    free(s);

    /* Rotate the access log too; then turn it off. */
    char *rotated = path_in_tmp("access.log.1");
    cr_assert_eq(rename(apath, rotated), 0);
    cr_assert_eq(log_open(epath, apath), 0);
    e.status = 404;
    log_access(&e);
    s = slurp(apath);
    cr_assert_str_eq(s, "GET /shop/item 404\n");
    free(s);
    cr_assert_eq(log_open(epath, NULL), 0);
    cr_assert_not(log_access_enabled());
    log_access(&e);
    s = slurp(apath);
    cr_assert_eq(count_lines(s), 1);
    free(s);
    log_set_access_format(NULL);
    free(epath);
    free(apath);
    free(rotated);
}
