/*
 * test_cgi.c - CGI programs (--cgi, --cgi-root) behind a real nginx: shell
 * scripts for the environment, stdin, stdout, stderr, Status and Location;
 * the SCRIPT_FILENAME checks (symlinks, traversal, NUL, modes); scripts that
 * print garbage, sleep past the timeout with a child of their own, or get
 * killed; a graceful stop; and Debian's git-http-backend serving a real
 * `git clone`, `git push` and `git fetch` of a pack of several MB.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(cgi, .init = h_setup, .fini = h_teardown, .timeout = 90);

/* ---- scripts and servers ------------------------------------------------------ */

static const char *root_dir(void)
{
    static char *root;
    if (!root) {
        root = h_path("root");
        mkdir(root, 0755);
    }
    return root;
}

/* A script in the CGI root (mode 0755 unless told). */
static char *script(const char *name, const char *text, mode_t mode)
{
    char *p = h_fmt("%s/%s", root_dir(), name);
    h_write_file(p, text);
    cr_assert(chmod(p, mode) == 0, "chmod %s: %s", p, strerror(errno));
    return p;
}

/* nginx as fcgiwrap's users set it up, through the shipped snippet
 * (nginx/narwhal-cgi.conf, its address replaced): SCRIPT_FILENAME from the
 * root and the URI, everything under / to narwhal; /target answered by
 * nginx (the local redirect's goal). */
static h_nginx cgi_nginx(int port)
{
    char *src = h_fmt("%s/nginx/narwhal-cgi.conf", h_env("NARWHAL_SRCDIR"));
    char *text = h_read_file(src, NULL);
    cr_assert(text, "cannot read %s", src);
    char *snippet = h_path("narwhal-cgi.conf"), *out = h_fmt("%s", ""), *at;
    int n = 0;
    while ((at = strstr(text, "127.0.0.1:5000"))) { /* the comment names it too */
        *at = 0;
        out = h_fmt("%s%s127.0.0.1:%d", out, text, port);
        text = at + 14;
        n++;
    }
    cr_assert(n > 0, "%s names no 127.0.0.1:5000", src);
    h_write_file(snippet, h_fmt("%s%s", out, text));
    return h_nginx_start_server(
        h_fmt("        client_max_body_size 0;\n"
              "        location = /target { return 200 \"nginx target\\n\"; }\n"
              "        location / {\n"
              "            root %s;\n"
              "            include %s;\n"
              "        }\n",
              root_dir(), snippet));
}

#define serve_cgi(nw, ng, ...)                                                                     \
    h_narwhal nw = h_narwhal_serve("--cgi-root", root_dir(), __VA_ARGS__, NULL);                   \
    h_nginx ng = cgi_nginx(nw.port)

static const char ENV_SH[] = "#!/bin/sh\n"
                             "echo 'Content-Type: text/plain'\n"
                             "echo 'X-Script: env'\n"
                             "echo\n"
                             "echo \"method=$REQUEST_METHOD\"\n"
                             "echo \"query=$QUERY_STRING\"\n"
                             "echo \"gateway=$GATEWAY_INTERFACE\"\n"
                             "echo \"script=$SCRIPT_NAME\"\n"
                             "echo \"foo=$HTTP_X_FOO\"\n"
                             "echo \"proxy=${HTTP_PROXY-unset}\"\n"
                             "echo \"raw=$RAW_ONE\"\n"
                             "echo \"pwd=$(pwd)\"\n"
                             "echo \"length=$CONTENT_LENGTH\"\n"
                             "echo 'a line for the error log' >&2\n"
                             "printf 'body='; cat\n";

/* ---- the environment, stdin, stdout, stderr, in every class -------------------- */

ParameterizedTestParameters(cgi, env_stdin_stdout_stderr)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, cgi, env_stdin_stdout_stderr, .timeout = 60)
{
    script("env.sh", ENV_SH, 0755);
    serve_cgi(nw, ng, H_CLASS_ARGS(wc), "-e", "RAW_ONE=from-raw-env");
    const char body[] = "the request body";
    h_response r = h_http(ng.port, "POST", "/env.sh?a=1&b=2", "X-Foo: bar\r\nProxy: evil\r\n", body,
                          sizeof body - 1, 10000);
    assert_status(r, 200, nw.log);
    const char *want[] = {"method=POST\n",      "query=a=1&b=2\n", "gateway=CGI/1.1\n",
                          "script=/env.sh\n",   "foo=bar\n",       "proxy=unset\n",
                          "raw=from-raw-env\n", "length=16\n",     "body=the request body"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert(strstr(r.body, want[i]), "-k %s: no \"%s\" in:\n%s", wc->name, want[i], r.body);
    cr_assert(strstr(r.body, h_fmt("pwd=%s\n", root_dir())), "runs in its directory:\n%s", r.body);
    char *x = h_header(&r, "X-Script");
    cr_assert(x && strcmp(x, "env") == 0, "X-Script: %s\n%s", x ? x : "(none)", r.head);
    cr_assert(h_wait_for_text(nw.log, "env.sh: a line for the error log", 5000),
              "stderr not in the error log:\n%s", h_tail(nw.log));

    /* a body larger than a pipe holds, streamed in and back out */
    size_t big = 3 * 1024 * 1024;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);
    r = h_http(ng.port, "POST", "/env.sh", NULL, data, big, 30000);
    assert_status(r, 200, nw.log);
    char *b = strstr(r.body, "body=");
    cr_assert(b && r.body_len - (size_t)(b + 5 - r.body) == big && memcmp(b + 5, data, big) == 0,
              "-k %s: the 3 MiB body did not come back whole (%zu bytes of response)", wc->name,
              r.body_len);
    free(data);
}

