/* tmpdir.h - what the unit tests that touch files share: a fresh temporary
 * directory per test (TestSuite(..., .init = tmpdir_setup, .fini =
 * tmpdir_teardown)) and files in it. */
#ifndef NW_TEST_TMPDIR_H
#define NW_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[64];

static inline void tmpdir_setup(void)
{
    strcpy(tmpdir, "/tmp/nw-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static inline void tmpdir_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "/bin/rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

/* tmpdir/name, in static storage (one per call up to 4). */
static inline const char *tmp_path(const char *name)
{
    static char paths[4][128];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 128, "%s/%s", tmpdir, name);
    return p;
}

static inline const char *write_file(const char *name, const char *text, mode_t mode)
{
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s: %s", p, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(p, mode), 0);
    return p;
}

#endif
