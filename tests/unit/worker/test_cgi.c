/* Unit tests for src/worker/cgi_head.c (a CGI program's header block: where
 * it ends, at any split of the input, and what it says) and
 * src/worker/cgi_path.c (which SCRIPT_FILENAMEs may run). */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "../tmpdir.h"
#include "cgi_head.h"
#include "cgi_path.h"

/* ---- cgi_head_end ----------------------------------------------------------------- */

/* The end found when text arrives in pieces of every size, as
 * cgi.c feeds it (the same scan variable, the buffer growing). */
static size_t end_in_pieces(const char *text, size_t piece)
{
    size_t len = strlen(text), scan = 0, have = 0, end = 0;
    while (!end && have < len) {
        have = have + piece < len ? have + piece : len;
        end = cgi_head_end(text, have, &scan);
    }
    return end;
}

static void assert_end(const char *text, size_t want)
{
    for (size_t piece = 1; piece <= strlen(text); piece++)
        cr_assert_eq(end_in_pieces(text, piece), want, "\"%s\" in pieces of %zu: %zu, not %zu",
                     text, piece, end_in_pieces(text, piece), want);
}

Test(cgi_head, end_at_every_split)
{
    assert_end("Content-Type: text/plain\n\nbody", 26);
    assert_end("Content-Type: text/plain\r\n\r\nbody", 28);
    assert_end("A: 1\r\nB: 2\n\r\nrest\n\n", 13);
    assert_end("\nbody", 1);
    assert_end("\r\nbody", 2);
    assert_end("A: 1\nB: 2\n", 0);
    assert_end("A: 1\r\n\rX\n", 0); /* a CR alone is no blank line */
    assert_end("", 0);
}

/* ---- cgi_head_parse ------------------------------------------------------------------ */

typedef struct fields {
    char text[512]; /* "name=value;" each */
    int refuse;     /* the field callback fails for a name starting with this */
} fields;

static int collect(void *arg, const char *name, const char *value)
{
    fields *f = arg;
    if (f->refuse && name[0] == f->refuse)
        return -1;
    size_t n = strlen(f->text);
    snprintf(f->text + n, sizeof f->text - n, "%s=%s;", name, value);
    return 0;
}

static int parse(const char *text, cgi_head *h, fields *f, char *why)
{
    static char block[1024];
    snprintf(block, sizeof block, "%s", text);
    size_t scan = 0, end = cgi_head_end(block, strlen(block), &scan);
    cr_assert(end, "no end in \"%s\"", text);
    return cgi_head_parse(block, end, h, collect, f, why, 256);
}

Test(cgi_head, fields_status_location)
{
    cgi_head h;
    fields f = {0};
    char why[256] = "";
    cr_assert_eq(parse("Content-Type:text/html\r\nStatus: 404 Not Found\r\n"
                       "Set-Cookie: a=1 \t\r\nSet-Cookie: b=2\r\n\r\nbody",
                       &h, &f, why),
                 0, "%s", why);
    cr_assert_eq(h.status, 404);
    cr_assert_null(h.location);
    cr_assert_str_eq(f.text, "Content-Type=text/html;Set-Cookie=a=1;Set-Cookie=b=2;");

    memset(&f, 0, sizeof f);
    cr_assert_eq(parse("location: /elsewhere?x=1\n\n", &h, &f, why), 0, "%s", why);
    cr_assert_eq(h.status, 0);
    cr_assert_str_eq(h.location, "/elsewhere?x=1");
    cr_assert_str_eq(f.text, "location=/elsewhere?x=1;");

    cr_assert_eq(parse("Status: 200\nX: \n\n", &h, &f, why), 0, "%s", why);
    cr_assert_eq(h.status, 200);
}

