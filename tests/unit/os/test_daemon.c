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

/* ---- daemon_write_pidfile -------------------------------------------------------- */

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(write_pidfile, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(write_pidfile, never_through_a_symlink_and_0644_whatever_the_umask)
{
    /* Symlinks at the names the old code wrote through: the pidfile's
     * "<path>.<pid>.tmp" and others a guesser might try. */
    const char *victim = write_file("victim", "precious\n", 0600);
    char pidfile[160], link[200];
    snprintf(pidfile, sizeof pidfile, "%s", tmp_path("nw.pid"));
    snprintf(link, sizeof link, "%s.%d.tmp", pidfile, (int)getpid());
    cr_assert_eq(symlink(victim, link), 0);
    mode_t old = umask(077);
    int rc = daemon_write_pidfile(pidfile);
    umask(old);
    cr_assert_eq(rc, 0);
    cr_expect_eq(daemon_read_pidfile(pidfile), getpid());
    FILE *f = fopen(victim, "r");
    char text[32] = "";
    cr_assert_not_null(f);
    cr_expect_not_null(fgets(text, sizeof text, f));
    fclose(f);
    cr_expect_str_eq(text, "precious\n", "the pidfile was written through a symlink");
    struct stat st;
    cr_assert_eq(lstat(pidfile, &st), 0);
    cr_expect(S_ISREG(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0644, "pidfile mode %o", st.st_mode & 0777);
}
