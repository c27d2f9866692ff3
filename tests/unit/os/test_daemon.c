/* Unit tests for src/os/daemon.c: reading a pidfile. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "../tmpdir.h"
#include "daemon.h"

/* ---- daemon_read_pidfile --------------------------------------------------------- */

TestSuite(read_pidfile, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(read_pidfile, absent_file_is_0)
{
    cr_expect_eq(daemon_read_pidfile(tmp_path("none.pid")), 0);
}

Test(read_pidfile, pid_as_written)
{
    cr_expect_eq(daemon_read_pidfile(write_file("a.pid", "1234\n", 0644)), 1234);
    cr_expect_eq(daemon_read_pidfile(write_file("b.pid", "1", 0644)), 1);
    cr_expect_eq(daemon_read_pidfile(write_file("c.pid", "  \n\t42\n", 0644)), 42);
    cr_expect_eq(daemon_read_pidfile(write_file("d.pid", "4194304 trailing words\n", 0644)),
                 4194304);
    cr_expect_eq(daemon_read_pidfile(write_file("e.pid", "77x", 0644)), 77);
}

Test(read_pidfile, no_pid_is_0)
{
    cr_expect_eq(daemon_read_pidfile(write_file("empty.pid", "", 0644)), 0);
    cr_expect_eq(daemon_read_pidfile(write_file("blank.pid", " \n\n", 0644)), 0);
    cr_expect_eq(daemon_read_pidfile(write_file("word.pid", "pid 12\n", 0644)), 0);
    cr_expect_eq(daemon_read_pidfile(write_file("zero.pid", "0\n", 0644)), 0);
    cr_expect_eq(daemon_read_pidfile(write_file("neg.pid", "-5\n", 0644)), 0);
}

Test(read_pidfile, unreadable_is_minus_1)
{
    /* A path through a regular file: ENOTDIR, not ENOENT (and not beaten
     * by running as root, as a mode 000 file would be). */
    const char *file = write_file("plain", "1\n", 0644);
    char through[160];
    snprintf(through, sizeof through, "%s/x.pid", file);
    cr_expect_eq(daemon_read_pidfile(through), -1);
    /* An absent directory is still "no file". */
    cr_expect_eq(daemon_read_pidfile(tmp_path("nodir/x.pid")), 0);
}