Test(cgi_head, refusals)
{
    static const char *const bad[][2] = {
        {"no colon here\n\n", "a header line without a colon: \"no colon here\""},
        {"A: 1\n folded\n\n", "a folded header line"},
        {"Status: 99 Low\n\n", "a bad Status: \"99 Low\""},
        {"Status: 600\n\n", "a bad Status: \"600\""},
        {"Status: 2000\n\n", "a bad Status: \"2000\""},
        {"Status: OK\n\n", "a bad Status: \"OK\""},
        {"Status: 200OK\n\n", "a bad Status: \"200OK\""},
        {"Status: 101 Switching\n\n", "a bad Status"},
        {"\n", "an empty header block"},
        {"\r\n", "an empty header block"},
        {"Bad: value\n\n", "a malformed header field: \"Bad\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cgi_head h;
        fields f = {.refuse = 'B'};
        char why[256] = "";
        cr_assert_eq(parse(bad[i][0], &h, &f, why), -1, "accepted \"%s\"", bad[i][0]);
        cr_assert(strstr(why, bad[i][1]), "\"%s\": said \"%s\"", bad[i][0], why);
    }
    /* a NUL inside the block */
    char block[] = "A: x\0y\n\n";
    size_t scan = 0, end = cgi_head_end(block, sizeof block - 1, &scan);
    cgi_head h;
    fields f = {0};
    char why[256];
    cr_assert_eq(end, sizeof block - 1);
    cr_assert_eq(cgi_head_parse(block, end, &h, collect, &f, why, sizeof why), -1);
    cr_assert_str_eq(why, "a NUL byte in its header block");
    /* a quote of a long line is cut */
    char longline[600];
    memset(longline, 'x', sizeof longline);
    memcpy(longline + sizeof longline - 3, "\n\n", 3);
    cr_assert_eq(parse(longline, &h, &f, why), -1);
    cr_assert_lt(strlen(why), 160);
}

/* ---- cgi_path_check -------------------------------------------------------------------- */

TestSuite(cgi_path, .init = tmpdir_setup, .fini = tmpdir_teardown);

static int check(const char *sf, char **out, char *why)
{
    char *root = realpath(tmp_path("root"), NULL);
    cr_assert_not_null(root);
    char *roots[] = {root};
    int rc = cgi_path_check(sf, sf ? strlen(sf) : 0, roots, 1, out, why, 512);
    free(root);
    return rc;
}

Test(cgi_path, what_may_run)
{
    cr_assert_eq(mkdir(tmp_path("root"), 0755), 0);
    cr_assert_eq(mkdir(tmp_path("root/sub"), 0755), 0);
    /* tmp_path's strings are reused: keep copies */
    char *ok = strdup(write_file("root/sub/ok.sh", "#!/bin/sh\n", 0755));
    write_file("root/open.sh", "#!/bin/sh\n", 0757);
    write_file("root/plain.sh", "#!/bin/sh\n", 0644);
    char *out = strdup(write_file("out.sh", "#!/bin/sh\n", 0755));
    cr_assert_eq(symlink(out, tmp_path("root/out-link")), 0);
    cr_assert_eq(symlink(ok, tmp_path("root/in-link")), 0);
    cr_assert_eq(symlink(tmp_path("root-other"), tmp_path("root/dir-out")), 0);
    cr_assert_eq(mkdir(tmp_path("root-other"), 0755), 0); /* shares the root's prefix */
    write_file("root-other/x.sh", "#!/bin/sh\n", 0755);

    char why[512], *res = NULL;
    cr_assert_eq(check(ok, &res, why), 0, "%s", why);
    char *real_ok = realpath(ok, NULL);
    cr_assert_str_eq(res, real_ok);
    free(res);
    cr_assert_eq(check(tmp_path("root/in-link"), &res, why), 0, "%s", why);
    cr_assert_str_eq(res, real_ok);
    free(res);
    free(real_ok);

    static const struct {
        const char *name;
        int status;
        const char *why;
    } bad[] = {
        {"root/out-link", 403, "outside every cgi_root"},
        {"root/dir-out/x.sh", 403, "outside every cgi_root"},
        {"root-other/x.sh", 403, "outside every cgi_root"},
        {"root/open.sh", 403, "is writable by others"},
        {"root/plain.sh", 403, "is not executable"},
        {"root/sub", 403, "is not a regular file"},
        {"root/missing.sh", 404, "No such file or directory"},
        {"root/sub/ok.sh/x", 404, "Not a directory"},
        {"root/sub/../sub/ok.sh", 403, "'..' component"},
        {"root/..", 403, "'..' component"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        res = (char *)1;
        cr_assert_eq(check(tmp_path(bad[i].name), &res, why), bad[i].status, "%s: %s", bad[i].name,
                     why);
        cr_assert_null(res);
        cr_assert(strstr(why, bad[i].why), "%s: said \"%s\"", bad[i].name, why);
    }
    /* names with dots that are not "..": fine */
    write_file("root/..x", "#!/bin/sh\n", 0755);
    write_file("root/x..", "#!/bin/sh\n", 0755);
    cr_assert_eq(check(tmp_path("root/..x"), &res, why), 0, "%s", why);
    free(res);
    cr_assert_eq(check(tmp_path("root/x.."), &res, why), 0, "%s", why);
    free(res);

    cr_assert_eq(check(NULL, &res, why), 404);
    cr_assert_eq(check("", &res, why), 404);
    cr_assert_eq(check("sub/ok.sh", &res, why), 403);
    cr_assert(strstr(why, "not an absolute path"));
    /* a NUL inside: the length says more than the string */
    char *root = realpath(tmp_path("root"), NULL);
    char *roots[] = {root};
    char nul[256];
    int n = snprintf(nul, sizeof nul, "%s/sub/ok.sh", root);
    memcpy(nul + n, "\0/x", 4);
    cr_assert_eq(cgi_path_check(nul, (size_t)n + 3, roots, 1, &res, why, sizeof why), 403);
    cr_assert_str_eq(why, "SCRIPT_FILENAME holds a NUL byte");
    /* the root "/" holds everything */
    char *slash[] = {"/"};
    cr_assert_eq(cgi_path_check(ok, strlen(ok), slash, 1, &res, why, sizeof why), 0, "%s", why);
    free(res);
    free(root);
    free(ok);
    free(out);
}