/* ---- Status, Location, bad responses ------------------------------------------------ */

Test(cgi, status_and_location)
{
    script("status.sh",
           "#!/bin/sh\nprintf 'Status: 418 Teapot\\r\\nContent-Type: text/plain\\r\\n"
           "\\r\\nshort and stout\\n'\n",
           0755);
    script("away.sh", "#!/bin/sh\nprintf 'Location: http://example.com/elsewhere\\n\\n'\n", 0755);
    script("local.sh", "#!/bin/sh\nprintf 'Location: /target\\n\\nnot this body\\n'\n", 0755);
    script("seeother.sh", "#!/bin/sh\nprintf 'Status: 303 See Other\\nLocation: /target\\n\\n'\n",
           0755);
    serve_cgi(nw, ng, "-w", "1");

    h_response r = h_get(ng.port, "/status.sh");
    assert_status(r, 418, nw.log);
    assert_body(r, "short and stout\n");

    r = h_get(ng.port, "/away.sh");
    assert_status(r, 302, nw.log);
    char *loc = h_header(&r, "Location");
    cr_assert(loc && strcmp(loc, "http://example.com/elsewhere") == 0, "Location: %s",
              loc ? loc : "(none)");

    /* a local redirect is answered as for its path (nginx's, here) */
    r = h_get(ng.port, "/local.sh");
    assert_status(r, 200, nw.log);
    assert_body(r, "nginx target\n");

    /* with a Status, a Location is the client's */
    r = h_get(ng.port, "/seeother.sh");
    assert_status(r, 303, nw.log);
    loc = h_header(&r, "Location");
    cr_assert(loc && strstr(loc, "/target"), "Location: %s", loc ? loc : "(none)");
}

