/* Unit tests for src/core/log.c: what a message can and cannot do to the
 * error log. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../tmpdir.h"
#include "log.h"
#include "narwhal.h"

TestSuite(log, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* The error log's text after logging msg at WARNING. */
static char *logged(const char *msg)
{
    const char *path = tmp_path("error.log");
    cr_assert_eq(log_configure(path, NULL, NW_LOG_DEBUG, NULL), 0);
    log_msg(NW_LOG_WARNING, "%s", msg);
    static char text[4096];
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    log_open("-", NULL);
    return text;
}

Test(log, one_line_whatever_the_message)
{
    char *t = logged("value\n2026/11/30 00:00:00 [emerg] forged\r\n");
    cr_assert(strstr(t, "[WARNING] value 2026/11/30 00:00:00 [emerg] forged\n"), "%s", t);
    cr_assert_eq(strchr(t, '\n'), t + strlen(t) - 1, "more than one line: %s", t);
}

Test(log, control_bytes_are_escaped)
{
    char *t = logged("red \x1b[31mtext\x1b[0m, bell \a, del \x7f, tab\tstays");
    cr_assert(strstr(t, "red \\x1b[31mtext\\x1b[0m, bell \\x07, del \\x7f, tab\tstays\n"), "%s", t);
    cr_assert_null(strchr(t, '\x1b'), "a raw ESC: %s", t);
}

static int hooked[NW_LOG_CRITICAL + 1];

static void count_level(int level)
{
    hooked[level]++;
}

Test(log, level_hook_counts_lines_the_level_leaves_out)
{
    /* statsD's gunicorn.log.* count warnings whatever the log level */
    const char *path = tmp_path("error.log");
    cr_assert_eq(log_configure(path, NULL, NW_LOG_ERROR, NULL), 0);
    log_set_level_hook(count_level);
    log_msg(NW_LOG_WARNING, "not written");
    log_msg(NW_LOG_ERROR, "written");
    log_msg(NW_LOG_INFO, "neither");
    log_set_level_hook(NULL);
    log_open("-", NULL);
    cr_assert_eq(hooked[NW_LOG_WARNING], 1);
    cr_assert_eq(hooked[NW_LOG_ERROR], 1);
    cr_assert_eq(hooked[NW_LOG_INFO], 0);
}

/* A slowlog entry: one write of a stamped header, its lines and a blank
 * line; what a peer put in the header (a URI) cannot forge a line. Without
 * a slowlog file the entry goes to the error log, a line each. */
Test(log, slowlog_entry)
{
    const char *slow = tmp_path("slow.log"), *err = tmp_path("error.log");
    cr_assert_eq(log_open(err, NULL), 0);
    cr_assert_eq(log_slowlog_open(slow), 0);
    log_slowlog("worker 1 slot 0: GET /x\n#0 forged running for 5 ms", "#0  f at a.c:1\n#1  g\n");
    FILE *f = fopen(slow, "r");
    cr_assert(f);
    char text[1024] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cr_assert(text[0] == '[' && strstr(text, "] worker 1 slot 0: GET /x\\x0a#0 forged running for "
                                             "5 ms\n#0  f at a.c:1\n#1  g\n\n"),
              "%s", text);
    cr_assert_eq(log_slowlog_open(NULL), 0);
    log_slowlog("head", "#0  f\n");
    log_open("-", NULL);
    f = fopen(err, "r");
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cr_assert(strstr(text, "[WARNING] head\n") && strstr(text, "[WARNING]   #0  f\n"), "%s", text);
}