Test(cgi, bad_responses_502)
{
    script("garbage.sh", "#!/bin/sh\nprintf 'this is no header\\n\\nbody\\n'\n", 0755);
    script("nohead.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\n", 0755);
    script("silent.sh", "#!/bin/sh\nexit 3\n", 0755);
    script("badstatus.sh", "#!/bin/sh\nprintf 'Status: 99 Nope\\n\\n'\n", 0755);
    /* header fields that never end: cut at CGI_HEADER_MAX, not held */
    script("endless.sh",
           "#!/bin/sh\nwhile :; do echo 'X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'; "
           "done\n",
           0755);
    script("noshebang.sh", "echo hi\n", 0755);
    serve_cgi(nw, ng, "-w", "1", "-t", "20");

    const char *const cases[][2] = {
        {"/garbage.sh", "a header line without a colon"},
        {"/nohead.sh", "its output ended inside its header block"},
        {"/silent.sh", "it printed no header block"},
        {"/badstatus.sh", "a bad Status"},
        {"/endless.sh", "no end of its header block in 65536 bytes"},
        {"/noshebang.sh", "cannot run"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        h_response r = h_get(ng.port, cases[i][0]);
        assert_status(r, 502, nw.log);
        const char *const line[] = {"[ERROR] cgi:", cases[i][1], cases[i][0] + 1, NULL};
        cr_assert(h_wait_line(nw.log, line, 5000), "no log line \"%s\" for %s:\n%s", cases[i][1],
                  cases[i][0], h_tail(nw.log));
    }
    /* the worker that saw all that still serves */
    script("ok.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n", 0755);
    h_response r = h_get(ng.port, "/ok.sh");
    assert_status(r, 200, nw.log);
    assert_body(r, "ok\n");
}

/* stderr: a line at a time, each cut at CGI_STDERR_LINE bytes, at most
 * CGI_STDERR_LINES a request and the rest counted. */
Test(cgi, stderr_bounded)
{
    script("noisy.sh",
           "#!/bin/sh\nhead -c 5000 /dev/zero | tr '\\0' x >&2; echo >&2\n"
           "i=0; while [ $i -lt 300 ]; do echo \"noise $i\" >&2; i=$((i+1)); done\n"
           "printf 'Content-Type: text/plain\\n\\nquiet\\n'\n",
           0755);
    serve_cgi(nw, ng, "-w", "1");
    h_response r = h_get(ng.port, "/noisy.sh");
    assert_status(r, 200, nw.log);
    assert_body(r, "quiet\n");
    cr_assert(h_wait_for_text(nw.log, "101 more stderr lines not logged", 5000), "%s",
              h_tail(nw.log));
    char *log = h_read_file(nw.log, NULL);
    cr_assert_eq(h_count_in(log, "noisy.sh: noise "), 199, "lines logged: %d",
                 h_count_in(log, "noisy.sh: noise "));
    const char *const cut[] = {"noisy.sh: xxxxxxxx", "[cut]", NULL};
    char *line = h_find_line(nw.log, cut);
    cr_assert(line && strlen(line) < 2048 + 200, "the long line: %.200s", line ? line : "(none)");
}

/* --cgi PROGRAM over the uwsgi protocol: the one program for every path. */
Test(cgi, fixed_program_over_uwsgi)
{
    char *prog = script("env.sh", ENV_SH, 0755);
    h_narwhal nw = h_narwhal_serve("--cgi", prog, "-w", "1", NULL);
    h_nginx ng = h_nginx_start(H_SNIPPET_UWSGI, h_fmt("127.0.0.1:%d", nw.port));
    h_response r = h_http(ng.port, "PUT", "/any/path?q=uwsgi", NULL, "up", 2, 10000);
    assert_status(r, 200, nw.log);
    cr_assert(strstr(r.body, "method=PUT\n") && strstr(r.body, "query=q=uwsgi\n") &&
                  strstr(r.body, "body=up"),
              "%s", r.body);
}

/* ---- which programs may run -------------------------------------------------------- */

/* A FastCGI request with raw params (a NUL inside a value is what nginx
 * never sends), straight to narwhal; the STDOUT it gets back. */
static char *raw_fcgi(int port, const char *const kv[], const size_t vlen[])
{
    uint8_t buf[4096];
    size_t n = 0;
    uint8_t begin[16] = {1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0};
    memcpy(buf, begin, 16);
    n = 16;
    size_t hdr = n;
    n += 8;
    for (size_t i = 0; kv[i]; i += 2) {
        size_t nl = strlen(kv[i]), vl = vlen[i / 2];
        buf[n++] = (uint8_t)nl;
        buf[n++] = (uint8_t)vl;
        memcpy(buf + n, kv[i], nl);
        n += nl;
        memcpy(buf + n, kv[i + 1], vl);
        n += vl;
    }
    size_t plen = n - hdr - 8;
    uint8_t ph[8] = {1, 4, 0, 1, (uint8_t)(plen >> 8), (uint8_t)plen, 0, 0};
    memcpy(buf + hdr, ph, 8);
    uint8_t tail[16] = {1, 4, 0, 1, 0, 0, 0, 0, 1, 5, 0, 1, 0, 0, 0, 0};
    memcpy(buf + n, tail, 16);
    n += 16;

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s", strerror(errno));
    cr_assert(send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n);
    char *out = calloc(1, 65536);
    size_t len = 0;
    long deadline = h_now_ms() + 10000;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = deadline - h_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t k = recv(fd, out + len, 65535 - len, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    /* the record framing stays in: the test looks for text only */
    for (size_t i = 0; i < len; i++)
        if (!out[i])
            out[i] = '.';
    return out;
}

Test(cgi, script_filename_checks)
{
    char *ok = script("ok.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran\\n'\n", 0755);
    script("writable.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran\\n'\n", 0757);
    script("noexec.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran\\n'\n", 0644);
    mkdir(h_fmt("%s/dir.sh", root_dir()), 0755);
    /* outside the root, runnable: must never run through a link in it */
    char *outside = h_path("outside.sh");
    h_write_file(outside, "#!/bin/sh\ntouch \"$0.ran\"\nprintf 'Content-Type: text/plain\\n\\n"
                          "escaped\\n'\n");
    chmod(outside, 0755);
    cr_assert(symlink(outside, h_fmt("%s/out-link.sh", root_dir())) == 0);
    /* a link inside the root to a program inside it is fine */
    cr_assert(symlink(ok, h_fmt("%s/in-link.sh", root_dir())) == 0);
    serve_cgi(nw, ng, "-w", "1");

    assert_status(h_get(ng.port, "/ok.sh"), 200, nw.log);
    h_response r = h_get(ng.port, "/in-link.sh");
    assert_status(r, 200, nw.log);
    assert_body(r, "ran\n");

    const char *const cases[][3] = {
        {"/out-link.sh", "403", "outside every cgi_root"},
        {"/writable.sh", "403", "is writable by others"},
        {"/noexec.sh", "403", "is not executable"},
        {"/dir.sh", "403", "is not a regular file"},
        {"/missing.sh", "404", "No such file or directory"},
        /* nginx resolves the dots in a URI, so this stays inside... */
        {"/x/../ok.sh", "200", NULL},
        /* ...and a path under a file is no file */
        {"/ok.sh/more", "404", "Not a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        r = h_get(ng.port, cases[i][0]);
        assert_status(r, atoi(cases[i][1]), nw.log);
        if (!cases[i][2])
            continue;
        const char *const line[] = {"refused SCRIPT_FILENAME", cases[i][2], NULL};
        cr_assert(h_wait_line(nw.log, line, 5000), "no \"%s\" for %s:\n%s", cases[i][2],
                  cases[i][0], h_tail(nw.log));
    }
    cr_assert(!h_exists(h_fmt("%s.ran", outside)), "the program outside the root ran");

    /* what nginx never sends: '..' components, a NUL, a relative path */
    const char *dotdot = h_fmt("%s/../outside.sh", root_dir());
    const char *nul = h_fmt("%s/ok.sh%c/../../outside.sh", root_dir(), 0);
    size_t nul_len = strlen(root_dir()) + 6 + 19;
    const char *const sends[][2] = {
        {dotdot, "'..' component"},
        {nul, "NUL byte"},
        {"ok.sh", "not an absolute path"},
    };
    for (size_t i = 0; i < 3; i++) {
        const char *kv[] = {"REQUEST_METHOD",  "GET",       "REQUEST_URI", "/raw",
                            "SCRIPT_FILENAME", sends[i][0], NULL};
        size_t vl[] = {3, 4, i == 1 ? nul_len : strlen(sends[i][0])};
        char *out = raw_fcgi(nw.port, kv, vl);
        cr_assert(strstr(out, "Status: 403"), "%s: no 403 in:\n%s", sends[i][1], out);
        const char *const line[] = {"refused SCRIPT_FILENAME", sends[i][1], NULL};
        cr_assert(h_wait_line(nw.log, line, 5000), "no \"%s\" logged:\n%s", sends[i][1],
                  h_tail(nw.log));
    }
    cr_assert(!h_exists(h_fmt("%s.ran", outside)), "the program outside the root ran");
}

/* ---- timeouts, kills, no zombie ------------------------------------------------------- */

/* Processes on the machine whose parent is ppid, zombies included
 * (h_children leaves those out). */
static int count_children_all(pid_t ppid, int *zombies)
{
    DIR *d = opendir("/proc");
    int n = 0;
    *zombies = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char *st = h_read_file(h_fmt("/proc/%s/stat", e->d_name), NULL);
        char *p = st ? strrchr(st, ')') : NULL;
        char state;
        int pp;
        if (p && sscanf(p + 2, "%c %d", &state, &pp) == 2 && pp == (int)ppid) {
            n++;
            *zombies += state == 'Z';
        }
    }
    closedir(d);
    return n;
}

static bool pid_gone(pid_t pid, long timeout_ms)
{
    long t0 = h_now_ms();
    while (h_now_ms() - t0 < timeout_ms) {
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return true;
        h_sleep_ms(50);
    }
    return false;
}

static pid_t read_pid(const char *path)
{
    h_wait_for_text(path, "\n", 10000);
    return h_read_pidfile(path);
}

/* The script's process group and every process narwhal's worker started
 * are gone, and nothing is left a zombie under the worker or the master. */
static void assert_no_leftovers(const h_narwhal *nw, pid_t worker, pid_t a, pid_t b)
{
    cr_assert(pid_gone(a, 10000), "the script %d is still there", (int)a);
    cr_assert(pid_gone(b, 10000), "the script's child %d is still there", (int)b);
    int zw, zm;
    int kids = count_children_all(worker, &zw);
    count_children_all(nw->pid, &zm);
    cr_assert_eq(kids, 0, "the worker has %d children left (%d zombies)", kids, zw);
    cr_assert_eq(zm, 0, "the master has %d zombie children", zm);
}

/* A program that never stops writing (to stderr: only counted past 200
 * lines) still meets its deadline, and under async the worker serves its
 * other requests meanwhile: the gateway reads a bounded amount per round
 * and looks at the deadline between rounds. */
Test(cgi, endless_output_meets_the_deadline, .timeout = 60)
{
    script("endless.sh", "#!/bin/sh\nyes narwhal >&2\n", 0755);
    script("quick.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nquick\\n'\n", 0755);
    serve_cgi(nw, ng, "-w", "1", "-k", "async", "-t", "2");
    h_bg_request bg = {.port = ng.port, .path = "/endless.sh", .timeout_ms = 20000};
    h_bg_start(&bg);
    h_sleep_ms(300);
    h_response r = h_get(ng.port, "/quick.sh");
    assert_status(r, 200, nw.log);
    assert_body(r, "quick\n");
    h_bg_join(&bg);
    assert_status(bg.r, 504, nw.log);
    cr_assert(bg.r.elapsed_ms < 8000, "the endless program's request ended after %ld ms (-t 2)",
              bg.r.elapsed_ms);
}

ParameterizedTestParameters(cgi, timeout_kills_group)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

ParameterizedTest(h_wclass *wc, cgi, timeout_kills_group, .timeout = 60)
{
    char *pids = h_path("pids");
    script("stuck.sh",
           h_fmt("#!/bin/sh\nsleep 300 &\necho $$ > %s.tmp; echo $! >> %s.tmp; mv %s.tmp %s\n"
                 "wait\n",
                 pids, pids, pids, pids),
           0755);
    serve_cgi(nw, ng, H_CLASS_ARGS(wc), "-w", "1", "-t", "1");
    pid_t worker;
    cr_assert_eq(h_wait_children(nw.pid, &worker, 1, 1, 10000), 1);
    h_response r = h_http(ng.port, "GET", "/stuck.sh", NULL, NULL, 0, 20000);
    assert_status(r, 504, nw.log);
    char *text = h_read_file(pids, NULL);
    cr_assert(text, "the script never wrote its pids");
    pid_t a = 0, b = 0;
    cr_assert(sscanf(text, "%d %d", &a, &b) == 2, "pids: %s", text);
    assert_no_leftovers(&nw, worker, a, b);
    const char *const line[] = {"[ERROR] cgi:", "past the request's timeout", "killing its group",
                                NULL};
    cr_assert(h_find_line(nw.log, line), "no timeout line:\n%s", h_tail(nw.log));
    /* the same worker serves on */
    script("ok.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n", 0755);
    assert_status(h_get(ng.port, "/ok.sh"), 200, nw.log);
    pid_t now;
    cr_assert_eq(h_wait_children(nw.pid, &now, 1, 1, 5000), 1);
    cr_assert_eq(now, worker, "the worker was replaced");
}

/* A program that leaves a child running and exits: its response is
 * whole, and the child, adopted by the master, is stopped. */
Test(cgi, background_child_stopped)
{
    char *pidf = h_path("bg.pid");
    script("bg.sh",
           h_fmt("#!/bin/sh\nsleep 300 >/dev/null 2>&1 &\necho $! > %s.tmp; mv %s.tmp %s\n"
                 "printf 'Content-Type: text/plain\\n\\nok\\n'\n",
                 pidf, pidf, pidf),
           0755);
    serve_cgi(nw, ng, "-w", "1");
    h_response r = h_get(ng.port, "/bg.sh");
    assert_status(r, 200, nw.log);
    assert_body(r, "ok\n");
    pid_t bg = read_pid(pidf);
    cr_assert(bg > 0);
    cr_assert(pid_gone(bg, 10000), "the script's background child %d is still running:\n%s",
              (int)bg, h_tail(nw.log));
    cr_assert(h_find_line(nw.log, (const char *const[]){"adopted pid", "(sleep)", NULL}), "%s",
              h_tail(nw.log));
}

ParameterizedTestParameters(cgi, client_gone_kills_group)
{
    return cr_make_param_array(h_wclass, h_all_classes, H_NCLASSES);
}

/* nginx gives up first (its fastcgi_read_timeout, below narwhal's
 * timeout) and closes the connection: the program and its child are
 * killed then, not at narwhal's timeout, and nothing is left. */
ParameterizedTest(h_wclass *wc, cgi, client_gone_kills_group, .timeout = 60)
{
    char *pids = h_path("pids");
    script("stuck.sh",
           h_fmt("#!/bin/sh\nsleep 300 &\necho $$ > %s.tmp; echo $! >> %s.tmp; mv %s.tmp %s\n"
                 "wait\n",
                 pids, pids, pids, pids),
           0755);
    h_narwhal nw =
        h_narwhal_serve("--cgi-root", root_dir(), H_CLASS_ARGS(wc), "-w", "1", "-t", "60", NULL);
    h_nginx ng = h_nginx_start_server(
        h_fmt("        location / {\n"
              "            root %s;\n"
              "            include fastcgi_params;\n"
              "            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n"
              "            fastcgi_read_timeout 1s;\n"
              "            fastcgi_pass 127.0.0.1:%d;\n"
              "        }\n",
              root_dir(), nw.port));
    pid_t worker;
    cr_assert_eq(h_wait_children(nw.pid, &worker, 1, 1, 10000), 1);
    h_response r = h_http(ng.port, "GET", "/stuck.sh", NULL, NULL, 0, 20000);
    assert_status(r, 504, nw.log); /* nginx's */
    char *text = h_read_file(pids, NULL);
    pid_t a = 0, b = 0;
    cr_assert(text && sscanf(text, "%d %d", &a, &b) == 2, "pids: %s", text ? text : "(none)");
    assert_no_leftovers(&nw, worker, a, b);
    cr_assert(h_find_line(nw.log, (const char *const[]){"stuck.sh", "the client is gone",
                                                        "killing its group", NULL}),
              "-k %s:\n%s", wc->name, h_tail(nw.log));
}

/* CPU time (user + system) of pid in ms. */
static long cpu_ms(pid_t pid)
{
    char *st = h_read_file(h_fmt("/proc/%d/stat", (int)pid), NULL);
    char *p = st ? strrchr(st, ')') : NULL;
    cr_assert(p, "cannot read /proc/%d/stat", (int)pid);
    unsigned long ut = 0, stt = 0;
    cr_assert(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) == 2);
    return (long)((ut + stt) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/* fcgiwrap #18: a killed child made the parent spin. Here the script is
 * killed mid-response, before and after its header: 502 or a cut response,
 * the worker idle afterwards (CPU), reaped, and serving. */
Test(cgi, killed_script_no_spin)
{
    char *pidf = h_path("pid");
    script("victim.sh",
           h_fmt("#!/bin/sh\necho $$ > %s.tmp; mv %s.tmp %s\nexec sleep 300\n", pidf, pidf, pidf),
           0755);
    serve_cgi(nw, ng, "-w", "1", "-k", "async", "-t", "60");
    pid_t worker;
    cr_assert_eq(h_wait_children(nw.pid, &worker, 1, 1, 10000), 1);
    h_bg_request bg = {.port = ng.port, .path = "/victim.sh", .timeout_ms = 30000};
    h_bg_start(&bg);
    pid_t victim = read_pid(pidf);
    cr_assert(victim > 0, "the script never wrote its pid");
    long cpu0 = cpu_ms(worker);
    kill(victim, SIGKILL);
    h_bg_join(&bg);
    assert_status(bg.r, 502, nw.log);
    cr_assert(h_wait_for_text(nw.log, "it printed no header block", 5000), "%s", h_tail(nw.log));
    h_sleep_ms(1500);
    long spent = cpu_ms(worker) - cpu0;
    cr_assert(spent < 500, "the worker used %ld ms of CPU in 1.5 s after the kill", spent);
    int z;
    cr_assert_eq(count_children_all(worker, &z), 0, "children left under the worker");
    script("ok.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n", 0755);
    assert_status(h_get(ng.port, "/ok.sh"), 200, nw.log);
}

/* ---- async: many programs at once in one worker; cgi_max_running ---------------------- */

/* Each request waits in its script until all n have arrived: under one
 * async worker they only all finish if they run at once. */
static const char *barrier_script(int n)
{
    char *dir = h_path("arrived");
    mkdir(dir, 0755);
    return h_fmt("#!/bin/sh\ntouch %s/$$\ni=0\n"
                 "while [ $(ls %s | wc -l) -lt %d ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); "
                 "done\n"
                 "printf 'Content-Type: text/plain\\n\\n'; ls %s | wc -l\n",
                 dir, dir, n, dir);
}

Test(cgi, async_runs_many_at_once)
{
    script("barrier.sh", barrier_script(8), 0755);
    serve_cgi(nw, ng, "-w", "1", "-k", "async", "-t", "30");
    h_bg_request bg[8];
    h_concurrent_gets(ng.port, "/barrier.sh", 8, 30000, bg);
    for (int i = 0; i < 8; i++) {
        assert_status(bg[i].r, 200, nw.log);
        cr_assert_str_eq(bg[i].r.body, "8\n", "request %d saw %s arrived", i, bg[i].r.body);
    }
}

Test(cgi, max_running_one_at_a_time)
{
    char *trace = h_path("trace");
    script("turn.sh",
           h_fmt("#!/bin/sh\necho start >> %s\nsleep 0.3\necho end >> %s\n"
                 "printf 'Content-Type: text/plain\\n\\nok\\n'\n",
                 trace, trace),
           0755);
    serve_cgi(nw, ng, "-w", "1", "-k", "async", "--cgi-max-running", "1");
    h_bg_request bg[4];
    h_concurrent_gets(ng.port, "/turn.sh", 4, 30000, bg);
    for (int i = 0; i < 4; i++)
        assert_status(bg[i].r, 200, nw.log);
    char *t = h_read_file(trace, NULL);
    cr_assert(t && strcmp(t, "start\nend\nstart\nend\nstart\nend\nstart\nend\n") == 0,
              "programs overlapped:\n%s", t ? t : "(none)");
}

/* The requests waiting for a turn count on the status page (and the running
 * programs), and go back to 0 once they are done. */
Test(cgi, waiting_and_running_on_the_status_page)
{
    script("wait.sh", "#!/bin/sh\nsleep 1.5\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n",
           0755);
    serve_cgi(nw, ng, "-w", "1", "-k", "async", "--cgi-max-running", "1", "--status-path",
              "/status");
    h_bg_request bg[3];
    for (int i = 0; i < 3; i++) {
        bg[i] = (h_bg_request){.port = ng.port, .path = "/wait.sh", .timeout_ms = 30000};
        h_bg_start(&bg[i]);
    }
    bool seen = false;
    char *last = NULL;
    for (long end = h_now_ms() + 8000; !seen && h_now_ms() < end; h_sleep_ms(50)) {
        h_response r = h_get(ng.port, "/status?json");
        last = r.body;
        seen = r.status == 200 && r.body && strstr(r.body, "\"cgi_running\":1,") &&
               strstr(r.body, "\"cgi_waiting\":2,");
    }
    cr_assert(seen, "the status page never showed 1 running and 2 waiting:\n%s",
              last ? last : "(none)");
    for (int i = 0; i < 3; i++) {
        h_bg_join(&bg[i]);
        assert_status(bg[i].r, 200, nw.log);
    }
    h_response r = h_get(ng.port, "/status?openmetrics");
    assert_status(r, 200, nw.log);
    cr_assert(r.body && strstr(r.body, "narwhal_cgi_programs{state=\"running\"} 0\n") &&
                  strstr(r.body, "narwhal_cgi_programs{state=\"waiting\"} 0\n"),
              "the counts did not go back to 0:\n%s", r.body ? r.body : "");
}

/* ---- a graceful stop past graceful_timeout ------------------------------------------- */

Test(cgi, graceful_stop_kills_groups)
{
    char *pids = h_path("pids");
    script("long.sh",
           h_fmt("#!/bin/sh\nsleep 300 &\necho $$ > %s.tmp; echo $! >> %s.tmp; mv %s.tmp %s\n"
                 "wait\n",
                 pids, pids, pids, pids),
           0755);
    serve_cgi(nw, ng, "-w", "1", "-k", "async", "-t", "120", "--graceful-timeout", "2");
    pid_t worker;
    cr_assert_eq(h_wait_children(nw.pid, &worker, 1, 1, 10000), 1);
    h_bg_request bg = {.port = ng.port, .path = "/long.sh", .timeout_ms = 30000};
    h_bg_start(&bg);
    cr_assert(h_wait_for_text(pids, "\n", 10000));
    h_sleep_ms(200);
    pid_t a = 0, b = 0;
    cr_assert(sscanf(h_read_file(pids, NULL), "%d %d", &a, &b) == 2);
    kill(nw.pid, SIGTERM);
    int st;
    cr_assert(h_wait_exit(nw.pid, 20000, &st), "the master did not exit:\n%s", h_tail(nw.log));
    cr_assert(h_exited_with(st, 0), "master: %s\n%s", h_wstatus_str(st), h_tail(nw.log));
    cr_assert(pid_gone(a, 5000) && pid_gone(b, 5000), "the script or its child outlived narwhal");
    cr_assert(
        h_find_line(nw.log, (const char *const[]){"killing", "long.sh", "graceful stop", NULL}),
        "%s", h_tail(nw.log));
    cr_assert(!h_find_line(nw.log, (const char *const[]){"killing it", "graceful_timeout", NULL}),
              "the master had to kill the worker:\n%s", h_tail(nw.log));
    h_bg_join(&bg);
    assert_status(bg.r, 502, nw.log);
}

/* ---- settings ---------------------------------------------------------------------------- */

Test(cgi, settings_refused)
{
    const char *const bad[][4] = {
        {"--cgi", "/nonexistent/prog", NULL, "cannot run /nonexistent/prog"},
        {"--cgi-root", "/nonexistent/dir", NULL, "cgi_root: /nonexistent/dir"},
        {"--cgi-root", "/etc/passwd", NULL, "not a directory"},
        {"--cgi", "/bin/true", "--exec", "give either those or --exec"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *log = h_path("set-%zu.log", i);
        char *argv[] = {(char *)h_env("NARWHAL_BIN"),
                        (char *)bad[i][0],
                        (char *)bad[i][1],
                        (char *)bad[i][2],
                        bad[i][2] ? "/bin/true" : NULL,
                        NULL};
        int st = h_run(log, argv, NULL, 10000);
        cr_assert(h_exited_with(st, 1), "%s %s: %s", bad[i][0], bad[i][1], h_wstatus_str(st));
        cr_assert(strstr(h_read_file(log, NULL), bad[i][3]), "%s %s said:\n%s", bad[i][0],
                  bad[i][1], h_read_file(log, NULL));
    }
    char *log = h_path("both.log");
    char *argv[] = {(char *)h_env("NARWHAL_BIN"), "--cgi", "/bin/true", "--cgi-root", "/tmp", NULL};
    int st = h_run(log, argv, NULL, 10000);
    cr_assert(h_exited_with(st, 1) && strstr(h_read_file(log, NULL), "not both"), "%s",
              h_read_file(log, NULL));
}

/* ---- git-http-backend: a real clone, push and fetch ------------------------------------ */

#define GIT_BACKEND "/usr/lib/git-core/git-http-backend"

/* Runs the shell command cmd (its git commands see no user or system
 * config but an identity) in dir: the wait status. */
static int git(const char *dir, const char *cmd)
{
    char *log = h_path("git.log");
    char *line = h_fmt("cd '%s' && export HOME='%s' GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t "
                       "GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t "
                       "GIT_COMMITTER_EMAIL=t@example.com && (%s) >> '%s' 2>&1",
                       dir, h_dir(), cmd, log);
    char *argv[] = {"/bin/sh", "-c", line, NULL};
    return h_run(log, argv, NULL, 120000);
}

static const char *git_nwlog = "/dev/null"; /* narwhal's log, once it runs */

#define GIT_OK(dir, args)                                                                          \
    do {                                                                                           \
        int st_ = git((dir), (args));                                                              \
        cr_assert(h_exited_with(st_, 0), "git %s: %s\n%s\nnarwhal:\n%s", (args),                   \
                  h_wstatus_str(st_), h_tail(h_path("git.log")), h_tail(git_nwlog));               \
    } while (0)

static char *git_out(const char *dir, const char *args)
{
    char *out = h_path("git-out");
    unlink(out);
    git(dir, h_fmt("%s > '%s'", args, out));
    char *t = h_read_file(out, NULL);
    return t ? t : "";
}

ParameterizedTestParameters(cgi, git_http_backend)
{
    static h_wclass two[] = {{"sync", "1"}, {"async", "1"}};
    return cr_make_param_array(h_wclass, two, 2);
}

ParameterizedTest(h_wclass *wc, cgi, git_http_backend, .timeout = 120)
{
    if (access(GIT_BACKEND, X_OK) < 0)
        cr_skip_test("no %s (Debian's git package)", GIT_BACKEND);
    char *srv = h_path("srv");
    mkdir(srv, 0755);
    char *seed = h_path("seed"), *clone = h_path("clone"), *other = h_path("other");
    mkdir(seed, 0755);
    /* the served repository, with some history and pushes allowed */
    GIT_OK(srv, "git init -q -b main --bare repo.git && "
                "git -C repo.git config http.receivepack true");
    GIT_OK(seed, "git init -q -b main && echo one > a && git add a && git commit -qm one && "
                 "git push -q ../srv/repo.git main");

    h_narwhal nw =
        h_narwhal_serve("--cgi", GIT_BACKEND, H_CLASS_ARGS(wc), "-w", "2", "-t", "60", "-e",
                        h_fmt("GIT_PROJECT_ROOT=%s", srv), "-e", "GIT_HTTP_EXPORT_ALL=1", NULL);
    git_nwlog = nw.log;
    h_nginx ng = h_nginx_start_server(h_fmt("        client_max_body_size 0;\n"
                                            "        location ~ ^/git(/.*)$ {\n"
                                            "            include fastcgi_params;\n"
                                            "            fastcgi_param PATH_INFO $1;\n"
                                            "            fastcgi_pass 127.0.0.1:%d;\n"
                                            "        }\n",
                                            nw.port));
    char *url = h_fmt("http://127.0.0.1:%d/git/repo.git", ng.port);

    GIT_OK(h_dir(), h_fmt("git clone -q %s clone", url));
    cr_assert(strcmp(h_read_file(h_fmt("%s/a", clone), NULL), "one\n") == 0);

    /* a push of 6 MB that does not compress: the body streams through */
    GIT_OK(clone, "head -c 6000000 /dev/urandom > big && git add big && git commit -qm big && "
                  "git push -q origin main");
    GIT_OK(h_dir(), h_fmt("git clone -q %s other", url));
    GIT_OK(clone, "echo two >> a && git commit -qam two && git push -q origin main");
    GIT_OK(other, "git fetch -q origin && git merge -q --ff-only origin/main");

    char *head_srv = git_out(srv, "git -C repo.git rev-parse main");
    char *head_other = git_out(other, "git rev-parse HEAD");
    char *head_clone = git_out(clone, "git rev-parse HEAD");
    cr_assert(strlen(head_srv) == 41 && strcmp(head_srv, head_clone) == 0 &&
                  strcmp(head_srv, head_other) == 0,
              "heads differ: server %s clone %s other %s", head_srv, head_clone, head_other);
    GIT_OK(srv, "git -C repo.git fsck --strict --no-progress");
    GIT_OK(h_dir(), "cmp clone/big other/big && cmp clone/a other/a");
}
